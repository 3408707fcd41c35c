/**
 * Orthanc (Debian's /usr/sbin/Orthanc) as a DICOM peer of Atrium in interoperability tests, both ways: started
 * with a generated JSON configuration in a temp folder (free DICOM and HTTP ports, its own AE title, the peers it
 * should know in DicomModalities, its storage and SQLite index in that folder, HTTP on 127.0.0.1 only without
 * authentication), its REST API for what it holds, and a stop that ends the process (its own process group, by
 * pid; never by name) and removes the folder. The same way the benchmark starts it (bench/support/processes.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, runTool } from './dcmtk.ts';

export const ORTHANC_BINARY = '/usr/sbin/Orthanc';

/** Whether Orthanc is installed here (tests skip themselves when it is not). */
export function orthancInstalled(): boolean {
  return existsSync(ORTHANC_BINARY);
}

export interface OrthancModality {
  aeTitle: string;
  host: string;
  port: number;
  /** What Orthanc lets it do; everything by default. */
  allow?: Partial<Record<'Echo' | 'Find' | 'Move' | 'Get' | 'Store' | 'StorageCommitment', boolean>>;
}

export interface OrthancOptions {
  /** Orthanc's AE title. Default ORTHANC. */
  aeTitle?: string;
  /** The nodes Orthanc knows (DicomModalities), by a symbolic name: C-MOVE destinations, callers allowed everything. */
  modalities?: Record<string, OrthancModality>;
  /** Extra configuration keys, merged over the generated ones. */
  config?: Record<string, unknown>;
  /** Start-up limit. Default 30 s. */
  readyTimeoutMs?: number;
}

export interface Orthanc {
  aeTitle: string;
  dicomPort: number;
  httpPort: number;
  /** http://127.0.0.1:<httpPort> */
  url: string;
  dir: string;
  /** What Orthanc logged so far (its --verbose log). */
  log(): Promise<string>;
  /** The last lines of its log, for assertion messages. */
  logTail(lines?: number): Promise<string>;
  /** GET on the REST API, JSON. */
  get<T = any>(route: string): Promise<T>;
  /** POST on the REST API, JSON in and out. */
  post<T = any>(route: string, body: unknown): Promise<T>;
  /** GET on the REST API, bytes (e.g. /instances/{id}/file). */
  bytes(route: string): Promise<Buffer>;
  /** Stores Part-10 files through the REST API (POST /instances); their Orthanc ids. */
  upload(files: Array<Buffer | string>): Promise<string[]>;
  /** Adds (or replaces) a modality while running (PUT /modalities/{name}). */
  addModality(name: string, modality: OrthancModality): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();

/** Kills every Orthanc started here that still runs (an `after` hook's last resort). */
export function killAllOrthancs(): void {
  for (const child of live) {
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
  }
}

const modalityEntry = (m: OrthancModality) => ({
  AET: m.aeTitle, Host: m.host, Port: m.port,
  AllowEcho: true, AllowFind: true, AllowMove: true, AllowGet: true, AllowStore: true, AllowStorageCommitment: true,
  ...Object.fromEntries(Object.entries(m.allow ?? {}).map(([k, v]) => [`Allow${k}`, v])),
});

export async function startOrthanc(options: OrthancOptions = {}): Promise<Orthanc> {
  const aeTitle = options.aeTitle ?? 'ORTHANC';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-orthanc-'));
  const [dicomPort, httpPort] = [await freePort(), await freePort()];
  const config = {
    Name: 'AtriumInterop',
    StorageDirectory: path.join(dir, 'storage'),
    IndexDirectory: path.join(dir, 'index'),
    StorageCompression: false,
    Plugins: [],
    LuaScripts: [],
    HttpServerEnabled: true,
    HttpPort: httpPort,
    RemoteAccessAllowed: false, // 127.0.0.1 only ...
    AuthenticationEnabled: false, // ... and then no authentication
    DicomServerEnabled: true,
    DicomAet: aeTitle,
    DicomPort: dicomPort,
    DicomCheckCalledAet: true,
    DicomModalities: Object.fromEntries(Object.entries(options.modalities ?? {}).map(([name, m]) => [name, modalityEntry(m)])),
    DicomModalitiesInDatabase: false,
    // Unknown callers may echo and store only; what Atrium does as a caller it does as a known modality.
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomAlwaysAllowFind: false,
    DicomAlwaysAllowGet: false,
    DicomAlwaysAllowMove: false,
    DicomScpTimeout: 30,
    SaveJobs: false,
    SynchronousCMove: true,
    OverwriteInstances: false,
    ...options.config,
  };
  const configPath = path.join(dir, 'orthanc.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const logPath = path.join(dir, 'orthanc.log');
  const child = spawn(ORTHANC_BINARY, ['--verbose', `--logfile=${logPath}`, configPath],
    { cwd: dir, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TCP_NODELAY: '1' } });
  live.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-8192); });
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => { live.delete(child); resolve(code ?? signal ?? -1); });
    child.once('error', (error) => { live.delete(child); resolve(`spawn failed: ${error.message}`); });
  });
  let exit: number | string | undefined;
  void exited.then((code) => { exit = code; });
  const url = `http://127.0.0.1:${httpPort}`;

  const readLog = async () => {
    try { return await readFile(logPath, 'utf8'); } catch { return stderr; }
  };
  const logTail = async (lines = 30) => (await readLog()).trimEnd().split('\n').slice(-lines).join('\n');
  const request = async (method: string, route: string, body?: unknown): Promise<Response> => {
    const res = await fetch(`${url}${route}`, {
      method, signal: AbortSignal.timeout(120_000),
      ...(body === undefined ? {} : { body: Buffer.isBuffer(body) ? body : JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`Orthanc ${method} ${route}: HTTP ${res.status} ${await res.text()}`);
    return res;
  };

  const stop = async () => {
    if (child.pid !== undefined && exit === undefined) {
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  };

  // Ready when both the REST API and the DICOM port answer.
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  let last = '';
  for (;;) {
    if (exit !== undefined) {
      const tail = await logTail();
      await stop();
      throw new Error(`Orthanc exited (${exit}) while starting:\n${tail}\n${stderr}`);
    }
    try {
      const res = await fetch(`${url}/system`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.ok) {
        const echo = await runTool('echoscu', ['-q', '-to', '2', '-aet', 'PROBE', '-aec', aeTitle, '127.0.0.1', String(dicomPort)], { timeoutMs: 10_000 });
        if (echo.code === 0) break;
        last = `C-ECHO: ${echo.output.trim()}`;
      } else last = `HTTP ${res.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) {
      const tail = await logTail();
      await stop();
      throw new Error(`Orthanc did not become ready (${last}):\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  return {
    aeTitle, dicomPort, httpPort, url, dir,
    log: readLog,
    logTail,
    get: async <T>(route: string) => await (await request('GET', route)).json() as T,
    post: async (route, body) => {
      const text = await (await request('POST', route, body)).text();
      return text ? JSON.parse(text) : undefined;
    },
    bytes: async (route) => Buffer.from(await (await request('GET', route)).arrayBuffer()),
    async upload(files) {
      const ids: string[] = [];
      for (const file of files) {
        const bytes = typeof file === 'string' ? await readFile(file) : file;
        const answer = await (await request('POST', '/instances', bytes)).json() as { ID: string; Status: string };
        ids.push(answer.ID);
      }
      return ids;
    },
    async addModality(name, modality) {
      await request('PUT', `/modalities/${name}`, modalityEntry(modality));
    },
    stop,
  };
}
