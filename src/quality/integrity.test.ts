// The study integrity monitor end to end (issue 11, "Must be shown: integrity scenarios"), against a running
// archive with real peers: Debian's mllp_send (python3-hl7) places the orders over MLLP, DCMTK storescu sends
// pydicom's CT_small.dcm rewritten by DCMTK dcmodify; the event dispatcher and the job runner run in the
// background as `atrium serve` runs them. Each scenario (wrong patient ID on an order's images, one Study
// Instance UID under two patients, a duplicate study, an orphan, a missing accession, an order with no
// images) produces exactly one finding, of the right kind; a sweep asked for by REST changes nothing (no
// finding twice); the states acknowledged / false positive / resolved with a note; an order placed for the
// orphan resolves it ("no longer detected"); an HL7 A40 merge (PatientMerged) resolves the wrong-patient
// finding; the metadata quality sample; the metric; access by role. SQLite and PostgreSQL.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive } from '../../test/support/archive.ts';
import { killAllChildren, runTool } from '../../test/support/dcmtk.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { mllpSend } from '../../test/support/mllp-send.ts';
import { jobRunner } from '../app.ts';
import { sectionOf } from '../config/config.ts';
import { generateUid } from '../dicom/uid.ts';
import { EventDispatcher } from '../events/dispatcher.ts';
import { createHttpServer } from '../http/server.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';
import { startHl7Listeners } from '../ris/module.ts';
import { qualityConfig } from './config.ts';

const CT_SMALL = new URL('../../../shared/testdata/dicom/CT_small.dcm', import.meta.url).pathname;

const pid = (id: string, name = 'DOE^JANE', birth = '19800202', sex = 'F') => `PID|1||${id}^^^HOSP^MR||${name}||${birth}|${sex}`;
const orm = (patient: string, accession: string, day = '20240305', studyUid = '') => hl7([patient, seg('PV1', { 1: '1', 2: 'O', 8: '1234^REFERRER^RITA' }),
  `ORC|NW|PL-${accession}|FL-${accession}||||^^^${day}101500^^R||${day}`,
  seg('OBR', { 1: '1', 2: `PL-${accession}`, 3: `FL-${accession}`, 4: 'CTHEAD^CT Head^LOCAL', 18: accession, 19: `RP-${accession}`, 20: `SPS-${accession}`, 21: 'CT1', 24: 'CT', 27: `^^^${day}101500^^R` }),
  ...(studyUid ? [`ZDS|${studyUid}`] : [])], { type: 'ORM^O01' });

