// Reports to the EHR against a real MLLP listener (test/support/mllp-listener.ts, plain node:net): a final
// report (from an HL7 ORU) reaches the EHR as an ORU^R01 with the order numbers, the accession number, the
// text in OBX TX lines and status F, read back by Debian's python3-hl7; a correction (by REST) goes out with
// status C to every destination; the RIS that sent the ORU is not sent it back unless echoReports; FT puts
// the text in one OBX; a listener that is down gets the job retried, then delivered; a redelivered event
// queues nothing more; a version superseded before it went out is not sent after the correction.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive } from '../../test/support/archive.ts';
import { runPythonHl7, startTestMllpListener, waitForJobOfType, type TestMllpListener } from '../../test/support/mllp-listener.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { eventDispatcher, jobRunner, type Archive } from '../app.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, sectionOf } from '../config/config.ts';
import { risConfig, type Hl7Destination } from './config.ts';
import { risOf } from './module.ts';
import { HL7_REPORT_JOB, buildReportMessage } from './hl7/report-outbound.ts';
import type { Job } from '../ports/job-queue.ts';
import type { ChangeContext } from './ris-context.ts';

const pid = (id: string) => `PID|1||${id}^^^HOSP^MR||O'NEIL^ANNA||19750505|F`;
const orm = (id: string, accession: string) => [pid(id), `ORC|NW|PL-${accession}|FL-${accession}|||||||||^HOUSE^GREGORY`,
  seg('OBR', { 1: '1', 2: `PL-${accession}`, 3: `FL-${accession}`, 4: 'CTHEAD^CT Head^LOCAL', 18: accession, 19: `RP-${accession}`, 24: 'CT', 27: '^^^20240305101500^^R' })];
const oru = (id: string, accession: string, status: string, lines: string[]) => [pid(id), `ORC|RE|PL-${accession}|FL-${accession}`,
  seg('OBR', { 1: '1', 2: `PL-${accession}`, 3: `FL-${accession}`, 4: 'CTHEAD^CT Head^LOCAL', 7: '20240305113000', 18: accession, 25: status, 32: 'RAD1&READER&ROSA' }),
  ...lines.map((line, i) => `OBX|${i + 1}|TX|REPORT||${line}||||||${status}`)];
const user: ChangeContext = { source: { kind: 'user', ref: 'rita' }, principal: { kind: 'user', id: 'rita' }, interface: 'rest' };

/** Fields of one segment (1-based: MSH[n] is MSH-n). */
function segment(frame: Buffer, id: string): string[] {
  const line = frame.toString('utf8').split('\r').find((s) => s.startsWith(`${id}|`));
  assert.ok(line, `no ${id} segment in ${frame.toString('utf8')}`);
  return id === 'MSH' ? ['MSH', '|', ...line.slice(4).split('|')] : line.split('|');
}

const accessionOf = (frame: Buffer) => segment(frame, 'OBR')[18];

/** The ORU read by python3-hl7 (Debian's, the library of mllp_send): an independent parser. */
async function readWithPythonHl7(frame: Buffer): Promise<Record<string, unknown>> {
  const script = `import sys, json, hl7
m = hl7.parse(sys.stdin.buffer.read().decode('utf-8'))
obr = m.segment('OBR')
obx = m.segments('OBX')
print(json.dumps({'type': str(m.segment('MSH')[9]), 'version': str(m.segment('MSH')[12]), 'pid3': str(m.segment('PID')[3][0][0]),
  'placer': str(obr[2]), 'filler': str(obr[3]), 'procedure': str(obr[4][0][0]), 'accession': str(obr[18]), 'resultStatus': str(obr[25]),
  'interpreter': str(obr[32][0][0][1]) if len(obr) > 32 else '', 'valueTypes': [str(o[2]) for o in obx], 'observation': str(obx[0][3][0][0]),
  'text': [str(o[5]) for o in obx], 'obxStatus': [str(o[11]) for o in obx]}))`;
  return await runPythonHl7<Record<string, unknown>>(script, frame);
}

const waitJob = (archive: Archive, predicate: (jobs: Job[]) => Job | undefined, what: string): Promise<Job> =>
  waitForJobOfType(archive, HL7_REPORT_JOB, predicate, what);

