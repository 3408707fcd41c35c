/**
 * Ingest benchmark: how fast does `atrium import` archive a folder of CT slices, compared with a plain
 * durable file copy of the same folder on the same disk? A benchmark, not a test: nothing is asserted
 * about time. See docs/benchmarks.md.
 *
 *   npm run bench:ingest -- [--count 1000] [--concurrency 4] [--engines sqlite,postgres]
 *                           [--per-study 100] [--repeat 3] [--tmp <dir>] [--json]
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './support/args.ts';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { createReadStream } from 'node:fs';
import { openArchive, type Archive } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';
import { importPaths } from '../src/archive/import/folder-import.ts';
import { Metrics } from '../src/observability/metrics.ts';
import { createTestSchema } from '../test/support/postgres.ts';
import { generateCorpus, listFiles, warmPageCache, type Corpus } from './support/corpus.ts';
import { durableCopy } from './support/durable-copy.ts';

const ENGINES = ['sqlite', 'postgres'] as const;
type Engine = (typeof ENGINES)[number];

interface RunResult {
  name: string;
  /** Files handed to the run, stored by it, and (Atrium) instances the index counts afterwards. */
  files: number;
  stored: number;
  indexed: number | null;
  bytes: number;
  seconds: number;
  instancesPerSecond: number;
  mbPerSecond: number;
  /** This run's rate over the baseline copy's rate (1 for the baseline itself). */
  ratioToCopy: number;
  /** CPU time of this process (user + system) over wall time; 100 = one core busy. */
  cpuPercent: number;
  /** With --repeat: the seconds of every repetition (the row shows the median one). */
  secondsAll?: number[];
  duplicates?: number;
  skipped?: number;
  quarantined?: number;
  failed?: number;
  warnings: string[];
}