async function until<T>(probe: () => Promise<T | undefined | null | false>, what: string, limitMs = 60_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`study integrity monitor end to end on ${engine}`, { timeout: 300_000 }, async (t) => {
    const ta = await createTestArchive(engine);
    const archive = ta.archive;
    const aet = archive.config.dicom.aeTitle;
    const current = sectionOf(archive.config, qualityConfig);
    (archive.config.sections as Record<string, unknown>).quality = { ...current, integrity: { ...current.integrity, orphanGraceMinutes: 0, orderGraceMinutes: 0, sweepIntervalMinutes: 0 } };
    const dicom = await startDicomService(archive, { port: 0 });
    const [mllp] = await startHl7Listeners(archive, { port: 0, host: '127.0.0.1' });
    const http = await createHttpServer(archive);
    const base = await http.listen({ host: '127.0.0.1', port: 0 });
    const runner = jobRunner(archive, { pollIntervalMs: 50 });
    runner.start();
    const events = new EventDispatcher({ outbox: archive.events, handlers: archive.eventHandlers, log: archive.log, pollIntervalMs: 50 });
    events.start();
    const work = await mkdtemp(path.join(os.tmpdir(), 'atrium-integrity-'));
    after(async () => {
      await events.stop();
      await runner.stop();
      await http.close();
      await mllp!.close();
      await dicom.close();
      killAllChildren();
      await ta.cleanup();
      await rm(work, { recursive: true, force: true });
    });

    const technologist = (await archive.security.createApiKey({ name: 'tech', roles: ['technologist'] })).key;
    const radiologist = (await archive.security.createApiKey({ name: 'rad', roles: ['radiologist'] })).key;
    const rest = async (method: string, url: string, body?: unknown, key = technologist) => {
      const r = await fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
      const text = await r.text();
      return { status: r.status, json: text && r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined, text };
    };
    const findings = async (q: string, state = 'all') => (await rest('GET', `/api/quality/integrity/findings?state=${state}&limit=1000&${q}`)).json.items as any[];
    /** Every event routed and delivered: what the checks would find, they have found. */
    const settled = async () => until(async () => {
      const b = await archive.events.backlog();
      return b.unrouted === 0 && [...b.pending.values()].every((n) => n === 0);
    }, 'the event backlog to drain');
    const place = async (...messages: Buffer[]) => {
      const acks = await mllpSend(mllp!.port, messages);
      assert.deepEqual(acks.map((a) => a.code), messages.map(() => 'AA'), acks.map((a) => a.text).join('; '));
    };
    let n = 0;
    /** Sends `count` images by storescu, CT_small.dcm rewritten by dcmodify with `attributes` (tag -> value). */
    const send = async (attributes: Record<string, string>, count = 1) => {
      const series = generateUid();
      const files: string[] = [];
      for (let i = 0; i < count; i++) {
        const file = path.join(work, `img${++n}.dcm`);
        await copyFile(CT_SMALL, file);
        const all: Record<string, string> = {
          '0010,0010': 'DOE^JANE', '0010,0030': '19800202', '0010,0040': 'F', '0008,0020': '20240305', '0008,0090': 'REFERRER^RITA', '0008,1030': 'CT Head',
          '0020,000E': series, '0008,0018': generateUid(), '0020,0013': String(i + 1), ...attributes,
        };
        const r = await runTool('dcmodify', ['-nb', ...Object.entries(all).flatMap(([tag, value]) => ['-i', `(${tag})=${value}`]), file], { timeoutMs: 30_000 });
        assert.equal(r.code, 0, r.output);
        files.push(file);
      }
      const sent = await runTool('storescu', ['-aet', 'CT1', '-aec', aet, '127.0.0.1', String(dicom.port), ...files], { timeoutMs: 60_000 });
      assert.equal(sent.code, 0, sent.output);
    };
    const orderStudyUid = async (accession: string) => (await rest('GET', `/api/ris/orders?accessionNumber=${accession}`)).json.items[0].studyInstanceUid as string;
    const one = async (q: string, kind: string) => {
      await until(async () => (await findings(q)).some((f) => f.kind === kind), `a ${kind} finding for ${q}`);
      await settled();
      // Open ones: an order placed before its images is an order without images until they come (then resolved).
      const list = await findings(q, 'open,acknowledged');
      assert.deepEqual(list.map((f) => f.kind), [kind], JSON.stringify(list.map((f) => [f.kind, f.summary])));
      return list[0];
    };

    const wrongStudy = generateUid();
    await t.test('wrong patient ID on the images of an order: one identity-mismatch, critical, with both values', async () => {
      await place(hl7([pid('INT-P1'), seg('PV1', { 1: '1', 2: 'O' })], { type: 'ADT^A04' }), orm(pid('INT-P1'), 'INTACC1'));
      // The name differs only in case and spacing: a person name compared by components is the same name.
      await send({ '0010,0020': 'INT-WRONG1', '0010,0010': 'doe^ Jane', '0008,0050': 'INTACC1', '0020,000D': wrongStudy }, 2);
      const f = await one(`study=${wrongStudy}`, 'identity-mismatch');
      assert.equal(f.severity, 'critical');
      assert.equal(f.accessionNumber, 'INTACC1');
      assert.deepEqual(f.evidence, [{ attribute: 'PatientID', expected: 'INT-P1', actual: 'INT-WRONG1' }]);
      assert.equal(f.state, 'open');
      assert.ok(f.corrections.some((c: any) => c.action === 'move-study'), 'the hook to the corrections');
    });

    const sharedStudy = generateUid();
    await t.test('the same Study Instance UID under two patients: one study-uid-conflict; the second patient\'s images are indexed in the first\'s study', async () => {
      await place(orm(pid('INT-P2', 'ROE^RICHARD', '19700101', 'M'), 'INTACC2'));
      const demographics = { '0010,0010': 'ROE^RICHARD', '0010,0030': '19700101', '0010,0040': 'M', '0008,0050': 'INTACC2', '0020,000D': sharedStudy };
      await send({ ...demographics, '0010,0020': 'INT-P2' });
      await settled();
      await send({ ...demographics, '0010,0020': 'INT-P3', '0010,0010': 'OTHER^OSCAR' });
      const f = await one(`study=${sharedStudy}`, 'study-uid-conflict');
      assert.equal(f.severity, 'critical');
      assert.equal(f.patientId, 'INT-P2');
      assert.deepEqual(f.evidence.map((e: any) => [e.attribute, e.expected, e.actual]), [['PatientID', 'INT-P2', 'INT-P3']]);
      // What the archive does today (docs/integrity.md): one study, under the first patient, with both series.
      const qido = await rest('GET', `/dicom-web/studies?StudyInstanceUID=${sharedStudy}`, undefined, radiologist);
      assert.deepEqual(qido.json.map((s: any) => [s['00100020'].Value[0], s['00201206'].Value[0], s['00201208'].Value[0]]), [['INT-P2', 2, 2]]);
    });

    const dupA = generateUid();
    const dupB = generateUid();
    await t.test('a duplicate study (same patient, procedure and date, two Study Instance UIDs): one duplicate-study', async () => {
      await place(orm(pid('INT-P4', 'POE^PAM'), 'INTACC3'));
      await send({ '0010,0020': 'INT-P4', '0010,0010': 'POE^PAM', '0008,0050': 'INTACC3', '0020,000D': dupA });
      await settled();
      await send({ '0010,0020': 'INT-P4', '0010,0010': 'POE^PAM', '0008,0050': 'INTACC3', '0020,000D': dupB });
      const f = await one('kind=duplicate-study', 'duplicate-study');
      assert.equal(f.studyInstanceUid, dupA);
      assert.deepEqual(f.objects.studies.map((s: any) => s.studyInstanceUid), [dupA, dupB]);
      assert.equal((await findings(`study=${dupB}`)).length, 0, 'the second study has no finding of its own');
    });

    const orphan = generateUid();
    await t.test('an orphan (images no order matches, grace period 0): one orphan-study', async () => {
      await send({ '0010,0020': 'INT-P5', '0008,0050': 'INTNOORDER', '0020,000D': orphan });
      const f = await one(`study=${orphan}`, 'orphan-study');
      assert.equal(f.accessionNumber, 'INTNOORDER');
      assert.ok(f.corrections.some((c: any) => c.action === 'link-order'));
    });

    let missingStudy = '';
    await t.test('a missing accession (the images match their order by its Study Instance UID): one key-attributes', async () => {
      await place(orm(pid('INT-P6'), 'INTACC5'));
      missingStudy = await orderStudyUid('INTACC5');
      await send({ '0010,0020': 'INT-P6', '0008,0050': '', '0020,000D': missingStudy });
      const f = await one(`study=${missingStudy}`, 'key-attributes');
      assert.equal(f.severity, 'major');
      assert.deepEqual(f.evidence.map((e: any) => [e.attribute, e.problem]), [['AccessionNumber', 'missing']]);
    });

    await t.test('an order with no images past its scheduled time (grace 0): one order-without-images', async () => {
      await place(orm(pid('INT-P7'), 'INTACC6'));
      const f = await one('accession=INTACC6', 'order-without-images');
      assert.equal(f.patientId, 'INT-P7');
    });

    const kinds = async () => (await findings('', 'open,acknowledged')).map((f) => f.kind).sort();
    const expected = ['duplicate-study', 'identity-mismatch', 'key-attributes', 'order-without-images', 'orphan-study', 'study-uid-conflict'];
    await t.test('a sweep asked for by REST finds the same, once: no finding twice', async () => {
      assert.deepEqual(await kinds(), expected);
      assert.equal((await rest('POST', '/api/quality/integrity/sweeps', {}, radiologist)).status, 403, 'integrity:write');
      const asked = await rest('POST', '/api/quality/integrity/sweeps', {});
      assert.equal(asked.status, 202, asked.text);
      const job = await until(async () => { const j = await archive.jobs.get(asked.json.jobId); return j?.state === 'succeeded' && j; }, 'the sweep job');
      assert.deepEqual((job.result as any).checks.map((c: any) => [c.kind, c.opened]).filter(([, o]: any) => o > 0), []);
      assert.deepEqual(await kinds(), expected);
      const runs = await rest('GET', '/api/quality/integrity/sweeps', undefined, radiologist);
      assert.equal(runs.json.items[0].state, 'succeeded');
      const summary = await rest('GET', '/api/quality/integrity/summary', undefined, radiologist);
      assert.equal(summary.json.counts.reduce((s: number, c: any) => s + c.n, 0), 6);
      const metrics = await fetch(`${base}/metrics`, { headers: ta.authHeaders() });
      assert.match(await metrics.text(), /atrium_integrity_findings_open\{kind="study-uid-conflict",severity="critical",state="open"\} 1/);
    });

    await t.test('acknowledge, false positive (not raised again by a sweep), resolve with a note', async () => {
      const [dup] = await findings('kind=duplicate-study');
      const ack = await rest('POST', `/api/quality/integrity/findings/${dup.id}/acknowledge`, {});
      assert.equal(ack.json.state, 'acknowledged', ack.text);
      assert.equal((await rest('POST', `/api/quality/integrity/findings/${dup.id}/acknowledge`, {})).status, 409);
      const fp = await rest('POST', `/api/quality/integrity/findings/${dup.id}/false-positive`, { note: 'two real head CTs that day' });
      assert.equal(fp.json.state, 'false-positive');
      const [missing] = await findings('kind=key-attributes');
      assert.equal((await rest('POST', `/api/quality/integrity/findings/${missing.id}/resolve`, {})).status, 400, 'a note is required');
      const resolved = await rest('POST', `/api/quality/integrity/findings/${missing.id}/resolve`, { note: 'accession added at the modality', correctionId: 7 });
      assert.deepEqual([resolved.json.state, resolved.json.resolution, resolved.json.correctionId, resolved.json.stateChangedBy], ['resolved', 'accession added at the modality', 7, 'tech']);
      const asked = await rest('POST', '/api/quality/integrity/sweeps', {});
      await until(async () => (await archive.jobs.get(asked.json.jobId))?.state === 'succeeded', 'the second sweep');
      assert.equal((await findings('kind=duplicate-study')).length, 1, 'the false positive is not raised again');
      // The study still lacks its accession: resolving by hand did not fix it, so the sweep raised it anew.
      assert.deepEqual((await findings('kind=key-attributes')).map((f) => f.state).sort(), ['open', 'resolved']);
    });

    await t.test('an order placed for the orphan resolves it as no longer detected', async () => {
      await place(orm(pid('INT-P5'), 'INTNOORDER'));
      const f = await until(async () => { const [x] = await findings(`study=${orphan}&kind=orphan-study`); return x?.state === 'resolved' && x; }, 'the orphan resolved');
      assert.deepEqual([f.resolution, f.stateChangedBy], ['no longer detected', 'integrity-monitor']);
      await settled();
      assert.equal((await findings('accession=INTNOORDER&kind=order-without-images')).length, 0, 'the order has its images');
    });

    await t.test('an HL7 A40 merge of the wrong patient into the order\'s (PatientMerged) resolves the identity mismatch', async () => {
      await place(hl7([pid('INT-WRONG1', 'DOE^JANE'), seg('PV1', { 1: '1', 2: 'O' })], { type: 'ADT^A04' }),
        hl7([pid('INT-P1'), 'MRG|INT-WRONG1^^^HOSP^MR'], { type: 'ADT^A40' }));
      const f = await until(async () => { const [x] = await findings(`study=${wrongStudy}&kind=identity-mismatch`); return x?.state === 'resolved' && x; }, 'the mismatch resolved');
      assert.equal(f.resolution, 'no longer detected');
    });

    await t.test('the metadata quality sample: shares per modality and the patient ID accuracy threshold', async () => {
      const r = await rest('POST', '/api/quality/integrity/samples', { perModality: 50 });
      assert.equal(r.status, 201, r.text);
      const report = r.json.result;
      const ct = report.modalities.find((m: any) => m.modality === 'CT');
      assert.equal(ct.sampled, 6);
      // Orders matched: wrong (merged now: matches), shared, dupA, dupB, orphan (now ordered), missing; P3's images are in the shared study.
      assert.equal(ct.withOrder, 6);
      assert.equal(ct.shares.patientIdMatchesOrder, 1);
      assert.equal(report.patientIdAccuracy.pass, true);
      assert.equal(ct.shares.accessionPopulatedAndMatching, Number((5 / 6).toFixed(6)));
      assert.equal(ct.shares.referringPhysicianPopulated, 1);
      assert.equal((await rest('GET', `/api/quality/integrity/samples/${r.json.id}`, undefined, radiologist)).json.result.perModality, 50);
    });
  });
}
