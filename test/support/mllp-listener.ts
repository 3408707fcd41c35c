// A test MLLP listener (an HL7 receiving system standing in for a RIS): plain node:net with its own framing,
// none of Atrium's HL7 code, so what it records is what went over the wire. It answers each frame with an
// ACK built by hand (AA by default; AE, AR, or nothing at all, as configured at any time).
import net from 'node:net';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import type { Archive } from '../../src/app.ts';
import type { Job } from '../../src/ports/job-queue.ts';

export type ListenerMode = 'AA' | 'AE' | 'AR' | 'silent';

export interface TestMllpListener {
  port: number;
  /** Every frame received (payload without <VT> and <FS><CR>), in order. */
  frames: Buffer[];
  mode: ListenerMode;
  /** Resolves once `n` frames have been received. */
  waitForFrames(n: number, timeoutMs?: number): Promise<Buffer[]>;
  close(): Promise<void>;
}

export async function startTestMllpListener(options: { port?: number; mode?: ListenerMode } = {}): Promise<TestMllpListener> {
  const frames: Buffer[] = [];
  const waiters: (() => void)[] = [];
  const sockets = new Set<net.Socket>();
  const state: TestMllpListener = {
    port: 0, frames, mode: options.mode ?? 'AA',
    async waitForFrames(n, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (frames.length < n) {
        if (Date.now() > deadline) throw new Error(`the test MLLP listener got ${frames.length} frames, not ${n}`);
        await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 200); });
      }
      return frames;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const start = buffer.indexOf(0x0b);
        const end = buffer.indexOf(0x1c, start + 1);
        if (start < 0 || end < 0) break;
        const frame = buffer.subarray(start + 1, end);
        buffer = buffer.subarray(buffer[end + 1] === 0x0d ? end + 2 : end + 1);
        frames.push(Buffer.from(frame));
        for (const w of waiters.splice(0)) w();
        if (state.mode !== 'silent') socket.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(ackFor(frame.toString('utf8'), state.mode)), Buffer.from([0x1c, 0x0d])]));
      }
    });
  });
  server.listen(options.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  state.port = (server.address() as net.AddressInfo).port;
  return state;
}

function ackFor(message: string, code: 'AA' | 'AE' | 'AR'): string {
  const msh = message.split('\r')[0]!.split('|');
  const segments = [`MSH|^~\\&|${msh[4] ?? ''}|${msh[5] ?? ''}|${msh[2] ?? ''}|${msh[3] ?? ''}|20260101000000||ACK^${(msh[8] ?? '').split('^')[1] ?? ''}^ACK|ACK-${msh[9]}|P|${msh[11] ?? '2.5.1'}`];
  if (code === 'AA') segments.push(`MSA|AA|${msh[9]}`);
  else if (code === 'AE') segments.push(`MSA|AE|${msh[9]}|Order database unavailable`, 'ERR||ORC^1^5|207^Application internal error^HL70357|E||||Order database unavailable');
  else segments.push(`MSA|AR|${msh[9]}|Unknown order`, 'ERR||OBR^1^18|204^Unknown key identifier^HL70357|E||||Unknown order');
  return segments.join('\r') + '\r';
}

/**
 * Runs a python3-hl7 script (Debian's, the library of mllp_send: a parser that is not ours) on a frame
 * given on its stdin, and returns the JSON it prints.
 */
export async function runPythonHl7<T>(script: string, frame: Buffer): Promise<T> {
  return await new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/python3', ['-c', script], { timeout: 20_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as T)));
    child.stdin!.end(frame);
  });
}

/** Polls the archive's jobs of one type until `predicate` picks one (outbound HL7 jobs run on the job runner's own schedule). */
export async function waitForJobOfType(archive: Archive, type: string, predicate: (jobs: Job[]) => Job | undefined, what: string): Promise<Job> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const jobs = (await archive.jobs.list({ type }, { limit: 200, offset: 0 })).items;
    const found = predicate(jobs);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(jobs.map((j) => [j.id, j.state, j.attempts, j.lastError]))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
