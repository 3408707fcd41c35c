/**
 * A single 2 GiB multi-frame instance retrieved through WADO-RS (the instance as multipart/related, frames
 * from its end, and the instance transcoded to RLE frame by frame) with the server's peak RSS under 300 MB:
 * the bytes stream from the blob store, never held.
 * Memory is the kernel's high-water mark (VmHWM) of the server process. The server is `atrium serve` once it
 * registers the DICOMweb routes; until then the fixture test/support/dicomweb.ts serves the same archive.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openArchive, MODULES } from '../app.ts';
import { loadConfig } from '../config/config.ts';
import { authHeaders, createTestAdminKey } from '../../test/support/archive.ts';
import { PEAK_RSS_LIMIT, watchPeakRss, writeSyntheticFile } from '../../test/support/memory.ts';
import { pixelDataLength } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { configSectionsOf } from '../modules/module.ts';

const MAIN = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../../test/support/dicomweb.ts', import.meta.url));
const FRAMES = 4096; // 4096 x 512 x 512 x 2 bytes = 2 GiB of pixel data
const FRAME_BYTES = 512 * 512 * 2;

let dir: string;
let file: string;
let smallFile: string;
let sha256: string;
let size = 0;
const ids = { study: generateUid(), series: generateUid(), sop: generateUid() };
// The same frames, eight of them: transcoded first, so that the imaging threads exist before the big one.
const small = { study: ids.study, series: ids.series, sop: generateUid() };
// What transcoding the 2 GiB object may add once the imaging threads exist: their V8 heaps and WebAssembly
// memories grow to a plateau (about 100 MB per thread measured with RLE, whatever the object's size) before
// garbage collection catches up; holding the object would be 2 GiB.
const TRANSCODING_GROWTH_LIMIT = 256 * 1024 * 1024;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-wado-large-'));
  file = path.join(dir, 'large.dcm');
  ({ size, sha256 } = await writeSyntheticFile(file, { frames: FRAMES, studyInstanceUid: ids.study, seriesInstanceUid: ids.series, sopInstanceUid: ids.sop }));
  smallFile = path.join(dir, 'small.dcm');
  await writeSyntheticFile(smallFile, { frames: 8, studyInstanceUid: small.study, seriesInstanceUid: small.series, sopInstanceUid: small.sop });
  assert.ok(pixelDataLength({ frames: FRAMES }) >= 2 * 1024 ** 3);
});

after(async () => await rm(dir, { recursive: true, force: true }));

/** Reads a multipart/related body as it streams: hashes the first part's bytes, never holding the whole. */
async function streamFirstPart(body: ReadableStream<Uint8Array>, boundary: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let head = Buffer.alloc(0);
  let inBody = false;
  let bytes = 0;
  const tail = Buffer.from(`\r\n--${boundary}`);
  let pending = Buffer.alloc(0); // last bytes held back in case they start the closing delimiter
  for await (const chunk of body) {
    let c = Buffer.from(chunk);
    if (!inBody) {
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) continue;
      inBody = true;
      c = head.subarray(end + 4);
    }
    const joined = Buffer.concat([pending, c]);
    const keep = Math.min(joined.length, tail.length + 4);
    const ready = joined.subarray(0, joined.length - keep);
    hash.update(ready);
    bytes += ready.length;
    pending = Buffer.from(joined.subarray(joined.length - keep));
  }
  const end = pending.indexOf(tail);
  assert.ok(end >= 0, 'closing delimiter missing');
  hash.update(pending.subarray(0, end));
  bytes += end;
  return { bytes, sha256: hash.digest('hex') };
}

