// MPPS with an independent SCU (dcmjs-dimse from the npm registry, not our DIMSE code): N-CREATE IN PROGRESS
// and N-SET COMPLETED or DISCONTINUED drive the order and its timeline (source mpps); a completed step leaves
// the worklist (DCMTK findscu -W); bad input gets the PS3.4 F.7 statuses and changes nothing; an MPPS for
// no known order is kept and listed. On SQLite and PostgreSQL.
import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { killAllChildren } from '../../test/support/dcmtk.ts';
import { findWorklist } from '../../test/support/worklist.ts';
import { sendMpps, type MppsElements } from '../../test/support/mpps-scu.ts';
import { startDicomService, type DicomService } from '../dimse/services/dicom-service.ts';
import { createHttpServer } from '../http/server.ts';
import { generateUid } from '../dicom/uid.ts';
import { risOf } from './module.ts';
import type { ChangeContext } from './ris-context.ts';

const context: ChangeContext = { source: { kind: 'user', ref: 'mpps.test' }, principal: { kind: 'user', id: 'mpps.test', displayName: null }, interface: 'rest' };

/** The N-CREATE data set for one scheduled step (PS3.4 Table F.7.2-1: Type 1 with values, Type 2 present). */
function createElements(order: { accession: string; studyUid: string; step: string; patientId: string }, overrides: MppsElements = {}): MppsElements {
  return {
    SpecificCharacterSet: 'ISO_IR 192',
    ScheduledStepAttributesSequence: [{
      StudyInstanceUID: order.studyUid, AccessionNumber: order.accession, RequestedProcedureID: `RP-${order.accession}`,
      ScheduledProcedureStepID: order.step, ScheduledProcedureStepDescription: 'CT head', ScheduledProtocolCodeSequence: [],
    }],
    PatientName: 'MPPS^PATIENT', PatientID: order.patientId, PatientBirthDate: '19700101', PatientSex: 'F',
    PerformedProcedureStepID: `PPS-${order.accession}`, PerformedStationAETitle: 'CT_SCANNER', PerformedStationName: 'CT 1', PerformedLocation: 'Room 1',
    PerformedProcedureStepStartDate: '20240301', PerformedProcedureStepStartTime: '093000', PerformedProcedureStepStatus: 'IN PROGRESS',
    PerformedProcedureStepDescription: 'CT head', PerformedProcedureTypeDescription: '', ProcedureCodeSequence: [],
    PerformedProcedureStepEndDate: '', PerformedProcedureStepEndTime: '', Modality: 'CT', StudyID: '1', PerformedProtocolCodeSequence: [], PerformedSeriesSequence: [],
    ...overrides,
  };
}

