/**
 * multipart/related bodies (RFC 2387, PS3.18 8.6.1.2) produced as a stream: each part's bytes are pulled
 * from its source only when the client reads, so a study of any size is never held in memory.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

export interface Part {
  contentType: string;
  /** Known length of the body, sent as Content-Length of the part. */
  length?: number;
  location?: string;
  /** The bytes, or a function opening them when the part is reached (so blobs open one at a time). */
  body: Uint8Array | AsyncIterable<Uint8Array> | (() => Promise<Uint8Array | AsyncIterable<Uint8Array>>);
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
export async function* multipartBody(parts: Iterable<Part> | AsyncIterable<Part>, boundary: string): AsyncGenerator<Uint8Array> {
  for await (const part of parts) {
    let head = `--${boundary}\r\nContent-Type: ${part.contentType}\r\n`;
    if (part.length !== undefined) head += `Content-Length: ${part.length}\r\n`;
    if (part.location) head += `Content-Location: ${part.location}\r\n`;
    yield encoder.encode(head + '\r\n');
    const body = typeof part.body === 'function' ? await part.body() : part.body;
    if (body instanceof Uint8Array) yield body;
    else for await (const chunk of body) yield chunk as Uint8Array;
    yield encoder.encode('\r\n');
  }
  yield encoder.encode(`--${boundary}--\r\n`);
}

export function multipartStream(parts: Iterable<Part> | AsyncIterable<Part>, boundary: string): Readable {
  return Readable.from(multipartBody(parts, boundary), { objectMode: false });
}
