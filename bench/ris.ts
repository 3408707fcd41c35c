/**
 * RIS benchmark (issue 9): how many ORM^O01 orders per second Atrium takes over HL7 MLLP, each ACKed only
 * after its commit, over 1 connection and over 8 in parallel; and how fast its Modality Worklist answers
 * DCMTK `findscu -W` at 10k and 100k scheduled procedure steps, side by side with DCMTK `wlmscpfs` serving
 * the same worklist as files, in the same run. Atrium is `atrium serve` (sqlite+fs, the embedded default) on
 * a fresh data folder. A benchmark, not a test: nothing is asserted about time. See docs/benchmarks.md.
 *
 *   npm run bench:ris -- [--parts hl7,mwl] [--messages 4000] [--connections 1,8] [--steps 10000,100000]
 *                        [--queries 30] [--reference-queries 3] [--loop-queries 100] [--targets atrium,wlmscpfs]
 *                        [--repeat 3] [--ready-timeout 30] [--tmp <dir>] [--profile <dir>] [--json]
 */
import { benchArgs } from './support/args.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { DCMTK_ENV, cpuSeconds, freePort, getJson, logTail, runClient, spawnClient, startServer, stopServer, waitForEcho, waitForHttp, type Server, cleanupOnExit, syncAll } from './support/processes.ts';
import { sendOverConnections, type LoadResult } from './support/mllp-load.ts';
import {
  QUERY_KINDS, QUERY_LABEL, STATIONS, describeOrders, localToday, ormMessage, scheduleDays, seedRisWorklist, worklistQueries, writeWorklistFiles,
  type QueryKind, type WorklistQuery,
} from './support/worklist-data.ts';
import { worklistLoop } from './support/worklist-loop.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const PARTS = ['hl7', 'mwl'] as const;
const TARGETS = ['atrium', 'wlmscpfs'] as const;
type TargetName = (typeof TARGETS)[number];
const LABEL: Record<TargetName, string> = { atrium: 'Atrium', wlmscpfs: 'wlmscpfs' };
/** Goals of issue 9 (printed for information; nothing fails on them). */
const HL7_GOAL: Record<number, number> = { 1: 500, 8: 2000 };
const MWL_P95_GOAL_MS = 20;
/** Messages sent on each fresh server before the timed ones (JIT, caches, first pages of each table). */
const HL7_WARMUP = 200;
/** Queries of each kind set aside for warming up: one of each by findscu per server, all by Atrium's loop, none counted. */
const MWL_WARMUP = 3;

