/**
 * The re-check after a dose reference level changed: a durable `quality.dose-recheck` job per change and
 * modality compares every current report of the modality with the levels as they now are, raises the alerts
 * a lowered or new level makes (notified like any other) and withdraws the open ones a raised or removed
 * level no longer supports. Levels change rarely and the work is a page of reports at a time, so it runs as
 * a job rather than inside the editing request; it is idempotent (alert keys), so a retried job adds nothing.
 */
import type { JobHandler } from '../../jobs/job-runner.ts';
import type { JobQueue } from '../../ports/job-queue.ts';
import type { DoseSettings } from '../config.ts';
import type { SqlDoseStore } from './sql-dose-store.ts';

export const DOSE_RECHECK_JOB = 'quality.dose-recheck';

export interface DoseRecheckPayload {
  modality: string;
  /** What changed, kept with the alerts it withdraws: `DRL #7 updated`. */
  reason: string;
}

export function queueDoseRecheck(jobs: JobQueue): (modality: string, reason: string) => Promise<unknown> {
  return (modality, reason) => jobs.enqueue<DoseRecheckPayload>(DOSE_RECHECK_JOB, { modality, reason });
}

/** `notify` hands the raised alerts to the quality notifier (src/quality/notifier.ts), as extraction does. */
export function doseRecheckJob(deps: { store: SqlDoseStore; settings: () => DoseSettings; notify: (alertIds: number[]) => Promise<number> }): JobHandler<DoseRecheckPayload> {
  return async (job) => {
    const settings = deps.settings();
    const now = new Date();
    const result = await deps.store.recheckModality(job.payload.modality, {
      drlPercent: settings.drlPercent, ctdivolAlertMgy: settings.ctdivolAlertMgy, now,
      reason: `no longer over its reference level after ${job.payload.reason}`,
    });
    const notified = await deps.notify(result.raised.map((a) => a.id));
    return { reports: result.reports, raised: result.raised.length, withdrawn: result.withdrawn, notified };
  };
}
