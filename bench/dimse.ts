/**
 * DIMSE benchmark: how fast do DICOM C-STORE receivers take a corpus of CT slices from DCMTK's
 * storescu, over 1 association and over 4 concurrent ones? Receivers: DCMTK storescp (writes files,
 * no index, no fsync: the floor of what receiving costs), Orthanc (indexed, durable files) and Atrium
 * (`atrium serve`, durable and indexed). A benchmark, not a test: nothing is asserted about time.
 * See docs/benchmarks.md.
 *
 *   npm run bench:dimse -- [--count 1000] [--targets storescp,orthanc,atrium] [--per-study 100]
 *                          [--repeat 3] [--ready-timeout 30] [--tmp <dir>] [--json]
 */
import { benchArgs } from './support/args.ts';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { generateCorpus, listFiles, warmPageCache, type Corpus } from './support/corpus.ts';
import { DCMTK_ENV, cpuSeconds, freePort, getJson, killAllTracked, logTail, refuseNewProcesses, runClient, startServer, stopServer, waitForEcho, waitForHttp, type Server, cleanupOnExit, syncAll } from './support/processes.ts';

const TARGETS = ['storescp', 'orthanc', 'atrium'] as const;
type TargetName = (typeof TARGETS)[number];
const ASSOCIATIONS = [1, 4] as const;
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The DICOM listener of `atrium serve` is in the works: this is what its absence prints. */
const ATRIUM_NOT_ANSWERING = 'Atrium: DICOM port not answering';

interface RunResult {
  target: TargetName;
  associations: number;
  /** How the target ran, e.g. "storescp --fork". */
  mode: string;
  /** Null when the target could not be started (see `error`). */
  seconds: number | null;
  instancesPerSecond: number | null;
  mbPerSecond: number | null;
  /** Instances the target holds afterwards (files for storescp, the index's count otherwise). */
  stored: number | null;
  /** CPU time of the receiver (process + reaped children) over wall time; 100 = one core busy. */
  serverCpuPercent: number | null;
  /** CPU time of the storescu processes over wall time. */
  clientCpuPercent: number | null;
  /** storescu exit codes, one per association. */
  exitCodes: (number | string)[];
  secondsAll?: number[];
  error?: string;
  warnings: string[];
}


