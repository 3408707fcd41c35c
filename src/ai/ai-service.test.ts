/**
 * The AI service against its store on SQLite and PostgreSQL, with the transports faked: the send job's
 * request, attempts and failures; results linked by STOW-RS (Manufacturer = the node's vendor), by a
 * referenced study, refused when ambiguous; a flag kept pending until the study is on the worklist; and the
 * pure parts (coded findings both ways, node validation, metrics).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { openTestDatabase } from '../../test/support/postgres.ts';
import { runTool } from '../../test/support/dcmtk.ts';
import { AtriumError } from '../errors.ts';
import type { DeliveredEvent } from '../events/event-map.ts';
import type { Job } from '../ports/job-queue.ts';
import type { AiSendPayload } from '../workflow/routing.ts';
import { AiService } from './ai-service.ts';
import { flagsOf, readResult } from './findings.ts';
import { nodeMetrics, percentile } from './metrics.ts';
import { validateNode } from './node.ts';
import { SqlAiStore } from './sql-ai-store.ts';

const TEMPLATE = new URL('../../test/fixtures/ai-node/sr-template.dump', import.meta.url);
const COMPREHENSIVE_SR = '1.2.840.10008.5.1.4.1.1.88.33';
const code = (v: string, s: string, m: string) => ({ '00080100': { vr: 'SH', Value: [v] }, '00080102': { vr: 'SH', Value: [s] }, '00080104': { vr: 'LO', Value: [m] } });
const item = (valueType: string, concept: object, value?: object, children: object[] = []) => ({
  '0040A040': { vr: 'CS', Value: [valueType] }, '0040A043': { vr: 'SQ', Value: [concept] }, ...(value ? { '0040A168': { vr: 'SQ', Value: [value] } } : {}),
  ...(children.length ? { '0040A730': { vr: 'SQ', Value: children } } : {}),
});

test('coded findings: the finding as the value (negated by an Absent child) and as the concept (Present / Absent)', () => {
  const mappings = [{ code: '274100004', scheme: 'SCT', flag: 'ICH' }, { code: '59282003', scheme: 'SCT', flag: 'PE' }, { code: '233604007', scheme: 'SCT', flag: 'Pneumonia' }];
  const ds = {
    '0020000D': { vr: 'UI', Value: ['1.2.3'] }, '00080070': { vr: 'LO', Value: ['Vendor'] },
    '0040A375': { vr: 'SQ', Value: [{ '0020000D': { vr: 'UI', Value: ['1.2.4'] } }] },
    '0040A730': { vr: 'SQ', Value: [
      item('CODE', code('121071', 'DCM', 'Finding'), code('274100004', 'SCT', 'Cerebral hemorrhage')),
      item('CODE', code('121071', 'DCM', 'Finding'), code('233604007', 'SCT', 'Pneumonia'), [item('CODE', code('121432', 'DCM', 'Presence'), code('2667000', 'SCT', 'Absent'))]),
      item('CONTAINER', code('125007', 'DCM', 'Measurement Group'), undefined, [item('CODE', code('59282003', 'SCT', 'Pulmonary embolism'), code('2667000', 'SCT', 'Absent'))]),
    ] },
  };
  const read = readResult(ds as never, mappings);
  assert.equal(read.studyInstanceUid, '1.2.3');
  assert.deepEqual(read.referencedStudies, ['1.2.4']);
  assert.deepEqual(read.findings.map((f) => [f.code, f.present, f.flag]), [['274100004', true, 'ICH'], ['233604007', false, 'Pneumonia'], ['59282003', false, 'PE']]);
  assert.deepEqual(flagsOf(read.findings), ['ICH']);
  assert.deepEqual(flagsOf(readResult(ds as never, []).findings), [], 'nothing mapped: no flag');
});

test('node validation: clearance fields per kind, research without one, endpoint', () => {
  const base = { name: 'n', vendor: 'V', version: '1', endpoint: { type: 'dicom', aeTitle: 'AI1', callingAeTitles: ['AI1_SCU'] } };
  const ce = validateNode({ ...base, clearance: { kind: 'ce-mdr', indication: 'x', intendedUse: 'y', modalities: ['ct'] } });
  assert.deepEqual(ce.problems.map((p) => p.path), ['clearance.ceClass']);
  const ok = validateNode({ ...base, clearance: { kind: 'ce-mdr', ceClass: 'IIa', indication: 'x', intendedUse: 'y', modalities: ['ct'] } });
  assert.equal(ok.node?.mode, 'clinical');
  assert.deepEqual(ok.node?.clearance?.modalities, ['CT']);
  assert.deepEqual(ok.node?.endpoint, { type: 'dicom', aeTitle: 'AI1', callingAeTitles: ['AI1_SCU'] });
  assert.equal(validateNode(base).node?.mode, 'research');
  assert.deepEqual(validateNode({ ...base, colour: 'red', timeoutMinutes: 0, findings: [{ code: 'x' }] }).problems.map((p) => p.path).sort(), ['colour', 'findings.0.flag', 'findings.0.scheme', 'timeoutMinutes']);
});

test('metrics: percentiles, timeouts (late results too), availability', () => {
  assert.equal(percentile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(percentile([], 0.9), null);
  const r = (id: number, sentAt: string | null, firstResultAt: string | null, extra: object = {}) => ({
    id, nodeId: 1, studyInstanceUid: `s${id}`, rule: null, jobId: null, research: false, state: firstResultAt ? 'resulted' : sentAt ? 'sent' : 'failed', queuedAt: '2026-01-01T00:00:00Z',
    sentAt, attempts: 1, failedAttempts: sentAt ? 0 : 1, lastError: sentAt ? null : 'refused', firstResultAt, resultCount: firstResultAt ? 1 : 0, positive: firstResultAt ? id === 1 : null,
    flag: null, triagePending: false, agreement: null, ...extra,
  }) as never;
  const m = nodeMetrics({ name: 'n', mode: 'clinical' }, [
    r(1, '2026-01-01T00:00:00Z', '2026-01-01T00:02:00Z'), r(2, '2026-01-01T00:00:00Z', '2026-01-01T00:40:00Z'), r(3, '2026-01-01T00:00:00Z', null), r(4, null, null),
  ], 0, new Date('2026-01-01T01:00:00Z'), 30);
  assert.deepEqual(m.processingSeconds, { count: 2, median: 1260, p90: 2172, mean: 1260, max: 2400 });
  assert.equal(m.timeouts, 2, 'one never answered, one answered after 40 minutes');
  assert.equal(m.late, 1);
  assert.equal(m.failures, 1);
  assert.equal(m.positiveRate, 0.5);
  assert.deepEqual(m.availability, { attempts: 4, failedAttempts: 1, rate: 0.75, lastError: 'refused' });
});

for (const engine of ['sqlite', 'postgres'] as const) test(`the AI service on ${engine}: sending, STOW-RS and referenced-study linking, pending triage`, async (t) => {
  const db = await openTestDatabase(engine);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-ai-svc-'));
  after(async () => { await db.cleanup(); await rm(dir, { recursive: true, force: true }); });
  const [S1, S2, S3, S9, SOTHER] = ['901', '902', '903', '999', '909'].map((n) => `1.2.826.0.1.3680043.10.1447.${n}`);
  const store = new SqlAiStore(db.database);
  let now = Date.parse('2026-05-01T10:00:00Z');
  const triage: [string, string | null][] = [];
  let onWorklist = false;
  let sendFails = 1;
  const files = new Map<string, string>();
  const ai = new AiService({
    store, index: { getStudy: async () => null } as never, orderStatus: async () => null, settings: () => ({ timeoutMinutes: 30, findings: [{ code: '274100004', scheme: 'SCT', flag: 'ICH' }] }),
    clock: () => new Date(now), log: pino({ level: 'silent' }),
    reading: { setTriage: async (s, v) => { if (!onWorklist) throw new AtriumError('not-found', 'not on the worklist'); triage.push([s, v]); } },
    openInstance: async (uid) => ({ bytes: createReadStream(files.get(uid)!) }),
    send: async () => { if (sendFails-- > 0) throw new Error('connect ECONNREFUSED'); return {}; },
    stow: async () => { if (sendFails-- > 0) throw new Error('connect ECONNREFUSED'); return {}; },
  });
  const sr = async (sop: string, study: string, manufacturer: string, extra = '') => {
    const text = (await readFile(TEMPLATE, 'utf8')).replace('@SOP_UID@', sop).replace('@SERIES_UID@', `${sop}.0`).replace('@STUDY_UID@', study).replace('@VENDOR@', manufacturer)
      .replace('@FINDING_CODE@', '274100004').replace('@FINDING_SCHEME@', 'SCT').replace('@FINDING_MEANING@', 'Cerebral hemorrhage').replace('@PRESENCE_CODE@', '52101004')
      .replace(/@[A-Z_]+@/g, '').concat(extra);
    await writeFile(path.join(dir, `${sop}.dump`), text);
    const r = await runTool('dump2dcm', ['+te', '-g', path.join(dir, `${sop}.dump`), path.join(dir, `${sop}.dcm`)]);
    assert.equal(r.code, 0, r.output);
    files.set(sop, path.join(dir, `${sop}.dcm`));
  };
  const stored = (sop: string, study: string, source: string, sopClassUid = COMPREHENSIVE_SR): DeliveredEvent<'InstanceStored'> => ({
    id: 1, type: 'InstanceStored', attempt: 1, createdAt: new Date(now).toISOString(),
    payload: { sopInstanceUid: sop, sopClassUid, seriesInstanceUid: `${sop}.0`, studyInstanceUid: study, patientId: 'P', source },
  });
  const job = (id: number, node: string, study: string, attempts = 1, maxAttempts = 3): Job<AiSendPayload> => ({
    id, type: 'ai.send', payload: { node, studyInstanceUid: study, rule: { id: 7, name: 'r', version: 1 } as never }, state: 'running', attempts, maxAttempts, runAt: '', lastError: null,
    progress: null, result: null, createdAt: '', updatedAt: '', lockedBy: null, lockedUntil: null,
  });
  const context = { heartbeat: async () => true, signal: new AbortController().signal };
  const make = async (name: string, vendor: string, endpoint: object) => {
    const checked = validateNode({ name, vendor, version: '1', clearance: { kind: 'fda-510k', number: 'K000001', indication: 'i', intendedUse: 'u', modalities: ['CT'] }, endpoint });
    return await store.createNode(checked.node!, 'admin', new Date(now));
  };
  const web = await make('web-ai', 'Vendor A', { type: 'dicomweb', destination: 'cloud' });

  await t.test('the send job: unknown and disabled nodes fail for good; a refused attempt is counted, the retry sends; a second job for the same study sends nothing', async () => {
    await assert.rejects(ai.sendJob(job(1, 'nobody', S1), context), (e: Error & { retryable?: boolean }) => e.retryable === false && /no AI node "nobody"/.test(e.message));
    const off = await make('off', 'V', { type: 'dicom', aeTitle: 'OFF' });
    await store.updateNode(off.id, { ...off, enabled: false }, 'admin', new Date(now));
    await assert.rejects(ai.sendJob(job(2, 'off', S1), context), /disabled/);
    await assert.rejects(ai.sendJob(job(3, 'web-ai', S1, 1), context), /ECONNREFUSED/);
    assert.equal((await store.request(web.id, S1))!.state, 'queued');
    assert.deepEqual(await ai.sendJob(job(3, 'web-ai', S1, 2), context), { request: 1, node: 'web-ai', sent: true });
    const r = (await store.request(web.id, S1))!;
    assert.deepEqual([r.state, r.attempts, r.failedAttempts, r.sentAt], ['sent', 2, 1, new Date(now).toISOString()]);
    assert.match(String((await ai.sendJob(job(4, 'web-ai', S1), context) as { skipped: string }).skipped), /already sent/);
    sendFails = 5;
    const dicom = await make('dicom-ai', 'Vendor B', { type: 'dicom', aeTitle: 'AIB' });
    await assert.rejects(ai.sendJob(job(5, 'dicom-ai', S9, 3, 3), context));
    assert.equal((await store.request(dicom.id, S9))!.state, 'failed', 'no attempt left: the request failed');
    assert.equal((await ai.metrics(dicom)).failures, 1);
  });

  await t.test('STOW-RS results: linked when the Manufacturer is the node\'s vendor; another maker\'s SR is no AI result', async () => {
    now += 90_000;
    await sr('9.1', S1, 'Vendor A');
    const linked = await ai.onInstanceStored(stored('9.1', S1, 'stow'));
    assert.equal(linked.outcome, 'linked');
    assert.match((linked as { linkedBy: string }).linkedBy, /STOW-RS, Manufacturer "Vendor A" = node web-ai, same study/);
    assert.deepEqual((linked as { flags: string[] }).flags, ['ICH']);
    assert.deepEqual(triage, [], 'the study is not on the worklist yet');
    assert.equal((await store.request(web.id, S1))!.triagePending, true);
    assert.equal((await ai.onInstanceStored(stored('9.1', S1, 'stow'))).outcome, 'already-recorded', 'a redelivered event links nothing twice');
    await sr('9.2', S1, 'Someone Else');
    assert.equal((await ai.onInstanceStored(stored('9.2', S1, 'stow'))).outcome, 'not-a-result');
    assert.equal((await ai.onInstanceStored(stored('9.3', S1, 'dimse:MODALITY'))).outcome, 'not-a-result', 'an AE no node answers under');
    assert.equal((await ai.metrics(web)).processingSeconds.median, 90);
  });

  await t.test('the pending flag goes on the worklist at the next StudyStable', async () => {
    onWorklist = true;
    await ai.onStudyStable(S1);
    assert.deepEqual(triage, [[S1, 'AI: ICH (web-ai)']]);
    assert.equal((await store.request(web.id, S1))!.triagePending, false);
  });

  await t.test('an SR about a referenced study is linked to that study\'s request; two nodes of one vendor are ambiguous', async () => {
    const dicomB = (await store.nodeByName('dicom-ai'))!;
    await store.openRequest({ nodeId: dicomB.id, studyInstanceUid: S2, rule: null, jobId: 9, research: false }, new Date(now));
    await store.recordAttempt((await store.request(dicomB.id, S2))!.id, null, false, new Date(now));
    await sr('9.4', SOTHER, 'Vendor B', '(0040,a375) SQ\n(fffe,e000) -\n(0020,000d) UI [1.2.826.0.1.3680043.10.1447.902]\n(fffe,e00d) -\n(fffe,e0dd) -\n');
    const referenced = await ai.onInstanceStored(stored('9.4', SOTHER, 'dimse:AIB'));
    assert.equal(referenced.outcome, 'linked');
    assert.match((referenced as { linkedBy: string }).linkedBy, /study referenced by the SR/);

    const twin = await make('web-ai-2', 'Vendor A', { type: 'dicomweb', destination: 'cloud' });
    for (const n of [web, twin]) {
      await store.openRequest({ nodeId: n.id, studyInstanceUid: S3, rule: null, jobId: 10 + n.id, research: false }, new Date(now));
    }
    await sr('9.5', S3, 'Vendor A');
    const ambiguous = await ai.onInstanceStored(stored('9.5', S3, 'stow'));
    assert.equal(ambiguous.outcome, 'unmatched');
    assert.match((ambiguous as { reason: string }).reason, /several AI nodes \(web-ai, web-ai-2\)/);
    assert.equal(await store.unmatchedWithoutNode(), 1);
  });
});
