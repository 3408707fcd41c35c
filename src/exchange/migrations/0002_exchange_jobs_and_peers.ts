import { sql, type Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The durable job queue (`job`, see sql-job-queue.ts) and the registry of known DICOM peers (`ae_peer`,
 * see sql-peer-registry.ts). Times are ISO-8601 UTC text like everywhere else: they sort as they compare.
 */
export const migration: SchemaMigration = {
  name: '0002_jobs_and_peers',
  module: 'exchange',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('job'))
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('max_attempts', 'integer', (c) => c.notNull())
      .addColumn('run_at', 'text', (c) => c.notNull())
      .addColumn('dedupe_key', 'text')
      .addColumn('last_error', 'text')
      .addColumn('progress', 'text')
      .addColumn('result', 'text')
      .addColumn('locked_by', 'text')
      .addColumn('locked_until', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    // Claiming: the due queued jobs, oldest first.
    await db.schema.createIndex('job_due_idx').on('job').columns(['state', 'run_at']).execute();
    // Recovering: running jobs whose lease ran out.
    await db.schema.createIndex('job_lease_idx').on('job').columns(['state', 'locked_until']).execute();
    await db.schema.createIndex('job_type_idx').on('job').columns(['type', 'state']).execute();
    // At most one queued or running job per dedupe key; finished ones keep their key as history.
    await db.schema.createIndex('job_dedupe_active_idx').on('job').column('dedupe_key').unique()
      .where(sql.ref('state'), 'in', ['queued', 'running']).where(sql.ref('dedupe_key'), 'is not', null).execute();

    await withPk(engine, db.schema.createTable('ae_peer'))
      .addColumn('ae_title', 'text', (c) => c.notNull().unique())
      .addColumn('host', 'text', (c) => c.notNull())
      .addColumn('port', 'integer', (c) => c.notNull())
      .addColumn('tls', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('operations', 'text', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
  },
};
