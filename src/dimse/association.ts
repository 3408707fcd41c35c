// A DICOM association (PS3.8 Section 9.2 state machine, simplified to what an SCP and SCU need) over a
// net.Socket or tls.TLSSocket, used by both the acceptor (acceptor.ts) and the requestor (requestor.ts).
//
// Why not dcmjs-dimse: it buffers whole objects when sending and does not pause the socket when the consumer is
// slower than the network. Atrium must keep memory bounded for objects of any size in both directions (a
// several-GB whole-slide image over C-STORE), so here:
//  - received data sets are handed over fragment by fragment as they arrive (IncomingRequest.dataset), and the
//    socket is not read while the consumer is behind (TCP flow control then slows the sender down);
//  - sent data sets are cut into P-DATA-TF PDUs no larger than the peer's maximum, each written when the
//    socket has drained the previous ones, never concatenating a whole object.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { positionalChunks, ReusableBuffers } from '../io/reusable-buffers.ts';
import type { PositionalSource } from '../ports/blob-store.ts';
import { CommandError, CommandField, NO_DATASET, commandName, decodeCommand, decodeCommandMessage, encodeCommand, isResponse } from './command.ts';
import type { CommandSet } from './command.ts';
import { Collector, DatasetSink, DimseError, ResponseQueue } from './message-streams.ts';
import { PduFramer } from './pdu-framer.ts';
import type { FrameEvent } from './pdu-framer.ts';
import {
  AbortReason, AbortSource, PduError, describeAbort, describeRejection, encodePDataHeader, encodePdu,
} from './pdu.ts';
import type { AssociateAC, AssociateRJ, AssociateRQ, Pdu } from './pdu.ts';
import { Status, describeStatus, statusCategory } from './status.ts';

/** The subset of pino's Logger used here. */
export interface DimseLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: DimseLogger = { debug() {}, info() {}, warn() {}, error() {} };

export const DEFAULT_MAX_PDU_LENGTH = 256 * 1024;

export interface PresentationContext {
  id: number;
  abstractSyntax: string;
  /** The accepted transfer syntax ('' when not accepted). */
  transferSyntax: string;
  accepted: boolean;
  /** PS3.8 Table 9-18: 0 acceptance, 1 user-rejection, 2 provider rejection, 3 abstract syntax not supported, 4 transfer syntaxes not supported. */
  result: number;
  /** Negotiated roles of the association requestor (PS3.7 D.3.3.4); undefined when not negotiated (default roles). */
  scuRole?: boolean;
  scpRole?: boolean;
}

export interface UserIdentity {
  /** 1 username, 2 username and passcode, 3 Kerberos, 4 SAML, 5 JWT (PS3.7 D.3.3.7). */
  type: number;
  /** UTF-8 text, except Kerberos (type 3) which is base64 of the ticket. */
  primary: string;
  /** The passcode for type 2. */
  secondary?: string;
  positiveResponseRequested: boolean;
}

export type IncomingDataset = AsyncIterable<Uint8Array> & {
  /** Drops the rest of the data set; resolves once its last fragment has been received (or the association ended). */
  discard(): Promise<void>;
};

export interface IncomingRequest {
  command: CommandSet;
  presentationContext: PresentationContext;
  /**
   * The data set as it arrives, in the context's transfer syntax; present when CommandDataSetType != 0x0101.
   * MUST be consumed or discard()ed: the association reads no further PDUs from the peer until it is (that is
   * the backpressure: the socket is paused). Iteration rejects with a DimseError if the association ends
   * before the last fragment.
   */
  dataset?: IncomingDataset;
}

export interface DimseResponse {
  command: CommandSet;
  /** The response's data set (identifier), in the context's transfer syntax unless `datasetTransferSyntax` says otherwise. */
  dataset?: Uint8Array;
  /**
   * Set when the identifier came inside the command set rather than as a data set (DCMTK-based SCPs such as
   * Orthanc append a final C-GET/C-MOVE-RSP's Failed SOP Instance UID List to the command): it is then
   * encoded like the command, Implicit VR Little Endian (1.2.840.10008.1.2).
   */
  datasetTransferSyntax?: string;
}

/** A response: CommandField, MessageIDBeingRespondedTo and AffectedSOPClassUID default from the request. */
export type ResponseCommand = Partial<CommandSet> & { Status: number };

/** A data set to send: in memory, streamed, or read by position from the blob store (no allocation per chunk). */
export type DatasetSource = Uint8Array | AsyncIterable<Uint8Array> | PositionalSource;

export type CloseReason = 'released' | 'aborted' | 'peer-aborted' | 'timeout' | 'socket-error' | 'rejected';
export interface Closed { reason: CloseReason; detail?: string }

/** @internal Acceptor-side negotiation outcome. */
export type NegotiationOutcome =
  | { accept: true; ac: AssociateAC; contexts: PresentationContext[]; log?: Record<string, unknown> }
  | { accept: false; rj: AssociateRJ; detail: string };

/** @internal */
export interface AssociationInit {
  socket: Socket;
  role: 'acceptor' | 'requestor';
  logger?: DimseLogger;
  /** The maximum P-DATA-TF length we advertise (0 = unlimited). */
  maxPduLength: number;
  artimMs: number;
  idleMs: number;
  /** Bytes of a received data set held for a slow consumer before the socket stops being read. Default 512 KiB. */
  datasetHighWaterMark?: number;
  /** Largest data set accepted in a response (C-FIND identifiers...). Default 16 MiB. */
  maxResponseDatasetBytes?: number;
  /** Acceptor: decides on the A-ASSOCIATE-RQ. */
  negotiate?: (rq: AssociateRQ, association: Association) => Promise<NegotiationOutcome>;
  /** Acceptor: called once the A-ASSOCIATE-AC is sent, before any further PDU is read. */
  onEstablished?: (association: Association) => void;
  /** Requestor: the A-ASSOCIATE-RQ to send. */
  associateRequest?: AssociateRQ;
  /** Requestor: the contexts proposed (with their abstract syntaxes and roles). */
  proposedRoles?: Map<string, { scuRole?: boolean; scpRole?: boolean }>;
}

