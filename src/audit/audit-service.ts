import { randomUUID } from 'node:crypto';
import { AtriumError } from '../errors.ts';
import {
  AUDIT_ACTIONS, AUDIT_INTERFACES, AUDIT_OBJECT_TYPES, AUDIT_OUTCOMES, PRINCIPAL_KINDS,
  type AuditAction, type AuditEventInput, type AuditFilter, type AuditInterface, type AuditNetworkEnd, type AuditPrincipal, type AuditRecord,
  type AuditStore, type AuditStudyRef, type NewAuditRecord,
} from '../ports/audit-store.ts';
import type { Page, Paged } from '../ports/index-store.ts';
import { toDicomAuditMessage } from './dicom-audit-message.ts';
import { toFhirAuditEvent } from './fhir-audit-event.ts';
import type { Principal } from '../security/types.ts';

/**
 * Who acted, as the trail names them: local users by user name (what a privacy officer searches for, and
 * still meaningful after the account is gone), API keys by key id, OIDC users by subject, AEs by title.
 */
export function auditPrincipal(p: Principal | null): AuditPrincipal {
  if (!p || p.kind === 'anonymous') return { kind: 'anonymous', id: null, displayName: p?.name ?? null, roles: p?.roles ?? [] };
  return { kind: p.kind, id: p.kind === 'user' ? p.name : p.id, displayName: p.name, roles: p.roles };
}

/** Who asks (for a change, or to read the trail), through what, from where. */
export interface AuditActor {
  principal: AuditPrincipal;
  interface: AuditInterface;
  origin?: AuditNetworkEnd | null;
}

/** The audit trail as a PS3.15 participant object (A.5.3.2 names the audit log by URI). */
export function auditTrailUri(sourceId: string): string {
  return `urn:atrium:audit-trail:${encodeURIComponent(sourceId)}`;
}

/** A filter as the query text of an audit-log-used record (`action=read&user=alice`). */
export function filterText(filter: AuditFilter, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...filter, ...extra })) if (value !== undefined && value !== '') params.set(key, String(value));
  return params.toString();
}

export type AuditExportFormat = 'json' | 'ndjson' | 'fhir' | 'fhir-ndjson' | 'dicom-xml';
export const AUDIT_EXPORT_FORMATS: readonly AuditExportFormat[] = ['json', 'ndjson', 'fhir', 'fhir-ndjson', 'dicom-xml'];

export const EXPORT_CONTENT_TYPES: Record<AuditExportFormat, string> = {
  json: 'application/json',
  ndjson: 'application/x-ndjson',
  fhir: 'application/fhir+json',
  'fhir-ndjson': 'application/fhir+ndjson',
  'dicom-xml': 'application/xml',
};

/** Where records go besides the database (the syslog sender). Must not block or throw. */
export interface AuditSink {
  sendAudit(record: AuditRecord): void;
}

export interface AuditServiceDeps {
  store: AuditStore;
  /** Our audit source id (PS3.15 AuditSourceID): the AE title, or a node name. */
  sourceId: string;
  clock?: () => Date;
  sinks?: AuditSink[];
  /** Default window of `recordOncePerStudy`. Default 5 minutes. */
  oncePerStudyWindowMs?: number;
  /**
   * The patient and accession of an archived study: fills in study references a transport gave by UID
   * alone, so that every record names the patient (what a privacy officer searches by).
   */
  studyInfo?: (studyInstanceUid: string) => Promise<{ patientId: string | null; accessionNumber: string | null } | null>;
}

interface Pending {
  record: NewAuditRecord;
  resolve: (record: AuditRecord) => void;
  reject: (error: unknown) => void;
}

/**
 * The audit trail's one entry point for every transport. `record` is durable (it resolves once the
 * record is committed in the index database) and cheap under load: records arriving while a commit is
 * running are written together by the next one (group commit), so N concurrent requests cost about
 * one transaction, not N.
 */
