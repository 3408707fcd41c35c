import type { Archive } from '../../app.ts';
import { startDicomServer, type AssociateDecision, type AssociateRequestInfo, type ContextDecision, type DicomServer } from '../acceptor.ts';
import { Rejection } from '../acceptor.ts';
import type { Association, IncomingRequest } from '../association.ts';
import { CommandField, commandName } from '../command.ts';
import { handleEcho } from '../echo.ts';
import { Status } from '../status.ts';
import { PresentationContextResult } from '../pdu.ts';
import type { DicomOperation } from '../../ports/peer-registry.ts';
import { handleStore } from './store-scp.ts';
import { handleFind } from './find-scp.ts';
import { handleRetrieve, type RetrieveDeps } from './retrieve-scp.ts';
import { handleCommitment } from './commitment-scp.ts';
import { outboundTls } from './tls.ts';
import { isStorageSopClass, operationOf, queryRoot, storableTransferSyntax, StorageCommitmentPushModel, UNCOMPRESSED } from './sop-classes.ts';

export interface DicomService {
  port: number;
  tlsPort: number | null;
  close(): Promise<void>;
}

/**
 * Atrium as a DICOM application entity: the listeners (plain and TLS), association negotiation against the
 * AE registry (who may do what), and the dispatch of each request to its service. Thin: the services do
 * the work through the archive.
 */