test('a 2 GiB instance is retrieved through WADO-RS with bounded server memory, byte-exact and transcoded', { timeout: 15 * 60_000 }, async (t) => {
  const dataDir = path.join(dir, 'data');
  const env = { ...process.env, ATRIUM_DATA: dataDir, ATRIUM_LOG_LEVEL: 'info', ATRIUM_HTTP_PORT: '0', ATRIUM_DICOM_PORT: '0' };
  const importer = spawn(process.execPath, [MAIN, 'import', '--json', '--no-progress', file, smallFile], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  importer.stdout!.on('data', (c) => (output += c));
  const [code] = await once(importer, 'exit');
  assert.equal(code, 0, output);
  assert.equal(JSON.parse(output).stored, 2);

  // The server authenticates: the test administrator's key goes into this data folder first.
  const keyed = await openArchive(loadConfig({ sections: configSectionsOf(MODULES),  env: { ATRIUM_DATA: dataDir, ATRIUM_LOG_LEVEL: 'silent' } }));
  await createTestAdminKey(keyed);
  await keyed.close();
  const server = spawn(process.execPath, [FIXTURE], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const peak = watchPeakRss(server);
  try {
    let origin = '';
    for await (const line of createInterface({ input: server.stdout! })) {
      const match = /DICOMweb is ready: (http:\/\/\S+)/.exec(line);
      if (match) { origin = match[1]; break; }
    }
    assert.ok(origin, 'server did not start');
    const instance = `${origin}/dicom-web/studies/${ids.study}/series/${ids.series}/instances/${ids.sop}`;

    const res = await fetch(instance, { headers: { ...authHeaders(), accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    assert.equal(res.status, 200);
    const boundary = /boundary=([^;]+)/.exec(res.headers.get('content-type')!)![1];
    const got = await streamFirstPart(res.body!, boundary);
    assert.equal(got.bytes, size);
    assert.equal(got.sha256, sha256);

    // The last frame, from 2 GiB into the object, by a ranged read.
    const frame = await fetch(`${instance}/frames/${FRAMES}`, { headers: { ...authHeaders(), accept: 'application/octet-stream; transfer-syntax=*' } });
    assert.equal(frame.status, 200);
    const bytes = Buffer.from(await frame.arrayBuffer());
    assert.equal(bytes.length, FRAME_BYTES);
    const expected = new Uint16Array(512 * 512);
    const base = ((FRAMES - 1) * 31) & 0xfff;
    for (let i = 0; i < expected.length; i++) expected[i] = (base + (i % 512) + ((i / 512) | 0)) & 0xfff;
    assert.ok(bytes.equals(Buffer.from(expected.buffer)), 'last frame differs from the synthetic pixels');

    t.diagnostic(`WADO-RS of ${(size / 2 ** 30).toFixed(2)} GiB: server peak RSS ${(peak() / 2 ** 20).toFixed(0)} MB`);
    assert.ok(peak() > 0 && peak() < PEAK_RSS_LIMIT, `server peak RSS ${(peak() / 2 ** 20).toFixed(0)} MB`);

    // Transcoded to RLE Lossless: every frame read, encoded in the imaging threads and sent, a few at a time.
    // The threads and their WebAssembly codecs cost the same for any object: they are started on a small one.
    const rleAccept = { ...authHeaders(), accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.5' };
    const warm = await fetch(instance.replace(ids.sop, small.sop), { headers: rleAccept });
    assert.equal(warm.status, 200);
    await warm.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 100)); // a few samples of VmHWM
    const warmPeak = peak();
    const rle = await fetch(instance, { headers: rleAccept });
    assert.equal(rle.status, 200);
    const rleBoundary = /boundary=([^;]+)/.exec(rle.headers.get('content-type')!)![1];
    const encoded = await streamFirstPart(rle.body!, rleBoundary);
    // The high byte of the 12-bit ramp compresses to almost nothing, the low byte not at all: about half.
    assert.ok(encoded.bytes > size / 4 && encoded.bytes < size * 0.6, `RLE object of ${encoded.bytes} bytes`);
    t.diagnostic(`RLE transcoding of ${(size / 2 ** 30).toFixed(2)} GiB: server peak RSS ${(warmPeak / 2 ** 20).toFixed(0)} MB with the imaging threads, then ${(peak() / 2 ** 20).toFixed(0)} MB`);
    assert.ok(peak() - warmPeak < TRANSCODING_GROWTH_LIMIT, `transcoding grew the server by ${((peak() - warmPeak) / 2 ** 20).toFixed(0)} MB`);
  } finally {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }
});
