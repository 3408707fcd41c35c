import type { Logger } from 'pino';
import type { Association, IncomingRequest } from '../association.ts';
import { requestAssociation } from '../requestor.ts';
import { CommandField } from '../command.ts';
import { Status, describeStatus } from '../status.ts';
import { queryFromIdentifier } from '../../dicom/query/identifier.ts';
import type { RetrieveService } from '../../archive/retrieve.ts';
import type { IndexStore } from '../../ports/index-store.ts';
import type { ApplicationEntities } from '../../dicom-access/application-entities.ts';
import { readIdentifier, encodeJsonDataset } from './identifier.ts';
import { isStorageSopClass, QueryRetrieve, queryRetrieveExtendedNegotiation, queryRoot, storableTransferSyntax } from './sop-classes.ts';
import { subOperations } from './peer-contact.ts';
import { storageContexts, storeInstances, type SubOperationCounts } from './store-scu.ts';
import type { InstanceRecord } from '../../ports/index-store.ts';
import type { AuditService } from '../../audit/audit-service.ts';
import { auditAside, uncompressedTransferSyntax, type DimseService } from './dimse-service.ts';

export interface RetrieveDeps {
  index: IndexStore;
  retrieve: RetrieveService;
  applicationEntities: ApplicationEntities;
  log: Logger;
  aeTitle: string;
  /** Options for the association C-MOVE opens to its destination. */
  outbound: { maxPduLength: number; tls?: import('node:tls').ConnectionOptions };
  /** Told each instance selected for sending (the audit record of the export). */
  onInstance?: (instance: InstanceRecord) => void;
}

/**
 * The Query/Retrieve C-MOVE and C-GET SCPs, Patient Root and Study Root, and the storage contexts a C-GET
 * requester proposes to receive on. Every instance sent counts in one export record per study.
 */
export function retrieveServices(deps: Omit<RetrieveDeps, 'onInstance'> & { audit: AuditService }): DimseService[] {
  const retrieveService = (kind: 'move' | 'get'): DimseService => {
    const sopClasses = new Set<string>(kind === 'move'
      ? [QueryRetrieve.PatientRootMove, QueryRetrieve.StudyRootMove] : [QueryRetrieve.PatientRootGet, QueryRetrieve.StudyRootGet]);
    return {
      name: kind,
      accepts: (pc) => sopClasses.has(pc.abstractSyntax),
      commands: [kind === 'move' ? CommandField.C_MOVE_RQ : CommandField.C_GET_RQ],
      operation: kind,
      action: 'study:export',
      auditAction: 'export',
      transferSyntax: uncompressedTransferSyntax,
      extendedNegotiation: queryRetrieveExtendedNegotiation,
      async handle({ request, association, audit, signal }) {
        const destination = kind === 'move' ? { aeTitle: request.command.MoveDestination ?? null } : audit.origin;
        const accumulator = deps.audit.accumulator({ ...audit, action: 'export', destination });
        const counted = new Set<string>(); // C-MOVE looks an instance up twice (selection, then sending)
        const onInstance = (instance: InstanceRecord) => {
          if (counted.has(instance.sopInstanceUid)) return;
          counted.add(instance.sopInstanceUid);
          accumulator.add({ studyInstanceUid: instance.studyInstanceUid, seriesInstanceUid: instance.seriesInstanceUid, sopClassUid: instance.sopClassUid });
        };
        try {
          await handleRetrieve(kind, request, association, { ...deps, onInstance }, signal);
        } finally {
          void auditAside(accumulator.flush(), deps.log);
        }
      },
    };
  };
  const getStorage: DimseService = {
    name: 'get-storage',
    // A storage context in which the requester asks to be the SCP: C-GET sends its sub-operations on it (PS3.4 C.4.3.1).
    accepts: (pc) => pc.scpRole === true && isStorageSopClass(pc.abstractSyntax),
    commands: [],
    operation: 'get',
    action: null,
    auditAction: null,
    transferSyntax: (proposed) => proposed.find(storableTransferSyntax),
    roles: (pc) => ({ scuRole: pc.scuRole ?? false, scpRole: true }),
    handle: () => Promise.reject(new Error('a C-GET storage context carries the SCP\'s requests, not the requester\'s')),
  };
  return [retrieveService('move'), retrieveService('get'), getStorage];
}

const UNIQUE_KEYS = ['0020000D', '0020000E', '00080018', '00100020'];

/**
 * C-MOVE and C-GET SCP (PS3.4 C.4.2, C.4.3): the identifier's unique keys select instances, which are sent
 * by C-STORE sub-operations: to the Move Destination on a new association (C-MOVE), or back on this very
 * association, where the requester plays the storage SCP (C-GET). Pending responses carry the counts;
 * the final one lists the failed SOP instances. A C-CANCEL lets the sub-operation under way finish and
 * starts no other: the final status is then Cancel (0xFE00) with the counts, Remaining being the
 * sub-operations never started (PS3.4 C.4.2.3.1, C.4.3.3.1).
 */
