/**
 * DICOMweb benchmark: Atrium (`atrium serve`) beside Orthanc with its DICOMweb plugin, in one run.
 * - STOW-RS: N CT instances (512x512x16-bit) in ONE multipart/related request to a fresh, empty server;
 * - WADO-RS: retrieve of one ~500 MB study (multipart/related; type="application/dicom"; transfer-syntax=*);
 * - QIDO-RS: study-search latency (p50/p95) at 100k indexed instances for Atrium (index rows seeded
 *   straight into SQLite), and at a small, same-for-both scale (2,000 real instances) for both servers.
 * A benchmark, not a test: nothing is asserted about time. See docs/benchmarks.md.
 *
 *   npm run bench:dicomweb -- [--stow-count 200] [--wado-count 1000] [--qido-studies 10000]
 *                             [--qido-small-studies 200] [--queries 200] [--targets atrium,orthanc]
 *                             [--repeat 3] [--ready-timeout 30] [--tmp <dir>] [--json]
 */
import { benchArgs } from './support/args.ts';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { generateCorpus, warmPageCache, type Corpus } from './support/corpus.ts';
import { cpuSeconds, freePort, getJson, killAllTracked, logTail, refuseNewProcesses, startServer, stopServer, waitForHttp, type Server, cleanupOnExit, syncAll } from './support/processes.ts';
import { closeIdleConnections, getMultipart, getText, stow, type PartSource } from './support/dicomweb-http.ts';
import { describeStudies, qidoQueries, seedAtriumIndex, smallInstances, type QidoQuery } from './support/study-index.ts';

const TARGETS = ['atrium', 'orthanc'] as const;
type TargetName = (typeof TARGETS)[number];
const LABEL: Record<TargetName, string> = { atrium: 'Atrium', orthanc: 'Orthanc' };
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const STOW_GOAL = 5;
/** Where Debian's orthanc-dicomweb package (and a local build) put the plugin. */
const PLUGIN_DIRS = ['/usr/share/orthanc/plugins', '/usr/lib/orthanc', '/usr/local/share/orthanc/plugins', '/usr/local/lib/orthanc'];


