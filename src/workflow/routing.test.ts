/**
 * Routing end to end with real peers: the test corpus stored into Atrium by DCMTK storescu under several
 * calling AE titles; rules (made through the REST API) send exactly the expected studies to a DCMTK storescp
 * (C-STORE) and to a second Atrium (STOW-RS); the dry-run agrees with what was queued; a rule change is
 * audited and versioned; with the destination down the forward job retries and delivers once it is up.
 * StudyStable comes from a clock moved past the quiet time, never from sleeping.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { startStorescp, runTool, freePort, filesIn, killAllChildren, type Storescp } from '../../test/support/dcmtk.ts';
import { workflowNode, eventually, type WorkflowNode } from '../../test/support/workflow.ts';
import { startDicomService, type DicomService } from '../dimse/services/dicom-service.ts';
import { createHttpServer } from '../http/server.ts';
import { sectionOf } from '../config/config.ts';
import { workflowConfig } from './config.ts';
import { workflowOf } from './module.ts';
import { SEND_JOB } from '../exchange/dicom-jobs.ts';
import { STOW_JOB } from './routing.ts';

const CORPUS = new URL('../../../shared/testdata/dicom/', import.meta.url).pathname;
const DIRS = path.join(CORPUS, 'dicomdirtests');
const MR_A = '1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.1'; // 11 instances
const MR_B = '1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.133'; // 4
const MR_C = '1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.427'; // 2
const CT_SMALL = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const CT_MULTI = '1.3.6.1.4.1.5962.1.1.0.0.0.1194734704.16302.0.1'; // 7
const CR_SPINE = '1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1'; // 3, body part CSPINE
const SR = '1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.2';

let a: TestArchive;
let b: TestArchive;
let node: WorkflowNode;
let dicom: DicomService;
let appA: FastifyInstance;
let appB: FastifyInstance;
let scp: Storescp;
let dir: string;

async function api(method: string, url: string, body?: unknown) {
  const res = await appA.inject({ method: method as 'GET', url, headers: a.authHeaders(body === undefined ? {} : { 'content-type': 'application/json' }), ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
  return { status: res.statusCode, body: res.json() as any };
}

async function storescu(aet: string, files: string[], extra: string[] = []) {
  const r = await runTool('storescu', [...extra, '-aet', aet, '-aec', a.archive.config.dicom.aeTitle, '127.0.0.1', String(dicom.port), ...files], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.output);
}

async function studiesAt(dirPath: string): Promise<Map<string, number>> {
  const studies = new Map<string, number>();
  // storescp's file names do not carry the study: read each file's Study Instance UID with dcmdump.
  for (const file of await filesIn(dirPath)) {
    const r = await runTool('dcmdump', ['-q', '+P', 'StudyInstanceUID', file]);
    const uid = /\[([0-9.]+)\]/.exec(r.stdout)?.[1] ?? '?';
    studies.set(uid, (studies.get(uid) ?? 0) + 1);
  }
  return studies;
}

async function forwardJobs() {
  const all = [];
  for (const type of [SEND_JOB, STOW_JOB]) all.push(...(await a.archive.jobs.list({ type }, { limit: 1000, offset: 0 })).items);
  return all;
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-routing-'));
  a = await createTestArchive('sqlite+fs');
  b = await createTestArchive('sqlite+fs');
  appB = await createHttpServer(b.archive);
  const bUrl = await appB.listen({ host: '127.0.0.1', port: 0 });
  // The second Atrium as a DICOMweb destination of the first (the test fetch carries the test admin key).
  sectionOf(a.archive.config, workflowConfig).dicomwebDestinations.push({ name: 'atrium-b', url: `${bUrl}/dicom-web`, tokenEnv: null, transferSyntaxes: [], timeoutSeconds: 60 });
  dicom = await startDicomService(a.archive, { port: 0 });
  appA = await createHttpServer(a.archive);
  await appA.ready();
  await mkdir(path.join(dir, 'scp'));
  scp = await startStorescp(path.join(dir, 'scp'));
  await a.archive.peers.upsert({ aeTitle: scp.aeTitle, host: '127.0.0.1', port: scp.port, operations: [] });
  node = workflowNode(a.archive);
});

after(async () => {
  await node?.stop();
  killAllChildren();
  await scp?.stop();
  await dicom?.close();
  await appA?.close();
  await appB?.close();
  await a?.cleanup();
  await b?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

test('rules over the corpus send exactly the expected studies to storescp (C-STORE) and a second Atrium (STOW-RS)', async () => {
  const rules = [
    { name: 'CT to the workstation', trigger: 'study-stable', conditions: { modality: ['ct'] }, actions: [{ type: 'dicom', destination: scp.aeTitle }] },
    { name: 'MR from the MODALITY scanners to B', trigger: 'study-stable', conditions: { modality: ['MR'], sourceAe: ['MODALITY*'] }, actions: [{ type: 'dicomweb', destination: 'atrium-b' }] },
    { name: 'Spines to B', trigger: 'study-stable', conditions: { bodyPart: ['c*spine', 'L?SPINE'] }, actions: [{ type: 'dicomweb', destination: 'atrium-b' }] },
    { name: 'SR each instance', trigger: 'instance', conditions: { modality: ['SR'] }, actions: [{ type: 'dicom', destination: scp.aeTitle }] },
    { name: 'Nuclear medicine nowhere', trigger: 'study-stable', conditions: { modality: ['NM'] }, actions: [{ type: 'dicom', destination: scp.aeTitle }] },
    { name: 'Everything, disabled', trigger: 'study-stable', enabled: false, conditions: {}, actions: [{ type: 'dicom', destination: scp.aeTitle }] },
  ];
  for (const rule of rules) {
    const res = await api('POST', '/api/workflow/rules', rule);
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }
  // A rule with mistakes is refused with every problem and the field it is in.
  const bad = await api('POST', '/api/workflow/rules', { name: '', trigger: 'sometimes', conditions: { modality: ['C T'], colour: ['red'] }, actions: [{ type: 'ftp' }] });
  assert.equal(bad.status, 400);
  assert.deepEqual(bad.body.problems.map((p: { path: string }) => p.path).sort(), ['actions.0.type', 'conditions.colour', 'conditions.modality.0', 'name', 'trigger']);

  await storescu('MODALITY1', [...['MR1/5641', 'MR2/6273', 'MR2/6605', 'MR2/6935', 'MR700/4467', 'MR700/4528', 'MR700/4558', 'MR700/4588', 'MR700/4618', 'MR700/4648', 'MR700/4678', 'MR1/15820', 'MR2/15970'].map((f) => path.join(DIRS, '98892003', f))]);
  await storescu('OTHERAE', ['MR1/4919', 'MR2/4950', 'MR2/4981', 'MR2/5011'].map((f) => path.join(DIRS, '98892003', f)));
  await storescu('CTSCANNER', [path.join(CORPUS, 'CT_small.dcm'), ...['CT2N/6293', 'CT2N/6924', 'CT5N/2062', 'CT5N/2392', 'CT5N/2693', 'CT5N/3023', 'CT5N/3353'].map((f) => path.join(DIRS, '98892001', f)), path.join(CORPUS, 'test-SR.dcm')]);
  await storescu('OTHERAE', ['CR1/6154', 'CR2/6247', 'CR3/6278'].map((f) => path.join(DIRS, '77654033', f)));
  await node.dispatch();

  // Before the quiet time: only the instance rule has acted (the SR), no study is stable.
  const wf = workflowOf(a.archive);
  assert.equal(await wf.stability.sweep(), 0);
  const early = await forwardJobs();
  assert.deepEqual(early.map((j) => (j.payload as { rule: { name: string } }).rule.name), ['SR each instance']);

  node.advance(121_000);
  assert.equal(await wf.stability.sweep(), 7, 'seven studies became stable');
  assert.equal(await wf.stability.sweep(), 0, 'once per quiet period');
  await node.dispatch();
  await eventually(async () => (await forwardJobs()).every((j) => j.state === 'succeeded' || j.state === 'failed'), 'the forward jobs to finish');
  const jobs = await forwardJobs();
  assert.deepEqual(jobs.filter((j) => j.state !== 'succeeded').map((j) => j.lastError), []);
  assert.equal(jobs.length, 6, 'SR + 2 CT studies to storescp, 2 MR studies and the spine study to B');

  const received = await studiesAt(path.join(dir, 'scp'));
  assert.deepEqual(Object.fromEntries(received), { [CT_SMALL]: 1, [CT_MULTI]: 7, [SR]: 1 });
  const firstFiles = (await filesIn(path.join(dir, 'scp'))).length;
  const atB = new Map((await b.archive.index.listStudies({}, { limit: 100, offset: 0 })).items.map((s) => [s.studyInstanceUid, s.numberOfStudyRelatedInstances]));
  assert.deepEqual(Object.fromEntries(atB), { [MR_A]: 11, [MR_C]: 2, [CR_SPINE]: 3 });

  // The dry-run says what happened: for each study, the rules it matches are the rules that queued its jobs.
  for (const study of [MR_A, MR_B, MR_C, CT_SMALL, CT_MULTI, CR_SPINE, SR]) {
    const dry = await api('GET', `/api/workflow/dry-run/${study}`);
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    const would = dry.body.rules.filter((r: { matched: boolean }) => r.matched).map((r: { rule: { id: number } }) => r.rule.id).sort();
    const did = [...new Set(dry.body.triggered.map((t: { ruleId: number }) => t.ruleId))].sort();
    assert.deepEqual(would, did, `dry-run of ${study}`);
  }
  const dryMrB = await api('GET', `/api/workflow/dry-run/${MR_B}`);
  const mrRule = dryMrB.body.rules.find((r: { rule: { name: string } }) => r.rule.name === 'MR from the MODALITY scanners to B');
  assert.deepEqual(mrRule.unmet.map((u: { condition: string }) => u.condition), ['sourceAe'], 'the dry-run says why a rule does not match');
  assert.equal(dryMrB.body.facts.source, 'dimse:OTHERAE');

  // A later instance starts a new quiet period: one more StudyStable, one more forward of that study.
  const another = path.join(dir, 'CT_small_new_instance.dcm');
  await copyFile(path.join(CORPUS, 'CT_small.dcm'), another);
  const modified = await runTool('dcmodify', ['-nb', '-gin', another]);
  assert.equal(modified.code, 0, modified.output);
  await storescu('CTSCANNER', [another]);
  await node.dispatch();
  node.advance(121_000);
  await wf.stability.sweep();
  await eventually(async () => (await wf.stability.get(CT_SMALL))?.periods === 2, 'a second quiet period');
  await node.dispatch();
  await eventually(async () => (await forwardJobs()).filter((j) => j.state === 'succeeded').length === 7, 'the second forward of the CT study');
  assert.equal((await filesIn(path.join(dir, 'scp'))).length, firstFiles + 1, 'the study again, with its new instance');
});

test('a rule change is versioned and audited; disabling stops it; older versions stay readable', async () => {
  const created = await api('POST', '/api/workflow/rules', { name: 'US to workstation', trigger: 'study-stable', conditions: { modality: ['US'] }, actions: [{ type: 'dicom', destination: scp.aeTitle }] });
  const id = created.body.id;
  const changed = await api('PUT', `/api/workflow/rules/${id}?version=1`, { name: 'US to workstation', trigger: 'study-stable', conditions: { modality: ['US', 'MG'] }, actions: [{ type: 'dicom', destination: scp.aeTitle }] });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  assert.equal(changed.body.version, 2);
  const stale = await api('PUT', `/api/workflow/rules/${id}?version=1`, { name: 'US to workstation', trigger: 'study-stable', conditions: {}, actions: [{ type: 'dicom', destination: scp.aeTitle }] });
  assert.equal(stale.status, 409, 'a change on top of an old version is refused');
  assert.equal((await api('POST', `/api/workflow/rules/${id}/disable`)).body.enabled, false);
  assert.equal((await api('DELETE', `/api/workflow/rules/${id}`)).status, 200);
  const detail = await api('GET', `/api/workflow/rules/${id}`);
  assert.deepEqual(detail.body.versions.map((v: { version: number; change: string }) => `${v.version} ${v.change}`), ['4 deleted', '3 disabled', '2 updated', '1 created']);
  const v1 = await api('GET', `/api/workflow/rules/${id}/versions/1`);
  assert.deepEqual(v1.body.definition.conditions, { modality: ['US'] });
  assert.equal(v1.body.changedBy.displayName, 'test administrator');
  assert.ok(!(await api('GET', '/api/workflow/rules')).body.items.some((r: { id: number }) => r.id === id), 'a deleted rule is not listed');

  await a.archive.audit.drain();
  const records = (await a.archive.audit.search({ action: 'update' }, { limit: 100, offset: 0 })).items
    .filter((r) => r.objects.some((o) => o.type === 'routing-rule' && o.id === String(id)));
  assert.deepEqual(records.map((r) => r.objects[0].change).reverse(), ['created', 'updated', 'disabled', 'deleted']);
  assert.ok(records.every((r) => r.principal.displayName === 'test administrator' && r.interface === 'rest'));
});

test('with the destination down, the forward job retries, and delivers once it is up', async () => {
  const port = await freePort();
  await a.archive.peers.upsert({ aeTitle: 'LATER', host: '127.0.0.1', port, operations: [] });
  const rule = await api('POST', '/api/workflow/rules', { name: 'MR to LATER', trigger: 'study-stable', conditions: { modality: ['MR'], sourceAe: ['LATEMR'] }, actions: [{ type: 'dicom', destination: 'LATER' }] });
  assert.equal(rule.status, 201);
  await storescu('LATEMR', [path.join(CORPUS, 'MR_small.dcm')]);
  await node.dispatch();
  node.advance(121_000);
  // The sweep job queued when the instance came is due by the moved clock: it may have run already.
  await workflowOf(a.archive).stability.sweep();
  await eventually(async () => (await workflowOf(a.archive).stability.get('1.3.6.1.4.1.5962.1.2.4.20040826185059.5457'))?.state === 'emitted', 'StudyStable');
  await node.dispatch();
  const mine = async () => (await a.archive.jobs.list({ type: SEND_JOB }, { limit: 1000, offset: 0 })).items.filter((j) => (j.payload as { destination: string }).destination === 'LATER');
  await eventually(async () => { const [j] = await mine(); return !!j && j.attempts >= 1 && j.state === 'queued'; }, 'a failed first attempt');
  const [failed] = await mine();
  assert.match(failed.lastError ?? '', /ECONNREFUSED|cannot connect|connect/i);
  assert.ok(new Date(failed.runAt).getTime() > Date.now(), 'retried later, with backoff');

  await mkdir(path.join(dir, 'later'));
  const later = await startStorescp(path.join(dir, 'later'), { aeTitle: 'LATER', port });
  try {
    await a.archive.jobs.retry(failed.id); // due now instead of after its backoff
    node.runner.wake();
    await eventually(async () => (await mine())[0].state === 'succeeded', 'the job to deliver');
    const [done] = await mine();
    assert.equal(done.attempts, 2);
    assert.equal((await filesIn(path.join(dir, 'later'))).length, 1);
  } finally {
    await later.stop();
  }
  // The send is audited in the name of the rule that queued it.
  await a.archive.audit.drain();
  const exports = (await a.archive.audit.search({ action: 'export' }, { limit: 100, offset: 0 })).items.filter((r) => r.destination?.aeTitle === 'LATER');
  assert.ok(exports.some((r) => r.outcome === 'serious-failure') && exports.some((r) => r.outcome === 'success'));
  assert.ok(exports.every((r) => r.principal.displayName === 'routing rule "MR to LATER" v1'));
});

test('a destination that takes only uncompressed syntaxes gets the stored JPEG transcoded, when the rule says so', async () => {
  await mkdir(path.join(dir, 'plain'));
  const plain = await startStorescp(path.join(dir, 'plain'), { aeTitle: 'PLAINSCP', uncompressedOnly: true });
  try {
    await a.archive.peers.upsert({ aeTitle: 'PLAINSCP', host: '127.0.0.1', port: plain.port, operations: [] });
    const rule = await api('POST', '/api/workflow/rules', { name: 'JPEG to a plain viewer', trigger: 'instance', conditions: { sourceAe: ['JPEGSENDER'] },
      actions: [{ type: 'dicom', destination: 'PLAINSCP', transferSyntaxes: ['1.2.840.10008.1.2.1'] }] });
    assert.equal(rule.status, 201);
    // -xy: storescu proposes JPEG Baseline, so Atrium stores it compressed.
    await storescu('JPEGSENDER', [path.join(CORPUS, 'SC_rgb_jpeg_dcmtk.dcm')], ['-xy']);
    await node.dispatch();
    const mine = async () => (await a.archive.jobs.list({ type: SEND_JOB }, { limit: 1000, offset: 0 })).items.filter((j) => (j.payload as { destination: string }).destination === 'PLAINSCP');
    await eventually(async () => { const [j] = await mine(); return !!j && (j.state === 'succeeded' || j.state === 'failed' || j.attempts > 1); }, 'the transcoding send');
    const [job] = await mine();
    assert.equal(job.state, 'succeeded', job.lastError ?? '');
    const [file] = await filesIn(path.join(dir, 'plain'));
    const ts = await runTool('dcmdump', ['-q', '+P', 'TransferSyntaxUID', file]);
    assert.match(ts.stdout, /LittleEndianExplicit|1\.2\.840\.10008\.1\.2\.1\b/);
  } finally {
    await plain.stop();
  }
});

test('STOW-RS to a destination that is down is retried, and delivered once it answers', async () => {
  const port = await freePort();
  sectionOf(a.archive.config, workflowConfig).dicomwebDestinations.push({ name: 'late-b', url: `http://127.0.0.1:${port}/dicom-web`, tokenEnv: null, transferSyntaxes: [], timeoutSeconds: 30 });
  const rule = await api('POST', '/api/workflow/rules', { name: 'SR to late B', trigger: 'instance', conditions: { modality: ['SR'], sourceAe: ['LATESR'] }, actions: [{ type: 'dicomweb', destination: 'late-b' }] });
  assert.equal(rule.status, 201);
  await storescu('LATESR', [path.join(CORPUS, 'reportsi.dcm')]);
  await node.dispatch();
  const mine = async () => (await a.archive.jobs.list({ type: STOW_JOB }, { limit: 1000, offset: 0 })).items.filter((j) => (j.payload as { destination: string }).destination === 'late-b');
  await eventually(async () => { const [j] = await mine(); return !!j && j.attempts >= 1 && j.state === 'queued'; }, 'a failed first STOW-RS');
  const [failed] = await mine();
  assert.match(failed.lastError ?? '', /STOW-RS to http:\/\/127\.0\.0\.1:\d+\/dicom-web\/studies failed/);

  // The second Atrium comes up at that address.
  const late = await createHttpServer(b.archive);
  await late.listen({ host: '127.0.0.1', port });
  try {
    await a.archive.jobs.retry(failed.id);
    node.runner.wake();
    await eventually(async () => (await mine())[0].state === 'succeeded', 'the STOW-RS to deliver');
    const [uid] = (failed.payload as { sopInstanceUids: string[] }).sopInstanceUids;
    assert.ok(await b.archive.index.findInstance(uid), 'the instance is at B');
  } finally {
    await late.close();
  }
});

test('a forward that cannot succeed ends failed (the dead letter) in /api/jobs, and the dry-run warned of it', async () => {
  const settings = sectionOf(a.archive.config, workflowConfig);
  const attempts = settings.forwardMaxAttempts;
  settings.forwardMaxAttempts = 2;
  try {
    const rule = await api('POST', '/api/workflow/rules', { name: 'To a destination nobody configured', trigger: 'instance', conditions: { sourceAe: ['NOWHERESR'] }, actions: [{ type: 'dicomweb', destination: 'nowhere' }, { type: 'dicom', destination: 'NOPEER' }] });
    assert.equal(rule.status, 201);
    const sr = path.join(dir, 'another-sr.dcm');
    await copyFile(path.join(CORPUS, 'reportsi.dcm'), sr);
    assert.equal((await runTool('dcmodify', ['-nb', '-gin', '-gst', sr])).code, 0);
    await storescu('NOWHERESR', [sr]);
    await node.dispatch();
    const listed = async () => (await api('GET', `/api/jobs?state=failed`)).body.items.filter((j: { payload: { rule?: { id: number } } }) => j.payload.rule?.id === rule.body.id);
    await eventually(async () => (await listed()).length === 2, 'both forwards failed');
    const failed = await listed();
    assert.deepEqual(failed.map((j: { type: string }) => j.type).sort(), [SEND_JOB, STOW_JOB]);
    assert.ok(failed.every((j: { attempts: number }) => j.attempts === 1), 'a missing destination is not retried');
    assert.match(failed.find((j: { type: string }) => j.type === STOW_JOB).lastError, /no DICOMweb destination nowhere/);
    const study = failed.find((j: { type: string }) => j.type === STOW_JOB).payload.studyInstanceUid;
    const dry = await api('GET', `/api/workflow/dry-run/${study}`);
    const mine = dry.body.rules.find((r: { rule: { id: number } }) => r.rule.id === rule.body.id);
    assert.deepEqual(mine.actions.map((x: { warning?: string }) => x.warning), ['no DICOMweb destination nowhere is configured (workflow.dicomwebDestinations)', 'no DICOM peer NOPEER is configured']);
  } finally {
    settings.forwardMaxAttempts = attempts;
  }
});
