/**
 * JobRunner end to end over the SQL queue, on SQLite and PostgreSQL: success, retry and permanent
 * failure, cancellation while running, graceful stop, recovery of a dead runner's job, concurrency.
 * Time for backoff and leases comes from an injected clock; no assertion depends on the wall clock.
 */
import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { SqlJobQueue } from '../adapters/index/sql-job-queue.ts';
import { openTestDatabase } from '../../test/support/postgres.ts';
import { JobRunner, type JobRunnerOptions } from './job-runner.ts';
import type { AtriumDatabase } from '../adapters/index/schema.ts';

class TestClock {
  #t = Date.parse('2031-03-01T08:00:00.000Z');
  now = (): Date => new Date(this.#t);
  advance(ms: number): void {
    this.#t += ms;
  }
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

const openStore = openTestDatabase;

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`job runner on ${kind}`, () => {
    let opened: Awaited<ReturnType<typeof openStore>>;
    let clock: TestClock;
    let queue: SqlJobQueue;
    let logs: Array<Record<string, any>>;
    const runners: JobRunner[] = [];

    function runner(options: Partial<JobRunnerOptions> = {}): JobRunner {
      const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
      // A poll interval of an hour: only start() and wake() poll, so the tests decide when.
      const r = new JobRunner({ queue, log, pollIntervalMs: 3_600_000, ...options });
      runners.push(r);
      return r;
    }

    before(async () => {
      opened = await openStore(kind);
    });
    after(async () => {
      for (const r of runners.splice(0)) await r.stop();
      await opened?.cleanup();
    });
    beforeEach(async () => {
      for (const r of runners.splice(0)) await r.stop();
      await opened.database.kysely<AtriumDatabase>().deleteFrom('job').execute();
      clock = new TestClock();
      queue = new SqlJobQueue(opened.database, clock.now, { random: () => 0.5 });
      logs = [];
    });

    test('runs a registered handler and records its result; logs start and end', async () => {
      const r = runner({ workerId: 'node-a' });
      const seen: unknown[] = [];
      r.register<{ study: string }>('forward', async (job, context) => {
        seen.push(job.payload.study);
        assert.equal(await context.heartbeat({ sent: 1 }), true);
        return { sent: 1 };
      });
      await r.start();
      const job = await queue.enqueue('forward', { study: '1.2.3' });
      const other = await queue.enqueue('not-mine', {});
      r.wake();
      await r.whenIdle();
      const done = (await queue.get(job.id))!;
      assert.equal(done.state, 'succeeded');
      assert.deepEqual(done.result, { sent: 1 });
      assert.deepEqual(done.progress, { sent: 1 });
      assert.deepEqual(seen, ['1.2.3']);
      assert.equal((await queue.get(other.id))!.state, 'queued', 'types without a handler are left for others');

      const started = logs.find((l) => l.msg === 'job started');
      const finished = logs.find((l) => l.msg === 'job finished');
      assert.deepEqual(
        { jobId: started?.jobId, jobType: started?.jobType, attempt: started?.attempt, workerId: started?.workerId },
        { jobId: job.id, jobType: 'forward', attempt: 1, workerId: 'node-a' },
      );
      assert.equal(finished?.outcome, 'succeeded');
      assert.equal(finished?.jobId, job.id);
      assert.equal(finished?.jobType, 'forward');
      assert.equal(finished?.attempt, 1);
      assert.equal(typeof finished?.durationMs, 'number');
      await r.stop();
    });

    test('a thrown error is retried with backoff; retryable === false fails at once', async () => {
      const r = runner();
      let calls = 0;
      r.register('flaky', async () => {
        calls++;
        if (calls < 3) throw Object.assign(new Error('association rejected'), { code: 'ECONNREFUSED' });
        return 'ok';
      });
      r.register('hopeless', async () => {
        throw Object.assign(new Error('unknown destination AE'), { retryable: false });
      });
      await r.start();
      const flaky = await queue.enqueue('flaky', {}, { maxAttempts: 5 });
      const hopeless = await queue.enqueue('hopeless', {}, { maxAttempts: 5 });
      r.wake();
      await r.whenIdle();
      let f = (await queue.get(flaky.id))!;
      assert.equal(f.state, 'queued');
      assert.equal(f.lastError, 'ECONNREFUSED: association rejected');
      assert.equal(f.runAt, new Date(clock.now().getTime() + 5_000).toISOString());
      const h = (await queue.get(hopeless.id))!;
      assert.equal(h.state, 'failed');
      assert.equal(h.attempts, 1);
      assert.equal(h.lastError, 'unknown destination AE');
      assert.ok(logs.some((l) => l.msg === 'job finished' && l.jobId === hopeless.id && l.outcome === 'failed' && l.error === 'unknown destination AE'));
      assert.ok(logs.some((l) => l.msg === 'job finished' && l.jobId === flaky.id && l.outcome === 'retrying'));

      r.wake();
      await r.whenIdle();
      assert.equal(calls, 1, 'not due yet');
      clock.advance(5_000);
      r.wake();
      await r.whenIdle();
      f = (await queue.get(flaky.id))!;
      assert.equal(calls, 2);
      assert.equal(f.runAt, new Date(clock.now().getTime() + 10_000).toISOString(), 'backoff doubles');
      clock.advance(10_000);
      r.wake();
      await r.whenIdle();
      f = (await queue.get(flaky.id))!;
      assert.equal(f.state, 'succeeded');
      assert.equal(f.attempts, 3);
      assert.equal(f.result, 'ok');
    });

    test('cancelling a running job makes its heartbeat return false and aborts the handler', async () => {
      const r = runner();
      const running = deferred();
      const proceed = deferred();
      let heartbeatAfterCancel: boolean | undefined;
      let abortedReason: unknown;
      r.register('tier-move', async (_job, context) => {
        running.resolve();
        await proceed.promise;
        heartbeatAfterCancel = await context.heartbeat({ moved: 10 });
        abortedReason = context.signal.reason;
        context.signal.throwIfAborted();
        return 'should not get here';
      });
      await r.start();
      const job = await queue.enqueue('tier-move', { study: 'S' });
      r.wake();
      await running.promise;
      assert.equal((await queue.cancel(job.id))!.state, 'cancelled');
      proceed.resolve();
      await r.whenIdle();
      assert.equal(heartbeatAfterCancel, false);
      assert.ok(abortedReason instanceof Error);
      const after = (await queue.get(job.id))!;
      assert.equal(after.state, 'cancelled');
      assert.equal(after.result, null);
      assert.ok(logs.some((l) => l.msg === 'job finished' && l.jobId === job.id && l.outcome === 'cancelled'));
    });

    test('stop waits for running jobs, then aborts them after the grace period and gives them back', async () => {
      const r = runner({ stopGraceMs: 20 });
      const running = deferred();
      r.register('replicate', (_job, context) => {
        running.resolve();
        return new Promise((_resolve, reject) => context.signal.addEventListener('abort', () => reject(context.signal.reason)));
      });
      await r.start();
      const job = await queue.enqueue('replicate', {});
      r.wake();
      await running.promise;
      await r.stop();
      const after = (await queue.get(job.id))!;
      assert.equal(after.state, 'queued', 'interrupted by shutdown, not failed');
      assert.equal(after.attempts, 0, 'the interrupted run does not use an attempt');
      assert.equal(after.lockedBy, null);
      assert.ok(logs.some((l) => l.msg === 'job finished' && l.outcome === 'interrupted'));

      // A job that finishes within the grace period is recorded normally.
      const quick = runner({ stopGraceMs: 60_000 });
      const gate = deferred();
      const started = deferred();
      quick.register('replicate', async () => { started.resolve(); await gate.promise; return 'done'; });
      await quick.start();
      await started.promise;
      const stopping = quick.stop();
      gate.resolve();
      await stopping;
      assert.equal((await queue.get(job.id))!.state, 'succeeded');
    });

    test('restart safety: a job held by a runner that died is recovered at start and runs again', async () => {
      const job = await queue.enqueue('forward', { study: 'X' });
      const [claimed] = await queue.claim('crashed-node', ['forward'], { leaseMs: 60_000 });
      assert.equal(claimed.id, job.id);
      clock.advance(60_001);
      const r = runner({ workerId: 'node-b' });
      r.register('forward', async (j) => ({ attempt: j.attempts }));
      await r.start();
      await r.whenIdle();
      const after = (await queue.get(job.id))!;
      assert.equal(after.state, 'succeeded');
      assert.deepEqual(after.result, { attempt: 2 });
      assert.ok(logs.some((l) => l.msg === 'recovered jobs whose worker lease expired' && l.recovered === 1));
    });

    test('never runs more than `concurrency` jobs at once, and drains the queue', async () => {
      const r = runner({ concurrency: 2 });
      let now = 0;
      let max = 0;
      r.register('prefetch', async () => {
        now++;
        max = Math.max(max, now);
        await new Promise((resolve) => setImmediate(resolve));
        now--;
      });
      for (let i = 0; i < 7; i++) await queue.enqueue('prefetch', { i });
      await r.start();
      await r.whenIdle();
      assert.equal(max, 2);
      assert.equal((await queue.countByState()).succeeded, 7);
    });
  });
}
