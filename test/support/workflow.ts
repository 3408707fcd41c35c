/**
 * Driving an archive's events and jobs to rest in the workflow tests: the dispatcher run pass by pass, a job
 * runner polling fast, and a clock that the test moves past the quiet time (no sleeping).
 */
import type { Archive } from '../../src/app.ts';
import { eventDispatcher, jobRunner } from '../../src/app.ts';
import { setWorkflowClock } from '../../src/workflow/module.ts';
import type { EventDispatcher } from '../../src/events/dispatcher.ts';
import type { JobRunner } from '../../src/jobs/job-runner.ts';

export interface WorkflowNode {
  archive: Archive;
  dispatcher: EventDispatcher;
  runner: JobRunner;
  /** Moves the workflow clock by `ms` (StudyStable due times are read from it). */
  advance(ms: number): void;
  /** Runs dispatcher passes until a pass finds nothing to do. */
  dispatch(): Promise<number>;
  stop(): Promise<void>;
}

export function workflowNode(archive: Archive, options: { shareClockWith?: WorkflowNode } = {}): WorkflowNode {
  let offset = 0;
  const shared = options.shareClockWith;
  setWorkflowClock(archive, shared ? () => new Date(Date.now() + (shared as unknown as { offset(): number }).offset()) : () => new Date(Date.now() + offset));
  const dispatcher = eventDispatcher(archive);
  const runner = jobRunner(archive, { pollIntervalMs: 20 });
  void runner.start();
  const node = {
    archive, dispatcher, runner,
    offset: () => offset,
    advance(ms: number) { offset += ms; },
    async dispatch() {
      let total = 0;
      for (let i = 0; i < 1000; i++) {
        const done = await dispatcher.runOnce();
        const n = done.routed + done.delivered + done.failed;
        total += done.delivered;
        if (n === 0) break;
      }
      return total;
    },
    async stop() { await runner.stop(); await dispatcher.stop(); },
  };
  return node;
}

/** Polls until `check` holds (short interval), failing after `limitMs` with `what`. */
export async function eventually(check: () => Promise<boolean>, what: string, limitMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
