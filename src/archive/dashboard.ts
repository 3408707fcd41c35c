import type { BlobStore } from '../ports/blob-store.ts';
import type { EventOutbox } from '../ports/event-outbox.ts';
import type { IndexStore, ModalityTotals, ReceivedDay } from '../ports/index-store.ts';
import { JOB_STATES, type JobQueue, type JobState } from '../ports/job-queue.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const MINUTE_MS = 60 * 1000;
/** The ingest chart: the last hour, minute by minute. */
const INGEST_MINUTES = 60;
const RECENT_FAILURES = 5;

export type HealthStatus = 'ok' | 'degraded' | 'down';

export interface HealthCheck {
  name: 'index' | 'blobs' | 'jobs' | 'events';
  status: HealthStatus;
  detail: string;
}

/** What an operations console shows on its first page (GET /api/dashboard). */
export interface Dashboard {
  generatedAt: string;
  /** The last `days` UTC days, today last, every day present (zeros when nothing was received). */
  days: ReceivedDay[];
  modalities: ModalityTotals[];
  storage: {
    bytes: number; instances: number; series: number; studies: number; patients: number;
    /** The blob store's engine: 'fs' or 's3'. */
    blobs: string;
    /** Bytes stored at the end of each of `days` (of the instances stored now: deletions are not replayed). */
    growth: { date: string; bytes: number }[];
  };
  ingest: {
    /** Instances received in the last 60 s. */
    lastMinute: number;
    /** Instances received in the last 60 min. */
    lastHour: number;
    /** The last 60 minutes, the current one last, each present. */
    perMinute: { minute: string; instances: number }[];
  };
  jobs: {
    byState: Record<JobState, number>;
    recentFailures: { id: number; type: string; error: string | null; updatedAt: string }[];
  };
  quarantine: { total: number };
  events: {
    /** Undelivered: events not routed yet, and deliveries not done (GET /api/events/backlog). */
    backlog: number;
    /** Deliveries that failed at least once and wait for their next attempt (GET /api/events/stuck). */
    stuck: number;
  };
  health: HealthCheck[];
}

export interface DashboardDeps {
  index: IndexStore;
  blobs: BlobStore;
  jobs: JobQueue;
  events: EventOutbox;
  clock?: () => Date;
}

/**
 * The archive at a glance: what arrived (per day, per minute), what is held (per modality, in total, growth),
 * what is stuck (failed jobs, quarantine, event deliveries), and whether each engine answers. Every number is
 * a query of the index (queries in SqlIndexStore, the job queue and the outbox); nothing is kept here.
 */
export class DashboardService {
  readonly #index: IndexStore;
  readonly #blobs: BlobStore;
  readonly #jobs: JobQueue;
  readonly #events: EventOutbox;
  readonly #clock: () => Date;

  constructor(deps: DashboardDeps) {
    this.#index = deps.index;
    this.#blobs = deps.blobs;
    this.#jobs = deps.jobs;
    this.#events = deps.events;
    this.#clock = deps.clock ?? (() => new Date());
  }

