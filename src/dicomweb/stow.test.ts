/**
 * STOW-RS over a real socket: the shared corpus in one request and one file per request, compared with what
 * the ingest pipeline itself says of each file; study UID mismatch; media types; malformed and aborted
 * uploads leaving nothing behind.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { authHeaders, createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { createHttpServer } from '../http/server.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import type { Archive } from '../app.ts';
import type { IngestResult } from '../archive/ingest.ts';
import { failureReasonOf, FailureReason } from './stow.ts';

const CORPUS = '/work/shared/testdata/dicom';
const BOUNDARY = 'stow-test-boundary-7d3f';
const CONTENT_TYPE = `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`;

function multipart(parts: Uint8Array[], boundary = BOUNDARY): Buffer {
  const pieces: Buffer[] = [];
  for (const p of parts) {
    pieces.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), Buffer.from(p), Buffer.from('\r\n'));
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(pieces);
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

interface Server {
  t: TestArchive;
  archive: Archive;
  app: FastifyInstance;
  url: string;
}

async function startServer(): Promise<Server> {
  const t = await createTestArchive('sqlite+fs');
  const app = await createHttpServer(t.archive); // STOW-RS is part of Atrium's HTTP server
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { t, archive: t.archive, app, url };
}

async function stopServer(s: Server | undefined): Promise<void> {
  await s?.app.close();
  await s?.t.cleanup();
}

async function post(url: string, body: Uint8Array, contentType = CONTENT_TYPE, accept?: string) {
  const response = await fetch(url, { method: 'POST', body, headers: { 'content-type': contentType, ...(accept ? { accept } : {}) } });
  const text = await response.text();
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', warning: response.headers.get('warning'), text, json: tryJson(text) };
}

function tryJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const value = (item: any, tag: string) => item?.[tag]?.Value?.[0];

async function corpusFiles(): Promise<{ name: string; bytes: Buffer }[]> {
  const names = (await readdir(CORPUS)).filter((n) => n.endsWith('.dcm')).sort();
  return await Promise.all(names.map(async (name) => ({ name, bytes: await readFile(path.join(CORPUS, name)) })));
}

async function instanceCount(archive: Archive): Promise<number> {
  return (await archive.index.statistics()).instances;
}

function incomingEmpty(s: Server): boolean {
  const dir = path.join(s.t.config.dataDir, 'blobs', '.incoming');
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

async function eventually(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`never happened: ${what}`);
}

describe('STOW-RS of the shared corpus', () => {
  let files: { name: string; bytes: Buffer }[];
  let reference: TestArchive;
  const expected = new Map<string, IngestResult>();
  before(async () => {
    files = await corpusFiles();
    assert.ok(files.length > 50);
    // What the ingest pipeline itself says of each file, in the same order: the oracle for STOW's answers.
    reference = await createTestArchive('sqlite+fs');
    for (const f of files) expected.set(f.name, await reference.archive.ingest.ingest([f.bytes], { source: 'test' }));
  });
  after(async () => await reference?.cleanup());

  async function checkOutcome(s: Server, name: string, bytes: Buffer, stored: any | undefined, failed: any | undefined) {
    const want = expected.get(name)!;
    if (want.status === 'stored' || want.status === 'duplicate') {
      assert.ok(stored, `${name} should be stored`);
      assert.equal(value(stored, '00081155'), want.sopInstanceUid, name);
      assert.equal(value(stored, '00081150'), want.sopClassUid, name);
      const { instance, bytes: stream } = await s.archive.retrieve.openInstance(want.sopInstanceUid);
      assert.match(value(stored, '00081190'), new RegExp(`/dicom-web/studies/${instance.studyInstanceUid}/series/${instance.seriesInstanceUid}/instances/${want.sopInstanceUid}$`));
      const kept = await readAll(stream);
      if (want.status === 'stored') assert.ok(kept.equals(bytes), `${name} not byte-exact`);
    } else {
      assert.ok(failed, `${name} should fail (${want.status})`);
      assert.equal(value(failed, '00081197'), want.status === 'quarantined' ? failureReasonOf(want.reasonCode) : FailureReason.CannotUnderstand, name);
      if (want.status === 'quarantined' && want.sopInstanceUid) assert.equal(value(failed, '00081155'), want.sopInstanceUid);
    }
  }

  test('all files in one request: an entry for each, stored ones byte-exact, 202 for the mix', async (t) => {
    const s = await startServer();
    try {
      const r = await post(`${s.url}/dicom-web/studies`, multipart(files.map((f) => f.bytes)));
      assert.equal(r.status, 202, r.text);
      assert.equal(r.contentType, 'application/dicom+json');
      const storedItems: any[] = r.json['00081199'].Value;
      const failedItems: any[] = r.json['00081198'].Value;
      const wantStored = [...expected.values()].filter((e) => e.status === 'stored' || e.status === 'duplicate').length;
      assert.equal(storedItems.length, wantStored);
      assert.equal(failedItems.length, files.length - wantStored);
      t.diagnostic(`${storedItems.length} stored, ${failedItems.length} failed`);
      assert.ok(failedItems.length > 0 && storedItems.length > 20);
      assert.ok(r.warning, 'the reasons of failures are in Warning header fields');
      assert.deepEqual(r.json['00081190'], { vr: 'UR' }, 'several studies: no single study Retrieve URL');
      // Entries are in request order: pair them with the files.
      let si = 0;
      let fi = 0;
      for (const f of files) {
        const want = expected.get(f.name)!;
        if (want.status === 'stored' || want.status === 'duplicate') await checkOutcome(s, f.name, f.bytes, storedItems[si++], undefined);
        else await checkOutcome(s, f.name, f.bytes, undefined, failedItems[fi++]);
      }
      assert.equal(await instanceCount(s.archive), (await reference.archive.index.statistics()).instances);
    } finally {
      await stopServer(s);
    }
  });

  test('one file per request: 200 when stored, 409 when not, with the right entry', async () => {
    const s = await startServer();
    try {
      for (const f of files) {
        const r = await post(`${s.url}/dicom-web/studies`, multipart([f.bytes]));
        const want = expected.get(f.name)!;
        const ok = want.status === 'stored' || want.status === 'duplicate';
        assert.equal(r.status, ok ? 200 : 409, `${f.name}: ${r.text}`);
        if (ok) {
          assert.equal(r.json['00081198'], undefined);
          assert.match(value(r.json, '00081190'), new RegExp(`/dicom-web/studies/${want.studyInstanceUid}$`));
          await checkOutcome(s, f.name, f.bytes, r.json['00081199'].Value[0], undefined);
        } else {
          assert.equal(r.json['00081199'], undefined);
          assert.match(r.warning ?? '', /^299 atrium "part 1/);
          await checkOutcome(s, f.name, f.bytes, undefined, r.json['00081198'].Value[0]);
        }
      }
      // Sending a stored file again is an identical duplicate: a success.
      const ct = files.find((f) => f.name === 'CT_small.dcm')!;
      assert.equal((await post(`${s.url}/dicom-web/studies`, multipart([ct.bytes]))).status, 200);
    } finally {
      await stopServer(s);
    }
  });
});

describe('STOW-RS requests', () => {
  let s: Server;
  let ct: Buffer;
  let mr: Buffer;
  before(async () => {
    s = await startServer();
    ct = await readFile(path.join(CORPUS, 'CT_small.dcm'));
    mr = await readFile(path.join(CORPUS, 'MR_small.dcm'));
  });
  after(async () => await stopServer(s));

  test('POST /studies/{S}: an instance of another study fails with C409 and is neither stored nor quarantined', async () => {
    const other = '1.2.826.0.1.3680043.8.498.1';
    const before = (await s.archive.index.statistics());
    const r = await post(`${s.url}/dicom-web/studies/${other}`, multipart([ct]));
    assert.equal(r.status, 409, r.text);
    const failed = r.json['00081198'].Value[0];
    assert.equal(value(failed, '00081197'), 0xc409);
    assert.equal(value(failed, '00081155'), '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322');
    assert.match(value(r.json, '00081190'), new RegExp(`/dicom-web/studies/${other}$`));
    assert.match(r.warning ?? '', /differs from/);
    const after = await s.archive.index.statistics();
    assert.equal(after.instances, before.instances);
    assert.equal(after.quarantined, before.quarantined);
    assert.ok(incomingEmpty(s));

    // The right study for one, the wrong one for the other: 202.
    const ctStudy = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
    const mixed = await post(`${s.url}/dicom-web/studies/${ctStudy}`, multipart([ct, mr]));
    assert.equal(mixed.status, 202, mixed.text);
    assert.equal(mixed.json['00081199'].Value.length, 1);
    assert.equal(value(mixed.json['00081198'].Value[0], '00081197'), FailureReason.StudyInstanceUidMismatch);
    assert.equal(await s.archive.index.findInstance(value(mixed.json['00081198'].Value[0], '00081155')), null);

    // UIDs breaking PS3.5 9.1 may be archived (ingest.invalidUidPolicy), so only what no UID can be is a 400.
    assert.equal((await post(`${s.url}/dicom-web/studies/not%20a%20uid`, multipart([ct]))).status, 400);
  });

  test('415 for other media types, including the metadata + bulk data form with XML metadata', async () => {
    for (const type of ['application/dicom', 'application/json', 'text/plain', 'image/jpeg',
      `multipart/related; type="image/jpeg"; boundary=${BOUNDARY}`, `multipart/related; type="application/dicom+xml"; boundary=${BOUNDARY}`]) {
      const body = type.startsWith('application/json') ? Buffer.from('{}') : multipart([ct]);
      const r = await post(`${s.url}/dicom-web/studies`, body, type);
      assert.equal(r.status, 415, `${type}: ${r.text}`);
      assert.match(r.contentType, /^application\/problem\+json/);
    }
    const none = await fetch(`${s.url}/dicom-web/studies`, { method: 'POST', body: multipart([ct]) }); // fetch sets no type for a Buffer
    assert.equal(none.status, 415);
    // The JSON metadata form is taken (stow-bulkdata.test.ts); Part-10 parts in it are not metadata: 400.
    const json = await post(`${s.url}/dicom-web/studies`, multipart([ct]), `multipart/related; type="application/dicom+json"; boundary=${BOUNDARY}`);
    assert.equal(json.status, 400, json.text);
    assert.match(json.json.detail, /no application\/dicom\+json part/);
  });

  test('400 for a missing boundary, a body without delimiter, an empty multipart', async () => {
    assert.equal((await post(`${s.url}/dicom-web/studies`, multipart([ct]), 'multipart/related; type="application/dicom"')).status, 400);
    assert.equal((await post(`${s.url}/dicom-web/studies`, Buffer.from('no parts'), CONTENT_TYPE)).status, 400);
    assert.equal((await post(`${s.url}/dicom-web/studies`, Buffer.from(`--${BOUNDARY}--\r\n`), CONTENT_TYPE)).status, 400);
  });

  test('a truncated multipart body: 400 and nothing half-stored', async () => {
    const before = await s.archive.index.statistics();
    const series = syntheticInstance({ rows: 64, columns: 64 });
    const fresh = Buffer.concat([...series]);
    const whole = multipart([fresh]);
    // Cut inside the object, and after the object but before the close delimiter.
    for (const cut of [whole.length - 2000, whole.length - `--${BOUNDARY}--\r\n`.length - 2]) {
      const r = await post(`${s.url}/dicom-web/studies`, whole.subarray(0, cut));
      assert.equal(r.status, 400, r.text);
      assert.match(r.contentType, /^application\/problem\+json/);
      assert.match(r.json.detail, /closing boundary/);
    }
    const after = await s.archive.index.statistics();
    assert.equal(after.instances, before.instances);
    assert.equal(after.quarantined, before.quarantined);
    assert.ok(incomingEmpty(s));
  });

  test('application/dicom+xml response when asked', async () => {
    const r = await post(`${s.url}/dicom-web/studies`, multipart([ct]), CONTENT_TYPE, 'application/dicom+xml');
    assert.equal(r.status, 200);
    assert.equal(r.contentType, 'application/dicom+xml');
    assert.match(r.text, /<NativeDicomModel xmlns="http:\/\/dicom.nema.org\/PS3.19\/models\/NativeDICOM">/);
    assert.match(r.text, /<DicomAttribute tag="00081199" vr="SQ" keyword="ReferencedSOPSequence"><Item number="1">/);
    assert.match(r.text, /<Value number="1">1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322<\/Value>/);
    assert.equal((await post(`${s.url}/dicom-web/studies`, multipart([ct]), CONTENT_TYPE, 'image/png')).status, 406);
  });

  test('parts streamed in small pieces are stored byte-exact', async () => {
    const bytes = Buffer.concat([...syntheticInstance({ rows: 128, columns: 128, frames: 3 })]);
    const body = multipart([bytes]);
    const response = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(`${s.url}/dicom-web/studies`, { method: 'POST', headers: authHeaders({ 'content-type': CONTENT_TYPE }) }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      (async () => {
        for (let i = 0; i < body.length; i += 997) {
          if (!req.write(body.subarray(i, i + 997))) await new Promise((r) => req.once('drain', r));
        }
        req.end();
      })();
    });
    assert.equal(response.status, 200, response.text);
    const uid = value(JSON.parse(response.text)['00081199'].Value[0], '00081155');
    assert.ok((await readAll((await s.archive.retrieve.openInstance(uid)).bytes)).equals(bytes));
  });

  test('a client aborting mid-upload: nothing stored, no temp file left', async () => {
    const before = await s.archive.index.statistics();
    const sopInstanceUid = generateUid();
    const req = http.request(`${s.url}/dicom-web/studies`, { method: 'POST', headers: authHeaders({ 'content-type': CONTENT_TYPE }) });
    req.on('error', () => {});
    req.write(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`);
    let sent = 0;
    for (const chunk of syntheticInstance({ frames: 64, sopInstanceUid })) {
      if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      sent += chunk.length;
      if (sent > 8 * 1024 * 1024) break;
    }
    // Wait until the server has started writing the object, then cut the connection.
    await eventually(() => !incomingEmpty(s), 'the upload reached the blob store');
    req.destroy();
    await eventually(() => incomingEmpty(s), 'the temporary blob was removed');
    const after = await s.archive.index.statistics();
    assert.equal(after.instances, before.instances);
    assert.equal(after.quarantined, before.quarantined);
    assert.equal(await s.archive.index.findInstance(sopInstanceUid), null);
    // The server still answers.
    assert.equal((await post(`${s.url}/dicom-web/studies`, multipart([ct]))).status, 200);
  });
});

/**
 * Just enough of XMLHttpRequest, over fetch, for dicomweb-client in Node (tests only): the library takes the
 * instance to use in its request options, so no global is installed.
 */
