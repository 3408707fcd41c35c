/**
 * WADO-RS over real HTTP: every image of the shared test data round-trips (instances byte-exact, frames equal
 * to the stored pixel data slices or fragments), the calls OHIF makes, dicomweb-client as a client, errors.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { dicomwebClient, get, parseMultipart, startDicomwebServer, type DicomwebServer } from '../../test/support/dicomweb.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { Part10Reader } from '../dicom/part10-reader.ts';
import type { DataElement, DataSet } from '../dicom/dataset.ts';
import { transferSyntaxInfo } from '../dicom/transfer-syntax.ts';

const TESTDATA = '/work/shared/testdata/dicom';
const ANY_OCTETS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const ANY_OCTETS_UNQUOTED = 'multipart/related; type=application/octet-stream; transfer-syntax=*';

let t: TestArchive;
let server: DicomwebServer;
interface Stored { name: string; bytes: Buffer; study: string; series: string; sop: string; ts: string; base?: string }
const stored: Stored[] = [];
const synthetic = { study: generateUid(), series: generateUid(), sop: generateUid(), rows: 16, columns: 12, frames: 5 };
let syntheticBytes: Buffer;

const v = (ds: any, tag: string) => ds[tag]?.Value?.[0];
const url = (s: { study: string; series: string; sop: string; base?: string }) => `${s.base ?? server.base}/studies/${s.study}/series/${s.series}/instances/${s.sop}`;

// Several files of the test data share a SOP Instance UID with different bytes (the same image in other
// transfer syntaxes): each goes to the first archive that does not hold that UID yet, so all are stored.
const extra: { t: TestArchive; server: DicomwebServer }[] = [];

before(async () => {
  t = await createTestArchive('sqlite+fs');
  server = await startDicomwebServer(t.archive);
  const archives = [{ t, server }];
  const uids: Set<string>[] = [new Set()];
  for (const name of (await readdir(TESTDATA)).filter((n) => n.endsWith('.dcm')).sort()) {
    const bytes = await readFile(path.join(TESTDATA, name));
    for (let i = 0; ; i++) {
      if (i === archives.length) {
        const more = await createTestArchive('sqlite+fs');
        const a = { t: more, server: await startDicomwebServer(more.archive) };
        archives.push(a);
        extra.push(a);
        uids.push(new Set());
      }
      const r = await archives[i].t.archive.ingest.ingest([bytes], { source: 'test', originalName: name });
      if (r.status === 'stored') {
        stored.push({ name, bytes, study: r.studyInstanceUid, series: r.seriesInstanceUid!, sop: r.sopInstanceUid, ts: r.transferSyntaxUid!, base: archives[i].server.base });
        break;
      }
      if (r.status !== 'quarantined' || r.reasonCode !== 'duplicate-conflict') break; // not storable at all
    }
  }
  syntheticBytes = Buffer.concat([...syntheticInstance({
    studyInstanceUid: synthetic.study, seriesInstanceUid: synthetic.series, sopInstanceUid: synthetic.sop,
    rows: synthetic.rows, columns: synthetic.columns, frames: synthetic.frames, patientName: 'OHIF^TEST',
  })]);
  assert.equal((await t.archive.ingest.ingest([syntheticBytes], { source: 'test' })).status, 'stored');
});

after(async () => {
  for (const a of extra) {
    await a.server.close();
    await a.t.cleanup();
  }
  await server?.close();
  await t?.cleanup();
});

/** The pixel data element of a file, parsed independently of the index. */
function pixelElement(bytes: Buffer): { el: DataElement | undefined; ds: DataSet } {
  const reader = new Part10Reader();
  reader.push(bytes);
  const header = reader.end();
  return { el: header.dataset.elements.find((e) => e.tag === 0x7fe00010), ds: header.dataset };
}