type State = 'awaiting-rq' | 'awaiting-ac' | 'established' | 'release-requested' | 'closing' | 'closed';

interface IncomingMessage {
  pcId: number;
  commandChunks: Uint8Array[];
  commandLength: number;
  command?: CommandSet;
  /** Elements of other groups after the command set (a response's identifier, the DCMTK way). */
  trailing?: Uint8Array;
  sink?: DatasetSink | Collector;
  onDatasetEnd?: () => void;
  waitConsumed?: Promise<void>;
}

const MAX_COMMAND_LENGTH = 1024 * 1024;
/** The command set's encoding (PS3.7 6.3.1). */
const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
/** Largest PDV sent from a stored object (less when the peer takes smaller PDUs). */
const SEND_BUFFER_BYTES = 256 * 1024;
const utf8 = new TextDecoder();

export class Association {
  readonly id = randomBytes(4).toString('hex');
  readonly role: 'acceptor' | 'requestor';
  readonly remoteAddress: string;
  readonly closed: Promise<Closed>;
  /** Counters for monitoring and tests. */
  readonly stats = { bytesReceived: 0, bytesSent: 0, pdusSent: 0, maxDatasetBuffered: 0, maxFramerBuffered: 0 };

  #callingAETitle = '';
  #calledAETitle = '';
  #contexts: PresentationContext[] = [];
  #byId = new Map<number, PresentationContext>();
  #peerMaxPduLength = 0;
  #userIdentity: UserIdentity | undefined;
  #requestedExtendedNegotiation = new Map<string, Uint8Array>();
  #acceptedExtendedNegotiation = new Map<string, Uint8Array>();
  #peerImplementationClassUID = '';
  #peerImplementationVersionName: string | undefined;
  #userIdentityResponse: Uint8Array | undefined;

  readonly #socket: Socket;
  readonly #log: DimseLogger;
  readonly #init: AssociationInit;
  readonly #framer: PduFramer;
  readonly #highWater: number;
  #state: State;
  #settled: Closed | undefined;
  #resolveClosed!: (c: Closed) => void;
  #artim: NodeJS.Timeout | undefined;
  #idle: NodeJS.Timeout | undefined;
  #lastActivity = Date.now();
  #blocked = false;
  #sending = 0;
  #activeHandlers = 0;
  #messageId = 0;
  #handler: ((request: IncomingRequest) => Promise<void> | void) | undefined;
  #pending = new Map<number, ResponseQueue>();
  #incoming: IncomingMessage | undefined;
  #sendChain: Promise<void> = Promise.resolve();
  #sendBuffers: ReusableBuffers | undefined;
  #finalResponded = new WeakSet<IncomingRequest>();
  #ready: { resolve: () => void; reject: (e: Error) => void } | undefined;
  /** @internal Requestor: settles with the A-ASSOCIATE-AC or the rejection. */
  readonly established: Promise<void>;

