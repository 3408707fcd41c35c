/**
 * The integrity findings (migration 0022) and runs (0023) on SQLite and PostgreSQL through one Kysely handle.
 * `reconcile` is how every check's result lands: a finding detected again updates the active one (the unique
 * `active_key` makes a second impossible, whichever node and whatever event found it), an active finding of a
 * check that considered its subject and no longer detects it is resolved ("no longer detected", or "by
 * correction #N" when a correction's re-check resolved it).
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../database/database.ts';
import { AtriumError } from '../../errors.ts';
import type { IntegrityKind } from '../config.ts';

export type Severity = 'critical' | 'major' | 'minor';
export const SEVERITIES: readonly Severity[] = ['critical', 'major', 'minor'];
export const SEVERITY_RANK: Readonly<Record<Severity, number>> = { critical: 3, major: 2, minor: 1 };

export type FindingState = 'open' | 'acknowledged' | 'resolved' | 'false-positive';
export const FINDING_STATES: readonly FindingState[] = ['open', 'acknowledged', 'resolved', 'false-positive'];
/** States that hold the (kind, subject) key: re-detection updates these, never adds another. */
const ACTIVE: readonly FindingState[] = ['open', 'acknowledged', 'false-positive'];

/** One fact of the evidence: the attribute (DICOM keyword or a name), what was expected (the order, the study) and what was found. */
export interface EvidenceItem {
  attribute: string;
  expected: string | null;
  actual: string | null;
  /** For key attributes: missing | malformed; for conflicts: the other object. */
  problem?: string;
}

/** What a check reports. */
export interface DetectedFinding {
  kind: IntegrityKind;
  subject: string;
  severity: Severity;
  summary: string;
  studyInstanceUid: string | null;
  seriesInstanceUid: string | null;
  sopInstanceUid: string | null;
  accessionNumber: string | null;
  patientId: string | null;
  objects: Record<string, unknown>;
  evidence: EvidenceItem[];
}

export interface IntegrityFinding extends DetectedFinding {
  id: number;
  state: FindingState;
  detectedAt: string;
  lastDetectedAt: string;
  detectedBy: string;
  stateChangedAt: string | null;
  stateChangedBy: string | null;
  resolution: string | null;
  correctionId: number | null;
}

export interface FindingFilter {
  state?: FindingState[];
  kind?: string;
  severity?: string;
  studyInstanceUid?: string;
  accessionNumber?: string;
  patientId?: string;
}

/** What a check looked at: every subject of its kind it would have reported (`all`: a full sweep). */
export type Considered = 'all' | readonly string[];

export interface ReconcileResult {
  opened: IntegrityFinding[];
  redetected: number;
  resolved: number;
}

export interface IntegrityRun {
  id: number;
  kind: 'sweep' | 'sample';
  requestedBy: string;
  jobId: number | null;
  state: 'running' | 'succeeded' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  result: unknown;
  error: string | null;
}

const activeKey = (kind: string, subject: string) => `${kind}|${subject}`;

function findingRecord(r: any): IntegrityFinding {
  return {
    id: Number(r.pk), kind: r.kind, subject: r.subject, severity: r.severity, state: r.state, summary: r.summary,
    studyInstanceUid: r.study_instance_uid, seriesInstanceUid: r.series_instance_uid, sopInstanceUid: r.sop_instance_uid,
    accessionNumber: r.accession_number, patientId: r.patient_id, objects: JSON.parse(r.objects), evidence: JSON.parse(r.evidence),
    detectedAt: r.detected_at, lastDetectedAt: r.last_detected_at, detectedBy: r.detected_by, stateChangedAt: r.state_changed_at,
    stateChangedBy: r.state_changed_by, resolution: r.resolution, correctionId: r.correction_id === null ? null : Number(r.correction_id),
  };
}

