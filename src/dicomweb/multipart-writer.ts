/**
 * multipart/related bodies (RFC 2387, PS3.18 8.6.1.2) produced as a stream: each part's bytes are pulled
 * from its source only when the client takes them, so a study of any size is never held in memory.
 */
import { randomBytes } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import type { PositionalSource } from '../ports/blob-store.ts';
import { positionalChunks, ReusableBuffers } from '../io/reusable-buffers.ts';
import { headerUrl } from '../io/header-value.ts';

export type BodySource = Uint8Array | AsyncIterable<Uint8Array> | PositionalSource;

export interface Part {
  contentType: string;
  /** Known length of the body, sent as Content-Length of the part. */
  length?: number;
  location?: string;
  /** The bytes, or a function opening them when the part is reached (so blobs open one at a time). */
  body: BodySource | (() => Promise<BodySource>);
}

export function newBoundary(): string {
  return `atrium-${randomBytes(16).toString('hex')}`;
}

/** The Content-Type of a multipart/related response whose root parts are `type`. */
export function multipartContentType(type: string, boundary: string, transferSyntax?: string): string {
  return `multipart/related; type="${type}"; boundary=${boundary}${transferSyntax ? `; transfer-syntax=${transferSyntax}` : ''}`;
}

const encoder = new TextEncoder();

/** The body: "--boundary CRLF headers CRLF CRLF bytes CRLF" for each part, then "--boundary--". */
async function* multipartSources(parts: Iterable<Part> | AsyncIterable<Part>, boundary: string): AsyncGenerator<BodySource> {
  for await (const part of parts) {
    let head = `--${boundary}\r\nContent-Type: ${part.contentType}\r\n`;
    if (part.length !== undefined) head += `Content-Length: ${part.length}\r\n`;
    if (part.location) head += `Content-Location: ${headerUrl(part.location)}\r\n`;
    yield encoder.encode(head + '\r\n');
    yield typeof part.body === 'function' ? await part.body() : part.body;
    yield encoder.encode('\r\n');
  }
  yield encoder.encode(`--${boundary}--\r\n`);
}

export function multipartStream(parts: Iterable<Part> | AsyncIterable<Part>, boundary: string): Readable {
  return new ResponseBody(multipartSources(parts, boundary));
}

/** A single-part body from the same sources (a frame, bulk data, one instance). */
export function bodyStream(source: BodySource): Readable {
  return new ResponseBody((function* () { yield source; })());
}

/**
 * The response body handed to Fastify's reply.send(). Fastify pipes a stream payload into the response; this
 * one takes that pipe() call to write into the response itself, because it must know when the socket is done
 * with each chunk (the write callback), which a piped stream never learns.
 *
 * Why: read as streams, a blob arrives in fresh 64 KiB Buffers. At several hundred MB/s those allocations
 * kept V8 in back-to-back full collections (a mark-compact every ~11 MB, 30% of the thread, WADO-RS of a
 * 525 MB study at 240 to 370 MB/s; 700 MB/s after). Positional sources are read into four reused 256 KiB
 * buffers instead (ReusableBuffers), each taken again once the socket has written it; other sources are
 * written as they come. Backpressure is the response's: nothing is read while it does not drain.
 */
class ResponseBody extends Readable {
  readonly #sources: Iterator<BodySource> | AsyncIterator<BodySource>;
  readonly #buffers = new ReusableBuffers(256 * 1024);
  #started = false;

  constructor(sources: Iterator<BodySource> | AsyncIterator<BodySource>) {
    super();
    this.#sources = sources;
  }

  override _read(): void {
    // Nothing to do: the bytes go straight to the destination given to pipe().
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    if (this.#started) throw new Error('a response body is piped once');
    this.#started = true;
    void this.#run(destination as unknown as Writable);
    return destination;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    void this.#sources.return?.();
    this.#buffers.close();
    callback(error);
  }

  async #run(destination: Writable): Promise<void> {
    try {
      for (let next = await this.#sources.next(); !next.done; next = await this.#sources.next()) {
        const source = next.value;
        if (this.destroyed) {
          if (!(source instanceof Uint8Array) && 'reader' in source) await source.reader.close();
          return;
        }
        if (source instanceof Uint8Array) await this.#write(destination, source);
        else if ('reader' in source) await this.#copy(destination, source);
        else for await (const chunk of source) await this.#write(destination, chunk);
      }
      if (this.destroyed) return;
      destination.end();
      // Ends this stream too, for Fastify's end-of-stream watch on the payload.
      this.push(null);
      this.resume();
    } catch (error) {
      this.destroy(error as Error);
    }
  }

  /** Writes a chunk; resolves when the destination may take more. */
  async #write(destination: Writable, chunk: Uint8Array, done?: () => void): Promise<void> {
    if (this.destroyed || destination.destroyed) throw new Error('the response was closed');
    if (destination.write(chunk, done)) return;
    await new Promise<void>((resolve) => {
      const settle = () => {
        destination.off('drain', settle);
        destination.off('close', settle);
        resolve();
      };
      destination.on('drain', settle);
      destination.on('close', settle);
    });
  }

  async #copy(destination: Writable, source: PositionalSource): Promise<void> {
    for await (const { buffer, length } of positionalChunks(source, this.#buffers)) {
      await this.#write(destination, buffer.subarray(0, length), () => this.#buffers.giveBack(buffer));
    }
  }
}
