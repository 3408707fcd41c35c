/**
 * STOW-RS in the metadata and bulk data form (type="application/dicom+json"): instances described by the
 * metadata another Atrium serves, with their bulk data fetched from it, are stored and retrieved with the
 * same elements and pixels; native and compressed (single and multi-frame) Pixel Data; absolute and
 * relative BulkDataURIs; missing bulk data, bad metadata and the XML form refused as PS3.18 says.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { parseMultipart, startDicomwebServer, type DicomwebServer } from '../../test/support/dicomweb.ts';
import { createHttpServer } from '../http/server.ts';
import { Part10Reader, type Part10Header } from '../dicom/part10-reader.ts';
import { toDicomJson, type DicomJsonDataSet } from '../dicom/dicom-json.ts';
import { FailureReason } from './stow.ts';

const CORPUS = '/work/shared/testdata/dicom';
const BOUNDARY = 'stow-json-boundary-51c2';
const JSON_TYPE = `multipart/related; type="application/dicom+json"; boundary=${BOUNDARY}`;

interface BodyPart { contentType: string; location?: string; body: Uint8Array | string }

function multipart(parts: BodyPart[]): Buffer {
  const pieces: Buffer[] = [];
  for (const p of parts) {
    pieces.push(Buffer.from(`--${BOUNDARY}\r\nContent-Type: ${p.contentType}\r\n${p.location ? `Content-Location: ${p.location}\r\n` : ''}\r\n`),
      Buffer.from(p.body), Buffer.from('\r\n'));
  }
  pieces.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(pieces);
}

/** Every element kept, to compare objects value by value. */
function parse(bytes: Buffer): Part10Header {
  const reader = new Part10Reader({ bulkThreshold: 1 << 30 });
  reader.push(bytes);
  return reader.end();
}

/** BulkDataURIs of a DICOM JSON data set, nested ones included. */
function bulkDataUris(ds: DicomJsonDataSet, out: string[] = []): string[] {
  for (const attr of Object.values(ds)) {
    if (attr.BulkDataURI) out.push(attr.BulkDataURI);
    if (attr.vr === 'SQ') for (const item of attr.Value ?? []) bulkDataUris(item as DicomJsonDataSet, out);
  }
  return out;
}

/** BulkDataURIs rewritten by `rename`, in place. */
function renameUris(ds: DicomJsonDataSet, rename: (uri: string) => string): void {
  for (const attr of Object.values(ds)) {
    if (attr.BulkDataURI) attr.BulkDataURI = rename(attr.BulkDataURI);
    if (attr.vr === 'SQ') for (const item of attr.Value ?? []) renameUris(item as DicomJsonDataSet, rename);
  }
}

