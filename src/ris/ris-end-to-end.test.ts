// The RIS end to end (issue 9, "Must be shown: End to end"), against real peers on a running archive (the
// DICOM listener, the HL7 MLLP listener, the HTTP server, the event dispatcher and the job runner, as
// `atrium serve` runs them): Debian's mllp_send (python3-hl7) sends ADT A04 and ORM^O01 NW; DCMTK
// findscu -W from the scheduled station gets the worklist item; dcmjs-dimse sends MPPS N-CREATE IN
// PROGRESS; DCMTK storescu sends real images (pydicom's CT_small.dcm rewritten by DCMTK dcmodify with the
// worklist's patient, accession and Study Instance UID); N-SET COMPLETED names them; mllp_send sends the
// ORU^R01 final report. Then, read over REST by a radiologist: the timeline has every step in order with
// its time and source, the report is final, the study is linked; and a test MLLP listener (the RIS) got
// the outbound status messages in progress, images arrived, completed. On SQLite and PostgreSQL.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { killAllChildren, runTool } from '../../test/support/dcmtk.ts';
import { findWorklist } from '../../test/support/worklist.ts';
import { startTestMllpListener, type TestMllpListener } from '../../test/support/mllp-listener.ts';
import { sendMpps } from '../../test/support/mpps-scu.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { r4Problems } from '../../test/support/fhir.ts';
import { jobRunner } from '../app.ts';
import { sectionOf } from '../config/config.ts';
import { EventDispatcher } from '../events/dispatcher.ts';
import { createHttpServer } from '../http/server.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';
import { generateUid } from '../dicom/uid.ts';
import { risConfig, type Hl7Destination } from './config.ts';
import { startHl7Listeners } from './module.ts';

const STATION = 'CT_E2E';
const DAY = '20240305';
const CT_SMALL = new URL('../../../shared/testdata/dicom/CT_small.dcm', import.meta.url).pathname;
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const SPS = 'ScheduledProcedureStepSequence[0]';

const pid = 'PID|1||E2E-P1^^^HOSP^MR||DOE^JANE^Q||19800202|F';
const messages = {
  adt: hl7([pid, seg('PV1', { 1: '1', 2: 'O' })], { type: 'ADT^A04', controlId: 'E2E-A04' }),
  orm: hl7([pid, seg('PV1', { 1: '1', 2: 'O', 8: '1234^REFERRER^RITA' }),
    'ORC|NW|PL-E2E1|FL-E2E1||||^^^20240305101500^^R||20240305|||5678^ORDERER^OSCAR',
    seg('OBR', { 1: '1', 2: 'PL-E2E1', 3: 'FL-E2E1', 4: 'CTHEAD^CT Head without contrast^LOCAL', 13: 'headache', 18: 'E2EACC1', 19: 'RP-E2E1',
      20: 'SPS-E2E1', 21: STATION, 24: 'CT', 27: `^^^${DAY}101500^^R` })], { type: 'ORM^O01', controlId: 'E2E-ORM' }),
  oru: hl7([pid, 'ORC|RE|PL-E2E1|FL-E2E1',
    seg('OBR', { 1: '1', 2: 'PL-E2E1', 3: 'FL-E2E1', 4: 'CTHEAD^CT Head without contrast^LOCAL', 7: `${DAY}103000`, 18: 'E2EACC1', 25: 'F', 32: 'RAD&READER&ROSA' }),
    'OBX|1|TX|REPORT||No acute intracranial abnormality.||||||F'], { type: 'ORU^R01', controlId: 'E2E-ORU' }),
};

