// Outbound HL7 status messages against a real MLLP listener (test/support/mllp-listener.ts, plain node:net):
// an order status change (MPPS in progress, images arrived, completed, cancelled) reaches the listener as an
// ORM^O01 / OMI^O23 with ORC-1 SC and ORC-5 from table 0038, read back also by Debian's python3-hl7; a
// listener that is down, silent or answers AE gets the job retried and the message delivered once it
// answers AA; AR fails the job for good with the error; a redelivered event queues no second message.
// On SQLite and on PostgreSQL (the outbound table, the job queue and the outbox of each).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive } from '../../test/support/archive.ts';
import { runPythonHl7, startTestMllpListener, waitForJobOfType, type TestMllpListener } from '../../test/support/mllp-listener.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { eventDispatcher, jobRunner, type Archive } from '../app.ts';
import { sectionOf } from '../config/config.ts';
import { risConfig, type Hl7Destination } from './config.ts';
import { risOf } from './module.ts';
import { HL7_STATUS_JOB } from './hl7/outbound.ts';
import type { Job } from '../ports/job-queue.ts';
import type { ChangeContext } from './ris-context.ts';

const pid = (id: string) => `PID|1||${id}^^^HOSP^MR||O'NEIL^ANNA||19750505|F`;
const orm = (id: string, accession: string) => [pid(id), `ORC|NW|PL-${accession}|FL-${accession}||||^^^20240305101500^^S`,
  seg('OBR', { 1: '1', 2: `PL-${accession}`, 3: `FL-${accession}`, 4: 'CTHEAD^CT Head^LOCAL', 18: accession, 19: `RP-${accession}`, 20: `SPS-${accession}`, 21: 'CT_SCANNER', 24: 'CT', 27: '^^^20240305101500^^S' })];
const mpps = (uid: string): ChangeContext => ({ source: { kind: 'mpps', ref: uid }, principal: { kind: 'dicom-ae', id: 'CT_SCANNER' }, interface: 'dimse' });
const user: ChangeContext = { source: { kind: 'user', ref: 'admin' }, principal: { kind: 'user', id: 'admin' }, interface: 'rest' };

/** Fields of one segment as a plain split reads them (1-based: fields(seg)[n] is field n). */
function segment(frame: Buffer, id: string): string[] {
  const line = frame.toString('utf8').split('\r').find((s) => s.startsWith(`${id}|`));
  assert.ok(line, `no ${id} segment in ${frame.toString('utf8')}`);
  return id === 'MSH' ? ['MSH', '|', ...line.slice(4).split('|')] : line.split('|');
}

/** The frame read by python3-hl7 (Debian's, the library of mllp_send): an independent parser. */
async function readWithPythonHl7(frame: Buffer): Promise<Record<string, string>> {
  const script = `import sys, json, hl7
m = hl7.parse(sys.stdin.buffer.read().decode('utf-8'))
def f(s, n, c=None):
    v = m.segment(s)[n]
    return str(v[0][c]) if c is not None else str(v)
print(json.dumps({'type': f('MSH', 9), 'control': f('MSH', 10), 'version': f('MSH', 12), 'pid3': f('PID', 3, 0), 'name': f('PID', 5),
  'orc1': f('ORC', 1), 'orc5': f('ORC', 5), 'placer': f('ORC', 2), 'obr4': f('OBR', 4, 0), 'obr18': f('OBR', 18), 'obr24': f('OBR', 24)}))`;
  return await runPythonHl7<Record<string, string>>(script, frame);
}

