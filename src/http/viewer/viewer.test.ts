/** The OHIF viewer served by Atrium: its build, its configuration pointing at Atrium, its client-side routes. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { createHttpServer } from '../server.ts';
import { VIEWER_DIR } from './routes.ts';

let t: TestArchive;
let http: FastifyInstance;
let base: string;

before(async () => {
  assert.ok(existsSync(join(VIEWER_DIR, 'index.html')), 'the OHIF build is missing: npm install runs scripts/install-viewer.ts');
  t = await createTestArchive('sqlite+fs');
  http = await createHttpServer(t.archive);
  base = await http.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await http?.close();
  await t?.cleanup();
});

test('the viewer is served at / with its assets, and index.html for its own routes', async () => {
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /<title>OHIF Viewer<\/title>/);
  const bundle = /src="(\/app\.bundle\.[0-9a-f]+\.js)"/.exec(html)?.[1];
  assert.ok(bundle);
  const js = await fetch(`${base}${bundle}`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type') ?? '', /javascript/);
  const route = await fetch(`${base}/viewer?StudyInstanceUIDs=1.2.3`);
  assert.match(await route.text(), /<title>OHIF Viewer<\/title>/);
  const wasm = await fetch(`${base}/${(await import('node:fs')).readdirSync(VIEWER_DIR).find((f) => f.endsWith('.wasm'))}`);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
});

test('its configuration points at this server\'s DICOMweb', async () => {
  const config = await (await fetch(`${base}/app-config.js`)).text();
  assert.match(config, /qidoRoot: window\.location\.origin \+ '\/dicom-web'/);
  assert.match(config, /defaultDataSourceName: 'atrium'/);
});

test('paths outside the viewer are not swallowed by it', async () => {
  assert.equal((await fetch(`${base}/api/nothing`)).status, 404);
  assert.equal((await fetch(`${base}/../../etc/passwd`)).status !== 500, true);
  assert.match(await (await fetch(`${base}/admin`)).text(), /<title>Atrium<\/title>/);
});