/** Sends the messages with Debian's mllp_send (one connection); the MSA-1 and MSA-2 of each ACK it printed. */
async function mllpSend(port: number, list: Buffer[]): Promise<string[][]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-e2e-mllp-'));
  try {
    const file = path.join(dir, 'messages.hl7');
    await writeFile(file, Buffer.concat(list.map((m) => Buffer.concat([m, Buffer.from('\n')]))));
    const r = await runTool('mllp_send', ['--loose', '-f', file, '-p', String(port), '127.0.0.1'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.output);
    return r.stdout.split(/[\r\n]+/).filter((l) => l.startsWith('MSA|')).map((l) => l.split('|').slice(1, 3));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Polls until `probe` returns something truthy (what the dispatcher and the job runner do in the background). */
async function until<T>(probe: () => Promise<T | undefined | null | false>, what: string, limitMs = 30_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Fields of one segment (1-based: fields[n] is field n; MSH counted the HL7 way). */
function segment(frame: Buffer, id: string): string[] | null {
  const line = frame.toString('utf8').split('\r').find((s) => s.startsWith(`${id}|`));
  if (!line) return null;
  return id === 'MSH' ? ['MSH', '|', ...line.slice(4).split('|')] : line.split('|');
}

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`RIS end to end on ${engine}`, { timeout: 300_000 }, async (t) => {
    const ta: TestArchive = await createTestArchive(engine);
    const archive = ta.archive;
    const aet = archive.config.dicom.aeTitle;
    const ris: TestMllpListener = await startTestMllpListener();
    const destination: Hl7Destination = {
      name: 'ris', host: '127.0.0.1', port: ris.port, tls: null, messageType: 'ORM^O01', version: '2.3', receivingApplication: 'RIS', receivingFacility: 'HOSP',
      statuses: ['arrived', 'in-progress', 'completed', 'discontinued', 'cancelled'], echoHl7: false, reports: true, reportValueType: 'TX', echoReports: false, ackTimeoutSeconds: 5, maxAttempts: 5,
    };
    (archive.config.sections as Record<string, unknown>).ris = { ...sectionOf(archive.config, risConfig), hl7Destinations: [destination] };
    // The scheduled station: it queries the worklist (find), stores images and reports MPPS (store).
    await archive.peers.upsert({ aeTitle: STATION, host: '127.0.0.1', port: 104, operations: ['echo', 'find', 'store'] });
    const dicom = await startDicomService(archive, { port: 0 });
    const [mllp] = await startHl7Listeners(archive, { port: 0, host: '127.0.0.1' });
    const http = await createHttpServer(archive);
    const base = await http.listen({ host: '127.0.0.1', port: 0 });
    const runner = jobRunner(archive, { pollIntervalMs: 50 });
    runner.start();
    const events = new EventDispatcher({ outbox: archive.events, handlers: archive.eventHandlers, log: archive.log, pollIntervalMs: 50 });
    events.start();
    const work = await mkdtemp(path.join(os.tmpdir(), 'atrium-e2e-'));
    after(async () => {
      await events.stop();
      await runner.stop();
      await http.close();
      await mllp!.close();
      await dicom.close();
      await ris.close();
      killAllChildren();
      await ta.cleanup();
      await rm(work, { recursive: true, force: true });
    });

    // An authorized user of the REST API, not the administrator: a radiologist (order:read).
    const radiologist = (await archive.security.createApiKey({ name: 'e2e radiologist', roles: ['radiologist'] })).key;
    const rest = async (url: string) => {
      const r = await fetch(`${base}${url}`, { headers: { authorization: `Bearer ${radiologist}` } });
      assert.equal(r.status, 200, `${url}: ${await r.clone().text()}`);
      return await r.json() as any;
    };
    const orderDetail = async () => {
      const list = await rest('/api/ris/orders?accessionNumber=E2EACC1');
      assert.equal(list.total, 1);
      return await rest(`/api/ris/orders/${list.items[0].pk}`);
    };

    let worklistItem: Record<string, string> = {};
    const mppsUid = generateUid();
    const seriesUid = generateUid();
    const sopUids = [generateUid(), generateUid(), generateUid()];

    await t.test('mllp_send: ADT A04 then ORM^O01 NW, each acknowledged AA', async () => {
      assert.deepEqual(await mllpSend(mllp!.port, [messages.adt, messages.orm]), [['AA', 'E2E-A04'], ['AA', 'E2E-ORM']]);
      const detail = await orderDetail();
      assert.equal(detail.status, 'scheduled');
      assert.deepEqual(detail.steps.map((s: any) => [s.stepId, s.modality, s.stationAeTitle, s.startDate, s.startTime, s.status]), [['SPS-E2E1', 'CT', STATION, DAY, '101500', 'SCHEDULED']]);
    });

    await t.test('findscu -W from the scheduled station: the item with the patient, accession and Study Instance UID', async () => {
      const order = await orderDetail();
      const items = await findWorklist(dicom.port, aet, [
        `${SPS}.ScheduledStationAETitle=${STATION}`, `${SPS}.ScheduledProcedureStepStartDate=${DAY}`, `${SPS}.Modality=CT`,
        `${SPS}.ScheduledProcedureStepID`, `${SPS}.ScheduledProcedureStepStartTime`, 'PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex',
        'AccessionNumber', 'StudyInstanceUID', 'RequestedProcedureID', 'RequestedProcedureDescription', 'ReferringPhysicianName',
      ], STATION);
      assert.equal(items.length, 1, JSON.stringify(items));
      worklistItem = items[0]!;
      assert.equal(worklistItem.PatientID, 'E2E-P1');
      assert.equal(worklistItem.IssuerOfPatientID, 'HOSP');
      assert.equal(worklistItem.PatientName, 'DOE^JANE^Q');
      assert.equal(worklistItem.PatientBirthDate, '19800202');
      assert.equal(worklistItem.AccessionNumber, 'E2EACC1');
      assert.equal(worklistItem.RequestedProcedureID, 'RP-E2E1');
      assert.equal(worklistItem[`${SPS}.ScheduledProcedureStepID`], 'SPS-E2E1');
      assert.equal(worklistItem.StudyInstanceUID, order.studyInstanceUid, 'the Study Instance UID Atrium assigned to the order');
      assert.match(worklistItem.StudyInstanceUID!, /^2\.25\.\d+$/);
      // Another station's worklist does not show it.
      assert.deepEqual(await findWorklist(dicom.port, aet, [`${SPS}.ScheduledStationAETitle=MR_OTHER`, 'AccessionNumber'], STATION), []);
    });

    await t.test('dcmjs-dimse MPPS N-CREATE IN PROGRESS: the order is in progress; the RIS is told (ORC-5 IP)', async () => {
      const w = worklistItem;
      const [created] = await sendMpps(dicom.port, aet, [{ kind: 'create', uid: mppsUid, elements: {
        SpecificCharacterSet: 'ISO_IR 192',
        ScheduledStepAttributesSequence: [{
          StudyInstanceUID: w.StudyInstanceUID, AccessionNumber: w.AccessionNumber, RequestedProcedureID: w.RequestedProcedureID,
          RequestedProcedureDescription: w.RequestedProcedureDescription, ScheduledProcedureStepID: w[`${SPS}.ScheduledProcedureStepID`],
          ScheduledProcedureStepDescription: '', ScheduledProtocolCodeSequence: [],
        }],
        PatientName: w.PatientName, PatientID: w.PatientID, IssuerOfPatientID: w.IssuerOfPatientID, PatientBirthDate: w.PatientBirthDate, PatientSex: w.PatientSex,
        ReferencedPatientSequence: [], PerformedProcedureStepID: 'PPS-E2E1', PerformedStationAETitle: STATION, PerformedStationName: 'CT 1', PerformedLocation: 'Room 1',
        PerformedProcedureStepStartDate: DAY, PerformedProcedureStepStartTime: '101700', PerformedProcedureStepStatus: 'IN PROGRESS',
        PerformedProcedureStepDescription: 'CT head', PerformedProcedureTypeDescription: '', ProcedureCodeSequence: [], PerformedProcedureStepEndDate: '',
        PerformedProcedureStepEndTime: '', Modality: 'CT', StudyID: '1', PerformedProtocolCodeSequence: [], PerformedSeriesSequence: [],
      } }], STATION);
      assert.equal(created!.status, 0x0000, created!.errorComment);
      assert.equal((await orderDetail()).status, 'in-progress');
      const [frame] = await ris.waitForFrames(1, 30_000);
      assert.deepEqual([segment(frame!, 'ORC')![1], segment(frame!, 'ORC')![5], segment(frame!, 'OBR')![18]], ['SC', 'IP', 'E2EACC1']);
      assert.equal(segment(frame!, 'NTE'), null);
    });

    await t.test('storescu sends the images, rewritten by dcmodify with the worklist\'s identifiers: linked to the order', async () => {
      const w = worklistItem;
      const files: string[] = [];
      for (const [i, sop] of sopUids.entries()) {
        const file = path.join(work, `ct${i + 1}.dcm`);
        await copyFile(CT_SMALL, file);
        const r = await runTool('dcmodify', ['-nb', '-i', `(0010,0010)=${w.PatientName}`, '-i', `(0010,0020)=${w.PatientID}`, '-i', `(0010,0021)=${w.IssuerOfPatientID}`,
          '-i', `(0008,0050)=${w.AccessionNumber}`, '-i', `(0020,000D)=${w.StudyInstanceUID}`, '-i', `(0020,000E)=${seriesUid}`, '-i', `(0008,0018)=${sop}`,
          '-i', `(0020,0013)=${i + 1}`, '-i', `(0040,0254)=CT head`, file], { timeoutMs: 30_000 });
        assert.equal(r.code, 0, r.output);
        files.push(file);
      }
      const sent = await runTool('storescu', ['-aet', STATION, '-aec', aet, '127.0.0.1', String(dicom.port), ...files], { timeoutMs: 60_000 });
      assert.equal(sent.code, 0, sent.output);
      const detail = await until(async () => { const d = await orderDetail(); return d.studies.length > 0 && d; }, 'the study to be linked');
      assert.deepEqual(detail.studies.map((s: any) => [s.studyInstanceUid, s.matchedBy, s.patientMismatch]), [[w.StudyInstanceUID, 'accession', false]]);
      assert.equal(detail.timeline.at(-1).status, 'arrived');
      // The archive holds them under the order's patient, accession and study (QIDO-RS, as the radiologist).
      const studies = await rest(`/dicom-web/studies?AccessionNumber=E2EACC1`);
      assert.deepEqual(studies.map((s: any) => [s['0020000D'].Value[0], s['00100020'].Value[0], s['00201208'].Value[0]]), [[w.StudyInstanceUID, 'E2E-P1', 3]]);
      const frames = await ris.waitForFrames(2, 30_000);
      const arrived = frames[1]!;
      assert.deepEqual([segment(arrived, 'ORC')![1], segment(arrived, 'ORC')![5]], ['SC', 'IP']);
      assert.equal(segment(arrived, 'NTE')![3], `Images arrived (image ${w.StudyInstanceUID})`);
    });

    await t.test('MPPS N-SET COMPLETED naming the instances: completed, the step leaves the worklist; the RIS is told (ORC-5 CM)', async () => {
      const [set] = await sendMpps(dicom.port, aet, [{ kind: 'set', uid: mppsUid, elements: {
        PerformedProcedureStepStatus: 'COMPLETED', PerformedProcedureStepEndDate: DAY, PerformedProcedureStepEndTime: '102500',
        PerformedSeriesSequence: [{
          SeriesInstanceUID: seriesUid, ProtocolName: 'HEAD', RetrieveAETitle: aet, SeriesDescription: 'axial', PerformingPhysicianName: '', OperatorsName: 'TECH^ONE',
          ReferencedImageSequence: sopUids.map((uid) => ({ ReferencedSOPClassUID: CT_IMAGE_STORAGE, ReferencedSOPInstanceUID: uid })),
          ReferencedNonImageCompositeSOPInstanceSequence: [],
        }],
      } }], STATION);
      assert.equal(set!.status, 0x0000, set!.errorComment);
      const detail = await orderDetail();
      assert.equal(detail.status, 'completed');
      assert.deepEqual(detail.steps.map((s: any) => s.status), ['COMPLETED']);
      assert.deepEqual(await findWorklist(dicom.port, aet, [`${SPS}.ScheduledStationAETitle=${STATION}`, 'AccessionNumber'], STATION), []);
      const frames = await ris.waitForFrames(3, 30_000);
      assert.deepEqual([segment(frames[2]!, 'ORC')![1], segment(frames[2]!, 'ORC')![5]], ['SC', 'CM']);
      const mpps = await rest(`/api/ris/mpps/${mppsUid}`);
      assert.equal(mpps.status, 'COMPLETED');
      assert.deepEqual(mpps.scheduledSteps.map((s: any) => [s.accessionNumber, s.stepId, s.order]), [['E2EACC1', 'SPS-E2E1', 'E2EACC1']]);
      // The Performed Series Sequence checked against the archive: the three instances storescu sent, nothing else.
      assert.deepEqual(mpps.performedSeriesCheck, {
        mpps: [mppsUid], studies: [worklistItem.StudyInstanceUID], named: 3, archived: 3, missing: 0, unnamed: 0, complete: true,
        series: [{ seriesInstanceUid: seriesUid, performed: true, named: 3, archived: 3, missing: [], unnamed: [] }],
      });
    });

    await t.test('mllp_send: ORU^R01 final report, AA', async () => {
      assert.deepEqual(await mllpSend(mllp!.port, [messages.oru]), [['AA', 'E2E-ORU']]);
    });

    await t.test('the order over REST: every step in order with its time and source, the final report, the linked study', async () => {
      const detail = await orderDetail();
      const studyUid = worklistItem.StudyInstanceUID;
      assert.equal(detail.status, 'final-report');
      assert.deepEqual(detail.timeline.map((e: any) => [e.status, e.source.kind, e.source.ref, e.stepId]), [
        ['ordered', 'hl7', 'RIS^HOSP:E2E-ORM', null],
        ['scheduled', 'hl7', 'RIS^HOSP:E2E-ORM', null],
        ['in-progress', 'mpps', mppsUid, 'SPS-E2E1'],
        ['arrived', 'image', studyUid, null],
        ['completed', 'mpps', mppsUid, 'SPS-E2E1'],
        ['final-report', 'hl7', 'RIS^HOSP:E2E-ORU', null],
      ]);
      // Each with its time: ISO-8601, in the order of the steps (no wall-clock value asserted).
      const times = detail.timeline.map((e: any) => e.at as string);
      for (const at of times) assert.ok(!Number.isNaN(Date.parse(at)) && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(at), at);
      for (let i = 1; i < times.length; i++) assert.ok(Date.parse(times[i]!) >= Date.parse(times[i - 1]!), `${times[i - 1]} then ${times[i]}`);
      assert.deepEqual(detail.reports.map((r: any) => [r.version, r.status, r.text, r.author, r.supersededAt, r.studyInstanceUid]),
        [[1, 'F', 'No acute intracranial abnormality.', 'READER^ROSA', null, studyUid]]);
      assert.deepEqual(detail.studies.map((s: any) => [s.studyInstanceUid, s.matchedBy, s.patientMismatch]), [[studyUid, 'accession', false]]);
      assert.equal(detail.patient.patientId, 'E2E-P1');
      assert.equal(detail.identityMismatch, null, 'the images carry the order\'s patient');
      assert.deepEqual([detail.performedSeriesCheck.named, detail.performedSeriesCheck.missing, detail.performedSeriesCheck.unnamed, detail.performedSeriesCheck.complete], [3, 0, 0, true]);
      assert.equal(detail.referringPhysician, 'REFERRER^RITA');
      assert.equal(detail.orderingPhysician, 'ORDERER^OSCAR');
      const reports = await rest('/api/ris/reports?accessionNumber=E2EACC1');
      assert.deepEqual(reports.items.map((r: any) => [r.status, r.supersededAt]), [['F', null]]);
    });

    await t.test('the chain through FHIR: ServiceRequest, DiagnosticReport, ImagingStudy and Patient agree with the order and validate against R4', async () => {
      const fhir = async (url: string) => {
        const r = await fetch(`${base}/fhir/R4/${url}`, { headers: { authorization: `Bearer ${radiologist}`, accept: 'application/fhir+json' } });
        assert.equal(r.status, 200, `${url}: ${await r.clone().text()}`);
        return await r.json() as any;
      };
      const order = await orderDetail();
      const studyUid = worklistItem.StudyInstanceUID;
      const requests = await fhir('ServiceRequest?identifier=E2EACC1');
      assert.equal(requests.total, 1);
      const request = requests.entry[0].resource;
      assert.equal(request.id, String(order.pk));
      assert.equal(request.status, 'completed', 'a final report completes the request');
      const reports = await fhir(`DiagnosticReport?based-on=ServiceRequest/${request.id}`);
      assert.equal(reports.total, 1);
      const report = reports.entry[0].resource;
      assert.equal(report.status, 'final');
      assert.equal(report.conclusion, 'No acute intracranial abnormality.');
      const study = await fhir(`ImagingStudy/${studyUid}`);
      assert.deepEqual(report.imagingStudy.map((r: any) => r.reference), [`ImagingStudy/${studyUid}`]);
      assert.deepEqual(study.basedOn.map((r: any) => r.reference), [`ServiceRequest/${request.id}`]);
      assert.equal(study.numberOfInstances, 3);
      const patient = await fhir(study.subject.reference);
      assert.ok(patient.identifier.some((i: any) => i.value === 'E2E-P1'));
      assert.equal(request.subject.reference, study.subject.reference);
      const problems = [request, report, study, patient].flatMap((r) => r4Problems(r).map((p) => `${r.resourceType}/${r.id} ${p}`));
      assert.deepEqual(problems, []);
    });

    await t.test('the RIS got exactly the status messages in progress, images arrived, completed, each acknowledged', async () => {
      await runner.whenIdle();
      const frames = ris.frames;
      assert.deepEqual(frames.map((f) => [segment(f, 'MSH')![9], segment(f, 'ORC')![1], segment(f, 'ORC')![5], segment(f, 'OBR')![18], segment(f, 'NTE')?.[3] ?? null]), [
        ['ORM^O01^ORM_O01', 'SC', 'IP', 'E2EACC1', null],
        ['ORM^O01^ORM_O01', 'SC', 'IP', 'E2EACC1', `Images arrived (image ${worklistItem.StudyInstanceUID})`],
        ['ORM^O01^ORM_O01', 'SC', 'CM', 'E2EACC1', null],
      ]);
      assert.equal(new Set(frames.map((f) => segment(f, 'MSH')![10])).size, 3, 'three messages, not retransmissions');
      assert.ok(frames.every((f) => segment(f, 'PID')![3] === 'E2E-P1^^^HOSP^MR'));
      const jobs = (await archive.jobs.list({ type: 'ris.hl7-status' }, { limit: 10, offset: 0 })).items;
      assert.deepEqual(jobs.map((j) => j.state).sort(), ['succeeded', 'succeeded', 'succeeded']);
    });
  });
}

after(() => killAllChildren());
