import type { Archive } from '../../app.ts';
import { startDicomServer, type AssociateDecision, type AssociateRequestInfo, type ContextDecision, type DicomServer } from '../acceptor.ts';
import { Rejection } from '../acceptor.ts';
import type { Association, IncomingRequest } from '../association.ts';
import { CommandField, commandName } from '../command.ts';
import { Status } from '../status.ts';
import { PresentationContextResult } from '../pdu.ts';
import type { DicomOperation } from '../../ports/peer-registry.ts';
import { outboundTls } from './tls.ts';
import { AuthError, authorize, type Principal } from '../../security/index.ts';
import { auditPrincipal } from '../../audit/audit-service.ts';
import { auditAside, DimseServiceRegistry, type DimseRequest, type DimseService } from './dimse-service.ts';
import { verificationService } from './verification.ts';
import { storageService } from './store-scp.ts';
import { queryService } from './find-scp.ts';
import { retrieveServices, type RetrieveDeps } from './retrieve-scp.ts';
import { commitmentService } from './commitment-scp.ts';

/** The DIMSE services of the archive itself, what the `dimse` module installs (src/dimse/module.ts). */
export function archiveDimseServices(archive: Pick<Archive, 'config' | 'log' | 'index' | 'retrieve' | 'ingest' | 'jobs' | 'audit' | 'applicationEntities'>): DimseService[] {
  const config = archive.config.dicom;
  const log = archive.log.child({ transport: 'dimse' });
  const tlsFiles = outboundTls(archive.config);
  const retrieveDeps: RetrieveDeps = {
    index: archive.index, retrieve: archive.retrieve, applicationEntities: archive.applicationEntities, log, aeTitle: config.aeTitle,
    // Outbound TLS (C-MOVE destinations marked tls) presents our certificate and trusts the configured CA.
    outbound: { maxPduLength: config.maxPduLength, ...(tlsFiles ? { tls: tlsFiles } : {}) },
  };
  return [
    verificationService,
    storageService({ ingest: archive.ingest, audit: archive.audit, log, acceptUnknownSopClasses: config.acceptUnknownSopClasses }),
    queryService({ index: archive.index, audit: archive.audit, log, aeTitle: config.aeTitle, caseInsensitivePersonNames: config.caseInsensitivePersonNames }),
    ...retrieveServices({ ...retrieveDeps, audit: archive.audit }),
    commitmentService({ ...retrieveDeps, jobs: archive.jobs }),
  ];
}

export interface DicomService {
  port: number;
  tlsPort: number | null;
  close(): Promise<void>;
}

export interface DicomServiceOptions {
  port?: number;
  tlsPort?: number;
}

/**
 * What the DICOM listeners use: the configuration, who may do what (the AE registry, security, audit) and
 * the services every installed module offers (`Archive.dimseServices`, in module order).
 */
export type DicomServiceDeps = Pick<Archive, 'config' | 'log' | 'security' | 'audit' | 'applicationEntities' | 'dimseServices'>;

/**
 * Atrium as a DICOM application entity: the listeners (plain and TLS), association negotiation against the
 * AE registry (who may do what) and the service registry (what is offered), and the dispatch of each request
 * to its service. Thin: the services do the work; none is named here.
 */
