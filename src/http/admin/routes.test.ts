/** The admin REST API over a real HTTP socket: listing, download, upload, delete, quarantine, errors, metrics. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { createHttpServer } from '../server.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';
import { pino } from 'pino';
import { createServer, type AddressInfo } from 'node:net';
import { DicomClient } from '../../dimse/services/scu.ts';

const TESTDATA = new URL('../../../../shared/testdata/dicom/', import.meta.url);

let t: TestArchive;
let http: FastifyInstance;
let base: string;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  http = await createHttpServer(t.archive);
  base = await http.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await http?.close();
  await t?.cleanup();
});

/** Response bodies are whatever the server said: typed loosely on purpose, asserted field by field. */
async function json(response: Response | Promise<Response>): Promise<any> {
  return await (await response).json();
}

async function upload(bytes: Uint8Array, name?: string): Promise<Response> {
  return await fetch(`${base}/api/instances`, {
    method: 'POST', body: bytes, headers: { 'content-type': 'application/dicom', ...(name ? { 'x-file-name': name } : {}) },
  });
}

test('upload, list at every level, and download byte-exact', async () => {
  const ct = await readFile(new URL('CT_small.dcm', TESTDATA));
  const stored = await upload(ct);
  assert.equal(stored.status, 201);
  const result = await json(stored);
  assert.equal(result.status, 'stored');

  const again = await upload(ct);
  assert.equal(again.status, 200);
  assert.equal((await json(again)).status, 'duplicate');

  const studies = await json(fetch(`${base}/api/studies?patientName=compressed*`));
  assert.equal(studies.total, 1);
  assert.equal(studies.items[0].studyInstanceUid, result.studyInstanceUid);
  const series = await json(fetch(`${base}/api/studies/${result.studyInstanceUid}/series`));
  assert.equal(series.items[0].numberOfSeriesRelatedInstances, 1);
  const instances = await json(fetch(`${base}/api/series/${series.items[0].seriesInstanceUid}/instances`));
  assert.equal(instances.items[0].sopInstanceUid, result.sopInstanceUid);
  const patients = await json(fetch(`${base}/api/patients?patientId=1CT1`));
  assert.equal(patients.items[0].numberOfStudies, 1);

  const one = await json(fetch(`${base}/api/instances/${result.sopInstanceUid}`));
  assert.equal(one.metadata['00080060'].Value[0], 'CT');
  const file = await fetch(`${base}/api/instances/${result.sopInstanceUid}/file`);
  assert.equal(file.headers.get('content-type'), 'application/dicom');
  assert.equal(file.headers.get('etag'), `"${one.sha256}"`);
  assert.ok(Buffer.from(await file.arrayBuffer()).equals(ct));
});

test('malformed uploads are quarantined with the reason and listed', async () => {
  const broken = await readFile(new URL('rtplan_truncated.dcm', TESTDATA));
  const response = await upload(broken, 'rtplan_truncated.dcm');
  assert.equal(response.status, 422);
  const body = await json(response);
  assert.equal(body.reasonCode, 'truncated');
  const list = await json(fetch(`${base}/api/quarantine`));
  const entry = list.items.find((q: { id: number }) => q.id === body.quarantineId);
  assert.equal(entry.originalName, 'rtplan_truncated.dcm');
  assert.match(entry.reason, /IsocenterPosition/);
  const bytes = await fetch(`${base}/api/quarantine/${body.quarantineId}/file`);
  assert.ok(Buffer.from(await bytes.arrayBuffer()).equals(broken));

  const notDicom = await upload(new TextEncoder().encode('hello, this is not DICOM'));
  assert.equal(notDicom.status, 422);
  assert.equal((await json(notDicom)).reasonCode, 'not-dicom');
});