  constructor(init: AssociationInit) {
    this.#init = init;
    this.#socket = init.socket;
    this.role = init.role;
    this.#log = init.logger ?? silentLogger;
    this.#highWater = init.datasetHighWaterMark ?? 512 * 1024;
    this.remoteAddress = `${init.socket.remoteAddress ?? '?'}:${init.socket.remotePort ?? '?'}`;
    this.#framer = new PduFramer({ maxPduLength: init.maxPduLength });
    this.closed = new Promise((r) => { this.#resolveClosed = r; });
    this.established = new Promise((resolve, reject) => { this.#ready = { resolve, reject }; });
    this.established.catch(() => {});
    this.#socket.setNoDelay(true);
    this.#socket.on('error', (e) => {
      this.#settle('socket-error', e.message);
    });
    this.#socket.on('close', () => {
      this.#clearTimers();
      if (!this.#settled) this.#settle('socket-error', 'connection closed by the peer without A-RELEASE or A-ABORT');
      this.#state = 'closed';
    });
    if (init.role === 'acceptor') {
      this.#state = 'awaiting-rq';
      this.#startArtim('no A-ASSOCIATE-RQ received', () => {
        this.#settle('timeout', `no A-ASSOCIATE-RQ within ${init.artimMs} ms (ARTIM)`);
        this.#socket.destroy();
      });
    } else {
      const rq = init.associateRequest!;
      this.#callingAETitle = rq.callingAETitle;
      this.#calledAETitle = rq.calledAETitle;
      this.#state = 'awaiting-ac';
      this.#writePdu(rq);
      this.#startArtim('no A-ASSOCIATE-AC', () => {
        this.#abortInternal(AbortSource.ServiceProvider, AbortReason.NotSpecified, 'timeout',
          `no answer to the A-ASSOCIATE-RQ within ${init.artimMs} ms (ARTIM)`);
      });
    }
    void this.#readLoop();
  }

  get callingAETitle(): string { return this.#callingAETitle; }
  get calledAETitle(): string { return this.#calledAETitle; }
  get contexts(): PresentationContext[] { return this.#contexts; }
  /** The peer's maximum P-DATA-TF length; 0 = unlimited. */
  get peerMaxPduLength(): number { return this.#peerMaxPduLength; }
  get userIdentity(): UserIdentity | undefined { return this.#userIdentity; }
  /** SOP Class Extended Negotiation (PS3.7 D.3.3.5) proposed by the requestor: SOP Class UID -> service class application information. */
  get requestedExtendedNegotiation(): Map<string, Uint8Array> { return this.#requestedExtendedNegotiation; }
  /** SOP Class Extended Negotiation answered by the acceptor. */
  get acceptedExtendedNegotiation(): Map<string, Uint8Array> { return this.#acceptedExtendedNegotiation; }
  get peerImplementationClassUID(): string { return this.#peerImplementationClassUID; }
  get peerImplementationVersionName(): string | undefined { return this.#peerImplementationVersionName; }
  /** Requestor: the server response of the user identity negotiation, when one came. */
  get userIdentityResponse(): Uint8Array | undefined { return this.#userIdentityResponse; }
  get isOpen(): boolean { return !this.#settled && (this.#state === 'established'); }

  /** The accepted context for an abstract syntax (and one of the transfer syntaxes, if given). */
  findContext(abstractSyntax: string, transferSyntaxes?: string[]): PresentationContext | undefined {
    return this.#contexts.find((c) => c.accepted && c.abstractSyntax === abstractSyntax &&
      (!transferSyntaxes || transferSyntaxes.includes(c.transferSyntax)));
  }

  /**
   * Registers the handler of incoming requests (C-ECHO-RQ, C-STORE-RQ, C-FIND-RQ, C-CANCEL-RQ ...). It is called for
   * each request; the receive loop does not wait for the handler to finish, only for the request's data set to be
   * consumed. A handler that fails without having sent a final response gets a Processing Failure (0x0110) sent.
   */
  onRequest(handler: (request: IncomingRequest) => Promise<void> | void): void {
    this.#handler = handler;
  }

  nextMessageId(): number {
    this.#messageId = (this.#messageId % 0xffff) + 1;
    return this.#messageId;
  }

  /**
   * Sends a request (e.g. C-STORE-RQ during C-GET, or as an SCU) and yields every response for its MessageID
   * (pending ones, then the final one). MessageID is assigned when absent. Sending starts at once.
   */
  request(pcId: number, command: CommandSet, dataset?: DatasetSource): AsyncIterable<DimseResponse> {
    const queue = new ResponseQueue();
    const messageId = command.MessageID ?? this.nextMessageId();
    const pc = this.#byId.get(pcId);
    if (!this.isOpen) {
      queue.fail(new DimseError(`cannot send ${commandName(command.CommandField)}: ${this.#notOpenWhy()}`, this.#settled?.reason ?? 'protocol'));
      return queue;
    }
    if (!pc?.accepted) {
      queue.fail(new DimseError(`cannot send ${commandName(command.CommandField)}: presentation context ${pcId} was not accepted`, 'protocol'));
      return queue;
    }
    if (this.#pending.has(messageId)) {
      queue.fail(new DimseError(`message ID ${messageId} is already outstanding`, 'protocol'));
      return queue;
    }
    this.#pending.set(messageId, queue);
    this.#sendMessage(pcId, { ...command, MessageID: messageId }, dataset).catch((e: Error) => {
      this.#pending.delete(messageId);
      queue.fail(e);
    });
    return queue;
  }

  /**
   * C-CANCEL-RQ for an outstanding C-FIND, C-GET or C-MOVE of ours (PS3.7 9.3.2.3, 9.3.3.3, 9.3.4.3). It has no
   * response of its own: the operation's final response (status Cancel, or its outcome if it ended first) says
   * what it stopped.
   */
  cancel(pcId: number, messageIdBeingRespondedTo: number): Promise<void> {
    return this.#sendMessage(pcId, { CommandField: CommandField.C_CANCEL_RQ, MessageIDBeingRespondedTo: messageIdBeingRespondedTo });
  }

  /** Sends a response to a request. Resolves when the last PDU is handed to the socket. */
  async respond(request: IncomingRequest, command: ResponseCommand, dataset?: Uint8Array): Promise<void> {
    const rq = request.command;
    // The DIMSE-N requests that name their instance with Requested SOP Class/Instance UID (N-GET, N-SET,
    // N-ACTION, N-DELETE) are answered with them as the Affected ones (PS3.7 10.1.2-10.1.6); N-CREATE and
    // N-EVENT-REPORT responses carry the request's Affected SOP Instance UID (10.1.1, 10.1.5).
    const nService = rq.CommandField >= CommandField.N_EVENT_REPORT_RQ && rq.CommandField <= CommandField.N_DELETE_RQ;
    const affectedInstance = command.AffectedSOPInstanceUID ?? (nService ? rq.AffectedSOPInstanceUID ?? rq.RequestedSOPInstanceUID : undefined);
    const full: CommandSet = {
      ...command,
      CommandField: command.CommandField ?? ((rq.CommandField | 0x8000) & 0xffff),
      MessageIDBeingRespondedTo: command.MessageIDBeingRespondedTo ?? rq.MessageID,
      AffectedSOPClassUID: command.AffectedSOPClassUID ?? rq.AffectedSOPClassUID ?? rq.RequestedSOPClassUID,
      ...(affectedInstance !== undefined ? { AffectedSOPInstanceUID: affectedInstance } : {}),
    };
    if (statusCategory(command.Status) !== 'pending') this.#finalResponded.add(request);
    await this.#sendMessage(request.presentationContext.id, full, dataset);
  }

  /** A-RELEASE-RQ, waits for the A-RELEASE-RP (ARTIM), closes. Rejects if the association ends otherwise. */
  async release(): Promise<void> {
    if (this.#state !== 'established') throw new DimseError(`cannot release: ${this.#notOpenWhy()}`, this.#settled?.reason ?? 'protocol');
    await this.#sendChain; // messages under way are completed first
    if (this.#state !== 'established') throw new DimseError(`cannot release: ${this.#notOpenWhy()}`, this.#settled?.reason ?? 'protocol');
    this.#state = 'release-requested';
    this.#writePdu({ type: 'A-RELEASE-RQ' });
    this.#startArtim('no A-RELEASE-RP', () => {
      this.#abortInternal(AbortSource.ServiceProvider, AbortReason.NotSpecified, 'timeout',
        `no A-RELEASE-RP within ${this.#init.artimMs} ms (ARTIM)`);
    });
    const c = await this.closed;
    if (c.reason !== 'released') throw new DimseError(`release failed: ${c.reason}${c.detail ? `: ${c.detail}` : ''}`, c.reason);
  }

  /** Sends an A-ABORT (default: service-user, reason 0) and closes. */
  abort(source: number = AbortSource.ServiceUser, reason = 0): void {
    this.#abortInternal(source, reason, 'aborted', source === AbortSource.ServiceUser ? 'aborted by the local application' : describeAbort(source, reason));
  }

  // -------------------------------------------------------------------------------------------------------
  // Receiving

  async #readLoop(): Promise<void> {
    try {
      // Errors are handled inside the loop: leaving a for-await over a socket destroys it, and the A-ABORT
      // written for a protocol error must reach the peer first.
      for await (const chunk of this.#socket as AsyncIterable<Uint8Array>) {
        if (this.#state === 'closed' || this.#state === 'closing') continue;
        try {
          await this.#onChunk(chunk);
        } catch (e) {
          this.#onReceiveError(e as Error);
        }
      }
      if (!this.#settled) {
        const inPdu = this.#framer.atBoundary ? '' : ' in the middle of a PDU';
        this.#settle('socket-error', `connection closed by the peer without A-RELEASE or A-ABORT${inPdu}`);
      }
    } catch (e) {
      if (!this.#settled) {
        this.#settle('socket-error', (e as Error).message);
        this.#socket.destroy();
      }
    }
  }

  async #onChunk(chunk: Uint8Array): Promise<void> {
    this.stats.bytesReceived += chunk.length;
    this.#lastActivity = Date.now();
    let events: FrameEvent[];
    try {
      events = this.#framer.push(chunk);
    } finally {
      this.stats.maxFramerBuffered = this.#framer.maxBuffered;
    }
    for (const ev of events) {
      const state = this.#state as State;
      if (state === 'closed' || state === 'closing') break;
      await this.#onEvent(ev);
    }
  }

  #onReceiveError(e: Error): void {
    if (e instanceof PduError) {
      this.#abortInternal(AbortSource.ServiceProvider, e.reason, 'aborted', `protocol error from the peer: ${e.message}`);
    } else if (e instanceof CommandError) {
      this.#abortInternal(AbortSource.ServiceProvider, AbortReason.InvalidPduParameterValue, 'aborted', `protocol error from the peer: ${e.message}`);
    } else {
      this.#log.error(this.#fields({ err: e.message, stack: e.stack }), 'internal error while receiving; aborting the association');
      this.#abortInternal(AbortSource.ServiceProvider, AbortReason.NotSpecified, 'aborted', `internal error: ${e.message}`);
    }
  }

  #protocolError(message: string, reason: number = AbortReason.UnexpectedPdu): never {
    throw new PduError(message, reason);
  }

  async #onEvent(ev: FrameEvent): Promise<void> {
    if (ev.kind === 'pdu') return this.#onControlPdu(ev.pdu);
    if (this.#state !== 'established' && this.#state !== 'release-requested') {
      this.#protocolError(`P-DATA-TF received in state ${this.#state}`);
    }
    switch (ev.kind) {
      case 'pdv-start': {
        const pc = this.#byId.get(ev.pcId);
        if (!pc?.accepted) {
          this.#protocolError(`PDV on presentation context ${ev.pcId}, which was not accepted`, AbortReason.InvalidPduParameterValue);
        }
        const msg = this.#incoming;
        if (ev.command) {
          if (msg?.command) this.#protocolError(`command fragment on context ${ev.pcId} while the data set of the previous message was expected`, AbortReason.UnexpectedPduParameter);
          if (msg && msg.pcId !== ev.pcId) this.#protocolError(`command fragments on contexts ${msg.pcId} and ${ev.pcId} interleaved`, AbortReason.UnexpectedPduParameter);
          if (!msg) this.#incoming = { pcId: ev.pcId, commandChunks: [], commandLength: 0 };
        } else {
          if (!msg?.command) this.#protocolError(`data set fragment on context ${ev.pcId} without a command`, AbortReason.UnexpectedPduParameter);
          if (msg.pcId !== ev.pcId) this.#protocolError(`data set fragment on context ${ev.pcId} for a command on context ${msg.pcId}`, AbortReason.UnexpectedPduParameter);
        }
        return;
      }
      case 'pdv-data': {
        const msg = this.#incoming!;
        if (!msg.command) {
          msg.commandLength += ev.data.length;
          if (msg.commandLength > MAX_COMMAND_LENGTH) this.#protocolError(`command set longer than ${MAX_COMMAND_LENGTH} bytes`, AbortReason.InvalidPduParameterValue);
          msg.commandChunks.push(ev.data.slice());
          return;
        }
        const wait = msg.sink!.push(ev.data);
        if (msg.sink instanceof DatasetSink) {
          if (msg.sink.maxBuffered > this.stats.maxDatasetBuffered) this.stats.maxDatasetBuffered = msg.sink.maxBuffered;
        }
        if (wait) {
          this.#blocked = true;
          try { await wait; } finally { this.#blocked = false; }
        }
        return;
      }
      case 'pdv-end': {
        if (!ev.last) return;
        const msg = this.#incoming!;
        if (!msg.command) {
          const bytes = concat(msg.commandChunks, msg.commandLength);
          const decoded = decodeCommandMessage(bytes);
          // Only a response may carry its identifier in the command PDVs; in a request it is a protocol error.
          if (decoded.trailing && !isResponse(decoded.command)) decodeCommand(bytes);
          msg.command = decoded.command;
          msg.trailing = decoded.trailing;
          msg.commandChunks.length = 0;
          this.#dispatch(msg);
          if (!msg.sink) this.#incoming = undefined;
          return;
        }
        this.#incoming = undefined;
        if (msg.sink instanceof DatasetSink) msg.sink.end();
        msg.onDatasetEnd?.();
        if (msg.waitConsumed) {
          // The association reads no further PDUs until the request's data set is consumed or discarded.
          this.#blocked = true;
          try { await msg.waitConsumed; } finally { this.#blocked = false; }
        }
        return;
      }
    }
  }

  #dispatch(msg: IncomingMessage): void {
    const command = msg.command!;
    const pc = this.#byId.get(msg.pcId)!;
    const hasDataset = command.CommandDataSetType !== undefined && command.CommandDataSetType !== NO_DATASET;
    if (isResponse(command)) {
      const id = command.MessageIDBeingRespondedTo ?? -1;
      const queue = this.#pending.get(id);
      if (!queue) {
        this.#log.warn(this.#fields({ command: commandName(command.CommandField), messageIdBeingRespondedTo: id }),
          'response to an unknown message ID ignored');
      }
      const deliver = (dataset?: Uint8Array, datasetTransferSyntax?: string): void => {
        if (!queue) return;
        queue.push(dataset ? { command, dataset, ...(datasetTransferSyntax ? { datasetTransferSyntax } : {}) } : { command });
        if (queue.finished) this.#pending.delete(id);
      };
      if (msg.trailing) {
        this.#log.debug(this.#fields({ command: commandName(command.CommandField), messageIdBeingRespondedTo: id, bytes: msg.trailing.length, hasDataset }),
          hasDataset ? 'elements after the command set ignored: a data set follows' : 'identifier read from the command set');
      }
      if (!hasDataset) { deliver(msg.trailing, msg.trailing ? IMPLICIT_VR_LITTLE_ENDIAN : undefined); return; }
      const collector = new Collector(this.#init.maxResponseDatasetBytes ?? 16 * 1024 * 1024);
      msg.sink = collector;
      msg.onDatasetEnd = () => {
        if (collector.overflow) {
          this.#pending.delete(id);
          queue?.fail(new DimseError(`the data set of a ${commandName(command.CommandField)} exceeded ${this.#init.maxResponseDatasetBytes ?? 16 * 1024 * 1024} bytes`, 'protocol'));
        } else deliver(collector.bytes());
      };
      return;
    }
    const request: IncomingRequest = { command, presentationContext: pc };
    if (hasDataset) {
      const sink = new DatasetSink(this.#highWater);
      msg.sink = sink;
      msg.waitConsumed = sink.consumed;
      request.dataset = sink;
    }
    this.#log.debug(this.#fields({ command: commandName(command.CommandField), messageId: command.MessageID, pcId: pc.id }), 'request received');
    const handler = this.#handler;
    if (!handler) {
      void (async () => {
        await request.dataset?.discard();
        if (command.CommandField === 0x0fff) return; // C-CANCEL has no response
        await this.respond(request, { Status: Status.UnrecognizedOperation, ErrorComment: 'no handler for this request' }).catch(() => {});
      })();
      return;
    }
    this.#activeHandlers++;
    void (async () => {
      try {
        await handler(request);
      } catch (e) {
        this.#log.error(this.#fields({ command: commandName(command.CommandField), messageId: command.MessageID, err: (e as Error).message }),
          'request handler failed');
        if (command.CommandField !== 0x0fff && !this.#finalResponded.has(request) && this.isOpen) {
          await this.respond(request, { Status: Status.ProcessingFailure, ErrorComment: (e as Error).message.slice(0, 64) }).catch(() => {});
        }
      } finally {
        this.#activeHandlers--;
        // A handler that returned without consuming its data set would stall the association.
        const sink = request.dataset as DatasetSink | undefined;
        if (sink && !sink.iterating) void sink.discard();
      }
    })();
  }

  async #onControlPdu(pdu: Exclude<Pdu, { type: 'P-DATA-TF' }>): Promise<void> {
    switch (pdu.type) {
      case 'A-ASSOCIATE-RQ':
        if (this.#state !== 'awaiting-rq') this.#protocolError(`A-ASSOCIATE-RQ received in state ${this.#state}`);
        return this.#onAssociateRQ(pdu);
      case 'A-ASSOCIATE-AC':
        if (this.#state !== 'awaiting-ac') this.#protocolError(`A-ASSOCIATE-AC received in state ${this.#state}`);
        return this.#onAssociateAC(pdu);
      case 'A-ASSOCIATE-RJ': {
        if (this.#state !== 'awaiting-ac') this.#protocolError(`A-ASSOCIATE-RJ received in state ${this.#state}`);
        const words = describeRejection(pdu.result, pdu.source, pdu.reason);
        this.#log.warn(this.#fields({ result: pdu.result, source: pdu.source, reason: pdu.reason }), `association rejected by the peer: ${words}`);
        this.#ready?.reject(new AssociationRejectedError(pdu.result, pdu.source, pdu.reason, this.#calledAETitle));
        this.#settle('rejected', words, true);
        this.#socket.end();
        return;
      }
      case 'A-RELEASE-RQ':
        if (this.#state !== 'established' && this.#state !== 'release-requested') {
          this.#protocolError(`A-RELEASE-RQ received in state ${this.#state}`);
        }
        this.#writePdu({ type: 'A-RELEASE-RP' });
        if (this.#state === 'release-requested') return; // release collision: wait for their A-RELEASE-RP
        this.#settle('released', 'released by the peer');
        // The peer closes the transport when it gets the A-RELEASE-RP; ARTIM bounds the wait.
        this.#state = 'closing';
        this.#startArtim('peer did not close after A-RELEASE-RP', () => this.#socket.destroy());
        return;
      case 'A-RELEASE-RP':
        if (this.#state !== 'release-requested') this.#protocolError(`A-RELEASE-RP received in state ${this.#state}`);
        this.#settle('released', 'released');
        this.#state = 'closing';
        this.#socket.end();
        this.#startArtim('socket did not close', () => this.#socket.destroy());
        return;
      case 'A-ABORT': {
        const words = describeAbort(pdu.source, pdu.reason);
        this.#ready?.reject(new DimseError(`association aborted ${words}`, 'peer-aborted'));
        this.#settle('peer-aborted', `aborted ${words}`);
        this.#state = 'closed';
        this.#socket.destroy();
        return;
      }
    }
  }

  async #onAssociateRQ(rq: AssociateRQ): Promise<void> {
    this.#clearArtim();
    this.#callingAETitle = rq.callingAETitle;
    this.#calledAETitle = rq.calledAETitle;
    const ui = rq.userInformation;
    this.#peerMaxPduLength = ui.maxLength ?? 0;
    this.#peerImplementationClassUID = ui.implementationClassUID ?? '';
    this.#peerImplementationVersionName = ui.implementationVersionName;
    for (const e of ui.extendedNegotiation ?? []) this.#requestedExtendedNegotiation.set(e.sopClassUID, e.info);
    if (ui.userIdentity) {
      const u = ui.userIdentity;
      this.#userIdentity = {
        type: u.type,
        primary: u.type === 3 ? Buffer.from(u.primary).toString('base64') : utf8.decode(u.primary),
        ...(u.type === 2 ? { secondary: utf8.decode(u.secondary) } : {}),
        positiveResponseRequested: u.positiveResponseRequested,
      };
    }
    this.#log.info(this.#fields({
      contexts: rq.presentationContexts.length,
      abstractSyntaxes: [...new Set(rq.presentationContexts.map((c) => c.abstractSyntax))],
      implementationClassUID: this.#peerImplementationClassUID,
      implementationVersionName: this.#peerImplementationVersionName,
      maxPduLength: this.#peerMaxPduLength,
      ...(this.#userIdentity ? { userIdentityType: this.#userIdentity.type, user: this.#userIdentity.type <= 2 ? this.#userIdentity.primary : undefined } : {}),
    }), 'association requested');
    let outcome: NegotiationOutcome;
    try {
      outcome = await this.#init.negotiate!(rq, this);
    } catch (e) {
      this.#log.error(this.#fields({ err: (e as Error).message }), 'association negotiation failed');
      outcome = { accept: false, rj: { type: 'A-ASSOCIATE-RJ', result: 2, source: 2, reason: 1 }, detail: `negotiation failed: ${(e as Error).message}` };
    }
    if (this.#settled) return; // the peer went away meanwhile
    if (!outcome.accept) {
      const rj = outcome.rj;
      this.#writePdu(rj);
      this.#log.warn(this.#fields({ result: rj.result, source: rj.source, reason: rj.reason }),
        `association rejected: ${describeRejection(rj.result, rj.source, rj.reason)}${outcome.detail ? ` (${outcome.detail})` : ''}`);
      this.#settle('rejected', outcome.detail, true);
      this.#state = 'closing';
      this.#startArtim('peer did not close after A-ASSOCIATE-RJ', () => this.#socket.destroy());
      return;
    }
    this.#setContexts(outcome.contexts);
    for (const e of outcome.ac.userInformation.extendedNegotiation ?? []) this.#acceptedExtendedNegotiation.set(e.sopClassUID, e.info);
    this.#writePdu(outcome.ac);
    this.#state = 'established';
    const accepted = this.#contexts.filter((c) => c.accepted);
    this.#log.info(this.#fields({
      accepted: accepted.map((c) => `${c.id}:${c.abstractSyntax}/${c.transferSyntax}`),
      rejected: this.#contexts.filter((c) => !c.accepted).map((c) => `${c.id}:${c.abstractSyntax} (result ${c.result})`),
      ...outcome.log,
    }), `association accepted: ${accepted.length} of ${this.#contexts.length} presentation contexts`);
    this.#startIdle();
    this.#init.onEstablished?.(this);
  }

  #onAssociateAC(ac: AssociateAC): void {
    this.#clearArtim();
    const rq = this.#init.associateRequest!;
    const ui = ac.userInformation;
    this.#peerMaxPduLength = ui.maxLength ?? 0;
    this.#peerImplementationClassUID = ui.implementationClassUID ?? '';
    this.#peerImplementationVersionName = ui.implementationVersionName;
    this.#userIdentityResponse = ui.userIdentityResponse;
    for (const e of ui.extendedNegotiation ?? []) this.#acceptedExtendedNegotiation.set(e.sopClassUID, e.info);
    for (const e of rq.userInformation.extendedNegotiation ?? []) this.#requestedExtendedNegotiation.set(e.sopClassUID, e.info);
    const roles = new Map((ui.roleSelections ?? []).map((r) => [r.sopClassUID, r]));
    const contexts: PresentationContext[] = rq.presentationContexts.map((p) => {
      const a = ac.presentationContexts.find((x) => x.id === p.id);
      const result = a ? a.result : 2;
      const proposed = this.#init.proposedRoles?.get(p.abstractSyntax);
      const answer = roles.get(p.abstractSyntax);
      const pc: PresentationContext = {
        id: p.id, abstractSyntax: p.abstractSyntax, transferSyntax: result === 0 ? a!.transferSyntax! : '',
        accepted: result === 0, result,
      };
      if (proposed) {
        // PS3.7 D.3.3.4: without an answer the default roles apply (requestor SCU only).
        pc.scuRole = answer ? answer.scuRole && (proposed.scuRole ?? false) : true;
        pc.scpRole = answer ? answer.scpRole && (proposed.scpRole ?? false) : false;
      }
      return pc;
    });
    this.#setContexts(contexts);
    this.#state = 'established';
    const accepted = contexts.filter((c) => c.accepted);
    this.#log.info(this.#fields({
      accepted: accepted.map((c) => `${c.id}:${c.abstractSyntax}/${c.transferSyntax}`),
      rejected: contexts.filter((c) => !c.accepted).map((c) => `${c.id}:${c.abstractSyntax} (result ${c.result})`),
      peerMaxPduLength: this.#peerMaxPduLength,
    }), `association accepted by the peer: ${accepted.length} of ${contexts.length} presentation contexts`);
    this.#startIdle();
    this.#ready?.resolve();
  }

  #setContexts(contexts: PresentationContext[]): void {
    this.#contexts = contexts;
    this.#byId = new Map(contexts.map((c) => [c.id, c]));
  }

  // -------------------------------------------------------------------------------------------------------
  // Sending

  #writePdu(pdu: Pdu): void {
    if (this.#socket.destroyed || this.#socket.writableEnded) return;
    const bytes = encodePdu(pdu);
    this.stats.bytesSent += bytes.length;
    this.stats.pdusSent++;
    this.#socket.write(bytes);
  }

  #notOpenWhy(): string {
    if (this.#settled) return `the association is closed (${this.#settled.reason}${this.#settled.detail ? `: ${this.#settled.detail}` : ''})`;
    return `the association is ${this.#state}`;
  }

  /** Sends one message (command, then data set); messages are never interleaved. */
  #sendMessage(pcId: number, command: CommandSet, dataset?: DatasetSource): Promise<void> {
    const run = async (): Promise<void> => {
      if (!this.isOpen) {
        throw new DimseError(`cannot send ${commandName(command.CommandField)}: ${this.#notOpenWhy()}`, this.#settled?.reason ?? 'protocol');
      }
      const cmd = encodeCommand({ ...command, CommandDataSetType: dataset ? 0x0000 : NO_DATASET });
      this.#sending++;
      try {
        await this.#sendFragments(pcId, true, cmd);
        if (dataset) await this.#sendFragments(pcId, false, dataset);
      } finally {
        this.#sending--;
      }
      this.#log.debug(this.#fields({ command: commandName(command.CommandField), messageId: command.MessageID ?? command.MessageIDBeingRespondedTo,
        status: command.Status === undefined ? undefined : describeStatus(command.Status) }), 'message sent');
    };
    const p = this.#sendChain.then(run);
    this.#sendChain = p.catch(() => {});
    return p;
  }

  #maxPdvData(): number {
    const max = this.#peerMaxPduLength === 0 ? (this.#init.maxPduLength || DEFAULT_MAX_PDU_LENGTH) : this.#peerMaxPduLength;
    return Math.max(1, max - 6);
  }

  async #sendFragments(pcId: number, command: boolean, source: DatasetSource): Promise<void> {
    const max = this.#maxPdvData();
    if (!(source instanceof Uint8Array) && 'reader' in source) return await this.#sendPositional(pcId, source, max);
    if (source instanceof Uint8Array) {
      let o = 0;
      do {
        const n = Math.min(max, source.length - o);
        await this.#writePdv(pcId, command, o + n === source.length, [source.subarray(o, o + n)], n);
        o += n;
      } while (o < source.length);
      return;
    }
    // Hold back at most one PDV's worth so that the last fragment can be flagged.
    let pending: Uint8Array[] = [];
    let pendingLength = 0;
    for await (const chunk of source) {
      let c = chunk;
      while (c.length > 0) {
        const room = max - pendingLength;
        if (room === 0) {
          await this.#writePdv(pcId, command, false, pending, pendingLength);
          pending = [];
          pendingLength = 0;
          continue;
        }
        const take = Math.min(room, c.length);
        pending.push(c.subarray(0, take));
        pendingLength += take;
        c = c.subarray(take);
      }
    }
    await this.#writePdv(pcId, command, true, pending, pendingLength);
  }

  /**
   * A stored data set read by position into a few reused buffers, each written as one PDV and taken again on
   * its write callback (io/reusable-buffers.ts: no allocation per chunk). An odd total gets one NUL byte, as
   * evenLength() gives streamed ones (store-scu.ts): PDV fragments have even lengths.
   */
  async #sendPositional(pcId: number, source: PositionalSource, max: number): Promise<void> {
    // Buffers of an even size, each filled before it is sent: every PDV but the last is even, and the last,
    // when odd, is shorter than a buffer and has room for the padding.
    const buffers = this.#sendBuffers ??= new ReusableBuffers(Math.min(max, SEND_BUFFER_BYTES) & ~1);
    let empty = true;
    try {
      for await (const { buffer, length, last } of positionalChunks(source, buffers)) {
        empty = false;
        let size = length;
        if (last && size % 2 === 1) buffer[size++] = 0;
        await this.#writePdv(pcId, false, last, [buffer.subarray(0, size)], size, () => buffers.giveBack(buffer));
      }
    } catch (error) {
      throw error instanceof DimseError ? error : new DimseError((error as Error).message, 'protocol');
    }
    if (empty) await this.#writePdv(pcId, false, true, [], 0);
  }

  async #writePdv(pcId: number, command: boolean, last: boolean, pieces: Uint8Array[], length: number, written?: () => void): Promise<void> {
    if (this.#settled) {
      throw new DimseError(`association closed while sending: ${this.#notOpenWhy()}`, this.#settled.reason);
    }
    const s = this.#socket;
    if (s.destroyed || s.writableEnded) throw new DimseError('the connection is closed', 'socket-error');
    s.cork();
    let ok = s.write(encodePDataHeader(pcId, command, last, length));
    for (let i = 0; i < pieces.length; i++) ok = i === pieces.length - 1 && written ? s.write(pieces[i], written) : s.write(pieces[i]);
    s.uncork();
    this.stats.bytesSent += length + 12;
    this.stats.pdusSent++;
    this.#lastActivity = Date.now();
    if (!ok) await this.#drain();
  }

  #drain(): Promise<void> {
    const s = this.#socket;
    return new Promise((resolve, reject) => {
      const done = (): void => { s.off('drain', onDrain); s.off('close', onClose); };
      const onDrain = (): void => { done(); resolve(); };
      const onClose = (): void => { done(); reject(new DimseError(`connection closed while sending: ${this.#notOpenWhy()}`, this.#settled?.reason ?? 'socket-error')); };
      s.on('drain', onDrain);
      s.on('close', onClose);
    });
  }

  // -------------------------------------------------------------------------------------------------------
  // Ending

  #abortInternal(source: number, reason: number, why: CloseReason, detail: string): void {
    if (this.#state === 'closed') return;
    this.#writePdu({ type: 'A-ABORT', source, reason });
    this.#ready?.reject(new DimseError(detail, why));
    this.#settle(why, detail);
    this.#state = 'closing';
    this.#socket.end();
    this.#startArtim('peer did not close after A-ABORT', () => this.#socket.destroy());
  }

  #settle(reason: CloseReason, detail?: string, quiet = false): void {
    if (this.#settled) return;
    this.#sendBuffers?.close();
    this.#settled = detail ? { reason, detail } : { reason };
    this.#clearIdle();
    const error = new DimseError(`association ${reason}${detail ? `: ${detail}` : ''}`, reason);
    const msg = this.#incoming;
    if (msg?.sink instanceof DatasetSink) {
      msg.sink.fail(new DimseError(`association ${reason === 'peer-aborted' ? 'aborted by the peer' : reason} while receiving the data set ` +
        `(${msg.sink.received} bytes received)${detail ? `: ${detail}` : ''}`, reason));
    }
    this.#incoming = undefined;
    for (const q of this.#pending.values()) q.fail(error);
    this.#pending.clear();
    this.#ready?.reject(error);
    if (!quiet) {
      const fields = this.#fields({ reason, detail });
      if (reason === 'released') this.#log.info(fields, `association released${detail === 'released by the peer' ? ' by the peer' : ''}`);
      else if (reason === 'timeout') this.#log.warn(fields, `association timed out: ${detail}`);
      else if (reason === 'peer-aborted') this.#log.warn(fields, `association ${detail}`);
      else if (reason === 'aborted') this.#log.warn(fields, `association aborted: ${detail}`);
      else this.#log.warn(fields, `association connection lost: ${detail}`);
    }
    this.#resolveClosed(this.#settled);
  }

  #fields(extra: Record<string, unknown>): Record<string, unknown> {
    return { association: this.id, callingAE: this.#callingAETitle || undefined, calledAE: this.#calledAETitle || undefined,
      remote: this.remoteAddress, ...extra };
  }

  // -------------------------------------------------------------------------------------------------------
  // Timers

  #startArtim(what: string, onExpiry: () => void): void {
    this.#clearArtim();
    this.#artim = setTimeout(() => {
      this.#artim = undefined;
      this.#log.debug(this.#fields({ artimMs: this.#init.artimMs }), `ARTIM expired: ${what}`);
      onExpiry();
    }, this.#init.artimMs);
    this.#artim.unref?.();
  }

  #clearArtim(): void {
    if (this.#artim) clearTimeout(this.#artim);
    this.#artim = undefined;
  }

  #startIdle(): void {
    const idleMs = this.#init.idleMs;
    if (!(idleMs > 0)) return;
    const check = (): void => {
      this.#idle = undefined;
      if (this.#settled) return;
      const busy = this.#blocked || this.#sending > 0 || this.#activeHandlers > 0;
      const elapsed = Date.now() - this.#lastActivity;
      if (!busy && elapsed >= idleMs) {
        this.#abortInternal(AbortSource.ServiceProvider, AbortReason.NotSpecified, 'timeout', `no PDU for ${idleMs} ms (idle timeout)`);
        return;
      }
      if (busy) this.#lastActivity = Date.now();
      this.#idle = setTimeout(check, busy ? idleMs : Math.max(1, idleMs - elapsed));
      this.#idle.unref?.();
    };
    this.#lastActivity = Date.now();
    this.#idle = setTimeout(check, idleMs);
    this.#idle.unref?.();
  }

  #clearIdle(): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = undefined;
  }

  #clearTimers(): void {
    this.#clearArtim();
    this.#clearIdle();
  }
}

/** The peer answered the A-ASSOCIATE-RQ with an A-ASSOCIATE-RJ. */
export class AssociationRejectedError extends Error {
  readonly result: number;
  readonly source: number;
  readonly reason: number;
  constructor(result: number, source: number, reason: number, calledAETitle: string) {
    super(`association with ${calledAETitle} rejected: ${describeRejection(result, source, reason)} ` +
      `(result ${result}, source ${source}, reason ${reason})`);
    this.name = 'AssociationRejectedError';
    this.result = result;
    this.source = source;
    this.reason = reason;
  }
}

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}
