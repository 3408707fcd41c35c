import { sql, type Kysely, type Selectable } from 'kysely';
import type { EnqueueOptions, Job, JobQueue, JobState } from '../../ports/job-queue.ts';
import { AtriumError } from '../../errors.ts';
import type { AtriumDatabase, JobTable } from './schema.ts';
import type { Database } from '../../database/database.ts';
import type { SqlEngine } from '../../database/migration.ts';

type Db = Kysely<AtriumDatabase>;

export interface SqlJobQueueOptions {
  /** Lease of a claim or heartbeat without an explicit one. Default 60 s. */
  defaultLeaseMs?: number;
  /** maxAttempts of a job enqueued without one. Default 5. */
  defaultMaxAttempts?: number;
  /** First retry delay; doubles with each attempt. Default 5 s. */
  backoffBaseMs?: number;
  /** Longest retry delay. Default 1 h. */
  backoffMaxMs?: number;
  /** Source of the jitter, in [0, 1). Default Math.random; tests fix it. */
  random?: () => number;
}

/**
 * Delay before retry number `attempts` (1 after the first failure): base * 2^(attempts-1), capped at
 * `max`, then spread by +-20% so that jobs failing together do not all come back together (still capped).
 */
export function retryDelayMs(attempts: number, random: number, baseMs = 5_000, maxMs = 3_600_000): number {
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempts - 1, 40)));
  return Math.round(Math.min(maxMs, exponential * (0.8 + 0.4 * random)));
}

const ACTIVE: JobState[] = ['queued', 'running'];

/**
 * JobQueue over the index database (table `job`, migration 0002). Claims are one statement on
 * PostgreSQL (`UPDATE ... WHERE pk IN (SELECT ... FOR UPDATE SKIP LOCKED)`), so any number of nodes
 * claim concurrently without ever sharing a job; on SQLite (one writer) the claim runs in one
 * BEGIN IMMEDIATE transaction. Times come from the injected clock (leases, backoff, due times), so
 * tests move time instead of waiting.
 */
export class SqlJobQueue implements JobQueue {
  readonly #db: Db;
  readonly #engine: SqlEngine;
  readonly #now: () => Date;
  readonly #leaseMs: number;
  readonly #maxAttempts: number;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #random: () => number;

  constructor(database: Database, clock: () => Date = () => new Date(), options: SqlJobQueueOptions = {}) {
    const db = database.kysely<AtriumDatabase>();
    const engine = database.engine;
    this.#db = db;
    this.#engine = engine;
    this.#now = clock;
    this.#leaseMs = options.defaultLeaseMs ?? 60_000;
    this.#maxAttempts = options.defaultMaxAttempts ?? 5;
    this.#backoffBaseMs = options.backoffBaseMs ?? 5_000;
    this.#backoffMaxMs = options.backoffMaxMs ?? 3_600_000;
    this.#random = options.random ?? Math.random;
  }

