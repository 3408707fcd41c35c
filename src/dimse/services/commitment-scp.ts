import type { Logger } from 'pino';
import type { Association, IncomingRequest, PresentationContext } from '../association.ts';
import { requestAssociation } from '../requestor.ts';
import { CommandField } from '../command.ts';
import { Status, describeStatus, statusCategory } from '../status.ts';
import { AtriumError } from '../../errors.ts';
import { findElement, stringValue } from '../../dicom/dataset.ts';
import type { DicomJsonDataSet } from '../../dicom/dicom-json.ts';
import type { IndexStore } from '../../ports/index-store.ts';
import type { JobQueue } from '../../ports/job-queue.ts';
import type { ApplicationEntities } from '../../dicom-access/application-entities.ts';
import { readIdentifier, encodeJsonDataset } from './identifier.ts';
import { StorageCommitmentPushModel, StorageCommitmentPushModelInstance, UNCOMPRESSED } from './sop-classes.ts';
import { uncompressedTransferSyntax, type DimseService } from './dimse-service.ts';
import { contacting } from './peer-contact.ts';
import type { DicomPeer } from '../../ports/peer-registry.ts';

const TransactionUID = 0x00081195;
const ReferencedSOPSequence = 0x00081199;
const ReferencedSOPClassUID = 0x00081150;
const ReferencedSOPInstanceUID = 0x00081155;

/** The durable job that retries a Storage Commitment result the requester could not be sent at once. */
export const COMMITMENT_REPORT_JOB = 'dicom.commitment-report';
/**
 * A requester (a modality) may be switched off for a while: ten attempts with the job queue's doubling backoff
 * (5 s, 10 s, ... 21 min) span about 40 minutes; then the job is failed, visible at /api/jobs for a manual retry.
 */
const COMMITMENT_REPORT_ATTEMPTS = 10;

/** A Storage Commitment result (PS3.4 J.3.3.1) to be sent to its requester: the payload of the retry job. */
export interface CommitmentReport {
  /** The Calling AE Title of the N-ACTION: who gets the result. */
  requester: string;
  transactionUid: string;
  /** 1 every instance committed, 2 failures exist. */
  eventTypeId: 1 | 2;
  /** Event Information: Transaction UID, Referenced SOP Sequence, Failed SOP Sequence (DICOM JSON). */
  eventInformation: DicomJsonDataSet;
}

/** What it takes to send a result on a new association. */
export interface CommitmentReportDeps {
  applicationEntities: ApplicationEntities;
  log: Logger;
  aeTitle: string;
  outbound: { maxPduLength: number; tls?: import('node:tls').ConnectionOptions };
}

export interface CommitmentDeps extends CommitmentReportDeps {
  index: IndexStore;
  jobs: JobQueue;
}

/** The Storage Commitment Push Model SCP (PS3.4 J.3) as a DIMSE service. */
export function commitmentService(deps: CommitmentDeps): DimseService {
  return {
    name: 'storage-commitment',
    accepts: (pc) => pc.abstractSyntax === StorageCommitmentPushModel,
    commands: [CommandField.N_ACTION_RQ],
    operation: 'commit',
    action: null,
    auditAction: null,
    transferSyntax: uncompressedTransferSyntax,
    // The requester may take the SCP role too: the result then comes back on its association (J.3.3.1.2).
    roles: (pc) => (pc.scuRole !== undefined ? { scuRole: true, scpRole: true } : undefined),
    handle: ({ request, association }) => handleCommitment(request, association, deps),
  };
}

/**
 * Storage Commitment Push Model SCP (PS3.4 J.3): N-ACTION asks us to take responsibility for instances;
 * Atrium acknowledges only what is durable and indexed, so the result is known at once. It goes back as an
 * N-EVENT-REPORT on the same association while the requester keeps it open, otherwise on a new association
 * to the requester (a known peer) in which Atrium asks for the SCP role (J.3.3.1.2); when that fails, a
 * durable job retries it.
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
  const report: CommitmentReport = {
    requester: association.callingAETitle.trim(), transactionUid, eventTypeId: failed.length ? 2 : 1,
    eventInformation: {
      '00081195': { vr: 'UI', Value: [transactionUid] },
      ...(committed.length ? { '00081199': { vr: 'SQ', Value: committed } } : {}),
      ...(failed.length ? { '00081198': { vr: 'SQ', Value: failed } } : {}),
    },
  };
  deps.log.info({ ...context, transactionUid, committed: committed.length, failed: failed.length }, 'storage commitment result');

  if (await reportOnSameAssociation(association, report, deps)) return;
  try {
    await reportOnNewAssociation(report, deps);
  } catch (error) {
    const where = { ...context, requester: report.requester, transactionUid, err: error };
    if (error instanceof AtriumError && error.code === 'not-found') {
      deps.log.error(where, `storage commitment result not delivered: ${error.message}`);
      return;
    }
    const job = await deps.jobs.enqueue(COMMITMENT_REPORT_JOB, report, { maxAttempts: COMMITMENT_REPORT_ATTEMPTS });
    deps.log.warn({ ...where, jobId: job.id },
      `storage commitment result not delivered to ${report.requester}: ${(error as Error).message}; job ${job.id} retries it`);
  }
}

/**
 * Sends the result on a new association to the requester, Atrium proposing the SCP role (its default role as
 * association requestor would be the SCU's: J.3.3.1.2 note 1). Throws when it was not delivered: an
 * AtriumError 'not-found' when the requester is not a known peer (no address: retrying cannot help).
 */
