import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Outbound HL7 status messages (src/ris/hl7/outbound.ts): one row per order status event and destination,
 * the key that makes a redelivered OrderStatusChanged queue no second job, with the job that sends it.
 */
export const migration: SchemaMigration = {
  name: '0013_ris_hl7_outbound',
  module: 'ris',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('ris_hl7_outbound'))
      /** The outbox id of the OrderStatusChanged event. */
      .addColumn('event_id', 'bigint', (c) => c.notNull())
      .addColumn('destination', 'text', (c) => c.notNull())
      .addColumn('accession_number', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      /** The ris.hl7-status job; null for the moment between the row and its job. */
      .addColumn('job_id', 'bigint')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('ris_hl7_outbound_once', ['event_id', 'destination'])
      .execute();
    await db.schema.createIndex('ris_hl7_outbound_accession_idx').on('ris_hl7_outbound').column('accession_number').execute();
  },
};