  async enqueue<P>(type: string, payload: P, options: EnqueueOptions = {}): Promise<Job<P>> {
    if (!type) throw new AtriumError('invalid-input', 'a job needs a type');
    const maxAttempts = options.maxAttempts ?? this.#maxAttempts;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new AtriumError('invalid-input', `maxAttempts must be a whole number of at least 1, got ${maxAttempts}`);
    const now = this.#iso();
    const row = {
      type, payload: JSON.stringify(payload ?? null), state: 'queued', max_attempts: maxAttempts,
      run_at: (options.runAt ?? this.#now()).toISOString(), dedupe_key: options.dedupeKey ?? null,
      last_error: null, progress: null, result: null, locked_by: null, locked_until: null, created_at: now, updated_at: now,
    };
    // With a dedupe key, the partial unique index (active jobs only) decides; losing the race means
    // another enqueue of the same key just won, and that job is the answer.
    for (let attempt = 0; ; attempt++) {
      try {
        const inserted = await this.#db.insertInto('job').values(row).returningAll().executeTakeFirstOrThrow();
        return toJob(inserted) as Job<P>;
      } catch (error) {
        if (options.dedupeKey === undefined || !isUniqueViolation(error) || attempt >= 3) throw error;
        const existing = await this.#db.selectFrom('job').selectAll()
          .where('dedupe_key', '=', options.dedupeKey).where('state', 'in', ACTIVE).executeTakeFirst();
        if (existing) return toJob(existing) as Job<P>;
      }
    }
  }

  async claim(workerId: string, types: string[], options: { limit?: number; leaseMs?: number } = {}): Promise<Job[]> {
    const limit = options.limit ?? 1;
    if (types.length === 0 || limit < 1) return [];
    const now = this.#now();
    const nowIso = now.toISOString();
    const lockedUntil = new Date(now.getTime() + (options.leaseMs ?? this.#leaseMs)).toISOString();
    const postgres = this.#engine === 'postgres';
    const claim = (db: Db) => db.updateTable('job')
      .set((eb) => ({
        state: 'running', attempts: eb('attempts', '+', 1), locked_by: workerId, locked_until: lockedUntil,
        progress: null, result: null, updated_at: nowIso,
      }))
      .where('pk', 'in', (eb) => eb.selectFrom('job').select('pk')
        .where('state', '=', 'queued').where('type', 'in', types).where('run_at', '<=', nowIso)
        .orderBy('run_at').orderBy('pk').limit(limit)
        .$if(postgres, (qb) => qb.forUpdate().skipLocked()))
      .returningAll()
      .execute();
    const rows = postgres ? await claim(this.#db) : await this.#db.transaction().execute((tx) => claim(tx));
    return rows.map(toJob).sort((a, b) => (a.runAt < b.runAt ? -1 : a.runAt > b.runAt ? 1 : a.id - b.id));
  }

  async heartbeat(id: number, workerId: string, progress?: unknown, leaseMs?: number): Promise<boolean> {
    const now = this.#now();
    const result = await this.#db.updateTable('job')
      .set({
        locked_until: new Date(now.getTime() + (leaseMs ?? this.#leaseMs)).toISOString(), updated_at: now.toISOString(),
        ...(progress === undefined ? {} : { progress: JSON.stringify(progress) }),
      })
      .where('pk', '=', id).where('state', '=', 'running').where('locked_by', '=', workerId)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async complete(id: number, workerId: string, result?: unknown): Promise<void> {
    await this.#db.updateTable('job')
      .set({ state: 'succeeded', result: result === undefined ? null : JSON.stringify(result), locked_by: null, locked_until: null, updated_at: this.#iso() })
      .where('pk', '=', id).where('state', '=', 'running').where('locked_by', '=', workerId)
      .execute();
  }

  async fail(id: number, workerId: string, error: string, options: { retryable?: boolean } = {}): Promise<Job> {
    const job = await this.get(id);
    if (!job) throw new AtriumError('not-found', `no job ${id}`, { id });
    if (job.state !== 'running' || job.lockedBy !== workerId) return job;
    const now = this.#now();
    const retry = (options.retryable ?? true) && job.attempts < job.maxAttempts;
    const runAt = retry
      ? new Date(now.getTime() + retryDelayMs(job.attempts, this.#random(), this.#backoffBaseMs, this.#backoffMaxMs)).toISOString()
      : job.runAt;
    await this.#db.updateTable('job')
      .set({ state: retry ? 'queued' : 'failed', run_at: runAt, last_error: error, locked_by: null, locked_until: null, updated_at: now.toISOString() })
      .where('pk', '=', id).where('state', '=', 'running').where('locked_by', '=', workerId)
      .execute();
    return (await this.get(id))!;
  }

  async release(id: number, workerId: string): Promise<boolean> {
    const now = this.#iso();
    const result = await this.#db.updateTable('job')
      .set((eb) => ({ state: 'queued', attempts: eb('attempts', '-', 1), run_at: now, locked_by: null, locked_until: null, updated_at: now }))
      .where('pk', '=', id).where('state', '=', 'running').where('locked_by', '=', workerId)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async cancel(id: number): Promise<Job | null> {
    await this.#db.updateTable('job')
      .set({ state: 'cancelled', locked_by: null, locked_until: null, updated_at: this.#iso() })
      .where('pk', '=', id).where('state', 'in', ACTIVE)
      .execute();
    return await this.get(id);
  }

  async retry(id: number): Promise<Job | null> {
    const now = this.#iso();
    try {
      await this.#db.updateTable('job')
        .set({ state: 'queued', attempts: 0, run_at: now, locked_by: null, locked_until: null, updated_at: now })
        .where('pk', '=', id).where('state', 'in', ['failed', 'cancelled'])
        .execute();
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      throw new AtriumError('conflict', `job ${id} cannot be retried: another queued or running job has the same dedupe key`, { id }, { cause: error });
    }
    await this.#db.updateTable('job').set({ run_at: now, updated_at: now })
      .where('pk', '=', id).where('state', '=', 'queued').where('run_at', '>', now)
      .execute();
    return await this.get(id);
  }

  async get(id: number): Promise<Job | null> {
    if (!Number.isSafeInteger(id)) return null;
    const row = await this.#db.selectFrom('job').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? toJob(row) : null;
  }

  async list(filter: { state?: JobState; type?: string }, page: { limit: number; offset: number }): Promise<{ items: Job[]; total: number }> {
    let query = this.#db.selectFrom('job');
    if (filter.state) query = query.where('state', '=', filter.state);
    if (filter.type) query = query.where('type', '=', filter.type);
    const [rows, count] = await Promise.all([
      query.selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      query.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items: rows.map(toJob), total: Number(count.n) };
  }

  /** How many jobs are in each state (for metrics and the admin UI). */
  async countByState(): Promise<Record<JobState, number>> {
    const rows = await this.#db.selectFrom('job').select(['state', (eb) => eb.fn.countAll<number | string>().as('n')]).groupBy('state').execute();
    const counts: Record<JobState, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const r of rows) counts[r.state as JobState] = Number(r.n);
    return counts;
  }

  async recentlyFailed(limit: number): Promise<Job[]> {
    // updated_at is when the job became failed: a job retried and failed again comes back to the top.
    const rows = await this.#db.selectFrom('job').selectAll().where('state', '=', 'failed')
      .orderBy('updated_at', 'desc').orderBy('pk', 'desc').limit(limit).execute();
    return rows.map(toJob);
  }

  async recoverExpired(): Promise<number> {
    const now = this.#iso();
    const expired = (db: Db) => db.updateTable('job')
      .where('state', '=', 'running').where('locked_until', '<', now);
    const recover = async (db: Db) => {
      // Out of attempts: a job whose worker keeps dying is failed rather than claimed forever.
      const failed = await expired(db)
        .where((eb) => eb('attempts', '>=', eb.ref('max_attempts')))
        .set({ state: 'failed', last_error: sql<string>`'lease of ' || locked_by || ' expired with no attempts left'`, locked_by: null, locked_until: null, updated_at: now })
        .executeTakeFirst();
      const requeued = await expired(db)
        .set({ state: 'queued', run_at: now, last_error: sql<string>`'lease of ' || locked_by || ' expired (worker lost)'`, locked_by: null, locked_until: null, updated_at: now })
        .executeTakeFirst();
      return Number(failed.numUpdatedRows) + Number(requeued.numUpdatedRows);
    };
    return await this.#db.transaction().execute((tx) => recover(tx));
  }

  #iso(): string {
    return this.#now().toISOString();
  }
}

function toJob(r: Selectable<JobTable>): Job {
  return {
    id: Number(r.pk), type: r.type, payload: JSON.parse(r.payload), state: r.state as JobState, attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts), runAt: r.run_at, lastError: r.last_error,
    progress: r.progress === null ? null : JSON.parse(r.progress), result: r.result === null ? null : JSON.parse(r.result),
    createdAt: r.created_at, updatedAt: r.updated_at, lockedBy: r.locked_by, lockedUntil: r.locked_until,
  };
}

function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e?.code === '23505' || /UNIQUE constraint failed/.test(e?.message ?? '');
}