const { args: parsed, usage, wholeNumber } = benchArgs('bench:ris', '[--parts hl7,mwl] [--messages N] [--connections LIST] [--steps LIST] [--queries N] [--reference-queries N] [--loop-queries N] [--targets atrium,wlmscpfs] [--repeat N] [--ready-timeout S] [--tmp DIR] [--profile DIR] [--json]', {
  parts: { type: 'string', default: PARTS.join(',') },
  messages: { type: 'string', default: '4000' },
  connections: { type: 'string', default: '1,8' },
  steps: { type: 'string', default: '10000,100000' },
  queries: { type: 'string', default: '30' },
  'reference-queries': { type: 'string', default: '3' },
  'loop-queries': { type: 'string', default: '100' },
  targets: { type: 'string', default: TARGETS.join(',') },
  repeat: { type: 'string', default: '3' },
  'ready-timeout': { type: 'string', default: '30' },
  tmp: { type: 'string' },
  profile: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const args = parsed as Record<string, string> & { json: boolean };

const list = (option: string, allowed?: readonly string[]): string[] => {
  const values = String(args[option]).split(',').map((v) => v.trim()).filter(Boolean);
  if (values.length === 0) usage(`--${option} is empty`);
  if (allowed) for (const v of values) if (!allowed.includes(v)) usage(`--${option} takes ${allowed.join(', ')} (comma-separated), got "${v}"`);
  return values;
};
const numbers = (option: string): number[] => list(option).map((v) => {
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) usage(`--${option} takes whole numbers of at least 1, got "${v}"`);
  return n;
});
const parts = list('parts', PARTS);
const messages = wholeNumber('messages');
const connectionCounts = numbers('connections');
const stepCounts = numbers('steps');
const queriesPerKind = wholeNumber('queries');
const referenceQueries = wholeNumber('reference-queries');
const loopQueries = wholeNumber('loop-queries', 0);
const targets = list('targets', TARGETS) as TargetName[];
const repeat = wholeNumber('repeat');
const readyTimeoutMs = wholeNumber('ready-timeout') * 1000;
if (!targets.includes('atrium')) usage('--targets must include atrium');

/** Progress and notes go to stderr, so that --json leaves stdout to the result. */
const note = (message: string) => console.error(`[bench] ${message}`);
const { cleanups, cleanup } = cleanupOnExit(note);

// ------------------------------------------------------------------------------------------- servers

interface AtriumServer {
  server: Server;
  dicomPort: number;
  hl7Port: number;
  base: string;
  stop(): Promise<void>;
}

/** Until a TCP connection to the port succeeds, the process exits, or the time is up. */
async function waitForPort(server: Server, port: number, what: string): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs;
  let exit: number | string | undefined;
  void server.exited.then((code) => { exit = code; });
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (exit !== undefined) throw new Error(`${what}: the process exited (${exit}) before its port ${port} opened`);
    await sleep(200);
  }
  throw new Error(`${what}: port ${port} not open within ${readyTimeoutMs / 1000} s`);
}

/**
 * `atrium serve` on `dataDir` (default sqlite+fs), HL7 listener on: the stations are registered DICOM peers
 * allowed `find` (as a site registers its modalities), the benchmark's own AE `echo` and `find`.
 */
async function startAtrium(dataDir: string, log: string): Promise<AtriumServer> {
  const [dicomPort, httpPort, hl7Port] = [await freePort(), await freePort(), await freePort()];
  await writeFile(join(dataDir, 'atrium.json'), JSON.stringify({
    dicom: { peers: [...STATIONS.map((s) => ({ aeTitle: s.ae, host: '127.0.0.1', port: 104, operations: ['echo', 'find', 'store'] })),
      { aeTitle: 'BENCH', host: '127.0.0.1', port: 104, operations: ['echo', 'find'] }] },
  }, null, 2));
  // Only what is set here: ATRIUM_* variables of the calling shell do not leak into the benchmark.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ATRIUM_')));
  Object.assign(env, {
    ATRIUM_DATA: dataDir, ATRIUM_HTTP_HOST: '127.0.0.1', ATRIUM_HTTP_PORT: String(httpPort),
    ATRIUM_DICOM_HOST: '127.0.0.1', ATRIUM_DICOM_PORT: String(dicomPort), ATRIUM_DICOM_AE_TITLE: 'ATRIUM', ATRIUM_LOG_LEVEL: 'warn',
    ATRIUM_RIS_HL7_ENABLED: 'true', ATRIUM_RIS_HL7_HOST: '127.0.0.1', ATRIUM_RIS_HL7_PORT: String(hl7Port),
    // As in bench:dimse and bench:dicomweb: the REST calls that check counts need no key.
    ATRIUM_SECURITY_ENABLED: 'false',
  });
  // --profile: a V8 CPU profile of each Atrium process (written when it exits on SIGTERM), for where the time goes.
  const profile = args.profile ? ['--cpu-prof', '--cpu-prof-interval', '200', '--cpu-prof-dir', args.profile] : [];
  const server = startServer(process.execPath, [...profile, 'src/cli/main.ts', 'serve'], { log, env, cwd: REPO });
  const base = `http://127.0.0.1:${httpPort}`;
  const stop = () => stopServer(server, 30_000);
  try {
    await waitForHttp(`${base}/api/health`, readyTimeoutMs);
    await waitForEcho(server, 'ATRIUM', dicomPort, readyTimeoutMs, 'Atrium');
    await waitForPort(server, hl7Port, 'Atrium HL7 listener');
  } catch (error) {
    const tail = await logTail(log, 8);
    await stop();
    throw new Error(`${(error as Error).message}${tail ? `\n${tail}` : ''}`);
  }
  return { server, dicomPort, hl7Port, base, stop };
}

