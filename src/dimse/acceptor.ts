// The association acceptor: a TCP or TLS server that negotiates associations (PS3.8 9.3.2-9.3.4, PS3.7 Annex D)
// and hands established ones to the application.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { ATRIUM_IMPLEMENTATION_CLASS_UID, ATRIUM_IMPLEMENTATION_VERSION_NAME } from '../dicom/uid.ts';
import { Association, DEFAULT_MAX_PDU_LENGTH, silentLogger } from './association.ts';
import type { DimseLogger, NegotiationOutcome, PresentationContext, UserIdentity } from './association.ts';
import { DICOM_APPLICATION_CONTEXT, PresentationContextResult, describeContextResult } from './pdu.ts';
import type { AssociateAC, AssociateRQ, PresentationContextACItem, RoleSelection } from './pdu.ts';

export interface ProposedContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
  /** Roles proposed by the requestor for this abstract syntax (SCP/SCU Role Selection, PS3.7 D.3.3.4), if any. */
  scuRole?: boolean;
  scpRole?: boolean;
}

export interface AssociateRequestInfo {
  callingAETitle: string;
  calledAETitle: string;
  /** "address:port" of the peer. */
  remoteAddress: string;
  /** The verified client certificate when TLS is used with requestCert. */
  peerCertificate?: tls.PeerCertificate;
  userIdentity?: UserIdentity;
  implementationClassUID: string;
  implementationVersionName?: string;
  /** The peer's maximum P-DATA-TF length (0 = unlimited). */
  maxPduLength: number;
  asyncOperationsWindow?: { maxInvoked: number; maxPerformed: number };
  contexts: ProposedContext[];
  /** SOP Class Extended Negotiation: SOP Class UID -> service class application information. */
  extendedNegotiation: Map<string, Uint8Array>;
  /** Number of associations open on this server (this one excluded). */
  openAssociations: number;
}

export type ContextDecision =
  | { id: number; transferSyntax: string }
  /** 1 user-rejection, 2 no-reason, 3 abstract-syntax-not-supported, 4 transfer-syntaxes-not-supported. */
  | { id: number; result: 1 | 2 | 3 | 4 };

export interface AssociateRejection {
  accept: false;
  /** 1 rejected-permanent, 2 rejected-transient. */
  result: number;
  /** 1 service-user, 2 service-provider (ACSE), 3 service-provider (presentation). */
  source: number;
  reason: number;
  /** Why, for the log. */
  detail?: string;
}

export interface AssociateAcceptance {
  accept: true;
  /** Per proposed context; a context not listed is rejected as abstract-syntax-not-supported. */
  contexts: ContextDecision[];
  /** Role answers by SOP Class UID (ANDed with the proposal); roles proposed but not answered get the defaults. */
  roles?: Map<string, { scuRole: boolean; scpRole: boolean }>;
  /** SOP Class Extended Negotiation answers by SOP Class UID. */
  extendedNegotiation?: Map<string, Uint8Array>;
  /** Sent when the requestor asked for a positive response (empty for username types). */
  userIdentityResponse?: Uint8Array;
}

export type AssociateDecision = AssociateRejection | AssociateAcceptance;

/** The usual rejections (PS3.8 Table 9-21). */
export const Rejection = {
  NoReasonGiven: { accept: false, result: 1, source: 1, reason: 1 },
  ApplicationContextNotSupported: { accept: false, result: 1, source: 1, reason: 2 },
  CallingAETitleNotRecognized: { accept: false, result: 1, source: 1, reason: 3 },
  CalledAETitleNotRecognized: { accept: false, result: 1, source: 1, reason: 7 },
  ProtocolVersionNotSupported: { accept: false, result: 1, source: 2, reason: 2 },
  TemporaryCongestion: { accept: false, result: 2, source: 3, reason: 1 },
  LocalLimitExceeded: { accept: false, result: 2, source: 3, reason: 2 },
} as const satisfies Record<string, AssociateRejection>;

/**
 * Context decisions for the common case: accept each proposed context whose abstract syntax is supported, with
 * the first of our transfer syntaxes (in our order of preference) that the requestor proposed.
 */
export function negotiateContexts(
  proposed: ProposedContext[],
  supported: Map<string, string[]> | ((abstractSyntax: string) => string[] | undefined),
): ContextDecision[] {
  const lookup = typeof supported === 'function' ? supported : (a: string) => supported.get(a);
  return proposed.map((pc) => {
    const ours = lookup(pc.abstractSyntax);
    if (!ours) return { id: pc.id, result: PresentationContextResult.AbstractSyntaxNotSupported };
    const ts = ours.find((t) => pc.transferSyntaxes.includes(t));
    return ts ? { id: pc.id, transferSyntax: ts } : { id: pc.id, result: PresentationContextResult.TransferSyntaxesNotSupported };
  });
}

