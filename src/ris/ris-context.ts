import type { AuditService } from '../audit/audit-service.ts';
import type { AuditAction, AuditEventInput, AuditInterface, AuditNetworkEnd, AuditPrincipal, AuditStudyRef } from '../ports/audit-store.ts';
import type { ChangeSource } from './model.ts';
import type { RisStore } from './ris-store.ts';

/** Who asks for a change, and through what: the timeline's source and the audit record's principal. */
export interface ChangeContext {
  source: ChangeSource;
  principal: AuditPrincipal;
  interface: AuditInterface;
  origin?: AuditNetworkEnd | null;
}

/**
 * One change in progress: the store bound to its transaction, its context, its time (one instant for every
 * row it writes), and the audit records to write once it is committed (an audit record must not claim a
 * change that was rolled back).
 */
export class RisUnit {
  readonly store: RisStore;
  readonly context: ChangeContext;
  readonly now: string;
  readonly #audits: AuditEventInput[];

  constructor(store: RisStore, context: ChangeContext, now: string, audits: AuditEventInput[]) {
    this.store = store;
    this.context = context;
    this.now = now;
    this.#audits = audits;
  }

  audit(action: AuditAction, detail: string, subject: { patientIds?: string[]; studies?: AuditStudyRef[] }): void {
    this.#audits.push({
      principal: this.context.principal, action, interface: this.context.interface, origin: this.context.origin ?? null, time: this.now,
      patientIds: subject.patientIds, studies: subject.studies,
      detail: this.context.source.ref ? `${detail} (${this.context.source.kind} ${this.context.source.ref})` : detail,
    });
  }
}

export interface RisCoreDeps {
  store: RisStore;
  audit: AuditService;
  clock?: () => Date;
}

/** Runs changes: one transaction each, audited after commit. Shared by the patient, order and report services. */
export class RisCore {
  readonly store: RisStore;
  readonly #audit: AuditService;
  readonly #clock: () => Date;

  constructor(deps: RisCoreDeps) {
    this.store = deps.store;
    this.#audit = deps.audit;
    this.#clock = deps.clock ?? (() => new Date());
  }

  now(): string {
    return this.#clock().toISOString();
  }

  /**
   * Runs `fn` in one transaction and writes its audit records once it committed (awaited: a change is
   * reported done with its audit durable). Inside an HL7 message's transaction, pass `within` to join it.
   */
  async change<T>(context: ChangeContext, fn: (unit: RisUnit) => Promise<T>, within?: { store: RisStore; audits: AuditEventInput[] }): Promise<T> {
    if (within) return await fn(new RisUnit(within.store, context, this.now(), within.audits));
    const audits: AuditEventInput[] = [];
    const result = await this.store.transaction((tx) => fn(new RisUnit(tx, context, this.now(), audits)));
    await this.recordAudits(audits);
    return result;
  }

  async recordAudits(audits: AuditEventInput[]): Promise<void> {
    await Promise.all(audits.map((a) => this.#audit.record(a)));
  }
}
