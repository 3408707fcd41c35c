/**
 * What an operations console reads over HTTP (PostgreSQL+S3, so that the configuration holds real secrets):
 * the dashboard and its `days` parameter, the settings with every secret hidden, and /api/me's actions per role.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { createHttpServer } from '../server.ts';
import { ACTIONS } from '../../security/index.ts';
import { HIDDEN } from '../../config/redaction.ts';

let t: TestArchive;
let http: FastifyInstance;
let base: string;

before(async () => {
  t = await createTestArchive('postgres+s3');
  http = await createHttpServer(t.archive);
  base = await http.listen({ host: '127.0.0.1', port: 0 });
});
after(async () => {
  await http?.close();
  await t?.cleanup();
});

async function json(response: Response | Promise<Response>): Promise<any> {
  return await (await response).json();
}

test('GET /api/dashboard: 30 days by default, 1 to 366 when asked, a 400 problem otherwise', async () => {
  const d = await json(fetch(`${base}/api/dashboard`));
  assert.equal(d.days.length, 30);
  assert.deepEqual(Object.keys(d), ['generatedAt', 'days', 'modalities', 'storage', 'ingest', 'jobs', 'quarantine', 'events', 'health']);
  assert.deepEqual(d.health.map((h: { name: string }) => h.name), ['index', 'blobs', 'jobs', 'events']);
  assert.equal(d.storage.blobs, 's3');
  assert.equal((await json(fetch(`${base}/api/dashboard?days=366`))).days.length, 366);
  assert.equal((await json(fetch(`${base}/api/dashboard?days=1`))).storage.growth.length, 1);
  for (const days of ['abc', '0', '367', '-1', '2.5', '', '1e2']) {
    const r = await fetch(`${base}/api/dashboard?days=${days}`);
    assert.equal(r.status, 400, `days=${days}`);
    assert.match(r.headers.get('content-type')!, /application\/problem\+json/);
    assert.match((await json(r)).detail, /days must be a whole number from 1 to 366/);
  }
  const technologist = (await t.archive.security.createApiKey({ name: 'tech', roles: ['technologist'] })).key;
  assert.equal((await fetch(`${base}/api/dashboard`, { headers: { authorization: `Bearer ${technologist}` } })).status, 403);
});

test('GET /api/settings: the configuration in force and the modules, with no secret in it', async () => {
  const r = await fetch(`${base}/api/settings`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('cache-control'), 'no-store');
  const text = await r.text();
  const blobs = t.config.blobs;
  assert.ok(blobs.engine === 's3' && blobs.secretAccessKey && blobs.accessKeyId);
  assert.ok(!text.includes(blobs.secretAccessKey), 'the S3 secret is hidden');
  assert.ok(!text.includes(`"${blobs.accessKeyId}"`), 'the S3 access key id is hidden');
  const settings = JSON.parse(text);
  assert.equal(settings.config.blobs.secretAccessKey, HIDDEN);
  assert.equal(settings.config.blobs.bucket, blobs.bucket);
  assert.equal(settings.config.dicom.aeTitle, t.config.dicom.aeTitle);
  assert.equal(settings.config.index.engine, 'postgres');
  assert.deepEqual(settings.modules, t.archive.modules.map((m) => m.name));
  assert.ok(settings.modules.includes('archive') && settings.modules.includes('dimse'));
});

test('GET /api/me says which actions the caller\'s roles grant', async () => {
  assert.deepEqual((await json(fetch(`${base}/api/me`))).actions, [...ACTIONS]);
  const as = async (roles: Parameters<typeof t.archive.security.createApiKey>[0]['roles']) => {
    const key = (await t.archive.security.createApiKey({ name: roles.join('+'), roles })).key;
    return (await json(fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${key}` } }))).actions;
  };
  assert.deepEqual(await as(['technologist']), ['study:read', 'study:write', 'study:export', 'query', 'order:read', 'order:write', 'dose:read', 'integrity:read', 'integrity:write', 'prefetch:read']);
  assert.deepEqual(await as(['radiologist']), ['study:read', 'study:write', 'study:export', 'query', 'order:read', 'dose:read', 'integrity:read', 'reading:read', 'reading:claim', 'critical:ack', 'prefetch:read', 'ai:read', 'ai:review'],
    'radiologists see AI results and record their agreement; the AI registry is administrators\'');
  assert.deepEqual(await as(['referring-clinician']), ['study:read', 'query', 'critical:ack'], 'own-studies grants count');
  assert.deepEqual(await as(['researcher', 'integration']), ['study:read', 'study:read-deidentified', 'study:write', 'query', 'order:read', 'order:write']);
});