describe('STOW-RS metadata and bulk data', () => {
  let source: TestArchive;
  let sourceServer: DicomwebServer;
  let target: TestArchive;
  let targetApp: FastifyInstance;
  let targetUrl: string;
  let targetServer: DicomwebServer;
  const files = new Map<string, { bytes: Buffer; url: string }>();

  before(async () => {
    source = await createTestArchive('sqlite+fs');
    sourceServer = await startDicomwebServer(source.archive);
    for (const name of ['CT_small.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'SC_rgb_rle_2frame.dcm', 'MR_small.dcm']) {
      const bytes = await readFile(path.join(CORPUS, name));
      if (name === 'MR_small.dcm') {
        files.set(name, { bytes, url: '' }); // the uncompressed twin of the JPEG-LS file: kept for its pixels
        continue;
      }
      const r = await source.archive.ingest.ingest([bytes], { source: 'test' });
      assert.equal(r.status, 'stored', name);
      if (r.status === 'stored') files.set(name, { bytes, url: `${sourceServer.base}/studies/${r.studyInstanceUid}/series/${r.seriesInstanceUid}/instances/${r.sopInstanceUid}` });
    }
    target = await createTestArchive('sqlite+fs');
    targetApp = await createHttpServer(target.archive);
    targetUrl = `${await targetApp.listen({ host: '127.0.0.1', port: 0 })}/dicom-web`;
    targetServer = { app: targetApp, origin: targetUrl.replace('/dicom-web', ''), base: targetUrl, close: async () => {} };
  });
  after(async () => {
    await targetApp?.close();
    await sourceServer?.close();
    await target?.cleanup();
    await source?.cleanup();
  });

  async function metadataOf(name: string): Promise<DicomJsonDataSet> {
    const res = await fetch(`${files.get(name)!.url}/metadata`, { headers: { accept: 'application/dicom+json' } });
    assert.equal(res.status, 200);
    return (await res.json() as DicomJsonDataSet[])[0];
  }

  async function fetchBytes(url: string, accept: string): Promise<Buffer> {
    const res = await fetch(url, { headers: { accept } });
    assert.equal(res.status, 200, `${url}: ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }

  async function stow(parts: BodyPart[], study?: string, contentType = JSON_TYPE) {
    const res = await fetch(`${targetUrl}/studies${study ? `/${study}` : ''}`, { method: 'POST', body: multipart(parts), headers: { 'content-type': contentType } });
    const text = await res.text();
    let json: any;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, contentType: res.headers.get('content-type'), warning: res.headers.get('warning'), json, text };
  }

  async function retrieved(name: string): Promise<Buffer> {
    const url = files.get(name)!.url.replace(sourceServer.base, targetUrl);
    const res = await fetch(url, { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    assert.equal(res.status, 200);
    return parseMultipart(res.headers.get('content-type')!, Buffer.from(await res.arrayBuffer()))[0].body;
  }

  const spoolEmpty = () => {
    const dir = path.join(target.config.dataDir, '.stow-spool');
    return !existsSync(dir) || readdirSync(dir).length === 0;
  };

  test('a CT as JSON metadata + octet-stream bulk data (absolute URIs) is stored with every element and pixel of the original', async () => {
    const metadata = await metadataOf('CT_small.dcm');
    const uris = bulkDataUris(metadata);
    assert.ok(uris.length > 1, 'the CT has bulk data besides its pixels');
    const parts: BodyPart[] = [{ contentType: 'application/dicom+json', body: JSON.stringify([metadata]) }];
    for (const uri of uris) parts.push({ contentType: 'application/octet-stream', location: uri, body: await fetchBytes(uri, 'application/octet-stream') });
    const r = await stow(parts);
    assert.equal(r.status, 200, r.text);
    const entry = r.json['00081199'].Value[0];
    assert.equal(entry['00081155'].Value[0], metadata['00080018'].Value![0]);
    assert.match(entry['00081190'].Value[0], /\/instances\//);

    const stored = parse(await retrieved('CT_small.dcm'));
    const original = parse(files.get('CT_small.dcm')!.bytes);
    assert.equal(stored.transferSyntaxUID, '1.2.840.10008.1.2.1');
    // Compared in the DICOM JSON model: DS and IS travel as JSON numbers, so "5.000000" comes back as "5".
    const model = (h: Part10Header) => toDicomJson({ elements: h.dataset.elements.filter((el) => (el.tag & 0xffff) !== 0) });
    assert.deepEqual(model(stored), model(original));
    const pixels = (h: Part10Header) => Buffer.from(h.dataset.elements.find((e) => e.tag === 0x7fe00010)!.value!);
    assert.ok(pixels(stored).equals(pixels(original)));
    // Sent again: an identical duplicate, a success.
    assert.equal((await stow(parts)).status, 200);
    assert.ok(spoolEmpty(), 'spooled bulk data is removed after the request');
  });

  test('compressed Pixel Data (image/jls, relative URIs) is stored encapsulated in its transfer syntax', async () => {
    const metadata = await metadataOf('MR_small_jpeg_ls_lossless.dcm');
    const sources = new Map<string, string>();
    let n = 0;
    renameUris(metadata, (uri) => {
      const relative = `bulk/${++n}`;
      sources.set(relative, uri);
      return relative;
    });
    const parts: BodyPart[] = [{ contentType: 'application/dicom+json', body: JSON.stringify([metadata]) }];
    for (const [relative, uri] of sources) {
      if (uri.endsWith('/7FE00010')) {
        const frameUrl = files.get('MR_small_jpeg_ls_lossless.dcm')!.url + '/frames/1';
        parts.push({ contentType: 'image/jls; transfer-syntax=1.2.840.10008.1.2.4.80', location: relative, body: await fetchBytes(frameUrl, 'image/jls') });
      } else {
        parts.push({ contentType: 'application/octet-stream', location: relative, body: await fetchBytes(uri, 'application/octet-stream') });
      }
    }
    const r = await stow(parts);
    assert.equal(r.status, 200, r.text);
    const sop = metadata['00080018'].Value![0] as string;
    assert.equal((await target.archive.index.findInstance(sop))!.transferSyntaxUid, '1.2.840.10008.1.2.4.80');
    // Decoded, its pixels are those of the uncompressed twin.
    const url = files.get('MR_small_jpeg_ls_lossless.dcm')!.url.replace(sourceServer.base, targetUrl);
    const decoded = await fetchBytes(`${url}/frames/1`, 'application/octet-stream');
    const twin = parse(files.get('MR_small.dcm')!.bytes);
    assert.ok(decoded.equals(Buffer.from(twin.dataset.elements.find((e) => e.tag === 0x7fe00010)!.value!)));
  });

  test('a multi-frame compressed object: one image/dicom-rle part per frame at {BulkDataURI}/frames/{n}', async () => {
    const name = 'SC_rgb_rle_2frame.dcm';
    const metadata = await metadataOf(name);
    const pixelUri = metadata['7FE00010'].BulkDataURI!;
    const parts: BodyPart[] = [{ contentType: 'application/dicom+json', body: JSON.stringify([metadata]) }];
    for (const uri of bulkDataUris(metadata).filter((u) => u !== pixelUri)) {
      parts.push({ contentType: 'application/octet-stream', location: uri, body: await fetchBytes(uri, 'application/octet-stream') });
    }
    for (const frame of [1, 2]) {
      parts.push({ contentType: 'image/dicom-rle', location: `${pixelUri}/frames/${frame}`, body: await fetchBytes(`${files.get(name)!.url}/frames/${frame}`, 'image/dicom-rle') });
    }
    const r = await stow(parts);
    assert.equal(r.status, 200, r.text);
    const url = files.get(name)!.url.replace(sourceServer.base, targetUrl);
    for (const frame of [1, 2]) {
      assert.ok((await fetchBytes(`${url}/frames/${frame}`, 'application/octet-stream')).equals(await fetchBytes(`${files.get(name)!.url}/frames/${frame}`, 'application/octet-stream')));
    }
    const stored = parse(await retrieved(name));
    assert.equal(stored.transferSyntaxUID, '1.2.840.10008.1.2.5');
    assert.equal(stored.dataset.elements.find((e) => e.tag === 0x7fe00010)!.encapsulated!.fragments.length, 2);
  });

  test('bulk data the request lacks fails that instance (A922), the others are stored (202)', async () => {
    const metadata = await metadataOf('CT_small.dcm');
    const missing = structuredClone(metadata);
    missing['00080018'] = { vr: 'UI', Value: ['1.2.826.0.1.3680043.8.498.777'] };
    for (const [key, attr] of Object.entries(missing)) if (attr.BulkDataURI) delete missing[key];
    missing['7FE00010'] = { vr: 'OW', BulkDataURI: 'http://elsewhere.example/nothing-here' };
    const inline = structuredClone(metadata);
    inline['00080018'] = { vr: 'UI', Value: ['1.2.826.0.1.3680043.8.498.778'] };
    // Pixel Data given inline (InlineBinary) needs no part at all.
    for (const [key, attr] of Object.entries(inline)) if (attr.BulkDataURI) delete inline[key];
    inline['7FE00010'] = { vr: 'OW', InlineBinary: Buffer.alloc(128 * 128 * 2, 7).toString('base64') };
    const parts: BodyPart[] = [{ contentType: 'application/dicom+json', body: JSON.stringify([missing, inline]) }];
    const before = (await target.archive.index.statistics()).instances;
    const r = await stow(parts);
    assert.equal(r.status, 202, r.text);
    const failed = r.json['00081198'].Value;
    assert.equal(failed.length, 1);
    assert.equal(failed[0]['00081197'].Value[0], FailureReason.MissingBulkData);
    assert.equal(failed[0]['00081155'].Value[0], '1.2.826.0.1.3680043.8.498.777');
    // The URI is text of the request: in the body, not in the header field.
    assert.match(r.warning ?? '', /data set 1 of the metadata.*missing bulk data: 1 BulkDataURI\(s\) name no part of the request/);
    assert.match(failed[0]['00091001'].Value[0], /no part has the Content-Location http:\/\/elsewhere\.example\/nothing-here/);
    assert.equal(r.json['00081199'].Value[0]['00081155'].Value[0], '1.2.826.0.1.3680043.8.498.778');
    assert.equal((await target.archive.index.statistics()).instances, before + 1);
    assert.equal((await target.archive.index.statistics()).quarantined, 0, 'nothing reached ingest for the failed one');
  });

  test('data sets that cannot be stored: no Image Pixel attributes (A900), unencodable values (C000), another study (C409)', async () => {
    const metadata = await metadataOf('CT_small.dcm');
    const withoutRows = structuredClone(metadata);
    for (const [key, attr] of Object.entries(withoutRows)) if (attr.BulkDataURI) delete withoutRows[key];
    withoutRows['7FE00010'] = { vr: 'OW', InlineBinary: 'AAAA' };
    delete withoutRows['00280010'];
    const badVr = { '00080018': { vr: 'UI', Value: ['1.2.3.4'] }, '00100010': { vr: 'xx', Value: ['A'] } };
    const r = await stow([{ contentType: 'application/dicom+json', body: JSON.stringify([withoutRows, badVr]) }]);
    assert.equal(r.status, 409, r.text);
    const [first, second] = r.json['00081198'].Value;
    assert.equal(first['00081197'].Value[0], FailureReason.DataSetDoesNotMatchSopClass);
    assert.equal(second['00081197'].Value[0], FailureReason.CannotUnderstand);
    assert.match(r.warning ?? '', /Pixel Data without Rows/);

    const other = await stow([{ contentType: 'application/dicom+json', body: JSON.stringify([withoutRows]) }], '1.2.826.0.1.3680043.8.498.1');
    assert.equal(other.status, 409);
    assert.equal(other.json['00081198'].Value[0]['00081197'].Value[0], FailureReason.StudyInstanceUidMismatch);
  });

  test('metadata that is not DICOM JSON is 400; XML metadata is 415 with what to send instead', async () => {
    for (const body of ['{not json', '"a string"', '[1, 2]', '[]']) {
      const r = await stow([{ contentType: 'application/dicom+json', body }]);
      assert.equal(r.status, 400, body);
      assert.match(r.contentType ?? '', /^application\/problem\+json/);
      assert.match(r.json.detail, /not valid JSON|not an array of DICOM JSON data sets/);
    }
    const noMetadata = await stow([{ contentType: 'application/octet-stream', location: 'bulk/1', body: 'abcd' }]);
    assert.equal(noMetadata.status, 400);
    assert.match(noMetadata.json.detail, /no application\/dicom\+json part/);
    const xml = await stow([{ contentType: 'application/dicom+xml', body: '<NativeDicomModel/>' }], undefined,
      `multipart/related; type="application/dicom+xml"; boundary=${BOUNDARY}`);
    assert.equal(xml.status, 415);
    assert.match(xml.json.detail, /send type="application\/dicom\+json"/);
    assert.ok(spoolEmpty());
  });

  test('the stored instances are served by WADO-RS of the target like any other', async () => {
    const res = await fetch(`${targetServer.base}/studies/${(await metadataOf('CT_small.dcm'))['0020000D'].Value![0]}/metadata`);
    assert.equal(res.status, 200);
    assert.ok((await res.json() as unknown[]).length >= 2);
  });
});
