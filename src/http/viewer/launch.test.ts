// The viewer launch (IHE IID style) over HTTP: its parameters (IID's names and Atrium's, a CX patient ID),
// where it sends OHIF for a study, an accession number, a patient with one or several studies (the study
// list of the exact data source only when it shows exactly that patient), and its pages: 400, 403 (no role;
// not a referring clinician's patient, told the same as a study that is not there), 404, 409 (one Patient
// ID under two issuers; a study of another patient). A browser without a session goes to sign-in, an API
// client gets 401. Every launch is audited. The browser itself: launch-browser.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { createHttpServer } from '../server.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';
import { parseLaunchRequest, parsePatientIdentifier } from './launch-request.ts';
import { OHIF_EXACT_DATA_SOURCE } from './routes.ts';

const html = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };
const anonymous = { 'x-atrium-test-anonymous': '1' };

let t: TestArchive;
let http: FastifyInstance;
let base: string;
const uid = { single: generateUid(), older: generateUid(), newer: generateUid(), ct: generateUid(), other: generateUid(), hospA: generateUid(), hospB: generateUid() };
let welby: Record<string, string>;
let researcher: Record<string, string>;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  const store = async (o: Parameters<typeof syntheticInstance>[0]) => assert.equal((await t.archive.ingest.ingest(syntheticInstance(o), { source: 'test' })).status, 'stored');
  await store({ patientId: 'L1', studyInstanceUid: uid.single, accessionNumber: 'LACC1', referringPhysicianName: 'WELBY^MARCUS' });
  // L2: three studies, two MR and one CT, over three years; L22's ID contains L2.
  await store({ patientId: 'L2', studyInstanceUid: uid.older, accessionNumber: 'LACC2', studyDate: '20220110', modality: 'MR', referringPhysicianName: 'WELBY^MARCUS' });
  await store({ patientId: 'L2', studyInstanceUid: uid.newer, accessionNumber: 'LACC3', studyDate: '20240110', modality: 'MR' });
  await store({ patientId: 'L2', studyInstanceUid: uid.ct, accessionNumber: 'LACC4', studyDate: '20230615', modality: 'CT' });
  await store({ patientId: 'L22', studyInstanceUid: uid.other, accessionNumber: 'LACC5' });
  http = await createHttpServer(t.archive);
  base = await http.listen({ host: '127.0.0.1', port: 0 });
  const session = async (username: string, roles: ('referring-clinician' | 'researcher')[], dicomPersonName?: string) => {
    await t.archive.security.createUser({ username, password: 'correct horse battery staple', roles, dicomPersonName });
    const login = await t.archive.security.login(username, 'correct horse battery staple', '127.0.0.1');
    assert.ok('sessionId' in login);
    return { cookie: `atrium_session=${login.sessionId}`, ...anonymous };
  };
  welby = await session('welby', ['referring-clinician'], 'WELBY^MARCUS');
  researcher = await session('rex', ['researcher']);
});

after(async () => {
  await http?.close();
  await t?.cleanup();
});

