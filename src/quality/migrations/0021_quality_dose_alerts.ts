import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The examples seeded (docs/dose.md says where each comes from). Kept in this file, not imported, so the
 * migration stays what it was when released whatever later code ships as defaults.
 */
const EXAMPLE_REFERENCE_LEVELS: readonly {
  modality: string; quantity: string; protocol?: string; procedureCode?: string; bodyRegion?: string; ageBand?: string;
  breastThicknessMinMm?: number; breastThicknessMaxMm?: number; value: number; unit: string; source: string;
}[] = [
  // ACR Dose Index Registry 75th percentiles (Kanal et al., Radiology 2017;284:120-133), adult.
  { modality: 'CT', quantity: 'ctdivol', bodyRegion: 'Head', ageBand: 'adult', value: 57, unit: 'mGy', source: 'example: ACR DIR 75th percentile, adult head (Kanal et al. 2017)' },
  { modality: 'CT', quantity: 'dlp-total', bodyRegion: 'Head', ageBand: 'adult', value: 1011, unit: 'mGy.cm', source: 'example: ACR DIR 75th percentile, adult head (Kanal et al. 2017)' },
  { modality: 'CT', quantity: 'ctdivol', bodyRegion: 'Chest', ageBand: 'adult', value: 12, unit: 'mGy', source: 'example: ACR DIR 75th percentile, adult chest (Kanal et al. 2017)' },
  { modality: 'CT', quantity: 'dlp-total', bodyRegion: 'Chest', ageBand: 'adult', value: 443, unit: 'mGy.cm', source: 'example: ACR DIR 75th percentile, adult chest (Kanal et al. 2017)' },
  { modality: 'CT', quantity: 'ctdivol', bodyRegion: 'Abdomen', ageBand: 'adult', value: 16, unit: 'mGy', source: 'example: ACR DIR 75th percentile, adult abdomen-pelvis (Kanal et al. 2017)' },
  { modality: 'CT', quantity: 'dlp-total', bodyRegion: 'Abdomen', ageBand: 'adult', value: 781, unit: 'mGy.cm', source: 'example: ACR DIR 75th percentile, adult abdomen-pelvis (Kanal et al. 2017)' },
  // UK national DRL for an adult chest PA radiograph (Public Health England / UKHSA national DRLs).
  { modality: 'DX', quantity: 'dap-total', bodyRegion: 'Chest', ageBand: 'adult', value: 0.1, unit: 'Gy.cm2', source: 'example: UK national DRL, adult chest PA radiograph' },
  // European Guidelines for quality assurance in breast cancer screening and diagnosis (4th ed., 2006):
  // acceptable mean glandular dose 2.5 mGy for 4.5 cm PMMA, i.e. a 53 mm equivalent breast.
  { modality: 'MG', quantity: 'agd', breastThicknessMinMm: 45, breastThicknessMaxMm: 60, value: 2.5, unit: 'mGy', source: 'example: European Guidelines (2006) acceptable level, 4.5 cm PMMA / 53 mm breast' },
];

/**
 * Dose reference levels as data (`dose_reference_level`, seeded with published values marked as examples),
 * dose alerts (`dose_alert`: a study over its DRL or a CT event over the CTDIvol alert value; `alert_key`
 * keeps a redelivered event from raising one twice) and the webhook notifications queued for each alert
 * (`dose_alert_notification`, one per alert and destination, with its job).
 */
export const migration: SchemaMigration = {
  name: '0021_quality_dose_alerts',
  module: 'quality',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('dose_reference_level'))
      .addColumn('modality', 'text', (c) => c.notNull())
      /** dlp-total | ctdivol | dap-total | dose-rp-total | fluoro-time-total | agd */
      .addColumn('quantity', 'text', (c) => c.notNull())
      /** Matched against the events' Acquisition Protocol (case-insensitive, whole text); null: any. */
      .addColumn('protocol', 'text')
      /** Matched against the SR's Procedure Code Sequence code value; null: any. */
      .addColumn('procedure_code', 'text')
      /** Matched against the events' Target Region (code value or meaning, case-insensitive); null: any. */
      .addColumn('body_region', 'text')
      /** adult | 0-1y | 1-5y | 5-10y | 10-15y | 15-18y; null: any. */
      .addColumn('age_band', 'text')
      /** Mammography: the compressed breast thickness band in mm, [min, max). */
      .addColumn('breast_thickness_min_mm', 'double precision')
      .addColumn('breast_thickness_max_mm', 'double precision')
      .addColumn('value', 'double precision', (c) => c.notNull())
      .addColumn('unit', 'text', (c) => c.notNull())
      /** Where the value comes from. */
      .addColumn('source', 'text', (c) => c.notNull())
      /** 1: a published value shipped as an example, to be replaced by the site's own. */
      .addColumn('example', 'integer', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('updated_by', 'text')
      .execute();

    await withPk(engine, db.schema.createTable('dose_alert'))
      .addColumn('alert_key', 'text', (c) => c.notNull().unique())
      .addColumn('report_pk', 'bigint', (c) => c.notNull().references('dose_report.pk').onDelete('cascade'))
      .addColumn('event_pk', 'bigint')
      .addColumn('reference_level_pk', 'bigint')
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      /** drl-exceeded | ctdivol-alert */
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('quantity', 'text', (c) => c.notNull())
      .addColumn('value', 'double precision', (c) => c.notNull())
      .addColumn('unit', 'text', (c) => c.notNull())
      /** The level compared with (the DRL times the multiple, or the alert value). */
      .addColumn('threshold', 'double precision', (c) => c.notNull())
      .addColumn('message', 'text', (c) => c.notNull())
      /** open | acknowledged */
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('acknowledged_at', 'text')
      .addColumn('acknowledged_by', 'text')
      .execute();
    await db.schema.createIndex('dose_alert_study_idx').on('dose_alert').column('study_instance_uid').execute();

    await withPk(engine, db.schema.createTable('dose_alert_notification'))
      .addColumn('alert_pk', 'bigint', (c) => c.notNull().references('dose_alert.pk').onDelete('cascade'))
      .addColumn('destination', 'text', (c) => c.notNull())
      .addColumn('job_id', 'bigint')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('dose_alert_notification_once', ['alert_pk', 'destination'])
      .execute();

    const now = new Date().toISOString();
    for (const level of EXAMPLE_REFERENCE_LEVELS) {
      await db.insertInto('dose_reference_level').values({
        modality: level.modality, quantity: level.quantity, protocol: level.protocol ?? null, procedure_code: level.procedureCode ?? null,
        body_region: level.bodyRegion ?? null, age_band: level.ageBand ?? null, breast_thickness_min_mm: level.breastThicknessMinMm ?? null,
        breast_thickness_max_mm: level.breastThicknessMaxMm ?? null, value: level.value, unit: level.unit, source: level.source, example: 1,
        updated_at: now, updated_by: null,
      }).execute();
    }
  },
};
