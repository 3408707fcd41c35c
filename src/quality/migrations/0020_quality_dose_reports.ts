import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Radiation dose reports extracted from stored dose SRs (src/quality/dose/): one `dose_report` per SR
 * (unique SOP Instance UID: what makes a redelivered InstanceStored extract once) with the accumulated
 * values in canonical units and every accumulated NUM as the SR gave it (`totals_json`), and one
 * `dose_event` per irradiation event with its parameters and every NUM of the event (`measurements_json`).
 */
export const migration: SchemaMigration = {
  name: '0020_quality_dose_reports',
  module: 'quality',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('dose_report'))
      .addColumn('sop_instance_uid', 'text', (c) => c.notNull().unique())
      .addColumn('sop_class_uid', 'text', (c) => c.notNull())
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      .addColumn('series_instance_uid', 'text')
      .addColumn('patient_id', 'text')
      .addColumn('accession_number', 'text')
      .addColumn('template', 'text')
      /** ct | projection | mammography | fluoroscopy | radiopharmaceutical */
      .addColumn('kind', 'text', (c) => c.notNull())
      /** CT, DX, MG, RF, NM: from the report's content (the SR itself is modality SR). */
      .addColumn('modality', 'text', (c) => c.notNull())
      .addColumn('station_name', 'text')
      .addColumn('manufacturer', 'text')
      .addColumn('model', 'text')
      /** YYYY-MM-DD */
      .addColumn('study_date', 'text')
      .addColumn('study_description', 'text')
      .addColumn('procedure_code', 'text')
      .addColumn('patient_sex', 'text')
      .addColumn('patient_age_years', 'double precision')
      .addColumn('age_band', 'text', (c) => c.notNull())
      .addColumn('event_count', 'integer', (c) => c.notNull())
      .addColumn('dlp_total', 'double precision')
      .addColumn('dap_total', 'double precision')
      .addColumn('fluoro_dap_total', 'double precision')
      .addColumn('acquisition_dap_total', 'double precision')
      .addColumn('dose_rp_total', 'double precision')
      .addColumn('fluoro_time_total', 'double precision')
      .addColumn('acquisition_time_total', 'double precision')
      .addColumn('agd_total', 'double precision')
      .addColumn('entrance_dose_total', 'double precision')
      .addColumn('totals_json', 'text', (c) => c.notNull())
      /** The InstanceStored outbox id it was extracted on. */
      .addColumn('event_id', 'bigint')
      .addColumn('extracted_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('dose_report_study_idx').on('dose_report').column('study_instance_uid').execute();
    await db.schema.createIndex('dose_report_date_idx').on('dose_report').columns(['modality', 'study_date']).execute();

    await withPk(engine, db.schema.createTable('dose_event'))
      .addColumn('report_pk', 'bigint', (c) => c.notNull().references('dose_report.pk').onDelete('cascade'))
      .addColumn('sequence', 'integer', (c) => c.notNull())
      .addColumn('irradiation_event_uid', 'text')
      .addColumn('event_type', 'text')
      .addColumn('acquisition_protocol', 'text')
      .addColumn('target_region', 'text')
      .addColumn('target_region_code', 'text')
      .addColumn('anatomy', 'text')
      .addColumn('laterality', 'text')
      .addColumn('image_view', 'text')
      .addColumn('acquisition_plane', 'text')
      .addColumn('phantom_type', 'text')
      .addColumn('started_at', 'text')
      .addColumn('ctdivol', 'double precision')
      .addColumn('dlp', 'double precision')
      .addColumn('scan_length', 'double precision')
      .addColumn('kvp', 'double precision')
      .addColumn('tube_current', 'double precision')
      .addColumn('exposure_time', 'double precision')
      .addColumn('exposure', 'double precision')
      .addColumn('pitch', 'double precision')
      .addColumn('dap', 'double precision')
      .addColumn('dose_rp', 'double precision')
      .addColumn('agd', 'double precision')
      .addColumn('entrance_dose', 'double precision')
      .addColumn('compression_thickness', 'double precision')
      .addColumn('administered_activity', 'double precision')
      .addColumn('radiopharmaceutical', 'text')
      .addColumn('measurements_json', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('dose_event_report_idx').on('dose_event').column('report_pk').execute();
    await db.schema.createIndex('dose_event_protocol_idx').on('dose_event').column('acquisition_protocol').execute();
  },
};
