import net from 'node:net';
import tls from 'node:tls';
import { MllpFramer, mllpFrame } from './mllp.ts';

export interface MllpClientOptions {
  host: string;
  port: number;
  /** When given, the connection speaks TLS (minimum 1.2); `ca` (PEM) to trust a private CA. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string; rejectUnauthorized?: boolean } | null;
  /** How long to wait for the connection and then for the acknowledgment. */
  timeoutMs: number;
  maxFrameBytes?: number;
  signal?: AbortSignal;
}

/** Why an MLLP exchange did not give an answer: no connection, no answer in time, or the peer closed. */
export class MllpClientError extends Error {
  readonly code: 'connect' | 'timeout' | 'closed';
  constructor(code: 'connect' | 'timeout' | 'closed', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MllpClientError';
    this.code = code;
  }
}

/**
 * Sends one message in an MLLP frame on a new connection and resolves with the payload of the first frame
 * that comes back (the acknowledgment), then closes the connection. Rejects with MllpClientError when the
 * peer cannot be reached, does not answer within `timeoutMs`, or closes without answering.
 */
export async function sendMllp(options: MllpClientOptions, message: Uint8Array): Promise<Buffer> {
  return await new Promise<Buffer>((resolve, reject) => {
    const framer = new MllpFramer(options.maxFrameBytes ?? 1 << 20);
    let settled = false;
    let connected = false;
    const socket: net.Socket = options.tls
      ? tls.connect({ host: options.host, port: options.port, minVersion: 'TLSv1.2', ...options.tls, servername: options.tls.servername ?? (net.isIP(options.host) ? undefined : options.host) })
      : net.connect({ host: options.host, port: options.port });
    const finish = (error: Error | null, frame?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error) reject(error); else resolve(frame!);
    };
    const timer = setTimeout(() => finish(new MllpClientError('timeout', connected
      ? `no acknowledgment from ${options.host}:${options.port} within ${options.timeoutMs} ms`
      : `no connection to ${options.host}:${options.port} within ${options.timeoutMs} ms`)), options.timeoutMs);
    const onAbort = () => finish(new MllpClientError('closed', 'the send was aborted'));
    options.signal?.addEventListener('abort', onAbort);
    socket.once(options.tls ? 'secureConnect' : 'connect', () => {
      connected = true;
      socket.write(mllpFrame(message));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        const [frame] = framer.push(chunk);
        if (frame) finish(null, frame);
      } catch (error) {
        finish(new MllpClientError('closed', (error as Error).message, { cause: error }));
      }
    });
    socket.on('error', (error) => finish(new MllpClientError(connected ? 'closed' : 'connect', `${options.host}:${options.port}: ${error.message}`, { cause: error })));
    socket.on('close', () => finish(new MllpClientError(connected ? 'closed' : 'connect', `${options.host}:${options.port} closed the connection without an acknowledgment`)));
  });
}
