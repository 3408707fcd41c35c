import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boundaryOf, MultipartError, MultipartParser, parseMediaType, readMultipart } from './multipart-reader.ts';

const BOUNDARY = 'atrium-b0und4ry';

function* chunked(bytes: Uint8Array, size: number | (() => number)): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length;) {
    const n = typeof size === 'number' ? size : size();
    yield bytes.subarray(i, i + n);
    i += n;
  }
}

async function collect(source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, boundary = BOUNDARY, maxHeaderBytes?: number) {
  const parts: { headers: Record<string, string>; body: Buffer }[] = [];
  for await (const part of readMultipart(source, boundary, { maxHeaderBytes })) {
    const pieces: Uint8Array[] = [];
    for await (const c of part.body) pieces.push(c);
    parts.push({ headers: part.headers, body: Buffer.concat(pieces) });
  }
  return parts;
}

/** A deterministic pseudo-random generator, so a failing chunking can be reproduced. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const awkwardData = [
  // The boundary, or most of it, inside the data without being a delimiter.
  Buffer.from(`--${BOUNDARY}\r\n--${BOUNDARY.slice(0, -1)}\r\n--${BOUNDARY.slice(0, -1)}X \r\n-\r\r\n\r\n--\r\n`),
  Buffer.alloc(0), // an empty part
  Buffer.from('\r\n\r\nleading and trailing CRLFs belong to the data\r\n\r\n'),
  Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 256)), // binary, with CRs and LFs
];

function body(options: { preamble?: string; epilogue?: string; padding?: string; firstWithoutCrlf?: boolean } = {}): Buffer {
  const pieces: Buffer[] = [];
  if (options.preamble !== undefined) pieces.push(Buffer.from(`${options.preamble}\r\n`));
  awkwardData.forEach((data, i) => {
    const delimiter = i === 0 ? `--${BOUNDARY}` : `\r\n--${BOUNDARY}`;
    pieces.push(Buffer.from(`${delimiter}${options.padding ?? ''}\r\nContent-Type: application/dicom\r\nContent-Location: part${i}\r\nX-Folded: a\r\n  b\r\n\r\n`));
    pieces.push(data);
  });
  pieces.push(Buffer.from(`\r\n--${BOUNDARY}--${options.epilogue ?? ''}`));
  return Buffer.concat(pieces);
}

function assertParts(parts: Awaited<ReturnType<typeof collect>>) {
  assert.equal(parts.length, awkwardData.length);
  parts.forEach((part, i) => {
    assert.equal(part.headers['content-type'], 'application/dicom');
    assert.equal(part.headers['content-location'], `part${i}`);
    assert.equal(part.headers['x-folded'], 'a  b');
    assert.ok(part.body.equals(awkwardData[i]), `part ${i} differs`);
  });
}

test('parses the same parts whatever the chunking (1, 2, 7 bytes, random, whole)', async () => {
  const variants = [
    body(),
    body({ preamble: 'This is a preamble.\r\nIt is ignored, even with --atrium-b0und4ry-ish text', epilogue: '\r\nepilogue ignored\r\n' }),
    body({ padding: ' \t ' }),
  ];
  for (const bytes of variants) {
    for (const size of [1, 2, 3, 7, 64, 4096, bytes.length]) assertParts(await collect(chunked(bytes, size)));
    for (let seed = 1; seed <= 20; seed++) {
      const next = random(seed);
      assertParts(await collect(chunked(bytes, () => 1 + Math.floor(next() * 40))));
    }
  }
});

test('a part with no header fields and a CRLF-only body', async () => {
  const bytes = Buffer.from(`--${BOUNDARY}\r\n\r\n\r\n\r\n--${BOUNDARY}\r\nA: 1\r\n\r\nx\r\n--${BOUNDARY}--`);
  for (const size of [1, 2, 5, bytes.length]) {
    const parts = await collect(chunked(bytes, size));
    assert.deepEqual(parts.map((p) => [p.headers, p.body.toString()]), [[{}, '\r\n'], [{ a: '1' }, 'x']]);
  }
});

test('a body whose close delimiter comes first has no parts', async () => {
  assert.deepEqual(await collect([Buffer.from(`preamble\r\n--${BOUNDARY}--\r\n`)]), []);
});

test('content type parameters: quoted and unquoted boundaries, type, escapes', () => {
  assert.equal(boundaryOf(`multipart/related; type="application/dicom"; boundary=${BOUNDARY}`), BOUNDARY);
  assert.equal(boundaryOf('multipart/related;boundary="with space:and=equals"; type=application/dicom'), 'with space:and=equals');
  assert.equal(boundaryOf('Multipart/Related; BOUNDARY=plain'), 'plain');
  assert.deepEqual(parseMediaType('a/b; x="q\\"uote\\\\"'), { type: 'a/b', params: { x: 'q"uote\\' } });
  assert.deepEqual(parseMediaType('multipart/related; type="application/dicom+xml"; start="<a@b>"'),
    { type: 'multipart/related', params: { type: 'application/dicom+xml', start: '<a@b>' } });
  assert.equal(parseMediaType('not a media type'), undefined);
  assert.equal(parseMediaType('multipart/related; boundary="unterminated'), undefined);
  assert.throws(() => boundaryOf('multipart/related; type="application/dicom"'), (e: unknown) => e instanceof MultipartError && e.code === 'MISSING_BOUNDARY');
  assert.throws(() => boundaryOf('application/dicom'), (e: unknown) => e instanceof MultipartError && e.code === 'MISSING_BOUNDARY');
  assert.throws(() => boundaryOf(`multipart/related; boundary="${'x'.repeat(71)}"`), (e: unknown) => e instanceof MultipartError && e.code === 'INVALID_BOUNDARY');
  assert.throws(() => boundaryOf('multipart/related; boundary="ends with space "'), (e: unknown) => e instanceof MultipartError && e.code === 'INVALID_BOUNDARY');
});

async function rejectsWith(bytes: Buffer, code: string, sizes = [1, 3, bytes.length], maxHeaderBytes?: number) {
  for (const size of sizes) {
    await assert.rejects(collect(chunked(bytes, size), BOUNDARY, maxHeaderBytes), (e: unknown) => {
      assert.ok(e instanceof MultipartError, String(e));
      assert.equal(e.code, code, e.message);
      return true;
    });
  }
}

test('errors: truncated body, no delimiter, oversized headers, bad bytes after a delimiter, bad header line', async () => {
  const full = body();
  await rejectsWith(full.subarray(0, full.length - 4), 'TRUNCATED'); // inside the close delimiter: still in a body
  await rejectsWith(full.subarray(0, 200), 'TRUNCATED');
  await rejectsWith(Buffer.from(`--${BOUNDARY}\r\n`), 'TRUNCATED');
  await rejectsWith(Buffer.from(`--${BOUNDARY}`), 'TRUNCATED');
  await rejectsWith(Buffer.from('no delimiter at all'), 'NO_DELIMITER');
  await rejectsWith(Buffer.alloc(0), 'NO_DELIMITER', [1]);
  await rejectsWith(Buffer.from(`--${BOUNDARY}\r\nX: ${'a'.repeat(500)}\r\n\r\nbody\r\n--${BOUNDARY}--`), 'HEADERS_TOO_LARGE', [1, 7, 1000], 256);
  await rejectsWith(Buffer.from(`--${BOUNDARY}\r\nX: ${'a'.repeat(500)}`), 'HEADERS_TOO_LARGE', [1, 1000], 256);
  await rejectsWith(Buffer.from(`--${BOUNDARY}x\r\n\r\n\r\n--${BOUNDARY}--`), 'MALFORMED');
  await rejectsWith(Buffer.from(`--${BOUNDARY}-x`), 'MALFORMED');
  await rejectsWith(Buffer.from(`--${BOUNDARY}\n\n`), 'MALFORMED');
  await rejectsWith(Buffer.from(`--${BOUNDARY}\r\nno colon here\r\n\r\nx\r\n--${BOUNDARY}--`), 'MALFORMED');
});

test('the pure parser emits data as views of the input chunk when no delimiter straddles chunks', () => {
  const parser = new MultipartParser(BOUNDARY);
  parser.push(Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`));
  const chunk = Buffer.alloc(1 << 20, 7);
  const events = parser.push(chunk);
  assert.equal(events.length, 1);
  assert.ok(events[0].type === 'data');
  assert.equal(events[0].bytes.buffer, chunk.buffer, 'data is a view, not a copy');
  assert.equal(events[0].bytes.length, chunk.length);
  assert.deepEqual(parser.push(Buffer.from(`\r\n--${BOUNDARY}--`)).map((e) => e.type), ['partEnd', 'end']);
  assert.deepEqual(parser.end().map((e) => e.type), ['end']);
});

test('backpressure: the source is read only as fast as bodies are consumed; unread bodies are skipped', async () => {
  let pulled = 0;
  const chunkSize = 1024;
  const chunksPerPart = 50;
  async function* source(): AsyncGenerator<Uint8Array> {
    const parts = 3;
    for (let p = 0; p < parts; p++) {
      pulled++;
      yield Buffer.from(`${p === 0 ? '' : '\r\n'}--${BOUNDARY}\r\nContent-Location: ${p}\r\n\r\n`);
      for (let i = 0; i < chunksPerPart; i++) {
        pulled++;
        yield Buffer.alloc(chunkSize, p + 1);
      }
    }
    pulled++;
    yield Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  }
  const parts = readMultipart(source(), BOUNDARY);
  const first = await parts.next();
  assert.ok(!first.done);
  assert.equal(first.value.headers['content-location'], '0');
  assert.equal(pulled, 1, 'nothing of the body is read before it is asked for');
  const body = first.value.body[Symbol.asyncIterator]();
  const c1 = await body.next();
  assert.equal(c1.value!.length, chunkSize);
  assert.equal(pulled, 2);
  await body.next();
  assert.equal(pulled, 3);
  // Leave the rest of part 0 unread: asking for the next part reads it through first.
  const second = await parts.next();
  assert.ok(!second.done);
  assert.equal(second.value.headers['content-location'], '1');
  assert.equal(pulled, 1 + chunksPerPart + 1);
  let bytes = 0;
  for await (const c of second.value.body) {
    assert.ok(c.every((b) => b === 2));
    bytes += c.length;
  }
  assert.equal(bytes, chunkSize * chunksPerPart);
  const third = await parts.next();
  assert.ok(!third.done);
  assert.equal(third.value.headers['content-location'], '2');
  assert.ok((await parts.next()).done);
});

test('an error of the source surfaces from the body being read, and stopping early closes the source', async () => {
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield Buffer.from(`--${BOUNDARY}\r\n\r\nsome data`);
    throw new Error('connection reset');
  }
  await assert.rejects(collect(failing()), /connection reset/);

  let closed = false;
  async function* endless(): AsyncGenerator<Uint8Array> {
    try {
      yield Buffer.from(`--${BOUNDARY}\r\n\r\n`);
      for (;;) yield Buffer.alloc(100);
    } finally {
      closed = true;
    }
  }
  for await (const part of readMultipart(endless(), BOUNDARY)) {
    for await (const _ of part.body) break;
    break;
  }
  assert.ok(closed);
});