async function startWlmscpfs(root: string, log: string): Promise<{ server: Server; port: number; stop(): Promise<void> }> {
  const port = await freePort();
  // Its default: a child process forked per association (each findscu run is one).
  const server = startServer('wlmscpfs', ['-dfp', root, '-dfr', String(port)], { log, env: DCMTK_ENV });
  const stop = () => stopServer(server);
  try {
    await waitForEcho(server, 'WLMSCPFS', port, readyTimeoutMs, 'wlmscpfs');
  } catch (error) {
    await stop();
    throw error;
  }
  return { server, port, stop };
}

// ----------------------------------------------------------------------------------------------- HL7

interface Hl7Run {
  connections: number;
  messages: number;
  accepted: number;
  refusedCount: number;
  refused: string[];
  seconds: number;
  perSecond: number;
  ackP50: number;
  ackP95: number;
  serverCpuPercent: number | null;
  /** Server CPU time per message, ms. */
  serverCpuMsPerMessage: number | null;
  /** Orders the server lists afterwards (REST), warm-up included. */
  orders: number | null;
  error?: string;
}

async function hl7Run(tmpRoot: string, connections: number, round: number): Promise<Hl7Run> {
  const dir = await mkdtemp(join(tmpRoot, `atrium-hl7-${connections}-`));
  const run: Hl7Run = { connections, messages, accepted: 0, refusedCount: 0, refused: [], seconds: 0, perSecond: 0, ackP50: 0, ackP95: 0, serverCpuPercent: null, serverCpuMsPerMessage: null, orders: null };
  let atrium: AtriumServer | undefined;
  const removeDir = () => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  cleanups.push(removeDir);
  try {
    atrium = await startAtrium(dir, join(dir, 'atrium.log'));
    const stopAtrium = atrium.stop;
    cleanups.push(stopAtrium);
    // A fresh set of orders per run (new control IDs too): nothing is a retransmission.
    const orders = describeOrders(HL7_WARMUP + messages, localToday(), 1000 + round * 10 + connections);
    const sentAt = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
    const encode = (from: number, to: number) => {
      const byConnection: Buffer[][] = Array.from({ length: connections }, () => []);
      const ids: string[][] = Array.from({ length: connections }, () => []);
      for (let i = from; i < to; i++) {
        const id = `B${round}C${connections}M${i + 1}`;
        byConnection[i % connections]!.push(Buffer.from(ormMessage(orders[i]!, id, sentAt), 'utf8'));
        ids[i % connections]!.push(id);
      }
      return { byConnection, ids };
    };
    const warm = encode(0, HL7_WARMUP);
    const timed = encode(HL7_WARMUP, HL7_WARMUP + messages);
    const warmResult = await sendOverConnections('127.0.0.1', atrium.hl7Port, warm.byConnection, warm.ids);
    if (warmResult.accepted !== HL7_WARMUP) run.refused.push(...warmResult.refused.map((r) => `warm-up: ${r}`));
    syncAll();
    note(`HL7: ${messages} ORM^O01 over ${connections} connection(s)`);
    const cpu0 = cpuSeconds(atrium.server.child.pid!);
    const result: LoadResult = await sendOverConnections('127.0.0.1', atrium.hl7Port, timed.byConnection, timed.ids);
    const cpu1 = cpuSeconds(atrium.server.child.pid!);
    Object.assign(run, {
      accepted: result.accepted, refusedCount: result.refusedCount, refused: [...run.refused, ...result.refused], seconds: result.seconds,
      perSecond: result.accepted / result.seconds, ackP50: percentile(result.latencies, 50), ackP95: percentile(result.latencies, 95),
      serverCpuPercent: cpu0 !== null && cpu1 !== null ? ((cpu1 - cpu0) / result.seconds) * 100 : null,
      serverCpuMsPerMessage: cpu0 !== null && cpu1 !== null ? ((cpu1 - cpu0) * 1000) / result.sent : null,
    });
    run.orders = Number((await getJson(`${atrium.base}/api/ris/orders?limit=1`)).total);
    cleanups.splice(cleanups.indexOf(stopAtrium), 1);
  } catch (error) {
    run.error = (error as Error).message;
  } finally {
    await atrium?.stop();
    cleanups.splice(cleanups.indexOf(removeDir), 1);
    await removeDir();
  }
  return run;
}