export class AuditService {
  readonly #store: AuditStore;
  readonly #sourceId: string;
  readonly #clock: () => Date;
  readonly #sinks: AuditSink[];
  readonly #windowMs: number;
  readonly #studyInfo: AuditServiceDeps['studyInfo'];
  #pending: Pending[] = [];
  #writing: Promise<void> | null = null;
  /** Once-per-study: key -> when it was last recorded (ms on the clock) and that record. */
  readonly #recent = new Map<string, { at: number; record: Promise<AuditRecord> }>();

  constructor(deps: AuditServiceDeps) {
    this.#store = deps.store;
    this.#sourceId = deps.sourceId;
    this.#clock = deps.clock ?? (() => new Date());
    this.#sinks = deps.sinks ?? [];
    this.#windowMs = deps.oncePerStudyWindowMs ?? 300_000;
    this.#studyInfo = deps.studyInfo;
  }

  /** Validates and writes one record; resolves with it (and its sequence number) once durable. */
  async record(event: AuditEventInput): Promise<AuditRecord> {
    const unnamed = this.#studyInfo ? (event.studies ?? []).filter((s) => !s.patientId) : [];
    // The time is when it happened, not when the study's patient was looked up.
    const record = this.#normalize(unnamed.length ? await this.#namePatients({ ...event, time: event.time ?? this.#clock() }) : event);
    const stored = await new Promise<AuditRecord>((resolve, reject) => {
      this.#pending.push({ record, resolve, reject });
      if (!this.#writing) this.#writing = this.#drain();
    });
    this.publish([stored]);
    return stored;
  }

  /**
   * The record of `event`, validated, for a caller that writes it in its own transaction with the change
   * it reports (insertAuditRecords in adapters/index/sql-audit-store.ts), then calls `publish` once that
   * committed: the record exists exactly when the change does, and costs no transaction of its own. The
   * caller names the patients (no study lookup happens here: the caller's transaction holds SQLite's one
   * connection).
   */
  prepare(event: AuditEventInput): NewAuditRecord {
    return this.#normalize(event);
  }

  /** Hands committed records to the sinks (syslog); what `record` does after its own write. */
  publish(records: readonly AuditRecord[]): void {
    for (const stored of records) {
      for (const sink of this.#sinks) {
        try {
          sink.sendAudit(stored);
        } catch {
          // A sink is a copy: its failure never fails the audited request.
        }
      }
    }
  }

  async #namePatients(event: AuditEventInput): Promise<AuditEventInput> {
    const studies = await Promise.all((event.studies ?? []).map(async (study) => {
      if (study.patientId) return study;
      const info = await this.#studyInfo!(study.studyInstanceUid).catch(() => null);
      return info ? { ...study, patientId: info.patientId, accessionNumber: study.accessionNumber ?? info.accessionNumber } : study;
    }));
    return { ...event, studies };
  }