/** Expected bytes of frame n (1-based) of encapsulated pixel data (PS3.5 A.4). */
function expectedEncapsulated(bytes: Buffer, el: DataElement, frames: number, n: number): Buffer {
  const fragments = el.encapsulated!.fragments;
  const slice = (f: { offset: number; length: number }) => bytes.subarray(f.offset, f.offset + f.length);
  if (frames === 1) return Buffer.concat(fragments.map(slice));
  if (fragments.length === frames) return Buffer.from(slice(fragments[n - 1]));
  const table = el.encapsulated!.basicOffsetTable;
  const bot = Array.from({ length: table.length / 4 }, (_, i) => new DataView(table.buffer, table.byteOffset).getUint32(i * 4, true));
  const first = fragments[0].offset - 8;
  return Buffer.concat(fragments.filter((f) => f.offset - 8 - first >= bot[n - 1] && (n === frames || f.offset - 8 - first < bot[n])).map(slice));
}

test('the shared test data was ingested', (t) => {
  t.diagnostic(`${stored.length} files stored: ${stored.map((s) => s.name).join(' ')}`);
  assert.ok(stored.length >= 40, `only ${stored.length} files stored`);
});

test('every stored instance is retrieved byte-exact, multipart and single part', async () => {
  for (const s of stored) {
    const res = await get(url(s), { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' });
    assert.equal(res.status, 200, s.name);
    assert.match(res.headers.get('content-type')!, /^multipart\/related; type="application\/dicom"; boundary=/);
    const parts = parseMultipart(res.headers.get('content-type')!, res.body);
    assert.equal(parts.length, 1, s.name);
    assert.equal(parts[0].headers['content-type'], `application/dicom; transfer-syntax=${s.ts}`, s.name);
    assert.ok(parts[0].body.equals(s.bytes), `${s.name}: retrieved bytes differ from the stored file`);
    const single = await get(url(s), { accept: 'application/dicom; transfer-syntax=*' });
    assert.equal(single.status, 200, s.name);
    assert.ok(single.body.equals(s.bytes), s.name);
  }
});

test('every frame of every stored image equals its slice of the pixel data or its fragments', async (t) => {
  let checked = 0;
  for (const s of stored) {
    const { el } = pixelElement(s.bytes);
    if (!el) continue;
    const meta = (await get(`${url(s)}/metadata`)).json()[0];
    const frames = Math.max(1, Number(v(meta, '00280008') ?? 1));
    const list = Array.from({ length: frames }, (_, i) => i + 1).join(',');
    for (const accept of [ANY_OCTETS, ANY_OCTETS_UNQUOTED]) {
      const res = await get(`${url(s)}/frames/${list}`, { accept });
      if (transferSyntaxInfo(s.ts).deflated) {
        assert.equal(res.status, 406, s.name);
        assert.match(res.json().detail, /deflated/);
        continue;
      }
      assert.equal(res.status, 200, `${s.name}: ${res.body.toString().slice(0, 300)}`);
      const parts = parseMultipart(res.headers.get('content-type')!, res.body);
      assert.equal(parts.length, frames, s.name);
      for (let n = 1; n <= frames; n++) {
        const part = parts[n - 1];
        let expected: Buffer;
        if (el.encapsulated) {
          expected = expectedEncapsulated(s.bytes, el, frames, n);
          assert.equal(part.headers['content-type'], `application/octet-stream; transfer-syntax=${s.ts}`, s.name);
        } else {
          const bits = v(meta, '00280100');
          const samples = v(meta, '00280004') === 'YBR_FULL_422' ? 2 : v(meta, '00280002');
          const size = Math.ceil((v(meta, '00280010') * v(meta, '00280011') * samples * bits) / 8);
          expected = s.bytes.subarray(el.offset + (n - 1) * size, el.offset + n * size);
          const label = s.ts === '1.2.840.10008.1.2' ? '1.2.840.10008.1.2.1' : s.ts;
          assert.equal(part.headers['content-type'], `application/octet-stream; transfer-syntax=${label}`, s.name);
        }
        assert.equal(Number(part.headers['content-length']), expected.length, `${s.name} frame ${n}`);
        assert.ok(part.body.equals(expected), `${s.name} frame ${n}: bytes differ`);
        checked++;
      }
    }
  }
  t.diagnostic(`${checked} frames compared`);
  assert.ok(checked >= 80, `only ${checked} frames checked`);
});

test('OHIF: series list, series and study metadata with absolute BulkDataURIs, frames with both Accept forms', async () => {
  const series = (await get(`${server.base}/studies/${synthetic.study}/series`)).json();
  assert.equal(series.length, 1);
  const seriesMeta = await get(`${server.base}/studies/${synthetic.study}/series/${synthetic.series}/metadata`);
  assert.equal(seriesMeta.status, 200);
  assert.match(seriesMeta.headers.get('content-type')!, /^application\/dicom\+json/);
  const [ds] = seriesMeta.json();
  assert.equal(v(ds, '00080018'), synthetic.sop);
  assert.equal(v(ds, '00280008'), synthetic.frames);
  assert.equal(v(ds, '00280010'), synthetic.rows);
  assert.equal(v(ds, '00083002'), '1.2.840.10008.1.2.1', 'AvailableTransferSyntaxUID');
  assert.equal(ds['7FE00010'].BulkDataURI, `${url(synthetic)}/bulkdata/7FE00010`);
  const studyMeta = (await get(`${server.base}/studies/${synthetic.study}/metadata`)).json();
  assert.deepEqual(studyMeta, [ds]);

  const { el } = pixelElement(syntheticBytes);
  const frameSize = synthetic.rows * synthetic.columns * 2;
  const slice = (n: number) => syntheticBytes.subarray(el!.offset + (n - 1) * frameSize, el!.offset + n * frameSize);
  for (const accept of [ANY_OCTETS, ANY_OCTETS_UNQUOTED, 'multipart/related; type=\\"application/octet-stream\\"', 'multipart/related; type="application/octet-stream"']) {
    const res = await get(`${url(synthetic)}/frames/2,5`, { accept });
    assert.equal(res.status, 200, accept);
    const parts = parseMultipart(res.headers.get('content-type')!, res.body);
    assert.deepEqual(parts.map((p) => p.body.length), [frameSize, frameSize]);
    assert.ok(parts[0].body.equals(slice(2)) && parts[1].body.equals(slice(5)), accept);
  }
  // The pixel data as bulk data, single part and multipart.
  const bulk = await get(ds['7FE00010'].BulkDataURI, { accept: 'application/octet-stream' });
  assert.equal(bulk.status, 200);
  assert.ok(bulk.body.equals(syntheticBytes.subarray(el!.offset, el!.offset + el!.length)));
  const bulkMulti = await get(ds['7FE00010'].BulkDataURI);
  assert.ok(parseMultipart(bulkMulti.headers.get('content-type')!, bulkMulti.body)[0].body.equals(bulk.body));
});

test('metadata ETag: If-None-Match answers 304', async () => {
  const first = await get(`${server.base}/studies/${synthetic.study}/metadata`);
  const etag = first.headers.get('etag')!;
  assert.ok(etag);
  const again = await fetch(`${server.base}/studies/${synthetic.study}/metadata`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  const instance = await fetch(url(synthetic), { headers: { accept: 'application/dicom', 'if-none-match': (await get(url(synthetic), { accept: 'application/dicom' })).headers.get('etag')! } });
  assert.equal(instance.status, 304);
});

test('bulk data other than pixel data is read from the stored header', async () => {
  let checked = 0;
  for (const s of stored) {
    const meta = (await get(`${url(s)}/metadata`)).json()[0];
    for (const [tag, attr] of Object.entries(meta) as [string, any][]) {
      if (!attr.BulkDataURI || tag.startsWith('7FE0') || transferSyntaxInfo(s.ts).deflated) continue;
      assert.ok(attr.BulkDataURI.startsWith(`${url(s)}/bulkdata/`), attr.BulkDataURI);
      const res = await get(attr.BulkDataURI, { accept: 'application/octet-stream' });
      assert.equal(res.status, 200, `${s.name} ${tag}: ${res.body.toString().slice(0, 200)}`);
      const { ds } = pixelElement(s.bytes);
      const el = ds.elements.find((e) => e.tag === parseInt(tag, 16))!;
      const expected = el.value ? Buffer.from(el.value) : s.bytes.subarray(el.offset, el.offset + el.length);
      if (ds.littleEndian !== false) assert.ok(res.body.equals(expected), `${s.name} ${tag}`);
      else assert.equal(res.body.length, expected.length);
      checked++;
    }
  }
  assert.ok(checked > 0, 'no non-pixel bulk data in the test data');
});

test('big endian native pixel data: stored order with transfer-syntax=*, little endian by default', async () => {
  const s = stored.find((x) => x.ts === '1.2.840.10008.1.2.2' && pixelElement(x.bytes).el);
  if (!s) return;
  const { el } = pixelElement(s.bytes);
  const meta = (await get(`${url(s)}/metadata`)).json()[0];
  const size = v(meta, '00280010') * v(meta, '00280011') * v(meta, '00280002') * v(meta, '00280100') / 8;
  const raw = s.bytes.subarray(el!.offset, el!.offset + size);
  const asStored = await get(`${url(s)}/frames/1`, { accept: ANY_OCTETS });
  const part = parseMultipart(asStored.headers.get('content-type')!, asStored.body)[0];
  assert.equal(part.headers['content-type'], 'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.2');
  assert.ok(part.body.equals(raw));
  const little = await get(`${url(s)}/frames/1`, { accept: 'multipart/related; type="application/octet-stream"' });
  const lpart = parseMultipart(little.headers.get('content-type')!, little.body)[0];
  assert.equal(lpart.headers['content-type'], 'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1');
  if (v(meta, '00280100') === 16) assert.ok(lpart.body.equals(Buffer.from(raw).swap16()));
});

test('compressed frames in their own media type (image/jpeg, image/jls, image/jp2, image/dicom-rle)', async () => {
  const want: Record<string, string> = {
    '1.2.840.10008.1.2.4.50': 'image/jpeg', '1.2.840.10008.1.2.4.51': 'image/jpeg', '1.2.840.10008.1.2.4.70': 'image/jpeg', '1.2.840.10008.1.2.4.57': 'image/jpeg',
    '1.2.840.10008.1.2.4.80': 'image/jls', '1.2.840.10008.1.2.4.90': 'image/jp2', '1.2.840.10008.1.2.4.91': 'image/jp2', '1.2.840.10008.1.2.5': 'image/dicom-rle',
  };
  let checked = 0;
  for (const s of stored.filter((x) => want[x.ts])) {
    const type = want[s.ts];
    const res = await get(`${url(s)}/frames/1`, { accept: `multipart/related; type="${type}"` });
    assert.equal(res.status, 200, s.name);
    assert.match(res.headers.get('content-type')!, new RegExp(`^multipart/related; type="${type}"`));
    const part = parseMultipart(res.headers.get('content-type')!, res.body)[0];
    assert.equal(part.headers['content-type'], `${type}; transfer-syntax=${s.ts}`);
    const { el } = pixelElement(s.bytes);
    const frames = Math.max(1, Number(v((await get(`${url(s)}/metadata`)).json()[0], '00280008') ?? 1));
    assert.ok(part.body.equals(expectedEncapsulated(s.bytes, el!, frames, 1)), s.name);
    if (type === 'image/jpeg') assert.deepEqual([...part.body.subarray(0, 2)], [0xff, 0xd8]);
    // Asking for octet-stream without transfer-syntax=* means native pixels: decoded (wado-transcode.test.ts
    // checks the pixels), labelled Explicit VR Little Endian.
    const decoded = await get(`${url(s)}/frames/1`, { accept: 'multipart/related; type="application/octet-stream"' });
    if (s.name === 'JPEG2000-embedded-sequence-delimiter.dcm') {
      // Its codestream was deliberately broken (see the corpus README): a clear error, not pixels.
      assert.equal(decoded.status, 500, s.name);
      assert.match(decoded.json().detail, /could not be decoded/);
    } else {
      assert.equal(decoded.status, 200, s.name);
      assert.match(decoded.headers.get('content-type') ?? '', /multipart\/related/);
    }
    checked++;
  }
  assert.ok(checked >= 5, `only ${checked} compressed instances`);
});

test('dicomweb-client: retrieveStudyMetadata, retrieveSeriesMetadata, retrieveInstance, retrieveInstanceFrames, retrieveBulkData', async () => {
  const client = dicomwebClient(server.base);
  const studyMeta = await client.retrieveStudyMetadata({ studyInstanceUID: synthetic.study }) as any[];
  assert.equal(studyMeta.length, 1);
  const seriesMeta = await client.retrieveSeriesMetadata({ studyInstanceUID: synthetic.study, seriesInstanceUID: synthetic.series }) as any[];
  assert.equal(v(seriesMeta[0], '00080018'), synthetic.sop);
  const ids = { studyInstanceUID: synthetic.study, seriesInstanceUID: synthetic.series, sopInstanceUID: synthetic.sop };
  const instance = await client.retrieveInstance(ids) as ArrayBuffer;
  assert.ok(Buffer.from(instance).equals(syntheticBytes));
  const frames = await client.retrieveInstanceFrames({ ...ids, frameNumbers: [1, 3] }) as ArrayBuffer[];
  const { el } = pixelElement(syntheticBytes);
  const size = synthetic.rows * synthetic.columns * 2;
  assert.equal(frames.length, 2);
  assert.ok(Buffer.from(frames[1]).equals(syntheticBytes.subarray(el!.offset + 2 * size, el!.offset + 3 * size)));
  const bulk = await client.retrieveBulkData({ BulkDataURI: seriesMeta[0]['7FE00010'].BulkDataURI }) as ArrayBuffer[];
  assert.equal(Buffer.from(bulk[0]).length, el!.length);
  const series = await client.retrieveSeries({ studyInstanceUID: synthetic.study, seriesInstanceUID: synthetic.series }) as ArrayBuffer[];
  assert.equal(series.length, 1);
  assert.ok(Buffer.from(series[0]).equals(syntheticBytes));
});

test('study and series retrieve stream every instance', async () => {
  const s = stored[0];
  const res = await get(`${s.base}/studies/${s.study}`);
  assert.equal(res.status, 200);
  const parts = parseMultipart(res.headers.get('content-type')!, res.body);
  const mine = stored.filter((x) => x.study === s.study && x.base === s.base);
  assert.equal(parts.length, mine.length);
  for (const p of parts) assert.ok(mine.some((x) => x.bytes.equals(p.body)));
});

test('errors: unknown resources 404, bad frame numbers 400/404, unacceptable media types 406, all as problem+json', async () => {
  const problem = async (u: string, status: number, accept?: string, detail?: RegExp) => {
    const res = await get(u, accept ? { accept } : {});
    assert.equal(res.status, status, `${u}: ${res.body.toString()}`);
    assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    if (detail) assert.match(res.json().detail, detail);
  };
  await problem(`${server.base}/studies/1.2.3.4`, 404, undefined, /no study 1\.2\.3\.4/);
  await problem(`${server.base}/studies/1.2.3.4/metadata`, 404);
  await problem(`${server.base}/studies/${synthetic.study}/series/1.2.3/metadata`, 404, undefined, /no series/);
  await problem(`${server.base}/studies/${synthetic.study}/series/${synthetic.series}/instances/1.2.3`, 404, undefined, /no instance/);
  await problem(`${url(synthetic)}/frames/0`, 400, ANY_OCTETS, /frame numbers start at 1/);
  await problem(`${url(synthetic)}/frames/6`, 404, ANY_OCTETS, /frame 6 does not exist: the instance has 5 frames/);
  await problem(`${url(synthetic)}/frames/1,x`, 400, ANY_OCTETS, /not a frame number/);
  await problem(`${url(synthetic)}/frames/1`, 406, 'image/png', /uncompressed/);
  await problem(url(synthetic), 406, 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50', /1\.2\.840\.10008\.1\.2\.4\.50: no transcoding into it here \(available: 1\.2\.840\.10008\.1\.2\.1, /);
  await problem(url(synthetic), 406, 'text/html');
  await problem(`${url(synthetic)}/metadata`, 406, 'image/jpeg');
  await problem(`${url(synthetic)}/bulkdata/zz`, 400, undefined, /not a tag/);
  await problem(`${url(synthetic)}/bulkdata/00091010`, 404);
});
