import type { Logger } from 'pino';
import type { Association, IncomingRequest } from '../association.ts';
import { CommandField } from '../command.ts';
import { Status, describeStatus } from '../status.ts';
import { encodeFileMeta } from '../../dicom/part10-writer.ts';
import type { IngestResult, IngestService } from '../../archive/ingest.ts';
import type { AuditService, StudyAccumulator } from '../../audit/audit-service.ts';
import { auditAside, type DimseRequest, type DimseService } from './dimse-service.ts';
import { acceptsUnknownStorage, isStorageSopClass, storableTransferSyntax } from './sop-classes.ts';

/** How long the stores of an open association may wait for their audit record. */
const STORE_AUDIT_EVERY_MS = 2_000;

export interface StorageServiceDeps {
  ingest: IngestService;
  audit: AuditService;
  log: Logger;
  /** Private SOP classes (a vendor's raw data) are stored too when the administrator allows it. */
  acceptUnknownSopClasses: boolean;
}

/**
 * The Storage Service Class SCP (PS3.4 Annex B). The stores of one association are audited once per study,
 * with their count, like a retrieve: the record (PS3.15 A.5.3.2 "DICOM Instances Transferred") is written when
 * the association ends, and every STORE_AUDIT_EVERY_MS meanwhile for an association a modality keeps open.
 * One record per instance cost a study lookup and an index transaction per C-STORE.
 */
export function storageService(deps: StorageServiceDeps): DimseService {
  const accumulators = new WeakMap<Association, StudyAccumulator>();
  const inFlight = new Set<Promise<void>>();
  const flush = (accumulator: StudyAccumulator) => {
    const written = auditAside(accumulator.flush(), deps.log);
    inFlight.add(written);
    void written.finally(() => inFlight.delete(written));
  };
  const accumulatorOf = ({ association, audit }: DimseRequest) => {
    let accumulator = accumulators.get(association);
    if (!accumulator) {
      const created = deps.audit.accumulator({ ...audit, action: 'store' });
      accumulators.set(association, accumulator = created);
      const timer = setInterval(() => { if (created.size > 0) flush(created); }, STORE_AUDIT_EVERY_MS);
      timer.unref();
      void association.closed.finally(() => {
        clearInterval(timer);
        flush(created);
      });
    }
    return accumulator;
  };
  return {
    name: 'storage',
    // A storage context in which the requester asks to be the SCP belongs to a C-GET (PS3.4 C.4.3.1).
    accepts: (pc) => pc.scpRole !== true && (isStorageSopClass(pc.abstractSyntax) || (deps.acceptUnknownSopClasses && acceptsUnknownStorage(pc.abstractSyntax))),
    commands: [CommandField.C_STORE_RQ],
    operation: 'store',
    action: 'study:write',
    auditAction: 'store',
    // The sender's preference: stored as received.
    transferSyntax: (proposed) => proposed.find(storableTransferSyntax),
    async handle(rq) {
      const stores = accumulatorOf(rq);
      const result = await handleStore(rq.request, rq.association, deps);
      if (!result) return;
      // What ingest says it stored counts in the association's record of that study.
      if ('studyInstanceUid' in result) {
        stores.add({ studyInstanceUid: result.studyInstanceUid, seriesInstanceUid: 'seriesInstanceUid' in result ? result.seriesInstanceUid : undefined, sopClassUid: result.sopClassUid });
      } else {
        void auditAside(deps.audit.record({ ...rq.audit, action: 'store', outcome: 'minor-failure', outcomeReason: result.status }), deps.log);
      }
    },
    async close() {
      await Promise.allSettled([...inFlight]);
    },
  };
}

/**
 * C-STORE SCP (PS3.4 B.2): the data set streams from the association into the one ingest pipeline, with
 * a File Meta Information built from the command and the presentation context in front (PS3.10 7.1), so
 * the stored object is a Part-10 file. The response is sent only after ingest returns, that is after the
 * object is durable and indexed.
 */