const waitJob = (archive: Archive, predicate: (jobs: Job[]) => Job | undefined, what: string): Promise<Job> =>
  waitForJobOfType(archive, HL7_STATUS_JOB, predicate, what);

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) test(`outbound HL7 status messages over MLLP on ${engine}`, async (t) => {
  const ta = await createTestArchive(engine);
  after(() => ta.cleanup());
  const archive = ta.archive;
  let listener: TestMllpListener = await startTestMllpListener();
  const port = listener.port;
  after(() => listener.close());
  const destination = (name: string, overrides: Partial<Hl7Destination> = {}): Hl7Destination => ({
    name, host: '127.0.0.1', port, tls: null, messageType: 'ORM^O01', version: '2.3', receivingApplication: 'RIS', receivingFacility: 'HOSP',
    statuses: ['arrived', 'in-progress', 'completed', 'discontinued', 'cancelled'], echoHl7: false,
    reports: false, reportValueType: 'TX', echoReports: false, ackTimeoutSeconds: 1, maxAttempts: 5, ...overrides,
  });
  const setDestinations = (list: Hl7Destination[]) => {
    (archive.config.sections as Record<string, unknown>).ris = { ...sectionOf(archive.config, risConfig), hl7Destinations: list };
  };
  setDestinations([destination('ris-main')]);
  const ris = risOf(archive);
  const dispatcher = eventDispatcher(archive);
  const runner = jobRunner(archive, { pollIntervalMs: 50 });
  runner.start();
  after(() => runner.stop());
  /** Delivers every pending event (what `atrium serve`'s dispatcher does in the background). */
  const dispatch = async () => { for (let i = 0; i < 50; i++) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) return; } };
  const place = async (patientId: string, accession: string) => {
    const ack = (await ris.hl7.receive(hl7(orm(patientId, accession), { type: 'ORM^O01' }), { address: '127.0.0.1' })).ack.toString('utf8');
    assert.match(ack, /MSA\|AA/);
  };
  await ris.hl7.receive(hl7([pid('OUT1')]), { address: '127.0.0.1' });

  await t.test('MPPS in progress: an ORM^O01 SC with ORC-5 IP and the order\'s PID/OBR fields, read by python3-hl7 too', async () => {
    await place('OUT1', 'OUTACC1');
    await dispatch();
    assert.equal(listener.frames.length, 0, 'ordered and scheduled are not sent by default');
    await ris.orders.recordStepStatus(mpps('1.2.3.4.1'), { accessionNumber: 'OUTACC1', stepId: 'SPS-OUTACC1', status: 'IN PROGRESS' });
    await dispatch();
    runner.wake();
    const [frame] = await listener.waitForFrames(1);
    const msh = segment(frame!, 'MSH');
    assert.equal(msh[9], 'ORM^O01^ORM_O01');
    assert.equal(msh[5], 'RIS');
    assert.equal(msh[12], '2.3');
    assert.equal(msh[18], 'UNICODE UTF-8');
    const orc = segment(frame!, 'ORC');
    assert.deepEqual([orc[1], orc[2], orc[3], orc[5]], ['SC', 'PL-OUTACC1', 'FL-OUTACC1', 'IP']);
    const obr = segment(frame!, 'OBR');
    assert.deepEqual([obr[4], obr[18], obr[19], obr[20], obr[21], obr[24]], ['CTHEAD^CT Head^LOCAL', 'OUTACC1', 'RP-OUTACC1', 'SPS-OUTACC1', 'CT_SCANNER', 'CT']);
    assert.equal(obr[27], '^^^20240305101500^^S');
    assert.equal(segment(frame!, 'PID')[3], 'OUT1^^^HOSP^MR');
    const py = await readWithPythonHl7(frame!);
    assert.deepEqual(py, { type: 'ORM^O01^ORM_O01', control: msh[10], version: '2.3', pid3: 'OUT1', name: "O'NEIL^ANNA", orc1: 'SC', orc5: 'IP',
      placer: 'PL-OUTACC1', obr4: 'CTHEAD', obr18: 'OUTACC1', obr24: 'CT' });
    const job = await waitJob(archive, (jobs) => jobs.find((j) => j.state === 'succeeded'), 'the job to succeed');
    assert.deepEqual(job.result, { destination: 'ris-main', controlId: msh[10], ack: 'AA', orderStatus: 'IP' });
    assert.equal(msh[10], `ATR${job.id}`);
  });

  await t.test('images arrived: ORC-5 IP with an NTE saying so; OMI^O23 to a second destination with IPC', async () => {
    setDestinations([destination('ris-main'), destination('ris-omi', { messageType: 'OMI^O23', version: '2.5.1', statuses: ['arrived'] })]);
    await place('OUT1', 'OUTACC6');
    const order = (await ris.orders.find({ accessionNumber: 'OUTACC6' }))!;
    const sentBefore = listener.frames.length;
    const uid = order.studyInstanceUid;
    const stored = await archive.ingest.ingest(syntheticInstance({ patientId: 'OUT1', accessionNumber: 'OUTACC6', studyInstanceUid: uid, seriesInstanceUid: `${uid}.1`, sopInstanceUid: `${uid}.1.1`, modality: 'CT' }), { source: 'test' });
    assert.equal(stored.status, 'stored');
    await dispatch();
    runner.wake();
    const frames = (await listener.waitForFrames(sentBefore + 2)).slice(sentBefore);
    const orm = frames.find((f) => segment(f, 'MSH')[9] === 'ORM^O01^ORM_O01')!;
    const omi = frames.find((f) => segment(f, 'MSH')[9] === 'OMI^O23^OMI_O23')!;
    assert.equal(segment(orm, 'ORC')[5], 'IP');
    assert.match(segment(orm, 'NTE')[3]!, new RegExp(`^Images arrived \\(image ${uid.replace(/\./g, '\\.')}\\)$`));
    assert.equal(segment(omi, 'MSH')[12], '2.5.1');
    assert.equal(segment(omi, 'ORC')[5], 'IP');
    const ipc = segment(omi, 'IPC');
    assert.deepEqual([ipc[1], ipc[2], ipc[3], ipc[4], ipc[5], ipc[9]], ['OUTACC6', 'RP-OUTACC6', uid, 'SPS-OUTACC6', 'CT', 'CT_SCANNER']);
    assert.equal(segment(omi, 'TQ1')[9], 'S');
    setDestinations([destination('ris-main')]);
  });

  await t.test('listener down: the job is retried, then delivered (ORC-5 CM) once the listener is back', async () => {
    await listener.close();
    await ris.orders.recordStepStatus(mpps('1.2.3.4.1'), { accessionNumber: 'OUTACC1', stepId: 'SPS-OUTACC1', status: 'COMPLETED' });
    await dispatch();
    runner.wake();
    const waiting = await waitJob(archive, (jobs) => jobs.find((j) => j.state === 'queued' && j.attempts >= 1), 'a failed attempt');
    assert.match(waiting.lastError ?? '', /ECONNREFUSED|closed the connection/);
    listener = await startTestMllpListener({ port });
    await archive.jobs.retry(waiting.id); // due now instead of after the backoff
    runner.wake();
    const done = await waitJob(archive, (jobs) => jobs.find((j) => j.id === waiting.id && j.state === 'succeeded'), 'the retried job');
    assert.equal(done.attempts, 2);
    const [frame] = await listener.waitForFrames(1);
    assert.equal(segment(frame!, 'ORC')[5], 'CM');
  });

  await t.test('no answer in time, then AE: retried with the error kept; delivered once the listener answers AA', async () => {
    await ris.hl7.receive(hl7([pid('OUT2')]), { address: '127.0.0.1' });
    await place('OUT2', 'OUTACC2');
    listener.mode = 'silent';
    await ris.orders.recordStepStatus(mpps('1.2.3.4.2'), { accessionNumber: 'OUTACC2', stepId: 'SPS-OUTACC2', status: 'IN PROGRESS' });
    await dispatch();
    runner.wake();
    let job = await waitJob(archive, (jobs) => jobs.find((j) => j.state === 'queued' && j.attempts === 1), 'a timed-out attempt');
    assert.match(job.lastError ?? '', /no acknowledgment .* within 1000 ms/);
    listener.mode = 'AE';
    await archive.jobs.retry(job.id);
    runner.wake();
    job = await waitJob(archive, (jobs) => jobs.find((j) => j.id === job.id && j.state === 'queued' && j.attempts === 2), 'an AE attempt');
    assert.match(job.lastError ?? '', /answered ATR\d+ with AE: Order database unavailable, ERR-3 207, at ORC\^1\^5/);
    listener.mode = 'AA';
    await archive.jobs.retry(job.id);
    runner.wake();
    job = await waitJob(archive, (jobs) => jobs.find((j) => j.id === job.id && j.state === 'succeeded'), 'delivery after AE');
    const sent = listener.frames.filter((f) => segment(f, 'OBR')[18] === 'OUTACC2');
    assert.equal(sent.length, 3, 'three attempts reached the listener');
    assert.equal(new Set(sent.map((f) => segment(f, 'MSH')[10])).size, 1, 'every attempt has the same MSH-10');
  });

  await t.test('AR: the job fails for good at once, the error visible on the job', async () => {
    await place('OUT2', 'OUTACC3');
    listener.mode = 'AR';
    await ris.orders.cancelOrder(user, { accessionNumber: 'OUTACC3' }, 'patient declined');
    await dispatch();
    runner.wake();
    const job = await waitJob(archive, (jobs) => jobs.find((j) => (j.payload as { accessionNumber: string }).accessionNumber === 'OUTACC3' && j.state === 'failed'), 'the rejected job');
    assert.equal(job.attempts, 1);
    assert.match(job.lastError ?? '', /rejected ATR\d+ \(AR\): Unknown order, ERR-3 204, at OBR\^1\^18/);
    const frame = listener.frames.at(-1)!;
    assert.deepEqual([segment(frame, 'ORC')[1], segment(frame, 'ORC')[5], segment(frame, 'OBR')[18]], ['SC', 'CA', 'OUTACC3']);
    listener.mode = 'AA';
  });

  await t.test('a redelivered event (at least once) queues no second message, also after the first was sent', async () => {
    await place('OUT2', 'OUTACC4');
    await ris.orders.discontinueOrder(user, { accessionNumber: 'OUTACC4' }, 'contrast allergy');
    const handler = archive.eventHandlers.find((h) => h.name === 'ris.hl7-status')!;
    const event = { id: 900_001, type: 'OrderStatusChanged' as const, attempt: 1, createdAt: new Date().toISOString(),
      payload: { accessionNumber: 'OUTACC4', studyInstanceUid: (await ris.orders.find({ accessionNumber: 'OUTACC4' }))!.studyInstanceUid, patientId: 'OUT2', status: 'discontinued', source: 'user', sourceRef: 'admin' } };
    await Promise.all([handler.handle(event), handler.handle({ ...event, attempt: 2 })]);
    runner.wake();
    await waitJob(archive, (jobs) => jobs.find((j) => (j.payload as { eventId: number }).eventId === 900_001 && j.state === 'succeeded'), 'the job of the event');
    await handler.handle({ ...event, attempt: 3 });
    runner.wake();
    await runner.whenIdle();
    const jobs = (await archive.jobs.list({ type: HL7_STATUS_JOB }, { limit: 100, offset: 0 })).items.filter((j) => (j.payload as { eventId: number }).eventId === 900_001);
    assert.equal(jobs.length, 1);
    assert.equal(listener.frames.filter((f) => segment(f, 'OBR')[18] === 'OUTACC4' && segment(f, 'ORC')[5] === 'DC').length, 1);
    // And the real event of that discontinue, delivered by the dispatcher (twice if need be), one more message: one per status change.
    await dispatch();
    runner.wake();
    await waitJob(archive, (all) => { const mine = all.filter((j) => (j.payload as { accessionNumber: string }).accessionNumber === 'OUTACC4'); return mine.length === 2 && mine.every((j) => j.state === 'succeeded') ? mine[0] : undefined; }, 'the dispatched job');
  });

  await t.test('images arrived after MPPS IN PROGRESS are sent (IP with the NTE); after the order completed, not', async () => {
    const ingest = async (accession: string) => {
      const uid = (await ris.orders.find({ accessionNumber: accession }))!.studyInstanceUid;
      const stored = await archive.ingest.ingest(syntheticInstance({ patientId: 'OUT2', accessionNumber: accession, studyInstanceUid: uid, seriesInstanceUid: `${uid}.1`, sopInstanceUid: `${uid}.1.1`, modality: 'CT' }), { source: 'test' });
      assert.equal(stored.status, 'stored');
      await dispatch();
      runner.wake();
      await runner.whenIdle();
      return uid;
    };
    await place('OUT2', 'OUTACC7');
    await ris.orders.recordStepStatus(mpps('1.2.3.4.7'), { accessionNumber: 'OUTACC7', stepId: 'SPS-OUTACC7', status: 'IN PROGRESS' });
    await dispatch();
    runner.wake();
    await waitJob(archive, (jobs) => jobs.find((j) => (j.payload as { accessionNumber: string }).accessionNumber === 'OUTACC7' && j.state === 'succeeded'), 'the in-progress message');
    const uid = await ingest('OUTACC7');
    assert.equal((await ris.orders.find({ accessionNumber: 'OUTACC7' }))!.status, 'in-progress', 'the status stays the furthest reached');
    const arrived = await waitJob(archive, (jobs) => jobs.find((j) => (j.payload as { accessionNumber: string; status: string }).accessionNumber === 'OUTACC7' && (j.payload as { status: string }).status === 'arrived' && j.state === 'succeeded'), 'the images-arrived message');
    const frame = listener.frames.find((f) => segment(f, 'MSH')[10] === `ATR${arrived.id}`)!;
    assert.deepEqual([segment(frame, 'ORC')[5], segment(frame, 'NTE')[3]], ['IP', `Images arrived (image ${uid})`]);

    await place('OUT2', 'OUTACC8');
    await ris.orders.recordStepStatus(mpps('1.2.3.4.8'), { accessionNumber: 'OUTACC8', stepId: 'SPS-OUTACC8', status: 'IN PROGRESS' });
    await ris.orders.recordStepStatus(mpps('1.2.3.4.8'), { accessionNumber: 'OUTACC8', stepId: 'SPS-OUTACC8', status: 'COMPLETED' });
    await dispatch();
    runner.wake();
    await runner.whenIdle();
    await ingest('OUTACC8');
    const detail = (await ris.orders.detail((await ris.orders.find({ accessionNumber: 'OUTACC8' }))!.pk))!;
    assert.equal(detail.timeline.at(-1)!.status, 'arrived', 'on the timeline');
    const jobs = (await archive.jobs.list({ type: HL7_STATUS_JOB }, { limit: 100, offset: 0 })).items.filter((j) => (j.payload as { accessionNumber: string }).accessionNumber === 'OUTACC8');
    assert.deepEqual(jobs.map((j) => (j.payload as { status: string }).status).sort(), ['completed', 'in-progress'], 'no IP after CM');
  });

  await t.test('a message that waited for retries is not sent after a later status of its order was delivered', async () => {
    await place('OUT2', 'OUTACC9');
    await listener.close();
    await ris.orders.recordStepStatus(mpps('1.2.3.4.9'), { accessionNumber: 'OUTACC9', stepId: 'SPS-OUTACC9', status: 'IN PROGRESS' });
    await dispatch();
    runner.wake();
    const mine = (status: string) => (jobs: Job[]) => jobs.find((j) => (j.payload as { accessionNumber: string; status: string }).accessionNumber === 'OUTACC9' && (j.payload as { status: string }).status === status);
    const ip = await waitJob(archive, (jobs) => { const j = mine('in-progress')(jobs); return j && j.state === 'queued' && j.attempts >= 1 ? j : undefined; }, 'the failed IP attempt');
    await ris.orders.recordStepStatus(mpps('1.2.3.4.9'), { accessionNumber: 'OUTACC9', stepId: 'SPS-OUTACC9', status: 'COMPLETED' });
    await dispatch();
    listener = await startTestMllpListener({ port });
    // The later CM gets through first (its backoff is shorter), then the IP's retry comes due.
    const cm = await waitJob(archive, mine('completed'), 'the CM job');
    await archive.jobs.retry(cm.id);
    runner.wake();
    await waitJob(archive, (jobs) => { const j = mine('completed')(jobs); return j?.state === 'succeeded' ? j : undefined; }, 'CM delivered');
    await archive.jobs.retry(ip.id);
    runner.wake();
    const skipped = await waitJob(archive, (jobs) => { const j = mine('in-progress')(jobs); return j?.state === 'succeeded' ? j : undefined; }, 'the IP job done');
    assert.match(String((skipped.result as { skipped?: string }).skipped), new RegExp(`^superseded by ATR${cm.id}`));
    assert.deepEqual(listener.frames.filter((f) => segment(f, 'OBR')[18] === 'OUTACC9').map((f) => segment(f, 'ORC')[5]), ['CM'], 'the RIS never got IP after CM');
  });

  await t.test('changes that came in by HL7 are not echoed to the RIS unless echoHl7', async () => {
    const before = (await archive.jobs.list({ type: HL7_STATUS_JOB }, { limit: 1, offset: 0 })).total;
    await place('OUT2', 'OUTACC5');
    const ack = (await ris.hl7.receive(hl7([pid('OUT2'), 'ORC|CA|PL-OUTACC5|FL-OUTACC5', seg('OBR', { 1: '1', 2: 'PL-OUTACC5', 18: 'OUTACC5' })], { type: 'ORM^O01' }), { address: '127.0.0.1' })).ack.toString('utf8');
    assert.match(ack, /MSA\|AA/);
    await dispatch();
    assert.equal((await archive.jobs.list({ type: HL7_STATUS_JOB }, { limit: 1, offset: 0 })).total, before);
  });
});

