import type { Logger } from 'pino';
import { buildAck, FALLBACK_HEADER, headerOf, locationText, type AckCode, type AckedHeader, type Hl7ErrorDetail } from '../../hl7/ack.ts';
import { encodeCharacterSet, Hl7ParseError, parseHl7, type Hl7Message } from '../../hl7/message.ts';
import type { MllpPeer } from '../../hl7/mllp.ts';
import { AtriumError } from '../../errors.ts';
import type { AuditEventInput, AuditPrincipal, AuditRecord } from '../../ports/audit-store.ts';
import type { RisCore } from '../ris-context.ts';
import { RisUnit } from '../ris-context.ts';
import { isUniqueViolation, type Hl7MessageOutcome, type NewHl7Message, type RisStore } from '../ris-store.ts';

type MessageBase = Omit<NewHl7Message, keyof Hl7MessageOutcome>;
import { Hl7Failure } from './fields.ts';
import { HL7_HANDLERS, type Hl7Services } from './handlers.ts';

/** Versions whose ER7 messages Atrium reads: 2.3 to 2.5.1, and later ones up to 2.8 (accepted, read the same way). */
const SUPPORTED_VERSION = /^2\.(3(\.1)?|4|5(\.1)?|6|7(\.1)?|8(\.\d)?)$/;

export interface Hl7ReceiverOptions {
  /** MSH-3 / MSH-4 of our ACKs. */
  applicationName: string;
  facilityName: string;
  /** Sending applications (MSH-3.1, or MSH-3.1^MSH-4.1) allowed; empty: any. */
  allowedSenders: readonly string[];
}

export interface Hl7Result {
  ack: Buffer;
  ackCode: AckCode;
  /** The same control ID from the same sender was answered before: this ACK is that one, nothing was applied. */
  duplicate: boolean;
}

let ackSequence = 0;

/** Messages applied by one transaction at most (group commit). */
const MAX_GROUP = 64;

interface Queued {
  message: Hl7Message;
  base: MessageBase;
  header: AckedHeader;
  peer: Pick<MllpPeer, 'address'>;
  resolve: (result: Hl7Result) => void;
  reject: (error: unknown) => void;
}

/**
 * What an HL7 message does, transport aside: parse, check the header, apply it (one transaction with its
 * message-log row and its ACK), answer. Original-mode acknowledgement: AA only once the effect is
 * committed; AE/AR with ERR (code, field, text) and nothing applied. A message whose sender and MSH-10
 * were seen gets the stored ACK: the log's unique key (sender, control ID) decides, inside the
 * transaction, so two copies arriving at once cannot both apply (the second waits for the first's commit
 * on PostgreSQL and fails its insert; SQLite has one writer).
 */
export class Hl7Receiver {
  readonly #core: RisCore;
  readonly #services: Hl7Services;
  readonly #options: Hl7ReceiverOptions;
  readonly #log: Logger;
  readonly #queue: Queued[] = [];
  #committing = false;

  constructor(core: RisCore, services: Hl7Services, options: Hl7ReceiverOptions, log: Logger) {
    this.#core = core;
    this.#services = services;
    this.#options = options;
    this.#log = log;
  }