export interface DicomServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** TLS (PS3.15 B.1): key/cert/ca...; requestCert makes a client certificate, verified against `ca`, mandatory. */
  tls?: tls.SecureContextOptions & { requestCert?: boolean };
  /** Associations open at once; beyond: rejected-transient, local-limit-exceeded. Default 64. */
  maxAssociations?: number;
  timeouts?: {
    /** ARTIM (PS3.8 9.1.5): wait for the A-ASSOCIATE-RQ, and for the peer to close after RELEASE-RP/ABORT. Default 30 s. */
    artimMs?: number;
    /** A-ABORT after this long without any PDU while nothing is under way locally. Default 5 min. */
    idleMs?: number;
  };
  /** The maximum P-DATA-TF length we advertise and accept. Default 256 KiB. */
  maxPduLength?: number;
  /** Bytes of a received data set held for a slow consumer before the socket stops being read. Default 512 KiB. */
  datasetHighWaterMark?: number;
  negotiate(request: AssociateRequestInfo): AssociateDecision | Promise<AssociateDecision>;
  onAssociation(association: Association): void;
  logger?: DimseLogger;
}

export interface DicomServer {
  readonly port: number;
  /** Associations currently established. */
  readonly associations: ReadonlySet<Association>;
  /** Stops listening, aborts the open associations and waits for their connections to close. */
  close(): Promise<void>;
}