  /**
   * "Bulk retrievals once per study, not once per frame": records `event` (which names one study) unless
   * the same principal already had the same action on the same study through the same interface from
   * the same origin within `windowMs`; then returns that earlier record. 100 WADO frame requests of one
   * study in a viewing session make one record.
   */
  async recordOncePerStudy(event: AuditEventInput & { studies: [AuditStudyRef] }, windowMs = this.#windowMs): Promise<AuditRecord> {
    const now = this.#clock().getTime();
    const key = JSON.stringify([event.principal.kind, event.principal.id, event.action, event.interface, event.origin?.address ?? null,
      event.origin?.aeTitle ?? null, event.studies[0].studyInstanceUid, event.outcome ?? 'success']);
    const seen = this.#recent.get(key);
    if (seen && now - seen.at < windowMs) return await seen.record;
    if (this.#recent.size > 10_000) {
      for (const [k, v] of this.#recent) if (now - v.at >= windowMs) this.#recent.delete(k);
    }
    const record = this.record(event);
    this.#recent.set(key, { at: now, record });
    record.catch(() => {
      if (this.#recent.get(key)?.record === record) this.#recent.delete(key);
    });
    return await record;
  }

  /** Shorthand of recordOncePerStudy for transports. */
  async auditOncePerStudy(principal: AuditPrincipal, action: AuditAction, studyUid: string, windowMs?: number,
    extra: Omit<Partial<AuditEventInput>, 'principal' | 'action' | 'studies'> & { study?: Omit<AuditStudyRef, 'studyInstanceUid'> } = {}): Promise<AuditRecord> {
    const { study, ...rest } = extra;
    return await this.recordOncePerStudy({
      interface: 'dicomweb', ...rest, principal, action, studies: [{ ...study, studyInstanceUid: studyUid }],
    }, windowMs);
  }

  /**
   * A request-scoped accumulator: a multi-study retrieve (C-MOVE of a patient, a WADO request over many
   * instances) adds what it sends as it goes, then `flush` writes one record per study with its counts.
   */
  accumulator(base: Omit<AuditEventInput, 'studies' | 'patientIds'>): StudyAccumulator {
    return new StudyAccumulator(this, base);
  }

  async search(filter: AuditFilter, page: Page): Promise<Paged<AuditRecord>> {
    return await this.#store.search(normalizeFilter(filter), page);
  }

  /**
   * `search` on behalf of `actor`, recorded as audit-log-used (the filter as the query), after the search
   * (the page read does not hold its own record). A refused filter is recorded as a failure.
   */
  async searchAs(actor: AuditActor, filter: AuditFilter, page: Page): Promise<Paged<AuditRecord>> {
    try {
      const found = await this.search(filter, page);
      await this.#trailUsed(actor, 'read', filterText(filter, { limit: String(page.limit), offset: String(page.offset) }));
      return found;
    } catch (error) {
      await this.#trailUsed(actor, 'read', filterText(filter), error);
      throw error;
    }
  }

  /**
   * `export` on behalf of `actor`, recorded as audit-log-used with the filter and format: a refused filter
   * or format at once (and thrown here, before the first byte), an export once it ends, fails or is
   * abandoned by its reader (then as a failure).
   */
  async exportAs(actor: AuditActor, filter: AuditFilter, format: AuditExportFormat): Promise<AsyncIterable<string>> {
    const query = filterText(filter, { format });
    let normalized: AuditFilter;
    try {
      if (!AUDIT_EXPORT_FORMATS.includes(format)) throw new AtriumError('invalid-input', `format must be one of ${AUDIT_EXPORT_FORMATS.join(', ')}`);
      normalized = normalizeFilter(filter);
    } catch (error) {
      await this.#trailUsed(actor, 'exported', query, error);
      throw error;
    }
    const chunks = this.export(normalized, format);
    const trailUsed = (error?: unknown) => this.#trailUsed(actor, 'exported', query, error);
    return (async function* recorded() {
      let ended = false;
      let failure: unknown = new Error('the export was abandoned before its end');
      try {
        yield* chunks;
        ended = true;
      } catch (error) {
        failure = error;
        throw error;
      } finally {
        await trailUsed(ended ? undefined : failure);
      }
    })();
  }

  /**
   * Records that `actor` read the trail through another reader than `searchAs` (the FHIR AuditEvent
   * search and read): audit-log-used with `query` (a failure when `error` is given).
   */
  async recordTrailRead(actor: AuditActor, query: string, error?: unknown): Promise<void> {
    await this.#trailUsed(actor, 'read', query, error);
  }

  async #trailUsed(actor: AuditActor, change: 'read' | 'exported', query: string, error?: unknown): Promise<void> {
    const failed = error === undefined ? {} : {
      outcome: error instanceof AtriumError && error.code === 'invalid-input' ? 'minor-failure' as const : 'serious-failure' as const,
      outcomeReason: (error instanceof Error ? error.message : String(error)).slice(0, 500),
    };
    await this.record({
      principal: actor.principal, interface: actor.interface, origin: actor.origin ?? null, action: 'audit-log-used', query,
      objects: [{ type: 'audit-trail', id: auditTrailUri(this.#sourceId), name: 'Security Audit Log', change }], ...failed,
    });
  }

  /** The matching records, oldest first, in `format`, as text chunks (constant memory). */
  async *export(filter: AuditFilter, format: AuditExportFormat): AsyncIterable<string> {
    if (!AUDIT_EXPORT_FORMATS.includes(format)) throw new AtriumError('invalid-input', `format must be one of ${AUDIT_EXPORT_FORMATS.join(', ')}`);
    const records = this.#store.scan(normalizeFilter(filter));
    let first = true;
    switch (format) {
      case 'ndjson':
        for await (const r of records) yield `${JSON.stringify(r)}\n`;
        return;
      case 'fhir-ndjson':
        for await (const r of records) yield `${JSON.stringify(toFhirAuditEvent(r))}\n`;
        return;
      case 'json':
        yield '[';
        for await (const r of records) {
          yield `${first ? '\n' : ',\n'}${JSON.stringify(r)}`;
          first = false;
        }
        yield '\n]\n';
        return;
      case 'fhir':
        yield `{"resourceType":"Bundle","id":"${randomUUID()}","type":"collection","timestamp":"${this.#clock().toISOString()}","entry":[`;
        for await (const r of records) {
          yield `${first ? '\n' : ',\n'}${JSON.stringify({ fullUrl: `urn:uuid:${r.id}`, resource: toFhirAuditEvent(r) })}`;
          first = false;
        }
        yield '\n]}\n';
        return;
      case 'dicom-xml':
        yield '<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n';
        for await (const r of records) yield `${toDicomAuditMessage(r, { declaration: false })}\n`;
        yield '</AuditMessages>\n';
        return;
    }
  }

  /** Waits for the records being written. */
  async drain(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, 500);
        try {
          const stored = await this.#store.append(batch.map((p) => p.record));
          batch.forEach((p, i) => p.resolve(stored[i]));
        } catch (error) {
          for (const p of batch) p.reject(error);
        }
      }
    } finally {
      this.#writing = null;
    }
  }

  #normalize(event: AuditEventInput): NewAuditRecord {
    const problems: string[] = [];
    const p = event.principal;
    if (!p || !PRINCIPAL_KINDS.includes(p.kind)) problems.push(`principal.kind must be one of ${PRINCIPAL_KINDS.join(', ')}`);
    if (p && p.kind !== 'anonymous' && !p.id) problems.push('principal.id is required unless the principal is anonymous');
    if (!AUDIT_ACTIONS.includes(event.action)) problems.push(`action must be one of ${AUDIT_ACTIONS.join(', ')}`);
    if (!AUDIT_INTERFACES.includes(event.interface)) problems.push(`interface must be one of ${AUDIT_INTERFACES.join(', ')}`);
    const outcome = event.outcome ?? 'success';
    if (!AUDIT_OUTCOMES.includes(outcome)) problems.push(`outcome must be one of ${AUDIT_OUTCOMES.join(', ')}`);
    const time = event.time === undefined ? this.#clock() : new Date(event.time);
    if (Number.isNaN(time.getTime())) problems.push(`time is not a date: ${String(event.time)}`);
    for (const s of event.studies ?? []) if (!s.studyInstanceUid) problems.push('every study needs a studyInstanceUid');
    for (const o of event.objects ?? []) {
      if (!AUDIT_OBJECT_TYPES.includes(o.type)) problems.push(`object type must be one of ${AUDIT_OBJECT_TYPES.join(', ')}`);
      if (!o.id) problems.push('every object needs an id');
    }
    if (problems.length) throw new AtriumError('invalid-input', `invalid audit event: ${problems.join('; ')}`);

    const studies = (event.studies ?? []).map((s) => dropEmpty({ ...s }));
    const patientIds = [...new Set([...(event.patientIds ?? []), ...studies.map((s) => s.patientId ?? '')].filter((id) => id !== ''))];
    return {
      id: randomUUID(),
      time: time.toISOString(),
      principal: { kind: p.kind, id: p.id || null, displayName: p.displayName ?? null, roles: [...(p.roles ?? [])] },
      action: event.action,
      interface: event.interface,
      origin: networkEnd(event.origin),
      destination: networkEnd(event.destination),
      patientIds,
      studies,
      objects: (event.objects ?? []).map((o) => dropEmpty({ ...o })),
      query: event.query ?? null,
      outcome,
      outcomeReason: event.outcomeReason ?? null,
      detail: event.detail ?? null,
      sourceId: this.#sourceId,
    };
  }
}

