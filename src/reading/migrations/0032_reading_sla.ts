import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The seed's report turnaround table (Step 5 of the imaging informatics checklist), one row per priority and
 * modality code. Kept in this file, not imported, so the migration stays what it was when released.
 */
const SEED: readonly [priority: string, modalities: string[], minutes: number, warningMinutes: number | null][] = [
  ['stat', ['CT', 'MR', 'CR', 'DX', 'RF', 'XA', 'MG', 'US'], 30, null], ['stat', ['NM', 'PT'], 60, null],
  ['urgent', ['CT', 'MR', 'CR', 'DX', 'RF', 'XA', 'MG', 'US'], 120, null], ['urgent', ['NM', 'PT'], 240, null],
  ['routine', ['CT', 'MR', 'CR', 'DX', 'RF', 'XA', 'MG', 'US'], 1440, null], ['routine', ['NM', 'PT'], 2880, null],
  ['screening', ['CT', 'MR'], 4320, 2880],
];

/**
 * The SLA table as data (`reading_sla`, edited over REST), the SLA alerts (`reading_sla_alert`: one per study
 * and kind, warning or breach, `alert_key` unique so a repeated scan records none twice) and the notifications
 * handed to the Notifier (`reading_notification`: one per key and destination, with its job).
 */
export const migration: SchemaMigration = {
  name: '0032_reading_sla',
  module: 'reading',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('reading_sla'))
      /** stat | urgent | routine | screening */
      .addColumn('priority', 'text', (c) => c.notNull())
      /** A modality code, or * */
      .addColumn('modality', 'text', (c) => c.notNull())
      .addColumn('minutes', 'integer', (c) => c.notNull())
      .addColumn('warning_minutes', 'integer')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('updated_by', 'text')
      .addUniqueConstraint('reading_sla_rule', ['priority', 'modality'])
      .execute();
    const now = new Date().toISOString();
    for (const [priority, modalities, minutes, warningMinutes] of SEED) {
      for (const modality of modalities) {
        await db.insertInto('reading_sla').values({ priority, modality, minutes, warning_minutes: warningMinutes, updated_at: now, updated_by: null }).execute();
      }
    }

    await withPk(engine, db.schema.createTable('reading_sla_alert'))
      .addColumn('alert_key', 'text', (c) => c.notNull().unique())
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      .addColumn('accession_number', 'text')
      /** warning | breach */
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('priority', 'text', (c) => c.notNull())
      .addColumn('modality', 'text')
      .addColumn('sla_minutes', 'integer', (c) => c.notNull())
      .addColumn('completed_at', 'text', (c) => c.notNull())
      .addColumn('due_at', 'text', (c) => c.notNull())
      /** The scan's time that found it. */
      .addColumn('detected_at', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('reading_sla_alert_study_idx').on('reading_sla_alert').column('study_instance_uid').execute();
    await db.schema.createIndex('reading_sla_alert_detected_idx').on('reading_sla_alert').column('detected_at').execute();

    await withPk(engine, db.schema.createTable('reading_notification'))
      /** sla-alert:<id> | critical:<id> | critical-escalation:<id> */
      .addColumn('notification_key', 'text', (c) => c.notNull())
      .addColumn('destination', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      /** The message as handed over (JSON). */
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('job_id', 'bigint')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('reading_notification_once', ['notification_key', 'destination'])
      .execute();
  },
};
