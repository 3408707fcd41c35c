import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Critical results (the checklist's "critical exam notification workflow"): one row per report version
 * marked critical, whom it was notified to, its acknowledgement, or its escalation when none came in time.
 */
export const migration: SchemaMigration = {
  name: '0033_reading_critical_results',
  module: 'reading',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('reading_critical_result'))
      .addColumn('report_id', 'bigint', (c) => c.notNull().unique())
      .addColumn('accession_number', 'text', (c) => c.notNull())
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      .addColumn('patient_id', 'text')
      .addColumn('report_status', 'text', (c) => c.notNull())
      .addColumn('author', 'text')
      /** The ordering (else referring) physician as the order carries it. */
      .addColumn('clinician', 'text')
      .addColumn('destination', 'text')
      .addColumn('notified_at', 'text', (c) => c.notNull())
      .addColumn('acknowledge_by', 'text', (c) => c.notNull())
      .addColumn('acknowledged_at', 'text')
      .addColumn('acknowledged_by', 'text')
      .addColumn('escalated_at', 'text')
      .addColumn('escalation_destination', 'text')
      /** notified | acknowledged | escalated */
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('reading_critical_open_idx').on('reading_critical_result').columns(['state', 'acknowledge_by']).execute();
  },
};