/** Collects studies of one request, then writes one record per study (see AuditService.accumulator). */
export class StudyAccumulator {
  readonly #service: AuditService;
  readonly #base: Omit<AuditEventInput, 'studies' | 'patientIds'>;
  readonly #studies = new Map<string, { patientId: string | null; accessionNumber: string | null; series: Set<string>; sopClasses: Set<string>; count: number }>();

  constructor(service: AuditService, base: Omit<AuditEventInput, 'studies' | 'patientIds'>) {
    this.#service = service;
    this.#base = base;
  }

  get size(): number {
    return this.#studies.size;
  }

  /** One instance (or `count` of them) of a study was sent. */
  add(study: { studyInstanceUid: string; patientId?: string | null; accessionNumber?: string | null; seriesInstanceUid?: string; sopClassUid?: string }, count = 1): void {
    let s = this.#studies.get(study.studyInstanceUid);
    if (!s) {
      s = { patientId: study.patientId ?? null, accessionNumber: study.accessionNumber ?? null, series: new Set(), sopClasses: new Set(), count: 0 };
      this.#studies.set(study.studyInstanceUid, s);
    }
    if (study.seriesInstanceUid) s.series.add(study.seriesInstanceUid);
    if (study.sopClassUid) s.sopClasses.add(study.sopClassUid);
    s.count += count;
  }

