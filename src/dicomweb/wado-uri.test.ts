/** WADO-URI (PS3.18 9) over real HTTP: the stored object, transferSyntax, rendering delegated or refused. */
import Fastify from 'fastify';
import { sendProblem } from '../http/problem.ts';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { get, startDicomwebServer, type DicomwebServer } from '../../test/support/dicomweb.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { createHttpServer } from '../http/server.ts';
import { dicomwebRoutes } from './routes.ts';

let t: TestArchive;
let server: DicomwebServer;
const ids = { study: generateUid(), series: generateUid(), sop: generateUid() };
let bytes: Buffer;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  bytes = Buffer.concat([...syntheticInstance({ rows: 8, columns: 8, studyInstanceUid: ids.study, seriesInstanceUid: ids.series, sopInstanceUid: ids.sop })]);
  assert.equal((await t.archive.ingest.ingest([bytes], { source: 'test' })).status, 'stored');
  server = await startDicomwebServer(t.archive);
});

after(async () => {
  await server?.close();
  await t?.cleanup();
});

const wado = (params: Record<string, string>) => `${server.base}/wado?${new URLSearchParams(params)}`;
const object = { requestType: 'WADO', studyUID: ids.study, seriesUID: ids.series, objectUID: ids.sop };

test('contentType=application/dicom returns the stored object byte-exact', async () => {
  const res = await get(wado({ ...object, contentType: 'application/dicom' }));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/dicom');
  assert.equal(res.headers.get('etag'), `"${(await t.archive.index.findInstance(ids.sop))!.sha256}"`);
  assert.ok(res.body.equals(bytes));
  const same = await get(wado({ ...object, contentType: 'application/dicom', transferSyntax: '1.2.840.10008.1.2.1' }));
  assert.ok(same.body.equals(bytes));
});

test('a transfer syntax that cannot be produced is 406; malformed requests are 400; unknown objects 404', async () => {
  const other = await get(wado({ ...object, contentType: 'application/dicom', transferSyntax: '1.2.840.10008.1.2.4.50' }));
  assert.equal(other.status, 406);
  assert.match(other.json().detail, /cannot be sent in 1\.2\.840\.10008\.1\.2\.4\.50: no transcoding into it here/);
  for (const params of [
    { ...object, requestType: 'WADOX', contentType: 'application/dicom' },
    { requestType: 'WADO', studyUID: ids.study, seriesUID: ids.series, contentType: 'application/dicom' },
    { ...object, objectUID: 'not-a-uid', contentType: 'application/dicom' },
    { ...object, contentType: 'application/dicom', transferSyntax: 'abc' },
  ]) {
    const res = await get(wado(params));
    assert.equal(res.status, 400, JSON.stringify(params));
    assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  }
  const missing = await get(wado({ ...object, objectUID: '1.2.3', contentType: 'application/dicom' }));
  assert.equal(missing.status, 404);
  const wrongStudy = await get(wado({ ...object, studyUID: '1.2.3', contentType: 'application/dicom' }));
  assert.equal(wrongStudy.status, 404);
});

test('image/jpeg (the default contentType) is rendered by the imaging engine Atrium wires in', async () => {
  for (const params of [object, { ...object, contentType: 'image/jpeg' }]) {
    const res = await get(wado(params));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/jpeg');
    assert.deepEqual([...res.body.subarray(0, 2)], [0xff, 0xd8]);
  }
});

test('without a renderer, image requests are 406 with a clear detail; a given renderer answers them', async () => {
  const t2 = await createTestArchive('sqlite+fs');
  try {
    assert.equal((await t2.archive.ingest.ingest([bytes], { source: 'test' })).status, 'stored');
    const calls: unknown[] = [];
    const render = async (sop: string, frame: number | undefined, params: Record<string, string>) => {
      calls.push({ sop, frame, contentType: params.contentType });
      return { contentType: 'image/jpeg', body: new Uint8Array([0xff, 0xd8, 0xff, 0xd9]) };
    };
    for (const options of [{}, { render }]) {
      // A bare server with only the DICOMweb routes, as another composition might build it.
      const app = Fastify();
      app.setErrorHandler((error, request, reply) => sendProblem(error as Error, request, reply));
      await dicomwebRoutes(app, t2.archive, options);
      const origin = await app.listen({ host: '127.0.0.1', port: 0 });
      try {
        const res = await get(`${origin}/dicom-web/wado?${new URLSearchParams({ ...object, contentType: 'image/jpeg', frameNumber: '1' })}`);
        if ('render' in options) {
          assert.equal(res.status, 200);
          assert.deepEqual([...res.body], [0xff, 0xd8, 0xff, 0xd9]);
          assert.deepEqual(calls, [{ sop: ids.sop, frame: 1, contentType: 'image/jpeg' }]);
        } else {
          assert.equal(res.status, 406);
          assert.match(res.json().detail, /rendering to image\/jpeg is not available/);
        }
      } finally {
        await app.close();
      }
    }
  } finally {
    await t2.cleanup();
  }
});


test('WADO-URI is also at /wado', async () => {
  const res = await get(wado({ ...object, contentType: 'application/dicom' }).replace('/dicom-web/wado', '/wado'));
  assert.equal(res.status, 200);
  assert.ok(res.body.equals(bytes));
});