export async function startDicomService(archive: Archive, options: { port?: number; tlsPort?: number } = {}): Promise<DicomService> {
  const config = archive.config.dicom;
  const log = archive.log.child({ transport: 'dimse' });
  const tlsFiles = outboundTls(archive.config);
  const retrieveDeps: RetrieveDeps = {
    index: archive.index, retrieve: archive.retrieve, applicationEntities: archive.applicationEntities, log, aeTitle: config.aeTitle,
    // Outbound TLS (C-MOVE destinations marked tls) presents our certificate and trusts the configured CA.
    outbound: { maxPduLength: config.maxPduLength, ...(tlsFiles ? { tls: tlsFiles } : {}) },
  };

  const negotiate = async (rq: AssociateRequestInfo): Promise<AssociateDecision> => {
    if (rq.calledAETitle.trim() !== config.aeTitle) {
      return { ...Rejection.CalledAETitleNotRecognized, detail: `called AE title "${rq.calledAETitle}" is not ours ("${config.aeTitle}")` };
    }
    const permitted = new Map<DicomOperation, boolean>();
    const allowed = async (op: DicomOperation) => {
      if (!permitted.has(op)) permitted.set(op, (await archive.applicationEntities.permits(rq.callingAETitle, op)).allowed);
      return permitted.get(op)!;
    };
    const contexts: ContextDecision[] = [];
    const roles = new Map<string, { scuRole: boolean; scpRole: boolean }>();
    for (const pc of rq.contexts) {
      // A storage context in which the requester asks to be the SCP belongs to a C-GET (PS3.4 C.4.3.1).
      const getStorage = pc.scpRole === true && isStorageSopClass(pc.abstractSyntax);
      const op = getStorage ? 'get' : operationOf(pc.abstractSyntax, config.acceptUnknownSopClasses);
      if (!op) { contexts.push({ id: pc.id, result: PresentationContextResult.AbstractSyntaxNotSupported }); continue; }
      if (!(await allowed(op))) { contexts.push({ id: pc.id, result: PresentationContextResult.UserRejection }); continue; }
      const ts = op === 'store' || getStorage
        ? pc.transferSyntaxes.find(storableTransferSyntax) // the sender's preference: stored as received
        : UNCOMPRESSED.find((t) => pc.transferSyntaxes.includes(t));
      contexts.push(ts ? { id: pc.id, transferSyntax: ts } : { id: pc.id, result: PresentationContextResult.TransferSyntaxesNotSupported });
      if (getStorage) roles.set(pc.abstractSyntax, { scuRole: pc.scuRole ?? false, scpRole: true });
      if (pc.abstractSyntax === StorageCommitmentPushModel && pc.scuRole !== undefined) roles.set(pc.abstractSyntax, { scuRole: true, scpRole: true });
    }
    if (!contexts.some((c) => 'transferSyntax' in c)) {
      // Refused by permission: the caller is not one we serve for this. Otherwise nothing proposed is supported.
      const refused = contexts.some((c) => 'result' in c && c.result === PresentationContextResult.UserRejection);
      return refused
        ? { ...Rejection.CallingAETitleNotRecognized, detail: `"${rq.callingAETitle}" may not use any of the ${rq.contexts.length} proposed contexts` }
        : { ...Rejection.NoReasonGiven, detail: `none of the ${rq.contexts.length} proposed presentation contexts is supported` };
    }
    // Extended negotiation (PS3.4 C.5.1.1.1, C.5.2.1.1): relational queries and retrieval, combined date-time
    // matching; not fuzzy semantic matching nor timezone adjustment.
    const extendedNegotiation = new Map<string, Uint8Array>();
    for (const [sopClass, info] of rq.extendedNegotiation) {
      if (!queryRoot(sopClass)) continue;
      const answer = new Uint8Array(info.length);
      if (info.length > 0) answer[0] = info[0] === 1 ? 1 : 0;
      if (info.length > 1 && sopClass.endsWith('.1')) answer[1] = info[1] === 1 ? 1 : 0;
      extendedNegotiation.set(sopClass, answer);
    }
    return { accept: true, contexts, roles, extendedNegotiation, ...(rq.userIdentity?.positiveResponseRequested ? { userIdentityResponse: new Uint8Array(0) } : {}) };
  };

  const onAssociation = (association: Association) => {
    const running = new Map<number, AbortController>();
    association.onRequest(async (request) => {
      const field = request.command.CommandField;
      if (field === CommandField.C_CANCEL_RQ) {
        running.get(request.command.MessageIDBeingRespondedTo ?? -1)?.abort();
        return;
      }
      const controller = new AbortController();
      const messageId = request.command.MessageID ?? -1;
      running.set(messageId, controller);
      try {
        await dispatch(request, association, controller.signal);
      } finally {
        running.delete(messageId);
      }
    });
  };

  const dispatch = async (request: IncomingRequest, association: Association, signal: AbortSignal): Promise<void> => {
    switch (request.command.CommandField) {
      case CommandField.C_ECHO_RQ: return await handleEcho(request, association);
      case CommandField.C_STORE_RQ: return await handleStore(request, association, { ingest: archive.ingest, log });
      case CommandField.C_FIND_RQ:
        return await handleFind(request, association, { index: archive.index, log, aeTitle: config.aeTitle, caseInsensitivePersonNames: config.caseInsensitivePersonNames }, signal);
      case CommandField.C_MOVE_RQ: return await handleRetrieve('move', request, association, retrieveDeps, signal);
      case CommandField.C_GET_RQ: return await handleRetrieve('get', request, association, retrieveDeps, signal);
      case CommandField.N_ACTION_RQ:
        if (request.presentationContext.abstractSyntax === StorageCommitmentPushModel) return await handleCommitment(request, association, retrieveDeps);
    }
    await request.dataset?.discard();
    log.warn({ association: association.id, callingAE: association.callingAETitle, command: commandName(request.command.CommandField) }, 'unsupported DIMSE operation');
    await association.respond(request, { Status: Status.UnrecognizedOperation });
  };

  const common = {
    host: config.host, maxAssociations: config.maxAssociations, maxPduLength: config.maxPduLength,
    timeouts: { artimMs: config.artimTimeoutMs, idleMs: config.idleTimeoutMs || 2 ** 31 - 1 },
    negotiate, onAssociation, logger: log,
  };
  const servers: DicomServer[] = [await startDicomServer({ ...common, port: options.port ?? config.port })];
  if (config.tls && tlsFiles) {
    servers.push(await startDicomServer({
      ...common, port: options.tlsPort ?? config.tls.port,
      // BCP 195 (PS3.15 B.9): TLS 1.2 or later only.
      tls: { ...tlsFiles, requestCert: config.tls.requireClientCert },
    }));
  }
  log.info({ aeTitle: config.aeTitle, port: servers[0].port, tlsPort: servers[1]?.port ?? null }, `DICOM ${config.aeTitle} listening on port ${servers[0].port}`);
  return {
    port: servers[0].port,
    tlsPort: servers[1]?.port ?? null,
    async close() {
      await Promise.all(servers.map((s) => s.close()));
    },
  };
}

