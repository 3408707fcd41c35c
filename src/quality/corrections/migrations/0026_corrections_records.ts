import { type Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../../database/migration.ts';

/**
 * Identity corrections (docs/corrections.md): one row per correction applied by hand (move a study or series,
 * edit patient or study attributes, merge, split, link an order), with who, why, when, what it asked, and what
 * the index and the served attributes were before and after, enough to undo it. Rows are never deleted; an
 * undo is recorded on the row (and audited).
 */
export const migration: SchemaMigration = {
  name: '0026_corrections_records',
  module: 'corrections',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('identity_correction'))
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('actor_name', 'text', (c) => c.notNull())
      // JSON: the request as given.
      .addColumn('request', 'text', (c) => c.notNull())
      // JSON: the rows the correction changed, as they were and as it left them (index, served attributes, RIS change).
      .addColumn('before', 'text', (c) => c.notNull())
      .addColumn('after', 'text', (c) => c.notNull())
      // JSON arrays: what it touched, for listing and for refusing an undo that a later correction overlaps.
      .addColumn('study_instance_uids', 'text', (c) => c.notNull())
      .addColumn('patient_ids', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('undone_at', 'text')
      .addColumn('undone_by', 'text')
      .addColumn('undo_reason', 'text')
      .execute();
    await db.schema.createIndex('identity_correction_created_idx').on('identity_correction').column('created_at').execute();
  },
};
