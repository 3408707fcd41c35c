/**
 * WADO-RS transcoding: compressed frames asked for as native pixels are decoded (lossless codecs give exactly
 * the pixels of the uncompressed twin in the corpus), and whole instances asked for in another transfer syntax
 * are re-encoded: compressed to native, native to native, native to a lossless compressed syntax and back,
 * multi-frame objects frame by frame; what cannot be produced is 406.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { startDicomwebServer, parseMultipart, type DicomwebServer } from '../../test/support/dicomweb.ts';
import { Part10Reader, type Part10Header } from '../dicom/part10-reader.ts';
import type { DataElement } from '../dicom/dataset.ts';
import { stringValue } from '../dicom/dataset.ts';
import { generateUid } from '../dicom/uid.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { imagingPool } from '../imaging/index.ts';

const TESTDATA = new URL('../../../shared/testdata/dicom/', import.meta.url);
// One image (MR_small) in several syntaxes; each lossless one must decode to the uncompressed pixels.
const TWINS = ['MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm'];
const EXPLICIT = '1.2.840.10008.1.2.1';
const IMPLICIT = '1.2.840.10008.1.2';
const RLE = '1.2.840.10008.1.2.5';
const JPEG_LS = '1.2.840.10008.1.2.4.80';
const dicomAccept = (ts?: string) => `multipart/related; type="application/dicom"${ts ? `; transfer-syntax=${ts}` : ''}`;

const archives: TestArchive[] = [];
let native: Buffer;

before(async () => {
  const mr = await readFile(new URL('MR_small.dcm', TESTDATA));
  const reader = new Part10Reader();
  reader.push(mr);
  const pixels = reader.end().dataset.elements.find((e) => e.tag === 0x7fe00010)!;
  native = mr.subarray(pixels.offset, pixels.offset + pixels.length);
});

after(async () => {
  for (const a of archives) await a.cleanup();
});

/** Every element kept (no bulk threshold), for comparing objects value by value. */
function parse(bytes: Buffer): Part10Header {
  const reader = new Part10Reader({ bulkThreshold: 1 << 30 });
  reader.push(bytes);
  return reader.end();
}

/** Elements as comparable text: tag, value bytes (little endian) and items, VR left out (implicit VR has none). */
function elementsOf(elements: DataElement[], littleEndian = true): string[] {
  return elements.map((el) => {
    const tag = el.tag.toString(16).padStart(8, '0');
    if (el.items) return `${tag} [${el.items.map((item) => elementsOf(item.elements, item.littleEndian ?? littleEndian).join(' ')).join(' | ')}]`;
    let value = Buffer.from(el.value ?? []);
    if (!littleEndian && ['US', 'SS', 'OW', 'UL', 'SL', 'FL', 'FD', 'OF', 'AT'].includes(el.vr)) {
      const unit = el.vr === 'FD' ? 8 : ['UL', 'SL', 'FL', 'OF'].includes(el.vr) ? 4 : 2;
      value = Buffer.from(value);
      for (let i = 0; i + unit <= value.length; i += unit) value.subarray(i, i + unit).reverse();
    }
    return `${tag}=${value.toString('hex')}`;
  });
}

async function fetchMultipart(url: string, accept: string) {
  const res = await fetch(url, { headers: { accept } });
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) return { status: res.status, contentType: res.headers.get('content-type'), body, parts: [] };
  return { status: res.status, contentType: res.headers.get('content-type'), body, parts: parseMultipart(res.headers.get('content-type')!, body) };
}