const jobsOf = (jobs: Job[], accession: string) => jobs.filter((j) => (j.payload as { accessionNumber: string }).accessionNumber === accession);

test('reports to the EHR as ORU^R01 over MLLP', async (t) => {
  const ta = await createTestArchive('sqlite+fs');
  after(() => ta.cleanup());
  const archive = ta.archive;
  let ehr: TestMllpListener = await startTestMllpListener();
  const ris = await startTestMllpListener();
  const ehrPort = ehr.port;
  after(async () => { await ehr.close(); await ris.close(); });
  const destination = (name: string, port: number, overrides: Partial<Hl7Destination> = {}): Hl7Destination => ({
    name, host: '127.0.0.1', port, tls: null, messageType: 'ORM^O01', version: '2.5.1', receivingApplication: 'EHR', receivingFacility: 'HOSP',
    statuses: [], echoHl7: false, reports: true, reportValueType: 'TX', echoReports: false, ackTimeoutSeconds: 1, maxAttempts: 5, ...overrides,
  });
  const setDestinations = (list: Hl7Destination[]) => {
    (archive.config.sections as Record<string, unknown>).ris = { ...sectionOf(archive.config, risConfig), hl7Destinations: list };
  };
  // The RIS sends orders and reports as RIS^HOSP (test/support/hl7.ts): its destination is that system.
  const both = () => [destination('ehr', ehrPort), destination('ris-main', ris.port, { receivingApplication: 'RIS', version: '2.3', statuses: ['completed'] })];
  setDestinations(both());
  const services = risOf(archive);
  const dispatcher = eventDispatcher(archive);
  const runner = jobRunner(archive, { pollIntervalMs: 50 });
  runner.start();
  after(() => runner.stop());
  const dispatch = async () => { for (let i = 0; i < 50; i++) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) return; } runner.wake(); };
  const send = async (message: Buffer) => {
    const ack = (await services.hl7.receive(message, { address: '127.0.0.1' })).ack.toString('utf8');
    assert.match(ack, /MSA\|AA/, ack);
  };
  await send(hl7([pid('REP1')]));
  await send(hl7(orm('REP1', 'REPACC1'), { type: 'ORM^O01' }));

  await t.test('a preliminary report is not sent', async () => {
    await send(hl7(oru('REP1', 'REPACC1', 'P', ['Preliminary: no bleed seen.']), { type: 'ORU^R01' }));
    await dispatch();
    await runner.whenIdle();
    assert.equal((await archive.jobs.list({ type: HL7_REPORT_JOB }, { limit: 1, offset: 0 })).total, 0);
    assert.equal(ehr.frames.length + ris.frames.length, 0);
  });

  await t.test('final report by ORU: the EHR gets an ORU^R01 with OBR order numbers, accession, OBX TX lines and F, read by python3-hl7; the RIS that sent it gets nothing', async () => {
    await send(hl7(oru('REP1', 'REPACC1', 'F', ['FINDINGS: No intracranial haemorrhage.', 'IMPRESSION: Normal CT head \\F\\ 5\\S\\2 \\T\\ done.']), { type: 'ORU^R01' }));
    await dispatch();
    const [frame] = await ehr.waitForFrames(1);
    const msh = segment(frame!, 'MSH');
    assert.equal(msh[9], 'ORU^R01^ORU_R01');
    assert.deepEqual([msh[3], msh[5], msh[6], msh[18]], ['ATRIUM', 'EHR', 'HOSP', 'UNICODE UTF-8']);
    const obr = segment(frame!, 'OBR');
    assert.deepEqual([obr[2], obr[3], obr[4], obr[7], obr[18], obr[19], obr[24], obr[25], obr[32]],
      ['PL-REPACC1', 'FL-REPACC1', 'CTHEAD^CT Head^LOCAL', '20240305113000', 'REPACC1', 'RP-REPACC1', 'RAD', 'F', '&READER&ROSA']);
    assert.equal(obr[16], '^HOUSE^GREGORY');
    assert.deepEqual(segment(frame!, 'ORC').slice(1, 4), ['RE', 'PL-REPACC1', 'FL-REPACC1']);
    const py = await readWithPythonHl7(frame!);
    assert.deepEqual(py, {
      type: 'ORU^R01^ORU_R01', version: '2.5.1', pid3: 'REP1', placer: 'PL-REPACC1', filler: 'FL-REPACC1', procedure: 'CTHEAD', accession: 'REPACC1',
      resultStatus: 'F', interpreter: 'READER', valueTypes: ['TX', 'TX'], observation: '18782-3',
      // python3-hl7 leaves escape sequences in: the delimiters of the text went out escaped.
      text: ['FINDINGS: No intracranial haemorrhage.', 'IMPRESSION: Normal CT head \\F\\ 5\\S\\2 \\T\\ done.'], obxStatus: ['F', 'F'],
    });
    const job = await waitJob(archive, (jobs) => jobs.find((j) => j.state === 'succeeded'), 'the report job');
    assert.deepEqual(job.result, { destination: 'ehr', controlId: msh[10], ack: 'AA', reportId: (job.payload as { reportId: number }).reportId, version: 2, resultStatus: 'F', sent: true });
    assert.equal(msh[10], `ATR${job.id}`);
    await runner.whenIdle();
    assert.equal(ris.frames.length, 0, 'the RIS that sent the report is not sent it back');
    assert.equal(jobsOf((await archive.jobs.list({ type: HL7_REPORT_JOB }, { limit: 100, offset: 0 })).items, 'REPACC1').length, 1);
  });

  await t.test('a correction by REST: ORU with OBR-25 and OBX-11 C to every destination (it did not come from the RIS)', async () => {
    const before = { ehr: ehr.frames.length, ris: ris.frames.length };
    const report = await services.reports.receiveReport(user, { accessionNumber: 'REPACC1', status: 'C', text: 'IMPRESSION: Small left subdural haematoma (corrected).', author: 'READER^ROSA' });
    assert.equal(report.version, 3);
    await dispatch();
    const [toEhr] = (await ehr.waitForFrames(before.ehr + 1)).slice(before.ehr);
    const [toRis] = (await ris.waitForFrames(before.ris + 1)).slice(before.ris);
    for (const frame of [toEhr!, toRis!]) {
      assert.equal(segment(frame, 'OBR')[25], 'C');
      assert.deepEqual(segment(frame, 'OBX').slice(1, 6), ['1', 'TX', '18782-3^Radiology Study observation (narrative)^LN', '1', 'IMPRESSION: Small left subdural haematoma (corrected).']);
      assert.equal(segment(frame, 'OBX')[11], 'C');
    }
    assert.equal(segment(toRis!, 'MSH')[12], '2.3', 'each destination its own version');
    assert.equal(segment(toRis!, 'MSH')[5], 'RIS');
    const py = await readWithPythonHl7(toEhr!);
    assert.equal(py.resultStatus, 'C');
    assert.deepEqual(py.obxStatus, ['C']);
  });

  await t.test('echoReports: the RIS is sent back the report it sent; FT: one OBX with \\.br\\ line breaks', async () => {
    setDestinations([destination('ehr', ehrPort, { reportValueType: 'FT' }), destination('ris-main', ris.port, { receivingApplication: 'RIS', echoReports: true })]);
    await send(hl7(orm('REP1', 'REPACC2'), { type: 'ORM^O01' }));
    const before = { ehr: ehr.frames.length, ris: ris.frames.length };
    await send(hl7(oru('REP1', 'REPACC2', 'F', ['Line one.', 'Line two.']), { type: 'ORU^R01' }));
    await dispatch();
    const [toEhr] = (await ehr.waitForFrames(before.ehr + 1)).slice(before.ehr);
    const [toRis] = (await ris.waitForFrames(before.ris + 1)).slice(before.ris);
    assert.equal(accessionOf(toRis!), 'REPACC2');
    const lines = toEhr!.toString('utf8').split('\r').filter((s) => s.startsWith('OBX|'));
    assert.equal(lines.length, 1);
    assert.deepEqual(segment(toEhr!, 'OBX').slice(2, 6), ['FT', '18782-3^Radiology Study observation (narrative)^LN', '1', 'Line one.\\.br\\Line two.']);
    assert.deepEqual((await readWithPythonHl7(toEhr!)).text, ['Line one.\\.br\\Line two.']);
    setDestinations(both());
  });

  await t.test('EHR listener down: the job is retried, then delivered once it is back', async () => {
    await send(hl7(orm('REP1', 'REPACC3'), { type: 'ORM^O01' }));
    await ehr.close();
    await services.reports.receiveReport(user, { accessionNumber: 'REPACC3', status: 'F', text: 'Normal chest.' });
    await dispatch();
    const waiting = await waitJob(archive, (jobs) => jobsOf(jobs, 'REPACC3').find((j) => j.state === 'queued' && j.attempts >= 1 && (j.payload as { destination: string }).destination === 'ehr'), 'a failed attempt');
    assert.match(waiting.lastError ?? '', /ECONNREFUSED|closed the connection/);
    ehr = await startTestMllpListener({ port: ehrPort });
    await archive.jobs.retry(waiting.id); // due now rather than after the backoff
    runner.wake();
    const done = await waitJob(archive, (jobs) => jobs.find((j) => j.id === waiting.id && j.state === 'succeeded'), 'the retried job');
    assert.ok(done.attempts >= 2);
    const [frame] = await ehr.waitForFrames(1);
    assert.deepEqual([accessionOf(frame!), segment(frame!, 'OBR')[25], segment(frame!, 'OBX')[5]], ['REPACC3', 'F', 'Normal chest.']);
    assert.equal(segment(frame!, 'MSH')[10], `ATR${waiting.id}`, 'the same MSH-10 on every attempt');
  });

  await t.test('a redelivered event queues no second message', async () => {
    const [event] = (await archive.jobs.list({ type: HL7_REPORT_JOB }, { limit: 200, offset: 0 })).items.filter((j) => (j.payload as { accessionNumber: string }).accessionNumber === 'REPACC3');
    const payload = event!.payload as { eventId: number; reportId: number };
    const handler = archive.eventHandlers.find((h) => h.name === 'ris.hl7-report')!;
    const report = (await services.reports.get(payload.reportId))!;
    const delivered = { id: payload.eventId, type: 'ReportFinal' as const, attempt: 2, createdAt: new Date().toISOString(),
      payload: { reportId: report.id, version: report.version, status: 'F' as const, accessionNumber: 'REPACC3', studyInstanceUid: report.studyInstanceUid, patientId: 'REP1', source: 'user', sourceRef: 'rita' } };
    await Promise.all([handler.handle(delivered), handler.handle({ ...delivered, attempt: 3 })]);
    await runner.whenIdle();
    assert.equal(jobsOf((await archive.jobs.list({ type: HL7_REPORT_JOB }, { limit: 200, offset: 0 })).items, 'REPACC3').length, 2, 'one per destination, as before');
  });

  await t.test('a final superseded by a correction before it went out is not sent after it', async () => {
    await send(hl7(orm('REP1', 'REPACC4'), { type: 'ORM^O01' }));
    setDestinations([destination('ehr', ehrPort)]);
    ehr.mode = 'silent';
    await services.reports.receiveReport(user, { accessionNumber: 'REPACC4', status: 'F', text: 'First reading.' });
    await dispatch();
    const first = await waitJob(archive, (jobs) => jobsOf(jobs, 'REPACC4').find((j) => j.state === 'queued' && j.attempts === 1), 'a timed-out attempt');
    await services.reports.receiveReport(user, { accessionNumber: 'REPACC4', status: 'C', text: 'Corrected reading.' });
    ehr.mode = 'AA';
    const before = ehr.frames.filter((f) => accessionOf(f) === 'REPACC4').length;
    await dispatch();
    await waitJob(archive, (jobs) => jobsOf(jobs, 'REPACC4').find((j) => j.id !== first.id && j.state === 'succeeded'), 'the correction');
    await archive.jobs.retry(first.id);
    runner.wake();
    const skipped = await waitJob(archive, (jobs) => jobs.find((j) => j.id === first.id && j.state === 'succeeded'), 'the superseded job');
    assert.equal((skipped.result as { sent: boolean }).sent, false);
    assert.equal((skipped.result as { supersededBy: number }).supersededBy, 2);
    const sent = ehr.frames.filter((f) => accessionOf(f) === 'REPACC4').slice(before);
    assert.deepEqual(sent.map((f) => [segment(f, 'OBR')[25], segment(f, 'OBX')[5]]), [['C', 'Corrected reading.']]);
  });
});

