// A module's durable jobs: jobRunner(archive) runs them beside the core's; two modules claiming a job type
// fail at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { MODULES, jobRunner, openArchive } from '../app.ts';
import { loadConfig } from '../config/config.ts';
import { Metrics } from '../observability/metrics.ts';
import { configSectionsOf, type AtriumModule } from './module.ts';
import { SEND_JOB } from '../exchange/dicom-jobs.ts';

test("a module's job handlers run on the job runner with the core's; a job type claimed twice is refused", async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'atrium-module-jobs-'));
  const ran: unknown[] = [];
  const reports: AtriumModule = { name: 'reports', jobHandlers: () => ({ 'reports.deliver': async (job) => { ran.push(job.payload); return { delivered: true }; } }) };
  const config = loadConfig({ env: { ATRIUM_DATA: dataDir, ATRIUM_LOG_LEVEL: 'silent' }, sections: configSectionsOf(MODULES) });
  const archive = await openArchive(config, { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }), modules: [...MODULES, reports] });
  try {
    const runner = jobRunner(archive, { pollIntervalMs: 20 });
    assert.ok(runner.types.includes(SEND_JOB) && runner.types.includes('reports.deliver'), runner.types.join(', '));
    const job = await archive.jobs.enqueue('reports.deliver', { report: 7 });
    await runner.start();
    for (let i = 0; i < 200 && (await archive.jobs.get(job.id))?.state !== 'succeeded'; i++) await new Promise((r) => setTimeout(r, 20));
    await runner.stop();
    assert.equal((await archive.jobs.get(job.id))?.state, 'succeeded');
    assert.deepEqual(ran, [{ report: 7 }]);

    const twice = { ...archive, modules: [...archive.modules, { name: 'copycat', jobHandlers: () => ({ [SEND_JOB]: async () => null }) }] };
    assert.throws(() => jobRunner(twice), /job type "dicom.send" is already registered/);
  } finally {
    await archive.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
