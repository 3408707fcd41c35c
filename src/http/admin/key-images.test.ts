// Key images for the chart: GET /api/studies/{uid}/key-images lists the instances that the study's Key
// Object Selection documents select (real KOS written by dcmjs, not our codec), with their rendered and
// thumbnail URLs, which answer with images; frames, a reference the archive does not hold, a rejection note
// (not listed, and its instance left out), a study without KOS, an unknown study; the study thumbnail is an
// image although the study's first series is the KOS; a referring clinician is refused another's study and
// the read is audited. On SQLite and PostgreSQL.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { createHttpServer } from '../server.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';
import type { StudyKeyImages } from '../../archive/key-images.ts';
import { CT, keyObjectSelection } from '../../../test/support/key-object-selection.ts';

for (const engines of ['sqlite+fs', 'postgres+fs'] as const) {
  describe(`key images (${engines})`, () => {
    let t: TestArchive;
    let http: FastifyInstance;
    let base: string;
    const study = generateUid();
    const [series1, series2, kosSeries] = [generateUid(), generateUid(), generateUid()];
    const [sop1, sop2, sop3] = [generateUid(), generateUid(), generateUid()];
    const [ofInterest, rejection, teaching] = [generateUid(), generateUid(), generateUid()];
    const missing = generateUid();
    const other = generateUid();

    before(async () => {
      t = await createTestArchive(engines);
      const store = async (bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) => assert.equal((await t.archive.ingest.ingest(bytes, { source: 'test' })).status, 'stored');
      await store(syntheticInstance({ patientId: 'KEY1', studyInstanceUid: study, seriesInstanceUid: series1, sopInstanceUid: sop1, seriesNumber: 1, referringPhysicianName: 'WELBY^MARCUS', seed: 1 }));
      await store(syntheticInstance({ patientId: 'KEY1', studyInstanceUid: study, seriesInstanceUid: series2, sopInstanceUid: sop2, seriesNumber: 2, frames: 3, referringPhysicianName: 'WELBY^MARCUS', seed: 2 }));
      await store(syntheticInstance({ patientId: 'KEY1', studyInstanceUid: study, seriesInstanceUid: series1, sopInstanceUid: sop3, seriesNumber: 1, instanceNumber: 2, referringPhysicianName: 'WELBY^MARCUS', seed: 3 }));
      await store([keyObjectSelection({ study, series: kosSeries, sop: ofInterest, title: ['113000', 'Of Interest'], description: 'Lésion hépatique, 2 cm', contentTime: '110000', patientId: 'KEY1',
        refs: [{ series: series1, sop: sop1 }, { series: series2, sop: sop2, frames: [2] }, { series: series1, sop: missing }] })]);
      await store([keyObjectSelection({ study, series: kosSeries, sop: rejection, title: ['113001', 'Rejected for Quality Reasons'], contentTime: '120000', patientId: 'KEY1', refs: [{ series: series1, sop: sop3 }] })]);
      await store([keyObjectSelection({ study, series: kosSeries, sop: teaching, title: ['113004', 'For Teaching'], contentTime: '130000', patientId: 'KEY1',
        refs: [{ series: series2, sop: sop2, frames: [3] }, { series: series1, sop: sop3 }] })]);
      await store(syntheticInstance({ patientId: 'KEY2', studyInstanceUid: other, referringPhysicianName: 'OTHER^DOC' }));
      http = await createHttpServer(t.archive);
      base = await http.listen({ host: '127.0.0.1', port: 0 });
    });

    after(async () => {
      await http?.close();
      await t?.cleanup();
    });

    test('the KOS\'s selected instances, once each, with rendered and thumbnail URLs that answer with images', async () => {
      const res = await fetch(`${base}/api/studies/${study}/key-images`);
      assert.equal(res.status, 200);
      const body = await res.json() as StudyKeyImages;
      assert.deepEqual(body.unreadable, []);
      assert.deepEqual(body.keyObjectSelections.map((k) => [k.sopInstanceUid, k.seriesInstanceUid, k.title?.code, k.title?.meaning, k.description]), [
        [ofInterest, kosSeries, '113000', 'Of Interest', 'Lésion hépatique, 2 cm'],
        [teaching, kosSeries, '113004', 'For Teaching', null],
      ], 'the rejection note is no selection of key images');
      const dw = `/dicom-web/studies/${study}/series`;
      assert.deepEqual(body.keyImages, [
        {
          studyInstanceUid: study, seriesInstanceUid: series1, sopInstanceUid: sop1, sopClassUid: CT, frames: null, selectedBy: [ofInterest], stored: true,
          rendered: `${dw}/${series1}/instances/${sop1}/rendered`, renderedFrames: null, thumbnail: `${dw}/${series1}/instances/${sop1}/thumbnail`,
          retrieve: `${dw}/${series1}/instances/${sop1}`,
        },
        {
          studyInstanceUid: study, seriesInstanceUid: series2, sopInstanceUid: sop2, sopClassUid: '1.2.840.10008.5.1.4.1.1.7.3', frames: [2, 3], selectedBy: [ofInterest, teaching], stored: true,
          rendered: `${dw}/${series2}/instances/${sop2}/frames/2/rendered`,
          renderedFrames: [`${dw}/${series2}/instances/${sop2}/frames/2/rendered`, `${dw}/${series2}/instances/${sop2}/frames/3/rendered`],
          thumbnail: `${dw}/${series2}/instances/${sop2}/frames/2/thumbnail`, retrieve: `${dw}/${series2}/instances/${sop2}`,
        },
        {
          studyInstanceUid: study, seriesInstanceUid: series1, sopInstanceUid: missing, sopClassUid: CT, frames: null, selectedBy: [ofInterest], stored: false,
          rendered: null, renderedFrames: null, thumbnail: null, retrieve: null,
        },
      ], 'sop3 is left out: a rejection note of the study rejects it');
      for (const image of body.keyImages.filter((k) => k.stored)) {
        for (const url of [image.rendered!, image.thumbnail!, ...(image.renderedFrames ?? [])]) {
          const picture = await fetch(`${base}${url}`);
          assert.equal(picture.status, 200, url);
          assert.equal(picture.headers.get('content-type'), 'image/jpeg', url);
          const bytes = Buffer.from(await picture.arrayBuffer());
          assert.deepEqual([...bytes.subarray(0, 2)], [0xff, 0xd8], `${url} is a JPEG`);
        }
        assert.equal((await fetch(`${base}${image.retrieve}`, { headers: { accept: 'multipart/related; type="application/dicom"' } })).status, 200);
      }
    });

    test('the study thumbnail (PS3.18) is an image, though the study\'s first series is the KOS', async () => {
      const series = (await (await fetch(`${base}/api/studies/${study}/series`)).json()) as { items: { seriesInstanceUid: string }[] };
      assert.equal(series.items[0]!.seriesInstanceUid, kosSeries, 'the KOS series (number 0) comes first');
      const res = await fetch(`${base}/dicom-web/studies/${study}/thumbnail`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'image/jpeg');
    });

    test('a study without KOS has none; an unknown study is 404', async () => {
      assert.deepEqual(await (await fetch(`${base}/api/studies/${other}/key-images`)).json(), { studyInstanceUid: other, keyObjectSelections: [], keyImages: [], unreadable: [] });
      assert.equal((await fetch(`${base}/api/studies/1.2.826.0.1.3680043.99.404/key-images`)).status, 404);
    });

    test('a referring clinician reads the key images of their own patients\' studies only; the reads are audited', async () => {
      await t.archive.security.createUser({ username: 'welby', password: 'correct horse battery staple', roles: ['referring-clinician'], dicomPersonName: 'WELBY^MARCUS' });
      const login = await t.archive.security.login('welby', 'correct horse battery staple', '127.0.0.1');
      assert.ok(!('httpStatus' in login));
      const cookie = { cookie: `atrium_session=${login.sessionId}`, 'x-atrium-test-anonymous': '1' };
      assert.equal((await fetch(`${base}/api/studies/${study}/key-images`, { headers: cookie })).status, 200);
      assert.equal((await fetch(`${base}/api/studies/${other}/key-images`, { headers: cookie })).status, 403);
      await t.archive.audit.drain();
      const { items } = await t.archive.audit.search({ action: 'read' }, { limit: 200, offset: 0 });
      assert.ok(items.some((r) => r.principal.id === 'welby' && r.outcome === 'success' && r.studies.some((s) => s.studyInstanceUid === study)));
      assert.ok(items.some((r) => r.principal.id === 'welby' && r.outcome === 'minor-failure' && /denied/.test(r.outcomeReason ?? '') && r.query?.includes(other)));
    });
  });
}
