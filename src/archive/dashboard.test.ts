/**
 * The dashboard's numbers on SQLite+fs and PostgreSQL+S3, from instances whose reception times are set to known
 * days and minutes: activity per UTC day (zero-filled, oldest first, distinct studies), per modality, storage
 * growth, ingest per minute, jobs, quarantine, event deliveries, and the health checks, down included.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { DashboardService } from './dashboard.ts';
import { JOB_STATES } from '../ports/job-queue.ts';

const DAY = 24 * 60 * 60 * 1000;

for (const combination of ['sqlite+fs', 'postgres+s3'] as const) {
  describe(`dashboard on ${combination}`, { timeout: 120_000 }, () => {
    let t: TestArchive;
    const now = new Date();
    const today = Math.floor(now.getTime() / DAY) * DAY;
    const iso = (ms: number) => new Date(ms).toISOString();
    const sizes: Record<string, number> = {};

    /** Stores a synthetic instance and sets when it was received. */
    async function received(at: number, options: { study: string; modality: string; seed: number }): Promise<void> {
      const result = await t.archive.ingest.ingest([...syntheticInstance({ rows: 8, columns: 8, studyInstanceUid: options.study, modality: options.modality, seed: options.seed })], { source: 'test' });
      assert.equal(result.status, 'stored');
      assert.ok(result.status === 'stored');
      sizes[result.sopInstanceUid] = result.sizeBytes;
      await t.archive.database.kysely<any>().updateTable('instance').set({ received_at: iso(at) }).where('sop_instance_uid', '=', result.sopInstanceUid).execute();
    }

    const s1 = generateUid();
    const s2 = generateUid();
    const s3 = generateUid();
    let twoDaysAgo = 0;
    let justNow = 0;
    let longAgo = 0;

    before(async () => {
      t = await createTestArchive(combination);
      twoDaysAgo = today - 2 * DAY + 10 * 60 * 60 * 1000;
      // Ten seconds ago, but today (a run just after midnight UTC keeps it on today).
      justNow = Math.max(now.getTime() - 10_000, today);
      longAgo = today - 40 * DAY;
      await received(twoDaysAgo, { study: s1, modality: 'CT', seed: 1 });
      await received(twoDaysAgo + 1000, { study: s1, modality: 'CT', seed: 2 });
      await received(twoDaysAgo + 2000, { study: s2, modality: 'MR', seed: 3 });
      await received(justNow, { study: s1, modality: 'CT', seed: 4 });
      await received(longAgo, { study: s3, modality: 'CT', seed: 5 });
      const broken = await t.archive.ingest.ingest([new TextEncoder().encode('not DICOM')], { source: 'test' });
      assert.equal(broken.status, 'quarantined');
    });
    after(async () => await t?.cleanup());

    const dashboard = (days: number) => new DashboardService({ ...t.archive, clock: () => now }).dashboard(days);

    test('activity per UTC day, zero-filled and oldest first, with distinct studies; storage and its growth', async () => {
      const d = await dashboard(30);
      assert.equal(d.generatedAt, now.toISOString());
      assert.equal(d.days.length, 30);
      assert.equal(d.days[29].date, iso(today).slice(0, 10));
      assert.equal(d.days[0].date, iso(today - 29 * DAY).slice(0, 10));
      const bytes = Object.values(sizes);
      const total = bytes.reduce((a, b) => a + b, 0);
      const [a1, a2, b1, c1, old] = bytes;
      assert.deepEqual(d.days[27], { date: iso(twoDaysAgo).slice(0, 10), studies: 2, instances: 3, bytes: a1 + a2 + b1 });
      assert.deepEqual(d.days[29], { date: iso(today).slice(0, 10), studies: 1, instances: 1, bytes: c1 });
      assert.deepEqual(d.days[28], { date: iso(today - DAY).slice(0, 10), studies: 0, instances: 0, bytes: 0 });
      assert.equal(d.days.reduce((n, day) => n + day.instances, 0), 4, 'the instance of 40 days ago is outside the window');

      assert.deepEqual({ ...d.storage, growth: undefined }, { bytes: total, instances: 5, series: 5, studies: 3, patients: 1, blobs: combination.endsWith('s3') ? 's3' : 'fs', growth: undefined });
      assert.equal(d.storage.growth.length, 30);
      assert.deepEqual(d.storage.growth[0], { date: d.days[0].date, bytes: old }, 'what was stored before the window');
      assert.equal(d.storage.growth[27].bytes, old + a1 + a2 + b1);
      assert.equal(d.storage.growth[29].bytes, total);

      assert.deepEqual(d.modalities, [
        { modality: 'CT', studies: 2, instances: 4, bytes: a1 + a2 + c1 + old },
        { modality: 'MR', studies: 1, instances: 1, bytes: b1 },
      ]);
      assert.equal(d.quarantine.total, 1);

      const week = await dashboard(1);
      assert.equal(week.days.length, 1);
      assert.equal(week.storage.growth[0].bytes, total);
    });

    test('ingest: the last minute, the last hour, and the last 60 minutes one by one', async () => {
      const d = await dashboard(30);
      assert.equal(d.ingest.lastMinute, 1);
      assert.equal(d.ingest.lastHour, 1);
      assert.equal(d.ingest.perMinute.length, 60);
      const minute = Math.floor(justNow / 60_000) * 60_000;
      assert.equal(d.ingest.perMinute.at(-1)!.minute, iso(Math.floor(now.getTime() / 60_000) * 60_000));
      assert.deepEqual(d.ingest.perMinute.filter((m) => m.instances > 0), [{ minute: iso(minute), instances: 1 }]);
      assert.ok(d.ingest.perMinute.every((m, i) => i === 0 || Date.parse(m.minute) - Date.parse(d.ingest.perMinute[i - 1].minute) === 60_000));
    });

    test('jobs by state and recent failures, stuck deliveries; health says what waits on an operator', async () => {
      let d = await dashboard(30);
      assert.deepEqual(Object.keys(d.jobs.byState), [...JOB_STATES]);
      assert.deepEqual(d.health.map((h) => [h.name, h.status]), [['index', 'ok'], ['blobs', 'ok'], ['jobs', 'ok'], ['events', 'ok']]);
      assert.equal(d.health[0].detail, combination.startsWith('postgres') ? 'postgres' : 'sqlite');
      assert.match(d.health[1].detail, combination.endsWith('s3') ? /^s3: bucket \S+ at http:\/\/127\.0\.0\.1:\d+$/ : /^fs: \//);
      if (t.config.blobs.engine === 's3') assert.ok(!d.health[1].detail.includes(t.config.blobs.secretAccessKey!), 'no credential in the detail');

      const jobs = t.archive.jobs;
      for (const error of ['first failure', 'second failure']) {
        const job = await jobs.enqueue('test.fails', {});
        await jobs.claim('worker', ['test.fails']);
        await jobs.fail(job.id, 'worker', error, { retryable: false });
      }
      await jobs.enqueue('test.waits', {});
      const events = t.archive.events;
      await events.fanOut(new Map([['InstanceStored', ['test.breaks']]]), 100, new Date());
      const [delivery] = await events.claim('node', ['test.breaks'], 1, new Date(), new Date(Date.now() + 60_000));
      assert.ok(delivery);
      await events.fail(delivery.id, 'node', 'handler broke', new Date(Date.now() + 3_600_000), new Date());

      d = await dashboard(30);
      assert.equal(d.jobs.byState.failed, 2);
      assert.equal(d.jobs.byState.queued, 1);
      assert.deepEqual(d.jobs.recentFailures.map((f) => [f.type, f.error]), [['test.fails', 'second failure'], ['test.fails', 'first failure']]);
      assert.ok(d.jobs.recentFailures.every((f) => typeof f.id === 'number' && !Number.isNaN(Date.parse(f.updatedAt))));
      assert.equal(d.events.stuck, 1);
      assert.ok(d.events.backlog >= 5, 'the undelivered InstanceStored events of this archive');
      const health = Object.fromEntries(d.health.map((h) => [h.name, h]));
      assert.equal(health.jobs.status, 'degraded');
      assert.match(health.jobs.detail, /2 failed jobs/);
      assert.equal(health.events.status, 'degraded');
      assert.match(health.events.detail, /1 event delivery fails/);
    });

    test('an engine that does not answer is down, with why', async () => {
      const health = await new DashboardService({
        ...t.archive,
        index: Object.assign(Object.create(t.archive.index), { ping: async () => { throw new Error('connection refused'); } }),
        blobs: Object.assign(Object.create(t.archive.blobs), { probe: async () => { throw new Error('NoSuchBucket'); } }),
      }).health();
      assert.deepEqual(health.slice(0, 2), [
        { name: 'index', status: 'down', detail: 'connection refused' },
        { name: 'blobs', status: 'down', detail: 'NoSuchBucket' },
      ]);
    });
  });
}
