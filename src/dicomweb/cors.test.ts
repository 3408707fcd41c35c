/**
 * CORS on every DICOMweb route, with one list of origins: QIDO/WADO, the rendered and thumbnail resources and
 * STOW-RS answer preflights and carry Access-Control-Allow-Origin for an allowed origin, errors included, and
 * nothing for another origin.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { createHttpServer } from '../http/server.ts';
import { sendProblem } from '../http/problem.ts';
import { closeImagingPool } from '../imaging/index.ts';
import { dicomwebRoutes } from './routes.ts';
import type { DicomwebOptions } from './context.ts';
import { renderedRoutes } from './rendered.ts';
import { stowRoutes } from './stow.ts';

const CT = new URL('../../../shared/testdata/dicom/CT_small.dcm', import.meta.url);
const VIEWER = 'https://viewer.example';

let t: TestArchive;
let instancePath: string;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  const r = await t.archive.ingest.ingest([await readFile(CT)], { source: 'test' });
  assert.equal(r.status, 'stored');
  if (r.status === 'stored') instancePath = `/dicom-web/studies/${r.studyInstanceUid}/series/${r.seriesInstanceUid}/instances/${r.sopInstanceUid}`;
});
after(async () => {
  await closeImagingPool();
  await t?.cleanup();
});

const preflight = (origin: string, method = 'GET') => ({
  method: 'OPTIONS', headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization, content-type' },
});

describe('Atrium\'s HTTP server (any origin by default)', () => {
  let app: FastifyInstance;
  let base: string;
  before(async () => {
    app = await createHttpServer(t.archive);
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => await app?.close());

  test('rendered, thumbnail and STOW-RS: preflights answered, responses carry the CORS header fields', async () => {
    for (const path of [`${instancePath}/rendered`, `${instancePath}/thumbnail`, `${instancePath}/frames/1/rendered`]) {
      const pre = await fetch(`${base}${path}`, preflight(VIEWER));
      assert.equal(pre.status, 204, path);
      assert.equal(pre.headers.get('access-control-allow-origin'), '*');
      assert.match(pre.headers.get('access-control-allow-methods') ?? '', /GET/);
      assert.equal(pre.headers.get('access-control-allow-headers'), 'authorization, content-type');
      const get = await fetch(`${base}${path}`, { headers: { origin: VIEWER, accept: 'image/png' } });
      assert.equal(get.status, 200, path);
      assert.equal(get.headers.get('access-control-allow-origin'), '*');
      assert.match(get.headers.get('access-control-expose-headers') ?? '', /ETag/);
    }
    const stowPre = await fetch(`${base}/dicom-web/studies`, preflight(VIEWER, 'POST'));
    assert.equal(stowPre.status, 204);
    assert.equal(stowPre.headers.get('access-control-allow-origin'), '*');
    assert.match(stowPre.headers.get('access-control-allow-methods') ?? '', /POST/);
    const boundary = 'cors-boundary';
    const stow = await fetch(`${base}/dicom-web/studies`, {
      method: 'POST', headers: { origin: VIEWER, 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
      body: Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), await readFile(CT), Buffer.from(`\r\n--${boundary}--\r\n`)]),
    });
    assert.equal(stow.status, 200);
    assert.equal(stow.headers.get('access-control-allow-origin'), '*');
  });

  test('an answer of access control (401) carries them too, so that a viewer can read it', async () => {
    const res = await fetch(`${base}${instancePath}/rendered`, { headers: { origin: VIEWER, 'x-atrium-test-anonymous': '1' } });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
  });
});

describe('one list of allowed origins for every DICOMweb route', () => {
  let app: FastifyInstance;
  before(async () => {
    const options: DicomwebOptions = { corsOrigins: [VIEWER] };
    app = Fastify();
    app.setErrorHandler((error, request, reply) => sendProblem(error as Error, request, reply));
    await dicomwebRoutes(app, t.archive, options);
    await stowRoutes(app, t.archive, options);
    await renderedRoutes(app, t.archive, options);
    await app.ready();
  });
  after(async () => await app?.close());

  const paths = () => [`${instancePath}/rendered`, `${instancePath}/thumbnail`, '/dicom-web/studies', `${instancePath}/metadata`, '/dicom-web/wado?requestType=WADO'];

  test('the allowed origin gets itself back, with Vary: Origin', async () => {
    for (const url of paths()) {
      const res = await app.inject({ method: 'GET', url, headers: { origin: VIEWER } });
      assert.equal(res.headers['access-control-allow-origin'], VIEWER, url);
      assert.match(String(res.headers.vary), /Origin/, url);
    }
    const pre = await app.inject({ url: '/dicom-web/studies', ...preflight(VIEWER, 'POST') } as any);
    assert.equal(pre.statusCode, 204);
    assert.equal(pre.headers['access-control-allow-origin'], VIEWER);
    const stow = await app.inject({ method: 'POST', url: '/dicom-web/studies', headers: { origin: VIEWER, 'content-type': 'text/plain' }, payload: 'x' });
    assert.equal(stow.statusCode, 415);
    assert.equal(stow.headers['access-control-allow-origin'], VIEWER, 'errors carry the header too');
  });

  test('another origin gets no CORS header field at all, on preflights, reads and STOW-RS', async () => {
    const other = 'https://elsewhere.example';
    for (const url of paths()) {
      const res = await app.inject({ method: 'GET', url, headers: { origin: other } });
      assert.equal(res.headers['access-control-allow-origin'], undefined, url);
      assert.equal(res.headers['access-control-expose-headers'], undefined, url);
    }
    for (const url of [`${instancePath}/rendered`, '/dicom-web/studies']) {
      const pre = await app.inject({ url, ...preflight(other, 'POST') } as any);
      assert.equal(pre.statusCode, 204);
      assert.equal(pre.headers['access-control-allow-origin'], undefined);
      assert.equal(pre.headers['access-control-allow-methods'], undefined);
    }
    const stow = await app.inject({ method: 'POST', url: '/dicom-web/studies', headers: { origin: other, 'content-type': 'text/plain' }, payload: 'x' });
    assert.equal(stow.headers['access-control-allow-origin'], undefined);
    // Without an Origin (not a browser's cross-origin request), nothing either.
    const plain = await app.inject({ method: 'GET', url: `${instancePath}/thumbnail` });
    assert.equal(plain.statusCode, 200);
    assert.equal(plain.headers['access-control-allow-origin'], undefined);
  });
});
