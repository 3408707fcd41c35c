/**
 * The full integrity sweep as a durable job (`quality.integrity-sweep`): every configured check over the whole
 * archive, recorded as an integrity run. Run on demand (POST /api/quality/integrity/sweeps) and on a schedule:
 * each node, when `atrium serve` starts, makes sure the next slot's sweep is queued (slots are
 * `sweepIntervalMinutes` long, counted from the Unix epoch; the slot is in the job's dedupe key, so however many
 * nodes start, one job per slot), and each scheduled sweep queues the next slot's as it ends. A sweep is
 * idempotent: two at once (a manual one beside the scheduled one) land the same findings once.
 */
import type { JobHandler } from '../../jobs/job-runner.ts';
import type { JobQueue } from '../../ports/job-queue.ts';
import type { IntegritySettings } from '../config.ts';
import type { IntegrityService } from './integrity-service.ts';
import type { SqlIntegrityStore } from './sql-integrity-store.ts';

export const INTEGRITY_SWEEP_JOB = 'quality.integrity-sweep';

export interface SweepPayload {
  requestedBy: string;
  /** The schedule slot of a scheduled sweep; absent for one asked for. */
  slot?: number;
}

/** Queues the sweep of the slot after `now` (none when the interval is 0). */
export async function scheduleNextSweep(jobs: JobQueue, settings: IntegritySettings, now: Date): Promise<number | null> {
  if (settings.sweepIntervalMinutes <= 0) return null;
  const length = settings.sweepIntervalMinutes * 60_000;
  const slot = Math.floor(now.getTime() / length) + 1;
  const job = await jobs.enqueue<SweepPayload>(INTEGRITY_SWEEP_JOB, { requestedBy: 'schedule', slot }, {
    runAt: new Date(slot * length), maxAttempts: 3, dedupeKey: `${INTEGRITY_SWEEP_JOB}:slot:${settings.sweepIntervalMinutes}:${slot}`,
  });
  return job.id;
}

export function integritySweepJob(deps: { service: IntegrityService; store: SqlIntegrityStore; jobs: JobQueue; settings: () => IntegritySettings }): JobHandler<SweepPayload> {
  return async (job) => {
    const runId = await deps.store.startRun('sweep', job.payload.requestedBy, job.id, new Date());
    try {
      const checks = await deps.service.check({ all: true }, `sweep:${runId}`);
      const result = { runId, checks };
      await deps.store.finishRun(runId, { result }, new Date());
      return result;
    } catch (error) {
      await deps.store.finishRun(runId, { error: (error as Error).message }, new Date());
      throw error;
    } finally {
      if (job.payload.slot !== undefined) await scheduleNextSweep(deps.jobs, deps.settings(), new Date());
    }
  };
}
