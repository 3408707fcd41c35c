/** The audit REST routes over a real socket: search with filters and paging, streamed exports, errors, the preHandler hook. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { openDatabase } from '../../app.ts';
import type { Database } from '../../database/database.ts';
import { SqlAuditStore } from '../../adapters/index/sql-audit-store.ts';
import { AuditService } from '../../audit/audit-service.ts';
import { validateFhirAuditEvent } from '../../../test/support/fhir-audit-event.ts';
import { childrenNamed, parseXml } from '../../../test/support/xml.ts';
import { sendProblem } from '../problem.ts';
import { auditRoutes } from './audit-routes.ts';

let dir: string;
let database: Database;
let http: FastifyInstance;
let base: string;
const seen: string[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-audit-routes-'));
  database = await openDatabase({ engine: 'sqlite', path: path.join(dir, 'index.sqlite') });
  let t = Date.parse('2031-03-01T08:00:00.000Z');
  const audit = new AuditService({ store: new SqlAuditStore(database), sourceId: 'ATRIUM', clock: () => new Date(t += 60_000) });
  for (let i = 0; i < 12; i++) {
    await audit.record({
      principal: { kind: 'user', id: i % 3 === 0 ? 'bob' : 'alice' }, action: i % 4 === 0 ? 'query' : 'read', interface: i % 2 ? 'dicomweb' : 'ui',
      origin: { address: '10.0.0.1' }, studies: i % 4 === 0 ? [] : [{ studyInstanceUid: `1.2.3.${i % 2}`, patientId: `P${i % 2}` }],
      query: i % 4 === 0 ? `PatientName=DOE*&n=${i}` : null, outcome: i === 5 ? 'major-failure' : 'success',
    });
  }
  http = Fastify();
  http.setErrorHandler((error, request, reply) => sendProblem(error as Error, request, reply));
  await auditRoutes(http, { audit }, {
    preHandler: async (req, reply) => {
      seen.push(req.url);
      if (req.headers['x-role'] !== 'auditor') return reply.status(403).send({ title: 'forbidden' });
    },
  });
  base = await http.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await http?.close();
  await database?.close();
  await rm(dir, { recursive: true, force: true });
});

const auditor = { headers: { 'x-role': 'auditor' } };
async function json(url: string): Promise<any> {
  const response = await fetch(`${base}${url}`, auditor);
  assert.equal(response.status, 200, await response.clone().text());
  return await response.json();
}

test('GET /api/audit: filters and paging, newest first', async () => {
  const all = await json('/api/audit');
  assert.equal(all.total, 12);
  assert.equal(all.limit, 100);
  assert.equal(all.items[0].time, '2031-03-01T08:12:00.000Z');
  const page = await json('/api/audit?user=alice&limit=3&offset=2');
  assert.equal(page.total, 8);
  assert.deepEqual(page.items.map((r: any) => r.time.slice(14, 16)), ['09', '08', '06']);
  assert.equal((await json('/api/audit?patientId=P1&action=read')).total, 6);
  assert.equal((await json('/api/audit?studyInstanceUid=1.2.3.0&interface=ui')).total, 3);
  assert.equal((await json('/api/audit?outcome=major-failure')).items[0].time, '2031-03-01T08:06:00.000Z');
  assert.equal((await json('/api/audit?from=2031-03-01T08:03:00Z&to=2031-03-01T08:05:00Z')).total, 2);
});

test('bad filters are 400 problems', async () => {
  for (const query of ['action=peek', 'from=yesterday', 'limit=0', 'outcome=meh', 'interface=smtp']) {
    const response = await fetch(`${base}/api/audit?${query}`, auditor);
    assert.equal(response.status, 400, query);
    assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  }
  const badFormat = await fetch(`${base}/api/audit/export?format=csv`, auditor);
  assert.equal(badFormat.status, 400);
  assert.match(((await badFormat.json()) as any).detail, /format must be one of/);
});

test('GET /api/audit/export streams FHIR, ndjson and DICOM XML', async () => {
  const fhir = await fetch(`${base}/api/audit/export?format=fhir&user=bob`, auditor);
  assert.equal(fhir.headers.get('content-type'), 'application/fhir+json; charset=utf-8');
  assert.match(fhir.headers.get('content-disposition')!, /attachment; filename="audit.fhir.json"/);
  const bundle: any = await fhir.json();
  assert.equal(bundle.resourceType, 'Bundle');
  assert.equal(bundle.entry.length, 4);
  for (const e of bundle.entry) assert.deepEqual(validateFhirAuditEvent(e.resource), []);
  assert.deepEqual(bundle.entry.map((e: any) => e.resource.type.code), ['110112', '110103', '110103', '110103']);

  const ndjson = await fetch(`${base}/api/audit/export?format=ndjson&patientId=P0`, auditor);
  assert.equal(ndjson.headers.get('content-type'), 'application/x-ndjson; charset=utf-8');
  const lines = (await ndjson.text()).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((r) => r.time.slice(14, 16)), ['03', '07', '11']);

  const fhirNdjson = (await (await fetch(`${base}/api/audit/export?format=fhir-ndjson`, auditor)).text()).trim().split('\n');
  assert.equal(fhirNdjson.length, 12);

  const xml = await fetch(`${base}/api/audit/export?format=dicom-xml&action=query`, auditor);
  assert.equal(xml.headers.get('content-type'), 'application/xml; charset=utf-8');
  const root = parseXml(await xml.text());
  assert.equal(childrenNamed(root, 'AuditMessage').length, 3);
});

test('the preHandler guards every audit route', async () => {
  seen.length = 0;
  assert.equal((await fetch(`${base}/api/audit`)).status, 403);
  assert.equal((await fetch(`${base}/api/audit/export?format=fhir`)).status, 403);
  assert.deepEqual(seen, ['/api/audit', '/api/audit/export?format=fhir']);
});