export async function handleRetrieve(kind: 'move' | 'get', request: IncomingRequest, association: Association, deps: RetrieveDeps, signal: AbortSignal): Promise<void> {
  const rspField = kind === 'move' ? CommandField.C_MOVE_RSP : CommandField.C_GET_RSP;
  const context = { association: association.id, callingAE: association.callingAETitle, messageId: request.command.MessageID, destination: request.command.MoveDestination };
  const respond = (status: number, counts?: SubOperationCounts, extra: Record<string, unknown> = {}) => {
    const final = status !== Status.Pending;
    const numbers = counts ? {
      // Remaining is sent while pending and, after a cancel, as the sub-operations never started; never in
      // the other final responses (PS3.4 C.4.2.1.6, C.4.3.1.5).
      ...(final && status !== Status.Cancel ? {} : { NumberOfRemainingSuboperations: counts.remaining }),
      NumberOfCompletedSuboperations: counts.completed, NumberOfFailedSuboperations: counts.failed, NumberOfWarningSuboperations: counts.warning,
    } : {};
    const identifier = final && counts && counts.failedSopInstanceUids.length
      ? encodeJsonDataset({ '00080058': { vr: 'UI', Value: counts.failedSopInstanceUids } }, request.presentationContext.transferSyntax)
      : undefined;
    return association.respond(request, { CommandField: rspField, Status: status, ...numbers, ...extra }, identifier);
  };

  let uids: string[];
  try {
    const identifier = await readIdentifier(request);
    const query = queryFromIdentifier(identifier, undefined, { root: queryRoot(request.presentationContext.abstractSyntax) ?? 'STUDY', relational: true });
    const selective = query.keys.some((k) => UNIQUE_KEYS.includes(k.tag.toString(16).toUpperCase().padStart(8, '0')) && k.value !== '');
    if (!selective) throw new Error('no unique key (PatientID, StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID) has a value');
    uids = [];
    for await (const match of deps.index.find({ ...query, level: 'IMAGE', keys: [...query.keys, { tag: 0x00080018, vr: 'UI', value: '' }] })) {
      const uid = (match['00080018']?.Value?.[0] as string | undefined);
      if (uid) uids.push(uid);
    }
  } catch (error) {
    deps.log.warn({ ...context, reason: (error as Error).message }, `C-${kind.toUpperCase()} refused: identifier does not match SOP class`);
    await respond(Status.IdentifierDoesNotMatchSOPClass, undefined, { ErrorComment: (error as Error).message.slice(0, 64) });
    return;
  }

  let target = association;
  let moveDestination = '';
  if (kind === 'move') {
    const destinationAE = request.command.MoveDestination ?? '';
    const destination = await deps.applicationEntities.destination(destinationAE);
    if (!destination) {
      deps.log.warn(context, `C-MOVE refused: ${describeStatus(Status.MoveDestinationUnknown)} "${destinationAE}"`);
      await respond(Status.MoveDestinationUnknown, undefined, { ErrorComment: `unknown move destination ${destinationAE}`.slice(0, 64) });
      return;
    }
    const instances = (await Promise.all(uids.map((u) => deps.index.findInstance(u)))).filter((i) => i !== null);
    for (const instance of instances) deps.onInstance?.(instance);
    if (instances.length === 0) {
      await respond(Status.Success, { remaining: 0, completed: 0, failed: 0, warning: 0, failedSopInstanceUids: [] });
      return;
    }
    moveDestination = destination.aeTitle;
    try {
      target = await requestAssociation({
        host: destination.host, port: destination.port, callingAETitle: deps.aeTitle, calledAETitle: destination.aeTitle,
        contexts: storageContexts(instances), maxPduLength: deps.outbound.maxPduLength,
        ...(destination.tls ? { tls: deps.outbound.tls ?? {} } : {}), logger: deps.log,
      });
    } catch (error) {
      await deps.applicationEntities.recordContact(destination.aeTitle, 'failed', `C-STORE (C-MOVE from ${association.callingAETitle}): ${(error as Error).message}`);
      deps.log.warn({ ...context, err: error }, `C-MOVE failed: cannot associate with ${destination.aeTitle} at ${destination.host}:${destination.port}`);
      await respond(Status.OutOfResourcesUnableToPerformSubOperations, undefined, { ErrorComment: `cannot reach ${destination.aeTitle}`.slice(0, 64) });
      return;
    }
  }

  let counts: SubOperationCounts;
  try {
    counts = await storeInstances(target, uids, deps, {
      signal,
      moveOriginator: kind === 'move' ? { aeTitle: association.callingAETitle, messageId: request.command.MessageID ?? 0 } : undefined,
      onProgress: async (c) => {
        // Once cancelled, the next response is the final one.
        if (c.remaining > 0 && !signal.aborted && association.isOpen) await respond(Status.Pending, c);
      },
    });
  } catch (error) {
    if (target !== association) await deps.applicationEntities.recordContact(moveDestination, 'failed', `C-STORE (C-MOVE from ${association.callingAETitle}): ${(error as Error).message}`);
    throw error;
  } finally {
    if (target !== association) await target.release().catch(() => target.abort());
  }
  // The move destination's last contact: the association C-MOVE opened to it (C-GET stores go back to the caller, recorded when it called).
  if (target !== association) {
    await deps.applicationEntities.recordContact(moveDestination, counts.failed === 0 ? 'ok' : 'failed',
      `C-STORE (C-MOVE from ${association.callingAETitle}): ${subOperations(counts)}`);
  }
  if (!association.isOpen) return;
  // A cancel that came after the last sub-operation had started stopped nothing: the outcome stands.
  const cancelled = signal.aborted && counts.remaining > 0;
  const status = cancelled ? Status.Cancel
    : counts.failed === 0 && counts.warning === 0 ? Status.Success
    : counts.completed === 0 && counts.warning === 0 ? Status.OutOfResourcesUnableToPerformSubOperations
    : Status.SubOperationsCompleteWithFailures;
  deps.log.info({ ...context, remaining: counts.remaining, completed: counts.completed, failed: counts.failed, warning: counts.warning, cancelled },
    `C-${kind.toUpperCase()} done: ${describeStatus(status)}`);
  await respond(status, counts);
}