test('buildReportMessage: TX lines, FT, author and time forms, empty fields', () => {
  const order = {
    pk: 1, patient: { patientId: 'P|1', issuerOfPatientId: 'HOSP', patientName: 'DOE^JANE', patientBirthDate: '19800101', patientSex: 'F' },
    placerOrderNumber: null, fillerOrderNumber: 'F1', accessionNumber: 'A1', requestedProcedureId: null, requestedProcedureCode: null,
    requestedProcedureDescription: 'CT head', priority: 'ROUTINE' as const, screening: false, reason: null, referringPhysician: null, orderingPhysician: null,
    studyInstanceUid: '1.2.3', status: 'final-report' as const, steps: [], createdAt: '2024-03-05T10:00:00.000Z', updatedAt: '2024-03-05T10:00:00.000Z',
  };
  const report = {
    id: 7, accessionNumber: 'A1', studyInstanceUid: '1.2.3', version: 1, status: 'F' as const, text: 'a\r\nb\n\nc', author: 'SOLO', observedAt: '2024-03-05T11:30:00Z',
    source: { kind: 'user' as const, ref: 'rita' }, createdAt: '2024-03-05T11:31:02.123Z', supersededAt: null,
  };
  const destination = { version: '2.4', receivingApplication: 'EHR', receivingFacility: '', reportValueType: 'TX' as const };
  const text = buildReportMessage({ destination, sendingApplication: 'ATRIUM', sendingFacility: 'RAD', controlId: 'ATR1', order, report, now: new Date('2024-03-05T12:00:00Z') });
  const segments = text.split('\r').filter(Boolean);
  assert.equal(segments[0], 'MSH|^~\\&|ATRIUM|RAD|EHR||20240305120000||ORU^R01^ORU_R01|ATR1|P|2.4||||||UNICODE UTF-8');
  assert.equal(segments[1], 'PID|1||P\\F\\1^^^HOSP^MR||DOE^JANE||19800101|F');
  assert.equal(segments[3], 'OBR|1||F1|^CT head|||20240305113000|||||||||||A1||||20240305113102||RAD|F|||||||&SOLO');
  assert.deepEqual(segments.filter((s) => s.startsWith('OBX|')).map((s) => s.split('|')[5]), ['a', 'b', '', 'c']);
  const ft = buildReportMessage({ destination: { ...destination, reportValueType: 'FT' }, sendingApplication: 'ATRIUM', sendingFacility: 'RAD', controlId: 'ATR2', order, report: { ...report, observedAt: '20240305113000' }, now: new Date() });
  assert.match(ft, /\rOBX\|1\|FT\|18782-3\^Radiology Study observation \(narrative\)\^LN\|1\|a\\\.br\\b\\\.br\\\\\.br\\c\|\|\|\|\|\|F\|\|\|20240305113000\r$/);
});

