import type { Logger } from 'pino';
import type { Association, IncomingRequest } from '../association.ts';
import { requestAssociation } from '../requestor.ts';
import { CommandField } from '../command.ts';
import { Status } from '../status.ts';
import { findElement, stringValue } from '../../dicom/dataset.ts';
import type { DicomJsonDataSet } from '../../dicom/dicom-json.ts';
import type { IndexStore } from '../../ports/index-store.ts';
import type { ApplicationEntities } from '../../dicom-access/application-entities.ts';
import { readIdentifier, encodeJsonDataset } from './identifier.ts';
import { StorageCommitmentPushModel, StorageCommitmentPushModelInstance, UNCOMPRESSED } from './sop-classes.ts';

const TransactionUID = 0x00081195;
const ReferencedSOPSequence = 0x00081199;
const ReferencedSOPClassUID = 0x00081150;
const ReferencedSOPInstanceUID = 0x00081155;

export interface CommitmentDeps {
  index: IndexStore;
  applicationEntities: ApplicationEntities;
  log: Logger;
  aeTitle: string;
  outbound: { maxPduLength: number; tls?: import('node:tls').ConnectionOptions };
}

/**
 * Storage Commitment Push Model SCP (PS3.4 J.3): N-ACTION asks us to take responsibility for instances;
 * Atrium acknowledges only what is durable and indexed, so the answer can be given at once: an
 * N-EVENT-REPORT on the same association while it is open, otherwise on a new association to the
 * requester (a known peer), in which Atrium keeps the SCP role (J.3.3, role selection).
 */
export async function handleCommitment(request: IncomingRequest, association: Association, deps: CommitmentDeps): Promise<void> {
  const context = { association: association.id, callingAE: association.callingAETitle };
  const respond = (status: number) => association.respond(request, {
    CommandField: CommandField.N_ACTION_RSP, Status: status, AffectedSOPClassUID: StorageCommitmentPushModel,
    AffectedSOPInstanceUID: StorageCommitmentPushModelInstance, ActionTypeID: request.command.ActionTypeID,
  });
  if (request.command.RequestedSOPInstanceUID !== StorageCommitmentPushModelInstance || request.command.ActionTypeID !== 1) {
    await request.dataset?.discard();
    await respond(request.command.ActionTypeID !== 1 ? Status.NoSuchActionType : Status.NoSuchSOPInstance);
    return;
  }
  let transactionUid: string;
  let references: { sopClassUid: string; sopInstanceUid: string }[];
  try {
    const info = await readIdentifier(request);
    transactionUid = stringValue(info, TransactionUID) ?? '';
    if (!transactionUid) throw new Error('Transaction UID (0008,1195) is missing');
    references = (findElement(info, ReferencedSOPSequence)?.items ?? []).map((item) => ({
      sopClassUid: stringValue(item, ReferencedSOPClassUID) ?? '', sopInstanceUid: stringValue(item, ReferencedSOPInstanceUID) ?? '',
    }));
  } catch (error) {
    deps.log.warn({ ...context, reason: (error as Error).message }, 'storage commitment refused: invalid N-ACTION information');
    await respond(Status.MissingAttribute);
    return;
  }
  await respond(Status.Success);

  const committed: DicomJsonDataSet[] = [];
  const failed: DicomJsonDataSet[] = [];
  for (const ref of references) {
    const instance = ref.sopInstanceUid ? await deps.index.findInstance(ref.sopInstanceUid) : null;
    const item: DicomJsonDataSet = {
      '00081150': { vr: 'UI', Value: [ref.sopClassUid] },
      '00081155': { vr: 'UI', Value: [ref.sopInstanceUid] },
    };
    if (instance && instance.sopClassUid === ref.sopClassUid) committed.push(item);
    else failed.push({ ...item, '00081197': { vr: 'US', Value: [instance ? Status.ClassInstanceConflict : Status.NoSuchSOPInstance] } });
  }
  const report: DicomJsonDataSet = {
    '00081195': { vr: 'UI', Value: [transactionUid] },
    ...(committed.length ? { '00081199': { vr: 'SQ', Value: committed } } : {}),
    ...(failed.length ? { '00081198': { vr: 'SQ', Value: failed } } : {}),
  };
  const eventTypeId = failed.length ? 2 : 1;
  deps.log.info({ ...context, transactionUid, committed: committed.length, failed: failed.length }, 'storage commitment result');
  await sendEventReport(association, report, eventTypeId, deps);
}

async function sendEventReport(association: Association, report: DicomJsonDataSet, eventTypeId: number, deps: CommitmentDeps): Promise<void> {
  const command = {
    CommandField: CommandField.N_EVENT_REPORT_RQ, AffectedSOPClassUID: StorageCommitmentPushModel,
    AffectedSOPInstanceUID: StorageCommitmentPushModelInstance, EventTypeID: eventTypeId,
  };
  const sameAssociation = association.isOpen ? association.findContext(StorageCommitmentPushModel) : undefined;
  if (sameAssociation) {
    for await (const _ of association.request(sameAssociation.id, command, encodeJsonDataset(report, sameAssociation.transferSyntax)));
    return;
  }
  const peer = await deps.applicationEntities.findPeer(association.callingAETitle);
  if (!peer) {
    deps.log.warn({ callingAE: association.callingAETitle }, 'storage commitment result not delivered: the requester released the association and is not a known peer');
    return;
  }
  const outbound = await requestAssociation({
    host: peer.host, port: peer.port, callingAETitle: deps.aeTitle, calledAETitle: peer.aeTitle, maxPduLength: deps.outbound.maxPduLength,
    contexts: [{ abstractSyntax: StorageCommitmentPushModel, transferSyntaxes: UNCOMPRESSED, scuRole: false, scpRole: true }],
    ...(peer.tls ? { tls: deps.outbound.tls ?? {} } : {}), logger: deps.log,
  });
  try {
    const pc = outbound.findContext(StorageCommitmentPushModel);
    if (!pc) throw new Error(`${peer.aeTitle} did not accept Storage Commitment with the SCP role for Atrium`);
    for await (const _ of outbound.request(pc.id, command, encodeJsonDataset(report, pc.transferSyntax)));
    await outbound.release();
  } catch (error) {
    if (outbound.isOpen) outbound.abort();
    throw error;
  }
}
