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
import { AuthError, authorize, type Action, type Principal } from '../../security/index.ts';
import { auditPrincipal, type StudyAccumulator } from '../../audit/audit-service.ts';
import type { IngestService } from '../../archive/ingest.ts';
import type { IndexStore } from '../../ports/index-store.ts';
import { isStorageSopClass, operationOf, queryRoot, storableTransferSyntax, StorageCommitmentPushModel, UNCOMPRESSED } from './sop-classes.ts';

/** How long the stores of an open association may wait for their audit record. */
const STORE_AUDIT_EVERY_MS = 2_000;

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

  const { security, audit } = archive;
  /** The principal of each association, decided at negotiation (key: remote address and calling AE). */
  const principals = new Map<string, Principal>();
  const keyOf = (remoteAddress: string, callingAE: string) => `${remoteAddress}|${callingAE.trim()}`;
  const ipOf = (remoteAddress: string) => remoteAddress.replace(/:[^:]*$/, '');

  const negotiate = async (rq: AssociateRequestInfo): Promise<AssociateDecision> => {
    // User identity (PS3.7 D.3.3.7): a failed identity rejects the association (rejected-permanent,
    // service-user, no-reason-given: PS3.8 Table 9-21 has no "not authenticated" reason) and is audited.
    let principal: Principal;
    const address = ipOf(rq.remoteAddress);
    if (rq.userIdentity) {
      const result = await security.authenticateDicomUser(rq.userIdentity, address);
      if (result instanceof AuthError) {
        await audit.record({
          principal: { kind: 'user', id: rq.userIdentity.type <= 2 ? rq.userIdentity.primary || null : null, displayName: null },
          action: 'login-failed', interface: 'dimse', origin: { address, aeTitle: rq.callingAETitle }, outcome: 'minor-failure', outcomeReason: result.code,
        }).catch((error) => log.error({ err: error }, 'audit record failed'));
        return { ...Rejection.NoReasonGiven, detail: `user identity refused: ${result.message}` };
      }
      principal = result;
    } else {
      // Known peers keep their configured operations (ApplicationEntities.permits below is the gate).
      principal = security.dicomAePrincipal(rq.callingAETitle, address, ['integration']);
    }
    principals.set(keyOf(rq.remoteAddress, rq.callingAETitle), principal);
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
    const key = keyOf(association.remoteAddress, association.callingAETitle);
    const principal = principals.get(key) ?? security.dicomAePrincipal(association.callingAETitle, ipOf(association.remoteAddress), ['integration']);
    principals.delete(key);
    const stores = storeAudit(association, principal);
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
        await dispatch(request, association, principal, controller.signal, stores);
      } finally {
        running.delete(messageId);
      }
    });
  };

  /** Users (user identity) are authorized per operation; AE-only callers were gated at negotiation. */
  const ACTION_OF: Partial<Record<number, Action>> = {
    [CommandField.C_STORE_RQ]: 'study:write', [CommandField.C_FIND_RQ]: 'query', [CommandField.C_MOVE_RQ]: 'study:export', [CommandField.C_GET_RQ]: 'study:export',
  };
  const AUDIT_OF = { 'study:write': 'store', query: 'query', 'study:export': 'export' } as const;

  /**
   * The stores of one association are audited once per study, with their count, like a retrieve: the record
   * (PS3.15 A.5.3.2 "DICOM Instances Transferred") is written when the association ends, and every
   * STORE_AUDIT_EVERY_MS meanwhile for an association a modality keeps open. One record per instance cost
   * a study lookup and an index transaction per C-STORE.
   */
  const auditsInFlight = new Set<Promise<unknown>>();
  const storeAudit = (association: Association, principal: Principal) => {
    const origin = { address: ipOf(association.remoteAddress), aeTitle: association.callingAETitle };
    const accumulator = audit.accumulator({ principal: auditPrincipal(principal), interface: 'dimse', origin, action: 'store' });
    const flush = () => {
      const written = accumulator.flush().catch((error) => { log.error({ err: error }, 'audit record failed'); });
      auditsInFlight.add(written);
      void written.finally(() => auditsInFlight.delete(written));
    };
    const timer = setInterval(() => { if (accumulator.size > 0) flush(); }, STORE_AUDIT_EVERY_MS);
    timer.unref();
    void association.closed.finally(() => {
      clearInterval(timer);
      flush();
    });
    return accumulator;
  };

  const dispatch = async (request: IncomingRequest, association: Association, principal: Principal, signal: AbortSignal, stores: StudyAccumulator): Promise<void> => {
    const field = request.command.CommandField;
    const action = ACTION_OF[field];
    const origin = { address: ipOf(association.remoteAddress), aeTitle: association.callingAETitle };
    const base = { principal: auditPrincipal(principal), interface: 'dimse' as const, origin };
    if (action && principal.kind !== 'dicom-ae') {
      const decision = authorize(principal, action);
      if (!decision.allowed) {
        await request.dataset?.discard();
        log.warn({ association: association.id, user: principal.name, command: commandName(field), reason: decision.reason }, 'DIMSE operation not authorized');
        await audit.record({ ...base, action: AUDIT_OF[action as keyof typeof AUDIT_OF], outcome: 'minor-failure', outcomeReason: `denied: ${decision.reason}` })
          .catch((error) => log.error({ err: error }, 'audit record failed'));
        const rsp = field | 0x8000;
        return await association.respond(request, { CommandField: rsp, Status: Status.NotAuthorized, ErrorComment: 'not authorized' });
      }
    }
    const safely = (p: Promise<unknown>) => { p.catch((error) => log.error({ err: error }, 'audit record failed')); };
    switch (field) {
      case CommandField.C_ECHO_RQ: return await handleEcho(request, association);
      case CommandField.C_STORE_RQ: {
        // C-STORE: what ingest says it stored counts in the association's record of that study.
        const ingest = {
          ingest: async (...args: Parameters<IngestService['ingest']>) => {
            const result = await archive.ingest.ingest(...args);
            if ('studyInstanceUid' in result) {
              stores.add({ studyInstanceUid: result.studyInstanceUid, seriesInstanceUid: 'seriesInstanceUid' in result ? result.seriesInstanceUid : undefined, sopClassUid: result.sopClassUid });
            } else {
              safely(audit.record({ ...base, action: 'store', outcome: 'minor-failure', outcomeReason: result.status }));
            }
            return result;
          },
        } as unknown as IngestService;
        return await handleStore(request, association, { ingest, log });
      }
      case CommandField.C_FIND_RQ: {
        // C-FIND: the query (the identifier as the index query) is recorded.
        const index = new Proxy(archive.index, {
          get(target, prop, receiver) {
            if (prop === 'find') {
              return (query: Parameters<IndexStore['find']>[0]) => {
                safely(audit.record({ ...base, action: 'query', query: JSON.stringify(query) }));
                return target.find(query);
              };
            }
            const value = Reflect.get(target, prop, receiver);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        });
        return await handleFind(request, association, { index, log, aeTitle: config.aeTitle, caseInsensitivePersonNames: config.caseInsensitivePersonNames }, signal);
      }
      case CommandField.C_MOVE_RQ:
      case CommandField.C_GET_RQ: {
        // C-MOVE/C-GET: every instance selected is added to an accumulator; one export record per study.
        const kind = field === CommandField.C_MOVE_RQ ? 'move' : 'get';
        const destination = kind === 'move' ? { aeTitle: request.command.MoveDestination ?? null } : origin;
        const accumulator = audit.accumulator({ ...base, action: 'export', destination });
        const counted = new Set<string>(); // C-MOVE looks an instance up twice (selection, then sending)
        const index = new Proxy(archive.index, {
          get(target, prop, receiver) {
            if (prop === 'findInstance') {
              return async (uid: string) => {
                const instance = await target.findInstance(uid);
                if (instance && !counted.has(uid)) {
                  counted.add(uid);
                  accumulator.add({ studyInstanceUid: instance.studyInstanceUid, seriesInstanceUid: instance.seriesInstanceUid, sopClassUid: instance.sopClassUid });
                }
                return instance;
              };
            }
            const value = Reflect.get(target, prop, receiver);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        });
        try {
          return await handleRetrieve(kind, request, association, { ...retrieveDeps, index }, signal);
        } finally {
          safely(accumulator.flush());
        }
      }
      case CommandField.N_ACTION_RQ:
        if (request.presentationContext.abstractSyntax === StorageCommitmentPushModel) return await handleCommitment(request, association, { ...retrieveDeps, jobs: archive.jobs });
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
      // The associations ended with the servers: their store records are written before the index closes.
      await Promise.allSettled([...auditsInFlight]);
    },
  };
}