for (const name of TWINS) {
  test(`${name}: frames asked for as native pixels are decoded to exactly the uncompressed ones`, async () => {
    // The twins share a SOP Instance UID, so each goes into an archive of its own.
    const t = await createTestArchive('sqlite+fs');
    archives.push(t);
    const result = await t.archive.ingest.ingest([await readFile(new URL(name, TESTDATA))], { source: 'test' });
    assert.ok(result.status === 'stored');
    const s = await startDicomwebServer(t.archive);
    try {
      const url = `${s.base}/studies/${result.studyInstanceUid}/series/${result.seriesInstanceUid}/instances/${result.sopInstanceUid}/frames/1`;
      const multi = await fetch(url, { headers: { accept: 'multipart/related; type="application/octet-stream"' } });
      assert.equal(multi.status, 200);
      const parts = parseMultipart(multi.headers.get('content-type')!, Buffer.from(await multi.arrayBuffer()));
      assert.equal(parts.length, 1);
      assert.match(parts[0].headers['content-type'], /transfer-syntax=1\.2\.840\.10008\.1\.2\.1/);
      assert.ok(parts[0].body.equals(native), 'decoded pixels differ from the uncompressed twin');
      const single = await fetch(url, { headers: { accept: 'application/octet-stream' } });
      assert.equal(single.status, 200);
      assert.ok(Buffer.from(await single.arrayBuffer()).equals(native));
      // transfer-syntax=* still gets the stored, compressed bytes.
      const asStored = await fetch(url, { headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
      const stored = parseMultipart(asStored.headers.get('content-type')!, Buffer.from(await asStored.arrayBuffer()));
      assert.ok(!stored[0].body.equals(native));
    } finally {
      await s.close();
    }
  });
}

describe('whole instances in another transfer syntax', () => {
  let t: TestArchive;
  let server: DicomwebServer;
  interface Stored { name: string; bytes: Buffer; url: string; ts: string; study: string; series: string }
  const stored = new Map<string, Stored>();
  const multiFrame = { study: generateUid(), series: generateUid(), sop: generateUid(), rows: 48, columns: 40, frames: 12 };
  let multiFrameBytes: Buffer;

  before(async () => {
    // The corpus' MR_small twins share a SOP Instance UID: the native one and two compressed files here.
    t = await createTestArchive('sqlite+fs');
    archives.push(t);
    server = await startDicomwebServer(t.archive);
    for (const name of ['MR_small_jpeg_ls_lossless.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'SC_rgb_rle_2frame.dcm', 'JPEG2000.dcm', 'JPEG-lossy.dcm', 'CT_small.dcm',
      'ExplVR_BigEnd.dcm', 'test-SR.dcm', 'image_dfl.dcm', 'SC_ybr_full_422_uncompressed.dcm']) {
      const bytes = await readFile(new URL(name, TESTDATA));
      const r = await t.archive.ingest.ingest([bytes], { source: 'test' });
      assert.equal(r.status, 'stored', name);
      if (r.status !== 'stored') continue;
      stored.set(name, {
        name, bytes, ts: r.transferSyntaxUid, study: r.studyInstanceUid, series: r.seriesInstanceUid,
        url: `${server.base}/studies/${r.studyInstanceUid}/series/${r.seriesInstanceUid}/instances/${r.sopInstanceUid}`,
      });
    }
    multiFrameBytes = Buffer.concat([...syntheticInstance({
      studyInstanceUid: multiFrame.study, seriesInstanceUid: multiFrame.series, sopInstanceUid: multiFrame.sop,
      rows: multiFrame.rows, columns: multiFrame.columns, frames: multiFrame.frames,
    })]);
    assert.equal((await t.archive.ingest.ingest([multiFrameBytes], { source: 'test' })).status, 'stored');
  });
  after(async () => await server?.close());

  /** All frames of an instance as native pixels, as /frames answers application/octet-stream. */
  async function framesAsOctets(url: string, count: number): Promise<Buffer> {
    const list = Array.from({ length: count }, (_, i) => i + 1).join(',');
    const res = await fetchMultipart(`${url}/frames/${list}`, 'multipart/related; type="application/octet-stream"');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.parts.length, count);
    return Buffer.concat(res.parts.map((p) => p.body));
  }

  for (const name of ['MR_small_jpeg_ls_lossless.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'SC_rgb_rle_2frame.dcm', 'JPEG2000.dcm']) {
    test(`${name} as Explicit VR Little Endian: parses, says so, and its pixel data is what /frames decodes`, async () => {
      const s = stored.get(name)!;
      const res = await fetchMultipart(s.url, dicomAccept(EXPLICIT));
      assert.equal(res.status, 200);
      assert.equal(res.parts.length, 1);
      assert.equal(res.parts[0].headers['content-type'], `application/dicom; transfer-syntax=${EXPLICIT}`);
      assert.equal(res.parts[0].headers['content-length'], undefined, 'the length of a transcoding is not known in advance');
      const header = parse(res.parts[0].body);
      assert.equal(header.transferSyntaxUID, EXPLICIT);
      const original = parse(s.bytes);
      const frames = Number(stringValue(original.dataset, 0x00280008) ?? 1);
      const pixel = header.dataset.elements.find((e) => e.tag === 0x7fe00010)!;
      assert.equal(pixel.encapsulated, undefined);
      const expected = await framesAsOctets(s.url, frames);
      assert.equal(pixel.length, expected.length + (expected.length % 2));
      assert.ok(Buffer.from(pixel.value!).subarray(0, expected.length).equals(expected), 'pixel data differs from the decoded frames');
      if (name.startsWith('MR_small')) assert.ok(Buffer.from(pixel.value!).equals(native), 'lossless: the pixels of the uncompressed twin');
      // Everything else is the original's, but for what describes the pixels' new encoding.
      const rewritten = new Set([0x00280004, 0x00280006, 0x7fe00010]);
      const keep = (els: DataElement[]) => els.filter((e) => !rewritten.has(e.tag) && (e.tag & 0xffff) !== 0);
      assert.deepEqual(elementsOf(keep(header.dataset.elements)), elementsOf(keep(original.dataset.elements), original.littleEndian));
      if (name === 'SC_rgb_jpeg_dcmtk.dcm') {
        // JPEG colour is decoded to RGB, interleaved: the attributes say so (PS3.3 C.7.6.3.1.2).
        assert.match(stringValue(original.dataset, 0x00280004) ?? '', /^YBR_FULL/);
        assert.equal(stringValue(header.dataset, 0x00280004), 'RGB');
        assert.equal(stringValue(header.dataset, 0x00280006), '0');
      }
      // The stored object is untouched, and transfer-syntax=* still gets it byte-exact.
      const asStored = await fetchMultipart(s.url, dicomAccept('*'));
      assert.ok(asStored.parts[0].body.equals(s.bytes));
    });
  }

  test('native objects in Implicit VR Little Endian keep every element (from big endian too, sequences, an SR)', async () => {
    for (const name of ['CT_small.dcm', 'ExplVR_BigEnd.dcm', 'test-SR.dcm']) {
      const s = stored.get(name)!;
      const original = parse(s.bytes);
      const res = await fetch(s.url, { headers: { accept: `application/dicom; transfer-syntax=${IMPLICIT}` } });
      assert.equal(res.status, 200, name);
      assert.equal(res.headers.get('content-type'), `application/dicom; transfer-syntax=${IMPLICIT}`);
      const implicit = Buffer.from(await res.arrayBuffer());
      const header = parse(implicit);
      assert.equal(header.transferSyntaxUID, IMPLICIT, name);
      assert.equal(header.explicitVR, false);
      // Group lengths are left out (retired, PS3.5 7.2); every other element has the same value.
      const noGroupLength = (els: DataElement[]) => els.filter((e) => (e.tag & 0xffff) !== 0);
      assert.deepEqual(elementsOf(noGroupLength(header.dataset.elements)), elementsOf(noGroupLength(original.dataset.elements), original.littleEndian), name);
      assert.equal(stringValue(header.fileMeta!, 0x00020003), stringValue(original.dataset, 0x00080018));
    }
  });

  test('a multi-frame object goes to RLE frame by frame (one fragment each) and back to the very same pixels', async () => {
    const url = `${server.base}/studies/${multiFrame.study}/series/${multiFrame.series}/instances/${multiFrame.sop}`;
    const pool = imagingPool();
    const before = pool.stats.completed;
    const res = await fetch(url, { headers: { accept: `application/dicom; transfer-syntax=${RLE}` } });
    assert.equal(res.status, 200);
    const rle = Buffer.from(await res.arrayBuffer());
    // One pool task per frame: frames are encoded one at a time, never the object at once.
    assert.equal(pool.stats.completed - before, multiFrame.frames);
    const header = parse(rle);
    assert.equal(header.transferSyntaxUID, RLE);
    const pixel = header.dataset.elements.find((e) => e.tag === 0x7fe00010)!;
    assert.equal(pixel.encapsulated?.fragments.length, multiFrame.frames);

    // Stored as such elsewhere, the RLE object is transcoded back to Explicit VR Little Endian.
    const other = await createTestArchive('sqlite+fs');
    archives.push(other);
    assert.equal((await other.archive.ingest.ingest([rle], { source: 'test' })).status, 'stored');
    const otherServer = await startDicomwebServer(other.archive);
    try {
      const back = await fetch(url.replace(server.base, otherServer.base), { headers: { accept: `application/dicom; transfer-syntax=${EXPLICIT}` } });
      assert.equal(back.status, 200);
      const restored = parse(Buffer.from(await back.arrayBuffer()));
      const original = parse(multiFrameBytes);
      const pixels = (h: Part10Header) => Buffer.from(h.dataset.elements.find((e) => e.tag === 0x7fe00010)!.value!);
      assert.equal(pixels(restored).length, multiFrame.rows * multiFrame.columns * 2 * multiFrame.frames);
      assert.ok(pixels(restored).equals(pixels(original)), 'the RLE round trip changed pixels');
    } finally {
      await otherServer.close();
    }
  });

  test('JPEG-LS lossless is produced, and decodes to the native pixels', async () => {
    const s = stored.get('CT_small.dcm')!;
    const res = await fetchMultipart(s.url, dicomAccept(JPEG_LS));
    assert.equal(res.status, 200);
    const header = parse(res.parts[0].body);
    assert.equal(header.transferSyntaxUID, JPEG_LS);
    const other = await createTestArchive('sqlite+fs');
    archives.push(other);
    const r = await other.archive.ingest.ingest([res.parts[0].body], { source: 'test' });
    assert.equal(r.status, 'stored');
    const otherServer = await startDicomwebServer(other.archive);
    try {
      const decoded = await framesAsOctets(s.url.replace(server.base, otherServer.base), 1);
      assert.ok(decoded.equals(await framesAsOctets(s.url, 1)));
    } finally {
      await otherServer.close();
    }
  });

  test('Accept with several transfer syntaxes: the stored one when acceptable, else the first that can be produced', async () => {
    const jls = stored.get('MR_small_jpeg_ls_lossless.dcm')!;
    // Preferred Explicit VR LE, JPEG-LS acceptable too: the stored JPEG-LS object is sent as it is.
    const both = await fetchMultipart(jls.url, `${dicomAccept(EXPLICIT)}, ${dicomAccept(JPEG_LS)}; q=0.5`);
    assert.equal(both.parts[0].headers['content-type'], `application/dicom; transfer-syntax=${JPEG_LS}`);
    assert.ok(both.parts[0].body.equals(jls.bytes));
    // JPEG baseline cannot be produced here, Explicit VR LE can.
    const fallback = await fetchMultipart(jls.url, `${dicomAccept('1.2.840.10008.1.2.4.50')}, ${dicomAccept(EXPLICIT)}; q=0.2`);
    assert.equal(fallback.parts[0].headers['content-type'], `application/dicom; transfer-syntax=${EXPLICIT}`);
    // No transfer-syntax parameter: Explicit VR LE (PS3.18 8.7.3), but a lossy object as it is stored.
    const byDefault = await fetchMultipart(jls.url, dicomAccept());
    assert.equal(byDefault.parts[0].headers['content-type'], `application/dicom; transfer-syntax=${EXPLICIT}`);
    const lossy = stored.get('JPEG-lossy.dcm')!;
    const lossyDefault = await fetchMultipart(lossy.url, dicomAccept());
    assert.equal(lossyDefault.parts[0].headers['content-type'], `application/dicom; transfer-syntax=${lossy.ts}`);
    assert.ok(lossyDefault.parts[0].body.equals(lossy.bytes));
  });

  test('a series of mixed syntaxes comes as one syntax; a deflated object is inflated', async () => {
    const twoFrame = stored.get('SC_rgb_rle_2frame.dcm')!;
    const series = await fetchMultipart(`${server.base}/studies/${twoFrame.study}/series/${twoFrame.series}`, dicomAccept(EXPLICIT));
    assert.equal(series.status, 200);
    for (const part of series.parts) {
      assert.equal(part.headers['content-type'], `application/dicom; transfer-syntax=${EXPLICIT}`);
      assert.equal(parse(part.body).transferSyntaxUID, EXPLICIT);
    }
    const deflated = stored.get('image_dfl.dcm')!;
    const inflated = await fetchMultipart(deflated.url, dicomAccept(EXPLICIT));
    assert.equal(inflated.status, 200);
    const header = parse(inflated.parts[0].body);
    assert.equal(header.transferSyntaxUID, EXPLICIT);
    const noGroupLength = (els: DataElement[]) => els.filter((e) => (e.tag & 0xffff) !== 0);
    assert.deepEqual(elementsOf(noGroupLength(header.dataset.elements)), elementsOf(noGroupLength(parse(deflated.bytes).dataset.elements)));
  });

  test('what cannot be produced is 406 problem+json that says why; WADO-URI transcodes with the same rules', async () => {
    const ct = stored.get('CT_small.dcm')!;
    const jpeg = await fetch(ct.url, { headers: { accept: dicomAccept('1.2.840.10008.1.2.4.50') } });
    assert.equal(jpeg.status, 406);
    assert.equal(jpeg.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    const refusal = await jpeg.json() as { title: string; detail: string };
    assert.equal(refusal.title, 'not-acceptable'); // one 406 code, whichever layer refused
    assert.match(refusal.detail, /no transcoding into it here/);
    // YBR_FULL_422 native pixels are not re-encoded; a deflated object only inflated.
    const ybr = await fetch(stored.get('SC_ybr_full_422_uncompressed.dcm')!.url, { headers: { accept: dicomAccept(RLE) } });
    assert.equal(ybr.status, 406);
    assert.match((await ybr.json() as { detail: string }).detail, /YBR_FULL_422 pixels are not re-encoded/);
    const deflatedRle = await fetch(stored.get('image_dfl.dcm')!.url, { headers: { accept: dicomAccept(RLE) } });
    assert.equal(deflatedRle.status, 406);
    assert.equal((await fetch(ct.url, { headers: { accept: dicomAccept('not-a-uid') } })).status, 406);

    const jls = stored.get('MR_small_jpeg_ls_lossless.dcm')!;
    const [, study, series, sop] = /studies\/([^/]+)\/series\/([^/]+)\/instances\/([^/]+)$/.exec(jls.url)!;
    const wado = (ts?: string) => `${server.base}/wado?${new URLSearchParams({
      requestType: 'WADO', studyUID: study, seriesUID: series, objectUID: sop, contentType: 'application/dicom', ...(ts ? { transferSyntax: ts } : {}),
    })}`;
    const explicit = await fetch(wado(EXPLICIT));
    assert.equal(explicit.status, 200);
    assert.equal(parse(Buffer.from(await explicit.arrayBuffer())).transferSyntaxUID, EXPLICIT);
    const asStored = await fetch(wado('*'));
    assert.ok(Buffer.from(await asStored.arrayBuffer()).equals(jls.bytes));
    const refused = await fetch(wado('1.2.840.10008.1.2.4.50'));
    assert.equal(refused.status, 406);
    assert.equal(refused.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  });
});
