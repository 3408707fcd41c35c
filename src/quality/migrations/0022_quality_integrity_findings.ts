import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Integrity findings (src/quality/integrity/, docs/integrity.md): one row per finding of a check, with the
 * objects involved, the evidence (JSON: the attributes that differ and both values), and its state.
 * `active_key` (`<kind>|<subject>`) is set while the finding is open, acknowledged or marked a false
 * positive and cleared when it is resolved: the unique index keeps one active finding per (kind, subject),
 * so a check that runs again (an event redelivered, a sweep on another node) never adds a second.
 */
export const migration: SchemaMigration = {
  name: '0022_quality_integrity_findings',
  module: 'quality',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('integrity_finding'))
      .addColumn('kind', 'text', (c) => c.notNull())
      /** What the finding is about, unique per kind while active: a study UID, a series UID, an accession number... */
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('active_key', 'text', (c) => c.unique())
      /** critical | major | minor */
      .addColumn('severity', 'text', (c) => c.notNull())
      /** open | acknowledged | resolved | false-positive */
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('summary', 'text', (c) => c.notNull())
      .addColumn('study_instance_uid', 'text')
      .addColumn('series_instance_uid', 'text')
      .addColumn('sop_instance_uid', 'text')
      .addColumn('accession_number', 'text')
      .addColumn('patient_id', 'text')
      /** JSON: the other studies, patients, series, instances or quarantine entries involved. */
      .addColumn('objects', 'text', (c) => c.notNull())
      /** JSON: [{ attribute, expected, actual }] or the check's own facts. */
      .addColumn('evidence', 'text', (c) => c.notNull())
      .addColumn('detected_at', 'text', (c) => c.notNull())
      .addColumn('last_detected_at', 'text', (c) => c.notNull())
      /** event:<type> | sweep:<id> | sample... what found it first. */
      .addColumn('detected_by', 'text', (c) => c.notNull())
      .addColumn('state_changed_at', 'text')
      .addColumn('state_changed_by', 'text')
      /** How it was resolved: a note, "no longer detected", "by correction #N". */
      .addColumn('resolution', 'text')
      .addColumn('correction_id', 'bigint')
      .execute();
    await db.schema.createIndex('integrity_finding_state_idx').on('integrity_finding').columns(['state', 'kind', 'severity']).execute();
    await db.schema.createIndex('integrity_finding_study_idx').on('integrity_finding').column('study_instance_uid').execute();
    await db.schema.createIndex('integrity_finding_accession_idx').on('integrity_finding').column('accession_number').execute();
  },
};
