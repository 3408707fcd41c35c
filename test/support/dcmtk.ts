/**
 * DCMTK command-line tools as peers of Atrium in end-to-end tests: running a client with a hard time limit,
 * starting a long-running storescp, free ports, and reading what the tools write (Part-10 files, dcmdump).
 * Every child is spawned in its own process group and killed by its own pid; nothing is ever killed by
 * name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Part10Reader } from '../../src/dicom/part10-reader.ts';
import type { PositionalSource } from '../../src/ports/blob-store.ts';
import { positionalChunks, ReusableBuffers } from '../../src/io/reusable-buffers.ts';
import type { Part10Header } from '../../src/dicom/part10-reader.ts';

export interface ToolResult {
  /** Exit code; null when the process was killed (by our timer or a signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together (DCMTK logs to stderr, some tools print to stdout). */
  output: string;
  timedOut: boolean;
}

const live = new Set<ChildProcess>();

function killChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // Our own group (detached), so that anything the tool forks goes too; by id, never by name.
    process.kill(-child.pid, signal);
  } catch {
    try { child.kill(signal); } catch { /* already gone */ }
  }
}

/** Kills every child started by this module that is still running (for `after` hooks). */
export function killAllChildren(): void {
  for (const child of live) killChild(child);
}

/** Runs a DCMTK tool to completion; killed after `timeoutMs` (then `timedOut` is true and `code` null). */
export function runTool(command: string, args: string[], options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ToolResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    let output = '';
    let timedOut = false;
    child.stdout!.setEncoding('utf8').on('data', (s: string) => { stdout += s; output += s; });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; output += s; });
    const timer = setTimeout(() => { timedOut = true; killChild(child); }, timeoutMs);
    child.once('error', (error) => { clearTimeout(timer); live.delete(child); reject(error); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout, stderr, output, timedOut });
    });
  });
}

/** A free TCP port on 127.0.0.1: bound to 0, read, released (for tools that cannot listen on port 0). */
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

/** Resolves once something accepts TCP connections on the port (or rejects after `limitMs`). */
export async function waitForPort(port: number, child: ChildProcess, limitMs = 15_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the process exited (${child.exitCode ?? child.signalCode}) before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - start > limitMs) throw new Error(`nothing listening on port ${port} after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Storescp {
  port: number;
  aeTitle: string;
  /** Everything it logged so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * DCMTK's storescp listening on a free port, writing every received object as a Part-10 file into `dir`.
 * It accepts every storage SOP class in any transfer syntax it knows (`+xa`), so what it receives is what
 * was sent, in the syntax it was sent in.
 */
export async function startStorescp(dir: string, options: { aeTitle?: string; extraArgs?: string[]; port?: number; uncompressedOnly?: boolean } = {}): Promise<Storescp> {
  const aeTitle = options.aeTitle ?? 'STORESCP';
  // A given port: a peer that comes back up where it was (routing retries).
  const port = options.port ?? await freePort();
  const child = spawn('storescp', ['-aet', aeTitle, ...(options.uncompressedOnly ? [] : ['+xa']), '-od', dir, '-v', ...(options.extraArgs ?? []), String(port)],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { log += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { log += s; });
  const exited = new Promise<void>((resolve) => child.once('close', () => { live.delete(child); resolve(); }));
  try {
    await waitForPort(port, child);
  } catch (error) {
    killChild(child);
    throw new Error(`storescp did not start: ${(error as Error).message}\n${log}`);
  }
  return {
    port, aeTitle,
    output: () => log,
    async stop() {
      killChild(child, 'SIGTERM');
      const timer = setTimeout(() => killChild(child), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Concatenates an async iterable of chunks, or reads a positional source (RetrieveService.openDataset) and closes it. */
export async function collect(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | PositionalSource): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  if ('reader' in chunks) {
    const buffers = new ReusableBuffers(64 * 1024);
    for await (const { buffer, length } of positionalChunks(chunks, buffers)) {
      parts.push(buffer.slice(0, length));
      buffers.giveBack(buffer);
    }
    return Buffer.concat(parts);
  }
  for await (const c of chunks) parts.push(c);
  return Buffer.concat(parts);
}

export interface ParsedFile {
  bytes: Buffer;
  header: Part10Header;
  /** The data set as encoded in the file: everything after the File Meta Information. */
  dataset: Buffer;
  transferSyntaxUID: string;
}

/** Parses Part-10 bytes with our reader; `dataset` is the bytes from `datasetOffset` on. */
export function parsePart10(bytes: Buffer): ParsedFile {
  const reader = new Part10Reader();
  reader.push(bytes);
  const header = reader.end();
  return { bytes, header, dataset: bytes.subarray(header.datasetOffset), transferSyntaxUID: header.transferSyntaxUID };
}

export async function readPart10(file: string): Promise<ParsedFile> {
  return parsePart10(await readFile(file));
}

/** The files (not folders) directly in `dir`, full paths, sorted. */
export async function filesIn(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(dir, e.name)).sort();
}

/**
 * The values of some attributes of a DICOM file, from `dcmdump` (DCMTK's reading, independent of ours):
 * keyword -> the printed value without brackets, or undefined when absent/empty.
 */
export async function dumpValues(file: string, keywords: string[]): Promise<Record<string, string | undefined>> {
  const r = await runTool('dcmdump', ['-q', '+L', ...keywords.flatMap((k) => ['+P', k]), file], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`dcmdump ${file} failed (${r.code}): ${r.output}`);
  const values: Record<string, string | undefined> = {};
  for (const line of r.stdout.split('\n')) {
    // (0010,0010) PN [DOE^JOHN]                              #   8, 1 PatientName
    const m = /^\s*\([0-9a-f]{4},[0-9a-f]{4}\) \w\w (.*?)\s+#\s*\d+,\s*\d+\s+(\w+)\s*$/i.exec(line);
    if (!m) continue;
    const [, raw, keyword] = m;
    const value = raw.startsWith('[') ? raw.slice(1, raw.lastIndexOf(']')) : raw.startsWith('(no value') ? undefined : raw;
    if (values[keyword] === undefined) values[keyword] = value === '' ? undefined : value;
  }
  return values;
}