  /** `days`: how many UTC days, today included (the caller checks the range). */
  async dashboard(days: number): Promise<Dashboard> {
    const now = this.#clock();
    const today = Math.floor(now.getTime() / DAY_MS) * DAY_MS;
    const first = today - (days - 1) * DAY_MS;
    const end = today + DAY_MS;
    const thisMinute = Math.floor(now.getTime() / MINUTE_MS) * MINUTE_MS;
    const firstMinute = thisMinute - (INGEST_MINUTES - 1) * MINUTE_MS;
    const iso = (ms: number) => new Date(ms).toISOString();

    // Each check on its own: an engine that does not answer is reported as down with why (the blob store's
    // numbers do not depend on it; the others are index queries, and fail the page with it).
    const health = await this.health();
    const [received, before, perMinute, lastMinute, lastHour, modalities, statistics, byState, failures, backlog, stuck] = await Promise.all([
      this.#index.receivedPerDay(iso(first), iso(end)),
      this.#index.bytesReceivedBefore(iso(first)),
      this.#index.receivedPerMinute(iso(firstMinute), iso(thisMinute + MINUTE_MS)),
      this.#index.countReceived(iso(now.getTime() - MINUTE_MS), iso(now.getTime() + 1)),
      this.#index.countReceived(iso(now.getTime() - 60 * MINUTE_MS), iso(now.getTime() + 1)),
      this.#index.modalityTotals(),
      this.#index.statistics(),
      this.#jobs.countByState(),
      this.#jobs.recentlyFailed(RECENT_FAILURES),
      this.#events.backlog(),
      this.#events.stuck(1, 0),
    ]);

    const byDay = new Map(received.map((d) => [d.date, d]));
    const dayList: ReceivedDay[] = [];
    const growth: { date: string; bytes: number }[] = [];
    let cumulative = before;
    for (let t = first; t < end; t += DAY_MS) {
      const date = iso(t).slice(0, 10);
      const day = byDay.get(date) ?? { date, studies: 0, instances: 0, bytes: 0 };
      dayList.push(day);
      cumulative += day.bytes;
      growth.push({ date, bytes: cumulative });
    }
    const byMinute = new Map(perMinute.map((m) => [m.minute, m.instances]));
    const minutes = Array.from({ length: INGEST_MINUTES }, (_, i) => {
      const minute = iso(firstMinute + i * MINUTE_MS);
      return { minute, instances: byMinute.get(minute.slice(0, 16)) ?? 0 };
    });

    return {
      generatedAt: now.toISOString(),
      days: dayList,
      modalities,
      storage: {
        bytes: statistics.sizeBytes, instances: statistics.instances, series: statistics.series, studies: statistics.studies,
        patients: statistics.patients, blobs: this.#blobs.kind, growth,
      },
      ingest: { lastMinute, lastHour, perMinute: minutes },
      jobs: {
        byState: Object.fromEntries(JOB_STATES.map((s) => [s, byState[s] ?? 0])) as Record<JobState, number>,
        recentFailures: failures.map((j) => ({ id: j.id, type: j.type, error: j.lastError, updatedAt: j.updatedAt })),
      },
      quarantine: { total: statistics.quarantined },
      events: { backlog: backlog.unrouted + [...backlog.pending.values()].reduce((a, b) => a + b, 0), stuck: stuck.total },
      health,
    };
  }

  /** Whether each engine answers, and whether anything waits on an operator (failed jobs, failing deliveries). */
  async health(): Promise<HealthCheck[]> {
    const check = async (name: HealthCheck['name'], run: () => Promise<{ status: HealthStatus; detail: string }>): Promise<HealthCheck> => {
      try {
        return { name, ...(await run()) };
      } catch (error) {
        return { name, status: 'down', detail: (error as Error).message || String(error) };
      }
    };
    return await Promise.all([
      check('index', async () => {
        await this.#index.ping();
        return { status: 'ok', detail: this.#index.kind };
      }),
      check('blobs', async () => ({ status: 'ok', detail: `${this.#blobs.kind}: ${await this.#blobs.probe()}` })),
      check('jobs', async () => {
        const counts = await this.#jobs.countByState();
        return counts.failed > 0
          ? { status: 'degraded', detail: `${counts.failed} failed job${counts.failed === 1 ? '' : 's'} (retry or cancel them: GET /api/jobs?state=failed)` }
          : { status: 'ok', detail: `${counts.queued} queued, ${counts.running} running` };
      }),
      check('events', async () => {
        const { total } = await this.#events.stuck(1, 0);
        return total > 0
          ? { status: 'degraded', detail: `${total} event deliver${total === 1 ? 'y fails' : 'ies fail'} and wait for their next attempt (GET /api/events/stuck)` }
          : { status: 'ok', detail: 'no failing deliveries' };
      }),
    ]);
  }
}
