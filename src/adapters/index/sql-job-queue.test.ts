/**
 * The durable job queue on SQLite and on real PostgreSQL: claiming, backoff (on an injected clock, never
 * the wall clock), dedupe keys, cancellation, lease expiry and recovery, concurrent claimers.
 */
import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { AtriumDatabase } from './schema.ts';
import { SqlJobQueue, retryDelayMs } from './sql-job-queue.ts';
import { openTestDatabase, type TestDatabase } from '../../../test/support/postgres.ts';
import { AtriumError } from '../../errors.ts';

class TestClock {
  #t = Date.parse('2031-03-01T08:00:00.000Z');
  now = (): Date => new Date(this.#t);
  advance(ms: number): void {
    this.#t += ms;
  }
}

test('retry delays double from 5 s, are capped at one hour and spread by +-20%', () => {
  assert.equal(retryDelayMs(1, 0.5), 5_000);
  assert.equal(retryDelayMs(2, 0.5), 10_000);
  assert.equal(retryDelayMs(3, 0.5), 20_000);
  assert.equal(retryDelayMs(20, 0.5), 3_600_000);
  assert.equal(retryDelayMs(1000, 0.99), 3_600_000);
  assert.equal(retryDelayMs(1, 0), 4_000);
  assert.ok(retryDelayMs(1, 0.999) <= 6_000 && retryDelayMs(1, 0.999) > 5_900);
});

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`job queue on ${kind}`, () => {
    let engine: TestDatabase;
    let clock: TestClock;
    let queue: SqlJobQueue;
    before(async () => {
      engine = await openTestDatabase(kind);
    });
    after(async () => await engine?.cleanup());
    beforeEach(async () => {
      await engine.database.kysely<AtriumDatabase>().deleteFrom('job').execute();
      clock = new TestClock();
      queue = new SqlJobQueue(engine.database, clock.now, { random: () => 0.5 });
    });

    test('enqueue, claim the oldest due jobs of the asked types, complete', async () => {
      const a1 = await queue.enqueue('forward', { study: '1.2.3', to: 'PACS2' });
      clock.advance(1);
      const b = await queue.enqueue('prefetch', { patient: 'P1' });
      clock.advance(1);
      const a2 = await queue.enqueue('forward', { study: '1.2.4', to: 'PACS2' });
      const early = await queue.enqueue('forward', { study: '0' }, { runAt: new Date(clock.now().getTime() - 60_000) });
      const later = await queue.enqueue('forward', { study: 'later' }, { runAt: new Date(clock.now().getTime() + 60_000) });
      assert.equal(a1.state, 'queued');
      assert.equal(a1.attempts, 0);
      assert.equal(a1.maxAttempts, 5);
      assert.deepEqual(a1.payload, { study: '1.2.3', to: 'PACS2' });

      const claimed = await queue.claim('w1', ['forward'], { limit: 10, leaseMs: 30_000 });
      assert.deepEqual(claimed.map((j) => j.id), [early.id, a1.id, a2.id], 'due jobs of the type, oldest due first; not the future one');
      for (const j of claimed) {
        assert.equal(j.state, 'running');
        assert.equal(j.attempts, 1);
        assert.equal(j.lockedBy, 'w1');
        assert.equal(j.lockedUntil, new Date(clock.now().getTime() + 30_000).toISOString());
      }
      assert.deepEqual(await queue.claim('w2', ['forward'], { limit: 10 }), [], 'nothing left that is due');
      assert.deepEqual(await queue.claim('w2', [], { limit: 10 }), []);

      assert.equal(await queue.heartbeat(a1.id, 'w1', { sent: 3, of: 10 }), true);
      assert.deepEqual((await queue.get(a1.id))!.progress, { sent: 3, of: 10 });
      assert.equal(await queue.heartbeat(a1.id, 'w2'), false, 'not w2\'s job');
      await queue.complete(a1.id, 'w1', { sent: 10 });
      const done = (await queue.get(a1.id))!;
      assert.equal(done.state, 'succeeded');
      assert.deepEqual(done.result, { sent: 10 });
      assert.equal(done.lockedBy, null);
      assert.equal(await queue.heartbeat(a1.id, 'w1'), false, 'a finished job has no lease');

      clock.advance(60_000);
      assert.deepEqual((await queue.claim('w1', ['forward', 'prefetch'], { limit: 5 })).map((j) => j.id), [b.id, later.id]);

      const running = await queue.list({ state: 'running' }, { limit: 2, offset: 0 });
      assert.equal(running.total, 4);
      assert.equal(running.items.length, 2);
      assert.deepEqual(running.items.map((j) => j.id), [later.id, early.id], 'newest first');
      assert.equal((await queue.list({ type: 'prefetch' }, { limit: 10, offset: 0 })).total, 1);
      assert.equal((await queue.list({}, { limit: 10, offset: 0 })).total, 5);
      assert.deepEqual(await queue.countByState(), { queued: 0, running: 4, succeeded: 1, failed: 0, cancelled: 0 });
      assert.equal(await queue.get(999_999), null);
    });

    test('a failure is retried with exponential backoff, then failed after maxAttempts', async () => {
      const job = await queue.enqueue('replicate', { study: '1.2' }, { maxAttempts: 3 });
      const start = clock.now().getTime();

      let [claimed] = await queue.claim('w1', ['replicate']);
      let after = await queue.fail(claimed.id, 'w1', 'peer refused association');
      assert.equal(after.state, 'queued');
      assert.equal(after.attempts, 1);
      assert.equal(after.lastError, 'peer refused association');
      assert.equal(after.runAt, new Date(start + 5_000).toISOString());
      assert.equal(after.lockedBy, null);
      assert.deepEqual(await queue.claim('w1', ['replicate']), [], 'not due during the backoff');
      clock.advance(4_999);
      assert.deepEqual(await queue.claim('w1', ['replicate']), []);
      clock.advance(1);

      [claimed] = await queue.claim('w1', ['replicate']);
      assert.equal(claimed.attempts, 2);
      after = await queue.fail(claimed.id, 'w1', 'timeout');
      assert.equal(after.state, 'queued');
      assert.equal(after.runAt, new Date(clock.now().getTime() + 10_000).toISOString(), 'twice as long');
      clock.advance(10_000);

      [claimed] = await queue.claim('w1', ['replicate']);
      assert.equal(claimed.attempts, 3);
      after = await queue.fail(claimed.id, 'w1', 'still down');
      assert.equal(after.state, 'failed', 'out of attempts');
      assert.equal(after.lastError, 'still down');
      clock.advance(3_600_000);
      assert.deepEqual(await queue.claim('w1', ['replicate']), []);

      // A failed job can be retried by hand, with a fresh set of attempts.
      const retried = (await queue.retry(job.id))!;
      assert.equal(retried.state, 'queued');
      assert.equal(retried.attempts, 0);
      assert.equal((await queue.claim('w1', ['replicate']))[0].id, job.id);
    });

    test('a non-retryable failure fails at once; fail of a job not held is a no-op', async () => {
      const job = await queue.enqueue('deid-export', { study: '9' });
      const [claimed] = await queue.claim('w1', ['deid-export']);
      const notMine = await queue.fail(claimed.id, 'w2', 'nope');
      assert.equal(notMine.state, 'running');
      const after = await queue.fail(claimed.id, 'w1', 'bad profile', { retryable: false });
      assert.equal(after.state, 'failed');
      assert.equal(after.attempts, 1);
      await assert.rejects(queue.fail(123_456_789, 'w1', 'x'), (e: unknown) => e instanceof AtriumError && e.code === 'not-found');
      assert.equal((await queue.get(job.id))!.state, 'failed');
    });

    test('a dedupe key admits one queued or running job at a time', async () => {
      const first = await queue.enqueue('prefetch', { patient: 'P1' }, { dedupeKey: 'prefetch:P1' });
      const again = await queue.enqueue('prefetch', { patient: 'P1', other: true }, { dedupeKey: 'prefetch:P1' });
      assert.equal(again.id, first.id);
      assert.deepEqual(again.payload, { patient: 'P1' }, 'the existing job, unchanged');
      const other = await queue.enqueue('prefetch', { patient: 'P2' }, { dedupeKey: 'prefetch:P2' });
      assert.notEqual(other.id, first.id);

      const [claimed] = await queue.claim('w1', ['prefetch']);
      assert.equal(claimed.id, first.id);
      assert.equal((await queue.enqueue('prefetch', {}, { dedupeKey: 'prefetch:P1' })).id, first.id, 'running counts too');
      await queue.complete(first.id, 'w1');
      const next = await queue.enqueue('prefetch', { patient: 'P1' }, { dedupeKey: 'prefetch:P1' });
      assert.notEqual(next.id, first.id, 'a finished job frees the key');

      // Concurrent enqueues of one key: one row.
      const racing = await Promise.all(Array.from({ length: 10 }, () => queue.enqueue('tier-move', { study: 'S' }, { dedupeKey: 'tier:S' })));
      assert.equal(new Set(racing.map((j) => j.id)).size, 1);
      assert.equal((await queue.list({ type: 'tier-move' }, { limit: 50, offset: 0 })).total, 1);

      // Retrying an old job whose key is taken again is a conflict, not a second active job.
      await queue.cancel(next.id);
      const newer = await queue.enqueue('prefetch', { patient: 'P1' }, { dedupeKey: 'prefetch:P1' });
      await assert.rejects(queue.retry(next.id), (e: unknown) => e instanceof AtriumError && e.code === 'conflict');
      assert.equal((await queue.get(newer.id))!.state, 'queued');
    });

    test('cancel: a queued job is never claimed, a running one loses its heartbeat', async () => {
      const queued = await queue.enqueue('forward', { n: 1 });
      const running = await queue.enqueue('forward', { n: 2 });
      assert.equal((await queue.cancel(queued.id))!.state, 'cancelled');
      const [claimed] = await queue.claim('w1', ['forward'], { limit: 5 }).then((jobs) => { assert.equal(jobs.length, 1); return jobs; });
      assert.equal(claimed.id, running.id);
      assert.equal(await queue.heartbeat(running.id, 'w1'), true);
      assert.equal((await queue.cancel(running.id))!.state, 'cancelled');
      assert.equal(await queue.heartbeat(running.id, 'w1', { x: 1 }), false);
      await queue.complete(running.id, 'w1', { late: true });
      const after = (await queue.get(running.id))!;
      assert.equal(after.state, 'cancelled', 'completing after a cancel changes nothing');
      assert.equal(after.result, null);
      assert.equal((await queue.cancel(running.id))!.state, 'cancelled');
      assert.equal(await queue.cancel(987_654), null);
      assert.equal(await queue.retry(987_654), null);

      // A queued job waiting for its backoff can be made due now.
      const waiting = await queue.enqueue('forward', { n: 3 }, { runAt: new Date(clock.now().getTime() + 3_600_000) });
      assert.equal((await queue.retry(waiting.id))!.runAt, clock.now().toISOString());
      assert.equal((await queue.claim('w1', ['forward']))[0].id, waiting.id);
    });

    test('restart safety: a dead worker\'s job is recovered after its lease and runs elsewhere', async () => {
      const job = await queue.enqueue('forward', { study: 'X' }, { maxAttempts: 2 });
      const [claimed] = await queue.claim('dead-worker', ['forward'], { leaseMs: 30_000 });
      assert.equal(claimed.id, job.id);
      // The worker dies: no heartbeat, no completion.
      clock.advance(29_999);
      assert.equal(await queue.recoverExpired(), 0, 'the lease still runs');
      assert.deepEqual(await queue.claim('w2', ['forward']), []);
      clock.advance(2);
      assert.equal(await queue.recoverExpired(), 1);
      const recovered = (await queue.get(job.id))!;
      assert.equal(recovered.state, 'queued');
      assert.equal(recovered.lockedBy, null);
      assert.match(recovered.lastError!, /dead-worker.*expired/);

      const [again] = await queue.claim('w2', ['forward'], { leaseMs: 30_000 });
      assert.equal(again.id, job.id);
      assert.equal(again.attempts, 2);
      assert.equal(await queue.heartbeat(job.id, 'dead-worker'), false, 'the old worker, if it wakes, has lost the job');
      await queue.complete(job.id, 'dead-worker');
      assert.equal((await queue.get(job.id))!.state, 'running');
      await queue.complete(job.id, 'w2', 'ok');
      assert.equal((await queue.get(job.id))!.state, 'succeeded');

      // A job whose worker keeps dying is failed once its attempts are used up.
      const poison = await queue.enqueue('forward', { poison: true }, { maxAttempts: 1 });
      await queue.claim('w3', ['forward'], { leaseMs: 1_000 });
      clock.advance(1_001);
      assert.equal(await queue.recoverExpired(), 1);
      const failed = (await queue.get(poison.id))!;
      assert.equal(failed.state, 'failed');
      assert.match(failed.lastError!, /no attempts left/);

      // Heartbeats keep a lease alive.
      const longJob = await queue.enqueue('tier-move', {});
      await queue.claim('w4', ['tier-move'], { leaseMs: 10_000 });
      for (let i = 0; i < 5; i++) {
        clock.advance(8_000);
        assert.equal(await queue.heartbeat(longJob.id, 'w4', undefined, 10_000), true);
        assert.equal(await queue.recoverExpired(), 0);
      }
    });

    test('release gives a running job back without using an attempt', async () => {
      const job = await queue.enqueue('forward', {});
      await queue.claim('w1', ['forward']);
      assert.equal(await queue.release(job.id, 'w2'), false);
      assert.equal(await queue.release(job.id, 'w1'), true);
      const after = (await queue.get(job.id))!;
      assert.equal(after.state, 'queued');
      assert.equal(after.attempts, 0);
      assert.equal((await queue.claim('w2', ['forward']))[0].attempts, 1);
    });

    if (kind === 'postgres') {
      test('concurrent claimers on two connection pools never get the same job', async () => {
        const other = await engine.reopen();
        const queues = [queue, new SqlJobQueue(other, clock.now)];
        const total = 300;
        for (let i = 0; i < total; i += 50) {
          await Promise.all(Array.from({ length: 50 }, (_, k) => queue.enqueue('replicate', { n: i + k })));
        }
        const seen = new Map<number, string>();
        const duplicates: number[] = [];
        const loops = queues.flatMap((q, w) => Array.from({ length: 8 }, (_, l) => (async () => {
          const worker = `node${w}-loop${l}`;
          for (;;) {
            const jobs = await q.claim(worker, ['replicate'], { limit: 3 });
            if (jobs.length === 0) return;
            for (const j of jobs) {
              if (seen.has(j.id)) duplicates.push(j.id);
              seen.set(j.id, worker);
            }
            await Promise.all(jobs.map((j) => q.complete(j.id, worker)));
          }
        })()));
        await Promise.all(loops);
        assert.deepEqual(duplicates, []);
        assert.equal(seen.size, total);
        assert.ok(new Set([...seen.values()].map((w) => w.slice(0, 5))).size === 2, 'both nodes took part');
        assert.deepEqual(await queue.countByState(), { queued: 0, running: 0, succeeded: total, failed: 0, cancelled: 0 });
      });
    }
  });
}