export async function startDicomServer(options: DicomServerOptions): Promise<DicomServer> {
  const log = options.logger ?? silentLogger;
  const maxAssociations = options.maxAssociations ?? 64;
  const artimMs = options.timeouts?.artimMs ?? 30_000;
  const idleMs = options.timeouts?.idleMs ?? 300_000;
  const maxPduLength = options.maxPduLength ?? DEFAULT_MAX_PDU_LENGTH;
  const established = new Set<Association>();
  const sockets = new Set<net.Socket>();

  const onSocket = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const peerCertificate = socket instanceof tls.TLSSocket ? socket.getPeerCertificate() : undefined;
    const association = new Association({
      socket, role: 'acceptor', logger: log, maxPduLength, artimMs, idleMs,
      datasetHighWaterMark: options.datasetHighWaterMark,
      negotiate: async (rq, assoc) => {
        const info = requestInfo(rq, assoc, peerCertificate && Object.keys(peerCertificate).length > 0 ? peerCertificate : undefined,
          established.size);
        if (rq.applicationContext !== DICOM_APPLICATION_CONTEXT) {
          return reject(Rejection.ApplicationContextNotSupported, `application context ${rq.applicationContext} is not the DICOM one`);
        }
        if ((rq.protocolVersion & 1) === 0) {
          return reject(Rejection.ProtocolVersionNotSupported, `protocol version 0x${rq.protocolVersion.toString(16)}`);
        }
        if (established.size >= maxAssociations) {
          return reject(Rejection.LocalLimitExceeded, `${established.size} associations already open (maxAssociations ${maxAssociations})`);
        }
        const decision = await options.negotiate(info);
        if (!decision.accept) return reject(decision, decision.detail);
        return accept(rq, info, decision, maxPduLength, log);
      },
      onEstablished: (assoc) => {
        established.add(assoc);
        void assoc.closed.then(() => established.delete(assoc));
        try {
          options.onAssociation(assoc);
        } catch (e) {
          log.error({ association: assoc.id, err: (e as Error).message }, 'onAssociation failed; aborting the association');
          assoc.abort();
        }
      },
    });
    void association.closed;
  };

  let server: net.Server;
  if (options.tls) {
    const { requestCert, ...secure } = options.tls;
    server = tls.createServer({ ...secure, requestCert: requestCert ?? false, rejectUnauthorized: requestCert ?? false }, onSocket);
    server.on('tlsClientError', (err, socket) => {
      log.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, err: err.message },
        `TLS handshake failed: ${err.message}${requestCert ? ' (a client certificate signed by a trusted CA is required)' : ''}`);
    });
  } else {
    server = net.createServer(onSocket);
  }
  server.on('error', (err) => log.error({ err: err.message }, 'DICOM server error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ host: options.host ?? '::', port, tls: Boolean(options.tls), maxAssociations, maxPduLength }, 'DICOM server listening');

  return {
    port,
    associations: established,
    async close(): Promise<void> {
      const closing = new Promise<void>((r) => server.close(() => r()));
      for (const a of established) a.abort(2, 0);
      await Promise.all([...established].map((a) => a.closed));
      // Connections still negotiating (or waiting out ARTIM) are cut.
      for (const s of sockets) s.destroy();
      await closing;
    },
  };
}

function reject(r: { result: number; source: number; reason: number }, detail?: string): NegotiationOutcome {
  return { accept: false, rj: { type: 'A-ASSOCIATE-RJ', result: r.result, source: r.source, reason: r.reason }, detail: detail ?? '' };
}

function requestInfo(rq: AssociateRQ, assoc: Association, peerCertificate: tls.PeerCertificate | undefined, open: number): AssociateRequestInfo {
  const ui = rq.userInformation;
  const roles = new Map((ui.roleSelections ?? []).map((r) => [r.sopClassUID, r]));
  return {
    callingAETitle: rq.callingAETitle,
    calledAETitle: rq.calledAETitle,
    remoteAddress: assoc.remoteAddress,
    ...(peerCertificate ? { peerCertificate } : {}),
    ...(assoc.userIdentity ? { userIdentity: assoc.userIdentity } : {}),
    implementationClassUID: ui.implementationClassUID ?? '',
    ...(ui.implementationVersionName ? { implementationVersionName: ui.implementationVersionName } : {}),
    maxPduLength: ui.maxLength ?? 0,
    ...(ui.asyncOperationsWindow ? { asyncOperationsWindow: ui.asyncOperationsWindow } : {}),
    contexts: rq.presentationContexts.map((pc) => {
      const r = roles.get(pc.abstractSyntax);
      return r ? { ...pc, scuRole: r.scuRole, scpRole: r.scpRole } : { ...pc };
    }),
    extendedNegotiation: new Map((ui.extendedNegotiation ?? []).map((e) => [e.sopClassUID, e.info])),
    openAssociations: open,
  };
}

function accept(rq: AssociateRQ, info: AssociateRequestInfo, decision: AssociateAcceptance, maxPduLength: number,
  log: DimseLogger): NegotiationOutcome {
  const byId = new Map(decision.contexts.map((d) => [d.id, d]));
  const acItems: PresentationContextACItem[] = [];
  const contexts: PresentationContext[] = [];
  const proposedRoles = new Map((rq.userInformation.roleSelections ?? []).map((r) => [r.sopClassUID, r]));
  const roleAnswers: RoleSelection[] = [];
  for (const [uid, proposed] of proposedRoles) {
    const answer = decision.roles?.get(uid);
    if (answer) roleAnswers.push({ sopClassUID: uid, scuRole: answer.scuRole && proposed.scuRole, scpRole: answer.scpRole && proposed.scpRole });
  }
  const answered = new Map(roleAnswers.map((r) => [r.sopClassUID, r]));
  for (const pc of rq.presentationContexts) {
    const d = byId.get(pc.id);
    let result: number = PresentationContextResult.AbstractSyntaxNotSupported;
    let transferSyntax = '';
    if (d && 'transferSyntax' in d) {
      if (pc.transferSyntaxes.includes(d.transferSyntax)) {
        result = PresentationContextResult.Acceptance;
        transferSyntax = d.transferSyntax;
      } else {
        log.error({ id: pc.id, transferSyntax: d.transferSyntax, proposed: pc.transferSyntaxes },
          'negotiate() chose a transfer syntax that was not proposed; context rejected');
        result = PresentationContextResult.TransferSyntaxesNotSupported;
      }
    } else if (d) {
      result = d.result;
    }
    acItems.push(result === 0 ? { id: pc.id, result, transferSyntax } : { id: pc.id, result });
    const context: PresentationContext = { id: pc.id, abstractSyntax: pc.abstractSyntax, transferSyntax, accepted: result === 0, result };
    if (proposedRoles.has(pc.abstractSyntax)) {
      const a = answered.get(pc.abstractSyntax);
      context.scuRole = a ? a.scuRole : true;
      context.scpRole = a ? a.scpRole : false;
    }
    contexts.push(context);
  }
  const ui = rq.userInformation;
  const ac: AssociateAC = {
    type: 'A-ASSOCIATE-AC',
    protocolVersion: 1,
    calledAETitle: rq.calledAETitle,
    callingAETitle: rq.callingAETitle,
    applicationContext: DICOM_APPLICATION_CONTEXT,
    presentationContexts: acItems,
    userInformation: {
      maxLength: maxPduLength,
      implementationClassUID: ATRIUM_IMPLEMENTATION_CLASS_UID,
      implementationVersionName: ATRIUM_IMPLEMENTATION_VERSION_NAME,
      ...(roleAnswers.length ? { roleSelections: roleAnswers } : {}),
      ...(decision.extendedNegotiation?.size
        ? { extendedNegotiation: [...decision.extendedNegotiation].filter(([uid]) => info.extendedNegotiation.has(uid))
          .map(([sopClassUID, data]) => ({ sopClassUID, info: data })) }
        : {}),
      ...(ui.userIdentity?.positiveResponseRequested && decision.userIdentityResponse
        ? { userIdentityResponse: decision.userIdentityResponse } : {}),
    },
  };
  const rejected = contexts.filter((c) => !c.accepted);
  return {
    accept: true, ac, contexts,
    log: rejected.length ? { rejectedReasons: rejected.map((c) => `${c.abstractSyntax}: ${describeContextResult(c.result)}`) } : {},
  };
}
