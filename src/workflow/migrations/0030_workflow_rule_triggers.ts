import type { Kysely } from 'kysely';
import type { SchemaMigration } from '../../database/migration.ts';

/**
 * What each rule did for each event (`workflow_rule_trigger`): one row per event, rule and action, naming the
 * job it queued. The primary key keeps a redelivered event from queueing the same action twice.
 */
export const migration: SchemaMigration = {
  name: '0030_workflow_rule_triggers',
  module: 'workflow',
  async up(db: Kysely<any>) {
    await db.schema.createTable('workflow_rule_trigger')
      .addColumn('event_pk', 'bigint', (c) => c.notNull())
      .addColumn('rule_pk', 'bigint', (c) => c.notNull())
      .addColumn('action_index', 'integer', (c) => c.notNull())
      .addColumn('rule_version', 'integer', (c) => c.notNull())
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      .addColumn('job_id', 'bigint', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('workflow_rule_trigger_pk', ['event_pk', 'rule_pk', 'action_index'])
      .execute();
    await db.schema.createIndex('workflow_rule_trigger_study_idx').on('workflow_rule_trigger').column('study_instance_uid').execute();
  },
};
