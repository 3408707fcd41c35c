import type { AuditService } from '../audit/audit-service.ts';
import type { AuditAction, AuditEventInput, AuditRecord, AuditInterface, AuditNetworkEnd, AuditPrincipal, AuditStudyRef } from '../ports/audit-store.ts';
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
   * Runs `fn` in one transaction with its audit records (written in that transaction, handed to the audit
   * sinks once it committed: a record exists exactly when its change does). Inside an HL7 message's
   * transaction, pass `within` to join it.
   */
  async change<T>(context: ChangeContext, fn: (unit: RisUnit) => Promise<T>, within?: { store: RisStore; audits: AuditEventInput[] }): Promise<T> {
    if (within) return await fn(new RisUnit(within.store, context, this.now(), within.audits));
    const audits: AuditEventInput[] = [];
    const { result, stored } = await this.store.transaction(async (tx) => {
      const result = await fn(new RisUnit(tx, context, this.now(), audits));
      return { result, stored: await this.writeAudits(tx, audits) };
    });
    this.publishAudits(stored);
    return result;
  }

  /** Inside a change's transaction (`tx`): writes its audit records (AuditService.prepare). */
  async writeAudits(tx: RisStore, audits: readonly AuditEventInput[]): Promise<AuditRecord[]> {
    return audits.length === 0 ? [] : await tx.appendAudit(audits.map((a) => this.#audit.prepare(a)));
  }

  /** After the commit: the records to the audit sinks (syslog). */
  publishAudits(stored: readonly AuditRecord[]): void {
    if (stored.length > 0) this.#audit.publish(stored);
  }
}
