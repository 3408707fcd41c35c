import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Modality Performed Procedure Steps (src/ris/mpps-scp.ts, PS3.4 F.7): one row per MPPS SOP Instance with
 * its state, the attributes lists and the REST API filter on, the scheduled steps it named and whether an
 * order matched them, and the full data set as DICOM JSON (the dose attributes are read from it later).
 */
export const migration: SchemaMigration = {
  name: '0012_ris_mpps',
  module: 'ris',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('ris_mpps'))
      .addColumn('sop_instance_uid', 'text', (c) => c.notNull().unique())
      /** IN PROGRESS | COMPLETED | DISCONTINUED */
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('pps_id', 'text')
      .addColumn('station_ae_title', 'text')
      .addColumn('calling_ae_title', 'text')
      .addColumn('modality', 'text')
      .addColumn('patient_id', 'text')
      .addColumn('patient_name', 'text')
      /** Of the first Scheduled Step Attributes item (the others are in scheduled_steps). */
      .addColumn('accession_number', 'text')
      .addColumn('study_instance_uid', 'text')
      .addColumn('start_date', 'text')
      .addColumn('start_time', 'text')
      .addColumn('end_date', 'text')
      .addColumn('end_time', 'text')
      /** JSON [{ accessionNumber, studyInstanceUid, requestedProcedureId, stepId, order (accession) | null, note }]. */
      .addColumn('scheduled_steps', 'text', (c) => c.notNull())
      /** 1 when at least one scheduled step named an order; 0: unscheduled (kept and listed, never an error). */
      .addColumn('matched', 'integer', (c) => c.notNull())
      .addColumn('discontinuation_reason', 'text')
      /** The MPPS data set as DICOM JSON, N-SETs applied. */
      .addColumn('dataset', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ris_mpps_status_idx').on('ris_mpps').columns(['status', 'pk']).execute();
    await db.schema.createIndex('ris_mpps_accession_idx').on('ris_mpps').column('accession_number').execute();
    await db.schema.createIndex('ris_mpps_study_idx').on('ris_mpps').column('study_instance_uid').execute();
  },
};