  async receive(raw: Buffer, peer: Pick<MllpPeer, 'address'>): Promise<Hl7Result> {
    const receivedAt = this.#core.now();
    let message: Hl7Message;
    try {
      message = parseHl7(raw);
    } catch (error) {
      if (!(error instanceof Hl7ParseError)) throw error;
      // Not even a header to key on: logged (no control ID), answered AR with what could be read.
      const failure = new Hl7Failure('AR', error.hl7Code, error.location, error.message);
      const ack = this.#ack(FALLBACK_HEADER, failure);
      await this.#core.store.insertMessage({
        sender: '', controlId: null, messageType: null, version: null, remoteAddress: peer.address, raw, text: raw.toString('latin1'),
        ...this.#outcome(ack, failure, null), receivedAt,
      });
      this.#log.warn({ remoteAddress: peer.address, hl7Error: error.hl7Code }, `HL7: message refused: ${error.message}`);
      return { ack: encodeCharacterSet(ack, ''), ackCode: 'AR', duplicate: false };
    }
    const header = headerOf(message);
    const sender = `${message.sendingApplication}^${message.sendingFacility}`;
    const controlId = message.controlId || null;
    const base: MessageBase = {
      sender, controlId, messageType: `${message.messageType}^${message.triggerEvent}`, version: message.version || null,
      remoteAddress: peer.address, raw, text: message.text, receivedAt,
    };
    const check = this.#checkHeader(message);
    if (check) return await this.#refuse(this.#core.store, base, header, check, null);
    return await new Promise<Hl7Result>((resolve, reject) => {
      this.#queue.push({ message, base, header, peer, resolve, reject });
      if (!this.#committing) void this.#commitQueued();
    });
  }

  /**
   * Group commit: the messages that arrived while a transaction was running (over several connections;
   * one connection has one message under way at a time) are applied together by the next one, each under
   * its own savepoint, so that N messages cost one commit (one WAL flush on SQLite) instead of N. A
   * message that fails rolls back its savepoint alone and is logged with its AE/AR in the same
   * transaction; every ACK, AA or not, is answered only once that transaction committed.
   */
  async #commitQueued(): Promise<void> {
    this.#committing = true;
    try {
      while (this.#queue.length > 0) await this.#commitBatch(this.#queue.splice(0, MAX_GROUP));
    } finally {
      this.#committing = false;
    }
  }

  async #commitBatch(batch: Queued[]): Promise<void> {
    let outcome: { results: Hl7Result[]; stored: AuditRecord[] };
    try {
      outcome = await this.#core.store.transaction(async (tx) => {
        const audits: AuditEventInput[] = [];
        const results: Hl7Result[] = [];
        for (const item of batch) results.push(await this.#applyOne(tx, item, audits));
        return { results, stored: await this.#core.writeAudits(tx, audits) };
      });
    } catch (error) {
      // The transaction itself failed (the database, not a message): each message again on its own, so
      // that one cause does not take the others' ACKs with it; alone, it is refused as before.
      if (batch.length > 1) {
        for (const item of batch) await this.#commitBatch([item]);
        return;
      }
      const item = batch[0]!;
      try {
        const { sender, controlId } = item.base;
        item.resolve(await this.#refuse(this.#core.store, item.base, item.header, this.#failureOf(error, sender, controlId), item.message));
      } catch (refusal) {
        item.reject(refusal);
      }
      return;
    }
    this.#core.publishAudits(outcome.stored);
    batch.forEach((item, i) => item.resolve(outcome.results[i]!));
  }

  /** One message inside the group's transaction `tx`: its effect, log row and ACK under a savepoint. */
  async #applyOne(tx: RisStore, item: Queued, audits: AuditEventInput[]): Promise<Hl7Result> {
    const { message, base, header, peer } = item;
    const { sender, controlId } = base;
    const known = await tx.findMessage(sender, controlId!);
    if (known) return this.#duplicate(known.ack, known.ackCode, header);
    const mine: AuditEventInput[] = [];
    try {
      const ack = await tx.savepoint(async () => {
        const id = await tx.insertMessage({ ...base, ack: '', ackCode: 'AA', errorCode: null, errorLocation: null, errorText: null, patientId: null, accessionNumber: null });
        const handled = await this.#apply(message, new RisUnit(tx, this.#context(message, peer.address), base.receivedAt, mine));
        const ackText = this.#ack(header, null);
        await tx.setMessageOutcome(id, this.#outcome(ackText, null, handled));
        return ackText;
      });
      audits.push(...mine);
      this.#log.info({ sender, controlId, type: base.messageType }, 'HL7: message applied');
      return { ack: encodeCharacterSet(ack, header.characterSet), ackCode: 'AA', duplicate: false };
    } catch (error) {
      if (isUniqueViolation(error)) {
        const copy = await tx.findMessage(sender, controlId!);
        if (copy) return this.#duplicate(copy.ack, copy.ackCode, header);
      }
      return await this.#refuse(tx, base, header, this.#failureOf(error, sender, controlId), message);
    }
  }

  /**
   * An administrator's replay of a logged message that was not applied (after fixing its cause): run
   * again, the log row's ACK replaced by the new outcome and the replay counted.
   */
  async replay(id: number, by: AuditPrincipal): Promise<{ ackCode: AckCode; ack: string; error: string | null }> {
    const logged = await this.#core.store.getMessage(id);
    if (!logged) throw new AtriumError('not-found', `no HL7 message ${id}`);
    if (logged.ackCode === 'AA') throw new AtriumError('conflict', `HL7 message ${id} was applied already (AA): replaying it would apply it twice`);
    const message = (() => { try { return parseHl7(logged.raw); } catch (error) { throw new AtriumError('invalid-input', `HL7 message ${id} cannot be parsed: ${(error as Error).message}`); } })();
    const header = headerOf(message);
    const replay = { by: by.id ?? by.kind, at: this.#core.now() };
    const check = this.#checkHeader(message);
    const audits: AuditEventInput[] = [];
    try {
      if (check) throw check;
      const context = { ...this.#context(message, logged.remoteAddress ?? ''), principal: by, interface: 'rest' as const };
      const { ack, stored } = await this.#core.store.transaction(async (tx) => {
        const handled = await this.#apply(message, new RisUnit(tx, context, replay.at, audits));
        const ackText = this.#ack(header, null);
        await tx.setMessageOutcome(id, this.#outcome(ackText, null, handled), replay);
        return { ack: ackText, stored: await this.#core.writeAudits(tx, audits) };
      });
      this.#core.publishAudits(stored);
      return { ackCode: 'AA', ack, error: null };
    } catch (error) {
      const failure = this.#failureOf(error, logged.sender, logged.controlId);
      const ack = this.#ack(header, failure);
      await this.#core.store.setMessageOutcome(id, this.#outcome(ack, failure, null), replay);
      return { ackCode: failure.ackCode, ack, error: failure.message };
    }
  }

  #checkHeader(message: Hl7Message): Hl7Failure | null {
    const msh = message.msh;
    if (!message.messageType) return new Hl7Failure('AR', '101', { segment: 'MSH', sequence: 1, field: 9 }, 'MSH-9 (message type) is required');
    if (!message.controlId) return new Hl7Failure('AR', '101', { segment: 'MSH', sequence: 1, field: 10 }, 'MSH-10 (message control ID) is required');
    if (!message.version) return new Hl7Failure('AR', '101', { segment: 'MSH', sequence: 1, field: 12 }, 'MSH-12 (version ID) is required');
    if (!SUPPORTED_VERSION.test(message.version)) return new Hl7Failure('AR', '203', { segment: 'MSH', sequence: 1, field: 12 }, `HL7 version ${message.version} is not supported (2.3 to 2.8)`);
    const allowed = this.#options.allowedSenders;
    if (allowed.length > 0 && !allowed.includes(message.sendingApplication) && !allowed.includes(`${message.sendingApplication}^${message.sendingFacility}`)) {
      return new Hl7Failure('AR', '207', { segment: 'MSH', sequence: 1, field: 3 }, `sending application ${message.sendingApplication} is not allowed to send to Atrium`);
    }
    const types = HL7_HANDLERS[message.messageType];
    if (!types) return new Hl7Failure('AR', '200', { segment: 'MSH', sequence: 1, field: 9, component: 1 }, `message type ${message.messageType} is not supported (ADT, ORM, OMI, ORU)`);
    if (!types[message.triggerEvent]) {
      return new Hl7Failure('AR', '201', { segment: 'MSH', sequence: 1, field: 9, component: 2 }, `event ${message.messageType}^${message.triggerEvent} is not supported (${Object.keys(types).join(', ')})`);
    }
    void msh;
    return null;
  }

  async #apply(message: Hl7Message, unit: RisUnit) {
    return await HL7_HANDLERS[message.messageType]![message.triggerEvent]!(message, unit, this.#services);
  }

  #context(message: Hl7Message, address: string) {
    const sender = `${message.sendingApplication}^${message.sendingFacility}`;
    return {
      source: { kind: 'hl7' as const, ref: `${sender}:${message.controlId}` },
      principal: { kind: 'anonymous' as const, id: null, displayName: `HL7 ${sender}` },
      interface: 'hl7' as const, origin: { address },
    };
  }

  #failureOf(error: unknown, sender: string, controlId: string | null): Hl7Failure {
    if (error instanceof Hl7Failure) return error;
    if (error instanceof Hl7ParseError) return new Hl7Failure('AE', error.hl7Code, error.location, error.message);
    if (error instanceof AtriumError) return new Hl7Failure('AE', error.code === 'not-found' ? '204' : '207', null, error.message);
    this.#log.error({ err: error, sender, controlId }, 'HL7: message handling failed');
    return new Hl7Failure('AE', '207', null, `application internal error: ${(error as Error).message ?? error}`.slice(0, 200));
  }

  async #refuse(store: RisStore, base: MessageBase, header: AckedHeader, failure: Hl7Failure, message: Hl7Message | null): Promise<Hl7Result> {
    const ack = this.#ack(header, failure);
    const pid = message?.segment('PID');
    const outcome = this.#outcome(ack, failure, { patientId: pid?.get(3) || null, accessionNumber: message?.segment('OBR')?.get(18) || null });
    const insert = () => store.insertMessage({ ...base, ...outcome });
    try {
      // In a group's transaction, under a savepoint: a copy logged meanwhile (its unique key) must not abort the others.
      if (store === this.#core.store) await insert();
      else await store.savepoint(insert);
    } catch (error) {
      if (!isUniqueViolation(error) || !base.controlId) throw error;
      const copy = await store.findMessage(base.sender, base.controlId);
      if (copy) return this.#duplicate(copy.ack, copy.ackCode, header);
    }
    this.#log.warn({ sender: base.sender, controlId: base.controlId, hl7Error: failure.hl7Code, location: locationText(failure.location) }, `HL7: message not applied (${failure.ackCode}): ${failure.message}`);
    return { ack: encodeCharacterSet(ack, header.characterSet), ackCode: failure.ackCode, duplicate: false };
  }

  #duplicate(ack: string, ackCode: AckCode, header: AckedHeader): Hl7Result {
    return { ack: encodeCharacterSet(ack, header.characterSet), ackCode, duplicate: true };
  }

  #ack(header: AckedHeader, failure: Hl7Failure | null): string {
    const error: Hl7ErrorDetail | null = failure ? { code: failure.hl7Code, location: failure.location, text: failure.message } : null;
    ackSequence = (ackSequence + 1) % 1_000_000;
    return buildAck(header, {
      code: failure ? failure.ackCode : 'AA', error, sendingApplication: this.#options.applicationName, sendingFacility: this.#options.facilityName,
      controlId: `ATR${Date.now().toString(36).toUpperCase()}${ackSequence}`, time: new Date(),
    });
  }

  #outcome(ack: string, failure: Hl7Failure | null, handled: { patientId: string | null; accessionNumber: string | null } | null): Hl7MessageOutcome {
    return {
      ack, ackCode: failure ? failure.ackCode : 'AA', errorCode: failure?.hl7Code ?? null, errorLocation: failure ? locationText(failure.location) || null : null,
      errorText: failure?.message ?? null, patientId: handled?.patientId ?? null, accessionNumber: handled?.accessionNumber ?? null,
    };
  }
}