const { args: parsed, usage, wholeNumber } = benchArgs('bench:dimse', '[--count N] [--targets storescp,orthanc,atrium] [--per-study N] [--repeat N] [--ready-timeout S] [--tmp DIR] [--json]', {
  count: { type: 'string', default: '1000' },
  targets: { type: 'string', default: TARGETS.join(',') },
  'per-study': { type: 'string', default: '100' },
  repeat: { type: 'string', default: '3' },
  'ready-timeout': { type: 'string', default: '30' },
  tmp: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const args = parsed as Record<string, string> & { json: boolean };

const count = wholeNumber('count');
const perStudy = wholeNumber('per-study');
const repeat = wholeNumber('repeat');
const readyTimeoutMs = wholeNumber('ready-timeout') * 1000;
const targets: TargetName[] = args.targets.split(',').map((t) => t.trim()).filter(Boolean).map((t) => {
  if (!(TARGETS as readonly string[]).includes(t)) usage(`--targets takes ${TARGETS.join(', ')} (comma-separated), got "${t}"`);
  return t as TargetName;
});
if (targets.length === 0) usage('--targets is empty');
if (count < 4) usage('--count must be at least 4 (the corpus is split over 4 associations)');

/** Progress and notes go to stderr, so that --json leaves stdout to the result. */
const note = (message: string) => console.error(`[bench] ${message}`);

const { cleanups, cleanup } = cleanupOnExit(note);

/** A started receiver: where to send, how to count what it holds, how to stop it. */
interface Receiver {
  aet: string;
  port: number;
  mode: string;
  server: Server;
  countStored(): Promise<number>;
  stop(): Promise<void>;
}

async function startStorescp(tmpRoot: string, associations: number): Promise<Receiver> {
  const dir = await mkdtemp(join(tmpRoot, 'storescp-'));
  const out = join(dir, 'out');
  await mkdir(out);
  const port = await freePort();
  // storescp serves one association at a time unless it forks a child per association.
  const fork = associations > 1;
  const server = startServer('storescp', [...(fork ? ['--fork'] : []), '--output-directory', out, '-aet', 'STORESCP', String(port)], { log: join(dir, 'storescp.log'), env: DCMTK_ENV });
  const receiver: Receiver = {
    aet: 'STORESCP', port, mode: fork ? 'storescp --fork' : 'storescp', server,
    countStored: async () => (await listFiles(out)).length,
    stop: async () => {
      await stopServer(server);
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
  try {
    await waitForEcho(server, 'STORESCP', port, readyTimeoutMs, 'storescp');
  } catch (error) {
    await receiver.stop();
    throw error;
  }
  return receiver;
}

async function startOrthanc(tmpRoot: string): Promise<Receiver> {
  const dir = await mkdtemp(join(tmpRoot, 'orthanc-'));
  const [port, httpPort] = [await freePort(), await freePort()];
  const config = {
    Name: 'AtriumBench',
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'index'),
    StorageCompression: false,
    SyncStorageArea: true, // Orthanc's default since 1.7.4: fsync after each write to the storage area
    Plugins: [],
    LuaScripts: [],
    HttpServerEnabled: true,
    HttpPort: httpPort,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomServerEnabled: true,
    DicomAet: 'ORTHANC',
    DicomPort: port,
    DicomCheckCalledAet: false,
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomAssociationCloseDelay: 0,
    DicomThreadsCount: 4, // Orthanc's default: at least as many as the benchmark's associations
    SaveJobs: false,
  };
  const configPath = join(dir, 'orthanc.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const server = startServer('/usr/sbin/Orthanc', [configPath], { log: join(dir, 'orthanc.log'), env: DCMTK_ENV });
  const base = `http://127.0.0.1:${httpPort}`;
  const receiver: Receiver = {
    aet: 'ORTHANC', port, mode: 'Orthanc 1.10 (SQLite index, fsync)', server,
    countStored: async () => Number((await getJson(`${base}/statistics`)).CountInstances),
    stop: async () => {
      await stopServer(server, 30_000);
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
  try {
    await waitForHttp(`${base}/system`, readyTimeoutMs);
    await waitForEcho(server, 'ORTHANC', port, readyTimeoutMs, 'Orthanc');
  } catch (error) {
    const tail = await logTail(server.log);
    await receiver.stop();
    throw new Error(`${(error as Error).message}\n${tail}`);
  }
  return receiver;
}

async function startAtrium(tmpRoot: string): Promise<Receiver> {
  const dir = await mkdtemp(join(tmpRoot, 'atrium-'));
  const dataDir = join(dir, 'data');
  const [port, httpPort] = [await freePort(), await freePort()];
  // Only what is set here: ATRIUM_* variables of the calling shell do not leak into the benchmark.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ATRIUM_')));
  Object.assign(env, {
    ATRIUM_DATA: dataDir, ATRIUM_HTTP_HOST: '127.0.0.1', ATRIUM_HTTP_PORT: String(httpPort),
    ATRIUM_DICOM_HOST: '127.0.0.1', ATRIUM_DICOM_PORT: String(port), ATRIUM_DICOM_AE_TITLE: 'ATRIUM', ATRIUM_LOG_LEVEL: 'warn',
    // Orthanc runs here without authentication too: both are measured without it, on equal footing
    // (explicit, and Atrium logs it; the cost of checking an API key per request is not measured).
    ATRIUM_SECURITY_ENABLED: 'false',
  });
  // The same Node that runs the benchmark (npm's node 24), no npx in between.
  const server = startServer(process.execPath, ['src/cli/main.ts', 'serve'], { log: join(dir, 'atrium.log'), env, cwd: REPO });
  const base = `http://127.0.0.1:${httpPort}`;
  const receiver: Receiver = {
    aet: 'ATRIUM', port, mode: 'atrium serve (sqlite+fs, fsync)', server,
    countStored: async () => Number((await getJson(`${base}/api/statistics`)).instances),
    stop: async () => {
      await stopServer(server, 30_000);
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
  try {
    await waitForEcho(server, 'ATRIUM', port, readyTimeoutMs, 'Atrium');
    await waitForHttp(`${base}/api/health`, readyTimeoutMs);
  } catch (error) {
    const tail = await logTail(server.log, 8);
    await receiver.stop();
    throw new Error(`${(error as Error).message}${tail ? `\n${tail}` : ''}`);
  }
  return receiver;
}

/**
 * The corpus split into `parts` folders of consecutive files (hard links: same inodes, so the page
 * cache stays warm), for one storescu per association. Made once, not timed.
 */
async function splitCorpus(corpus: Corpus, tmpRoot: string, parts: number): Promise<string[]> {
  const root = join(tmpRoot, `corpus-${parts}-parts`);
  const folders: string[] = [];
  const size = Math.ceil(corpus.files.length / parts);
  for (let p = 0; p < parts; p++) {
    const folder = join(root, `part-${p}`);
    await mkdir(folder, { recursive: true });
    for (const [i, file] of corpus.files.slice(p * size, (p + 1) * size).entries()) {
      await link(file, join(folder, `IM${String(p * size + i + 1).padStart(5, '0')}.dcm`));
    }
    folders.push(folder);
  }
  return folders;
}

async function runOnce(target: TargetName, associations: number, folders: string[], corpus: Corpus, tmpRoot: string): Promise<RunResult> {
  const result: RunResult = {
    target, associations, mode: target, seconds: null, instancesPerSecond: null, mbPerSecond: null, stored: null,
    serverCpuPercent: null, clientCpuPercent: null, exitCodes: [], warnings: [],
  };
  let receiver: Receiver;
  try {
    receiver = target === 'storescp' ? await startStorescp(tmpRoot, associations)
      : target === 'orthanc' ? await startOrthanc(tmpRoot)
      : await startAtrium(tmpRoot);
  } catch (error) {
    const message = (error as Error).message;
    result.error = target === 'atrium' && message.startsWith(ATRIUM_NOT_ANSWERING) ? ATRIUM_NOT_ANSWERING : message.split('\n')[0];
    result.warnings.push(message);
    return result;
  }
  const stopReceiver = () => receiver.stop();
  cleanups.push(stopReceiver);
  result.mode = receiver.mode;
  try {
    note(`${receiver.mode}: ${associations} association(s) -> ${receiver.aet}@127.0.0.1:${receiver.port}`);
    syncAll(); // nobody pays for an earlier run's write-back
    const serverCpu0 = cpuSeconds(receiver.server.child.pid!);
    const clientCpu0 = cpuSeconds('self');
    const ownCpu0 = process.cpuUsage();
    const start = performance.now();
    const clients = await Promise.all(folders.map((folder) =>
      runClient('storescu', ['-aet', 'BENCH', '-aec', receiver.aet, '+sd', '+r', '127.0.0.1', String(receiver.port), folder])));
    const seconds = (performance.now() - start) / 1000;
    const serverCpu1 = cpuSeconds(receiver.server.child.pid!);
    const clientCpu1 = cpuSeconds('self');
    const ownCpu = process.cpuUsage(ownCpu0);
    result.seconds = seconds;
    result.instancesPerSecond = count / seconds;
    result.mbPerSecond = corpus.bytes / 1e6 / seconds;
    if (serverCpu0 !== null && serverCpu1 !== null) result.serverCpuPercent = ((serverCpu1 - serverCpu0) / seconds) * 100;
    if (clientCpu0 !== null && clientCpu1 !== null) {
      // /proc/self/stat counts this process too: keep only the reaped children (the storescu processes).
      result.clientCpuPercent = ((clientCpu1 - clientCpu0 - (ownCpu.user + ownCpu.system) / 1e6) / seconds) * 100;
    }
    result.exitCodes = clients.map((c) => c.code);
    clients.forEach((c, i) => {
      if (c.code !== 0) result.warnings.push(`${target}, ${associations} assoc.: storescu #${i + 1} exited with ${c.code}: ${c.output.trim().split('\n').slice(-3).join(' | ')}`);
    });
    result.stored = await receiver.countStored();
    if (result.stored !== count) result.warnings.push(`${receiver.mode}, ${associations} assoc.: target holds ${result.stored} instances, expected ${count}`);
  } catch (error) {
    result.error = (error as Error).message.split('\n')[0];
    result.warnings.push(`${target}, ${associations} assoc.: ${(error as Error).message}`);
  } finally {
    cleanups.splice(cleanups.indexOf(stopReceiver), 1);
    await receiver.stop();
  }
  return result;
}

/** The repetition with the median time (the lower middle one for an even count), with every time kept. */
function median(runs: RunResult[]): RunResult {
  const timed = runs.filter((r) => r.seconds !== null).sort((a, b) => a.seconds! - b.seconds!);
  if (timed.length === 0) return { ...runs[0], warnings: [...new Set(runs.flatMap((r) => r.warnings))] };
  return { ...timed[Math.floor((timed.length - 1) / 2)], secondsAll: runs.filter((r) => r.seconds !== null).map((r) => r.seconds!) };
}

const LABEL: Record<TargetName, string> = { storescp: 'storescp', orthanc: 'Orthanc', atrium: 'Atrium' };

function table(rows: RunResult[]): string {
  const header = ['target', 'assoc.', 'stored', 'seconds', 'inst/s', 'MB/s', 'server CPU%', 'storescu CPU%'];
  const pct = (v: number | null) => (v === null ? '-' : `${v.toFixed(0)}%`);
  const cells = rows.map((r) => r.seconds === null
    ? [LABEL[r.target], String(r.associations), r.error ?? 'not run']
    : [
        r.target === 'storescp' && r.associations > 1 ? 'storescp --fork' : LABEL[r.target], String(r.associations),
        `${r.stored ?? '?'}${r.stored === count ? '' : ' !!!'}`, r.seconds.toFixed(2), r.instancesPerSecond!.toFixed(1),
        r.mbPerSecond!.toFixed(1), pct(r.serverCpuPercent), pct(r.clientCpuPercent),
      ]);
  const full = cells.filter((c) => c.length === header.length);
  const widths = header.map((h, i) => Math.max(h.length, ...full.map((c) => c[i].length)));
  const line = (c: string[]) => c.length < header.length
    ? [c[0].padEnd(widths[0]), c[1].padStart(widths[1]), `  ${c[2]}`].join('  ')
    : c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

interface Ratio {
  against: 'orthanc' | 'storescp';
  associations: number;
  target: number;
  ratio: number | null;
  met: boolean | null;
  why?: string;
}

function ratios(rows: RunResult[]): Ratio[] {
  const find = (t: TargetName, a: number) => rows.find((r) => r.target === t && r.associations === a);
  const out: Ratio[] = [];
  for (const [against, goal] of [['orthanc', 3.8], ['storescp', 0.85]] as const) {
    if (!targets.includes(against) || !targets.includes('atrium')) continue;
    for (const a of ASSOCIATIONS) {
      const atrium = find('atrium', a);
      const other = find(against, a);
      if (!atrium?.instancesPerSecond || !other?.instancesPerSecond) {
        out.push({ against, associations: a, target: goal, ratio: null, met: null, why: (!atrium?.instancesPerSecond ? atrium?.error : other?.error) ?? 'not measured' });
        continue;
      }
      const ratio = atrium.instancesPerSecond / other.instancesPerSecond;
      out.push({ against, associations: a, target: goal, ratio, met: ratio >= goal });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const tmpRoot = await mkdtemp(join(args.tmp ?? os.tmpdir(), 'atrium-bench-dimse-'));
  cleanups.push(() => rm(tmpRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }));

  note(`generating ${count} synthetic CT instances (512x512x16-bit) in studies of ${perStudy} under ${tmpRoot}`);
  const genStart = performance.now();
  const corpus = await generateCorpus(join(tmpRoot, 'corpus'), count, perStudy, (n) => { if (n % 250 === 0) note(`  ${n}/${count}`); });
  const folders: Record<number, string[]> = { 1: [corpus.root], 4: await splitCorpus(corpus, tmpRoot, 4) };
  note(`corpus: ${corpus.files.length} files, ${(corpus.bytes / 1e6).toFixed(1)} MB, ${corpus.studies} studies, made in ${((performance.now() - genStart) / 1000).toFixed(1)} s (not timed)`);
  syncAll();
  await warmPageCache(corpus.files);

  // Repetitions are interleaved (every target and association count, then again) so that a slow
  // spell of a shared machine hits every run alike. Once Atrium's port did not answer, it is not retried.
  const all: RunResult[][] = [];
  let atriumMissing = false;
  for (let r = 0; r < repeat; r++) {
    if (repeat > 1) note(`repetition ${r + 1}/${repeat}`);
    const round: RunResult[] = [];
    for (const target of targets) {
      for (const a of ASSOCIATIONS) {
        if (target === 'atrium' && atriumMissing) {
          const first = [...all.flat(), ...round].find((x) => x.target === 'atrium' && x.error === ATRIUM_NOT_ANSWERING)!;
          round.push({ ...first, associations: a, warnings: [] });
          continue;
        }
        const result = await runOnce(target, a, folders[a], corpus, tmpRoot);
        if (target === 'atrium' && result.error === ATRIUM_NOT_ANSWERING) {
          atriumMissing = true;
          note(`WARNING: ${result.warnings[0]?.split('\n')[0]}`);
        }
        round.push(result);
      }
    }
    all.push(round);
  }
  const rows = all[0].map((_, i) => median(all.map((round) => round[i])));
  const ratioList = ratios(rows);

  const cpus = os.cpus();
  const machine = {
    cores: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version, platform: `${process.platform} ${process.arch}`, tmp: tmpRoot, loadAverage: os.loadavg().map((l) => +l.toFixed(2)),
  };
  const clients = 'DCMTK storescu (+sd +r, default presentation contexts), TCP_NODELAY=1; 1 association = one storescu on the whole corpus, 4 associations = 4 storescu at once on 4 quarter-folders (hard links); time = first storescu start to last storescu exit';
  const warnings = [...new Set(all.flat().flatMap((r) => r.warnings))];

  if (args.json) {
    console.log(JSON.stringify({
      date: new Date().toISOString(), machine, count, perStudy, repeat, corpusBytes: corpus.bytes, studies: corpus.studies, clients,
      runs: rows, ratios: ratioList, warnings,
    }, null, 2));
  } else {
    console.log('');
    console.log(`Atrium DIMSE benchmark: C-STORE of ${count} CT instances 512x512x16-bit (${(corpus.bytes / 1e6).toFixed(1)} MB, ${corpus.studies} ${corpus.studies === 1 ? 'study' : 'studies'}), median of ${repeat}`);
    console.log(`Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB RAM, Node ${machine.node}, ${machine.platform}, load ${machine.loadAverage.join(' ')}`);
    console.log(`Disk: temp folders under ${tmpRoot}; corpus read from a warm page cache; \`sync\` before each run.`);
    console.log(`Clients: ${clients}.`);
    console.log('Receivers: storescp writes files without fsync or index (1 assoc.: single process; 4 assoc.: --fork, one child per association);');
    console.log('           Orthanc 1.10 with SyncStorageArea (fsync) and its SQLite index; Atrium `serve`, sqlite+fs, durable and indexed. Each run: fresh, empty receiver.');
    console.log('');
    console.log(table(rows));
    console.log('');
    if (repeat > 1) {
      console.log(`seconds per repetition: ${rows.filter((r) => r.secondsAll?.length).map((r) => `${LABEL[r.target]} x${r.associations} ${r.secondsAll!.map((x) => x.toFixed(2)).join(' / ')}`).join('; ')}`);
    }
    console.log('inst/s and MB/s (10^6 bytes of Part-10 files) over the timed send; CPU% = CPU time / wall time (100% = one core).');
    if (ratioList.length) {
      console.log('');
      for (const r of ratioList) {
        const vs = r.against === 'orthanc' ? 'Orthanc:' : 'storescp:';
        console.log(`Atrium vs ${vs.padEnd(9)} ${r.associations} assoc.: ${r.ratio === null ? `n/a (${r.why})` : `${r.ratio.toFixed(2)}x`}   (target >= ${r.target}${r.met === null ? '' : r.met ? ': met' : ': NOT met'})`);
      }
    }
    if (warnings.length) {
      console.log('');
      for (const w of warnings) console.log(`!!! WARNING: ${w.replace(/\n/g, '\n    ')}`);
    }
  }
  const bad = all.flat().filter((r) => r.seconds !== null && (r.stored !== count || r.exitCodes.some((c) => c !== 0)));
  if (bad.length) {
    console.error(`\n!!!!!!!! WARNING: ${bad.length} RUN(S) DID NOT STORE ALL ${count} INSTANCES (or a storescu failed): the figures above are not comparable !!!!!!!!\n`);
    process.exitCode = 1;
  }
  const failed = all.flat().filter((r) => r.seconds === null && r.target !== 'atrium');
  if (failed.length) process.exitCode = 1;
}

try {
  await main();
} catch (error) {
  console.error(`bench:dimse: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