test('delete a study removes it and its files', async () => {
  const studyInstanceUid = generateUid();
  const bytes = Buffer.concat([...syntheticInstance({ rows: 8, columns: 8, studyInstanceUid })]);
  const { sopInstanceUid } = await json(upload(bytes));
  const deleted = await fetch(`${base}/api/studies/${studyInstanceUid}`, { method: 'DELETE' });
  assert.equal(deleted.status, 200);
  assert.deepEqual(await json(deleted), { deletedObjects: 1 });
  assert.equal((await fetch(`${base}/api/studies/${studyInstanceUid}`)).status, 404);
  assert.equal((await fetch(`${base}/api/instances/${sopInstanceUid}/file`)).status, 404);
  assert.equal((await fetch(`${base}/api/studies/${studyInstanceUid}`, { method: 'DELETE' })).status, 404);
});

test('errors are problem+json with a clear detail', async () => {
  const missing = await fetch(`${base}/api/studies/1.2.3.4`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  const problem = await json(missing);
  assert.equal(problem.status, 404);
  assert.match(problem.detail, /1\.2\.3\.4/);

  const badPage = await fetch(`${base}/api/studies?limit=100000`);
  assert.equal(badPage.status, 400);
  assert.match((await json(badPage)).detail, /limit/);

  const noRoute = await fetch(`${base}/api/nothing`);
  assert.equal(noRoute.status, 404);
  assert.equal((await json(noRoute)).title, 'Not Found');
});

test('health, statistics, metrics and the UI page', async () => {
  assert.deepEqual(await json(fetch(`${base}/api/health`)), { status: 'ok', index: 'sqlite', blobs: 'fs' });
  assert.deepEqual(await json(fetch(`${base}/api/health/ready`, { headers: { 'x-atrium-test-anonymous': '1' } })), { status: 'ready', index: 'sqlite', blobs: 'fs' });
  const stats = await json(fetch(`${base}/api/statistics`));
  assert.ok(stats.instances >= 1 && stats.quarantined >= 1);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /atrium_ingest_total\{source="rest",outcome="stored"\} [1-9]/);
  assert.match(metrics, /atrium_ingest_total\{source="rest",outcome="duplicate"\} 1/);
  assert.match(metrics, /atrium_ingest_total\{source="rest",outcome="quarantined"\} 2/);
  assert.match(metrics, /atrium_outbox_pending_events \d+/);
  const page = await fetch(`${base}/admin`);
  assert.equal(page.headers.get('x-frame-options'), 'SAMEORIGIN');
  assert.equal(page.headers.get('referrer-policy'), 'same-origin');
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<title>Atrium<\/title>/);
  assert.equal((await fetch(`${base}/ui/console.js`)).status, 200);
});

test('DICOM peers: create, read, replace, delete; invalid ones refused', async () => {
  const put = (ae: string, body: unknown) => fetch(`${base}/api/dicom/peers/${ae}`, { method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const created = await put('WORKSTATION1', { host: '127.0.0.1', port: 11113, operations: ['echo', 'find', 'move'] });
  assert.equal(created.status, 200);
  assert.equal((await json(created)).source, 'api');
  assert.deepEqual((await json(fetch(`${base}/api/dicom/peers/WORKSTATION1`))).operations, ['echo', 'find', 'move']);
  assert.equal((await json(put('WORKSTATION1', { host: '127.0.0.1', port: 104, operations: ['echo'] }))).port, 104);
  const defaulted = await put('ORTHANC', { host: '127.0.0.1', port: 4242 });
  assert.equal(defaulted.status, 200, 'operations may be left out, as in dicom.peers');
  assert.deepEqual((await json(defaulted)).operations, ['echo', 'store', 'find', 'move', 'get', 'commit']);
  assert.equal((await fetch(`${base}/api/dicom/peers/ORTHANC`, { method: 'DELETE' })).status, 204);
  const bad = await put('WORKSTATION2', { host: '127.0.0.1', port: 70000, operations: ['fly'] });
  assert.equal(bad.status, 400);
  assert.match((await json(bad)).detail, /port|operations/);
  const tooLong = await put('A_TITLE_LONGER_THAN_16', { host: 'h', port: 104, operations: [] });
  assert.equal(tooLong.status, 400);
  // A send request names what the archive holds: objects built by Atrium (rejection notes) are not taken from it.
  const injected = await fetch(`${base}/api/dicom/peers/WORKSTATION1/send`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ studyInstanceUid: '1.2.3', objects: [{ sopClassUid: '1.2.840.10008.5.1.4.1.1.88.59', sopInstanceUid: '1.2.3.4', dataset: 'AAAA' }] }),
  });
  assert.equal(injected.status, 400);
  assert.match((await json(injected)).detail, /objects are not sent from a request/);
  assert.equal((await fetch(`${base}/api/dicom/peers/WORKSTATION1`, { method: 'DELETE' })).status, 204);
  assert.equal((await fetch(`${base}/api/dicom/peers/WORKSTATION1`)).status, 404);
  assert.equal((await json(fetch(`${base}/api/dicom`))).aeTitle, 'ATRIUM');
});