test('ris.hl7Destinations: reports, reportValueType and echoReports are read with their defaults and checked', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-reports-config-'));
  try {
    const file = path.join(dir, 'atrium.json');
    await writeFile(file, JSON.stringify({ ris: { hl7Destinations: [
      { name: 'ris', host: 'ris.example' },
      { name: 'ehr', host: 'ehr.example', port: 6661, statuses: [], reports: true, reportValueType: 'FT', echoReports: true, receivingApplication: 'EPIC' },
    ] } }));
    const [ris, ehr] = sectionOf(loadConfig({ env: { ATRIUM_DATA: dir }, file, sections: [risConfig] }), risConfig).hl7Destinations;
    assert.deepEqual([ris!.reports, ris!.reportValueType, ris!.echoReports], [false, 'TX', false]);
    assert.deepEqual([ehr!.reports, ehr!.reportValueType, ehr!.echoReports, ehr!.statuses, ehr!.receivingApplication], [true, 'FT', true, [], 'EPIC']);
    await writeFile(file, JSON.stringify({ ris: { hl7Destinations: [{ name: 'ehr', host: 'ehr.example', reports: 'yes', reportValueType: 'ST' }] } }));
    assert.throws(() => loadConfig({ env: { ATRIUM_DATA: dir }, file, sections: [risConfig] }), (error: unknown) =>
      error instanceof ConfigError && /hl7Destinations\.0\.reports/.test(error.message) && /hl7Destinations\.0\.reportValueType/.test(error.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
