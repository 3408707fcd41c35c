/**
 * Dose alert notifications: each new alert is POSTed as JSON to every configured webhook
 * (`quality.dose.webhooks`) by a durable `quality.dose-alert-webhook` job, retried with the queue's backoff
 * while the destination does not answer, times out, or answers 408, 429 or 5xx; another 4xx fails the job
 * at once (the request will not become right by sending it again).
 */
import type { JobHandler } from '../../jobs/job-runner.ts';
import type { JobQueue } from '../../ports/job-queue.ts';
import type { DoseWebhook } from '../config.ts';
import type { DoseAlertRecord, SqlDoseStore } from './sql-dose-store.ts';

export const DOSE_ALERT_WEBHOOK_JOB = 'quality.dose-alert-webhook';

export interface DoseAlertWebhookPayload {
  alertId: number;
  destination: string;
}

/** One job per (alert, destination); a notification row keyed on both keeps a redelivered event from queueing twice. */
export async function queueAlertNotifications(deps: { store: SqlDoseStore; jobs: JobQueue; webhooks: readonly DoseWebhook[] }, alerts: readonly DoseAlertRecord[], now: Date): Promise<number> {
  let queued = 0;
  for (const alert of alerts) {
    for (const webhook of deps.webhooks) {
      const row = await deps.store.notificationOf(alert.id, webhook.name, now);
      if (row.jobId !== null) continue;
      const payload: DoseAlertWebhookPayload = { alertId: alert.id, destination: webhook.name };
      const job = await deps.jobs.enqueue(DOSE_ALERT_WEBHOOK_JOB, payload, { dedupeKey: `${DOSE_ALERT_WEBHOOK_JOB}:${alert.id}:${webhook.name}`, maxAttempts: webhook.maxAttempts });
      await deps.store.setNotificationJob(row.id, job.id);
      queued++;
    }
  }
  return queued;
}

function permanent(message: string): Error {
  return Object.assign(new Error(message), { retryable: false });
}

/** The body a webhook receives. */
export function alertNotificationBody(alert: DoseAlertRecord): Record<string, unknown> {
  return {
    type: 'dose-alert', id: alert.id, kind: alert.kind, quantity: alert.quantity, value: alert.value, unit: alert.unit, threshold: alert.threshold,
    message: alert.message, studyInstanceUid: alert.studyInstanceUid, modality: alert.modality, stationName: alert.stationName, studyDate: alert.studyDate,
    referenceLevelId: alert.referenceLevelId, createdAt: alert.createdAt,
  };
}

export function doseAlertWebhookJob(deps: { store: SqlDoseStore; webhooks: () => readonly DoseWebhook[] }): JobHandler<DoseAlertWebhookPayload> {
  return async (job, context) => {
    const webhook = deps.webhooks().find((w) => w.name === job.payload.destination);
    if (!webhook) throw permanent(`no dose webhook "${job.payload.destination}" is configured (quality.dose.webhooks)`);
    const alert = await deps.store.alert(job.payload.alertId);
    if (!alert) throw permanent(`dose alert ${job.payload.alertId} no longer exists`);
    const signal = AbortSignal.any([context.signal, AbortSignal.timeout(webhook.timeoutSeconds * 1000)]);
    let response: Response;
    try {
      response = await fetch(webhook.url, {
        method: 'POST', signal, redirect: 'error',
        // The same key on every attempt: a receiver that saw an attempt whose answer was lost can drop the repeat.
        headers: { 'content-type': 'application/json', 'idempotency-key': `atrium-dose-alert-${alert.id}-${webhook.name}` },
        body: JSON.stringify(alertNotificationBody(alert)),
      });
    } catch (error) {
      throw new Error(`${webhook.name} (${webhook.url}): ${(error as Error).message}`);
    }
    await response.body?.cancel().catch(() => {});
    if (response.ok) return { destination: webhook.name, status: response.status };
    const retry = response.status === 408 || response.status === 429 || response.status >= 500;
    const message = `${webhook.name} answered HTTP ${response.status}`;
    throw retry ? new Error(message) : permanent(message);
  };
}
