// Shared by the src/dimse tests: a capturing logger, raw sockets, helpers around DCMTK.
import { execFile } from 'node:child_process';
import net from 'node:net';
import type { DimseLogger } from '../../src/dimse/association.ts';
import { PduFramer } from '../../src/dimse/pdu-framer.ts';
import type { FrameEvent } from '../../src/dimse/pdu-framer.ts';

export interface LogLine { level: string; msg: string; fields: Record<string, unknown> }

export function captureLogger(): DimseLogger & { lines: LogLine[]; find(re: RegExp): LogLine | undefined } {
  const lines: LogLine[] = [];
  const at = (level: string) => (fields: object, msg?: string): void => {
    lines.push({ level, msg: msg ?? '', fields: fields as Record<string, unknown> });
  };
  return {
    lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'),
    find: (re) => lines.find((l) => re.test(l.msg)),
  };
}

export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, limitMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface RawPeer {
  socket: net.Socket;
  events: FrameEvent[];
  closed: Promise<void>;
  send(bytes: Uint8Array): void;
  /** The next control PDU received. */
  nextPdu(): Promise<FrameEvent & { kind: 'pdu' }>;
}

/** A raw TCP peer that decodes what it receives. */
export async function rawPeer(port: number): Promise<RawPeer> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const framer = new PduFramer({ maxPduLength: 0 });
  const events: FrameEvent[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    events.push(...framer.push(chunk));
    wake?.();
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => { wake?.(); r(); }));
  let read = 0;
  return {
    socket, events, closed,
    send: (b) => { socket.write(b); },
    async nextPdu() {
      for (;;) {
        while (read < events.length) {
          const ev = events[read++];
          if (ev.kind === 'pdu') return ev;
        }
        if (socket.destroyed) throw new Error('connection closed');
        await new Promise<void>((r) => { wake = r; });
      }
    },
  };
}

export function run(cmd: string, args: string[], options: { cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: options.cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
