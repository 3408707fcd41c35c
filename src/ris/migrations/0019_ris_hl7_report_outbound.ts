import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Outbound reports (ORU^R01, src/ris/hl7/report-outbound.ts): one row per ReportFinal event and destination,
 * the key that makes a redelivered event queue no second job, with the report version and the job that
 * sends it.
 */
export const migration: SchemaMigration = {
  name: '0019_ris_hl7_report_outbound',
  module: 'ris',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('ris_hl7_report_outbound'))
      /** The outbox id of the ReportFinal event. */
      .addColumn('event_id', 'bigint', (c) => c.notNull())
      .addColumn('destination', 'text', (c) => c.notNull())
      /** The report version sent (ris_report.pk). */
      .addColumn('report_id', 'bigint', (c) => c.notNull())
      .addColumn('accession_number', 'text', (c) => c.notNull())
      /** F or C. */
      .addColumn('status', 'text', (c) => c.notNull())
      /** The ris.hl7-report job; null for the moment between the row and its job. */
      .addColumn('job_id', 'bigint')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('ris_hl7_report_outbound_once', ['event_id', 'destination'])
      .execute();
    await db.schema.createIndex('ris_hl7_report_outbound_accession_idx').on('ris_hl7_report_outbound').column('accession_number').execute();
  },
};