const { args: parsed, usage, wholeNumber } = benchArgs('bench:ingest', '[--count N] [--concurrency N] [--engines sqlite,postgres] [--per-study N] [--repeat N] [--stow] [--tmp DIR] [--json]', {
  count: { type: 'string', default: '1000' },
  stow: { type: 'boolean', default: false },
  concurrency: { type: 'string', short: 'j', default: '4' },
  engines: { type: 'string' },
  'per-study': { type: 'string', default: '100' },
  repeat: { type: 'string', default: '3' },
  tmp: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const args = parsed as Record<string, string> & { json: boolean; stow: boolean };

const count = wholeNumber('count');
const concurrency = wholeNumber('concurrency');
const perStudy = wholeNumber('per-study');
const repeat = wholeNumber('repeat');
const enginesExplicit = args.engines !== undefined;
const engines: Engine[] = (args.engines ?? ENGINES.join(',')).split(',').map((e) => e.trim().replace(/\+fs$/, '')).filter(Boolean).map((e) => {
  if (!(ENGINES as readonly string[]).includes(e)) usage(`--engines takes ${ENGINES.join(', ')} (comma-separated), got "${e}"`);
  return e as Engine;
});
if (engines.length === 0) usage('--engines is empty');

/** Progress and notes go to stderr, so that --json leaves stdout to the result. */
const note = (message: string) => console.error(`[bench] ${message}`);

const cleanups: (() => Promise<void>)[] = [];
async function cleanup(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) {
    await fn().catch((error: unknown) => console.error(`[bench] cleanup failed: ${(error as Error).message}`));
  }
}
process.once('SIGINT', () => {
  note('interrupted: cleaning up');
  void cleanup().finally(() => process.exit(130));
});

/** Flushes every file system's dirty data (Linux/macOS `sync`), so that no run pays for another's write-back. */
function syncAll(): void {
  try {
    execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // No `sync` binary: the corpus and every run fsync their own files anyway.
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number; cpuPercent: number }> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const value = await fn();
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  return { value, seconds, cpuPercent: ((used.user + used.system) / 1e6 / seconds) * 100 };
}

function rates(bytes: number, files: number, seconds: number) {
  return { instancesPerSecond: files / seconds, mbPerSecond: bytes / 1e6 / seconds };
}

async function runBaseline(corpus: Corpus, tmpRoot: string): Promise<RunResult> {
  const dest = await mkdtemp(join(tmpRoot, 'copy-'));
  note(`baseline: durable copy of ${corpus.files.length} files, ${concurrency} at a time -> ${dest}`);
  const { value: summary, seconds, cpuPercent } = await timed(() => durableCopy(corpus.root, corpus.files, dest, concurrency));
  const onDisk = (await listFiles(dest)).filter((f) => !f.includes(`${join(dest, '.incoming')}`)).length;
  const warnings: string[] = [];
  if (summary.copied !== count || onDisk !== count) warnings.push(`baseline copied ${summary.copied} files (${onDisk} on disk), expected ${count}`);
  await rm(dest, { recursive: true, force: true });
  return {
    name: 'baseline: fsync\'d copy', files: summary.files, stored: summary.copied, indexed: null, bytes: summary.bytes, seconds,
    ...rates(summary.bytes, summary.copied, seconds), ratioToCopy: 1, cpuPercent, warnings,
  };
}

/**
 * `--stow`: the corpus ingested as STOW-RS does with the parts of one request, one object at a time, either
 * each with its own ingest() (blob fsyncs, then an index commit, then the next object) or all through one
 * IngestBatch (blob commits overlapping the next objects, one index transaction per 64 objects).
 */
async function runStowLike(engine: Engine, corpus: Corpus, tmpRoot: string, mode: 'one-by-one' | 'batch'): Promise<RunResult> {
  const name = `atrium: ${engine}+fs, ${mode === 'batch' ? 'IngestBatch' : 'ingest() each'}, 1 at a time`;
  return await withArchive(engine, tmpRoot, name, async (archive) => {
    const stream = (file: string) => createReadStream(file, { highWaterMark: 1024 * 1024 });
    const statuses: string[] = [];
    if (mode === 'one-by-one') {
      for (const file of corpus.files) statuses.push((await archive.ingest.ingest(stream(file), { source: 'stow', originalName: file })).status);
    } else {
      const batch = archive.ingest.batch({ source: 'stow' });
      for (const file of corpus.files) await batch.add(stream(file), { originalName: file });
      statuses.push(...(await batch.commit()).map((r) => r.status));
    }
    const stored = statuses.filter((s) => s === 'stored').length;
    return { files: corpus.files.length, stored, bytes: corpus.bytes, quarantined: statuses.filter((s) => s === 'quarantined').length, failed: statuses.filter((s) => s === 'failed').length };
  });
}

/** A fresh archive of the engine (opening not timed), `run` timed, then the index's count and clean-up. */
async function withArchive(engine: Engine, tmpRoot: string, name: string,
  run: (archive: Archive) => Promise<{ files: number; stored: number; bytes: number; quarantined?: number; failed?: number }>): Promise<RunResult> {
  const dataDir = await mkdtemp(join(tmpRoot, `atrium-${engine}-`));
  const env: Record<string, string> = { ATRIUM_LOG_LEVEL: 'warn' };
  if (engine === 'postgres') {
    const schema = await createTestSchema();
    cleanups.push(() => schema.drop());
    Object.assign(env, { ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: schema.connectionString });
  }
  note(`${name}: data folder ${dataDir}`);
  const archive = await openArchive(loadConfig({ dataDir, env }), { log: pino({ level: 'warn' }, pino.destination(2)), metrics: new Metrics({ defaultMetrics: false }) });
  let result;
  let indexed: number;
  try {
    result = await timed(() => run(archive));
    indexed = (await archive.index.statistics()).instances;
  } finally {
    await archive.close();
  }
  await rm(dataDir, { recursive: true, force: true });
  const { value: summary, seconds, cpuPercent } = result;
  const warnings: string[] = [];
  if (summary.stored !== count) warnings.push(`${name} stored ${summary.stored} instances, expected ${count}`);
  if (indexed !== count) warnings.push(`${name}: index counts ${indexed} instances, expected ${count}`);
  return {
    name, files: summary.files, stored: summary.stored, indexed, bytes: summary.bytes, seconds,
    ...rates(summary.bytes, summary.stored, seconds), ratioToCopy: 0, cpuPercent, quarantined: summary.quarantined, failed: summary.failed, warnings,
  };
}

async function runAtrium(engine: Engine, corpus: Corpus, tmpRoot: string): Promise<RunResult> {
  const dataDir = await mkdtemp(join(tmpRoot, `atrium-${engine}-`));
  // Only what is set here: ATRIUM_* variables of the calling shell do not leak into the benchmark.
  const env: Record<string, string> = { ATRIUM_LOG_LEVEL: 'warn' };
  if (engine === 'postgres') {
    const schema = await createTestSchema();
    cleanups.push(() => schema.drop());
    Object.assign(env, { ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: schema.connectionString });
    note(`${engine}+fs: PostgreSQL schema ${schema.schema}, blobs in ${dataDir}`);
  } else {
    note(`${engine}+fs: data folder ${dataDir}`);
  }
  const config = loadConfig({ dataDir, env });
  // Opening (migrations included) is not timed; the import is what `atrium import` does after opening.
  const archive = await openArchive(config, { log: pino({ level: 'warn' }, pino.destination(2)), metrics: new Metrics({ defaultMetrics: false }) });
  let indexed: number;
  let result;
  try {
    result = await timed(() => importPaths(archive.ingest, [corpus.root], { concurrency }));
    indexed = (await archive.index.statistics()).instances;
  } finally {
    await archive.close();
  }
  const { value: summary, seconds, cpuPercent } = result;
  const warnings: string[] = [];
  if (summary.stored !== count) warnings.push(`${engine}+fs stored ${summary.stored} instances, expected ${count}`);
  if (indexed !== count) warnings.push(`${engine}+fs index counts ${indexed} instances, expected ${count}`);
  for (const k of summary.skipped.slice(0, 3)) warnings.push(`skipped (not DICOM) ${k.file}: ${k.reason}`);
  for (const q of summary.quarantined.slice(0, 3)) warnings.push(`quarantined ${q.file}: ${q.reasonCode}: ${q.reason}`);
  for (const f of summary.failed.slice(0, 3)) warnings.push(`failed ${f.file}: ${f.error}`);
  await rm(dataDir, { recursive: true, force: true });
  return {
    name: `atrium: ${engine}+fs`, files: summary.files, stored: summary.stored, indexed, bytes: summary.bytes, seconds,
    ...rates(summary.bytes, summary.stored, seconds), ratioToCopy: 0, cpuPercent,
    duplicates: summary.duplicates, skipped: summary.skipped.length, quarantined: summary.quarantined.length, failed: summary.failed.length, warnings,
  };
}

/** The repetition with the median time (the lower middle one for an even count), with every time kept. */
function median(runs: RunResult[]): RunResult {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  return { ...sorted[Math.floor((sorted.length - 1) / 2)], secondsAll: runs.map((r) => r.seconds) };
}

function table(rows: RunResult[]): string {
  const header = ['run', 'stored', 'indexed', 'seconds', 'inst/s', 'MB/s', 'CPU%', 'vs copy'];
  const cells = rows.map((r) => [
    r.name, String(r.stored), r.indexed === null ? '-' : String(r.indexed), r.seconds.toFixed(2), r.instancesPerSecond.toFixed(1),
    r.mbPerSecond.toFixed(1), `${r.cpuPercent.toFixed(0)}%`, r.ratioToCopy.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

async function main(): Promise<void> {
  const tmpRoot = await mkdtemp(join(args.tmp ?? os.tmpdir(), 'atrium-bench-'));
  cleanups.push(() => rm(tmpRoot, { recursive: true, force: true }));

  // Fail early, before generating anything, when PostgreSQL was asked for and is not there.
  const runEngines = [...engines];
  const skipped: string[] = [];
  if (runEngines.includes('postgres')) {
    try {
      const probe = await createTestSchema();
      await probe.drop();
    } catch (error) {
      if (enginesExplicit) throw error;
      runEngines.splice(runEngines.indexOf('postgres'), 1);
      skipped.push(`postgres+fs skipped: ${(error as Error).message}`);
      note(`WARNING: ${skipped.at(-1)}`);
    }
  }

  note(`generating ${count} synthetic CT instances (512x512x16-bit) in studies of ${perStudy} under ${tmpRoot}`);
  const genStart = performance.now();
  const corpus = await generateCorpus(join(tmpRoot, 'corpus'), count, perStudy, (n) => { if (n % 250 === 0) note(`  ${n}/${count}`); });
  note(`corpus: ${corpus.files.length} files, ${(corpus.bytes / 1e6).toFixed(1)} MB, ${corpus.studies} studies, made in ${((performance.now() - genStart) / 1000).toFixed(1)} s (not timed)`);
  syncAll();
  await warmPageCache(corpus.files);

  // Repetitions are interleaved (copy, engines, copy, engines...) so that a slow spell of a shared
  // machine hits every run alike; each row then shows its median repetition.
  const all: RunResult[][] = [];
  for (let r = 0; r < repeat; r++) {
    if (repeat > 1) note(`repetition ${r + 1}/${repeat}`);
    const round = [await runBaseline(corpus, tmpRoot)];
    for (const engine of runEngines) {
      syncAll();
      round.push(await runAtrium(engine, corpus, tmpRoot));
      if (args.stow) {
        for (const mode of ['one-by-one', 'batch'] as const) {
          syncAll();
          round.push(await runStowLike(engine, corpus, tmpRoot, mode));
        }
      }
    }
    all.push(round);
  }
  const rows = all[0].map((_, i) => median(all.map((round) => round[i])));
  const baseline = rows[0];
  for (const row of rows.slice(1)) row.ratioToCopy = row.instancesPerSecond / baseline.instancesPerSecond;

  const cpus = os.cpus();
  const machine = {
    cores: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version, platform: `${process.platform} ${process.arch}`, tmp: tmpRoot,
  };
  const pageCache = `corpus fsynced after generation, then read once in full (warm page cache) before any timed run; runs in order: baseline copy, then Atrium per engine, with a global \`sync\` before each Atrium run${repeat > 1 ? `; that sequence repeated ${repeat} times` : ''}`;
  const warnings = [...skipped, ...new Set(all.flat().flatMap((r) => r.warnings))];

  if (args.json) {
    console.log(JSON.stringify({
      date: new Date().toISOString(), machine, count, concurrency, perStudy, repeat, corpusBytes: corpus.bytes, studies: corpus.studies, pageCache,
      baselineMethod: 'per file: stream into .incoming/<uuid>.tmp, fsync file, close, mkdir -p, rename into place, fsync destination folder (and any folder mkdir created)',
      runs: rows, warnings,
    }, null, 2));
  } else {
    console.log('');
    console.log(`Atrium ingest benchmark: ${count} CT instances 512x512x16-bit (${(corpus.bytes / 1e6).toFixed(1)} MB, ${corpus.studies} studies), concurrency ${concurrency}, median of ${repeat}`);
    console.log(`Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB RAM, Node ${machine.node}, ${machine.platform}`);
    console.log(`Disk: temp folders under ${tmpRoot}`);
    console.log(`Page cache: ${pageCache}.`);
    console.log('Baseline: per file, stream into a temp file, fsync it, rename into place, fsync the folder (1 dir fsync per file).');
    console.log('');
    console.log(table(rows));
    console.log('');
    if (repeat > 1) console.log(`seconds per repetition: ${rows.map((r) => `${r.name} ${r.secondsAll!.map((x) => x.toFixed(2)).join(' / ')}`).join('; ')}`);
    console.log('inst/s and MB/s (10^6 bytes) are over the timed import/copy only; "vs copy" = rate / baseline rate;');
    console.log('CPU% = CPU time of this Node process / wall time (100% = one core; PostgreSQL server CPU not included).');
    if (warnings.length) {
      console.log('');
      for (const w of warnings) console.log(`!!! WARNING: ${w}`);
    }
  }
  if (all.flat().some((r) => r.stored !== count || (r.indexed !== null && r.indexed !== count))) {
    console.error(`\n!!!!!!!! WARNING: NOT EVERY RUN STORED ${count} INSTANCES: the figures above are not comparable !!!!!!!!\n`);
    process.exitCode = 1;
  }
}

try {
  await main();
} catch (error) {
  console.error(`bench:ingest: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