function runRecord(r: any): IntegrityRun {
  return {
    id: Number(r.pk), kind: r.kind, requestedBy: r.requested_by, jobId: r.job_id === null ? null : Number(r.job_id), state: r.state,
    startedAt: r.started_at, finishedAt: r.finished_at, result: r.result ? JSON.parse(r.result) : null, error: r.error,
  };
}

export class SqlIntegrityStore {
  readonly #db: Kysely<any>;

  constructor(database: Database) {
    this.#db = database.kysely<any>();
  }

  /**
   * Lands one check's result. `considered` bounds what may be resolved: only active findings of `kind` whose
   * subject the check looked at (all of them after a full sweep) and did not report again.
   */
  async reconcile(kind: IntegrityKind, considered: Considered, detected: readonly DetectedFinding[], by: string, now: Date,
    resolution: { text: string; correctionId: number | null } = { text: 'no longer detected', correctionId: null }): Promise<ReconcileResult> {
    const at = now.toISOString();
    const result: ReconcileResult = { opened: [], redetected: 0, resolved: 0 };
    const seen = new Set<string>();
    for (const f of detected) {
      if (f.kind !== kind || seen.has(f.subject)) continue;
      seen.add(f.subject);
      const values = {
        severity: f.severity, summary: f.summary, study_instance_uid: f.studyInstanceUid, series_instance_uid: f.seriesInstanceUid,
        sop_instance_uid: f.sopInstanceUid, accession_number: f.accessionNumber, patient_id: f.patientId,
        objects: JSON.stringify(f.objects), evidence: JSON.stringify(f.evidence),
      };
      const inserted = await this.#db.insertInto('integrity_finding').values({
        kind, subject: f.subject, active_key: activeKey(kind, f.subject), state: 'open', ...values,
        detected_at: at, last_detected_at: at, detected_by: by, state_changed_at: null, state_changed_by: null, resolution: null, correction_id: null,
      }).onConflict((oc) => oc.column('active_key').doNothing()).returningAll().executeTakeFirst();
      if (inserted) { result.opened.push(findingRecord(inserted)); continue; }
      // Found again: what it looks like now (the evidence may have grown), the state left as a person set it.
      await this.#db.updateTable('integrity_finding').set({ ...values, last_detected_at: at }).where('active_key', '=', activeKey(kind, f.subject)).execute();
      result.redetected++;
    }
    let q = this.#db.selectFrom('integrity_finding').select(['pk', 'subject', 'state']).where('kind', '=', kind).where('state', 'in', ACTIVE as FindingState[]);
    if (considered !== 'all') {
      const subjects = [...new Set(considered)].filter((s) => !seen.has(s));
      if (subjects.length === 0) return result;
      q = q.where('subject', 'in', subjects);
    }
    for (const row of await q.execute()) {
      if (seen.has(row.subject)) continue;
      // A false positive that no longer holds just lets go of its key: if it comes back, it is a new finding.
      const set = row.state === 'false-positive'
        ? { active_key: null }
        : { active_key: null, state: 'resolved', resolution: resolution.text, correction_id: resolution.correctionId, state_changed_at: at, state_changed_by: 'integrity-monitor' };
      const r = await this.#db.updateTable('integrity_finding').set(set).where('pk', '=', row.pk).where('state', '=', row.state).executeTakeFirst();
      if (row.state !== 'false-positive' && Number(r.numUpdatedRows) > 0) result.resolved++;
    }
    return result;
  }

  async finding(id: number): Promise<IntegrityFinding | null> {
    const row = await this.#db.selectFrom('integrity_finding').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? findingRecord(row) : null;
  }

  async list(filter: FindingFilter, page: { limit: number; offset: number }): Promise<{ items: IntegrityFinding[]; total: number }> {
    let q = this.#db.selectFrom('integrity_finding');
    if (filter.state?.length) q = q.where('state', 'in', filter.state);
    if (filter.kind) q = q.where('kind', '=', filter.kind);
    if (filter.severity) q = q.where('severity', '=', filter.severity);
    if (filter.studyInstanceUid) q = q.where('study_instance_uid', '=', filter.studyInstanceUid);
    if (filter.accessionNumber) q = q.where('accession_number', '=', filter.accessionNumber);
    if (filter.patientId) q = q.where('patient_id', '=', filter.patientId);
    const total = Number((await q.select((eb: any) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow() as any).n);
    const rows = await q.selectAll()
      // Worst first, then newest.
      .orderBy((eb: any) => eb.case().when('severity', '=', 'critical').then(0).when('severity', '=', 'major').then(1).else(2).end())
      .orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute();
    return { items: rows.map(findingRecord), total };
  }

  /** Open and acknowledged findings by kind and severity (the page's summary, the metric). */
  async activeCounts(): Promise<{ kind: string; severity: string; state: string; n: number }[]> {
    const rows = await this.#db.selectFrom('integrity_finding').select(['kind', 'severity', 'state']).select((eb: any) => eb.fn.countAll().as('n'))
      .where('state', 'in', ['open', 'acknowledged']).groupBy(['kind', 'severity', 'state']).execute();
    return rows.map((r: any) => ({ kind: r.kind, severity: r.severity, state: r.state, n: Number(r.n) }));
  }

  /**
   * A person's decision: acknowledged (seen, being handled), false-positive (the check is wrong here: kept
   * active so it is not raised again while it holds), resolved (with a note and optionally the correction).
   */
  async setState(id: number, to: 'acknowledged' | 'false-positive' | 'resolved', by: string, now: Date, note: string | null, correctionId: number | null = null): Promise<IntegrityFinding> {
    const finding = await this.finding(id);
    if (!finding) throw new AtriumError('not-found', `no integrity finding ${id}`);
    const allowed: Record<typeof to, FindingState[]> = { acknowledged: ['open'], 'false-positive': ['open', 'acknowledged'], resolved: ['open', 'acknowledged', 'false-positive'] };
    if (!allowed[to].includes(finding.state)) throw new AtriumError('conflict', `integrity finding ${id} is ${finding.state}: it cannot become ${to}`, { key: 'state' });
    const set: Record<string, unknown> = { state: to, state_changed_at: now.toISOString(), state_changed_by: by };
    if (to === 'resolved') Object.assign(set, { active_key: null, resolution: note ?? 'resolved', correction_id: correctionId });
    else if (note !== null) set.resolution = note;
    const r = await this.#db.updateTable('integrity_finding').set(set).where('pk', '=', id).where('state', '=', finding.state).executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) throw new AtriumError('conflict', `integrity finding ${id} changed meanwhile`, { key: 'state' });
    return (await this.finding(id))!;
  }

  // ---- runs ----

  async startRun(kind: IntegrityRun['kind'], requestedBy: string, jobId: number | null, now: Date): Promise<number> {
    const row = await this.#db.insertInto('integrity_run').values({ kind, requested_by: requestedBy, job_id: jobId, state: 'running', started_at: now.toISOString(), finished_at: null, result: null, error: null })
      .returning('pk').executeTakeFirstOrThrow();
    return Number(row.pk);
  }

  async finishRun(id: number, outcome: { result: unknown } | { error: string }, now: Date): Promise<void> {
    await this.#db.updateTable('integrity_run').set('error' in outcome
      ? { state: 'failed', error: outcome.error, finished_at: now.toISOString() }
      : { state: 'succeeded', result: JSON.stringify(outcome.result), finished_at: now.toISOString() }).where('pk', '=', id).execute();
  }

  async run(id: number): Promise<IntegrityRun | null> {
    const row = await this.#db.selectFrom('integrity_run').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? runRecord(row) : null;
  }

  async listRuns(kind: IntegrityRun['kind'], page: { limit: number; offset: number }): Promise<{ items: IntegrityRun[]; total: number }> {
    const base = this.#db.selectFrom('integrity_run').where('kind', '=', kind);
    const total = Number((await base.select((eb: any) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow() as any).n);
    const rows = await base.selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute();
    return { items: rows.map(runRecord), total };
  }
}
