import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';

/** MLLP (HL7 v2 Minimal Lower Layer Protocol, release 2): <VT> message <FS><CR>. */
export const START_BLOCK = 0x0b;
export const END_BLOCK = 0x1c;
export const CARRIAGE_RETURN = 0x0d;

export class MllpFrameTooLarge extends Error {}

/**
 * Splits a byte stream into MLLP frames: several frames in one chunk, one frame over many chunks, bytes
 * outside a frame (garbage, stray CRs or line feeds between frames) skipped. A frame longer than
 * `maxFrameBytes` throws MllpFrameTooLarge: the connection is to be closed, nothing of it applied.
 * <FS> ends a frame; the <CR> after it is optional (some senders omit it) and swallowed when present.
 */
export class MllpFramer {
  readonly #max: number;
  #inFrame = false;
  #afterEnd = false;
  #parts: Buffer[] = [];
  #length = 0;
  /** Bytes skipped outside frames, for the log. */
  skipped = 0;

  constructor(maxFrameBytes: number) {
    this.#max = maxFrameBytes;
  }

  /** Whether a frame was started and not ended (a disconnect now loses it). */
  get partial(): boolean {
    return this.#inFrame;
  }

  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.#afterEnd) {
        this.#afterEnd = false;
        if (chunk[i] === CARRIAGE_RETURN) { i++; continue; }
      }
      if (!this.#inFrame) {
        const start = chunk.indexOf(START_BLOCK, i);
        if (start < 0) { this.skipped += chunk.length - i; break; }
        this.skipped += start - i;
        this.#inFrame = true;
        i = start + 1;
        continue;
      }
      const end = chunk.indexOf(END_BLOCK, i);
      const stop = end < 0 ? chunk.length : end;
      // A <VT> inside a frame: the sender gave up on the previous frame and started again.
      const restart = chunk.subarray(i, stop).lastIndexOf(START_BLOCK);
      if (restart >= 0) {
        this.skipped += this.#length + restart;
        this.#parts = [];
        this.#length = 0;
        i += restart + 1;
        continue;
      }
      this.#length += stop - i;
      if (this.#length > this.#max) throw new MllpFrameTooLarge(`an MLLP frame passed ${this.#max} bytes`);
      if (stop > i) this.#parts.push(chunk.subarray(i, stop));
      if (end < 0) break;
      frames.push(Buffer.concat(this.#parts));
      this.#parts = [];
      this.#length = 0;
      this.#inFrame = false;
      this.#afterEnd = true;
      i = end + 1;
    }
    return frames;
  }
}

export function mllpFrame(payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([START_BLOCK]), payload, Buffer.from([END_BLOCK, CARRIAGE_RETURN])]);
}

export interface MllpPeer {
  address: string;
  port: number;
  tls: boolean;
  /** The TLS client certificate's subject CN, when one was presented and verified. */
  certificateSubject: string | null;
}

/** Answers one received message with the bytes of its acknowledgment. Must not throw: a throw closes the connection. */
export type MllpHandler = (message: Buffer, peer: MllpPeer) => Promise<Buffer>;

export interface MllpListenerOptions {
  host: string;
  port: number;
  /** When given, the listener speaks TLS (minimum TLS 1.2). */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer; requireClientCert: boolean } | null;
  /** Remote addresses allowed to connect; empty: any. Others are closed at once. */
  allowedAddresses: readonly string[];
  maxFrameBytes: number;
  /** A connection silent this long is closed. */
  idleTimeoutMs: number;
  handler: MllpHandler;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export interface MllpListener {
  port: number;
  close(): Promise<void>;
  /** Open connections, for tests and metrics. */
  readonly connections: number;
}

/**
 * An MLLP server. Each connection is persistent: messages are handled one after the other and their ACKs
 * written in the order the messages came (a sender relying on the order of ACKs, as most do, sees it kept);
 * different connections run concurrently. Framing errors (a frame over the cap) close the connection:
 * what was received of that frame is dropped and never reaches the handler.
 */
export async function startMllpListener(options: MllpListenerOptions): Promise<MllpListener> {
  /** Each open connection with the chain of its messages under way. */
  const sockets = new Map<net.Socket, { queue: Promise<void> }>();
  const log = options.log;
  const onConnection = (socket: net.Socket) => {
    const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (options.allowedAddresses.length > 0 && !options.allowedAddresses.includes(address)) {
      log?.warn({ remoteAddress: address }, 'HL7: connection from an address not allowed, closed');
      socket.destroy();
      return;
    }
    const state = { queue: Promise.resolve() };
    sockets.set(socket, state);
    const tlsSocket = socket instanceof tls.TLSSocket ? socket : null;
    const cert = tlsSocket?.authorized ? tlsSocket.getPeerCertificate() : null;
    const peer: MllpPeer = { address, port: socket.remotePort ?? 0, tls: !!tlsSocket, certificateSubject: (cert?.subject?.CN as string | undefined) ?? null };
    const framer = new MllpFramer(options.maxFrameBytes);
    let closed = false;
    socket.setNoDelay(true);
    socket.setTimeout(options.idleTimeoutMs, () => {
      log?.info({ remoteAddress: address }, 'HL7: idle connection closed');
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = framer.push(chunk);
      } catch (error) {
        log?.warn({ remoteAddress: address, err: error }, `HL7: ${(error as Error).message}; connection closed`);
        closed = true;
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        state.queue = state.queue.then(async () => {
          if (closed) return;
          const ack = await options.handler(frame, peer);
          if (closed || socket.destroyed) return;
          if (!socket.write(mllpFrame(ack))) await once(socket, 'drain').catch(() => {});
        }).catch((error) => {
          log?.warn({ remoteAddress: address, err: error }, 'HL7: message handling failed; connection closed');
          closed = true;
          socket.destroy();
        });
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      sockets.delete(socket);
      if (framer.partial) log?.info({ remoteAddress: address }, 'HL7: connection closed in the middle of a frame; the partial frame was dropped');
    });
  };
  const server = options.tls
    ? tls.createServer({ cert: options.tls.cert, key: options.tls.key, ca: options.tls.ca, requestCert: options.tls.requireClientCert, rejectUnauthorized: options.tls.requireClientCert, minVersion: 'TLSv1.2' }, onConnection)
    : net.createServer(onConnection);
  // A client that does not complete the handshake (no certificate where one is required, one not signed by
  // the CA, plain TCP on the TLS port) never reaches onConnection: nothing it sent is read as a message.
  server.on('tlsClientError', (error: Error & { code?: string }, socket: tls.TLSSocket) => {
    log?.warn({ remoteAddress: (socket.remoteAddress ?? '').replace(/^::ffff:/, ''), reason: error.code ?? error.message }, `HL7: TLS handshake failed, connection closed: ${error.message}`);
  });
  server.listen(options.port, options.host);
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get connections() { return sockets.size; },
    async close() {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      // Connections end after the messages under way have their ACKs: stop reading, finish, then close.
      const deadline = setTimeout(() => { for (const socket of sockets.keys()) socket.destroy(); }, 5000);
      await Promise.all([...sockets].map(async ([socket, state]) => {
        socket.pause();
        await state.queue;
        socket.end();
      }));
      await closing;
      clearTimeout(deadline);
    },
  };
}
