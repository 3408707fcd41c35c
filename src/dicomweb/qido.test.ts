/** QIDO-RS over real HTTP, with the requests OHIF makes and with dicomweb-client as the client. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { dicomwebClient, get, installXMLHttpRequest, parseMultipart, startDicomwebServer, type DicomwebServer } from '../../test/support/dicomweb.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';

let t: TestArchive;
let server: DicomwebServer;
const doe = { study: generateUid(), series: [generateUid(), generateUid()] };
const roe = { study: generateUid(), series: generateUid() };
const v = (ds: any, tag: string) => ds[tag]?.Value?.[0];

before(async () => {
  installXMLHttpRequest();
  t = await createTestArchive('sqlite+fs');
  const ingest = async (options: Parameters<typeof syntheticInstance>[0]) => {
    const r = await t.archive.ingest.ingest(syntheticInstance({ rows: 8, columns: 8, ...options }), { source: 'test' });
    assert.equal(r.status, 'stored');
  };
  for (let i = 0; i < 3; i++) {
    await ingest({ patientName: 'DOE^JOHN', patientId: 'P1', studyInstanceUid: doe.study, seriesInstanceUid: doe.series[0], modality: 'CT', studyDate: '20240315', studyDescription: 'CHEST CT', seriesNumber: 1, instanceNumber: i + 1, seed: i });
  }
  await ingest({ patientName: 'DOE^JOHN', patientId: 'P1', studyInstanceUid: doe.study, seriesInstanceUid: doe.series[1], modality: 'CT', studyDate: '20240315', studyDescription: 'CHEST CT', seriesNumber: 2, seed: 9 });
  await ingest({ patientName: 'ROE^JANE', patientId: 'P2', studyInstanceUid: roe.study, seriesInstanceUid: roe.series, modality: 'MR', studyDate: '20230101', studyDescription: 'BRAIN MR', seed: 20 });
  server = await startDicomwebServer(t.archive);
});

after(async () => {
  await server?.close();
  await t?.cleanup();
});

test('OHIF study list: limit, offset, fuzzymatching, includefield and the *value* wildcard', async () => {
  const res = await get(`${server.base}/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060&PatientName=*DOE*`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^application\/dicom\+json/);
  const studies = res.json();
  assert.equal(studies.length, 1);
  const s = studies[0];
  assert.equal(v(s, '0020000D'), doe.study);
  assert.equal(v(s, '00081030'), 'CHEST CT');
  assert.deepEqual(s['00080061'].Value, ['CT']);
  assert.equal(v(s, '00201206'), 2, 'NumberOfStudyRelatedSeries');
  assert.equal(v(s, '00201208'), 4, 'NumberOfStudyRelatedInstances');
  assert.deepEqual(s['00100010'].Value[0], { Alphabetic: 'DOE^JOHN' });
  assert.equal(v(s, '00081190'), `${server.base}/studies/${doe.study}`, 'RetrieveURL is absolute');
  assert.equal(s['00080052'], undefined, 'no Query/Retrieve Level in QIDO answers');
  // Tags come in ascending order (PS3.18 F.2).
  assert.deepEqual(Object.keys(s), [...Object.keys(s)].sort());
});

test('study searches: all, by date range, UID list, modality, fuzzy names; limit and offset page', async () => {
  const all = (await get(`${server.base}/studies`)).json();
  assert.equal(all.length, 2);
  const byDate = (await get(`${server.base}/studies?StudyDate=20240101-20241231`)).json();
  assert.deepEqual(byDate.map((s: any) => v(s, '0020000D')), [doe.study]);
  const list = (await get(`${server.base}/studies?StudyInstanceUID=${doe.study},${roe.study}`)).json();
  assert.equal(list.length, 2);
  const mr = (await get(`${server.base}/studies?ModalitiesInStudy=MR`)).json();
  assert.deepEqual(mr.map((s: any) => v(s, '0020000D')), [roe.study]);
  const fuzzy = (await get(`${server.base}/studies?PatientName=jan&fuzzymatching=true`)).json();
  assert.deepEqual(fuzzy.map((s: any) => v(s, '0020000D')), [roe.study]);
  const byKeyword = (await get(`${server.base}/studies?PatientID=P2&includefield=StudyDescription`)).json();
  assert.equal(v(byKeyword[0], '00081030'), 'BRAIN MR');

  const first = await get(`${server.base}/studies?limit=1`);
  assert.equal(first.json().length, 1);
  assert.match(first.headers.get('warning') ?? '', /^299 .*additional results/);
  const second = await get(`${server.base}/studies?limit=1&offset=1`);
  assert.equal(second.json().length, 1);
  assert.notEqual(v(second.json()[0], '0020000D'), v(first.json()[0], '0020000D'));
  assert.equal(second.headers.get('warning'), null);
});

test('nothing matches: 200 with an empty array (PS3.18 as amended by CP-2473)', async () => {
  const res = await get(`${server.base}/studies?PatientID=NOBODY`);
  assert.equal(res.status, 200);
  assert.deepEqual(res.json(), []);
});

test('series and instances, nested and flat, with includefield=all and RetrieveURL', async () => {
  const series = (await get(`${server.base}/studies/${doe.study}/series`)).json();
  assert.deepEqual(series.map((s: any) => v(s, '0020000E')).sort(), [...doe.series].sort());
  const first = series.find((s: any) => v(s, '0020000E') === doe.series[0]);
  assert.equal(v(first, '00080060'), 'CT');
  assert.equal(v(first, '00201209'), 3, 'NumberOfSeriesRelatedInstances');
  assert.equal(v(first, '00081190'), `${server.base}/studies/${doe.study}/series/${doe.series[0]}`);

  const flat = (await get(`${server.base}/series?Modality=MR`)).json();
  assert.deepEqual(flat.map((s: any) => v(s, '0020000E')), [roe.series]);

  const instances = (await get(`${server.base}/studies/${doe.study}/series/${doe.series[0]}/instances`)).json();
  assert.equal(instances.length, 3);
  for (const i of instances) {
    assert.equal(v(i, '00081190'), `${server.base}/studies/${doe.study}/series/${doe.series[0]}/instances/${v(i, '00080018')}`);
    assert.equal(v(i, '00280010'), 8);
  }
  const inStudy = (await get(`${server.base}/studies/${doe.study}/instances?includefield=all`)).json();
  assert.equal(inStudy.length, 4);
  const everywhere = (await get(`${server.base}/instances?SeriesInstanceUID=${roe.series}`)).json();
  assert.equal(everywhere.length, 1);
  // A parameter that contradicts the path is overridden by the path.
  const contradicted = (await get(`${server.base}/studies/${doe.study}/series?StudyInstanceUID=${roe.study}`)).json();
  assert.equal(contradicted.length, 2);
});

test('application/dicom+xml: one PS3.19 part per match', async () => {
  const res = await get(`${server.base}/studies/${doe.study}/series`, { accept: 'multipart/related; type="application/dicom+xml"' });
  assert.equal(res.status, 200);
  const parts = parseMultipart(res.headers.get('content-type')!, res.body);
  assert.equal(parts.length, 2);
  for (const p of parts) {
    assert.match(p.headers['content-type'], /^application\/dicom\+xml/);
    const xml = p.body.toString('utf8');
    assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<NativeDicomModel xmlns="http:\/\/dicom.nema.org\/PS3.19\/models\/NativeDICOM">/);
    assert.match(xml, /<DicomAttribute tag="00100010" vr="PN" keyword="PatientName"><PersonName number="1"><Alphabetic><FamilyName>DOE<\/FamilyName><GivenName>JOHN<\/GivenName><\/Alphabetic><\/PersonName><\/DicomAttribute>/);
    assert.match(xml, new RegExp(`<DicomAttribute tag="0020000D" vr="UI" keyword="StudyInstanceUID"><Value number="1">${doe.study.replace(/\./g, '\\.')}</Value>`));
  }
});

test('errors and warnings: bad limit 400, bad attribute 400, bad date 400, unacceptable 406, unsupported flags warned', async () => {
  for (const q of ['limit=abc', 'limit=-1', 'offset=x', 'NoSuchKeyword=1', 'StudyDate=2024-13-45', 'StudyInstanceUID=1.2.*', 'fuzzymatching=maybe']) {
    const res = await get(`${server.base}/studies?${q}`);
    assert.equal(res.status, 400, q);
    assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.ok(res.json().detail, q);
  }
  const unacceptable = await get(`${server.base}/studies`, { accept: 'image/png' });
  assert.equal(unacceptable.status, 406);
  assert.match(unacceptable.json().detail, /application\/dicom\+json/);
  const flagged = await get(`${server.base}/studies?emptyvaluematching=true`);
  assert.equal(flagged.status, 200);
  assert.match(flagged.headers.get('warning')!, /^299 http:\/\/127\.0\.0\.1:\d+\/dicom-web: The emptyvaluematching parameter is not supported/);
  const capped = await get(`${server.base}/studies?limit=5000`);
  assert.equal(capped.status, 200);
  assert.match(capped.headers.get('warning')!, /maximum supported by the server \(1000\)/);
});

test('CORS: any origin by default, preflight answered; gzip for large JSON', async () => {
  const res = await get(`${server.base}/studies`, { origin: 'http://viewer.example' });
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.match(res.headers.get('access-control-expose-headers')!, /Warning/);
  const pre = await fetch(`${server.base}/studies/${doe.study}/metadata`, {
    method: 'OPTIONS', headers: { origin: 'http://viewer.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(pre.headers.get('access-control-allow-methods')!, /GET/);
  // fetch asks for gzip and inflates transparently: the raw header tells it was compressed.
  const gz = await fetch(`${server.base}/studies/${doe.study}/instances?includefield=all`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(gz.headers.get('content-encoding'), 'gzip');
  assert.equal((await gz.json() as unknown[]).length, 4);
});

test('dicomweb-client: searchForStudies, searchForSeries, searchForInstances', async () => {
  const client = dicomwebClient(server.base);
  const studies = await client.searchForStudies({ queryParams: { PatientName: 'DOE*' } }) as any[];
  assert.equal(studies.length, 1);
  assert.equal(v(studies[0], '0020000D'), doe.study);
  const series = await client.searchForSeries({ studyInstanceUID: doe.study }) as any[];
  assert.equal(series.length, 2);
  const instances = await client.searchForInstances({ studyInstanceUID: doe.study, seriesInstanceUID: doe.series[0] }) as any[];
  assert.equal(instances.length, 3);
  const none = await client.searchForStudies({ queryParams: { PatientID: 'NOBODY' } }) as any[];
  assert.deepEqual(none, []);
});