  /** Writes the records (one per study) with the outcome of the request; clears the accumulator. */
  async flush(outcome: Pick<AuditEventInput, 'outcome' | 'outcomeReason'> = {}): Promise<AuditRecord[]> {
    const entries = [...this.#studies];
    this.#studies.clear();
    return await Promise.all(entries.map(([uid, s]) => this.#service.record({
      ...this.#base,
      ...outcome,
      studies: [{
        studyInstanceUid: uid, patientId: s.patientId, accessionNumber: s.accessionNumber,
        seriesInstanceUids: [...s.series], sopClassUids: [...s.sopClasses], numberOfInstances: s.count,
      }],
    })));
  }
}

/** Validates a search/export filter (times become ISO-8601 UTC, comparable as text). */
export function normalizeFilter(filter: AuditFilter): AuditFilter {
  const out: AuditFilter = {};
  for (const key of ['from', 'to'] as const) {
    const value = filter[key];
    if (value === undefined || value === '') continue;
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) throw new AtriumError('invalid-input', `${key} must be an ISO-8601 date or date-time, got "${value}"`);
    out[key] = date.toISOString();
  }
  if (filter.action !== undefined && !AUDIT_ACTIONS.includes(filter.action)) throw new AtriumError('invalid-input', `action must be one of ${AUDIT_ACTIONS.join(', ')}`);
  if (filter.interface !== undefined && !AUDIT_INTERFACES.includes(filter.interface)) throw new AtriumError('invalid-input', `interface must be one of ${AUDIT_INTERFACES.join(', ')}`);
  if (filter.outcome !== undefined && !AUDIT_OUTCOMES.includes(filter.outcome)) throw new AtriumError('invalid-input', `outcome must be one of ${AUDIT_OUTCOMES.join(', ')}`);
  for (const key of ['user', 'patientId', 'studyInstanceUid', 'action', 'interface', 'outcome'] as const) {
    const value = filter[key];
    if (value !== undefined && value !== '') (out as Record<string, string>)[key] = value;
  }
  return out;
}

function networkEnd(end: AuditNetworkEnd | null | undefined): AuditNetworkEnd | null {
  if (!end) return null;
  const out = dropEmpty({ address: end.address ?? undefined, aeTitle: end.aeTitle?.trim() || undefined, port: end.port ?? undefined });
  return Object.keys(out).length ? out : null;
}

function dropEmpty<T extends object>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    out[k] = v;
  }
  return out as T;
}