const { args: parsed, usage, wholeNumber } = benchArgs('bench:dicomweb', '[--stow-count N] [--wado-count N] [--qido-studies N] [--qido-small-studies N] [--queries N] [--targets atrium,orthanc] [--repeat N] [--ready-timeout S] [--tmp DIR] [--json]', {
  'stow-count': { type: 'string', default: '200' },
  'wado-count': { type: 'string', default: '1000' },
  'qido-studies': { type: 'string', default: '10000' },
  'qido-small-studies': { type: 'string', default: '200' },
  queries: { type: 'string', default: '200' },
  targets: { type: 'string', default: TARGETS.join(',') },
  repeat: { type: 'string', default: '3' },
  'ready-timeout': { type: 'string', default: '30' },
  tmp: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const args = parsed as Record<string, string> & { json: boolean };

const stowCount = wholeNumber('stow-count');
const wadoCount = wholeNumber('wado-count');
const qidoStudies = wholeNumber('qido-studies', 0);
const qidoSmallStudies = wholeNumber('qido-small-studies', 0);
const queryCount = wholeNumber('queries');
const repeat = wholeNumber('repeat');
const readyTimeoutMs = wholeNumber('ready-timeout') * 1000;
/** Instances per study of the QIDO data sets (1 or 2 series each). */
const QIDO_PER_STUDY = 10;
/** Queries sent first to each server and not counted (JIT, caches, the first connection). */
const WARMUP = 10;
const targets: TargetName[] = args.targets.split(',').map((t) => t.trim()).filter(Boolean).map((t) => {
  if (!(TARGETS as readonly string[]).includes(t)) usage(`--targets takes ${TARGETS.join(', ')} (comma-separated), got "${t}"`);
  return t as TargetName;
});
if (targets.length === 0) usage('--targets is empty');
if (wadoCount < stowCount) usage('--wado-count must be at least --stow-count (the STOW corpus is the first files of the WADO study)');

/** Progress and notes go to stderr, so that --json leaves stdout to the result. */
const note = (message: string) => console.error(`[bench] ${message}`);

const { cleanups, cleanup } = cleanupOnExit(note, closeIdleConnections);

/** The DICOMweb plugin of Orthanc, or null when it is not installed. */
function findDicomwebPlugin(): string | null {
  for (const dir of PLUGIN_DIRS) {
    if (!existsSync(dir)) continue;
    const hit = readdirSync(dir).filter((f) => /^libOrthancDicomWeb\.so/.test(f)).sort((a, b) => a.length - b.length)[0];
    if (hit) return join(dir, hit);
  }
  return null;
}

/** A started server: its DICOMweb root, how to count what it holds, how to stop it. */
interface Target {
  name: TargetName;
  /** e.g. "Atrium (sqlite+fs)". */
  mode: string;
  /** http://127.0.0.1:port/dicom-web */
  dicomweb: string;
  server: Server;
  countInstances(): Promise<number>;
  stop(): Promise<void>;
}

async function startAtrium(tmpRoot: string, dataDir?: string): Promise<Target> {
  const dir = await mkdtemp(join(tmpRoot, 'atrium-'));
  const data = dataDir ?? join(dir, 'data');
  const [httpPort, dicomPort] = [await freePort(), await freePort()];
  // Only what is set here: ATRIUM_* variables of the calling shell do not leak into the benchmark.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ATRIUM_')));
  Object.assign(env, {
    ATRIUM_DATA: data, ATRIUM_HTTP_HOST: '127.0.0.1', ATRIUM_HTTP_PORT: String(httpPort),
    ATRIUM_DICOM_HOST: '127.0.0.1', ATRIUM_DICOM_PORT: String(dicomPort), ATRIUM_LOG_LEVEL: 'warn',
    // Orthanc runs here without authentication too: both are measured without it, on equal footing
    // (explicit, and Atrium logs it; the cost of checking an API key per request is not measured).
    ATRIUM_SECURITY_ENABLED: 'false',
  });
  // The same Node that runs the benchmark (npm's node 24), no npx in between.
  const server = startServer(process.execPath, ['src/cli/main.ts', 'serve'], { log: join(dir, 'atrium.log'), env, cwd: REPO });
  const base = `http://127.0.0.1:${httpPort}`;
  const target: Target = {
    name: 'atrium', mode: 'atrium serve (sqlite+fs, fsync)', dicomweb: `${base}/dicom-web`, server,
    countInstances: async () => Number((await getJson(`${base}/api/statistics`)).instances),
    stop: async () => {
      closeIdleConnections();
      await stopServer(server, 30_000);
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
  try {
    await Promise.race([
      waitForHttp(`${base}/api/health`, readyTimeoutMs),
      server.exited.then((code) => { throw new Error(`Atrium exited (${code}) before answering on ${base}`); }),
    ]);
  } catch (error) {
    const tail = await logTail(server.log, 8);
    await target.stop();
    throw new Error(`${(error as Error).message}${tail ? `\n${tail}` : ''}`);
  }
  return target;
}

async function startOrthanc(tmpRoot: string, plugin: string): Promise<Target> {
  const dir = await mkdtemp(join(tmpRoot, 'orthanc-'));
  const [httpPort, dicomPort] = [await freePort(), await freePort()];
  const config = {
    Name: 'AtriumBench',
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'index'),
    StorageCompression: false,
    SyncStorageArea: true, // Orthanc's default since 1.7.4: fsync after each write to the storage area
    Plugins: [plugin],
    DicomWeb: { Enable: true, Root: '/dicom-web/' },
    LuaScripts: [],
    HttpServerEnabled: true,
    HttpPort: httpPort,
    HttpCompressionEnabled: false,
    KeepAlive: true,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomServerEnabled: false,
    DicomPort: dicomPort,
    SaveJobs: false,
  };
  const configPath = join(dir, 'orthanc.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const server = startServer('/usr/sbin/Orthanc', [configPath], { log: join(dir, 'orthanc.log'), env: process.env });
  const base = `http://127.0.0.1:${httpPort}`;
  const target: Target = {
    name: 'orthanc', mode: 'Orthanc + DICOMweb plugin (SQLite index, fsync)', dicomweb: `${base}/dicom-web`, server,
    countInstances: async () => Number((await getJson(`${base}/statistics`)).CountInstances),
    stop: async () => {
      closeIdleConnections();
      await stopServer(server, 30_000);
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
  try {
    await Promise.race([
      waitForHttp(`${base}/system`, readyTimeoutMs),
      server.exited.then((code) => { throw new Error(`Orthanc exited (${code}) before answering on ${base}`); }),
    ]);
    const plugins = (await getJson(`${base}/plugins`)) as string[];
    if (!plugins.includes('dicom-web')) throw new Error(`Orthanc started without its DICOMweb plugin (plugins: ${plugins.join(', ') || 'none'}; tried ${plugin})`);
    const system = await getJson(`${base}/system`);
    const dw = await getJson(`${base}/plugins/dicom-web`);
    target.mode = `Orthanc ${system.Version} + DICOMweb plugin ${dw.Version} (SQLite index, fsync)`;
  } catch (error) {
    const tail = await logTail(server.log);
    await target.stop();
    throw new Error(`${(error as Error).message}\n${tail}`);
  }
  return target;
}

const startTarget = (name: TargetName, tmpRoot: string, plugin: string | null) =>
  name === 'atrium' ? startAtrium(tmpRoot) : startOrthanc(tmpRoot, plugin!);

/** Runs `fn` with `target` stopped afterwards in any case (and on Ctrl-C while it runs). */
async function withTarget<T>(start: Promise<Target>, fn: (t: Target) => Promise<T>): Promise<T> {
  const target = await start;
  const stop = () => target.stop();
  cleanups.push(stop);
  try {
    return await fn(target);
  } finally {
    cleanups.splice(cleanups.indexOf(stop), 1);
    await target.stop();
  }
}

// ---------------------------------------------------------------------------------------------------
// Results

interface StowRun {
  target: TargetName;
  mode: string;
  instances: number;
  bytes: number;
  status: number;
  seconds: number;
  instancesPerSecond: number;
  mbPerSecond: number;
  /** Instances the server holds afterwards. */
  stored: number;
  serverCpuPercent: number | null;
  secondsAll?: number[];
}

interface WadoRun {
  target: TargetName;
  mode: string;
  status: number;
  parts: number | null;
  /** Body bytes received. */
  bytes: number;
  seconds: number;
  mbPerSecond: number;
  serverCpuPercent: number | null;
  secondsAll?: number[];
}

interface QidoRun {
  target: TargetName;
  mode: string;
  dataSet: string;
  studies: number;
  instances: number;
  queries: number;
  p50Ms: number;
  p95Ms: number;
  meanMs: number;
  maxMs: number;
  meanResults: number;
  /** Queries that did not answer 200. */
  errors: number;
  serverCpuPercent: number | null;
  /** p50 per kind of query. */
  byKind: Record<string, { p50Ms: number; meanResults: number }>;
  /** Results of each query, in order (to compare servers on the same data). */
  results: number[];
}

const warnings: string[] = [];
const warn = (message: string) => {
  warnings.push(message);
  note(`WARNING: ${message}`);
};

function medianOf<T extends { seconds: number }>(runs: T[]): T & { secondsAll: number[] } {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  return { ...sorted[Math.floor((sorted.length - 1) / 2)], secondsAll: runs.map((r) => r.seconds) };
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];

function serverCpu(target: Target): () => number | null {
  const pid = target.server.child.pid!;
  const before = cpuSeconds(pid);
  const start = performance.now();
  return () => {
    const after = cpuSeconds(pid);
    return before === null || after === null ? null : ((after - before) / ((performance.now() - start) / 1000)) * 100;
  };
}

// ---------------------------------------------------------------------------------------------------
// Phases

async function timedStow(target: Target, files: PartSource[], bytes: number, what: string): Promise<StowRun> {
  note(`${target.mode}: STOW-RS of ${files.length} instances (${what})`);
  syncAll(); // nobody pays for an earlier run's write-back
  const cpu = serverCpu(target);
  const res = await stow(`${target.dicomweb}/studies`, files);
  const serverCpuPercent = cpu();
  if (res.status !== 200) warn(`${LABEL[target.name]} STOW-RS (${what}) answered HTTP ${res.status}: ${res.text.slice(0, 300)}`);
  const stored = await target.countInstances();
  return {
    target: target.name, mode: target.mode, instances: files.length, bytes, status: res.status, seconds: res.seconds,
    instancesPerSecond: files.length / res.seconds, mbPerSecond: bytes / 1e6 / res.seconds, stored, serverCpuPercent,
  };
}

async function wadoRetrieve(target: Target, studyUid: string): Promise<WadoRun> {
  const cpu = serverCpu(target);
  const res = await getMultipart(`${target.dicomweb}/studies/${studyUid}`, WADO_ACCEPT);
  const serverCpuPercent = cpu();
  if (res.status !== 200) warn(`${LABEL[target.name]} WADO-RS answered HTTP ${res.status}: ${res.text ?? ''}`);
  return {
    target: target.name, mode: target.mode, status: res.status, parts: res.parts, bytes: res.bytes, seconds: res.seconds,
    mbPerSecond: res.bytes / 1e6 / res.seconds, serverCpuPercent,
  };
}

async function runQueries(target: Target, queries: QidoQuery[], dataSet: string, studies: number, instances: number): Promise<QidoRun> {
  const url = (q: QidoQuery) => `${target.dicomweb}/studies?${q.query}`;
  for (const q of queries.slice(0, WARMUP)) await getText(url(q), 'application/dicom+json');
  const cpu = serverCpu(target);
  const times: number[] = [];
  const results: number[] = [];
  const byKind = new Map<string, { times: number[]; results: number[] }>();
  let errors = 0;
  for (const q of queries) {
    const res = await getText(url(q), 'application/dicom+json');
    let n = 0;
    if (res.status === 200) n = res.text.trim() ? (JSON.parse(res.text) as unknown[]).length : 0;
    else if (res.status === 204) n = 0;
    else {
      errors++;
      if (errors <= 3) warn(`${LABEL[target.name]} QIDO-RS ${q.query} answered HTTP ${res.status}: ${res.text.slice(0, 200)}`);
    }
    const ms = res.seconds * 1000;
    times.push(ms);
    results.push(n);
    const k = byKind.get(q.kind) ?? { times: [], results: [] };
    k.times.push(ms);
    k.results.push(n);
    byKind.set(q.kind, k);
  }
  const serverCpuPercent = cpu();
  const sorted = [...times].sort((a, b) => a - b);
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  return {
    target: target.name, mode: target.mode, dataSet, studies, instances, queries: queries.length,
    p50Ms: quantile(sorted, 0.5), p95Ms: quantile(sorted, 0.95), meanMs: mean(times), maxMs: sorted[sorted.length - 1],
    meanResults: mean(results), errors, serverCpuPercent,
    byKind: Object.fromEntries([...byKind].map(([kind, v]) => [kind, { p50Ms: quantile([...v.times].sort((a, b) => a - b), 0.5), meanResults: mean(v.results) }])),
    results,
  };
}

/** Loads Part-10 buffers through STOW-RS in requests of `batch` instances (not timed). */
async function load(target: Target, instances: Uint8Array[], batch = 500): Promise<void> {
  for (let i = 0; i < instances.length; i += batch) {
    const res = await stow(`${target.dicomweb}/studies`, instances.slice(i, i + batch));
    if (res.status !== 200) throw new Error(`${LABEL[target.name]}: loading the QIDO data set, STOW-RS answered HTTP ${res.status}: ${res.text.slice(0, 300)}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Output

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
const pct = (v: number | null) => (v === null ? '-' : `${v.toFixed(0)}%`);
const ratioText = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}x` : 'n/a');

async function main(): Promise<void> {
  const plugin = targets.includes('orthanc') ? findDicomwebPlugin() : null;
  if (targets.includes('orthanc') && !plugin) {
    console.error('bench:dicomweb: the DICOMweb plugin of Orthanc is not installed (looked for libOrthancDicomWeb.so in '
      + `${PLUGIN_DIRS.join(', ')}).\n  Install it with:  sudo apt-get install -y orthanc-dicomweb\n  or leave Orthanc out:  npm run bench:dicomweb -- --targets atrium`);
    process.exitCode = 2;
    return;
  }
  if (targets.includes('orthanc') && !existsSync('/usr/sbin/Orthanc')) {
    console.error('bench:dicomweb: Orthanc is not installed at /usr/sbin/Orthanc (sudo apt-get install -y orthanc orthanc-dicomweb), or run with --targets atrium');
    process.exitCode = 2;
    return;
  }

  const tmpRoot = await mkdtemp(join(args.tmp ?? os.tmpdir(), 'atrium-bench-dicomweb-'));
  cleanups.push(() => rm(tmpRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }));

  // ---- Corpus: one study of wadoCount CT slices; STOW sends its first stowCount files.
  note(`generating ${wadoCount} synthetic CT instances (512x512x16-bit, one study) under ${tmpRoot}`);
  const genStart = performance.now();
  const corpus: Corpus = await generateCorpus(join(tmpRoot, 'corpus'), wadoCount, wadoCount, (n) => { if (n % 250 === 0) note(`  ${n}/${wadoCount}`); });
  note(`corpus: ${corpus.files.length} files, ${(corpus.bytes / 1e6).toFixed(1)} MB, made in ${((performance.now() - genStart) / 1000).toFixed(1)} s (not timed)`);
  const sizes = corpus.files.map((f) => statSync(f).size);
  const stowFiles = corpus.files.slice(0, stowCount);
  const stowBytes = sizes.slice(0, stowCount).reduce((s, x) => s + x, 0);
  const restFiles = corpus.files.slice(stowCount);
  syncAll();
  await warmPageCache(corpus.files);
  // ---- STOW-RS (fresh server per repetition), then, on the last one, load the rest and retrieve.
  const stowRuns: Record<string, StowRun[]> = {};
  const loadRuns: StowRun[] = [];
  const wadoRuns: Record<string, WadoRun[]> = {};
  for (let r = 0; r < repeat; r++) {
    note(`STOW-RS repetition ${r + 1}/${repeat}`);
    const last = r === repeat - 1;
    const kept = new Map<Target, () => Promise<void>>();
    try {
      for (const name of targets) {
        const target = await startTarget(name, tmpRoot, plugin);
        const stop = () => target.stop();
        cleanups.push(stop);
        let keep = false;
        try {
          const run = await timedStow(target, stowFiles, stowBytes, `timed, repetition ${r + 1}`);
          (stowRuns[name] ??= []).push(run);
          if (run.stored !== stowCount) warn(`${LABEL[name]} holds ${run.stored} instances after STOW-RS of ${stowCount} (repetition ${r + 1})`);
          if (last) {
            if (restFiles.length > 0) {
              const restBytes = sizes.slice(stowCount).reduce((s, x) => s + x, 0);
              const rest = await timedStow(target, restFiles, restBytes, `loading the rest of the ${wadoCount}-instance study for WADO-RS`);
              loadRuns.push(rest);
              if (rest.stored !== wadoCount) warn(`${LABEL[name]} holds ${rest.stored} instances after loading the WADO-RS study, expected ${wadoCount}`);
            }
            kept.set(target, stop);
            keep = true;
          }
        } finally {
          if (!keep) {
            cleanups.splice(cleanups.indexOf(stop), 1);
            await target.stop();
          }
        }
      }
      if (last && kept.size > 0) {
        syncAll();
        // The corpus's one study, as the first server lists it.
        const first = [...kept.keys()][0];
        const listed = await getText(`${first.dicomweb}/studies?limit=2`, 'application/dicom+json');
        const studies = JSON.parse(listed.text) as { '0020000D'?: { Value?: string[] } }[];
        if (studies.length !== 1) warn(`${LABEL[first.name]} lists ${studies.length} studies after loading the WADO-RS study, expected 1`);
        const studyUid = studies[0]?.['0020000D']?.Value?.[0];
        if (!studyUid) throw new Error(`${LABEL[first.name]}: no Study Instance UID in ${listed.text.slice(0, 300)}`);
        // A first retrieve per server, not counted: the blobs were just written and are in the page cache
        // for both, this only settles the servers (JIT, metadata caches).
        for (const t of kept.keys()) {
          note(`${t.mode}: WADO-RS warm-up retrieve`);
          await wadoRetrieve(t, studyUid);
        }
        for (let w = 0; w < repeat; w++) {
          for (const t of kept.keys()) {
            note(`${t.mode}: WADO-RS retrieve of the ${wadoCount}-instance study (${w + 1}/${repeat})`);
            const run = await wadoRetrieve(t, studyUid);
            (wadoRuns[t.name] ??= []).push(run);
            if (run.parts !== wadoCount) warn(`${LABEL[t.name]} WADO-RS answered ${run.parts ?? 'no'} parts, expected ${wadoCount}`);
            if (run.bytes < corpus.bytes) warn(`${LABEL[t.name]} WADO-RS answered ${run.bytes} bytes, less than the ${corpus.bytes} bytes of the study's files`);
          }
        }
      }
    } finally {
      for (const [t, stop] of kept) {
        cleanups.splice(cleanups.indexOf(stop), 1);
        await t.stop();
      }
    }
  }
  const stowRows = targets.filter((t) => stowRuns[t]?.length).map((t) => medianOf(stowRuns[t]));
  const wadoRows = targets.filter((t) => wadoRuns[t]?.length).map((t) => medianOf(wadoRuns[t]));
  // The corpus is no longer needed: free its disk space before the QIDO data sets.
  await rm(corpus.root, { recursive: true, force: true });

  // ---- QIDO-RS
  const qidoRows: QidoRun[] = [];
  let seedSeconds: number | null = null;
  if (qidoStudies > 0 && targets.includes('atrium')) {
    const specs = describeStudies(qidoStudies, QIDO_PER_STUDY, '1.2.826.0.1.3680043.10.1444.9001');
    const dataDir = join(tmpRoot, 'atrium-qido-large');
    await mkdir(dataDir, { recursive: true });
    note(`seeding ${qidoStudies} studies x ${QIDO_PER_STUDY} instances into ${dataDir}/index.sqlite (rows only, no blobs)`);
    const t0 = performance.now();
    const instances = await seedAtriumIndex(join(dataDir, 'index.sqlite'), specs, (n) => { if (n % 2500 === 0) note(`  ${n}/${qidoStudies} studies`); });
    seedSeconds = (performance.now() - t0) / 1000;
    note(`seeded ${instances} instances in ${seedSeconds.toFixed(1)} s (not timed)`);
    const queries = qidoQueries(specs, queryCount);
    await withTarget(startAtrium(tmpRoot, dataDir), async (t) => {
      const held = await t.countInstances();
      if (held !== instances) warn(`Atrium serves ${held} instances from the seeded index, expected ${instances}`);
      note(`${t.mode}: ${queries.length} QIDO-RS study searches at ${held} instances (+${WARMUP} warm-up)`);
      qidoRows.push(await runQueries(t, queries, `${instances.toLocaleString('en-US')} instances, seeded index rows`, qidoStudies, instances));
    });
    await rm(dataDir, { recursive: true, force: true });
  }
  if (qidoSmallStudies > 0) {
    const specs = describeStudies(qidoSmallStudies, QIDO_PER_STUDY, '1.2.826.0.1.3680043.10.1444.9002', 43);
    const instances = smallInstances(specs);
    const queries = qidoQueries(specs, queryCount, 8);
    for (const name of targets) {
      await withTarget(startTarget(name, tmpRoot, plugin), async (t) => {
        note(`${t.mode}: loading ${instances.length} small instances (64x64) through STOW-RS (not timed)`);
        await load(t, instances);
        const held = await t.countInstances();
        if (held !== instances.length) warn(`${LABEL[name]} holds ${held} instances after loading the small QIDO data set, expected ${instances.length}`);
        note(`${t.mode}: ${queries.length} QIDO-RS study searches at ${held} instances (+${WARMUP} warm-up)`);
        qidoRows.push(await runQueries(t, queries, `${instances.length.toLocaleString('en-US')} instances, real (STOW-RS)`, qidoSmallStudies, instances.length));
      });
    }
  }
  // Same data, same queries: do the servers agree on the number of matches?
  const small = qidoRows.filter((r) => r.studies === qidoSmallStudies && r.dataSet.includes('real'));
  const disagreements: string[] = [];
  if (small.length === 2) {
    const queries = qidoQueries(describeStudies(qidoSmallStudies, QIDO_PER_STUDY, '1.2.826.0.1.3680043.10.1444.9002', 43), queryCount, 8);
    small[0].results.forEach((n, i) => {
      if (n !== small[1].results[i]) disagreements.push(`${queries[i].query.split('&limit=')[0] || '(no filter)'}: ${LABEL[small[0].target]} ${n}, ${LABEL[small[1].target]} ${small[1].results[i]}`);
    });
  }

  // ---- Report
  const cpus = os.cpus();
  const machine = {
    cores: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version, platform: `${process.platform} ${process.arch}`, tmp: tmpRoot, loadAverage: os.loadavg().map((l) => +l.toFixed(2)),
  };
  const find = <T extends { target: TargetName }>(rows: T[], t: TargetName) => rows.find((r) => r.target === t);
  const stowRatio = find(stowRows, 'atrium') && find(stowRows, 'orthanc') ? find(stowRows, 'atrium')!.instancesPerSecond / find(stowRows, 'orthanc')!.instancesPerSecond : null;
  const wadoRatio = find(wadoRows, 'atrium') && find(wadoRows, 'orthanc') ? find(wadoRows, 'atrium')!.mbPerSecond / find(wadoRows, 'orthanc')!.mbPerSecond : null;
  const smallAtrium = small.find((r) => r.target === 'atrium');
  const smallOrthanc = small.find((r) => r.target === 'orthanc');

  if (args.json) {
    console.log(JSON.stringify({
      date: new Date().toISOString(), machine, repeat, plugin,
      stow: { instances: stowCount, bytes: stowBytes, runs: stowRows, atriumOverOrthanc: stowRatio, goal: STOW_GOAL, loads: loadRuns },
      wado: { instances: wadoCount, fileBytes: corpus.bytes, accept: WADO_ACCEPT, runs: wadoRows, atriumOverOrthanc: wadoRatio },
      qido: {
        queries: queryCount, warmup: WARMUP, seedSeconds,
        runs: qidoRows.map(({ results: _, ...r }) => r),
        smallScaleOrthancOverAtriumP50: smallAtrium && smallOrthanc ? smallOrthanc.p50Ms / smallAtrium.p50Ms : null,
        disagreements,
      },
      warnings,
    }, null, 2));
  } else {
    const out = (s = '') => console.log(s);
    out();
    out(`Atrium DICOMweb benchmark, ${targets.map((t) => LABEL[t]).join(' beside ')}`);
    out(`Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB RAM, Node ${machine.node}, ${machine.platform}, load ${machine.loadAverage.join(' ')}`);
    out(`Disk: temp folders under ${tmpRoot}; corpus read from a warm page cache; \`sync\` before each STOW.`);
    for (const mode of new Set([...stowRows, ...qidoRows].map((x) => x.mode))) out(`Server: ${mode}`);
    out();
    out(`STOW-RS: ${stowCount} CT instances 512x512x16-bit (${(stowBytes / 1e6).toFixed(1)} MB) in ONE multipart/related request, streamed from the files, to a fresh empty server; median of ${repeat}`);
    out(table(['server', 'HTTP', 'stored', 'seconds', 'inst/s', 'MB/s', 'server CPU%'], stowRows.map((r) => [
      LABEL[r.target], String(r.status), `${r.stored}${r.stored === stowCount ? '' : ' !!!'}`, r.seconds.toFixed(2), r.instancesPerSecond.toFixed(1), r.mbPerSecond.toFixed(1), pct(r.serverCpuPercent),
    ])));
    if (repeat > 1) out(`seconds per repetition: ${stowRows.map((r) => `${LABEL[r.target]} ${r.secondsAll!.map((x) => x.toFixed(2)).join(' / ')}`).join('; ')}`);
    if (stowRatio !== null) out(`Atrium / Orthanc (inst/s): ${stowRatio.toFixed(2)}x   (target >= ${STOW_GOAL}: ${stowRatio >= STOW_GOAL ? 'met' : 'NOT met'})`);
    if (loadRuns.length) out(`(loading the other ${wadoCount - stowCount} instances of the study, one request, same servers: ${loadRuns.map((r) => `${LABEL[r.target]} ${r.seconds.toFixed(2)} s, ${r.instancesPerSecond.toFixed(1)} inst/s`).join('; ')})`);
    out();
    out(`WADO-RS: GET /studies/{uid}, one study of ${wadoCount} instances (${(corpus.bytes / 1e6).toFixed(1)} MB of files), Accept: ${WADO_ACCEPT}; whole body read; median of ${repeat} after 1 warm-up`);
    out(table(['server', 'HTTP', 'parts', 'MB recv', 'seconds', 'MB/s', 'server CPU%'], wadoRows.map((r) => [
      LABEL[r.target], String(r.status), `${r.parts ?? '?'}${r.parts === wadoCount ? '' : ' !!!'}`, (r.bytes / 1e6).toFixed(1), r.seconds.toFixed(2), r.mbPerSecond.toFixed(1), pct(r.serverCpuPercent),
    ])));
    if (repeat > 1) out(`seconds per repetition: ${wadoRows.map((r) => `${LABEL[r.target]} ${r.secondsAll!.map((x) => x.toFixed(2)).join(' / ')}`).join('; ')}`);
    if (wadoRatio !== null) out(`Atrium / Orthanc (MB/s): ${wadoRatio.toFixed(2)}x`);
    out();
    out(`QIDO-RS: ${queryCount} study searches in sequence on one kept-alive connection (after ${WARMUP} warm-up), OHIF-style (limit=101, includefield=00081030,00080060)`);
    out(table(['server', 'data set', 'studies', 'p50 ms', 'p95 ms', 'mean ms', 'max ms', 'results/query', 'errors', 'server CPU%'], qidoRows.map((r) => [
      LABEL[r.target], r.dataSet, r.studies.toLocaleString('en-US'), r.p50Ms.toFixed(1), r.p95Ms.toFixed(1), r.meanMs.toFixed(1), r.maxMs.toFixed(1),
      r.meanResults.toFixed(1), String(r.errors), pct(r.serverCpuPercent),
    ])));
    const kinds = [...new Set(qidoRows.flatMap((r) => Object.keys(r.byKind)))];
    if (kinds.length) {
      out('p50 ms by kind of query (mean results):');
      for (const kind of kinds) {
        out(`  ${kind.padEnd(28)} ${qidoRows.map((r) => `${LABEL[r.target]}@${r.instances >= 10_000 ? `${Math.round(r.instances / 1000)}k` : r.instances} ${r.byKind[kind] ? `${r.byKind[kind].p50Ms.toFixed(1)} (${r.byKind[kind].meanResults.toFixed(0)})` : '-'}`).join('   ')}`);
      }
    }
    if (smallAtrium && smallOrthanc) {
      out(`Same data, same queries (${smallAtrium.instances} instances): Orthanc p50 / Atrium p50 = ${ratioText(smallOrthanc.p50Ms, smallAtrium.p50Ms)}, p95 ${ratioText(smallOrthanc.p95Ms, smallAtrium.p95Ms)}; `
        + `${disagreements.length === 0 ? 'both answered the same number of matches to every query' : `${disagreements.length} queries with different match counts`}`);
      for (const d of disagreements.slice(0, 5)) out(`  differs: ${d}`);
      out('Orthanc was not measured at 100k instances (filling it needs 100k real objects): the two scales are not comparable.');
    }
    if (warnings.length) {
      out();
      for (const w of warnings) out(`!!! WARNING: ${w.replace(/\n/g, '\n    ')}`);
    }
  }
  if (warnings.length) {
    console.error(`\n!!!!!!!! WARNING: ${warnings.length} CHECK(S) FAILED (see above): the figures are not comparable !!!!!!!!\n`);
    process.exitCode = 1;
  }
}

try {
  await main();
} catch (error) {
  console.error(`bench:dicomweb: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
