// The RIS over HL7 on SQLite and PostgreSQL: ADT and orders applied with AA only after commit, bad input
// answered with the right ACK code, ERR-3 code and ERR-2 location and nothing half-applied, retransmissions
// (also two copies at once) answered with the stored ACK and applied once, studies linked to orders by
// accession, A40 merges seen by QIDO-RS and DCMTK findscu (C-FIND, patient and study level) and undone, reports with their versions, the REST API.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Hl7Message as MedplumHl7 } from '@medplum/core';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { createHttpServer } from '../http/server.ts';
import { risOf } from './module.ts';
import type { Archive } from '../app.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { findscu } from '../../test/support/worklist.ts';
import { killAllChildren } from '../../test/support/dcmtk.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';

/** The ACK as an independent parser (Medplum's) reads it. */
function readAck(ack: Buffer) {
  const m = MedplumHl7.parse(ack.toString('utf8'));
  const msa = m.getSegment('MSA')!;
  const err = m.getSegment('ERR');
  return { code: msa.getField(1).toString(), controlId: msa.getField(2).toString(), errCode: err?.getComponent(3, 1) ?? null, errLocation: err?.getField(2).toString() ?? null, text: err?.getField(8).toString() ?? null };
}

const pid = (id: string, name = 'DOE^JOHN') => `PID|1||${id}^^^HOSP^MR||${name}||19700101|M`;
const orm = (id: string, accession: string, control = 'NW', extra: { station?: string; start?: string; studyUid?: string } = {}) => [
  pid(id), seg('PV1', { 1: '1', 2: 'O', 8: '1234^REFERRER^RITA' }),
  `ORC|${control}|PL-${accession}|FL-${accession}||||^^^${extra.start ?? '20240301090000'}^^R||20240301||||5678^ORDERER^OSCAR`,
  seg('OBR', { 1: '1', 2: `PL-${accession}`, 3: `FL-${accession}`, 4: 'CTHEAD^CT Head without contrast^LOCAL', 13: 'headache', 18: accession, 19: `RP-${accession}`,
    20: `SPS-${accession}`, 21: extra.station ?? 'CT_SCANNER', 24: 'CT', 27: `^^^${extra.start ?? '20240301090000'}^^S` }),
  ...(extra.studyUid ? [`ZDS|${extra.studyUid}^ATRIUM^Application^DICOM`] : []),
];

