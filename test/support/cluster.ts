/**
 * Several real `atrium serve` processes on one PostgreSQL schema and one S3 bucket (s3rver), behind a real
 * HAProxy (Debian's package) in the shape of deploy/haproxy.cfg: DIMSE in TCP mode, the web in HTTP mode,
 * both checked on each node's readiness endpoint. For the scale-out test (test/cluster/scale-out.test.ts).
 * Every process is started in its own process group and ended by its own id.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForPort } from './dcmtk.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface AtriumNode {
  name: string;
  httpPort: number;
  dicomPort: number;
  base: string;
  child: ChildProcess;
  /** Everything the node logged (pino JSON lines). */
  log(): string;
  /** Sum of a counter of its /metrics over the label sets matching `labels` (substring of the label text). */
  counter(name: string, labels?: string): Promise<number>;
  alive(): boolean;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `atrium serve` with `env` (the shared index and blobs) on free ports; resolves once it is ready. */
export async function startAtriumNode(name: string, env: Record<string, string>, limitMs = 60_000): Promise<AtriumNode> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `atrium-${name}-`));
  const [httpPort, dicomPort] = [await freePort(), await freePort()];
  const childEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ATRIUM_')));
  Object.assign(childEnv, env, {
    ATRIUM_DATA: dataDir, ATRIUM_HTTP_HOST: '127.0.0.1', ATRIUM_HTTP_PORT: String(httpPort),
    ATRIUM_DICOM_HOST: '127.0.0.1', ATRIUM_DICOM_PORT: String(dicomPort), ATRIUM_LOG_LEVEL: env.ATRIUM_LOG_LEVEL ?? 'info',
  });
  const child = spawn(process.execPath, [MAIN, 'serve'], { env: childEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { log += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { log += s; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const base = `http://127.0.0.1:${httpPort}`;
  const node: AtriumNode = {
    name, httpPort, dicomPort, base, child, alive,
    log: () => log,
    async counter(metric, labels = '') {
      const text = await (await fetch(`${base}/metrics`, { headers: { 'x-atrium-test-anonymous': '1' } })).text();
      let sum = 0;
      for (const line of text.split('\n')) {
        const m = /^(\w+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
        if (m && m[1] === metric && (m[2] ?? '').includes(labels)) sum += Number(m[3]);
      }
      return sum;
    },
    async kill(signal = 'SIGTERM') {
      if (alive()) {
        try { process.kill(-child.pid!, signal); } catch { /* gone */ }
        const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 15_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  const start = Date.now();
  while (!/Atrium is ready/.test(log)) {
    if (!alive() || Date.now() - start > limitMs) {
      await node.kill('SIGKILL');
      throw new Error(`node ${name} did not become ready:\n${log.split('\n').slice(-15).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await waitForPort(dicomPort, child);
  return node;
}

export interface ClusterProxy {
  dicomPort: number;
  webPort: number;
  /** HAProxy's view of each server: `backend/server` -> UP, DOWN, ... (from its stats CSV). */
  status(): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

/**
 * HAProxy in front of the nodes, as deploy/haproxy.cfg has it (addresses and ports changed, faster checks
 * so a test does not wait): DIMSE in TCP mode balanced by least connections (an association is one long
 * TCP connection), the web in HTTP mode round robin; every server checked on GET /api/health/ready of its
 * node's HTTP port; a connection that cannot reach a server is redispatched to another.
 */
export async function startClusterProxy(nodes: AtriumNode[]): Promise<ClusterProxy> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-haproxy-cluster-'));
  const [dicomPort, webPort, statsPort] = [await freePort(), await freePort(), await freePort()];
  const config = [
    'global', '  maxconn 512', '',
    'defaults', '  timeout connect 2s', '  timeout client 120s', '  timeout server 120s', '  retries 3', '  option redispatch',
    '  default-server inter 300ms fall 2 rise 2', '',
    'frontend dicom', '  mode tcp', `  bind 127.0.0.1:${dicomPort}`, '  default_backend atrium_dicom', '',
    'backend atrium_dicom', '  mode tcp', '  balance leastconn', '  option httpchk GET /api/health/ready', '  http-check expect status 200',
    ...nodes.map((n) => `  server ${n.name} 127.0.0.1:${n.dicomPort} check port ${n.httpPort}`), '',
    'frontend web', '  mode http', `  bind 127.0.0.1:${webPort}`, '  option forwardfor', '  default_backend atrium_web', '',
    'backend atrium_web', '  mode http', '  balance roundrobin', '  option httpchk GET /api/health/ready', '  http-check expect status 200',
    ...nodes.map((n) => `  server ${n.name} 127.0.0.1:${n.httpPort} check`), '',
    'listen stats', '  mode http', `  bind 127.0.0.1:${statsPort}`, '  stats enable', '  stats uri /stats', '',
  ].join('\n');
  const file = path.join(dir, 'haproxy.cfg');
  await writeFile(file, config);
  const child = spawn('haproxy', ['-db', '-f', file], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const proxy: ClusterProxy = {
    dicomPort, webPort,
    async status() {
      const csv = await (await fetch(`http://127.0.0.1:${statsPort}/stats;csv`)).text();
      const out: Record<string, string> = {};
      for (const line of csv.split('\n').slice(1)) {
        const [backend, server, ...rest] = line.split(',');
        if (server && server !== 'FRONTEND' && server !== 'BACKEND') out[`${backend}/${server}`] = rest[15];
      }
      return out;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* gone */ }
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const port of [dicomPort, webPort, statsPort]) await waitForPort(port, child);
  } catch (error) {
    await proxy.stop();
    throw new Error(`haproxy did not start: ${(error as Error).message}\n${output}`);
  }
  return proxy;
}
