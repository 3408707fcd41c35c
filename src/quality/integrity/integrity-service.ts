/**
 * The study integrity monitor (docs/integrity.md): runs the configured checks over a scope (the studies and
 * orders an event touched, or everything in a sweep), lands each check's result in the findings store, and
 * hands every newly opened finding to the quality notifier. Idempotent: running twice over the same data
 * changes nothing the second time (no finding twice, nothing notified twice), on any node.
 */
import type { Logger } from 'pino';
import type { Database } from '../../database/database.ts';
import type { IntegrityKind, IntegritySettings } from '../config.ts';
import { CHECKS } from './checks/index.ts';
import type { CheckScope } from './checks/check.ts';
import type { IntegrityFinding, SqlIntegrityStore } from './sql-integrity-store.ts';

export interface IntegrityDeps {
  database: Database;
  store: SqlIntegrityStore;
  settings: () => IntegritySettings;
  log: Logger;
  /** Told of each finding opened (the notifier queues its jobs). */
  onOpened?: (findings: IntegrityFinding[]) => Promise<void>;
  now?: () => Date;
}

export interface CheckSummary {
  kind: IntegrityKind;
  detected: number;
  opened: number;
  resolved: number;
}

/** Checks a study-and-order scope touches (a sweep runs every configured one). */
const STUDY_KINDS: readonly IntegrityKind[] = ['identity-mismatch', 'study-uid-conflict', 'series-uid-conflict', 'duplicate-study', 'orphan-study', 'key-attributes'];

export class IntegrityService {
  readonly #deps: IntegrityDeps;

  constructor(deps: IntegrityDeps) {
    this.#deps = deps;
  }

  /**
   * Runs `kinds` (those configured among them) over `scope`. A scoped run also covers the orders of the
   * scope's studies (by accession or the order's Study Instance UID) and the studies of its orders, so an
   * order and its images are always looked at together.
   */
  async check(scope: CheckScope, by: string, options: { kinds?: readonly IntegrityKind[]; resolution?: { text: string; correctionId: number | null } } = {}): Promise<CheckSummary[]> {
    const settings = this.#deps.settings();
    const kinds = (options.kinds ?? Object.keys(CHECKS) as IntegrityKind[]).filter((k) => settings.checks.includes(k));
    const now = this.#deps.now?.() ?? new Date();
    const db = this.#deps.database.kysely<any>();
    const wide = scope.all ? scope : await this.#widen(scope);
    const summaries: CheckSummary[] = [];
    for (const kind of kinds) {
      const { findings, considered } = await CHECKS[kind].detect({ db, engine: this.#deps.database.engine, settings, now }, wide);
      const result = await this.#deps.store.reconcile(kind, considered, findings, by, now, options.resolution);
      if (result.opened.length) {
        for (const f of result.opened) this.#deps.log.warn({ findingId: f.id, kind: f.kind, severity: f.severity, studyInstanceUid: f.studyInstanceUid, accessionNumber: f.accessionNumber }, `integrity finding ${f.id}: ${f.summary}`);
        await this.#deps.onOpened?.(result.opened);
      }
      summaries.push({ kind, detected: findings.length, opened: result.opened.length, resolved: result.resolved });
    }
    return summaries;
  }

  /** The checks to run for the studies only (no order in the scope): the study-level ones. */
  static readonly STUDY_KINDS = STUDY_KINDS;

  async #widen(scope: { studies: readonly string[]; accessions: readonly string[] }): Promise<CheckScope> {
    const db = this.#deps.database.kysely<any>();
    const studies = new Set(scope.studies);
    const accessions = new Set(scope.accessions);
    if (studies.size) {
      for (const r of await db.selectFrom('study').select('accession_number').where('study_instance_uid', 'in', [...studies]).where('accession_number', 'is not', null).execute()) accessions.add(r.accession_number);
      for (const r of await db.selectFrom('ris_order').select('accession_number').where('study_instance_uid', 'in', [...studies]).execute()) accessions.add(r.accession_number);
    }
    if (accessions.size) {
      for (const r of await db.selectFrom('study').select('study_instance_uid').where('accession_number', 'in', [...accessions]).execute()) studies.add(r.study_instance_uid);
      for (const r of await db.selectFrom('ris_order').select('study_instance_uid').where('accession_number', 'in', [...accessions]).execute()) studies.add(r.study_instance_uid);
    }
    return { studies: [...studies], accessions: [...accessions] };
  }

  /** Study Instance UIDs of the index patients with these Patient IDs (a merge's both sides). */
  async studiesOfPatients(patientIds: readonly string[]): Promise<string[]> {
    if (patientIds.length === 0) return [];
    const db = this.#deps.database.kysely<any>();
    const rows = await db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk').select('s.study_instance_uid').where('p.patient_id', 'in', [...patientIds]).execute();
    return rows.map((r: any) => r.study_instance_uid);
  }
}
