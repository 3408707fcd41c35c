/**
 * The one notification path of the quality module (docs/integrity.md "Notifications", docs/dose.md): dose
 * alerts and integrity findings are told to every configured destination that takes their subject — webhooks
 * (an HTTP POST of the JSON body) and e-mail through the site's SMTP server (nodemailer) — each by a durable
 * `quality.notify` job per (subject, destination), retried with the queue's backoff. A row per (subject,
 * destination) (`quality_notification`, migration 0024) keeps a check run again, or an event redelivered, from
 * queueing twice.
 *
 * Retries: a webhook that does not answer, times out, or answers 408, 429 or 5xx is tried again; another 4xx
 * fails the job at once. An SMTP server that cannot be reached or answers 4xx is tried again; a 5xx answer
 * (a refused recipient, a refused sender) fails the job at once.
 */
import nodemailer from 'nodemailer';
import type { Kysely } from 'kysely';
import type { Database } from '../database/database.ts';
import type { JobHandler } from '../jobs/job-runner.ts';
import type { JobQueue } from '../ports/job-queue.ts';
import type { NotificationSettings, NotificationSubject, QualityEmail, QualitySettings, QualityWebhook } from './config.ts';

export const QUALITY_NOTIFY_JOB = 'quality.notify';

export interface NotifyPayload {
  subjectType: NotificationSubject;
  subjectId: number;
  destination: string;
}

/** What a notification says about its subject: the JSON body of a webhook, the subject line and text of an e-mail. */
export interface NotificationContent {
  body: Record<string, unknown>;
  title: string;
  text: string;
}

/** Reads a subject for its notification (null: it no longer exists). */
export type SubjectReader = (id: number) => Promise<NotificationContent | null>;

type Destination = { channel: 'webhook'; webhook: QualityWebhook } | { channel: 'email'; email: QualityEmail };

/** The destinations configured, `quality.dose.webhooks` included (dose alerts only: where the dose page's first destinations were set). */
export function destinationsOf(settings: QualitySettings): Destination[] {
  const out: Destination[] = settings.notifications.webhooks.map((webhook) => ({ channel: 'webhook' as const, webhook }));
  for (const w of settings.dose.webhooks) if (!out.some((d) => d.channel === 'webhook' && d.webhook.name === w.name)) out.push({ channel: 'webhook', webhook: { ...w, subjects: ['dose-alert'] } });
  if (settings.notifications.email) out.push({ channel: 'email', email: settings.notifications.email });
  return out;
}

const nameOf = (d: Destination) => (d.channel === 'webhook' ? d.webhook.name : d.email.name);
const subjectsOf = (d: Destination) => (d.channel === 'webhook' ? d.webhook.subjects : d.email.subjects);
const attemptsOf = (d: Destination) => (d.channel === 'webhook' ? d.webhook.maxAttempts : d.email.maxAttempts);

function permanent(message: string): Error {
  return Object.assign(new Error(message), { retryable: false });
}

export class QualityNotifier {
  readonly #db: Kysely<any>;
  readonly #jobs: JobQueue;
  readonly #settings: () => QualitySettings;

  constructor(database: Database, jobs: JobQueue, settings: () => QualitySettings) {
    this.#db = database.kysely<any>();
    this.#jobs = jobs;
    this.#settings = settings;
  }

