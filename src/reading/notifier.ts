/**
 * The Notifier port: how the reading module hands an SLA alert or a critical result to whatever tells people
 * (docs/reading.md "Notifications"). The default is WebhookJobNotifier below; the quality issue's shared
 * notifier (webhook + e-mail) implements the same one method and is passed to createReading instead.
 */
import type { JobHandler } from '../jobs/job-runner.ts';
import type { JobQueue } from '../ports/job-queue.ts';
import type { ReadingWebhook } from './config.ts';
import type { SqlReadingStore } from './sql-reading-store.ts';

export interface ReadingNotification {
  kind: 'sla-warning' | 'sla-breach' | 'critical-result' | 'critical-escalation';
  /** Stable for one alert: a notifier given the same key and destination twice must deliver once. */
  key: string;
  /** A destination name (reading.webhooks by default). */
  destination: string;
  subject: string;
  body: Record<string, unknown>;
}

export interface Notifier {
  /** Durably accepts the notification (delivery may come later); idempotent on (key, destination). */
  notify(notification: ReadingNotification): Promise<void>;
}

export const READING_WEBHOOK_JOB = 'reading.notify-webhook';

function permanent(message: string): Error {
  return Object.assign(new Error(message), { retryable: false });
}

/** Records each (key, destination) once and queues one durable `reading.notify-webhook` job for it. */
export class WebhookJobNotifier implements Notifier {
  readonly #store: SqlReadingStore;
  readonly #jobs: JobQueue;
  readonly #webhooks: () => readonly ReadingWebhook[];
  readonly #clock: () => Date;

  constructor(deps: { store: SqlReadingStore; jobs: JobQueue; webhooks: () => readonly ReadingWebhook[]; clock?: () => Date }) {
    this.#store = deps.store;
    this.#jobs = deps.jobs;
    this.#webhooks = deps.webhooks;
    this.#clock = deps.clock ?? (() => new Date());
  }

  async notify(n: ReadingNotification): Promise<void> {
    const row = await this.#store.notificationOf(n.key, n.destination, n.kind, { type: n.kind, subject: n.subject, ...n.body }, this.#clock().toISOString());
    if (row.jobId !== null) return;
    const webhook = this.#webhooks().find((w) => w.name === n.destination);
    const job = await this.#jobs.enqueue(READING_WEBHOOK_JOB, { notificationId: row.id }, { dedupeKey: `${READING_WEBHOOK_JOB}:${row.id}`, maxAttempts: webhook?.maxAttempts ?? 10 });
    await this.#store.setNotificationJob(row.id, job.id);
  }
}

/** POSTs the notification's JSON to its webhook; retried on no answer, 408, 429 and 5xx, failed at once on another 4xx. */
export function readingWebhookJob(deps: { store: SqlReadingStore; webhooks: () => readonly ReadingWebhook[] }): JobHandler<{ notificationId: number }> {
  return async (job, context) => {
    const n = await deps.store.notification(job.payload.notificationId);
    if (!n) throw permanent(`reading notification ${job.payload.notificationId} no longer exists`);
    const webhook = deps.webhooks().find((w) => w.name === n.destination);
    if (!webhook) throw permanent(`no reading webhook "${n.destination}" is configured (reading.webhooks)`);
    let response: Response;
    try {
      response = await fetch(webhook.url, {
        method: 'POST', redirect: 'error', signal: AbortSignal.any([context.signal, AbortSignal.timeout(webhook.timeoutSeconds * 1000)]),
        headers: { 'content-type': 'application/json', 'idempotency-key': `atrium-reading-${n.key}-${n.destination}` },
        body: JSON.stringify(n.body),
      });
    } catch (error) {
      throw new Error(`${webhook.name} (${webhook.url}): ${(error as Error).message}`);
    }
    await response.body?.cancel().catch(() => {});
    if (response.ok) return { destination: webhook.name, status: response.status };
    const message = `${webhook.name} answered HTTP ${response.status}`;
    throw response.status === 408 || response.status === 429 || response.status >= 500 ? new Error(message) : permanent(message);
  };
}