test('jobs are listed and can be cancelled', async () => {
  const job = await t.archive.jobs.enqueue('test-noop', { hello: 'world' });
  const list = await json(fetch(`${base}/api/jobs?state=queued`));
  assert.ok(list.items.some((j: { id: number }) => j.id === job.id));
  const cancelled = await json(fetch(`${base}/api/jobs/${job.id}/cancel`, { method: 'POST' }));
  assert.equal(cancelled.state, 'cancelled');
  assert.equal((await fetch(`${base}/api/jobs?state=sleeping`)).status, 400);
  assert.equal((await fetch(`${base}/api/jobs/999999`)).status, 404);
});

test('probes and scrapes stay out of the info log; other requests are logged', async () => {
  const lines: Array<{ msg?: string; req?: { url?: string }; level?: number }> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)); } });
  const logged = await createTestArchive('sqlite+fs', { log });
  const server = await createHttpServer(logged.archive);
  try {
    const at = await server.listen({ host: '127.0.0.1', port: 0 });
    for (const path of ['/api/health', '/api/health/ready', '/metrics', '/api/statistics']) {
      assert.equal((await fetch(`${at}${path}`, { headers: { 'x-atrium-test-anonymous': '1' } })).ok || path === '/api/statistics', true);
    }
    const urls = lines.filter((l) => l.msg === 'incoming request').map((l) => l.req?.url);
    assert.deepEqual(urls, ['/api/statistics']);
  } finally {
    await server.close();
    await logged.cleanup();
  }
});

test('a peer that does not answer: C-ECHO and C-FIND are a 503 saying why, not an opaque 500', async () => {
  const closed = await new Promise<number>((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => { const { port } = server.address() as AddressInfo; server.close(() => done(port)); });
  });
  // This file's server has no DICOM client: one that has, as `atrium serve` runs it.
  const withClient = await createHttpServer(t.archive, { client: new DicomClient(t.archive) });
  const base = await withClient.listen({ host: '127.0.0.1', port: 0 });
  const put = await fetch(`${base}/api/dicom/peers/CLOSED`, { method: 'PUT', body: JSON.stringify({ host: '127.0.0.1', port: closed }), headers: { 'content-type': 'application/json' } });
  assert.equal(put.status, 200);
  for (const [operation, path, body] of [['C-ECHO', 'echo', undefined], ['C-FIND', 'find', { level: 'STUDY', keys: { PatientID: 'X' } }]] as const) {
    const res = await fetch(`${base}/api/dicom/peers/CLOSED/${path}`, { method: 'POST', ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
    assert.equal(res.status, 503, path);
    assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.match((await json(res)).detail, new RegExp(`^${operation} to CLOSED failed: .*(ECONNREFUSED|refused)`, 'i'));
  }
  assert.equal((await fetch(`${base}/api/dicom/peers/CLOSED`, { method: 'DELETE' })).status, 204);
  await withClient.close();
});
