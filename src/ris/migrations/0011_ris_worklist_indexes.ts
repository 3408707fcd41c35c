import type { Kysely } from 'kysely';
import type { SchemaMigration } from '../../database/migration.ts';

/**
 * Indexes the Modality Worklist matching keys use (src/ris/sql-worklist-store.ts) beyond those of 0010
 * (status + start, station + start): modality + start, the start alone (date ranges without a station),
 * the requested procedure ID, and the patient's name as stored (literal, case-sensitive PN matching).
 */
export const migration: SchemaMigration = {
  name: '0011_ris_worklist_indexes',
  module: 'ris',
  async up(db: Kysely<any>) {
    await db.schema.createIndex('ris_procedure_step_modality_idx').on('ris_procedure_step').columns(['modality', 'start_at']).execute();
    await db.schema.createIndex('ris_procedure_step_start_idx').on('ris_procedure_step').column('start_at').execute();
    await db.schema.createIndex('ris_order_requested_procedure_idx').on('ris_order').column('requested_procedure_id').execute();
    await db.schema.createIndex('ris_patient_patient_name_idx').on('ris_patient').column('patient_name').execute();
  },
};
