import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Integrity sweeps and metadata quality samples as they ran (docs/integrity.md): when, what started them, what
 * they found (JSON), so an administrator sees that the scheduled sweep runs and reads a sample's report again.
 */
export const migration: SchemaMigration = {
  name: '0023_quality_integrity_runs',
  module: 'quality',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('integrity_run'))
      /** sweep | sample */
      .addColumn('kind', 'text', (c) => c.notNull())
      /** schedule | user:<name> ... */
      .addColumn('requested_by', 'text', (c) => c.notNull())
      .addColumn('job_id', 'bigint')
      /** running | succeeded | failed */
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('finished_at', 'text')
      /** JSON: a sweep's counts per check (detected, opened, resolved), a sample's report. */
      .addColumn('result', 'text')
      .addColumn('error', 'text')
      .execute();
    await db.schema.createIndex('integrity_run_kind_idx').on('integrity_run').columns(['kind', 'started_at']).execute();
  },
};
