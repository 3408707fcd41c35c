/**
 * Storage Commitment Push Model: the result comes back as an N-EVENT-REPORT on the same association, unknown
 * instances listed as failed with their reason. No DCMTK tool plays the commitment SCU, so Atrium's own
 * requestor does. (The report on a new association, when the requester has released first, is not tested:
 * the SCP answers at once, so a test cannot make the release come first without racing it.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { requestAssociation } from '../requestor.ts';
import type { Association, IncomingRequest } from '../association.ts';
import { CommandField } from '../command.ts';
import { Status } from '../status.ts';
import { parseDataset } from '../../dicom/parse-dataset.ts';
import { toDicomJson, type DicomJsonDataSet } from '../../dicom/dicom-json.ts';
import { ExplicitVRLittleEndian } from '../../dicom/transfer-syntax.ts';
import { generateUid } from '../../dicom/uid.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { encodeJsonDataset } from './identifier.ts';
import { StorageCommitmentPushModel, StorageCommitmentPushModelInstance } from './sop-classes.ts';

let t: TestArchive;
let dicom: DicomService;
let stored: { sopClassUid: string; sopInstanceUid: string };

before(async () => {
  t = await createTestArchive('sqlite+fs');
  dicom = await startDicomService(t.archive, { port: 0 });
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

function reportOf(request: IncomingRequest, bytes: Uint8Array): { eventTypeId: number | undefined; report: DicomJsonDataSet } {
  return { eventTypeId: request.command.EventTypeID, report: toDicomJson(parseDataset(bytes, request.presentationContext.transferSyntax)) };
}

test('the result arrives on the same association: committed and failed instances', async () => {
  await t.archive.peers.upsert({ aeTitle: 'MODALITY', host: '127.0.0.1', port: 1, operations: ['echo', 'store', 'commit'] });
  const association = await requestAssociation({
    host: '127.0.0.1', port: dicom.port, callingAETitle: 'MODALITY', calledAETitle: 'ATRIUM',
    contexts: [{ abstractSyntax: StorageCommitmentPushModel, transferSyntaxes: [ExplicitVRLittleEndian] }],
  });
  const reported = new Promise<{ eventTypeId: number | undefined; report: DicomJsonDataSet }>((resolve) => {
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
