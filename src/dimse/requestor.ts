// The association requestor: connects (TCP or TLS), proposes presentation contexts, returns the Association.
import net from 'node:net';
import tls from 'node:tls';
import { ATRIUM_IMPLEMENTATION_CLASS_UID, ATRIUM_IMPLEMENTATION_VERSION_NAME } from '../dicom/uid.ts';
import { Association, DEFAULT_MAX_PDU_LENGTH, silentLogger } from './association.ts';
import type { DimseLogger } from './association.ts';
import { DICOM_APPLICATION_CONTEXT } from './pdu.ts';
import type { AssociateRQ, UserInformation } from './pdu.ts';

export interface RequestedContext {
  abstractSyntax: string;
  transferSyntaxes: string[];
  /** Proposes SCP/SCU Role Selection for the abstract syntax (e.g. scpRole for C-GET's storage contexts). */
  scuRole?: boolean;
  scpRole?: boolean;
}

export interface RequestAssociationOptions {
  host: string;
  port: number;
  /** TLS connection options (ca, key, cert, servername, ...). */
  tls?: tls.ConnectionOptions;
  callingAETitle: string;
  calledAETitle: string;
  /** At most 128; presentation context IDs are 1, 3, 5... in this order. */
  contexts: RequestedContext[];
  /** The maximum P-DATA-TF length we advertise. Default 256 KiB. */
  maxPduLength?: number;
  userIdentity?: {
    /** 1 username, 2 username and passcode, 3 Kerberos, 4 SAML, 5 JWT. */
    type: number;
    primary: string | Uint8Array;
    secondary?: string | Uint8Array;
    positiveResponseRequested?: boolean;
  };
  /** SOP Class Extended Negotiation: SOP Class UID -> service class application information. */
  extendedNegotiation?: Map<string, Uint8Array>;
  asyncOperationsWindow?: { maxInvoked: number; maxPerformed: number };
  timeouts?: {
    /** TCP (and TLS) connection. Default 30 s. */
    connectMs?: number;
    /** Wait for the A-ASSOCIATE-AC and for the A-RELEASE-RP. Default 30 s. */
    artimMs?: number;
    /** A-ABORT after this long without any PDU while nothing is under way locally. Default 5 min. */
    idleMs?: number;
  };
  datasetHighWaterMark?: number;
  logger?: DimseLogger;
}

const bytes = (v: string | Uint8Array): Uint8Array => (typeof v === 'string' ? new TextEncoder().encode(v) : v);

export async function requestAssociation(options: RequestAssociationOptions): Promise<Association> {
  if (options.contexts.length === 0) throw new Error('requestAssociation: at least one presentation context is needed');
  if (options.contexts.length > 128) throw new Error(`requestAssociation: ${options.contexts.length} presentation contexts proposed, at most 128 allowed`);
  const maxPduLength = options.maxPduLength ?? DEFAULT_MAX_PDU_LENGTH;
  const roleSelections = new Map<string, { sopClassUID: string; scuRole: boolean; scpRole: boolean }>();
  for (const c of options.contexts) {
    if (c.scuRole === undefined && c.scpRole === undefined) continue;
    roleSelections.set(c.abstractSyntax, { sopClassUID: c.abstractSyntax, scuRole: c.scuRole ?? true, scpRole: c.scpRole ?? false });
  }
  const ui: UserInformation = {
    maxLength: maxPduLength,
    implementationClassUID: ATRIUM_IMPLEMENTATION_CLASS_UID,
    implementationVersionName: ATRIUM_IMPLEMENTATION_VERSION_NAME,
  };
  if (options.asyncOperationsWindow) ui.asyncOperationsWindow = options.asyncOperationsWindow;
  if (roleSelections.size) ui.roleSelections = [...roleSelections.values()];
  if (options.extendedNegotiation?.size) {
    ui.extendedNegotiation = [...options.extendedNegotiation].map(([sopClassUID, info]) => ({ sopClassUID, info }));
  }
  if (options.userIdentity) {
    const u = options.userIdentity;
    ui.userIdentity = {
      type: u.type, positiveResponseRequested: u.positiveResponseRequested ?? false,
      primary: bytes(u.primary), secondary: u.secondary === undefined ? new Uint8Array(0) : bytes(u.secondary),
    };
  }
  const rq: AssociateRQ = {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAETitle: options.calledAETitle,
    callingAETitle: options.callingAETitle,
    applicationContext: DICOM_APPLICATION_CONTEXT,
    presentationContexts: options.contexts.map((c, i) => ({ id: 2 * i + 1, abstractSyntax: c.abstractSyntax, transferSyntaxes: c.transferSyntaxes })),
    userInformation: ui,
  };
  const socket = await connect(options);
  const association = new Association({
    socket, role: 'requestor', logger: options.logger ?? silentLogger, maxPduLength,
    artimMs: options.timeouts?.artimMs ?? 30_000, idleMs: options.timeouts?.idleMs ?? 300_000,
    datasetHighWaterMark: options.datasetHighWaterMark,
    associateRequest: rq,
    proposedRoles: new Map([...roleSelections].map(([k, v]) => [k, { scuRole: v.scuRole, scpRole: v.scpRole }])),
  });
  await association.established;
  return association;
}

function connect(options: RequestAssociationOptions): Promise<net.Socket> {
  const where = `${options.calledAETitle} at ${options.host}:${options.port}${options.tls ? ' (TLS)' : ''}`;
  const timeoutMs = options.timeouts?.connectMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const socket: net.Socket = options.tls
      ? tls.connect({ ...options.tls, host: options.host, port: options.port })
      : net.connect({ host: options.host, port: options.port });
    const readyEvent = options.tls ? 'secureConnect' : 'connect';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`cannot connect to ${where}: no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (e: Error): void => {
      clearTimeout(timer);
      reject(new Error(`cannot connect to ${where}: ${e.message}`, { cause: e }));
    };
    socket.once('error', onError);
    socket.once(readyEvent, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
