/**
 * SIGKILL in the middle of a concurrent `atrium import`, then a restart: every instance the import reported
 * stored is there byte-exact, no index row points at a missing blob, and the dead writer's temp files are
 * gone. Runs on the embedded default and on PostgreSQL.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { openArchive, MODULES } from '../app.ts';
import { loadConfig } from '../config/config.ts';
import { Metrics } from '../observability/metrics.ts';
import { syntheticInstance, syntheticSeries } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { createTestSchema, type TestSchema } from '../../test/support/postgres.ts';
import { configSectionsOf } from '../modules/module.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const INSTANCES = 240;

let corpus: string;

before(async () => {
  corpus = await mkdtemp(path.join(os.tmpdir(), 'atrium-crash-corpus-'));
  let i = 0;
  // Mixed sizes so that some writes are mid-file when the kill comes: 64x64 slices and every 8th 512x512.
  const studyInstanceUid = generateUid();
  for (const instance of syntheticSeries(INSTANCES, { rows: 64, columns: 64, seed: 7, studyInstanceUid })) {
    const bytes = i % 8 === 0
      ? Buffer.concat([...syntheticInstance({ rows: 512, columns: 512, seed: 10_000 + i, studyInstanceUid })])
      : Buffer.concat([...instance]);
    const dir = path.join(corpus, `s${i % 4}`);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, `${i}.dcm`), bytes);
    i++;
  }
});

after(async () => await rm(corpus, { recursive: true, force: true }));

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

/** Starts an import, SIGKILLs it once `killAfter` files were reported stored, returns what was reported. */
async function importAndKill(env: NodeJS.ProcessEnv, killAfter: number): Promise<Map<string, string>> {
  const child = spawn(process.execPath, [MAIN, 'import', '-j', '6', '--verbose', '--no-progress', corpus], {
    env: { ...process.env, ...env, ATRIUM_LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const reported = new Map<string, string>();
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  for await (const line of createInterface({ input: child.stdout! })) {
    const [status, file, uid] = line.split(' ');
    if (status === 'stored') reported.set(uid, file);
    if (reported.size === killAfter) child.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL', 'the import finished before it could be killed');
  return reported;
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`crash recovery on ${engine}+fs`, () => {
    let dataDir: string;
    let schema: TestSchema | undefined;
    let env: Record<string, string>;

    before(async () => {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'atrium-crash-'));
      env = { ATRIUM_DATA: dataDir };
      if (engine === 'postgres') {
        schema = await createTestSchema();
        Object.assign(env, { ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: schema.connectionString });
      }
    });
    after(async () => {
      await rm(dataDir, { recursive: true, force: true });
      await schema?.drop();
    });

    test('every reported instance survives SIGKILL byte-exact, and a restart cleans up and completes', async () => {
      const reported = await importAndKill(env, 60);
      assert.ok(reported.size >= 60);
      const incoming = path.join(dataDir, 'blobs', '.incoming');

      const archive = await openArchive(loadConfig({ sections: configSectionsOf(MODULES),  env }), { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }) });
      try {
        // Start-up removed what the killed writer left half-written.
        assert.deepEqual(await readdir(incoming).catch(() => []), []);
        for (const [uid, file] of reported) {
          const { bytes } = await archive.retrieve.openInstance(uid);
          assert.ok((await readAll(bytes)).equals(await readFile(file)), `${file} not byte-exact after the crash`);
        }
        const stats = await archive.index.statistics();
        assert.ok(stats.instances >= reported.size);
        assert.ok(stats.instances < INSTANCES, 'the kill came too late to test anything');
      } finally {
        await archive.close();
      }

      // verify: no index row without its blob, no checksum off. Unreferenced blobs (committed, not yet
      // indexed at the kill) are allowed: they are garbage, not loss, and younger than verify's grace period.
      const verify = spawnSync(process.execPath, [MAIN, 'verify', '--json'], { env: { ...process.env, ...env }, encoding: 'utf8' });
      const report = JSON.parse(verify.stdout);
      assert.deepEqual(report.problems.filter((p: { kind: string }) => p.kind !== 'unreferenced'), []);
      assert.equal(verify.status, 0, verify.stderr);

      // Running the same import again completes the job: everything stored once, the rest duplicates.
      const rerun = spawnSync(process.execPath, [MAIN, 'import', '--json', '--no-progress', corpus], { env: { ...process.env, ...env, ATRIUM_LOG_LEVEL: 'error' }, encoding: 'utf8' });
      const summary = JSON.parse(rerun.stdout);
      assert.equal(rerun.status, 0, rerun.stdout);
      assert.equal(summary.stored + summary.duplicates, INSTANCES);
      const reopened = await openArchive(loadConfig({ sections: configSectionsOf(MODULES),  env }), { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }) });
      try {
        const stats = await reopened.index.statistics();
        assert.equal(stats.instances, INSTANCES);
        const study = (await reopened.index.listStudies({}, { limit: 10, offset: 0 })).items[0];
        assert.equal(study.numberOfStudyRelatedInstances, INSTANCES);
      } finally {
        await reopened.close();
      }
    });
  });
}
