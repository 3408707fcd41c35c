import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Job, JobQueue } from '../ports/job-queue.ts';

export interface JobContext {
  /**
   * Renews the job's lease and records its progress (JSON). False when the job was cancelled or its
   * lease lost: the signal is then aborted and the handler should stop.
   */
  heartbeat(progress?: unknown): Promise<boolean>;
  /** Aborted when the job is cancelled, its lease is lost, or the runner stops after its grace period. */
  signal: AbortSignal;
}

export type JobHandler<P = any> = (job: Job<P>, context: JobContext) => Promise<unknown>;

export interface JobRunnerOptions {
  queue: JobQueue;
  log: Logger;
  /** Unique per runner: host, pid and a random suffix by default. */
  workerId?: string;
  /** Jobs run at once. Default 4. */
  concurrency?: number;
  /** Polling interval while idle. Default 1 s; `wake()` polls at once. */
  pollIntervalMs?: number;
  /** Lease taken with each claim and heartbeat. Default 60 s. */
  leaseMs?: number;
  /** Automatic heartbeats of a running job. Default leaseMs / 3. */
  heartbeatIntervalMs?: number;
  /** recoverExpired runs at start and then this often. Default 30 s. */
  recoverIntervalMs?: number;
  /** How long `stop()` waits for running jobs before aborting them. Default 10 s. */
  stopGraceMs?: number;
}

export type JobOutcome = 'succeeded' | 'retrying' | 'failed' | 'cancelled' | 'lost' | 'interrupted';

/**
 * Runs durable jobs: polls the queue for the types it has handlers for, runs up to `concurrency` at once,
 * keeps their leases alive, records the outcome. A handler's thrown error is retried with backoff by the
 * queue unless it carries `retryable === false`. Restart safety comes from the queue: a job whose
 * runner died is recovered when its lease expires (here at start and every `recoverIntervalMs`).
 */
export class JobRunner {
  readonly workerId: string;
  readonly #queue: JobQueue;
  readonly #log: Logger;
  readonly #handlers = new Map<string, JobHandler>();
  readonly #concurrency: number;
  readonly #pollIntervalMs: number;
  readonly #leaseMs: number;
  readonly #heartbeatIntervalMs: number;
  readonly #recoverIntervalMs: number;
  readonly #stopGraceMs: number;
  readonly #running = new Map<number, { controller: AbortController; done: Promise<void> }>();
  #started = false;
  #stopping = false;
  #timer: NodeJS.Timeout | null = null;
  #recoverTimer: NodeJS.Timeout | null = null;
  #polling: Promise<void> | null = null;
  #pollAgain = false;
  #idleWaiters: Array<() => void> = [];

  constructor(options: JobRunnerOptions) {
    this.#queue = options.queue;
    this.#log = options.log.child({ component: 'jobs' });
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.#concurrency = Math.max(1, options.concurrency ?? 4);
    this.#pollIntervalMs = options.pollIntervalMs ?? 1_000;
    this.#leaseMs = options.leaseMs ?? 60_000;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? Math.max(10, Math.floor(this.#leaseMs / 3));
    this.#recoverIntervalMs = options.recoverIntervalMs ?? 30_000;
    this.#stopGraceMs = options.stopGraceMs ?? 10_000;
  }

