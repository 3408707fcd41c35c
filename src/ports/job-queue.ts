/**
 * Durable jobs (forward, prefetch, tier move, replicate, retention delete, de-id export...) claimed by any
 * node. Restart-safe: a claimed job carries a lease (`lockedUntil`) that its worker renews with heartbeats;
 * when the worker dies the lease runs out and `recoverExpired` puts the job back in the queue.
 *
 * Life cycle: queued -> running (claim; `attempts` counts the claims) -> succeeded | queued again with a
 * backoff (retryable failure, attempts left) | failed (attempts exhausted, or not retryable).
 * queued/running -> cancelled (cancel); failed/cancelled -> queued (retry).
 */
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const JOB_STATES: readonly JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export interface Job<P = unknown> {
  id: number;
  type: string;
  payload: P;
  state: JobState;
  /** How many times the job was claimed (started), this one included while running. */
  attempts: number;
  maxAttempts: number;
  /** ISO-8601 UTC: not claimed before this time (retry backoff, scheduled jobs). */
  runAt: string;
  lastError: string | null;
  progress: unknown | null;
  result: unknown | null;
  createdAt: string;
  updatedAt: string;
  lockedBy: string | null;
  lockedUntil: string | null;
}

export interface EnqueueOptions {
  /** Not claimed before; default now. */
  runAt?: Date;
  /** Default 5 (the queue's default). */
  maxAttempts?: number;
  /**
   * At most one queued or running job per key: enqueueing again while one is active returns that job
   * unchanged instead of adding a second. Finished jobs do not count.
   */
  dedupeKey?: string;
}

export interface JobQueue {
  enqueue<P>(type: string, payload: P, options?: EnqueueOptions): Promise<Job<P>>;
  /**
   * Claims up to `limit` (default 1) due queued jobs of the given types, oldest due first, for `leaseMs`
   * (default: the queue's). PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent claimers on any number of
   * nodes never get the same job; SQLite: one immediate transaction.
   */
  claim(workerId: string, types: string[], options?: { limit?: number; leaseMs?: number }): Promise<Job[]>;
  /** Renews the lease (and records progress). False when the job was cancelled or is no longer this worker's. */
  heartbeat(id: number, workerId: string, progress?: unknown, leaseMs?: number): Promise<boolean>;
  /** Marks the job succeeded. A job no longer held by `workerId` (cancelled, lost) is left as it is. */
  complete(id: number, workerId: string, result?: unknown): Promise<void>;
  /**
   * Records a failure: back to queued with exponential backoff while attempts remain and the error is
   * retryable (default), else failed. Returns the job as it now is (unchanged when not held by `workerId`).
   * Throws AtriumError('not-found') for an unknown id.
   */
  fail(id: number, workerId: string, error: string, options?: { retryable?: boolean }): Promise<Job>;
  /**
   * Gives a running job back without counting the attempt (graceful shutdown). False when it is not
   * held by `workerId`.
   */
  release(id: number, workerId: string): Promise<boolean>;
  /** Queued or running -> cancelled (a running job's worker learns it from its next heartbeat). Finished jobs are returned unchanged. */
  cancel(id: number): Promise<Job | null>;
  /**
   * Failed or cancelled -> queued, due now, with a fresh set of attempts; a queued job waiting for its
   * backoff becomes due now. Others are returned unchanged. Throws AtriumError('conflict') when another
   * active job holds the same dedupe key.
   */
  retry(id: number): Promise<Job | null>;
  get(id: number): Promise<Job | null>;
  /** Newest first. */
  list(filter: { state?: JobState; type?: string }, page: { limit: number; offset: number }): Promise<{ items: Job[]; total: number }>;
  /**
   * Jobs whose lease expired (their worker died) go back to queued, due now; those that have used all
   * their attempts become failed instead (a job that kills its worker must not loop forever).
   * Returns how many jobs were recovered (requeued or failed).
   */
  recoverExpired(): Promise<number>;
  /** How many jobs are in each state (metrics, admin UI). */
  countByState(): Promise<Record<JobState, number>>;
  /** Failed jobs, the last to have failed first (the dashboard's recent failures). */
  recentlyFailed(limit: number): Promise<Job[]>;
}
