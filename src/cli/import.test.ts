/**
 * `atrium import` over the whole shared test corpus, as a user runs it: every file is either stored and
 * retrieved byte-exact, an identical duplicate of a stored one, quarantined whole with a specific reason,
 * or skipped as not DICOM at all; the broken files never crash the import.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { openArchive, type Archive, MODULES } from '../app.ts';
import { loadConfig } from '../config/config.ts';
import { Metrics } from '../observability/metrics.ts';
import type { ImportSummary } from '../archive/import/folder-import.ts';
import { configSectionsOf } from '../modules/module.ts';

const CORPUS = fileURLToPath(new URL('../../../shared/testdata/dicom', import.meta.url));
const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

/** Codes a quarantined corpus file may carry: each names what is wrong, none is a catch-all. */
const SPECIFIC_REASONS = new Set([
  'truncated', 'invalid-vr', 'missing-transfer-syntax', 'missing-file-meta', 'missing-uid', 'invalid-uid',
  'inconsistent-file-meta', 'not-storable', 'duplicate-conflict', 'delimiter-mismatch', 'length-overflow', 'absurd-length',
]);

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

function runImport(dataDir: string, ...args: string[]): { status: number | null; summary: ImportSummary; stderr: string } {
  const run = spawnSync(process.execPath, [MAIN, 'import', '--data', dataDir, '--json', '--no-progress', ...args], {
    encoding: 'utf8', env: { ...process.env, ATRIUM_LOG_LEVEL: 'error' }, maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(run.signal, null, run.stderr);
  return { status: run.status, summary: JSON.parse(run.stdout), stderr: run.stderr };
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

let dataDir: string;
let first: ReturnType<typeof runImport>;
let archive: Archive;

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'atrium-import-'));
  first = runImport(dataDir, CORPUS);
  archive = await openArchive(loadConfig({ sections: configSectionsOf(MODULES),  dataDir, env: {} }), { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }) });
});