async function launch(query: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/launch?${query}`, { headers: { ...html, ...headers }, redirect: 'manual' });
  return { status: res.status, location: res.headers.get('location'), body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

test('parameters: IID names and Atrium\'s, any case, a CX patient ID with its issuer, lists; and what is refused', () => {
  assert.deepEqual(parsePatientIdentifier('12345^^^HOSP&1.2.3&ISO^MR'), { id: '12345', issuer: 'HOSP' });
  assert.deepEqual(parsePatientIdentifier('12345^^^&1.2.3&ISO'), { id: '12345', issuer: '1.2.3' });
  assert.deepEqual(parsePatientIdentifier('12345'), { id: '12345', issuer: null });
  const iid = parseLaunchRequest({ requestType: 'PATIENT', patientID: 'P1^^^HOSP', mostRecentResults: '2', modalitiesInStudy: 'ct,MR', lowerDateTime: '2023-01-01T00:00:00Z', viewerType: 'IHE_BIR', diagnosticQuality: 'true' });
  assert.deepEqual(iid, { requestType: 'PATIENT', patient: { id: 'P1', issuer: 'HOSP' }, studyInstanceUids: [], accessionNumbers: [], mostRecentResults: 2,
    lowerDateTime: '20230101000000', upperDateTime: null, modalities: ['CT', 'MR'] });
  assert.deepEqual(parseLaunchRequest({ patientid: 'P1', issuer: 'OTHER' }).patient, { id: 'P1', issuer: 'OTHER' });
  const study = parseLaunchRequest({ requesttype: 'study', studyUID: '1.2.3, 1.2.4,1.2.3', accessionNumber: 'A1' });
  assert.deepEqual([study.requestType, study.studyInstanceUids, study.accessionNumbers, study.patient], ['STUDY', ['1.2.3', '1.2.4'], ['A1'], null]);
  assert.equal(parseLaunchRequest({ studyInstanceUid: '1.2.3' }).requestType, 'STUDY');
  assert.equal(parseLaunchRequest({ accessionNumber: 'A1', patientId: 'P1' }).requestType, 'STUDY');
  for (const [query, message] of [
    [{}, /needs patientID, studyUID or accessionNumber/], [{ requestType: 'SERIES', studyUID: '1.2' }, /not PATIENT or STUDY/],
    [{ requestType: 'STUDY', patientID: 'P1' }, /needs studyUID or accessionNumber/], [{ studyUID: '1.2.x' }, /not a valid UID/],
    [{ patientID: 'P*' }, /no wildcards/], [{ accessionNumber: 'A?' }, /no wildcards/], [{ patientID: '^^^HOSP' }, /no identifier/],
    [{ patientID: 'P1', mostRecentResults: '0' }, /positive whole number/], [{ patientID: 'P1', upperDateTime: 'yesterday' }, /not a date-time/],
  ] as const) assert.throws(() => parseLaunchRequest(query), message);
});

test('a study, an accession number, a patient with one study: OHIF\'s viewer on it', async () => {
  for (const query of [`studyUID=${uid.single}`, `studyInstanceUid=${uid.single}`, 'accessionNumber=LACC1', 'requestType=PATIENT&patientID=L1', 'patientId=L1',
    `requestType=STUDY&studyUID=${uid.single}&patientID=L1`]) {
    const r = await launch(query);
    assert.equal(r.status, 302, `${query}: ${r.body}`);
    assert.equal(r.location, `/viewer?StudyInstanceUIDs=${uid.single}`, query);
  }
  const two = await launch(`studyUID=${uid.single},${uid.ct}`);
  assert.equal(two.location, `/viewer?StudyInstanceUIDs=${uid.single},${uid.ct}`);
});

test('a patient with several studies: the study list of the exact data source; narrowed by filters, the viewer on exactly those', async () => {
  assert.equal((await launch('patientID=L2')).location, `/?mrn=L2&datasources=${OHIF_EXACT_DATA_SOURCE}`);
  assert.equal((await launch('requestType=PATIENT&patientID=L2&mostRecentResults=1')).location, `/viewer?StudyInstanceUIDs=${uid.newer}`);
  assert.equal((await launch('patientID=L2&mostRecentResults=2')).location, `/viewer?StudyInstanceUIDs=${uid.newer},${uid.ct}`);
  assert.equal((await launch('patientID=L2&modalitiesInStudy=MR')).location, `/viewer?StudyInstanceUIDs=${uid.newer},${uid.older}`);
  assert.equal((await launch('patientID=L2&lowerDateTime=2023-01-01&upperDateTime=2023-12-31T23:59:59')).location, `/viewer?StudyInstanceUIDs=${uid.ct}`);
});

test('unknown study, accession or patient: a 404 page saying what was not found; a bad link: 400', async () => {
  const unknown = await launch('studyUID=1.2.826.0.1.3680043.99.404');
  assert.equal(unknown.status, 404);
  assert.match(unknown.type, /^text\/html/);
  assert.match(unknown.body, /<h2>Study not found<\/h2>/);
  assert.match(unknown.body, /No study for Study Instance UID 1\.2\.826\.0\.1\.3680043\.99\.404/);
  assert.match((await launch(`accessionNumber=LACC1,NOPE`)).body, /No study for accession number NOPE/);
  const patient = await launch('patientID=NOBODY^^^HOSP');
  assert.equal(patient.status, 404);
  assert.match(patient.body, /No study for patient NOBODY \(issuer HOSP\)/);
  assert.equal((await launch('patientID=L2&modalitiesInStudy=US')).status, 404);
  const bad = await launch('requestType=SERIES&studyUID=1.2');
  assert.equal(bad.status, 400);
  assert.match(bad.body, /requestType &quot;SERIES&quot; is not PATIENT or STUDY/);
});

test('409: a study of another patient than the one named; one Patient ID under two issuers without an issuer', async () => {
  const wrong = await launch(`studyUID=${uid.single}&patientID=L2`);
  assert.equal(wrong.status, 409);
  assert.match(wrong.body, new RegExp(`Study ${uid.single.replace(/\./g, '\\.')} is patient L1&#39;s`));
  // The same ID from two hospitals.
  const dual = async (studyInstanceUid: string, issuerOfPatientId: string) =>
    assert.equal((await t.archive.ingest.ingest(syntheticInstance({ patientId: 'DUP', issuerOfPatientId, studyInstanceUid }), { source: 'test' })).status, 'stored');
  await dual(uid.hospA, 'HOSPA');
  await dual(uid.hospB, 'HOSPB');
  const ambiguous = await launch('patientID=DUP');
  assert.equal(ambiguous.status, 409);
  assert.match(ambiguous.body, /Issuer HOSPA/);
  assert.match(ambiguous.body, /Issuer HOSPB/);
  assert.equal((await launch('patientID=DUP^^^HOSPA')).location, `/viewer?StudyInstanceUIDs=${uid.hospA}`);
  assert.equal((await launch('patientID=DUP&issuer=HOSPB')).location, `/viewer?StudyInstanceUIDs=${uid.hospB}`);
});