export async function startDicomService(archive: DicomServiceDeps, options: DicomServiceOptions = {}): Promise<DicomService> {
  const config = archive.config.dicom;
  const log = archive.log.child({ transport: 'dimse' });
  const tlsFiles = outboundTls(archive.config);
  const registry = new DimseServiceRegistry(archive.dimseServices);

  const { security, audit } = archive;
  /** The principal of each association, decided at negotiation (key: remote address and calling AE). */
  const principals = new Map<string, Principal>();
  const keyOf = (remoteAddress: string, callingAE: string) => `${remoteAddress}|${callingAE.trim()}`;
  const ipOf = (remoteAddress: string) => remoteAddress.replace(/:[^:]*$/, '');

  // A known peer calling us is its last contact: recorded once per association request, aside (the
  // A-ASSOCIATE-AC does not wait for the index, and a failure to record it changes nothing for the caller).
  const negotiate = async (rq: AssociateRequestInfo): Promise<AssociateDecision> => {
    const decision = await decide(rq);
    const from = `inbound association from ${ipOf(rq.remoteAddress)}`;
    void archive.applicationEntities.recordContact(rq.callingAETitle, decision.accept ? 'ok' : 'failed', decision.accept
      ? `${from} accepted (${decision.contexts.filter((c) => 'transferSyntax' in c).length} of ${rq.contexts.length} presentation contexts)`
      : `${from} rejected: ${decision.detail ?? 'no reason given'}`);
    return decision;
  };

  const decide = async (rq: AssociateRequestInfo): Promise<AssociateDecision> => {
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
      const service = registry.forContext(pc);
      if (!service) { contexts.push({ id: pc.id, result: PresentationContextResult.AbstractSyntaxNotSupported }); continue; }
      if (!(await allowed(service.operation))) { contexts.push({ id: pc.id, result: PresentationContextResult.UserRejection }); continue; }
      const ts = service.transferSyntax(pc.transferSyntaxes);
      contexts.push(ts ? { id: pc.id, transferSyntax: ts } : { id: pc.id, result: PresentationContextResult.TransferSyntaxesNotSupported });
      const role = service.roles?.(pc);
      if (role) roles.set(pc.abstractSyntax, role);
    }
    if (!contexts.some((c) => 'transferSyntax' in c)) {
      // Refused by permission: the caller is not one we serve for this. Otherwise nothing proposed is supported.
      const refused = contexts.some((c) => 'result' in c && c.result === PresentationContextResult.UserRejection);
      return refused
        ? { ...Rejection.CallingAETitleNotRecognized, detail: `"${rq.callingAETitle}" may not use any of the ${rq.contexts.length} proposed contexts` }
        : { ...Rejection.NoReasonGiven, detail: `none of the ${rq.contexts.length} proposed presentation contexts is supported` };
    }
    const extendedNegotiation = new Map<string, Uint8Array>();
    for (const [sopClass, info] of rq.extendedNegotiation) {
      const answer = registry.extendedNegotiation(sopClass, info);
      if (answer) extendedNegotiation.set(sopClass, answer);
    }
    return { accept: true, contexts, roles, extendedNegotiation, ...(rq.userIdentity?.positiveResponseRequested ? { userIdentityResponse: new Uint8Array(0) } : {}) };
  };

  const onAssociation = (association: Association) => {
    const key = keyOf(association.remoteAddress, association.callingAETitle);
    const principal = principals.get(key) ?? security.dicomAePrincipal(association.callingAETitle, ipOf(association.remoteAddress), ['integration']);
    principals.delete(key);
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
        await dispatch(request, association, principal, controller.signal);
      } finally {
        running.delete(messageId);
      }
    });
  };

  /** A request goes to the service of its context; users (User Identity) are authorized per request first. */
  const dispatch = async (request: IncomingRequest, association: Association, principal: Principal, signal: AbortSignal): Promise<void> => {
    const field = request.command.CommandField;
    const service = registry.forRequest(field, request.presentationContext.abstractSyntax);
    if (!service) {
      await request.dataset?.discard();
      log.warn({ association: association.id, callingAE: association.callingAETitle, command: commandName(field) }, 'unsupported DIMSE operation');
      await association.respond(request, { Status: Status.UnrecognizedOperation });
      return;
    }
    const audit: DimseRequest['audit'] = {
      principal: auditPrincipal(principal), interface: 'dimse', origin: { address: ipOf(association.remoteAddress), aeTitle: association.callingAETitle },
    };
    if (service.action && principal.kind !== 'dicom-ae') {
      const decision = authorize(principal, service.action);
      if (!decision.allowed) {
        await request.dataset?.discard();
        log.warn({ association: association.id, user: principal.name, command: commandName(field), reason: decision.reason }, 'DIMSE operation not authorized');
        if (service.auditAction) await auditAside(archive.audit.record({ ...audit, action: service.auditAction, outcome: 'minor-failure', outcomeReason: `denied: ${decision.reason}` }), log);
        return await association.respond(request, { CommandField: field | 0x8000, Status: Status.NotAuthorized, ErrorComment: 'not authorized' });
      }
    }
    await service.handle({ request, association, principal, audit, signal });
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
      await registry.close();
    },
  };
}

