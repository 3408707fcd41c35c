/**
 * Child processes for the DIMSE benchmark: DICOM servers (storescp, Orthanc, Atrium) started in their
 * own process group so that they (and storescp's --fork children) can be stopped by group id, the
 * DCMTK clients (storescu, echoscu), free TCP ports, readiness checks and per-process CPU time.
 * Every process started here is tracked until it exits, so that `killAllTracked` can end them on
 * Ctrl-C or on an error (by their own ids, never by name).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Every DCMTK process gets TCP_NODELAY=1 (DCMTK reads it; Orthanc embeds DCMTK). */
export const DCMTK_ENV: NodeJS.ProcessEnv = { ...process.env, TCP_NODELAY: '1' };

const live = new Set<ChildProcess>();
/** The tracked processes that lead their own process group (servers): signalled by group id. */
const groupLeaders = new WeakSet<ChildProcess>();

let refusing = false;
/** From now on, starting a process throws (the benchmark is being interrupted). */
export function refuseNewProcesses(): void {
  refusing = true;
}
function checkNotRefusing(command: string): void {
  if (refusing) throw new Error(`interrupted: not starting ${command}`);
}

/** Sends `signal` to every tracked process still running (to its group when it leads one). */
export function killAllTracked(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const child of live) {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(groupLeaders.has(child) ? -child.pid : child.pid, signal);
    } catch {
      // Already gone.
    }
  }
}

function track(child: ChildProcess, group: boolean): ChildProcess {
  if (group) groupLeaders.add(child);
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** A free TCP port on 127.0.0.1 (bound, read and released; the usual small race is accepted). */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface Server {
  child: ChildProcess;
  log: string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
}

/** Starts a long-running server in its own process group, stdout and stderr to `log`. */
export function startServer(command: string, args: string[], options: { log: string; env: NodeJS.ProcessEnv; cwd?: string }): Server {
  checkNotRefusing(command);
  const fd = openSync(options.log, 'a');
  let child: ChildProcess;
  try {
    child = track(spawn(command, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', fd, fd] }), true);
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1));
    child.once('error', (error) => resolve(`spawn failed: ${error.message}`));
  });
  return { child, log: options.log, exited };
}

/** SIGTERM to the server's process group, SIGKILL after `graceMs`; resolves once the leader exited. */
export async function stopServer(server: Server, graceMs = 10_000): Promise<void> {
  const { child } = server;
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const signalGroup = (signal: NodeJS.Signals) => {
    try { process.kill(-child.pid!, signal); } catch { /* gone */ }
  };
  signalGroup('SIGTERM');
  const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
  await server.exited;
  clearTimeout(timer);
  signalGroup('SIGKILL'); // storescp --fork children that outlived their parent, if any
}

/** The last `lines` lines of a log file, for error messages. */
export async function logTail(path: string, lines = 15): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** One C-ECHO with echoscu; true when it succeeded. */
export async function echo(aet: string, port: number): Promise<boolean> {
  checkNotRefusing('echoscu');
  return await new Promise((resolve) => {
    const child = track(execFile('echoscu', ['-q', '-to', '2', '-ta', '5', '-aet', 'BENCH', '-aec', aet, '127.0.0.1', String(port)], { env: DCMTK_ENV, timeout: 10_000 }, (error) => resolve(!error)), false);
    child.once('error', () => resolve(false));
  });
}

/**
 * Retries C-ECHO until it succeeds, the server exits, or `timeoutMs` passes. Throws with `what` when
 * the port never answered.
 */
export async function waitForEcho(server: Server, aet: string, port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exit: number | string | undefined;
  void server.exited.then((code) => { exit = code; });
  while (Date.now() < deadline) {
    if (await echo(aet, port)) return;
    if (exit !== undefined) throw new Error(`${what}: DICOM port not answering (the process exited: ${exit} before answering C-ECHO on ${port})`);
    await sleep(250);
  }
  throw new Error(`${what}: DICOM port not answering (no C-ECHO response on 127.0.0.1:${port} as ${aet} within ${(timeoutMs / 1000).toFixed(0)} s)`);
}

/** Polls an HTTP URL until it answers 200, or throws after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer within ${(timeoutMs / 1000).toFixed(0)} s (${last})`);
}

export async function getJson(url: string): Promise<any> {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status} ${await res.text()}`);
  return await res.json();
}

export interface ClientResult {
  code: number | string;
  /** The last part of the client's stderr+stdout (kept short). */
  output: string;
}

/** Starts a client process whose output the caller reads itself (tracked like the others: killed on Ctrl-C or an error). */
export function spawnClient(command: string, args: string[]): ChildProcess {
  checkNotRefusing(command);
  return track(spawn(command, args, { env: DCMTK_ENV, stdio: ['ignore', 'pipe', 'pipe'] }), false);
}

/** Runs a DCMTK client to completion, keeping the last 4 KB of its output. */
export async function runClient(command: string, args: string[]): Promise<ClientResult> {
  checkNotRefusing(command);
  return await new Promise((resolve) => {
    const child = track(spawn(command, args, { env: DCMTK_ENV, stdio: ['ignore', 'pipe', 'pipe'] }), false);
    let output = '';
    const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4096); };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('error', (error) => resolve({ code: `spawn failed: ${error.message}`, output }));
    child.once('close', (code, signal) => resolve({ code: code ?? signal ?? -1, output }));
  });
}

const CLOCK_TICKS = 100; // USER_HZ on Linux (getconf CLK_TCK), fixed at 100 on every Linux ABI

/**
 * CPU seconds (user + system, including reaped children) of a process, from /proc/<pid>/stat; null
 * where /proc is not available or the process is gone.
 */
export function cpuSeconds(pid: number | 'self'): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces, in parentheses): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [utime, stime, cutime, cstime] = [fields[11], fields[12], fields[13], fields[14]].map(Number);
    return (utime + stime + cutime + cstime) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/**
 * A benchmark's clean-up list, run in reverse order on normal completion, errors and Ctrl-C/SIGTERM; no
 * server process outlives the benchmark. `before` runs first (e.g. closing idle HTTP connections).
 */
export function cleanupOnExit(note: (message: string) => void, before: () => void = () => {}) {
  const cleanups: (() => Promise<void>)[] = [];
  async function cleanup(): Promise<void> {
    before();
    for (const fn of cleanups.splice(0).reverse()) {
      await fn().catch((error: unknown) => console.error(`[bench] cleanup failed: ${(error as Error).message}`));
    }
    killAllTracked('SIGKILL');
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      note(`${signal}: stopping servers and clients, removing temp folders`);
      refuseNewProcesses();
      killAllTracked('SIGTERM');
      void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
  // Last resort (uncaught exit paths).
  process.once('exit', () => killAllTracked('SIGKILL'));
  return { cleanups, cleanup };
}

/** Flushes the page cache's dirty pages, so that no run pays for an earlier one's write-back. */
export function syncAll(): void {
  try {
    execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // No `sync` binary.
  }
}