  register<P>(type: string, handler: JobHandler<P>): this {
    if (this.#handlers.has(type)) throw new Error(`a handler for job type "${type}" is already registered`);
    this.#handlers.set(type, handler as JobHandler);
    return this;
  }

  /** Registers a table of handlers (a module's `jobHandlers`): job type -> handler. */
  registerAll(handlers: Readonly<Record<string, JobHandler>>): this {
    for (const [type, handler] of Object.entries(handlers)) this.register(type, handler);
    return this;
  }

  get types(): string[] {
    return [...this.#handlers.keys()];
  }

  /** How many jobs this runner is running now. */
  get active(): number {
    return this.#running.size;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#stopping = false;
    await this.#recover();
    this.#recoverTimer = setInterval(() => void this.#recover(), this.#recoverIntervalMs);
    this.#recoverTimer.unref();
    this.wake();
  }

  /** Polls at once (call after an enqueue): no waiting for the next interval. */
  wake(): void {
    if (!this.#started || this.#stopping) return;
    if (this.#polling) {
      this.#pollAgain = true;
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#polling = this.#poll().finally(() => {
      this.#polling = null;
      if (this.#stopping) {
        this.#pollAgain = false;
        return;
      }
      if (this.#pollAgain) {
        this.#pollAgain = false;
        this.wake();
      } else {
        this.#timer = setTimeout(() => this.wake(), this.#pollIntervalMs);
        this.#timer.unref();
      }
    });
  }

  /** Resolves when no job is running and no poll is under way (tests, orderly shutdown). */
  async whenIdle(): Promise<void> {
    for (;;) {
      if (this.#polling) await this.#polling;
      else if (this.#running.size > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      else return;
    }
  }

  /**
   * Stops claiming, waits up to the grace period for running jobs, then aborts the rest through their
   * signal; an interrupted job goes back to the queue without using an attempt.
   */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#recoverTimer) clearInterval(this.#recoverTimer);
    this.#timer = this.#recoverTimer = null;
    if (this.#polling) await this.#polling;
    const all = () => Promise.allSettled([...this.#running.values()].map((r) => r.done));
    let graceTimer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => { graceTimer = setTimeout(() => resolve('timeout'), this.#stopGraceMs); });
    const outcome = await Promise.race([all().then(() => 'done' as const), graceOver]);
    clearTimeout(graceTimer);
    if (outcome === 'timeout') {
      this.#log.warn({ workerId: this.workerId, running: this.#running.size }, 'stop grace period over: aborting running jobs');
      for (const r of this.#running.values()) r.controller.abort(new ShutdownAbort());
      await all();
    }
    this.#started = false;
  }

  async #recover(): Promise<void> {
    try {
      const recovered = await this.#queue.recoverExpired();
      if (recovered > 0) this.#log.warn({ recovered }, 'recovered jobs whose worker lease expired');
    } catch (error) {
      this.#log.error({ err: error }, 'recovering expired job leases failed');
    }
  }

  async #poll(): Promise<void> {
    const free = this.#concurrency - this.#running.size;
    if (free <= 0 || this.#handlers.size === 0) return;
    let jobs: Job[];
    try {
      jobs = await this.#queue.claim(this.workerId, this.types, { limit: free, leaseMs: this.#leaseMs });
    } catch (error) {
      this.#log.error({ err: error }, 'claiming jobs failed');
      return;
    }
    for (const job of jobs) this.#launch(job);
    // A full batch suggests more is due: look again as soon as a slot frees (see #launch) or now.
    if (jobs.length === free && this.#running.size < this.#concurrency) this.#pollAgain = true;
  }

  #launch(job: Job): void {
    const controller = new AbortController();
    const done = this.#run(job, controller).finally(() => {
      this.#running.delete(job.id);
      if (this.#running.size === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
      this.wake();
    });
    this.#running.set(job.id, { controller, done });
  }

  async #run(job: Job, controller: AbortController): Promise<void> {
    const handler = this.#handlers.get(job.type)!;
    const base = { jobId: job.id, jobType: job.type, attempt: job.attempts, maxAttempts: job.maxAttempts, workerId: this.workerId };
    const started = performance.now();
    let lastProgress: unknown;
    const heartbeat = async (progress?: unknown): Promise<boolean> => {
      if (progress !== undefined) lastProgress = progress;
      if (controller.signal.aborted) return false;
      let alive: boolean;
      try {
        alive = await this.#queue.heartbeat(job.id, this.workerId, progress, this.#leaseMs);
      } catch (error) {
        // A database hiccup: the lease is still running; the next heartbeat tries again.
        this.#log.warn({ ...base, err: error }, 'job heartbeat failed');
        return true;
      }
      if (!alive && !controller.signal.aborted) controller.abort(new LeaseAbort());
      return alive;
    };
    const timer = setInterval(() => void heartbeat(lastProgress), this.#heartbeatIntervalMs);
    timer.unref();
    this.#log.info(base, 'job started');
    let outcome: JobOutcome;
    let error: unknown;
    try {
      const result = await handler(job, { heartbeat, signal: controller.signal });
      if (controller.signal.aborted && !(controller.signal.reason instanceof ShutdownAbort)) {
        outcome = await this.#afterAbort(job, controller.signal.reason);
      } else {
        // Finished despite a shutdown abort: the work is done, record it.
        await this.#queue.complete(job.id, this.workerId, result);
        outcome = 'succeeded';
      }
    } catch (thrown) {
      error = thrown;
      if (controller.signal.aborted) {
        outcome = await this.#afterAbort(job, controller.signal.reason);
      } else {
        const retryable = (thrown as { retryable?: unknown } | null)?.retryable !== false;
        try {
          const after = await this.#queue.fail(job.id, this.workerId, errorText(thrown), { retryable });
          outcome = after.state === 'queued' ? 'retrying' : after.state === 'failed' ? 'failed' : after.state === 'cancelled' ? 'cancelled' : 'lost';
        } catch (failError) {
          this.#log.error({ ...base, err: failError }, 'recording a job failure failed; its lease will expire and it will run again');
          outcome = 'lost';
        }
      }
    } finally {
      clearInterval(timer);
    }
    const durationMs = Math.round(performance.now() - started);
    const fields = { ...base, outcome, durationMs, ...(error !== undefined && outcome !== 'cancelled' && outcome !== 'interrupted' ? { error: errorText(error) } : {}) };
    if (outcome === 'succeeded' || outcome === 'cancelled' || outcome === 'interrupted') this.#log.info(fields, 'job finished');
    else if (outcome === 'retrying') this.#log.warn(fields, 'job finished');
    else this.#log.error(fields, 'job finished');
  }

  /** After an abort: shutdown gives the job back; otherwise it was cancelled or its lease lost. */
  async #afterAbort(job: Job, reason: unknown): Promise<JobOutcome> {
    if (reason instanceof ShutdownAbort) {
      const released = await this.#queue.release(job.id, this.workerId).catch(() => false);
      return released ? 'interrupted' : 'lost';
    }
    const current = await this.#queue.get(job.id).catch(() => null);
    return current?.state === 'cancelled' ? 'cancelled' : 'lost';
  }
}

class ShutdownAbort extends Error {
  constructor() {
    super('the job runner is stopping');
    this.name = 'AbortError';
  }
}

class LeaseAbort extends Error {
  constructor() {
    super('the job was cancelled or its lease lost');
    this.name = 'AbortError';
  }
}

/** Error text kept on the job: the message, with the code when there is one. Bounded. */
function errorText(error: unknown): string {
  const e = error as { message?: unknown; code?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  const text = typeof e?.code === 'string' ? `${e.code}: ${message}` : message;
  return text.length > 4000 ? `${text.slice(0, 4000)}...` : text;
}