// ----------------------------------------------------------------------------------------------- MWL

type Client = 'findscu' | 'loop';

interface MwlSample { target: TargetName; client: Client; kind: QueryKind; ms: number; matches: number; expected: number; ok: boolean; detail?: string }

interface MwlRow {
  steps: number;
  target: TargetName;
  client: Client;
  kind: QueryKind;
  runs: number;
  matchesMean: number;
  p50: number;
  p95: number;
  mean: number;
  max: number;
  /** Runs whose match count was not the expected one, or that failed. */
  wrong: number;
}

/** echoscu runs (process start, association, C-ECHO, release, exit): what a findscu run costs before any query. */
interface ClientFloor { target: TargetName; runs: number; p50: number; p95: number }

interface MwlSize {
  steps: number;
  days: number;
  seedSeconds: number;
  filesSeconds: number | null;
  rows: MwlRow[];
  floors: ClientFloor[];
  atriumCpuPercent: number | null;
  warnings: string[];
}

/**
 * One `findscu -W` run, process start to exit; matches counted from its log as it streams (findscu logs a
 * "Find Response: n (Pending)" line per item; a station's day prints more than runClient keeps).
 */
async function findscu(port: number, calledAe: string, q: WorklistQuery): Promise<{ ms: number; matches: number; ok: boolean; detail?: string }> {
  const start = performance.now();
  const { code, matches, errors, tail } = await new Promise<{ code: number | string; matches: number; errors: number; tail: string }>((resolve) => {
    const child = spawnClient('findscu', ['-W', '-aet', q.callingAe, '-aec', calledAe, ...q.keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(port)]);
    let matches = 0;
    let errors = 0;
    let tail = '';
    let partial = '';
    const scan = (chunk: Buffer) => {
      const lines = (partial + chunk.toString('latin1')).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (/Find Response: \d+ \(Pending/.test(line)) matches++;
        else if (line.startsWith('E: ') || line.startsWith('F: ')) errors++;
      }
      tail = (tail + chunk.toString('latin1')).slice(-1024);
    };
    child.stdout!.on('data', scan);
    child.stderr!.on('data', scan);
    child.once('error', (error) => resolve({ code: `spawn failed: ${error.message}`, matches, errors: errors + 1, tail }));
    child.once('close', (c, signal) => resolve({ code: c ?? signal ?? -1, matches, errors, tail }));
  });
  const ms = performance.now() - start;
  const ok = code === 0 && errors === 0;
  return { ms, matches, ok, detail: ok ? undefined : `findscu exited ${code}: ${tail.trim().split('\n').slice(-3).join(' | ')}` };
}

/** One `echoscu` run, process start to exit (ms). */
async function echoscu(port: number, calledAe: string, callingAe: string): Promise<number> {
  const start = performance.now();
  await runClient('echoscu', ['-aet', callingAe, '-aec', calledAe, '127.0.0.1', String(port)]);
  return performance.now() - start;
}

