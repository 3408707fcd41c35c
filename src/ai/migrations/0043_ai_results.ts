import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Every object an AI node sent back (SR, SEG, Secondary Capture, Presentation State), one row per SOP
 * Instance UID (unique: a redelivered InstanceStored links nothing twice): the request it was linked to, or
 * `unmatched` with the reason when none could be found, and the findings read from an SR's coded content.
 */
export const migration: SchemaMigration = {
  name: '0043_ai_results',
  module: 'ai',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('ai_result'))
      .addColumn('sop_instance_uid', 'text', (c) => c.notNull().unique())
      .addColumn('sop_class_uid', 'text', (c) => c.notNull())
      /** sr | seg | sc | pr | other */
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('node_pk', 'bigint')
      .addColumn('request_pk', 'bigint')
      /** linked | unmatched */
      .addColumn('state', 'text', (c) => c.notNull())
      /** How it was linked (calling-ae, stow-study, referenced-study) or why not. */
      .addColumn('reason', 'text')
      .addColumn('research', 'integer', (c) => c.notNull())
      .addColumn('findings_json', 'text', (c) => c.notNull())
      .addColumn('positive', 'integer')
      .addColumn('received_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ai_result_request_idx').on('ai_result').column('request_pk').execute();
    await db.schema.createIndex('ai_result_node_idx').on('ai_result').columns(['node_pk', 'state']).execute();
  },
};