test('without a session: a browser goes to sign-in and back, an API client gets 401', async () => {
  const browser = await launch(`accessionNumber=LACC1`, anonymous);
  assert.equal(browser.status, 302);
  assert.equal(browser.location, `/login?next=${encodeURIComponent('/launch?accessionNumber=LACC1')}`);
  const expired = await launch(`accessionNumber=LACC1`, { ...anonymous, cookie: 'atrium_session=not-a-session' });
  assert.equal(expired.status, 302, 'a dead session too');
  const api = await fetch(`${base}/launch?accessionNumber=LACC1`, { headers: anonymous, redirect: 'manual' });
  assert.equal(api.status, 401);
  assert.match(api.headers.get('content-type') ?? '', /problem\+json/);
});

test('without the role: a 403 page (problem+json for an API client); a referring clinician: their own patients\' studies only', async () => {
  const refused = await launch(`studyUID=${uid.single}`, researcher);
  assert.equal(refused.status, 403);
  assert.match(refused.type, /^text\/html/);
  assert.match(refused.body, /<h2>Not allowed<\/h2>/);
  assert.match(refused.body, /grants study:read/);
  assert.equal((await fetch(`${base}/launch?studyUID=${uid.single}`, { headers: { ...researcher, accept: 'application/json' } })).headers.get('content-type'), 'application/problem+json; charset=utf-8');

  assert.equal((await launch(`studyUID=${uid.single}`, welby)).location, `/viewer?StudyInstanceUIDs=${uid.single}`);
  // L2 has three studies, one of which is Dr Welby's: the patient launch shows that one.
  assert.equal((await launch('patientID=L2', welby)).location, `/viewer?StudyInstanceUIDs=${uid.older}`);
  const notTheirs = await launch(`studyUID=${uid.newer}`, welby);
  assert.equal(notTheirs.status, 403);
  assert.match(notTheirs.body, /referring physician of/);
  assert.equal((await launch(`studyUID=${uid.older},${uid.newer}`, welby)).status, 403, 'a study launch shows all it names or nothing');
  // Not there at all: the same answer (otherwise it would tell which patients have images here).
  const unknown = await launch('patientID=NOBODY', welby);
  assert.equal(unknown.status, 403);
  assert.equal(unknown.body, (await launch('patientID=L22', welby)).body);
});

test('every launch is in the audit trail: who, which studies, the outcome and why', async () => {
  await launch(`accessionNumber=LACC1&viewerType=IHE_BIR`, welby);
  await launch('patientID=NOBODY', welby);
  await launch(`studyUID=${uid.single}`, researcher);
  await t.archive.audit.drain();
  const { items } = await t.archive.audit.search({ action: 'read' }, { limit: 500, offset: 0 });
  const launches = items.filter((r) => r.interface === 'ui' || r.query?.includes('studyUID='));
  const ok = launches.find((r) => r.principal.id === 'welby' && r.outcome === 'success' && r.query === 'accessionNumber=LACC1&viewerType=IHE_BIR');
  assert.ok(ok, JSON.stringify(launches));
  assert.equal(ok.interface, 'ui');
  assert.deepEqual(ok.studies.map((s) => [s.studyInstanceUid, s.patientId, s.accessionNumber]), [[uid.single, 'L1', 'LACC1']]);
  assert.match(ok.detail ?? '', /viewer launch \(STUDY\): 1 study, in the viewer/);
  const missed = launches.find((r) => r.principal.id === 'welby' && r.query === 'patientID=NOBODY');
  assert.equal(missed?.outcome, 'minor-failure');
  assert.deepEqual(missed?.patientIds, ['NOBODY']);
  const denied = launches.find((r) => r.principal.id === 'rex' && r.outcome === 'minor-failure');
  assert.match(denied?.outcomeReason ?? '', /^denied: .*grants study:read/);
  // One record per launch: the response hook writes none of its own.
  assert.equal(launches.filter((r) => r.principal.id === 'welby' && r.query === 'accessionNumber=LACC1&viewerType=IHE_BIR').length, 1);
});
