// A module's own configuration section: read from the file and ATRIUM_* variables with the core's, validated
// with them, refused when two define the same thing, and required by openArchive when the module is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, sectionOf, type ConfigSection } from './config.ts';
import { MODULES, openArchive } from '../app.ts';

interface WorklistSettings { port: number; stations: string[]; mllp: { maxFrameKiB: number } | null }

/** A stand-in for a module's section, as the RIS module will have one. */
const worklist: ConfigSection<WorklistSettings> = {
  key: 'worklist',
  keys: ['port', 'stations', 'mllp'],
  environment: { ATRIUM_WORKLIST_PORT: 'worklist.port', ATRIUM_WORKLIST_STATIONS: 'worklist.stations' },
  load: (read) => ({
    port: read.int('worklist.port', 2575, 0, 65535),
    stations: read.list('worklist.stations', []),
    mllp: read.object('worklist.mllp', ['maxFrameKiB']) ? { maxFrameKiB: read.int('worklist.mllp.maxFrameKiB', 1024, 1, 65536) } : null,
  }),
};

async function withFile(content: unknown, run: (file: string) => Promise<void> | void) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-section-'));
  try {
    const file = path.join(dir, 'atrium.json');
    await writeFile(file, JSON.stringify(content));
    await run(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a section is read with its defaults, from the file, and from its variables (which win)', async () => {
  const env = { ATRIUM_DATA: '/tmp/atrium-section' };
  assert.deepEqual(sectionOf(loadConfig({ env, sections: [worklist] }), worklist), { port: 2575, stations: [], mllp: null });
  await withFile({ worklist: { port: 3000, stations: ['CT1'], mllp: { maxFrameKiB: 64 } } }, (file) => {
    const fromFile = sectionOf(loadConfig({ env, file, sections: [worklist] }), worklist);
    assert.deepEqual(fromFile, { port: 3000, stations: ['CT1'], mllp: { maxFrameKiB: 64 } });
    const fromEnv = sectionOf(loadConfig({ env: { ...env, ATRIUM_WORKLIST_PORT: '4000', ATRIUM_WORKLIST_STATIONS: 'CT1, MR2' }, file, sections: [worklist] }), worklist);
    assert.deepEqual(fromEnv, { port: 4000, stations: ['CT1', 'MR2'], mllp: { maxFrameKiB: 64 } });
  });
});

test("a section's problems are listed with the core's, in one error", async () => {
  await withFile({ worklist: { port: 70000, color: 'blue', mllp: { frames: 1 } }, http: { port: -1 } }, (file) => {
    const error = (() => { try { loadConfig({ env: { ATRIUM_DATA: '/tmp/x' }, file, sections: [worklist] }); } catch (e) { return e; } })();
    assert.ok(error instanceof ConfigError);
    const text = error.message;
    for (const expected of [/worklist\.port must be a whole number/, /worklist.*color/, /worklist\.mllp.*frames/, /http\.port must be a whole number/]) assert.match(text, expected);
  });
  // Without the section installed, its key is an unknown option.
  await withFile({ worklist: { port: 1 } }, (file) => {
    assert.throws(() => loadConfig({ env: { ATRIUM_DATA: '/tmp/x' }, file }), /unknown option "worklist"/);
  });
});

test('two definitions of one key or variable, or a variable outside its section, are refused', () => {
  const env = { ATRIUM_DATA: '/tmp/x' };
  assert.throws(() => loadConfig({ env, sections: [worklist, { ...worklist, environment: {} }] }), /section "worklist" is defined twice/);
  assert.throws(() => loadConfig({ env, sections: [{ ...worklist, key: 'dicom' }] }), /section "dicom" is defined twice/);
  assert.throws(() => loadConfig({ env, sections: [{ ...worklist, environment: { ATRIUM_HTTP_PORT: 'worklist.port' } }] }), /ATRIUM_HTTP_PORT is defined twice/);
  assert.throws(() => loadConfig({ env, sections: [{ ...worklist, environment: { ATRIUM_WL: 'http.port' } }] }), /outside the section/);
});

test('sectionOf and openArchive refuse a configuration loaded without an installed module\'s section', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-section-'));
  try {
    const config = loadConfig({ env: { ATRIUM_DATA: dir, ATRIUM_LOG_LEVEL: 'silent' } });
    assert.throws(() => sectionOf(config, worklist), /loaded without the "worklist" section/);
    await assert.rejects(openArchive(config, { modules: [...MODULES, { name: 'worklist', config: worklist }] }), /without the sections of (.*, )?worklist/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
