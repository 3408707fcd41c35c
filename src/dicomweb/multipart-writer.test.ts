// The response body of WADO-RS: byte-exact multipart framing over every kind of source, positional reads
// into a few reused buffers (none allocated per chunk), and every blob closed when the client goes away.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import type { BlobReader } from '../ports/blob-store.ts';
import { bodyStream, multipartStream, type Part } from './multipart-writer.ts';

/** A blob in memory, recording the buffers it was asked to read into and whether it was closed. */
class MemoryReader implements BlobReader {
  readonly buffers = new Set<Uint8Array['buffer']>();
  closed = false;
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) { this.#bytes = bytes; }
  get size(): number { return this.#bytes.length; }
  async read(into: Uint8Array, position: number): Promise<number> {
    this.buffers.add(into.buffer);
    const n = Math.max(0, Math.min(into.length, this.#bytes.length - position));
    into.set(this.#bytes.subarray(position, position + n));
    await new Promise((resolve) => setImmediate(resolve));
    return n;
  }
  async close(): Promise<void> { this.closed = true; }
}

let app: FastifyInstance;
let port: number;
let route: () => ReturnType<typeof multipartStream>;

before(async () => {
  app = Fastify();
  app.get('/body', async (_req, reply) => reply.type('multipart/related; boundary=B').send(route()));
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as AddressInfo).port;
});

after(async () => { await app?.close(); });

async function fetchAll(): Promise<Buffer> {
  const response = await fetch(`http://127.0.0.1:${port}/body`);
  assert.equal(response.status, 200);
  return Buffer.from(await response.arrayBuffer());
}

test('parts from bytes, iterables and positional reads (whole and by pieces) come out byte-exact, readers closed', async () => {
  const blob = randomBytes(3 * 1024 * 1024 + 17);
  const whole = new MemoryReader(blob);
  const pieces = new MemoryReader(blob);
  const inline = randomBytes(1000);
  const streamed = [randomBytes(70_000), randomBytes(5)];
  const parts: Part[] = [
    { contentType: 'application/dicom', length: blob.length, location: 'a', body: async () => ({ reader: whole }) },
    { contentType: 'application/octet-stream', body: inline },
    { contentType: 'application/octet-stream', body: (async function* () { yield* streamed; })() },
    { contentType: 'application/octet-stream', body: { reader: pieces, pieces: [[10, 300_000], [2_000_000, 0], [3 * 1024 * 1024, 17]] } },
  ];
  route = () => multipartStream(parts, 'B');
  const body = await fetchAll();
  const expected = Buffer.concat([
    Buffer.from(`--B\r\nContent-Type: application/dicom\r\nContent-Length: ${blob.length}\r\nContent-Location: a\r\n\r\n`), blob, Buffer.from('\r\n'),
    Buffer.from('--B\r\nContent-Type: application/octet-stream\r\n\r\n'), inline, Buffer.from('\r\n'),
    Buffer.from('--B\r\nContent-Type: application/octet-stream\r\n\r\n'), ...streamed, Buffer.from('\r\n'),
    Buffer.from('--B\r\nContent-Type: application/octet-stream\r\n\r\n'), blob.subarray(10, 300_010), blob.subarray(3 * 1024 * 1024), Buffer.from('\r\n'),
    Buffer.from('--B--\r\n'),
  ]);
  assert.ok(body.equals(expected), 'the multipart body differs from the parts');
  assert.ok(whole.closed && pieces.closed, 'a blob reader was left open');
  // 3 MiB went through at most four 256 KiB buffers, reused: not one allocation per chunk.
  assert.ok(whole.buffers.size <= 4, `${whole.buffers.size} buffers for one blob`);
});

test('a single-part body from a positional source', async () => {
  const blob = randomBytes(600_000);
  const reader = new MemoryReader(blob);
  route = () => bodyStream({ reader });
  assert.ok((await fetchAll()).equals(blob));
  assert.ok(reader.closed);
});

test('a stored object shorter than its size fails the response instead of sending a short part', async () => {
  const reader = new MemoryReader(randomBytes(1000));
  route = () => bodyStream({ reader, pieces: [[0, 5000]] });
  await assert.rejects(fetchAll());
  assert.ok(reader.closed);
});

test('a client that goes away mid-study: the blob being read is closed and the next ones are never opened', async () => {
  const readers: MemoryReader[] = [];
  const parts = (async function* (): AsyncGenerator<Part> {
    for (let i = 0; i < 50; i++) {
      yield { contentType: 'application/dicom', body: async () => { const r = new MemoryReader(randomBytes(2 * 1024 * 1024)); readers.push(r); return { reader: r }; } };
    }
  })();
  route = () => multipartStream(parts, 'B');
  await new Promise<void>((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/body' }, (response) => {
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > 3 * 1024 * 1024) { request.destroy(); resolve(); }
      });
    });
    request.on('error', (error) => (error.message.includes('aborted') || error.message.includes('socket hang up') ? resolve() : reject(error)));
  });
  for (let i = 0; i < 100 && !readers.every((r) => r.closed); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(readers.length > 0 && readers.length < 50, `${readers.length} blobs opened`);
  assert.ok(readers.every((r) => r.closed), 'a blob reader stayed open after the client left');
});
