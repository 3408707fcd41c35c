// The links from an ImagingStudy to what a patient chart shows (issue 10, docs/fhir.md "Thumbnail and key
// images"), followed as an EHR would, over a listening server on SQLite and PostgreSQL: the endpoint
// references resolve (WADO-RS and the IHE IID launch Endpoint); the thumbnail extension's URL answers with a
// JPEG; the key images extension's URL with the listing of what the study's Key Object Selection selects
// (real KOS written by dcmjs); the launch address + studyUID redirects a signed-in user to the viewer on that
// study and refuses the others. A study without an image has no thumbnail extension (its thumbnail URL is 404),
// one whose only KOS is a rejection note has no key images extension. Every resource validates against R4.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import type { Endpoint, ImagingStudy } from '@medplum/fhirtypes';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { r4Problems } from '../../test/support/fhir.ts';
import { keyObjectSelection } from '../../test/support/key-object-selection.ts';
import { createHttpServer } from '../http/server.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import type { StudyKeyImages } from '../archive/key-images.ts';

const html = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };
/** No credentials at all (test/support/archive.ts otherwise adds the test administrator's key to loopback fetches). */
const anonymous = { 'x-atrium-test-anonymous': '1' };
const THUMBNAIL = '/fhir/R4/StructureDefinition/imagingstudy-thumbnail';
const KEY_IMAGES = '/fhir/R4/StructureDefinition/imagingstudy-key-images';

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  describe(`ImagingStudy links for the chart (${engine})`, () => {
    let t: TestArchive;
    let http: FastifyInstance;
    let base: string;
    const keyed = { study: generateUid(), series: generateUid(), kosSeries: generateUid(), sops: [generateUid(), generateUid()], kos: generateUid(), rejection: generateUid() };
    const plain = generateUid();
    const rejectedOnly = { study: generateUid(), series: generateUid(), sop: generateUid(), kos: generateUid() };
    const kosOnly = { study: generateUid(), kos: generateUid() };
    let admin: Record<string, string>;

    before(async () => {
      t = await createTestArchive(engine);
      const store = async (bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) => assert.equal((await t.archive.ingest.ingest(bytes, { source: 'test' })).status, 'stored');
      for (const [n, sop] of keyed.sops.entries()) {
        await store(syntheticInstance({ patientId: 'CHART1', studyInstanceUid: keyed.study, seriesInstanceUid: keyed.series, sopInstanceUid: sop, seriesNumber: 1, instanceNumber: n + 1, referringPhysicianName: 'WELBY^MARCUS', seed: n }));
      }
      await store([keyObjectSelection({ study: keyed.study, series: keyed.kosSeries, sop: keyed.kos, title: ['113000', 'Of Interest'], description: 'Nodule', contentTime: '110000', patientId: 'CHART1',
        refs: [{ series: keyed.series, sop: keyed.sops[1]! }] })]);
      await store([keyObjectSelection({ study: keyed.study, series: keyed.kosSeries, sop: keyed.rejection, title: ['113001', 'Rejected for Quality Reasons'], contentTime: '120000', patientId: 'CHART1',
        refs: [{ series: keyed.series, sop: keyed.sops[0]! }] })]);
      await store(syntheticInstance({ patientId: 'CHART1', studyInstanceUid: plain, referringPhysicianName: 'OTHER^DOC' }));
      await store(syntheticInstance({ patientId: 'CHART2', studyInstanceUid: rejectedOnly.study, seriesInstanceUid: rejectedOnly.series, sopInstanceUid: rejectedOnly.sop }));
      await store([keyObjectSelection({ study: rejectedOnly.study, series: generateUid(), sop: rejectedOnly.kos, title: ['113001', 'Rejected for Quality Reasons'], contentTime: '120000', patientId: 'CHART2',
        refs: [{ series: rejectedOnly.series, sop: rejectedOnly.sop }] })]);
      // A study of a KOS alone (its images not sent yet): no image to make a thumbnail of.
      await store([keyObjectSelection({ study: kosOnly.study, series: generateUid(), sop: kosOnly.kos, title: ['113000', 'Of Interest'], contentTime: '100000', patientId: 'CHART3',
        refs: [{ series: generateUid(), sop: generateUid() }] })]);
      http = await createHttpServer(t.archive);
      base = await http.listen({ host: '127.0.0.1', port: 0 });
      admin = t.authHeaders();
    });

    after(async () => {
      await http?.close();
      await t?.cleanup();
    });

    const fhir = async <T>(url: string): Promise<T> => {
      const res = await fetch(url.startsWith('http') ? url : `${base}/fhir/R4/${url}`, { headers: admin });
      assert.equal(res.status, 200, `${url}: ${res.status}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/fhir\+json/);
      return await res.json() as T;
    };
    const extension = (study: ImagingStudy, url: string) => study.extension?.find((e) => e.url === `${base}${url}`)?.valueUrl;

    test('ImagingStudy.endpoint: the WADO-RS and the IHE IID Endpoints, both readable and valid R4', async () => {
      const study = await fhir<ImagingStudy>(`ImagingStudy/${keyed.study}`);
      assert.deepEqual(study.endpoint, [{ reference: 'Endpoint/dicomweb' }, { reference: 'Endpoint/iid' }]);
      const [wado, iid] = await Promise.all(study.endpoint!.map((r) => fhir<Endpoint>(r.reference!)));
      assert.deepEqual([wado!.connectionType.code, wado!.address], ['dicom-wado-rs', `${base}/dicom-web`]);
      assert.deepEqual(iid!.connectionType, { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'ihe-iid', display: 'IHE IID' });
      assert.equal(iid!.address, `${base}/launch`);
      assert.equal(iid!.status, 'active');
      assert.deepEqual(iid!.payloadType.map((p) => p.coding?.[0]?.code), ['none']);
      assert.deepEqual(iid!.payloadMimeType, ['text/html']);
      const searched = await fhir<{ entry: { resource: Endpoint }[] }>('Endpoint?connection-type=ihe-iid');
      assert.deepEqual(searched.entry.map((e) => e.resource.id), ['iid']);
      const everything = await fhir<{ entry: { resource: Endpoint }[] }>('Endpoint');
      assert.deepEqual(everything.entry.map((e) => e.resource.id), ['dicomweb', 'wado-uri', 'iid']);
      const studies = await fhir<{ entry: { resource: ImagingStudy }[] }>('ImagingStudy?_count=50');
      assert.equal(studies.entry.length, 4);
      for (const resource of [study, wado, iid, ...studies.entry.map((e) => e.resource)]) assert.deepEqual(r4Problems(resource), [], `${resource!.resourceType}/${resource!.id}`);
      const missing = await fetch(`${base}/fhir/R4/Endpoint/launch`, { headers: admin });
      assert.equal(missing.status, 404);
    });

    test('the thumbnail extension\'s URL is the study thumbnail, a JPEG; a study without an image has none', async () => {
      const study = await fhir<ImagingStudy>(`ImagingStudy/${keyed.study}`);
      const url = extension(study, THUMBNAIL);
      assert.equal(url, `${base}/dicom-web/studies/${keyed.study}/thumbnail`);
      const res = await fetch(url!, { headers: admin });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'image/jpeg');
      const bytes = Buffer.from(await res.arrayBuffer());
      assert.deepEqual([...bytes.subarray(0, 3)], [0xff, 0xd8, 0xff], 'JPEG SOI');
      assert.equal(extension(await fhir<ImagingStudy>(`ImagingStudy/${plain}`), THUMBNAIL), `${base}/dicom-web/studies/${plain}/thumbnail`);
      const kosAlone = await fhir<ImagingStudy>(`ImagingStudy/${kosOnly.study}`);
      assert.equal(extension(kosAlone, THUMBNAIL), undefined, 'no image, no thumbnail extension');
      assert.equal((await fetch(`${base}/dicom-web/studies/${kosOnly.study}/thumbnail`, { headers: admin })).status, 404, 'as the thumbnail resource says');
      const unauthenticated = await fetch(url!, { headers: anonymous });
      assert.equal(unauthenticated.status, 401, 'the same credentials as DICOMweb');
    });

    test('the key images extension\'s URL lists what the KOS selects; KOS instances carry their title; a rejection note alone is no key images', async () => {
      const study = await fhir<ImagingStudy>(`ImagingStudy/${keyed.study}`);
      const url = extension(study, KEY_IMAGES);
      assert.equal(url, `${base}/api/studies/${keyed.study}/key-images`);
      const res = await fetch(url!, { headers: admin });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const listing = await res.json() as StudyKeyImages;
      assert.deepEqual(listing.keyObjectSelections.map((k) => k.sopInstanceUid), [keyed.kos]);
      assert.deepEqual(listing.keyImages.map((k) => [k.seriesInstanceUid, k.sopInstanceUid, k.stored]), [[keyed.series, keyed.sops[1], true]]);
      const selected = listing.keyImages[0]!;
      assert.ok(study.series!.some((s) => s.uid === selected.seriesInstanceUid && s.instance?.some((i) => i.uid === selected.sopInstanceUid)), 'the key image is an instance of the ImagingStudy');
      const image = await fetch(`${base}${selected.thumbnail}`, { headers: admin });
      assert.equal(image.status, 200);
      assert.equal(image.headers.get('content-type'), 'image/jpeg');
      // The KOS themselves are instances of the study, with their SOP Class and document title.
      const kosSeries = study.series!.find((s) => s.uid === keyed.kosSeries)!;
      assert.deepEqual(kosSeries.instance!.map((i) => [i.uid, i.sopClass.code, i.title]).sort(), [
        [keyed.kos, 'urn:oid:1.2.840.10008.5.1.4.1.1.88.59', 'Of Interest'],
        [keyed.rejection, 'urn:oid:1.2.840.10008.5.1.4.1.1.88.59', 'Rejected for Quality Reasons'],
      ].sort());
      assert.equal(study.series!.find((s) => s.uid === keyed.series)!.instance!.every((i) => i.title === undefined), true, 'images have no title');

      assert.equal(extension(await fhir<ImagingStudy>(`ImagingStudy/${plain}`), KEY_IMAGES), undefined, 'no KOS');
      const rejected = await fhir<ImagingStudy>(`ImagingStudy/${rejectedOnly.study}`);
      assert.equal(extension(rejected, KEY_IMAGES), undefined, 'a rejection note selects no key images');
      const rejectedListing = await (await fetch(`${base}/api/studies/${rejectedOnly.study}/key-images`, { headers: admin })).json() as StudyKeyImages;
      assert.deepEqual([rejectedListing.keyObjectSelections, rejectedListing.keyImages], [[], []], 'as the key images resource says');
      assert.equal(extension(await fhir<ImagingStudy>(`ImagingStudy/${kosOnly.study}`), KEY_IMAGES), `${base}/api/studies/${kosOnly.study}/key-images`);
      // Searches carry the same extensions as reads; _summary=true too (they are no instance list).
      const page = await fhir<{ entry: { resource: ImagingStudy }[] }>(`ImagingStudy?_id=${keyed.study}&_summary=true`);
      assert.deepEqual(page.entry[0]!.resource.extension, study.extension);
    });

    test('the launch Endpoint\'s address with the study\'s UID opens the viewer on it for a signed-in user', async () => {
      const study = await fhir<ImagingStudy>(`ImagingStudy/${keyed.study}`);
      const iid = await fhir<Endpoint>(study.endpoint!.find((r) => r.reference === 'Endpoint/iid')!.reference!);
      const launchUrl = `${iid.address}?requestType=STUDY&studyUID=${encodeURIComponent(study.id!)}`;
      const session = async (username: string, roles: ('radiologist' | 'researcher')[]) => {
        await t.archive.security.createUser({ username, password: 'correct horse battery staple', roles });
        const login = await t.archive.security.login(username, 'correct horse battery staple', '127.0.0.1');
        assert.ok('sessionId' in login);
        return { ...html, cookie: `atrium_session=${login.sessionId}` };
      };
      const open = async (url: string, headers: Record<string, string>) => {
        const res = await fetch(url, { headers, redirect: 'manual' });
        await res.arrayBuffer();
        return { status: res.status, location: res.headers.get('location') };
      };
      const signedIn = await open(launchUrl, await session('rosa', ['radiologist']));
      assert.deepEqual(signedIn, { status: 302, location: `/viewer?StudyInstanceUIDs=${keyed.study}` });
      const signedOut = await open(launchUrl, { ...html, ...anonymous });
      assert.equal(signedOut.status, 302);
      assert.match(signedOut.location ?? '', /^\/login\?next=/, 'sent to sign in first');
      assert.equal(decodeURIComponent(signedOut.location!.slice('/login?next='.length)), new URL(launchUrl).pathname + new URL(launchUrl).search, 'and back to the launch');
      assert.equal((await open(launchUrl, await session('rex', ['researcher']))).status, 403, 'no role granting study:read');
      assert.equal((await open(`${iid.address}?requestType=STUDY&studyUID=${generateUid()}`, await session('rosa2', ['radiologist']))).status, 404, 'a study not here');
    });
  });
}