async function mwlSize(tmpRoot: string, steps: number): Promise<MwlSize> {
  const today = localToday();
  const size: MwlSize = { steps, days: scheduleDays(steps), seedSeconds: 0, filesSeconds: null, rows: [], floors: [], atriumCpuPercent: null, warnings: [] };
  const dir = await mkdtemp(join(tmpRoot, `mwl-${steps}-`));
  const removeDir = () => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  cleanups.push(removeDir);
  const stops: (() => Promise<void>)[] = [];
  try {
    note(`MWL ${steps} steps (${size.days} days of schedule from ${today.toISOString().slice(0, 10)} - 2 days): generating`);
    const orders = describeOrders(steps, today);
    const dataDir = join(dir, 'atrium');
    await import('node:fs/promises').then((fs) => fs.mkdir(dataDir));
    let t = performance.now();
    await seedRisWorklist(join(dataDir, 'index.sqlite'), orders, (n) => { if (n % 50_000 === 0 || n === steps) note(`  Atrium: ${n}/${steps} steps inserted`); });
    size.seedSeconds = (performance.now() - t) / 1000;
    const atrium = await startAtrium(dataDir, join(dir, 'atrium.log'));
    stops.push(atrium.stop);
    cleanups.push(atrium.stop);
    let wlm: Awaited<ReturnType<typeof startWlmscpfs>> | undefined;
    if (targets.includes('wlmscpfs')) {
      t = performance.now();
      await writeWorklistFiles(join(dir, 'wlmscpfs'), 'WLMSCPFS', orders, (n) => note(`  wlmscpfs: ${n}/${steps} files written`));
      size.filesSeconds = (performance.now() - t) / 1000;
      wlm = await startWlmscpfs(join(dir, 'wlmscpfs'), join(dir, 'wlmscpfs.log'));
      stops.push(wlm.stop);
      cleanups.push(wlm.stop);
    }
    syncAll();
    const queries = worklistQueries(orders, today, Math.max(queriesPerKind, referenceQueries, loopQueries) + MWL_WARMUP);
    const servers: { target: TargetName; port: number; ae: string; count: number; loopCount: number }[] = [
      { target: 'atrium', port: atrium.dicomPort, ae: 'ATRIUM', count: queriesPerKind, loopCount: loopQueries },
      // wlmscpfs reads every worklist file for every query (7 s at 100k on the reference machine): one loop query
      // of each kind shows its server time; the findscu runs are the comparison.
      ...(wlm ? [{ target: 'wlmscpfs' as const, port: wlm.port, ae: 'WLMSCPFS', count: referenceQueries, loopCount: Math.min(loopQueries, 1) }] : []),
    ];
    const samples: MwlSample[] = [];
    // findscu: warm-up, then the queries in turn, alternating servers (a slow spell of the machine hits both).
    const warm = queries.slice(0, MWL_WARMUP * QUERY_KINDS.length);
    const counted = queries.slice(MWL_WARMUP * QUERY_KINDS.length);
    // One of each kind per server first, not counted (JIT, SQLite's page cache, wlmscpfs's file cache).
    for (const s of servers) for (const q of warm.slice(0, QUERY_KINDS.length)) await findscu(s.port, s.ae, q);
    note(`MWL ${steps}: findscu -W, ${servers.map((s) => `${LABEL[s.target]} ${s.count}`).join(', ')} per kind`);
    const cpu0 = cpuSeconds(atrium.server.child.pid!);
    let atriumSeconds = 0;
    const echoes = new Map<TargetName, number[]>(servers.map((s) => [s.target, []]));
    for (const [i, q] of counted.entries()) {
      for (const s of servers) {
        if (i >= s.count * QUERY_KINDS.length) continue;
        const r = await findscu(s.port, s.ae, q);
        if (s.target === 'atrium') atriumSeconds += r.ms / 1000;
        samples.push({ target: s.target, client: 'findscu', kind: q.kind, ms: r.ms, matches: r.matches, expected: q.expected, ok: r.ok && r.matches === q.expected, detail: r.detail });
        // The client's floor, in the same conditions: one echoscu per round of the three kinds.
        if (i % QUERY_KINDS.length === 0) echoes.get(s.target)!.push(await echoscu(s.port, s.ae, q.callingAe));
      }
    }
    const cpu1 = cpuSeconds(atrium.server.child.pid!);
    for (const [target, ms] of echoes) {
      ms.sort((a, b) => a - b);
      if (ms.length) size.floors.push({ target, runs: ms.length, p50: percentile(ms, 50), p95: percentile(ms, 95) });
    }
    if (cpu0 !== null && cpu1 !== null && atriumSeconds > 0) size.atriumCpuPercent = ((cpu1 - cpu0) / atriumSeconds) * 100;
    // The same queries from one Node association per server: no process start, no association set-up.
    if (loopQueries > 0) {
      note(`MWL ${steps}: C-FIND loop on one association, ${servers.map((s) => `${LABEL[s.target]} ${s.loopCount}`).join(', ')} per kind`);
      for (const s of servers) {
        const warmLoop = s.target === 'atrium' ? warm : [];
        const loop = await worklistLoop({ port: s.port, calledAe: s.ae, callingAe: 'BENCH' }, [...warmLoop, ...counted.slice(0, s.loopCount * QUERY_KINDS.length)]);
        for (const [i, r] of loop.entries()) {
          if (i < warmLoop.length) continue;
          const q = r.query;
          samples.push({ target: s.target, client: 'loop', kind: q.kind, ms: r.ms, matches: r.matches, expected: q.expected, ok: r.ok && r.matches === q.expected, detail: r.detail });
        }
      }
    }
    for (const target of targets) {
      for (const client of ['findscu', 'loop'] as const) {
        for (const kind of QUERY_KINDS) {
          const mine = samples.filter((x) => x.target === target && x.client === client && x.kind === kind);
          if (mine.length === 0) continue;
          const ms = mine.map((x) => x.ms).sort((a, b) => a - b);
          size.rows.push({
            steps, target, client, kind, runs: mine.length, matchesMean: mine.reduce((n, x) => n + x.matches, 0) / mine.length,
            p50: percentile(ms, 50), p95: percentile(ms, 95), mean: ms.reduce((a, b) => a + b, 0) / ms.length, max: ms[ms.length - 1]!,
            wrong: mine.filter((x) => !x.ok).length,
          });
        }
      }
    }
    for (const x of samples.filter((s) => !s.ok).slice(0, 5)) {
      size.warnings.push(`${steps} steps, ${LABEL[x.target]} (${x.client}), ${QUERY_LABEL[x.kind]}: ${x.matches} matches, expected ${x.expected}${x.detail ? `; ${x.detail}` : ''}`);
    }
  } catch (error) {
    size.warnings.push(`${steps} steps: ${(error as Error).message}`);
  } finally {
    for (const stop of stops.reverse()) {
      cleanups.splice(cleanups.indexOf(stop), 1);
      await stop();
    }
    cleanups.splice(cleanups.indexOf(removeDir), 1);
    await removeDir();
  }
  return size;
}

