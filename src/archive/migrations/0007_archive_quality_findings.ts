import { type Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Quality findings: what was odd about an object the archive accepted anyway (a UID that breaks PS3.5 9.1
 * under the "flag" policy, a File Meta generated for a bare data set, the same instance received again in
 * another transfer syntax...). One row per finding, kept as a log: findings are never rewritten, and a
 * finding outlives the deletion of its study (it records what was received).
 */
export const migration: SchemaMigration = {
  name: '0007_quality_findings',
  module: 'archive',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('quality_finding'))
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      .addColumn('series_instance_uid', 'text')
      .addColumn('sop_instance_uid', 'text')
      .addColumn('code', 'text', (c) => c.notNull())
      .addColumn('element', 'text')
      .addColumn('detail', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('quality_finding_study_idx').on('quality_finding').column('study_instance_uid').execute();
  },
};