after(async () => {
  await archive?.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('every corpus file has exactly one outcome, and the import says so with a non-zero exit', async () => {
  const files = (await walk(CORPUS)).filter((f) => path.basename(f) !== 'DICOMDIR');
  const outcomes = new Map(first.summary.outcomes!.map((o) => [o.file, o]));
  for (const file of files) assert.ok(outcomes.has(file), `no outcome for ${file}`);
  assert.equal(first.summary.failed.length, 0, JSON.stringify(first.summary.failed));
  assert.equal(first.summary.files, first.summary.outcomes!.length);
  // Quarantined objects are a failure to store: scripts must be able to see it.
  assert.equal(first.status, 1);
  assert.ok(first.summary.stored >= 90, `only ${first.summary.stored} stored`);
  assert.ok(first.summary.dicomdirs >= 2);
  assert.deepEqual(first.summary.missingFromDicomdir, []);
});

test('stored files come back byte-exact, duplicates equal what is stored', async () => {
  // Instances the corpus has in several transfer syntaxes (MR_small*, the NoMeta pair...): one copy is kept, and
  // each other copy recorded as a quality finding; the kept copy is byte-exact to one of the files.
  const findings = await archive.index.listFindings({}, { limit: 1000, offset: 0 });
  const copies = new Map<string, string[]>();
  for (const f of findings.items) {
    if (/same-instance-other-transfer-syntax|lossy-copy-dropped|lossless-copy-replaced-lossy/.test(f.code)) copies.set(f.sopInstanceUid!, [...(copies.get(f.sopInstanceUid!) ?? []), f.code]);
  }
  assert.ok((copies.get('1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457')?.length ?? 0) >= 5, 'MR_small in other syntaxes: one copy kept');
  for (const outcome of first.summary.outcomes!) {
    if (outcome.status !== 'stored' && outcome.status !== 'duplicate') continue;
    const original = await readFile(outcome.file);
    const { bytes } = await archive.retrieve.openInstance(outcome.sopInstanceUid!);
    const stored = await readAll(bytes);
    if (copies.has(outcome.sopInstanceUid!)) {
      const same = first.summary.outcomes!.filter((o) => o.sopInstanceUid === outcome.sopInstanceUid);
      const files = await Promise.all(same.map((o) => readFile(o.file)));
      assert.ok(files.some((f) => stored.equals(f) || stored.subarray(stored.length - f.length).equals(f)), `${outcome.file}: kept copy is none of the files`);
      continue;
    }
    if (outcome.fileMeta === 'generated') {
      // A bare data set: stored after the File Meta generated for it, its own bytes unchanged.
      assert.equal(stored.toString('latin1', 128, 132), 'DICM');
      assert.ok(stored.subarray(stored.length - original.length).equals(original), `${outcome.file}: data set not byte-exact`);
    } else if (outcome.status === 'stored') assert.ok(stored.equals(original), `${outcome.file} not byte-exact`);
    else assert.ok(stored.equals(original), `${outcome.file} reported identical but differs`);
  }
});

test('quarantined files are kept whole with a specific reason; non-DICOM files are skipped', async () => {
  const quarantine = await archive.index.listQuarantine({ limit: 1000, offset: 0 });
  const byName = new Map(quarantine.items.map((q) => [q.originalName, q]));
  for (const outcome of first.summary.outcomes!) {
    if (outcome.status === 'quarantined') {
      assert.ok(SPECIFIC_REASONS.has(outcome.reasonCode!), `${outcome.file}: unexpected reason ${outcome.reasonCode}`);
      const entry = byName.get(outcome.file);
      assert.ok(entry, `${outcome.file} not listed in quarantine`);
      assert.ok(entry.reason.length > 10);
      const kept = await readAll(await archive.retrieve.openQuarantined(entry.id));
      const original = await readFile(outcome.file);
      assert.ok(outcome.fileMeta === 'generated' ? kept.subarray(kept.length - original.length).equals(original) : kept.equals(original));
    }
    // no_meta.dcm begins with a stray 0x20 byte before its first element: DCMTK does not read it either.
    if (outcome.status === 'skipped') assert.match(path.basename(outcome.file), /(\.txt|\.json|\.gz|\.dump|README|^no_meta\.dcm)$/i);
  }
  const reasonOf = (name: string) => first.summary.outcomes!.find((o) => path.basename(o.file) === name)?.reasonCode;
  assert.equal(reasonOf('MR_truncated.dcm'), 'truncated');
  assert.equal(reasonOf('rtplan_truncated.dcm'), 'truncated');
  assert.equal(reasonOf('meta_missing_tsyntax.dcm'), 'missing-transfer-syntax');
  // Bare data sets (no File Meta) get one generated; the two NoMeta files are one RT Plan in two encodings.
  const noMeta = first.summary.outcomes!.filter((o) => /ExplVR_(Lit|Big)EndNoMeta/.test(o.file));
  assert.deepEqual(noMeta.map((o) => o.fileMeta), ['generated', 'generated']);
  assert.ok(noMeta.some((o) => o.status === 'stored'), JSON.stringify(noMeta));
  assert.ok(first.summary.generatedFileMeta >= 1);
  assert.equal(first.summary.outcomes!.find((o) => path.basename(o.file) === 'CT_small.dcm')?.status, 'stored');
});

test('importing the same corpus again stores nothing new and leaves the archive as it was', async () => {
  const before = await archive.index.statistics();
  const again = runImport(dataDir, CORPUS);
  assert.equal(again.summary.stored, 0);
  assert.equal(again.summary.duplicates, first.summary.stored + first.summary.duplicates);
  const after = await archive.index.statistics();
  assert.equal(after.instances, before.instances);
  assert.equal(after.studies, before.studies);
});

test('a DICOMDIR given directly imports the files it references', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-dicomdir-'));
  try {
    const run = runImport(dir, path.join(CORPUS, 'dicomdirtests', 'TINY_ALPHA', 'DICOMDIR'));
    assert.equal(run.summary.dicomdirs, 1);
    assert.ok(run.summary.stored > 0);
    assert.equal(run.summary.stored + run.summary.duplicates + run.summary.quarantined.length, run.summary.files);
    assert.deepEqual(run.summary.missingFromDicomdir, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
