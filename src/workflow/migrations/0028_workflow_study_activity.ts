import type { Kysely } from 'kysely';
import type { SchemaMigration } from '../../database/migration.ts';

/**
 * When each study last received an instance (`workflow_study_activity`), written by the InstanceStored
 * handler `workflow.study-activity`, and read by the StudyStable sweep: a row is `quiet` until its `due_at`
 * passes, then one sweep (whichever node claims it) marks it `emitted` and writes the StudyStable event in the
 * same transaction. A later instance makes it `quiet` again with a new due time. `last_event_pk` keeps a
 * redelivered InstanceStored from starting another quiet period.
 */
export const migration: SchemaMigration = {
  name: '0028_workflow_study_activity',
  module: 'workflow',
  async up(db: Kysely<any>) {
    await db.schema.createTable('workflow_study_activity')
      .addColumn('study_instance_uid', 'text', (c) => c.primaryKey())
      .addColumn('patient_id', 'text', (c) => c.notNull())
      .addColumn('last_instance_at', 'text', (c) => c.notNull())
      .addColumn('due_at', 'text', (c) => c.notNull())
      /** quiet | emitted */
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('last_event_pk', 'bigint', (c) => c.notNull())
      /** The transport of the last instance (`dimse:<calling AE>`, `stow` ...): the sending AE of study-level rules. */
      .addColumn('last_source', 'text', (c) => c.notNull())
      .addColumn('emitted_at', 'text')
      /** How many StudyStable events this study has had (a later instance starts another quiet period). */
      .addColumn('periods', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('workflow_study_activity_due_idx').on('workflow_study_activity').columns(['state', 'due_at']).execute();
  },
};