export async function reportOnNewAssociation(report: CommitmentReport, deps: CommitmentReportDeps): Promise<void> {
  const peer = await deps.applicationEntities.findPeer(report.requester);
  if (!peer) throw new AtriumError('not-found', `the requester ${report.requester || '(empty AE title)'} released the association and is not a known peer`);
  await contacting(deps.applicationEntities, peer.aeTitle, 'N-EVENT-REPORT (storage commitment result)', () => deliverReport(peer, report, deps),
    () => ({ ok: true, detail: 'delivered' }));
}

async function deliverReport(peer: DicomPeer, report: CommitmentReport, deps: CommitmentReportDeps): Promise<void> {
  // The same AE title as on the N-ACTION's association (J.3.3.1.2 note 2): ours.
  const outbound = await requestAssociation({
    host: peer.host, port: peer.port, callingAETitle: deps.aeTitle, calledAETitle: peer.aeTitle, maxPduLength: deps.outbound.maxPduLength,
    contexts: [{ abstractSyntax: StorageCommitmentPushModel, transferSyntaxes: UNCOMPRESSED, scuRole: false, scpRole: true }],
    ...(peer.tls ? { tls: deps.outbound.tls ?? {} } : {}), logger: deps.log,
  });
  try {
    const pc = outbound.findContext(StorageCommitmentPushModel);
    if (!pc) throw new Error(`${peer.aeTitle} did not accept the Storage Commitment Push Model`);
    // Role selection is mandatory for this SOP class (J.2.1): N-EVENT-REPORT is the SCP's to send.
    if (!pc.scpRole) throw new Error(`${peer.aeTitle} did not accept Atrium in the SCP role for Storage Commitment (SCP/SCU Role Selection, PS3.7 D.3.3.4)`);
    const status = await sendEventReport(outbound, pc, report);
    if (statusCategory(status) === 'failure') throw new Error(`${peer.aeTitle} answered the N-EVENT-REPORT with ${describeStatus(status)}`);
    deps.log.info({ association: outbound.id, requester: peer.aeTitle, transactionUid: report.transactionUid, eventTypeId: report.eventTypeId },
      'storage commitment result delivered on a new association');
  } catch (error) {
    if (outbound.isOpen) outbound.abort();
    throw error;
  }
  // Delivered: a failed release changes nothing for the requester.
  await outbound.release().catch(() => outbound.abort());
}

/** True when the requester took the result on the association of its N-ACTION. */
async function reportOnSameAssociation(association: Association, report: CommitmentReport, deps: CommitmentReportDeps): Promise<boolean> {
  const pc = association.isOpen ? association.findContext(StorageCommitmentPushModel) : undefined;
  if (!pc) return false;
  const context = { association: association.id, callingAE: association.callingAETitle, transactionUid: report.transactionUid };
  try {
    const status = await sendEventReport(association, pc, report);
    if (statusCategory(status) !== 'failure') return true;
    deps.log.warn({ ...context, status: describeStatus(status) }, 'storage commitment result refused on the same association; trying a new one');
  } catch (error) {
    // The requester may release as soon as it has the N-ACTION response (J.3.2.1.2), even with the report on its way.
    deps.log.info({ ...context, reason: (error as Error).message }, 'storage commitment result not answered on the same association; trying a new one');
  }
  return false;
}

async function sendEventReport(association: Association, pc: PresentationContext, report: CommitmentReport): Promise<number> {
  let status: number = Status.ProcessingFailure;
  for await (const rsp of association.request(pc.id, {
    CommandField: CommandField.N_EVENT_REPORT_RQ, AffectedSOPClassUID: StorageCommitmentPushModel,
    AffectedSOPInstanceUID: StorageCommitmentPushModelInstance, EventTypeID: report.eventTypeId,
  }, encodeJsonDataset(report.eventInformation, pc.transferSyntax))) status = rsp.command.Status ?? Status.ProcessingFailure;
  return status;
}