export async function handleStore(request: IncomingRequest, association: Association, deps: { ingest: IngestService; log: Logger }): Promise<IngestResult | undefined> {
  const { command, presentationContext } = request;
  const sopClassUid = command.AffectedSOPClassUID ?? '';
  const sopInstanceUid = command.AffectedSOPInstanceUID ?? '';
  const respond = (status: number, errorComment?: string) => association.respond(request, {
    CommandField: CommandField.C_STORE_RSP, Status: status, AffectedSOPInstanceUID: sopInstanceUid,
    ...(errorComment ? { ErrorComment: errorComment.slice(0, 64) } : {}),
  });
  // The sender: the caller on associations it opened, the called AE when C-GET brings objects back on ours.
  const senderAE = association.role === 'acceptor' ? association.callingAETitle : association.calledAETitle;
  const context = { association: association.id, senderAE, sopInstanceUid, sopClassUid };

  if (!request.dataset) {
    await respond(Status.CannotUnderstand, 'C-STORE-RQ without a data set');
    return;
  }
  if (sopClassUid !== presentationContext.abstractSyntax) {
    await request.dataset.discard();
    deps.log.warn({ ...context, contextSopClass: presentationContext.abstractSyntax }, 'C-STORE refused: SOP class differs from the presentation context');
    await respond(Status.SOPClassNotSupported, 'SOP class differs from the presentation context');
    return;
  }
  const meta = encodeFileMeta({
    mediaStorageSOPClassUID: sopClassUid,
    mediaStorageSOPInstanceUID: sopInstanceUid,
    transferSyntaxUID: presentationContext.transferSyntax,
    // Provenance (PS3.10 7.1). Duplicates are told by the data set's hash, so this meta (or any other)
    // never makes the same object sent by two AEs, or imported and sent, a conflicting duplicate.
    sourceApplicationEntityTitle: senderAE,
  });
  const dataset = request.dataset;
  async function* part10(): AsyncIterable<Uint8Array> {
    yield meta;
    yield* dataset;
  }

  let result: IngestResult;
  try {
    result = await deps.ingest.ingest(part10(), { source: `dimse:${senderAE}`, originalName: `${senderAE}/${sopInstanceUid}` });
  } catch (error) {
    if (!association.isOpen) {
      // The peer went away mid-object: ingest dropped the partial bytes, and there is nobody to answer.
      deps.log.warn({ ...context, err: error }, 'C-STORE interrupted: association ended before the data set was complete; nothing stored');
      return;
    }
    await dataset.discard().catch(() => {});
    deps.log.error({ ...context, err: error }, `C-STORE failed: ${describeStatus(Status.OutOfResources)}`);
    await respond(Status.OutOfResources, 'the archive could not store the object');
    return;
  }
  const status = storeStatus(result);
  if (status !== Status.Success) {
    deps.log.warn({ ...context, status: `0x${status.toString(16).padStart(4, '0')}`, reason: 'reason' in result ? result.reason : undefined }, `C-STORE ${describeStatus(status)}`);
  }
  await respond(status, 'reason' in result ? result.reason : undefined);
  return result;
}

/** How an ingest outcome is told to a C-STORE SCU (PS3.4 Table B.2-1, PS3.7 Annex C). */
export function storeStatus(result: IngestResult): number {
  switch (result.status) {
    case 'stored':
    case 'duplicate':
      // An identical copy is already archived: for the sender the object is safely stored.
      return Status.Success;
    case 'skipped':
    case 'rejected': // invalid-uid under ingest.invalidUidPolicy "reject"
      return Status.CannotUnderstand;
    case 'quarantined':
      switch (result.reasonCode) {
        case 'duplicate-conflict': return Status.DuplicateSOPInstance;
        case 'inconsistent-file-meta': return Status.DataSetDoesNotMatchSOPClass;
        case 'not-storable': return Status.DataSetDoesNotMatchSOPClass;
        default: return Status.CannotUnderstand;
      }
  }
}
