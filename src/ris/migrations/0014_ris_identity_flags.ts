import type { Kysely } from 'kysely';
import type { SchemaMigration } from '../../database/migration.ts';

/**
 * Post-verification findings (src/ris/order-service.ts linkStudy): a study linked to an order keeps the
 * whole identity it carried (Issuer of Patient ID and Patient's Name beside the Patient ID of 0010), so a
 * wrong-patient flag names every differing value; and a timeline entry may be a finding rather than a
 * status transition (`flag`: identity-mismatch), which turnaround times leave out.
 */
export const migration: SchemaMigration = {
  name: '0014_ris_identity_flags',
  module: 'ris',
  async up(db: Kysely<any>) {
    await db.schema.alterTable('ris_order_study').addColumn('study_issuer_of_patient_id', 'text').execute();
    await db.schema.alterTable('ris_order_study').addColumn('study_patient_name', 'text').execute();
    /** JSON IdentityMismatch (src/ris/model.ts) when patient_mismatch is 1: what differed, as it was at the link. */
    await db.schema.alterTable('ris_order_study').addColumn('identity_mismatch', 'text').execute();
    /** null: a status transition; else the finding this entry records (identity-mismatch). */
    await db.schema.alterTable('ris_order_event').addColumn('flag', 'text').execute();
  },
};
