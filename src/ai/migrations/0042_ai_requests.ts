import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * One AI request per study and node (unique): queued by a routing rule's `ai` action (the `ai.send` job), sent
 * when the node accepted the study, resulted when its first result came back; the flag it raised and the
 * radiologist's agreement with it once the study is reported.
 */
export const migration: SchemaMigration = {
  name: '0042_ai_requests',
  module: 'ai',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('ai_request'))
      .addColumn('node_pk', 'bigint', (c) => c.notNull().references('ai_node.pk'))
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      .addColumn('rule_id', 'bigint')
      .addColumn('rule_name', 'text')
      .addColumn('job_id', 'bigint')
      /** The node was in research mode when the study was sent. */
      .addColumn('research', 'integer', (c) => c.notNull())
      /** queued | sent | failed | resulted */
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('queued_at', 'text', (c) => c.notNull())
      .addColumn('sent_at', 'text')
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('failed_attempts', 'integer', (c) => c.notNull())
      .addColumn('last_error', 'text')
      .addColumn('first_result_at', 'text')
      .addColumn('result_count', 'integer', (c) => c.notNull())
      /** 1: a mapped finding present; 0: SR results with none; null: no SR evaluated yet. */
      .addColumn('positive', 'integer')
      .addColumn('flag', 'text')
      /** The flag could not be put on the reading worklist yet (the study was not on it): retried at StudyStable. */
      .addColumn('triage_pending', 'integer', (c) => c.notNull())
      /** confirms | overrides */
      .addColumn('agreement', 'text')
      .addColumn('agreement_by', 'text')
      .addColumn('agreement_at', 'text')
      .addColumn('agreement_report_status', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ai_request_node_study_idx').on('ai_request').columns(['node_pk', 'study_instance_uid']).unique().execute();
    await db.schema.createIndex('ai_request_study_idx').on('ai_request').column('study_instance_uid').execute();
  },
};