async function ingestStudy(archive: Archive, options: { patientId: string; accessionNumber: string; studyInstanceUid: string }) {
  const result = await archive.ingest.ingest(syntheticInstance({ ...options, seriesInstanceUid: `${options.studyInstanceUid}.1`, sopInstanceUid: `${options.studyInstanceUid}.1.1`, modality: 'CT' }), { source: 'test' });
  assert.ok(result.status === 'stored' || result.status === 'duplicate', result.status);
  // The outbox's InstanceStored, delivered to the RIS handler as the dispatcher would.
  const handler = archive.eventHandlers.find((h) => h.name === 'ris.match-order')!;
  await handler.handle({ id: 1, type: 'InstanceStored', attempt: 1, createdAt: new Date().toISOString(),
    payload: { studyInstanceUid: options.studyInstanceUid, seriesInstanceUid: `${options.studyInstanceUid}.1`, sopInstanceUid: `${options.studyInstanceUid}.1.1`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', patientId: options.patientId, source: 'test' } } as any);
}

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`RIS over HL7 on ${engine}`, async (t) => {
    const ta: TestArchive = await createTestArchive(engine);
    after(() => ta.cleanup());
    const archive = ta.archive;
    const ris = risOf(archive);
    const send = async (message: Buffer) => readAck((await ris.hl7.receive(message, { address: '127.0.0.1' })).ack);

    await t.test('ADT A04 then ORM NW: AA, the patient and the scheduled order exist', async () => {
      assert.equal((await send(hl7([pid('P100', 'M\\XC3BC\\LLER^J\\T\\RGEN')], { controlId: 'A04-1' }))).code, 'AA');
      const patient = await ris.patients.get({ patientId: 'P100', issuerOfPatientId: 'HOSP' });
      assert.equal(patient?.patientName, 'MüLLER^J&RGEN', 'escape sequences \\X..\\ and \\T\\ decoded');
      const ack = await send(hl7(orm('P100', 'ACC100'), { type: 'ORM^O01', controlId: 'ORM-1' }));
      assert.deepEqual([ack.code, ack.controlId], ['AA', 'ORM-1']);
      const order = (await ris.orders.find({ accessionNumber: 'ACC100' }))!;
      assert.equal(order.status, 'scheduled');
      assert.equal(order.priority, 'STAT');
      assert.equal(order.referringPhysician, 'REFERRER^RITA');
      assert.equal(order.requestedProcedureId, 'RP-ACC100');
      assert.match(order.studyInstanceUid, /^2\.25\.\d+$/);
      assert.deepEqual(order.steps.map((s) => [s.stepId, s.modality, s.stationAeTitle, s.startDate, s.startTime, s.status]), [['SPS-ACC100', 'CT', 'CT_SCANNER', '20240301', '090000', 'SCHEDULED']]);
      const worklist = await ris.orders.listScheduledSteps({ stationAeTitle: 'CT_SCANNER', from: '20240301', to: '20240301' });
      assert.deepEqual(worklist.map((w) => [w.order.accessionNumber, w.patient.patientId, w.step.stepId]), [['ACC100', 'P100', 'SPS-ACC100']]);
      assert.equal((await ris.orders.listScheduledSteps({ stationAeTitle: 'MR_SCANNER' })).length, 0);
      const timeline = (await ris.orders.detail(order.pk))!.timeline;
      assert.deepEqual(timeline.map((e) => [e.status, e.source.kind, e.source.ref]), [['ordered', 'hl7', 'RIS^HOSP:ORM-1'], ['scheduled', 'hl7', 'RIS^HOSP:ORM-1']]);
    });

    await t.test('ISO 8859/1 (MSH-18) is decoded', async () => {
      assert.equal((await send(hl7([pid('P101', 'Müller^Zoë')], { charset: '8859/1' }))).code, 'AA');
      assert.equal((await ris.patients.get({ patientId: 'P101', issuerOfPatientId: 'HOSP' }))?.patientName, 'Müller^Zoë');
    });

    await t.test('bad input: the right ACK code, ERR-3 and ERR-2, nothing applied, earlier data intact', async () => {
      const before = (await ris.orders.list({}, { limit: 100, offset: 0 })).total;
      const missingPid3 = await send(hl7(['PID|1||||NOBODY^X'], { controlId: 'BAD-1' }));
      assert.deepEqual([missingPid3.code, missingPid3.errCode, missingPid3.errLocation], ['AE', '101', 'PID^1^3^1']);
      const unknownType = await send(hl7([pid('P100')], { type: 'XYZ^A01', controlId: 'BAD-2' }));
      assert.deepEqual([unknownType.code, unknownType.errCode, unknownType.errLocation], ['AR', '200', 'MSH^1^9^1^1']);
      const unknownTrigger = await send(hl7([pid('P100')], { type: 'ADT^A99', controlId: 'BAD-3' }));
      assert.deepEqual([unknownTrigger.code, unknownTrigger.errCode, unknownTrigger.errLocation], ['AR', '201', 'MSH^1^9^1^2']);
      const unknownOrder = await send(hl7(orm('P100', 'NOPE', 'CA'), { type: 'ORM^O01', controlId: 'BAD-4' }));
      assert.deepEqual([unknownOrder.code, unknownOrder.errCode, unknownOrder.errLocation], ['AE', '204', 'ORC^1^2^1']);
      const malformed = readAck((await ris.hl7.receive(Buffer.from('MSX|garbage\r'), { address: '127.0.0.1' })).ack);
      assert.deepEqual([malformed.code, malformed.errCode], ['AR', '100']);
      const noControlId = await send(hl7([pid('P100')], { controlId: '' }));
      assert.deepEqual([noControlId.code, noControlId.errCode, noControlId.errLocation], ['AR', '101', 'MSH^1^10^1']);
      // A second order whose patient is fine but whose priority is not: the patient upsert of the same
      // message is rolled back with it.
      const badPriority = hl7(orm('P199', 'ACC199').map((s) => s.replace('^^S', '^^Q')), { type: 'ORM^O01', controlId: 'BAD-5' });
      const bp = await send(badPriority);
      assert.deepEqual([bp.code, bp.errCode, bp.errLocation], ['AE', '103', 'OBR^1^27^1^6']);
      assert.equal(await ris.patients.get({ patientId: 'P199', issuerOfPatientId: 'HOSP' }), null, 'nothing half-applied');
      assert.equal((await ris.orders.list({}, { limit: 100, offset: 0 })).total, before);
      assert.equal((await ris.orders.find({ accessionNumber: 'ACC100' }))?.status, 'scheduled');
      const log = await ris.core.store.listMessages({ ackCode: 'AE' }, { limit: 100, offset: 0 });
      assert.ok(log.items.some((m) => m.controlId === 'BAD-4' && m.errorCode === '204' && m.errorLocation === 'ORC-2'));
    });

    await t.test('retransmission: the same ACK, no second effect, also for two copies at once', async () => {
      const message = hl7(orm('P100', 'ACC101'), { type: 'ORM^O01', controlId: 'DUP-1' });
      const first = await ris.hl7.receive(message, { address: '127.0.0.1' });
      const again = await ris.hl7.receive(message, { address: '127.0.0.1' });
      assert.equal(again.duplicate, true);
      assert.deepEqual(again.ack, first.ack);
      const both = hl7(orm('P100', 'ACC102'), { type: 'ORM^O01', controlId: 'DUP-2' });
      const [a, b] = await Promise.all([ris.hl7.receive(both, { address: '127.0.0.1' }), ris.hl7.receive(both, { address: '127.0.0.1' })]);
      assert.deepEqual(a.ack, b.ack);
      assert.equal([a.duplicate, b.duplicate].filter(Boolean).length, 1);
      const orders = await ris.orders.list({ accessionNumber: 'ACC10*' }, { limit: 10, offset: 0 });
      assert.deepEqual(orders.items.map((o) => o.accessionNumber).sort(), ['ACC100', 'ACC101', 'ACC102']);
      const timeline = (await ris.orders.detail((await ris.orders.find({ accessionNumber: 'ACC102' }))!.pk))!.timeline;
      assert.equal(timeline.filter((e) => e.status === 'ordered').length, 1);
    });

    await t.test('images link to their order by accession, once; others stay unmatched', async () => {
      const order = (await ris.orders.find({ accessionNumber: 'ACC100' }))!;
      await ingestStudy(archive, { patientId: 'P100', accessionNumber: 'ACC100', studyInstanceUid: '1.2.3.100' });
      await ingestStudy(archive, { patientId: 'P100', accessionNumber: 'ACC100', studyInstanceUid: '1.2.3.100' }).catch(() => {});
      const detail = (await ris.orders.detail(order.pk))!;
      assert.equal(detail.status, 'arrived');
      assert.deepEqual(detail.studies.map((s) => [s.studyInstanceUid, s.matchedBy, s.patientMismatch]), [['1.2.3.100', 'accession', false]]);
      assert.equal(detail.timeline.filter((e) => e.status === 'arrived').length, 1);
      assert.equal(detail.timeline.find((e) => e.status === 'arrived')?.source.kind, 'image');
      await ingestStudy(archive, { patientId: 'P100', accessionNumber: 'UNKNOWN', studyInstanceUid: '1.2.3.999' });
      assert.deepEqual((await ris.core.store.listUnmatched({ limit: 10, offset: 0 })).items.map((s) => s.studyInstanceUid), ['1.2.3.999']);
    });

    await t.test('A40 merge moves orders and studies (QIDO-RS shows them under the survivor); undo restores', async () => {
      await ingestStudy(archive, { patientId: 'P300', accessionNumber: 'ACC300', studyInstanceUid: '1.2.3.300' });
      assert.equal((await send(hl7([pid('P300', 'WRONG^NAME')]))).code, 'AA');
      assert.equal((await send(hl7(orm('P300', 'ACC300'), { type: 'ORM^O01' }))).code, 'AA');
      assert.equal((await send(hl7([pid('P200', 'RIGHT^NAME')]))).code, 'AA');
      const merge = await send(hl7([pid('P200', 'RIGHT^NAME'), 'MRG|P300^^^HOSP^MR'], { type: 'ADT^A40', controlId: 'MERGE-1' }));
      assert.equal(merge.code, 'AA', merge.text ?? '');
      const app = await createHttpServer(archive);
      const qido = async (patientId: string) => (await app.inject({ url: `/dicom-web/studies?PatientID=${patientId}`, headers: ta.authHeaders() })).json() as any[] | undefined;
      // C-FIND as DCMTK findscu asks it: study level (Study Root and Patient Root), and patient level.
      await archive.peers.upsert({ aeTitle: 'FINDSCU', host: '127.0.0.1', port: 104, operations: ['find'] });
      const dicom = await startDicomService(archive, { port: 0 });
      const aet = archive.config.dicom.aeTitle;
      const studies = async (model: '-S' | '-P', patientId: string) => (await findscu(model, dicom.port, aet,
        ['QueryRetrieveLevel=STUDY', `PatientID=${patientId}`, 'PatientName', 'StudyInstanceUID'], 'FINDSCU')).map((r) => [r.StudyInstanceUID, r.PatientID, r.PatientName]);
      const patients = async (patientId: string) => (await findscu('-P', dicom.port, aet,
        ['QueryRetrieveLevel=PATIENT', `PatientID=${patientId}`, 'PatientName', 'NumberOfPatientRelatedStudies'], 'FINDSCU', )).map((r) => [r.PatientID, r.PatientName, r.NumberOfPatientRelatedStudies]);
      try {
        const survivor = await qido('P200');
        assert.deepEqual(survivor?.map((s) => s['0020000D'].Value[0]), ['1.2.3.300']);
        assert.equal(survivor?.[0]['00100010'].Value[0].Alphabetic, 'RIGHT^NAME');
        for (const model of ['-S', '-P'] as const) {
          assert.deepEqual(await studies(model, 'P200'), [['1.2.3.300', 'P200', 'RIGHT^NAME']], `C-FIND ${model} STUDY: the moved study under the survivor`);
          assert.deepEqual(await studies(model, 'P300'), [], `C-FIND ${model} STUDY: none under the merged patient`);
        }
        assert.deepEqual(await patients('P200'), [['P200', 'RIGHT^NAME', '1']], 'C-FIND PATIENT: the survivor with the study');
        assert.deepEqual(await patients('P300'), [], 'C-FIND PATIENT: the merged patient is not listed');
        assert.equal((await ris.orders.find({ accessionNumber: 'ACC300' }))?.patient.patientId, 'P200');
        const prior = (await ris.patients.get({ patientId: 'P300', issuerOfPatientId: 'HOSP' }))!;
        assert.equal(prior.status, 'merged');
        const change = prior.history.find((h) => h.kind === 'merge')!;
        const undo = await app.inject({ method: 'POST', url: `/api/ris/patient-changes/${change.id}/undo`, headers: ta.authHeaders() });
        assert.equal(undo.statusCode, 200, undo.body);
        assert.deepEqual((await qido('P300'))?.map((s) => s['0020000D'].Value[0]), ['1.2.3.300']);
        for (const model of ['-S', '-P'] as const) {
          assert.deepEqual(await studies(model, 'P300'), [['1.2.3.300', 'P300', 'DOE^JOHN']], `C-FIND ${model} STUDY after the undo: back under P300`);
          assert.deepEqual(await studies(model, 'P200'), [], `C-FIND ${model} STUDY after the undo: none under P200`);
        }
        assert.deepEqual(await patients('P300'), [['P300', 'DOE^JOHN', '1']], 'C-FIND PATIENT after the undo: the prior patient is back, with its study');
        assert.deepEqual(await patients('P200'), [], 'the survivor had no images before the merge: not listed');
        assert.equal((await ris.orders.find({ accessionNumber: 'ACC300' }))?.patient.patientId, 'P300');
        assert.equal((await ris.patients.get({ patientId: 'P300', issuerOfPatientId: 'HOSP' }))?.status, 'active');
        const audits = await archive.audit.search({ action: 'update' }, { limit: 100, offset: 0 });
        assert.ok(audits.items.some((a) => /merged into P200/.test(a.detail ?? '')));
        assert.ok(audits.items.some((a) => /undone/.test(a.detail ?? '')));
      } finally {
        await app.close();
        await dicom.close();
      }
    });

    await t.test('A40, then an image under the merged ID, then the undo: every study back under the prior patient, listed once', async () => {
      await ingestStudy(archive, { patientId: 'P401', accessionNumber: 'ACC401', studyInstanceUid: '1.2.3.401' });
      assert.equal((await send(hl7([pid('P401', 'PRIOR^ONE')]))).code, 'AA');
      assert.equal((await send(hl7([pid('P400', 'SURVIVOR^ONE')]))).code, 'AA');
      const merge = await send(hl7([pid('P400', 'SURVIVOR^ONE'), 'MRG|P401^^^HOSP^MR'], { type: 'ADT^A40' }));
      assert.equal(merge.code, 'AA', merge.text ?? '');
      // The modality still has the old ID: the new study goes to a patient row of that ID, as received.
      await ingestStudy(archive, { patientId: 'P401', accessionNumber: 'ACC402', studyInstanceUid: '1.2.3.402' });
      assert.equal((await archive.index.getStudy('1.2.3.402'))?.patient.patientId, 'P401');
      const change = (await ris.patients.get({ patientId: 'P401', issuerOfPatientId: 'HOSP' }))!.history.find((h) => h.kind === 'merge')!;
      await ris.patients.undoChange({ source: { kind: 'user', ref: 'admin' }, principal: { kind: 'user', id: 'admin' }, interface: 'rest' }, change.id);
      assert.equal((await archive.index.getStudy('1.2.3.401'))?.patient.patientId, 'P401');
      const rows = await archive.index.listPatients({ patientId: 'P401' }, { limit: 10, offset: 0 });
      assert.deepEqual(rows.items.map((p) => [p.patientId, p.numberOfStudies]), [['P401', 2]]);
      assert.equal((await archive.index.listPatients({ patientId: 'P400' }, { limit: 10, offset: 0 })).total, 0, 'the row the merge made for the survivor is gone with the undo');
    });

    await t.test('ORU: preliminary, final, then a correction kept as a new version', async () => {
      const oru = (status: string, text: string) => hl7([pid('P100'), 'ORC|RE|PL-ACC100|FL-ACC100', seg('OBR', { 1: '1', 2: 'PL-ACC100', 3: 'FL-ACC100', 4: 'CTHEAD^CT Head', 7: '20240301100000', 18: 'ACC100', 25: status, 32: 'RAD&READER&ROSA' }), `OBX|1|TX|REPORT||${text}||||||${status}`], { type: 'ORU^R01' });
      for (const [status, text] of [['P', 'prelim'], ['F', 'final'], ['C', 'corrected~second line']]) assert.equal((await send(oru(status!, text!))).code, 'AA');
      const order = (await ris.orders.find({ accessionNumber: 'ACC100' }))!;
      const detail = (await ris.orders.detail(order.pk))!;
      assert.equal(detail.status, 'amended');
      assert.deepEqual(detail.reports.map((r) => [r.version, r.status, r.text, r.supersededAt === null]), [[1, 'P', 'prelim', false], [2, 'F', 'final', false], [3, 'C', 'corrected\nsecond line', true]]);
      assert.deepEqual(detail.timeline.map((e) => e.status).slice(-3), ['preliminary-report', 'final-report', 'amended']);
      const unknown = await send(hl7([pid('P100'), seg('OBR', { 1: '1', 4: 'X', 18: 'NOSUCH', 25: 'F' }), 'OBX|1|TX|R||text'], { type: 'ORU^R01' }));
      assert.deepEqual([unknown.code, unknown.errCode, unknown.errLocation], ['AE', '204', 'OBR^1^18^1']);
    });

    await t.test('cancel and discontinue; the MPPS hook records step transitions', async () => {
      assert.equal((await send(hl7(orm('P100', 'ACC101', 'CA'), { type: 'ORM^O01' }))).code, 'AA');
      assert.equal((await ris.orders.find({ accessionNumber: 'ACC101' }))?.status, 'cancelled');
      const context = { source: { kind: 'mpps' as const, ref: '1.2.3.4.5' }, principal: { kind: 'dicom-ae' as const, id: 'CT_SCANNER' }, interface: 'dimse' as const };
      await ris.orders.recordStepStatus(context, { accessionNumber: 'ACC102', stepId: 'SPS-ACC102', status: 'IN PROGRESS' });
      const done = await ris.orders.recordStepStatus(context, { accessionNumber: 'ACC102', stepId: 'SPS-ACC102', status: 'COMPLETED' });
      assert.equal(done.status, 'completed');
      assert.equal((await ris.orders.listScheduledSteps({ accessionNumber: 'ACC102' })).length, 0, 'completed steps leave the worklist');
      const late = await send(hl7(orm('P100', 'ACC102', 'CA'), { type: 'ORM^O01' }));
      assert.deepEqual([late.code, late.errCode], ['AE', '207'], 'a completed order cannot be cancelled');
    });

    await t.test('REST: orders by hand, filters, the message log and a replay after the cause is fixed', async () => {
      const app = await createHttpServer(archive);
      try {
        const created = await app.inject({ method: 'POST', url: '/api/ris/orders', headers: ta.authHeaders(), payload: {
          patient: { patientId: 'P500', issuerOfPatientId: 'HOSP', patientName: 'HAND^MADE' }, accessionNumber: 'HAND1', priority: 'URGENT',
          steps: [{ stepId: 'S1', modality: 'MR', stationAeTitle: 'MR1', startDate: '20240302', startTime: '0800' }] } });
        assert.equal(created.statusCode, 201, created.body);
        assert.equal(created.json().status, 'scheduled');
        const listed = await app.inject({ url: '/api/ris/orders?modality=MR&from=20240302&to=20240302', headers: ta.authHeaders() });
        assert.deepEqual(listed.json().items.map((o: any) => o.accessionNumber), ['HAND1']);
        assert.equal((await app.inject({ url: '/api/ris/orders?status=bogus', headers: ta.authHeaders() })).statusCode, 400);
        // A report for an order that did not exist yet: AE; the order arrives; the replay applies it.
        const early = await send(hl7([pid('P500'), seg('OBR', { 1: '1', 4: 'X', 18: 'HAND2', 25: 'F' }), 'OBX|1|TX|R||late report'], { type: 'ORU^R01', controlId: 'EARLY-1' }));
        assert.equal(early.code, 'AE');
        const logged = (await app.inject({ url: '/api/ris/hl7/messages?ackCode=AE&controlId=EARLY-1', headers: ta.authHeaders() })).json().items[0];
        assert.equal(logged.errorCode, '204');
        assert.equal((await app.inject({ method: 'POST', url: `/api/ris/hl7/messages/${logged.id}/replay`, headers: ta.authHeaders() })).json().ackCode, 'AE');
        await app.inject({ method: 'POST', url: '/api/ris/orders', headers: ta.authHeaders(), payload: { patient: { patientId: 'P500', issuerOfPatientId: 'HOSP' }, accessionNumber: 'HAND2', steps: [] } });
        const replay = await app.inject({ method: 'POST', url: `/api/ris/hl7/messages/${logged.id}/replay`, headers: ta.authHeaders() });
        assert.equal(replay.json().ackCode, 'AA', replay.body);
        const detail = (await app.inject({ url: `/api/ris/hl7/messages/${logged.id}`, headers: ta.authHeaders() })).json();
        assert.deepEqual([detail.ackCode, detail.replays], ['AA', 2]);
        assert.equal((await app.inject({ method: 'POST', url: `/api/ris/hl7/messages/${logged.id}/replay`, headers: ta.authHeaders() })).statusCode, 409);
        // The retransmission after the replay gets the new ACK.
        assert.equal((await send(hl7([pid('P500'), seg('OBR', { 1: '1', 4: 'X', 18: 'HAND2', 25: 'F' }), 'OBX|1|TX|R||late report'], { type: 'ORU^R01', controlId: 'EARLY-1' }))).code, 'AA');
        assert.equal((await ris.reports.list({ accessionNumber: 'HAND2' }, { limit: 10, offset: 0 })).total, 1);
      } finally {
        await app.close();
      }
    });
  });
}

after(() => killAllChildren());
