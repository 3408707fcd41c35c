import { sql, type Kysely } from 'kysely';
import { type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The study list in its own order (newest first), walked by an index: a viewer's default study list, or one
 * filtered on what the study row does not hold (ModalitiesInStudy), stops after `limit` rows instead of
 * sorting every matching study (at 10,000 studies: 7.8 -> 0.5 ms unfiltered, 23 -> 1.6 ms by modality).
 * SQLite's descending index puts NULLs last, as `nulls last` asks; PostgreSQL says so.
 */
export const migration: SchemaMigration = {
  name: '0005_study_list_order',
  module: 'archive',
  async up(db: Kysely<any>, engine: SqlEngine) {
    const nullsLast = engine === 'postgres' ? sql.raw(' nulls last') : sql``;
    await sql`create index study_list_order_idx on study (study_date desc${nullsLast}, study_time desc${nullsLast}, pk desc)`.execute(db);
  },
};
