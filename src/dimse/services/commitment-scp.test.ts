/**
 * Storage Commitment Push Model: the result comes back as an N-EVENT-REPORT on the same association, or, when
 * the requester has released it, on a new association to the requester's registered address with Atrium
 * asking for the SCP role; a requester that is not listening gets it later from a retry job. No DCMTK tool
 * plays the commitment SCU (3.6.7), so Atrium's own requestor does, and a test acceptor plays the requester
 * waiting for its result.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { freePort } from '../../../test/support/dcmtk.ts';
import { waitFor } from '../../../test/support/dimse-peers.ts';
import { archiveDimseServices, startDicomService, type DicomService } from './dicom-service.ts';
import { startDicomServer, type DicomServer, type ProposedContext } from '../acceptor.ts';
import { requestAssociation } from '../requestor.ts';
import type { Association, IncomingRequest } from '../association.ts';
import { CommandField, type CommandSet } from '../command.ts';
import { Status } from '../status.ts';
import { PresentationContextResult } from '../pdu.ts';
import { parseDataset } from '../../dicom/parse-dataset.ts';
import { toDicomJson, type DicomJsonDataSet } from '../../dicom/dicom-json.ts';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../../dicom/transfer-syntax.ts';
import { generateUid } from '../../dicom/uid.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { JobRunner } from '../../jobs/job-runner.ts';
import { encodeJsonDataset } from './identifier.ts';
import { COMMITMENT_REPORT_JOB, type CommitmentReport } from './commitment-scp.ts';
import { dicomJobHandlers } from '../../exchange/dicom-jobs.ts';
import { DicomClient } from './scu.ts';
import { StorageCommitmentPushModel, StorageCommitmentPushModelInstance } from './sop-classes.ts';

let t: TestArchive;
let dicom: DicomService;
let stored: { sopClassUid: string; sopInstanceUid: string };
/** Atrium's log (the DICOM service's), to check what an administrator is told. */
const logged: { level: number; msg: string }[] = [];

before(async () => {
  t = await createTestArchive('sqlite+fs');
  const log = pino({ level: 'info' }, { write: (line: string) => { logged.push(JSON.parse(line)); } });
  const archive = { ...t.archive, log };
  dicom = await startDicomService({ ...archive, dimseServices: archiveDimseServices(archive) }, { port: 0 });
  const result = await t.archive.ingest.ingest(syntheticInstance({ rows: 8, columns: 8 }), { source: 'test' });
  assert.ok(result.status === 'stored');
  stored = { sopClassUid: result.sopClassUid, sopInstanceUid: result.sopInstanceUid };
});

after(async () => {
  await dicom?.close();
  await t?.cleanup();
});

function actionInformation(transactionUid: string, references: { sopClassUid: string; sopInstanceUid: string }[]): Uint8Array {
  return encodeJsonDataset({
    '00081195': { vr: 'UI', Value: [transactionUid] },
    '00081199': { vr: 'SQ', Value: references.map((r) => ({ '00081150': { vr: 'UI', Value: [r.sopClassUid] }, '00081155': { vr: 'UI', Value: [r.sopInstanceUid] } })) },
  }, ExplicitVRLittleEndian);
}

async function requestCommitment(association: Association, transactionUid: string, references: { sopClassUid: string; sopInstanceUid: string }[]): Promise<number | undefined> {
  const pc = association.findContext(StorageCommitmentPushModel)!;
  let status: number | undefined;
  for await (const rsp of association.request(pc.id, {
    CommandField: CommandField.N_ACTION_RQ, RequestedSOPClassUID: StorageCommitmentPushModel,
    RequestedSOPInstanceUID: StorageCommitmentPushModelInstance, ActionTypeID: 1,
  }, actionInformation(transactionUid, references))) status = rsp.command.Status;
  return status;
}

/** A modality asks for commitment of `references` and releases as soon as the N-ACTION is answered. */
async function commitAndRelease(callingAETitle: string, transactionUid: string, references: { sopClassUid: string; sopInstanceUid: string }[]): Promise<void> {
  const association = await requestAssociation({
    host: '127.0.0.1', port: dicom.port, callingAETitle, calledAETitle: 'ATRIUM',
    contexts: [{ abstractSyntax: StorageCommitmentPushModel, transferSyntaxes: [ExplicitVRLittleEndian] }],
  });
  assert.equal(await requestCommitment(association, transactionUid, references), Status.Success);
  await association.release();
}

interface Report { eventTypeId: number | undefined; report: DicomJsonDataSet }

function reportOf(request: IncomingRequest, bytes: Uint8Array): Report {
  return { eventTypeId: request.command.EventTypeID, report: toDicomJson(parseDataset(bytes, request.presentationContext.transferSyntax)) };
}

interface RequesterAcceptor {
  server: DicomServer;
  /** What Atrium proposed and sent, per association. */
  associations: { callingAETitle: string; calledAETitle: string; proposed: ProposedContext[] }[];
  reports: (Report & { command: CommandSet })[];
}

