/**
 * Dose alerts on the quality notifier (src/quality/notifier.ts): what a notification of an alert says. Each new
 * alert is told to every destination taking `dose-alert` (`quality.notifications.webhooks`, the e-mail, and the
 * older `quality.dose.webhooks`) by a durable `quality.notify` job. Jobs of the type used before
 * (`quality.dose-alert-webhook`) that a data folder still holds are run by the same handler.
 */
import type { JobHandler } from '../../jobs/job-runner.ts';
import type { NotificationContent, NotifyPayload } from '../notifier.ts';
import type { DoseAlertRecord, SqlDoseStore } from './sql-dose-store.ts';

/** The job type of dose alert webhooks before the shared notifier; only run, no longer queued. */
export const DOSE_ALERT_WEBHOOK_JOB = 'quality.dose-alert-webhook';

export interface DoseAlertWebhookPayload {
  alertId: number;
  destination: string;
}

/** The body a webhook receives. */
export function alertNotificationBody(alert: DoseAlertRecord): Record<string, unknown> {
  return {
    type: 'dose-alert', id: alert.id, kind: alert.kind, quantity: alert.quantity, value: alert.value, unit: alert.unit, threshold: alert.threshold,
    message: alert.message, studyInstanceUid: alert.studyInstanceUid, modality: alert.modality, stationName: alert.stationName, studyDate: alert.studyDate,
    referenceLevelId: alert.referenceLevelId, createdAt: alert.createdAt,
  };
}

/** The notifier's reader of dose alerts. */
export function doseAlertContent(store: SqlDoseStore): (id: number) => Promise<NotificationContent | null> {
  return async (id) => {
    const alert = await store.alert(id);
    if (!alert) return null;
    return {
      body: alertNotificationBody(alert),
      title: `[Atrium] dose alert: ${alert.modality} ${alert.quantity} ${alert.value} ${alert.unit} (threshold ${alert.threshold})`,
      text: `${alert.message}\n\nStudy Instance UID: ${alert.studyInstanceUid}\nModality: ${alert.modality}\nStation: ${alert.stationName ?? '-'}\nStudy date: ${alert.studyDate ?? '-'}\n`
        + `Alert ${alert.id}, raised ${alert.createdAt}. Acknowledge it on the Dose page.\n`,
    };
  };
}

/** Runs a job of the old type as the notifier's job of that alert and destination. */
export function legacyDoseAlertWebhookJob(notify: JobHandler<NotifyPayload>): JobHandler<DoseAlertWebhookPayload> {
  return async (job, context) => await notify({ ...job, payload: { subjectType: 'dose-alert', subjectId: job.payload.alertId, destination: job.payload.destination } }, context);
}