  /** Queues one job per (subject, destination taking `subjectType`) not queued before; returns how many. */
  async notify(subjectType: NotificationSubject, subjectIds: readonly number[], now = new Date()): Promise<number> {
    const destinations = destinationsOf(this.#settings()).filter((d) => subjectsOf(d).includes(subjectType));
    let queued = 0;
    for (const subjectId of subjectIds) {
      for (const d of destinations) {
        const destination = nameOf(d);
        await this.#db.insertInto('quality_notification').values({ subject_type: subjectType, subject_id: subjectId, destination, channel: d.channel, job_id: null, created_at: now.toISOString() })
          .onConflict((oc) => oc.columns(['subject_type', 'subject_id', 'destination']).doNothing()).execute();
        const row = await this.#db.selectFrom('quality_notification').select(['pk', 'job_id'])
          .where('subject_type', '=', subjectType).where('subject_id', '=', subjectId).where('destination', '=', destination).executeTakeFirstOrThrow();
        if (row.job_id !== null) continue;
        const payload: NotifyPayload = { subjectType, subjectId, destination };
        const job = await this.#jobs.enqueue(QUALITY_NOTIFY_JOB, payload, { dedupeKey: `${QUALITY_NOTIFY_JOB}:${subjectType}:${subjectId}:${destination}`, maxAttempts: attemptsOf(d) });
        await this.#db.updateTable('quality_notification').set({ job_id: job.id }).where('pk', '=', row.pk).execute();
        queued++;
      }
    }
    return queued;
  }

  async notificationsOf(subjectType: NotificationSubject, subjectId: number): Promise<{ destination: string; channel: string; jobId: number | null }[]> {
    const rows = await this.#db.selectFrom('quality_notification').select(['destination', 'channel', 'job_id'])
      .where('subject_type', '=', subjectType).where('subject_id', '=', subjectId).orderBy('pk').execute();
    return rows.map((r: any) => ({ destination: r.destination, channel: r.channel, jobId: r.job_id === null ? null : Number(r.job_id) }));
  }
}

async function postWebhook(webhook: QualityWebhook, key: string, content: NotificationContent, signal: AbortSignal): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(webhook.url, {
      method: 'POST', signal: AbortSignal.any([signal, AbortSignal.timeout(webhook.timeoutSeconds * 1000)]), redirect: 'error',
      // The same key on every attempt: a receiver that saw an attempt whose answer was lost can drop the repeat.
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(content.body),
    });
  } catch (error) {
    throw new Error(`${webhook.name} (${webhook.url}): ${(error as Error).message}`);
  }
  await response.body?.cancel().catch(() => {});
  if (response.ok) return { destination: webhook.name, status: response.status };
  const retry = response.status === 408 || response.status === 429 || response.status >= 500;
  const message = `${webhook.name} answered HTTP ${response.status}`;
  throw retry ? new Error(message) : permanent(message);
}

async function sendEmail(email: QualityEmail, key: string, content: NotificationContent): Promise<unknown> {
  const transport = nodemailer.createTransport({
    host: email.host, port: email.port, secure: email.secure, requireTLS: email.requireTls,
    ...(email.user ? { auth: { user: email.user, pass: email.password ?? '' } } : {}),
    connectionTimeout: email.timeoutSeconds * 1000, greetingTimeout: email.timeoutSeconds * 1000, socketTimeout: email.timeoutSeconds * 1000,
  });
  try {
    const info = await transport.sendMail({
      from: email.from, to: email.to, subject: content.title, text: content.text,
      headers: { 'X-Atrium-Notification': key },
      // Also a JSON part, for a mail rule or a ticketing system that reads it.
      attachments: [{ filename: 'notification.json', content: JSON.stringify(content.body, null, 2), contentType: 'application/json' }],
    });
    return { destination: email.name, messageId: info.messageId, accepted: info.accepted };
  } catch (error) {
    const code = (error as { responseCode?: number }).responseCode;
    const message = `${email.name} (smtp ${email.host}:${email.port}): ${(error as Error).message}`;
    throw code !== undefined && code >= 500 ? permanent(message) : new Error(message);
  } finally {
    transport.close();
  }
}

export function qualityNotifyJob(deps: { settings: () => QualitySettings; readers: Readonly<Record<NotificationSubject, SubjectReader>> }): JobHandler<NotifyPayload> {
  return async (job, context) => {
    const { subjectType, subjectId, destination: name } = job.payload;
    const destination = destinationsOf(deps.settings()).find((d) => nameOf(d) === name);
    if (!destination) throw permanent(`no quality notification destination "${name}" is configured (quality.notifications)`);
    const content = await deps.readers[subjectType](subjectId);
    if (!content) throw permanent(`${subjectType} ${subjectId} no longer exists`);
    const key = `atrium-${subjectType}-${subjectId}-${name}`;
    return destination.channel === 'webhook' ? await postWebhook(destination.webhook, key, content, context.signal) : await sendEmail(destination.email, key, content);
  };
}

export type { NotificationSettings };