/** The requester's own listener, answering role selection for Storage Commitment with `grantScpRole`. */
async function startRequesterAcceptor(options: { port?: number; grantScpRole?: boolean } = {}): Promise<RequesterAcceptor> {
  const acceptor: Omit<RequesterAcceptor, 'server'> = { associations: [], reports: [] };
  const server = await startDicomServer({
    host: '127.0.0.1', port: options.port ?? 0,
    negotiate: (rq) => {
      acceptor.associations.push({ callingAETitle: rq.callingAETitle, calledAETitle: rq.calledAETitle, proposed: rq.contexts });
      return {
        accept: true,
        contexts: rq.contexts.map((pc) => pc.abstractSyntax === StorageCommitmentPushModel && pc.transferSyntaxes.includes(ImplicitVRLittleEndian)
          ? { id: pc.id, transferSyntax: ImplicitVRLittleEndian } : { id: pc.id, result: PresentationContextResult.AbstractSyntaxNotSupported }),
        roles: new Map([[StorageCommitmentPushModel, { scuRole: true, scpRole: options.grantScpRole ?? true }]]),
      };
    },
    onAssociation: (association) => association.onRequest(async (request) => {
      const chunks: Uint8Array[] = [];
      for await (const c of request.dataset!) chunks.push(c);
      acceptor.reports.push({ command: request.command, ...reportOf(request, Buffer.concat(chunks)) });
      await association.respond(request, { Status: Status.Success, AffectedSOPInstanceUID: StorageCommitmentPushModelInstance, EventTypeID: request.command.EventTypeID });
    }),
  });
  return { server, ...acceptor };
}

const commitmentJobs = async () => (await t.archive.jobs.list({ type: COMMITMENT_REPORT_JOB }, { limit: 100, offset: 0 })).items;
const uidsIn = (report: DicomJsonDataSet, tag: string) => ((report[tag]?.Value ?? []) as DicomJsonDataSet[]).map((i) => i['00081155'].Value![0]);

test('the result arrives on the same association: committed and failed instances', async () => {
  await t.archive.peers.upsert({ aeTitle: 'MODALITY', host: '127.0.0.1', port: 1, operations: ['echo', 'store', 'commit'] });
  const association = await requestAssociation({
    host: '127.0.0.1', port: dicom.port, callingAETitle: 'MODALITY', calledAETitle: 'ATRIUM',
    contexts: [{ abstractSyntax: StorageCommitmentPushModel, transferSyntaxes: [ExplicitVRLittleEndian] }],
  });
  const reported = new Promise<Report>((resolve) => {
    association.onRequest(async (request) => {
      const chunks: Uint8Array[] = [];
      for await (const c of request.dataset!) chunks.push(c);
      await association.respond(request, { Status: Status.Success, AffectedSOPInstanceUID: StorageCommitmentPushModelInstance });
      resolve(reportOf(request, Buffer.concat(chunks)));
    });
  });
  const transactionUid = generateUid();
  const missing = { sopClassUid: stored.sopClassUid, sopInstanceUid: generateUid() };
  assert.equal(await requestCommitment(association, transactionUid, [stored, missing]), Status.Success);
  const { eventTypeId, report } = await reported;
  await association.release();
  assert.equal(eventTypeId, 2, 'failures exist: event type 2');
  assert.equal(report['00081195'].Value![0], transactionUid);
  const committed = report['00081199'].Value as DicomJsonDataSet[];
  const failed = report['00081198'].Value as DicomJsonDataSet[];
  assert.deepEqual(committed.map((i) => i['00081155'].Value![0]), [stored.sopInstanceUid]);
  assert.deepEqual(failed.map((i) => [i['00081155'].Value![0], i['00081197'].Value![0]]), [[missing.sopInstanceUid, Status.NoSuchSOPInstance]]);
});

test('the requester released at once: the result comes on a new association, Atrium proposing the SCP role', async () => {
  const requester = await startRequesterAcceptor();
  try {
    await t.archive.peers.upsert({ aeTitle: 'MODALITY2', host: '127.0.0.1', port: requester.server.port, operations: ['commit'] });
    const mixed = generateUid();
    const missing = { sopClassUid: stored.sopClassUid, sopInstanceUid: generateUid() };
    await commitAndRelease('MODALITY2', mixed, [stored, missing]);
    await waitFor(() => requester.reports.length === 1, 'the N-EVENT-REPORT on a new association');

    const [association] = requester.associations;
    assert.equal(association.callingAETitle, 'ATRIUM', 'the same AE title as on the N-ACTION (J.3.3.1.2)');
    assert.equal(association.calledAETitle, 'MODALITY2');
    const proposed = association.proposed.find((pc) => pc.abstractSyntax === StorageCommitmentPushModel);
    assert.deepEqual([proposed?.scuRole, proposed?.scpRole], [false, true], 'SCP/SCU role selection: Atrium as SCP only');
    const { command, eventTypeId, report } = requester.reports[0];
    assert.equal(command.AffectedSOPClassUID, StorageCommitmentPushModel);
    assert.equal(command.AffectedSOPInstanceUID, StorageCommitmentPushModelInstance);
    assert.equal(eventTypeId, 2, 'failures exist: event type 2');
    assert.equal(report['00081195'].Value![0], mixed);
    assert.deepEqual(uidsIn(report, '00081199'), [stored.sopInstanceUid]);
    const failed = report['00081198'].Value as DicomJsonDataSet[];
    assert.deepEqual(failed.map((i) => [i['00081150'].Value![0], i['00081155'].Value![0], i['00081197'].Value![0]]),
      [[missing.sopClassUid, missing.sopInstanceUid, 0x0112]], 'Failure Reason 0x0112: no such object instance');

    // All stored: event type 1, no Failed SOP Sequence.
    const allStored = generateUid();
    await commitAndRelease('MODALITY2', allStored, [stored]);
    await waitFor(() => requester.reports.length === 2, 'the second N-EVENT-REPORT');
    assert.equal(requester.reports[1].eventTypeId, 1);
    assert.equal(requester.reports[1].report['00081195'].Value![0], allStored);
    assert.deepEqual(uidsIn(requester.reports[1].report, '00081199'), [stored.sopInstanceUid]);
    assert.equal(requester.reports[1].report['00081198'], undefined);
    assert.deepEqual(await commitmentJobs(), [], 'delivered at once: nothing left to retry');
  } finally {
    await requester.server.close();
  }
});

