/**
 * Cluster benchmark: C-STORE over 4 associations (4 DCMTK storescu at once) through HAProxy (TCP mode,
 * least connections) to 1, 2 and 3 `atrium serve` nodes on one PostgreSQL schema and one S3 store
 * (s3rver in a process of its own), in one run. Reports instances/s and the ratio to one node. Each
 * configuration starts empty: a fresh schema, a fresh bucket, fresh nodes. A benchmark, not a test:
 * nothing is asserted about time. See docs/benchmarks.md ("Scale-out") and docs/scale-out.md.
 *
 *   npm run bench:cluster -- [--count 400] [--nodes 1,2,3] [--per-study 50] [--repeat 1] [--json]
 */
import { execFileSync, spawn } from 'node:child_process';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { benchArgs } from './support/args.ts';
import { generateCorpus, warmPageCache, type Corpus } from './support/corpus.ts';
import { DCMTK_ENV, cleanupOnExit, cpuSeconds, freePort, getJson, logTail, runClient, startServer, stopServer, syncAll, waitForEcho, waitForHttp, type Server } from './support/processes.ts';
import { createTestSchema } from '../test/support/postgres.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const ASSOCIATIONS = 4;

const { args: parsed, usage, wholeNumber } = benchArgs('bench:cluster', '[--count N] [--nodes 1,2,3] [--per-study N] [--repeat N] [--json]', {
  count: { type: 'string', default: '400' },
  nodes: { type: 'string', default: '1,2,3' },
  'per-study': { type: 'string', default: '50' },
  repeat: { type: 'string', default: '1' },
  tmp: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const args = parsed as Record<string, string> & { json: boolean };
const count = wholeNumber('count');
const perStudy = wholeNumber('per-study');
const repeat = wholeNumber('repeat');
const nodeCounts = args.nodes.split(',').map((n) => Number(n.trim()));
if (nodeCounts.some((n) => !Number.isInteger(n) || n < 1 || n > 8)) usage('--nodes takes node counts 1 to 8, comma-separated');
if (count < ASSOCIATIONS) usage(`--count must be at least ${ASSOCIATIONS}`);

const note = (message: string) => console.error(`[bench] ${message}`);
const { cleanups, cleanup } = cleanupOnExit(note);

interface Run {
  nodes: number;
  seconds: number | null;
  instancesPerSecond: number | null;
  stored: number | null;
  /** Instances each node stored (its atrium_ingest_total), in node order. */
  perNode: number[];
  /** CPU time / wall time of each part, 100 = one core. */
  cpuPercent: { nodes: number; s3: number; postgres: number | null; haproxy: number; storescu: number } | null;
  exitCodes: (number | string)[];
  error?: string;
}

/**
 * CPU seconds of the host's PostgreSQL: every live process named postgres (the postmaster, its backends and
 * workers). On a shared machine that includes other clients' backends: an upper bound of ours.
 */
function postgresCpu(): number | null {
  try {
    const pids = execFileSync('pgrep', ['-x', 'postgres'], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    return pids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0), 0);
  } catch {
    return null;
  }
}

async function startS3(dir: string): Promise<{ server: Server; env: Record<string, string> }> {
  const log = join(dir, 's3rver.log');
  const child = spawn(process.execPath, [join(REPO, 'bench/support/s3-server-process.ts')], { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const server: Server = { child, log, exited };
  for await (const line of createInterface({ input: child.stdout! })) {
    const s3 = JSON.parse(line) as { endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string };
    return {
      server,
      env: {
        ATRIUM_BLOB_ENGINE: 's3', ATRIUM_S3_ENDPOINT: s3.endpoint, ATRIUM_S3_BUCKET: s3.bucket, ATRIUM_S3_REGION: s3.region,
        ATRIUM_S3_ACCESS_KEY_ID: s3.accessKeyId, ATRIUM_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      },
    };
  }
  throw new Error('s3rver did not start');
}

interface Node { server: Server; httpPort: number; dicomPort: number; base: string }

async function startNode(dir: string, i: number, shared: Record<string, string>): Promise<Node> {
  const [httpPort, dicomPort] = [await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ATRIUM_')));
  Object.assign(env, shared, {
    ATRIUM_DATA: join(dir, `node${i}`), ATRIUM_HTTP_HOST: '127.0.0.1', ATRIUM_HTTP_PORT: String(httpPort),
    ATRIUM_DICOM_HOST: '127.0.0.1', ATRIUM_DICOM_PORT: String(dicomPort), ATRIUM_DICOM_AE_TITLE: 'ATRIUM', ATRIUM_LOG_LEVEL: 'warn',
    // As bench:dimse: measured without authentication (the cost of an API key per request is not the question).
    ATRIUM_SECURITY_ENABLED: 'false', ATRIUM_HTTP_TRUSTED_PROXIES: '127.0.0.1',
  });
  const server = startServer(process.execPath, ['src/cli/main.ts', 'serve'], { log: join(dir, `node${i}.log`), env, cwd: REPO });
  return { server, httpPort, dicomPort, base: `http://127.0.0.1:${httpPort}` };
}

async function ready(node: Node, i: number): Promise<void> {
  try {
    await waitForHttp(`${node.base}/api/health/ready`, 60_000);
    await waitForEcho(node.server, 'ATRIUM', node.dicomPort, 60_000, `node ${i}`);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${await logTail(node.server.log, 8)}`);
  }
}

/** HAProxy as deploy/haproxy.cfg has it for DIMSE (TCP mode, least connections, readiness checks). */
async function startProxy(dir: string, nodes: Node[]): Promise<{ server: Server; port: number }> {
  const port = await freePort();
  const config = [
    'global', '  maxconn 512', '',
    'defaults', '  timeout connect 5s', '  timeout client 10m', '  timeout server 10m', '  retries 3', '  option redispatch', '',
    'frontend dicom', '  mode tcp', `  bind 127.0.0.1:${port}`, '  default_backend atrium_dicom', '',
    'backend atrium_dicom', '  mode tcp', '  balance leastconn', '  option httpchk GET /api/health/ready', '  http-check expect status 200',
    '  default-server inter 1s fall 2 rise 1',
    ...nodes.map((n, i) => `  server node${i + 1} 127.0.0.1:${n.dicomPort} check port ${n.httpPort}`), '',
  ].join('\n');
  const file = join(dir, 'haproxy.cfg');
  await writeFile(file, config);
  const server = startServer('haproxy', ['-db', '-f', file], { log: join(dir, 'haproxy.log'), env: process.env });
  await waitForEcho(server, 'ATRIUM', port, 30_000, 'HAProxy');
  return { server, port };
}

async function ingestCount(node: Node): Promise<number> {
  const text = await (await fetch(`${node.base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^atrium_ingest_total\{[^}]*outcome="stored"[^}]*\} ([0-9.e+]+)$/.exec(line);
    if (m) sum += Number(m[1]);
  }
  return sum;
}

async function splitCorpus(corpus: Corpus, root: string, parts: number): Promise<string[]> {
  const folders: string[] = [];
  const size = Math.ceil(corpus.files.length / parts);
  for (let p = 0; p < parts; p++) {
    const folder = join(root, `part-${p}`);
    await mkdir(folder, { recursive: true });
    for (const [i, file] of corpus.files.slice(p * size, (p + 1) * size).entries()) await link(file, join(folder, `IM${String(p * size + i + 1).padStart(5, '0')}.dcm`));
    folders.push(folder);
  }
  return folders;
}

async function runOnce(n: number, folders: string[], tmpRoot: string): Promise<Run> {
  const run: Run = { nodes: n, seconds: null, instancesPerSecond: null, stored: null, perNode: [], cpuPercent: null, exitCodes: [] };
  const dir = await mkdtemp(join(tmpRoot, `cluster-${n}-`));
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => { for (const stop of stops.splice(0).reverse()) await stop().catch(() => {}); };
  cleanups.push(stopAll);
  try {
    const schema = await createTestSchema();
    stops.push(() => schema.drop());
    const s3 = await startS3(dir);
    stops.push(() => stopServer(s3.server));
    const shared = { ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: schema.connectionString, ...s3.env };
    // The first node migrates the empty schema; the others start together after it.
    const nodes: Node[] = [];
    for (let i = 0; i < n; i++) {
      const node = await startNode(dir, i + 1, shared);
      nodes.push(node);
      stops.push(() => stopServer(node.server, 30_000));
      if (i === 0) await ready(node, 1);
    }
    await Promise.all(nodes.slice(1).map((node, i) => ready(node, i + 2)));
    const proxy = await startProxy(dir, nodes);
    stops.push(() => stopServer(proxy.server));
    // The readiness checks must have marked every node up before the run (rise 1, inter 1 s).
    await new Promise((r) => setTimeout(r, 1500));
    note(`${n} node(s): ${ASSOCIATIONS} associations through HAProxy`);
    syncAll();
    const cpu0 = { nodes: nodes.map((x) => cpuSeconds(x.server.child.pid!) ?? 0), s3: cpuSeconds(s3.server.child.pid!) ?? 0, pg: postgresCpu(), haproxy: cpuSeconds(proxy.server.child.pid!) ?? 0, self: cpuSeconds('self') ?? 0, own: process.cpuUsage() };
    const start = performance.now();
    const clients = await Promise.all(folders.map((folder) => runClient('storescu', ['-aet', 'BENCH', '-aec', 'ATRIUM', '+sd', '+r', '127.0.0.1', String(proxy.port), folder])));
    const seconds = (performance.now() - start) / 1000;
    const own = process.cpuUsage(cpu0.own);
    const pg1 = postgresCpu();
    const pct = (a: number, b: number) => ((b - a) / seconds) * 100;
    run.cpuPercent = {
      nodes: nodes.reduce((sum, x, i) => sum + pct(cpu0.nodes[i], cpuSeconds(x.server.child.pid!) ?? 0), 0),
      s3: pct(cpu0.s3, cpuSeconds(s3.server.child.pid!) ?? 0),
      postgres: cpu0.pg !== null && pg1 !== null ? pct(cpu0.pg, pg1) : null,
      haproxy: pct(cpu0.haproxy, cpuSeconds(proxy.server.child.pid!) ?? 0),
      storescu: pct(cpu0.self, cpuSeconds('self') ?? 0) - ((own.user + own.system) / 1e6 / seconds) * 100,
    };
    run.seconds = seconds;
    run.instancesPerSecond = count / seconds;
    run.exitCodes = clients.map((c) => c.code);
    run.perNode = await Promise.all(nodes.map(ingestCount));
    run.stored = Number((await getJson(`${nodes[0].base}/api/statistics`)).instances);
    clients.forEach((c, i) => { if (c.code !== 0) note(`storescu #${i + 1} exited with ${c.code}: ${c.output.trim().split('\n').slice(-3).join(' | ')}`); });
  } catch (error) {
    run.error = (error as Error).message;
    note(`${n} node(s): ${run.error}`);
  } finally {
    cleanups.splice(cleanups.indexOf(stopAll), 1);
    await stopAll();
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
  return run;
}

async function main(): Promise<void> {
  const tmpRoot = await mkdtemp(join(args.tmp ?? os.tmpdir(), 'atrium-bench-cluster-'));
  cleanups.push(() => rm(tmpRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }));
  note(`generating ${count} synthetic CT instances (512x512x16-bit) in studies of ${perStudy}`);
  const corpus = await generateCorpus(join(tmpRoot, 'corpus'), count, perStudy);
  const folders = await splitCorpus(corpus, join(tmpRoot, 'parts'), ASSOCIATIONS);
  syncAll();
  await warmPageCache(corpus.files);
  const load0 = os.loadavg();

  const all: Run[][] = [];
  for (let r = 0; r < repeat; r++) {
    const round: Run[] = [];
    for (const n of nodeCounts) round.push(await runOnce(n, folders, tmpRoot));
    all.push(round);
  }
  // The median repetition of each node count.
  const rows = nodeCounts.map((_, i) => {
    const timed = all.map((round) => round[i]).filter((x) => x.seconds !== null).sort((a, b) => a.seconds! - b.seconds!);
    return timed.length ? timed[Math.floor((timed.length - 1) / 2)] : all[0][i];
  });
  const one = rows.find((x) => x.nodes === 1)?.instancesPerSecond ?? null;
  const cpus = os.cpus();
  const machine = { cores: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', node: process.version, loadBefore: load0.map((l) => +l.toFixed(2)), loadAfter: os.loadavg().map((l) => +l.toFixed(2)) };
  if (args.json) {
    console.log(JSON.stringify({ date: new Date().toISOString(), machine, count, perStudy, repeat, corpusBytes: corpus.bytes, runs: rows, all }, null, 2));
  } else {
    console.log('');
    console.log(`Atrium cluster benchmark: C-STORE of ${count} CT instances 512x512x16-bit (${(corpus.bytes / 1e6).toFixed(1)} MB), ${ASSOCIATIONS} storescu associations through HAProxy (TCP, leastconn)`);
    console.log(`to N atrium serve nodes on one PostgreSQL schema + one s3rver; ${repeat > 1 ? `median of ${repeat}` : 'one run'} per N.`);
    console.log(`Machine: ${machine.cores} cores (${machine.cpuModel}), Node ${machine.node}; load average before ${machine.loadBefore.join(' ')}, after ${machine.loadAfter.join(' ')}`);
    console.log('');
    console.log('nodes  stored  seconds  inst/s  x 1 node  per node             CPU% nodes  s3rver  postgres  haproxy  storescu');
    for (const x of rows) {
      if (x.seconds === null) { console.log(`${String(x.nodes).padStart(5)}  ${x.error}`); continue; }
      const c = x.cpuPercent!;
      console.log([
        String(x.nodes).padStart(5), `${x.stored}${x.stored === count ? '' : ' !!!'}`.padStart(6), x.seconds.toFixed(2).padStart(7), x.instancesPerSecond!.toFixed(1).padStart(6),
        (one ? (x.instancesPerSecond! / one).toFixed(2) : '-').padStart(8), x.perNode.join('/').padEnd(19),
        c.nodes.toFixed(0).padStart(10), c.s3.toFixed(0).padStart(6), (c.postgres === null ? '-' : c.postgres.toFixed(0)).padStart(8), c.haproxy.toFixed(0).padStart(7), c.storescu.toFixed(0).padStart(8),
      ].join('  '));
    }
    console.log('');
    console.log('CPU% = CPU time / wall time (100% = one core): nodes summed; postgres = every live postgres process of the host.');
  }
  if (rows.some((x) => x.seconds === null || x.stored !== count || x.exitCodes.some((c) => c !== 0))) process.exitCode = 1;
}

try {
  await main();
} catch (error) {
  console.error(`bench:cluster: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
