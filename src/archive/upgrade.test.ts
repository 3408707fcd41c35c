// A data folder made by the previous release opens with today's code: the missing migrations run once,
// nothing stored is lost, and events start with the upgrade (the old outbox rows are not replayed).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { sql } from 'kysely';
import { MODULES, eventDispatcher, openArchive, type Archive } from '../app.ts';
import { loadConfig } from '../config/config.ts';
import { configSectionsOf, migrationsOf, type AtriumModule } from '../modules/module.ts';
import { Metrics } from '../observability/metrics.ts';
import { on, type DeliveredEvent } from '../events/event-map.ts';

/** Made by `atrium import` of commit 6e54c9c (see its README.md). */
const FIXTURE = fileURLToPath(new URL('../../test/fixtures/data-folder-6e54c9c', import.meta.url));
const TESTDATA = fileURLToPath(new URL('../../../shared/testdata/dicom', import.meta.url));
/** The three files the old release stored, by SOP Instance UID (read from the fixture's index on first open). */
const STORED_FILES = ['MR_small.dcm', 'SC_rgb_rle.dcm', 'CT_small.dcm'];

let dataDir: string;
const delivered: DeliveredEvent<'InstanceStored'>[] = [];
const watcher: AtriumModule = {
  name: 'upgrade-watcher',
  eventHandlers: () => [on('InstanceStored', 'upgrade-watcher.seen', async (event) => { delivered.push(event); })],
};
const modules = [...MODULES, watcher];

async function open(): Promise<Archive> {
  const config = loadConfig({ env: { ATRIUM_DATA: dataDir, ATRIUM_LOG_LEVEL: 'silent' }, sections: configSectionsOf(modules) });
  return await openArchive(config, { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }), modules });
}

async function appliedMigrations(archive: Archive): Promise<string[]> {
  const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(archive.database.kysely());
  return rows.rows.map((r) => r.name);
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'atrium-upgrade-'));
  // The fixture is never opened in place: opening migrates.
  await cp(FIXTURE, dataDir, { recursive: true, filter: (source) => !source.endsWith('README.md') });
});
after(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test('the previous release\'s data folder migrates once and keeps everything', async () => {
  const archive = await open();
  try {
    assert.deepEqual(await appliedMigrations(archive), migrationsOf(MODULES).map((m) => m.name).sort(), 'every migration of today is applied');
    const stats = await archive.index.statistics();
    assert.deepEqual({ studies: stats.studies, series: stats.series, instances: stats.instances, quarantined: stats.quarantined },
      { studies: 3, series: 3, instances: 3, quarantined: 1 });

    // Every stored instance still reads back byte for byte: the same bytes as the file it was imported from.
    const expected = new Set(await Promise.all(STORED_FILES.map(async (f) => sha256(await readFile(path.join(TESTDATA, f))))));
    const actual = new Set<string>();
    for await (const object of archive.index.storedObjects()) {
      if (object.where !== 'instance') continue;
      const { bytes } = await archive.retrieve.openInstance(object.sopInstanceUid!);
      const chunks: Buffer[] = [];
      for await (const chunk of bytes) chunks.push(chunk as Buffer);
      actual.add(sha256(Buffer.concat(chunks)));
    }
    assert.deepEqual(actual, expected);

    // The events the old release wrote (it had no dispatcher) are not replayed; a new store's event is delivered.
    const dispatcher = eventDispatcher(archive);
    await dispatcher.runOnce();
    assert.equal(delivered.length, 0, 'events from before the upgrade are history, not news');
    const result = await archive.ingest.ingest([await readFile(path.join(TESTDATA, 'JPEG2000.dcm'))], { source: 'test' });
    assert.equal(result.status, 'stored');
    await dispatcher.runOnce();
    await dispatcher.runOnce();
    assert.deepEqual(delivered.map((e) => e.payload.sopInstanceUid), [(result as { sopInstanceUid: string }).sopInstanceUid]);
  } finally {
    await archive.close();
  }
});

test('opening it again (a restart) migrates nothing more and changes nothing', async () => {
  const archive = await open();
  try {
    assert.deepEqual(await appliedMigrations(archive), migrationsOf(MODULES).map((m) => m.name).sort());
    const stats = await archive.index.statistics();
    assert.deepEqual({ studies: stats.studies, instances: stats.instances, quarantined: stats.quarantined }, { studies: 4, instances: 4, quarantined: 1 });
    const dispatcher = eventDispatcher(archive);
    await dispatcher.runOnce();
    assert.equal(delivered.length, 1, 'a delivered event is not delivered again after the restart');
  } finally {
    await archive.close();
  }
});