class FetchXhr {
  readyState = 0;
  status = 0;
  responseType = '';
  response: unknown = null;
  onreadystatechange: (() => void) | null = null;
  onloadstart: (() => void) | null = null;
  onloadend: (() => void) | null = null;
  #method = 'GET';
  #url = '';
  #headers: Record<string, string> = {};
  #responseHeaders = new Headers();

  open(method: string, url: string): void {
    this.#method = method;
    this.#url = url;
    this.readyState = 1;
  }

  setRequestHeader(name: string, value: string): void {
    this.#headers[name] = value;
  }

  getResponseHeader(name: string): string | null {
    return this.#responseHeaders.get(name);
  }

  getAllResponseHeaders(): string {
    return [...this.#responseHeaders].map(([k, v]) => `${k}: ${v}\r\n`).join('');
  }

  send(data?: ArrayBuffer | Uint8Array): void {
    this.onloadstart?.();
    void (async () => {
      const response = await fetch(this.#url, { method: this.#method, headers: this.#headers, body: data ? new Uint8Array(data as ArrayBuffer) : undefined });
      this.status = response.status;
      this.#responseHeaders = response.headers;
      const bytes = await response.arrayBuffer();
      const text = new TextDecoder().decode(bytes);
      this.response = this.responseType === 'arraybuffer' ? bytes : this.responseType === 'json' ? JSON.parse(text) : text;
      this.readyState = 4;
      this.onreadystatechange?.();
      this.onloadend?.();
    })();
  }
}

test('interoperates with dicomweb-client storeInstances', async () => {
  const { api } = await import('dicomweb-client');
  const s = await startServer();
  try {
    const client = new api.DICOMwebClient({ url: `${s.url}/dicom-web` } as ConstructorParameters<typeof api.DICOMwebClient>[0]);
    const ct = await readFile(path.join(CORPUS, 'CT_small.dcm'));
    const mr = await readFile(path.join(CORPUS, 'MR_small.dcm'));
    const datasets = [ct, mr].map((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const answer = await client.storeInstances({ datasets, request: { instance: new FetchXhr() as never } });
    const json = JSON.parse(answer as string);
    assert.equal(json['00081199'].Value.length, 2);
    for (const [i, bytes] of [ct, mr].entries()) {
      const uid = value(json['00081199'].Value[i], '00081155');
      assert.ok((await readAll((await s.archive.retrieve.openInstance(uid)).bytes)).equals(bytes));
    }
    // With the study in the URL, an instance of another study is refused: 409, which the client rejects.
    await assert.rejects(client.storeInstances({ datasets: datasets.slice(1), studyInstanceUID: '1.2.3.4',
      request: { instance: new FetchXhr() as never } }), (e: any) => e.status === 409);
  } finally {
    await stopServer(s);
  }
});
