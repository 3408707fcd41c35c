/**
 * The AI round trip with test AI nodes that are independent processes (test/fixtures/ai-node/: DCMTK storescp,
 * and at the end of each study an SR built by dump2dcm and sent back by storescu under the node's AE title):
 * studies stored by storescu -> StudyStable (a clock moved past the quiet time) -> a routing rule's `ai` action
 * sends each to its node -> the SR comes back by C-STORE -> linked to the request -> the triage flag raises the
 * study in the reading worklist -> a report, then the radiologist's agreement -> the node's metrics (REST and
 * Prometheus). Also: a node without a clearance gives research results that raise nothing; a node that never
 * answers counts a timeout; a result for a study never sent, and one from an unknown AE, are handled.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestArchive } from '../../test/support/archive.ts';
import { collect, freePort, runTool, waitForPort } from '../../test/support/dcmtk.ts';
import { workflowNode, eventually } from '../../test/support/workflow.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';
import { createHttpServer } from '../http/server.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { readingOf } from '../reading/module.ts';
import { risOf } from '../ris/module.ts';
import { workflowOf } from '../workflow/module.ts';
import { AI_SEND_JOB } from '../workflow/routing.ts';
import { aiOf } from './module.ts';

const AI_NODE = fileURLToPath(new URL('../../test/fixtures/ai-node/ai-node.sh', import.meta.url));
const MIN = 60_000;

interface NodeProcess { port: number; child: ChildProcess; dir: string; log(): Promise<string> }

async function startAiNode(dir: string, aeTitle: string, reply: string, extra: string[] = []): Promise<NodeProcess> {
  const port = await freePort();
  const child = spawn(AI_NODE, ['--port', String(port), '--aet', aeTitle, '--dir', dir, '--reply', reply, ...extra], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  await waitForPort(port, child);
  return { port, child, dir, log: async () => await readFile(path.join(dir, 'respond.log'), 'utf8').catch(() => '') };
}

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) test(`AI round trip with test AI nodes (storescp + storescu) on ${engine}`, { timeout: 240_000 }, async (t) => {
  const ta = await createTestArchive(engine);
  const work = await mkdtemp(path.join(os.tmpdir(), 'atrium-ai-'));
  const children: ChildProcess[] = [];
  after(async () => {
    for (const c of children) { try { process.kill(-c.pid!, 'SIGTERM'); } catch { /* gone */ } }
    await ta.cleanup();
    await rm(work, { recursive: true, force: true });
  });
  const archive = ta.archive;
  const node = workflowNode(archive);
  after(() => node.stop());
  // The reading worklist on the same moved clock as StudyStable and the AI requests.
  readingOf(archive, { clock: () => workflowOf(archive).clock() });
  const dicom = await startDicomService(archive, { port: 0 });
  after(() => dicom.close());
  const app = await createHttpServer(archive);
  await app.ready();
  after(() => app.close());
  const api = async (method: string, url: string, body?: unknown) => {
    const res = await app.inject({ method: method as 'GET', url, headers: ta.authHeaders(body === undefined ? {} : { 'content-type': 'application/json' }), ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
    return { status: res.statusCode, body: res.headers['content-type']?.toString().includes('json') ? res.json() as any : res.body };
  };
  const atrium = `127.0.0.1:${dicom.port}:${archive.config.dicom.aeTitle}`;

  // The test studies, written as files and stored by storescu under the calling AE of their "modality".
  const study = (n: number) => `1.2.826.0.1.3680043.10.1447.${n}`;
  const X = study(10); const Y = study(11); const MRS = study(12); const CRS = study(13); const NEVER = study(14);
  const storescu = async (aet: string, studyUid: string, modality: string, accession: string, count = 2) => {
    const files: string[] = [];
    for (let i = 1; i <= count; i++) {
      const file = path.join(work, `${studyUid}-${i}.dcm`);
      await writeFile(file, await collect(syntheticInstance({ studyInstanceUid: studyUid, seriesInstanceUid: `${studyUid}.1`, sopInstanceUid: `${studyUid}.1.${i}`,
        accessionNumber: accession, patientId: `P-${accession}`, patientName: `AI^${accession}`, modality, rows: 16, columns: 16, seed: i })));
      files.push(file);
    }
    const r = await runTool('storescu', ['-aet', aet, '-aec', archive.config.dicom.aeTitle, '127.0.0.1', String(dicom.port), ...files], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.output);
  };
  // StudyStable once the moved clock passed the quiet time (the sweep job may take them first: either way).
  const stable = async (uids: string[]) => {
    await workflowOf(archive).stability.sweep();
    await eventually(async () => (await Promise.all(uids.map((u) => workflowOf(archive).stability.get(u)))).every((a) => a?.state === 'emitted'), `StudyStable of ${uids.join(', ')}`);
    await node.dispatch();
  };
  const ai = aiOf(archive);
  const nodeId = async (name: string) => (await ai.store.nodeByName(name))!.id;
  const worklist = async () => ((await api('GET', '/api/reading/worklist')).body.items as { studyInstanceUid: string; triage: string | null }[]);

  const cleared = await startAiNode(path.join(work, 'cleared'), 'AICLEAR', atrium, ['--finding', '274100004^SCT^Cerebral hemorrhage']);
  const research = await startAiNode(path.join(work, 'research'), 'AIRSRCH', atrium, ['--finding', '59282003^SCT^Pulmonary embolism']);
  const silent = await startAiNode(path.join(work, 'silent'), 'AISILENT', atrium, ['--silent']);
  children.push(cleared.child, research.child, silent.child);
  for (const [ae, n] of [['AICLEAR', cleared], ['AIRSRCH', research], ['AISILENT', silent]] as const) {
    // A node's peer may store: its results come back by C-STORE.
    await archive.peers.upsert({ aeTitle: ae, host: '127.0.0.1', port: n.port, operations: ['echo', 'store'] });
  }
  // The configured mapping serves every node after its own.
  (archive.config.sections as Record<string, unknown>).ai = { timeoutMinutes: 30, findings: [{ code: '59282003', scheme: 'SCT', flag: 'PE' }] };

  await t.test('the registry: a clinical node needs a clearance; nodes are audited', async () => {
    const noClearance = await api('POST', '/api/ai/nodes', { name: 'bad', vendor: 'V', version: '1', mode: 'clinical', endpoint: { type: 'dicom', aeTitle: 'AIRSRCH' } });
    assert.equal(noClearance.status, 400);
    assert.deepEqual(noClearance.body.problems.map((p: { path: string }) => p.path), ['mode']);
    const badClearance = await api('POST', '/api/ai/nodes', { name: 'bad', vendor: 'V', version: '1', clearance: { kind: 'fda-510k', number: '12', indication: '', modalities: [] }, endpoint: { type: 'ftp' } });
    assert.equal(badClearance.status, 400);
    assert.deepEqual(badClearance.body.problems.map((p: { path: string }) => p.path).sort(), ['clearance.indication', 'clearance.intendedUse', 'clearance.modalities', 'clearance.number', 'endpoint.type']);

    const a = await api('POST', '/api/ai/nodes', {
      name: 'cleared-ich', vendor: 'Test AI Vendor', product: 'ICH Triage', version: '2.1',
      clearance: { kind: 'fda-510k', number: 'K123456', indication: 'Suspected intracranial hemorrhage on non-contrast head CT', intendedUse: 'Triage and notification', modalities: ['CT'] },
      endpoint: { type: 'dicom', aeTitle: 'AICLEAR' }, findings: [{ code: '274100004', scheme: 'SCT', flag: 'ICH' }],
    });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    assert.equal(a.body.mode, 'clinical');
    assert.deepEqual(a.body.endpoint.callingAeTitles, ['AICLEAR'], 'answers under the AE title it listens on by default');
    const b = await api('POST', '/api/ai/nodes', { name: 'research-pe', vendor: 'Lab', version: '0.3', endpoint: { type: 'dicom', aeTitle: 'AIRSRCH' } });
    assert.equal(b.status, 201);
    assert.equal(b.body.mode, 'research', 'no clearance recorded: research mode');
    assert.equal((await api('POST', '/api/ai/nodes', { name: 'silent', vendor: 'Nobody', version: '1', endpoint: { type: 'dicom', aeTitle: 'AISILENT' }, timeoutMinutes: 10 })).status, 201);
    assert.equal((await api('POST', '/api/ai/nodes', { name: 'silent', vendor: 'X', version: '1', endpoint: { type: 'dicom', aeTitle: 'X' } })).status, 409, 'names are unique');
    await archive.audit.drain();
    const audited = (await archive.audit.search({ action: 'update' }, { limit: 100, offset: 0 })).items.filter((r) => JSON.stringify(r).includes('ai-node'));
    assert.equal(audited.length, 3, 'each registration is an audit record of the ai-node');

    for (const rule of [
      { name: 'ED head CT to ICH triage', trigger: 'study-stable', conditions: { modality: ['CT'], sourceAe: ['EDCT'] }, actions: [{ type: 'ai', node: 'cleared-ich' }] },
      { name: 'MR to the research node', trigger: 'study-stable', conditions: { modality: ['MR'] }, actions: [{ type: 'ai', node: 'research-pe' }] },
      { name: 'CR to the silent node', trigger: 'study-stable', conditions: { modality: ['CR'] }, actions: [{ type: 'ai', node: 'silent' }] },
    ]) assert.equal((await api('POST', '/api/workflow/rules', rule)).status, 201);
    const instanceAi = await api('POST', '/api/workflow/rules', { name: 'per instance', trigger: 'instance', conditions: {}, actions: [{ type: 'ai', node: '' }] });
    assert.deepEqual(instanceAi.body.problems.map((p: { path: string }) => p.path).sort(), ['actions.0.node', 'actions.0.type']);
  });

  await t.test('stable studies are sent by the rules; the SR comes back, is linked, and the flag raises the study', async () => {
    await storescu('WARDCT', X, 'CT', 'ACC-X');
    await storescu('MRSCAN', MRS, 'MR', 'ACC-MR');
    await storescu('CRROOM', CRS, 'CR', 'ACC-CR');
    await node.dispatch();
    node.advance(121_000);
    await stable([X, MRS, CRS]);
    node.advance(60_000);
    await storescu('EDCT', Y, 'CT', 'ACC-Y');
    await node.dispatch();
    node.advance(121_000);
    await stable([Y]);
    // The dry-run says what the ai action does.
    const dry = await api('GET', `/api/workflow/dry-run/${Y}`);
    assert.match(dry.body.rules.find((r: { rule: { name: string } }) => r.rule.name === 'ED head CT to ICH triage').actions[0].description, /AI node cleared-ich/);

    await eventually(async () => (await archive.jobs.list({ type: AI_SEND_JOB }, { limit: 100, offset: 0 })).items.every((j) => j.state === 'succeeded') , 'the ai.send jobs');
    const sent = await Promise.all([['cleared-ich', Y], ['research-pe', MRS], ['silent', CRS]].map(async ([n, s]) => ai.store.request(await nodeId(n), s)));
    assert.deepEqual(sent.map((r) => r?.state), ['sent', 'sent', 'sent']);
    assert.equal(await ai.store.request(await nodeId('cleared-ich'), X), null, 'the ward CT matched no AI rule');
    assert.equal((await worklist()).at(-1)!.studyInstanceUid, Y, 'before the flag, Y waited least: last');

    // Processing takes five minutes on the moved clock.
    node.advance(5 * MIN);
    await eventually(async () => {
      await node.dispatch();
      const [a, b] = [await ai.store.request(await nodeId('cleared-ich'), Y), await ai.store.request(await nodeId('research-pe'), MRS)];
      return a?.resultCount === 1 && b?.resultCount === 1;
    }, `the SRs back from the nodes (${await cleared.log()} / ${await research.log()})`, 60_000);

    const request = (await ai.store.request(await nodeId('cleared-ich'), Y))!;
    assert.equal(request.state, 'resulted');
    assert.equal(request.positive, true);
    assert.equal(request.flag, 'ICH');
    const results = (await api('GET', `/api/ai/studies/${Y}`)).body;
    assert.equal(results.results.length, 1);
    assert.equal(results.results[0].kind, 'sr');
    assert.equal(results.results[0].state, 'linked');
    assert.equal(results.results[0].requestId, request.id);
    assert.equal(results.results[0].research, false);
    assert.match(results.results[0].reason, /calling AE AICLEAR, same study/);
    assert.deepEqual(results.results[0].findings.filter((f: { flag: string | null }) => f.flag), [{ code: '274100004', scheme: 'SCT', meaning: 'Cerebral hemorrhage', present: true, flag: 'ICH' }]);
    // The SR is stored in the source study (the node kept its Study Instance UID).
    assert.equal((await archive.index.getStudy(Y))!.numberOfStudyRelatedInstances, 3);

    const list = await worklist();
    assert.equal(list[0].studyInstanceUid, Y, 'the flag raised it to the top');
    assert.equal(list[0].triage, 'AI: ICH (cleared-ich)');
    assert.deepEqual(list.filter((e) => e.triage).map((e) => e.studyInstanceUid), [Y], 'only the clinical node raises flags');
  });

  await t.test('research mode: the result is marked research and raises nothing', async () => {
    const mr = (await api('GET', `/api/ai/studies/${MRS}`)).body;
    assert.equal(mr.requests[0].research, true);
    assert.equal(mr.results[0].research, true);
    assert.equal(mr.requests[0].flag, 'PE', 'mapped by the configured ai.findings');
    assert.equal((await worklist()).find((e) => e.studyInstanceUid === MRS)!.triage, null);
  });

  await t.test('the next StudyStable (the result itself) sends nothing again', async () => {
    const periods = async (uid: string) => (await workflowOf(archive).stability.get(uid))!.periods;
    node.advance(121_000);
    await stable([Y, MRS]);
    assert.ok(await periods(Y) >= 2, 'the result started a new quiet period');
    const jobsOf = async (uid: string) => (await archive.jobs.list({ type: AI_SEND_JOB }, { limit: 100, offset: 0 })).items.filter((j) => (j.payload as { studyInstanceUid: string }).studyInstanceUid === uid);
    await eventually(async () => {
      await node.dispatch();
      const jobs = await jobsOf(MRS);
      return jobs.length >= 2 && jobs.every((j) => j.state === 'succeeded');
    }, 'the ai.send job of the next period');
    // The MR rule has no sourceAe condition: the study, last stored by the node, matches again and is not sent again.
    const later = (await jobsOf(MRS)).sort((a, b) => a.id - b.id).slice(1);
    assert.ok(later.every((j) => /already sent to AI node research-pe/.test(String((j.result as { skipped?: string } | null)?.skipped))), JSON.stringify(later.map((j) => j.result)));
    assert.equal((await api('GET', '/api/ai/requests')).body.total, 3, 'one request per study and node');
    // (The ED rule names the scanner's AE: once the study's last instance came from AICLEAR it does not match again.)
    assert.ok((await jobsOf(Y)).sort((a, b) => a.id - b.id).slice(1).every((j) => /already sent/.test(String((j.result as { skipped?: string } | null)?.skipped))));
  });

  await t.test('results that match no request are recorded as unmatched; an unknown AE is not an AI node', async () => {
    // The cleared node answers for a study nobody sent it (its own SR for a study Atrium never had).
    const srDump = (await readFile(new URL('../../test/fixtures/ai-node/sr-template.dump', import.meta.url), 'utf8'))
      .replace('@SOP_UID@', `${NEVER}.9.1`).replace('@SERIES_UID@', `${NEVER}.9`).replace('@STUDY_UID@', NEVER).replace('@FINDING_CODE@', '274100004').replace('@FINDING_SCHEME@', 'SCT')
      .replace('@PRESENCE_CODE@', '52101004').replace(/@[A-Z_]+@/g, 'X').replace(/\[X\]/g, '[]');
    await writeFile(path.join(work, 'never.dump'), srDump);
    assert.equal((await runTool('dump2dcm', ['+te', '-g', path.join(work, 'never.dump'), path.join(work, 'never.dcm')])).code, 0);
    for (const aet of ['AICLEAR', 'SOMEONE']) {
      const r = await runTool('storescu', ['-aet', aet, '-aec', archive.config.dicom.aeTitle, '127.0.0.1', String(dicom.port), path.join(work, 'never.dcm')]);
      assert.equal(r.code, 0, r.output);
      await node.dispatch();
    }
    const unmatched = (await api('GET', '/api/ai/results?state=unmatched')).body;
    assert.equal(unmatched.total, 1, 'the unknown AE stored an ordinary SR: not an AI result');
    assert.equal(unmatched.items[0].nodeId, await nodeId('cleared-ich'));
    assert.match(unmatched.items[0].reason, /never sent to it/);
  });

  await t.test('a report, then one click: the report confirms the flag', async () => {
    const before = await api('POST', `/api/ai/studies/${Y}/agreement`, { agreement: 'confirms' });
    assert.equal(before.status, 409, 'no report yet');
    assert.equal((await api('POST', `/api/ai/studies/${Y}/agreement`, { agreement: 'maybe' })).status, 400);
    assert.equal((await api('POST', `/api/ai/studies/${CRS}/agreement`, { agreement: 'confirms' })).status, 404, 'the silent node gave no result');
    const tech = { source: { kind: 'user' as const, ref: 'tech' }, principal: { kind: 'user' as const, id: 'tech', displayName: 'tech' }, interface: 'rest' as const };
    await risOf(archive).patients.upsertPatient(tech, { patientId: 'P-ACC-Y', issuerOfPatientId: '', patientName: 'AI^ACC-Y' });
    await risOf(archive).orders.placeOrder(tech, { patient: { patientId: 'P-ACC-Y', issuerOfPatientId: '' }, accessionNumber: 'ACC-Y', priority: 'ROUTINE',
      requestedProcedureDescription: 'CT head without contrast', studyInstanceUid: Y, steps: [{ stepId: 'SPS-Y', modality: 'CT' }] });
    const report = await api('POST', `/api/reading/worklist/${Y}/report`, { status: 'P', text: 'Acute left parietal intraparenchymal hemorrhage.' });
    assert.equal(report.status, 201, JSON.stringify(report.body));
    const agreed = await api('POST', `/api/ai/studies/${Y}/agreement`, { agreement: 'confirms' });
    assert.equal(agreed.status, 200, JSON.stringify(agreed.body));
    assert.equal(agreed.body.reportStatus, 'preliminary-report');
    assert.equal(agreed.body.requests[0].agreement.value, 'confirms');
    const radiologist = (await archive.security.createApiKey({ name: 'rad', roles: ['radiologist'] })).key;
    const tech2 = (await archive.security.createApiKey({ name: 'tech', roles: ['technologist'] })).key;
    const as = async (key: string, method: string, url: string, body?: unknown) => (await app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { payload: JSON.stringify(body) } : {}) })).statusCode;
    assert.equal(await as(radiologist, 'POST', `/api/ai/studies/${Y}/agreement`, { agreement: 'confirms' }), 200, 'radiologists record agreement');
    assert.equal(await as(radiologist, 'POST', '/api/ai/nodes', { name: 'x' }), 403, 'the registry is administrators\'');
    assert.equal(await as(tech2, 'POST', `/api/ai/studies/${Y}/agreement`, { agreement: 'overrides' }), 403);
  });

  await t.test('the node metrics: processing time, one result, positive rate 1, agreement; the silent node times out', async () => {
    const m = (await api('GET', `/api/ai/nodes/${await nodeId('cleared-ich')}/metrics`)).body;
    assert.equal(m.processingSeconds.count, 1);
    assert.ok(m.processingSeconds.median >= 300 && m.processingSeconds.median < 420, `sent -> result on the moved clock: ${m.processingSeconds.median} s`);
    assert.equal(m.results, 1);
    assert.equal(m.resultsPerStudy, 1);
    assert.equal(m.positiveRate, 1);
    assert.deepEqual(m.agreement, { confirms: 1, overrides: 0, rate: 1, awaiting: 0 });
    assert.equal(m.availability.rate, 1);
    assert.equal(m.timeouts, 0);
    assert.equal(m.unmatchedResults, 1);
    const r = (await api('GET', `/api/ai/nodes/${await nodeId('research-pe')}/metrics`)).body;
    assert.equal(r.research, true);
    assert.equal(r.positiveRate, 1);

    const s0 = (await api('GET', `/api/ai/nodes/${await nodeId('silent')}/metrics`)).body;
    assert.equal(s0.timeouts, 0, 'within its 10 minutes');
    assert.equal(s0.requests.pending, 1);
    node.advance(10 * MIN);
    const s1 = (await api('GET', `/api/ai/nodes/${await nodeId('silent')}/metrics`)).body;
    assert.equal(s1.timeouts, 1, 'no result after 10 minutes: a timeout');
    assert.equal(s1.requests.pending, 0);
    assert.equal(s1.results, 0);
    assert.equal(s1.positiveRate, null);

    const prom = String((await api('GET', '/metrics')).body);
    assert.match(prom, /atrium_ai_positive_rate\{node="cleared-ich"\} 1/);
    assert.match(prom, /atrium_ai_requests\{node="silent",state="timeout"\} 1/);
    assert.match(prom, /atrium_ai_agreement\{node="cleared-ich",verdict="confirms"\} 1/);
    assert.match(prom, /atrium_ai_processing_seconds\{node="cleared-ich",quantile="0.5"\} \d+/);
  });
});
