import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The one notification path of the quality module (src/quality/notifier.ts): one row per (subject, destination),
 * with its job, for dose alerts and integrity findings alike. The dose alerts' own table (0021,
 * dose_alert_notification) is copied in and left as it was, no longer written.
 */
export const migration: SchemaMigration = {
  name: '0024_quality_notifications',
  module: 'quality',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('quality_notification'))
      /** dose-alert | integrity-finding */
      .addColumn('subject_type', 'text', (c) => c.notNull())
      .addColumn('subject_id', 'bigint', (c) => c.notNull())
      /** A configured destination's name (a webhook's, the e-mail's). */
      .addColumn('destination', 'text', (c) => c.notNull())
      /** webhook | email */
      .addColumn('channel', 'text', (c) => c.notNull())
      .addColumn('job_id', 'bigint')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('quality_notification_once', ['subject_type', 'subject_id', 'destination'])
      .execute();
    const old = await db.selectFrom('dose_alert_notification').select(['alert_pk', 'destination', 'job_id', 'created_at']).execute();
    for (const row of old) {
      await db.insertInto('quality_notification').values({
        subject_type: 'dose-alert', subject_id: row.alert_pk, destination: row.destination, channel: 'webhook', job_id: row.job_id, created_at: row.created_at,
      }).execute();
    }
  },
};