const completed = (seriesUid: string, images: string[]): MppsElements => ({
  PerformedProcedureStepStatus: 'COMPLETED', PerformedProcedureStepEndDate: '20240301', PerformedProcedureStepEndTime: '100000',
  // Dose-related attributes (PS3.3 C.4.16 Radiation Dose module): kept for dose monitoring.
  TotalNumberOfExposures: '2', CommentsOnRadiationDose: 'CTDIvol 42 mGy',
  PerformedSeriesSequence: [{
    SeriesInstanceUID: seriesUid, ProtocolName: 'HEAD', RetrieveAETitle: 'ATRIUM', SeriesDescription: 'axial', PerformingPhysicianName: '', OperatorsName: 'TECH^ONE',
    ReferencedImageSequence: images.map((uid) => ({ ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ReferencedSOPInstanceUID: uid })),
    ReferencedNonImageCompositeSOPInstanceSequence: [],
  }],
});

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  describe(`MPPS on ${engine}`, { timeout: 300_000 }, () => {
    let t: TestArchive;
    let dicom: DicomService;
    let aet: string;
    const orders: Record<string, { accession: string; studyUid: string; step: string; patientId: string }> = {};
    const uids = { m1: generateUid(), m2: generateUid(), unscheduled: generateUid() };

    before(async () => {
      t = await createTestArchive(engine);
      aet = t.archive.config.dicom.aeTitle;
      await t.archive.peers.upsert({ aeTitle: 'CT_SCANNER', host: '127.0.0.1', port: 104, operations: ['find', 'store'] });
      await t.archive.peers.upsert({ aeTitle: 'FIND_ONLY', host: '127.0.0.1', port: 104, operations: ['find'] });
      const ris = risOf(t.archive);
      await ris.patients.upsertPatient(context, { patientId: 'PM1', issuerOfPatientId: 'HOSP', patientName: 'MPPS^PATIENT' });
      for (const n of ['M1', 'M2', 'M3']) {
        const o = await ris.orders.placeOrder(context, {
          patient: { patientId: 'PM1', issuerOfPatientId: 'HOSP' }, accessionNumber: `ACC-${n}`, requestedProcedureId: `RP-ACC-${n}`,
          steps: [{ stepId: `SPS-${n}`, modality: 'CT', stationAeTitle: 'CT_SCANNER', startDate: '20240301', startTime: '090000' }],
        });
        orders[n] = { accession: o.accessionNumber, studyUid: o.studyInstanceUid, step: `SPS-${n}`, patientId: 'PM1' };
      }
      dicom = await startDicomService(t.archive, { port: 0 });
    });
    after(async () => {
      await dicom?.close();
      await t?.cleanup();
    });

    const timeline = async (accession: string) => {
      const ris = risOf(t.archive);
      const order = (await ris.orders.find({ accessionNumber: accession }))!;
      const detail = (await ris.orders.detail(order.pk))!;
      return { status: detail.status, steps: detail.steps.map((s) => s.status), entries: detail.timeline.map((e) => ({ status: e.status, kind: e.source.kind, ref: e.source.ref, step: e.stepId, detail: e.detail })) };
    };
    const rest = async (url: string) => {
      const app = await createHttpServer(t.archive);
      try {
        const r = await app.inject({ url, headers: t.authHeaders() });
        return { status: r.statusCode, body: r.json() };
      } finally {
        await app.close();
      }
    };

    test('N-CREATE IN PROGRESS then N-SET COMPLETED: the timeline shows both with source mpps; the step leaves the worklist', async () => {
      assert.deepEqual((await findWorklist(dicom.port, aet, ['AccessionNumber=ACC-M1', 'StudyInstanceUID'], 'CT_SCANNER')).map((r) => r.StudyInstanceUID), [orders.M1!.studyUid]);
      const [created] = await sendMpps(dicom.port, aet, [{ kind: 'create', uid: uids.m1, elements: createElements(orders.M1!) }], 'CT_SCANNER');
      assert.equal(created!.status, 0x0000, created!.errorComment);
      assert.equal(created!.affectedSopInstanceUid, uids.m1);
      const during = await timeline('ACC-M1');
      assert.equal(during.status, 'in-progress');
      assert.deepEqual(during.steps, ['IN PROGRESS']);
      assert.deepEqual(during.entries.at(-1), { status: 'in-progress', kind: 'mpps', ref: uids.m1, step: 'SPS-M1', detail: 'MPPS PPS-ACC-M1 in progress at CT_SCANNER' });
      // In progress, the step is still offered (not completed or cancelled).
      assert.equal((await findWorklist(dicom.port, aet, ['AccessionNumber=ACC-M1'], 'CT_SCANNER')).length, 1);

      const images = [generateUid(), generateUid()];
      const seriesUid = generateUid();
      const [set] = await sendMpps(dicom.port, aet, [{ kind: 'set', uid: uids.m1, elements: completed(seriesUid, images) }], 'CT_SCANNER');
      assert.equal(set!.status, 0x0000, set!.errorComment);
      const done = await timeline('ACC-M1');
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.steps, ['COMPLETED']);
      assert.deepEqual(done.entries.map((e) => [e.status, e.kind]), [['ordered', 'user'], ['scheduled', 'user'], ['in-progress', 'mpps'], ['completed', 'mpps']]);
      assert.equal(done.entries.at(-1)!.detail, 'MPPS PPS-ACC-M1 completed: 1 series, 2 instances');
      assert.deepEqual(await findWorklist(dicom.port, aet, ['AccessionNumber=ACC-M1'], 'CT_SCANNER'), [], 'a completed step is no longer offered');

      const detail = await rest(`/api/ris/mpps/${uids.m1}`);
      assert.equal(detail.status, 200);
      assert.equal(detail.body.status, 'COMPLETED');
      assert.equal(detail.body.matched, true);
      assert.deepEqual(detail.body.scheduledSteps.map((s: any) => [s.accessionNumber, s.stepId, s.order]), [['ACC-M1', 'SPS-M1', 'ACC-M1']]);
      assert.deepEqual(detail.body.performedSeries, [{ seriesInstanceUid: seriesUid, protocolName: 'HEAD', instances: images.map((uid) => ({ sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: uid })) }]);
      assert.deepEqual(detail.body.dataset['00400301'], { vr: 'US', Value: [2] }, 'Total Number of Exposures kept in the DICOM JSON');
      assert.equal(detail.body.dataset['00400310'].Value[0], 'CTDIvol 42 mGy');
      assert.equal(detail.body.dataset['00100020'].Value[0], 'PM1', 'the N-CREATE attributes are kept beside the N-SET ones');
    });

    test('N-SET DISCONTINUED with a reason: the order is discontinued, the reason on the timeline and the MPPS', async () => {
      const reason = { CodeValue: '110514', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Incorrect worklist entry selected' };
      const answers = await sendMpps(dicom.port, aet, [
        { kind: 'create', uid: uids.m2, elements: createElements(orders.M2!) },
        { kind: 'set', uid: uids.m2, elements: { PerformedProcedureStepStatus: 'DISCONTINUED', PerformedProcedureStepEndDate: '20240301', PerformedProcedureStepEndTime: '094500', PerformedProcedureStepDiscontinuationReasonCodeSequence: [reason] } },
      ], 'CT_SCANNER');
      assert.deepEqual(answers.map((a) => a.status), [0, 0], answers.map((a) => a.errorComment).join('; '));
      const t2 = await timeline('ACC-M2');
      assert.equal(t2.status, 'discontinued');
      assert.deepEqual(t2.entries.slice(-2).map((e) => [e.status, e.kind, e.ref]), [['in-progress', 'mpps', uids.m2], ['discontinued', 'mpps', uids.m2]]);
      assert.equal(t2.entries.at(-1)!.detail, 'MPPS PPS-ACC-M2 discontinued: Incorrect worklist entry selected');
      const detail = await rest(`/api/ris/mpps/${uids.m2}`);
      assert.equal(detail.body.status, 'DISCONTINUED');
      assert.equal(detail.body.discontinuationReason, 'Incorrect worklist entry selected');
      assert.equal(detail.body.dataset['00400281'].Value[0]['00080100'].Value[0], '110514');
    });

    test('bad input: the PS3.4 F.7 statuses, and nothing changed', async () => {
      const before = { m1: await timeline('ACC-M1'), m3: await timeline('ACC-M3'), mpps: (await rest(`/api/ris/mpps/${uids.m1}`)).body, list: (await rest('/api/ris/mpps?limit=100')).body.total };
      const fresh = generateUid();
      const answers = await sendMpps(dicom.port, aet, [
        // N-SET of an instance that does not exist.
        { kind: 'set', uid: generateUid(), elements: completed(generateUid(), []) },
        // N-SET after COMPLETED: a final state is final.
        { kind: 'set', uid: uids.m1, elements: { PerformedProcedureStepStatus: 'DISCONTINUED' } },
        // N-CREATE of an instance that exists.
        { kind: 'create', uid: uids.m1, elements: createElements(orders.M1!) },
        // N-CREATE missing a Type 1 attribute, with one empty, with a status other than IN PROGRESS.
        { kind: 'create', uid: fresh, elements: (() => { const e = createElements(orders.M3!); delete e.PerformedProcedureStepID; return e; })() },
        { kind: 'create', uid: fresh, elements: createElements(orders.M3!, { PerformedStationAETitle: '' }) },
        { kind: 'create', uid: fresh, elements: createElements(orders.M3!, { PerformedProcedureStepStatus: 'COMPLETED' }) },
      ], 'CT_SCANNER');
      assert.deepEqual(answers.map((a) => `0x${a.status.toString(16).padStart(4, '0')}`), ['0x0112', '0x0110', '0x0111', '0x0120', '0x0121', '0x0106'], answers.map((a) => a.errorComment).join('; '));
      assert.equal(answers[1]!.errorComment, 'Performed Procedure Step Object may no longer be updated');
      assert.match(answers[3]!.errorComment, /\(0040,0253\) missing on N-CREATE/);
      assert.match(answers[5]!.errorComment, /\(0040,0252\) is "COMPLETED"/);

      // An instance in progress: N-SET of a status that does not exist, of an attribute N-SET may not change, COMPLETED without its end.
      const m3 = generateUid();
      const more = await sendMpps(dicom.port, aet, [
        { kind: 'create', uid: m3, elements: createElements(orders.M3!) },
        { kind: 'set', uid: m3, elements: { PerformedProcedureStepStatus: 'DONE' } },
        { kind: 'set', uid: m3, elements: { PatientID: 'SOMEONE_ELSE' } },
        { kind: 'set', uid: m3, elements: { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: [{ SeriesInstanceUID: generateUid(), ProtocolName: 'X' }] } },
      ], 'CT_SCANNER');
      assert.deepEqual(more.map((a) => `0x${a.status.toString(16).padStart(4, '0')}`), ['0x0000', '0x0106', '0x0106', '0x0121'], more.map((a) => a.errorComment).join('; '));
      assert.match(more[2]!.errorComment, /\(0010,0020\) may not be set by N-SET/);

      assert.deepEqual(await timeline('ACC-M1'), before.m1, 'the completed order is as it was');
      const m3After = await timeline('ACC-M3');
      assert.deepEqual(m3After.entries.slice(0, before.m3.entries.length), before.m3.entries);
      assert.deepEqual(m3After.entries.slice(before.m3.entries.length).map((e) => [e.status, e.ref]), [['in-progress', m3]], 'only the valid N-CREATE moved ACC-M3');
      const mpps = (await rest(`/api/ris/mpps/${uids.m1}`)).body;
      assert.deepEqual(mpps, before.mpps, 'the completed MPPS is unchanged');
      assert.equal((await rest(`/api/ris/mpps/${m3}`)).body.status, 'IN PROGRESS');
      assert.equal((await rest(`/api/ris/mpps/${m3}`)).body.dataset['00100020'].Value[0], 'PM1');
      assert.equal((await rest(`/api/ris/mpps/${fresh}`)).status, 404, 'no refused N-CREATE was kept');
      assert.equal((await rest('/api/ris/mpps?limit=100')).body.total, before.list + 1);
    });

    test('an MPPS that names no known order is kept and listed as unmatched, not refused', async () => {
      const studyUid = generateUid();
      const [a] = await sendMpps(dicom.port, aet, [{ kind: 'create', uid: uids.unscheduled, elements: createElements({ accession: 'UNKNOWN-1', studyUid, step: '', patientId: 'WALKIN' }) }], 'CT_SCANNER');
      assert.equal(a!.status, 0, a!.errorComment);
      const list = (await rest('/api/ris/mpps?matched=false')).body;
      assert.deepEqual(list.items.map((m: any) => [m.sopInstanceUid, m.accessionNumber, m.matched, m.status]), [[uids.unscheduled, 'UNKNOWN-1', false, 'IN PROGRESS']]);
      assert.match(list.items[0].scheduledSteps[0].note, /no order/);
      assert.deepEqual((await rest(`/api/ris/mpps?studyInstanceUid=${studyUid}`)).body.items.map((m: any) => m.sopInstanceUid), [uids.unscheduled]);
      assert.deepEqual((await rest('/api/ris/mpps?status=COMPLETED')).body.items.map((m: any) => m.sopInstanceUid), [uids.m1]);
      assert.deepEqual((await rest('/api/ris/mpps?accessionNumber=ACC-M2')).body.items.map((m: any) => m.status), ['DISCONTINUED']);
      assert.equal((await rest('/api/ris/mpps?status=bogus')).status, 400);
    });

    test('the AE registry gates MPPS: a peer without the store operation may not open it', async () => {
      await assert.rejects(sendMpps(dicom.port, aet, [{ kind: 'create', uid: generateUid(), elements: createElements(orders.M3!) }], 'FIND_ONLY'), /rejected/);
    });
  });
}

after(() => killAllChildren());