// ------------------------------------------------------------------------------------------- printing

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function table(header: string[], rows: string[][], leftColumns = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (c: string[]) => c.map((v, i) => (i < leftColumns ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The repetition with the median rate (the lower middle one for an even count), with every rate kept. */
function medianRun(runs: Hl7Run[]): Hl7Run & { all: number[]; best: number } {
  const timed = runs.filter((r) => !r.error).sort((a, b) => a.perSecond - b.perSecond);
  const pick = timed.length ? timed[Math.floor((timed.length - 1) / 2)]! : runs[0]!;
  return { ...pick, all: runs.filter((r) => !r.error).map((r) => r.perSecond), best: timed.length ? timed[timed.length - 1]!.perSecond : 0 };
}

async function main(): Promise<void> {
  const tmpRoot = await mkdtemp(join(args.tmp ?? os.tmpdir(), 'atrium-bench-ris-'));
  cleanups.push(() => rm(tmpRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }));
  const started = performance.now();

  const hl7: ReturnType<typeof medianRun>[] = [];
  if (parts.includes('hl7')) {
    const all: Hl7Run[][] = connectionCounts.map(() => []);
    for (let r = 0; r < repeat; r++) {
      if (repeat > 1) note(`HL7 repetition ${r + 1}/${repeat}`);
      for (const [i, c] of connectionCounts.entries()) all[i]!.push(await hl7Run(tmpRoot, c, r));
    }
    hl7.push(...all.map(medianRun));
  }
  const mwl: MwlSize[] = [];
  if (parts.includes('mwl')) for (const steps of stepCounts) mwl.push(await mwlSize(tmpRoot, steps));

  const cpus = os.cpus();
  const machine = {
    cores: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version, platform: `${process.platform} ${process.arch}`, tmp: tmpRoot, loadAverage: os.loadavg().map((l) => +l.toFixed(2)),
  };
  const warnings = [
    ...hl7.flatMap((r) => [
      ...(r.error ? [`HL7 x${r.connections}: ${r.error}`] : []),
      ...(r.refusedCount ? [`HL7 x${r.connections}: ${r.refusedCount} message(s) not answered AA: ${r.refused.join('; ')}`] : []),
      ...(r.orders !== null && r.orders !== HL7_WARMUP + messages ? [`HL7 x${r.connections}: Atrium lists ${r.orders} orders, expected ${HL7_WARMUP + messages}`] : []),
    ]),
    ...mwl.flatMap((s) => s.warnings),
  ];
  const ratios = mwl.flatMap((s) => QUERY_KINDS.flatMap((kind) => (['findscu', 'loop'] as const).map((client) => {
    const a = s.rows.find((r) => r.target === 'atrium' && r.client === client && r.kind === kind);
    const w = s.rows.find((r) => r.target === 'wlmscpfs' && r.client === client && r.kind === kind);
    return a && w ? { steps: s.steps, kind, client, p50: w.p50 / a.p50, p95: w.p95 / a.p95 } : null;
  }).filter((x) => x !== null)));
  const elapsed = (performance.now() - started) / 1000;

  if (args.json) {
    console.log(JSON.stringify({ date: new Date().toISOString(), machine, messages, connections: connectionCounts, repeat, hl7, mwl, ratios, warnings, elapsedSeconds: elapsed }, null, 2));
  } else {
    console.log('');
    console.log(`Atrium RIS benchmark (atrium serve, sqlite+fs, fresh data folder per run)`);
    console.log(`Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB RAM, Node ${machine.node}, ${machine.platform}, load ${machine.loadAverage.join(' ')}`);
    if (hl7.length) {
      console.log('');
      console.log(`HL7: ORM^O01 NW (new order; 1 in 3 for a patient seen before), v2.5.1 PID/PV1/ORC/OBR, each sent after the ACK of the previous one on its connection;`);
      console.log(`     ${messages} messages per run after ${HL7_WARMUP} warm-up ones, every ACK checked (MSA-1 AA, MSA-2 the control ID); median of ${repeat} runs, each on a fresh server`);
      console.log(table(['connections', 'AA', 'seconds', 'msg/s', 'best msg/s', 'ACK p50 ms', 'ACK p95 ms', 'server CPU%', 'CPU ms/msg', 'goal'], hl7.map((r) => r.error ? [String(r.connections), r.error.split('\n')[0]!] : [
        String(r.connections), `${r.accepted}${r.accepted === messages ? '' : ' !!!'}`, r.seconds.toFixed(2), r.perSecond.toFixed(0), r.best.toFixed(0),
        r.ackP50.toFixed(2), r.ackP95.toFixed(2), r.serverCpuPercent === null ? '-' : `${r.serverCpuPercent.toFixed(0)}%`,
        r.serverCpuMsPerMessage === null ? '-' : r.serverCpuMsPerMessage.toFixed(2),
        HL7_GOAL[r.connections] ? `>= ${HL7_GOAL[r.connections]}: ${r.perSecond >= HL7_GOAL[r.connections]! ? 'met' : 'NOT met'}` : '-',
      ])));
      if (repeat > 1) console.log(`msg/s per run: ${hl7.map((r) => `x${r.connections} ${r.all.map((v) => v.toFixed(0)).join(' / ')}`).join('; ')}`);
    }
    for (const s of mwl) {
      console.log('');
      console.log(`MWL: ${s.steps.toLocaleString('en-US')} scheduled procedure steps (${s.days} days x ${STATIONS.length} stations), open; loaded into Atrium by SQL inserts into a stopped data folder in ${s.seedSeconds.toFixed(1)} s${s.filesSeconds !== null ? `, as ${s.steps.toLocaleString('en-US')} wlmscpfs files in ${s.filesSeconds.toFixed(1)} s` : ''}`);
      console.log(table(['server', 'client', 'query', 'runs', 'matches', 'p50 ms', 'p95 ms', 'mean ms', 'max ms'], s.rows.map((r) => [
        LABEL[r.target], r.client === 'findscu' ? 'findscu -W' : 'Node loop', QUERY_LABEL[r.kind], String(r.runs), `${r.matchesMean.toFixed(1)}${r.wrong ? ` (${r.wrong} wrong)` : ''}`,
        r.p50.toFixed(1), r.p95.toFixed(1), r.mean.toFixed(1), r.max.toFixed(1),
      ]), 3));
      if (s.floors.length) {
        console.log(`Client floor, echoscu (process start, association, C-ECHO, release) in the same rounds: ${s.floors.map((f) => `${LABEL[f.target]} p50 ${f.p50.toFixed(1)} / p95 ${f.p95.toFixed(1)} ms (${f.runs} runs)`).join(', ')}`);
      }
      if (s.atriumCpuPercent !== null) console.log(`Atrium process CPU during its findscu runs: ${s.atriumCpuPercent.toFixed(0)}% of their wall time`);
      for (const r of ratios.filter((x) => x.steps === s.steps)) {
        console.log(`wlmscpfs / Atrium, ${r.client === 'findscu' ? 'findscu -W' : 'Node loop '}, ${QUERY_LABEL[r.kind].padEnd(37)}: p50 ${r.p50.toFixed(1)}x, p95 ${r.p95.toFixed(1)}x (Atrium faster: ${r.p50 > 1 && r.p95 > 1 ? 'yes' : 'NO'})`);
      }
      if (s.steps >= 100_000) {
        for (const client of ['findscu', 'loop'] as const) {
          const mine = s.rows.filter((x) => x.target === 'atrium' && x.client === client);
          if (mine.length === 0) continue;
          const worst = Math.max(...mine.map((x) => x.p95));
          console.log(`Atrium p95 at ${s.steps.toLocaleString('en-US')} steps, ${client === 'findscu' ? 'findscu -W' : 'Node loop '}, worst kind: ${worst.toFixed(1)} ms (goal < ${MWL_P95_GOAL_MS}: ${worst < MWL_P95_GOAL_MS ? 'met' : 'NOT met'})`);
        }
      }
    }
    console.log('');
    console.log(`findscu -W: one process per query (start, association, C-FIND, release, exit), the station's AE title as calling AE; one warm-up run of each kind per server, then the servers alternate.`);
    console.log(`Node loop: Atrium's DIMSE client (bench/support/worklist-loop.ts), one association, C-FINDs one after the other (after ${MWL_WARMUP * QUERY_KINDS.length} warm-up ones on Atrium); wlmscpfs gets one of each kind.`);
    console.log(`p95 is the nearest-rank percentile: with ${referenceQueries} runs per kind (wlmscpfs), it is the slowest run. Whole benchmark: ${elapsed.toFixed(0)} s.`);
    if (warnings.length) {
      console.log('');
      for (const w of warnings) console.log(`!!! WARNING: ${w.replace(/\n/g, '\n    ')}`);
    }
  }
  if (warnings.length) process.exitCode = 1;
}

try {
  await main();
} catch (error) {
  console.error(`bench:ris: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