test('a requester that is not listening gets the result from a retry job once it listens', async () => {
  const port = await freePort();
  await t.archive.peers.upsert({ aeTitle: 'MODALITY3', host: '127.0.0.1', port, operations: ['commit'] });
  const transactionUid = generateUid();
  await commitAndRelease('MODALITY3', transactionUid, [stored]);
  const isWarning = (l: { msg: string }) => /^storage commitment result not delivered to MODALITY3: cannot connect/.test(l.msg);
  // The job row is readable as soon as it is committed; the warning follows once the job is durable.
  await waitFor(async () => (await commitmentJobs()).length === 1 && logged.some(isWarning), 'the retry job and its warning');
  const [queued] = await commitmentJobs();
  const payload = queued.payload as CommitmentReport;
  assert.deepEqual([queued.state, payload.requester, payload.transactionUid, payload.eventTypeId], ['queued', 'MODALITY3', transactionUid, 1]);
  const warning = logged.find(isWarning);
  assert.ok(warning, 'the failed delivery is logged');
  assert.match(warning.msg, new RegExp(`job ${queued.id} retries it`));
  assert.equal(warning.level, 40, 'a warning');

  const runner = new JobRunner({ queue: t.archive.jobs, log: t.archive.log, pollIntervalMs: 50 });
  runner.registerAll(dicomJobHandlers(t.archive, new DicomClient(t.archive)));
  let requester: RequesterAcceptor | undefined;
  try {
    // Still not listening: the attempt fails and is scheduled again later.
    await runner.start();
    await runner.whenIdle();
    const retried = (await t.archive.jobs.get(queued.id))!;
    assert.equal(retried.state, 'queued');
    assert.equal(retried.attempts, 1);
    assert.match(retried.lastError ?? '', /cannot connect/);
    assert.ok(new Date(retried.runAt).getTime() > Date.now(), 'the next attempt waits (backoff)');

    requester = await startRequesterAcceptor({ port });
    await t.archive.jobs.retry(queued.id); // due now rather than after the backoff
    runner.wake();
    await waitFor(async () => (await t.archive.jobs.get(queued.id))!.state === 'succeeded', 'the job to deliver the result');
    assert.equal(requester.reports.length, 1);
    assert.equal(requester.reports[0].eventTypeId, 1);
    assert.equal(requester.reports[0].report['00081195'].Value![0], transactionUid);
    assert.deepEqual(uidsIn(requester.reports[0].report, '00081199'), [stored.sopInstanceUid]);
  } finally {
    await runner.stop();
    await requester?.server.close();
  }
});

test('a requester that refuses Atrium the SCP role: not sent, and the reason logged', async () => {
  const requester = await startRequesterAcceptor({ grantScpRole: false });
  try {
    await t.archive.peers.upsert({ aeTitle: 'MODALITY4', host: '127.0.0.1', port: requester.server.port, operations: ['commit'] });
    const transactionUid = generateUid();
    await commitAndRelease('MODALITY4', transactionUid, [stored]);
    await waitFor(() => logged.some((l) => l.msg.startsWith('storage commitment result not delivered to MODALITY4')), 'the log of the refusal');
    const line = logged.find((l) => l.msg.startsWith('storage commitment result not delivered to MODALITY4'))!;
    assert.match(line.msg, /did not accept Atrium in the SCP role/);
    assert.equal(requester.associations.length, 1);
    assert.equal(requester.reports.length, 0, 'no N-EVENT-REPORT without the SCP role');
    const job = (await commitmentJobs()).find((j) => (j.payload as CommitmentReport).transactionUid === transactionUid);
    assert.equal(job?.state, 'queued', 'retried: the requester may be reconfigured');
    await t.archive.jobs.cancel(job!.id);
  } finally {
    await requester.server.close();
  }
});
