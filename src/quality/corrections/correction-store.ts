/**
 * The SQL of identity corrections (tables identity_correction, migration 0026, and served_correction, 0025),
 * over one transaction: the index rows a correction changes, snapshots of them for the undo, the served
 * attributes, the record. SQLite and PostgreSQL through Kysely.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import { searchableName } from '../../adapters/index/matching.ts';
import type { ServedAttribute } from '../../ports/served-corrections.ts';

type Db = Kysely<any>;

/** The patient columns a correction touches (and the tag each is served as). */
export const PATIENT_ATTRIBUTES = {
  PatientName: { tag: '00100010', vr: 'PN', column: 'patient_name' },
  PatientID: { tag: '00100020', vr: 'LO', column: 'patient_id' },
  IssuerOfPatientID: { tag: '00100021', vr: 'LO', column: 'issuer_of_patient_id' },
  PatientBirthDate: { tag: '00100030', vr: 'DA', column: 'patient_birth_date' },
  PatientSex: { tag: '00100040', vr: 'CS', column: 'patient_sex' },
} as const;
export type PatientAttribute = keyof typeof PATIENT_ATTRIBUTES;

/** The study columns a correction touches. */
export const STUDY_ATTRIBUTES = {
  StudyDate: { tag: '00080020', vr: 'DA', column: 'study_date' },
  StudyTime: { tag: '00080030', vr: 'TM', column: 'study_time' },
  AccessionNumber: { tag: '00080050', vr: 'SH', column: 'accession_number' },
  ReferringPhysicianName: { tag: '00080090', vr: 'PN', column: 'referring_physician_name' },
  StudyDescription: { tag: '00081030', vr: 'LO', column: 'study_description' },
  StudyInstanceUID: { tag: '0020000D', vr: 'UI', column: 'study_instance_uid' },
  StudyID: { tag: '00200010', vr: 'SH', column: 'study_id' },
} as const;
export type StudyAttribute = keyof typeof STUDY_ATTRIBUTES;

export interface PatientRow {
  pk: number;
  patient_id: string;
  issuer_of_patient_id: string;
  patient_name: string | null;
  patient_birth_date: string | null;
  patient_sex: string | null;
}

export interface StudyRow {
  pk: number;
  patient_pk: number;
  study_instance_uid: string;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  referring_physician_name: string | null;
  study_description: string | null;
  study_id: string | null;
}

export interface ServedRow {
  study_instance_uid: string;
  series_instance_uid: string;
  attributes: string;
  correction_pk: number;
  corrected_at: string;
}

/** What a correction changed, as it was (or as it left it): restored as a whole by the undo. */
export interface Snapshot {
  patients: PatientRow[];
  studies: StudyRow[];
  series: { series_instance_uid: string; study_pk: number }[];
  /** Served rows by [study, series] key; null when there was none. */
  served: { study: string; series: string; row: ServedRow | null }[];
  /** Index patient rows the correction created (removed again by the undo when left without a study). */
  createdPatients?: number[];
  /** RIS: orders' patients, RIS patients' status, the RIS patient change of a merge. */
  orders?: { pk: number; patient_pk: number }[];
  risPatients?: { pk: number; status: string; merged_into_pk: number | null }[];
  risChange?: number;
  /** RIS: a study linked to an order by hand (link-order). */
  linkedOrder?: { orderPk: number; studyInstanceUid: string; unmatched: Record<string, unknown> | null };
}

export interface CorrectionRecord {
  id: number;
  kind: string;
  reason: string;
  actor: string;
  actorName: string;
  request: unknown;
  before: Snapshot;
  after: Snapshot;
  studyInstanceUids: string[];
  patientIds: string[];
  createdAt: string;
  undoneAt: string | null;
  undoneBy: string | null;
  undoReason: string | null;
}

const PATIENT_COLUMNS = ['pk', 'patient_id', 'issuer_of_patient_id', 'patient_name', 'patient_birth_date', 'patient_sex'] as const;
const STUDY_COLUMNS = ['pk', 'patient_pk', 'study_instance_uid', 'study_date', 'study_time', 'accession_number', 'referring_physician_name', 'study_description', 'study_id'] as const;

export class CorrectionStore {
  readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  async transaction<T>(fn: (store: CorrectionStore, tx: Transaction<any>) => Promise<T>): Promise<T> {
    return await this.db.transaction().execute((tx) => fn(new CorrectionStore(tx), tx));
  }

  // ----------------------------------------------------------------------------------------- the index

  async patient(patientId: string, issuer: string): Promise<PatientRow | null> {
    const row = await this.db.selectFrom('patient').select(PATIENT_COLUMNS).where('patient_id', '=', patientId).where('issuer_of_patient_id', '=', issuer).executeTakeFirst();
    return row ? toPatient(row) : null;
  }

  async patientByPk(pk: number): Promise<PatientRow | null> {
    const row = await this.db.selectFrom('patient').select(PATIENT_COLUMNS).where('pk', '=', pk).executeTakeFirst();
    return row ? toPatient(row) : null;
  }

  async insertPatient(p: Omit<PatientRow, 'pk'>, now: string): Promise<number> {
    const row = await this.db.insertInto('patient').values({ ...p, patient_name_search: searchableName(p.patient_name), created_at: now }).returning('pk').executeTakeFirstOrThrow();
    return Number(row.pk);
  }

  async study(uid: string): Promise<StudyRow | null> {
    const row = await this.db.selectFrom('study').select(STUDY_COLUMNS).where('study_instance_uid', '=', uid).executeTakeFirst();
    return row ? toStudy(row) : null;
  }

  async studyByPk(pk: number): Promise<StudyRow | null> {
    const row = await this.db.selectFrom('study').select(STUDY_COLUMNS).where('pk', '=', pk).executeTakeFirst();
    return row ? toStudy(row) : null;
  }

  async studiesOfPatient(patientPk: number): Promise<StudyRow[]> {
    return (await this.db.selectFrom('study').select(STUDY_COLUMNS).where('patient_pk', '=', patientPk).orderBy('pk').execute()).map(toStudy);
  }

  async series(uid: string): Promise<{ series_instance_uid: string; study_pk: number } | null> {
    const row = await this.db.selectFrom('series').select(['series_instance_uid', 'study_pk']).where('series_instance_uid', '=', uid).executeTakeFirst();
    return row ? { series_instance_uid: String(row.series_instance_uid), study_pk: Number(row.study_pk) } : null;
  }

  async seriesOfStudy(studyPk: number): Promise<string[]> {
    return (await this.db.selectFrom('series').select('series_instance_uid').where('study_pk', '=', studyPk).execute()).map((r) => String(r.series_instance_uid));
  }

  async writePatient(row: PatientRow): Promise<void> {
    const { pk, ...values } = row;
    await this.db.updateTable('patient').set({ ...values, patient_name_search: searchableName(values.patient_name) }).where('pk', '=', pk).execute();
  }

  async writeStudy(row: StudyRow, now: string): Promise<void> {
    const { pk, ...values } = row;
    await this.db.updateTable('study').set({ ...values, updated_at: now }).where('pk', '=', pk).execute();
  }

  async writeSeries(row: { series_instance_uid: string; study_pk: number }, now: string): Promise<void> {
    await this.db.updateTable('series').set({ study_pk: row.study_pk, updated_at: now }).where('series_instance_uid', '=', row.series_instance_uid).execute();
  }

  /** The derived counts of a study, recomputed from its rows (a series moved in or out). */
  async recount(studyPk: number, now: string): Promise<void> {
    const series = await this.db.selectFrom('series').select(['modality', 'number_of_instances', 'size_bytes']).where('study_pk', '=', studyPk).execute();
    const classes = await this.db.selectFrom('instance').innerJoin('series', 'series.pk', 'instance.series_pk').select('instance.sop_class_uid').distinct()
      .where('series.study_pk', '=', studyPk).execute();
    await this.db.updateTable('study').set({
      number_of_series: series.length,
      number_of_instances: series.reduce((n, s) => n + Number(s.number_of_instances), 0),
      size_bytes: series.reduce((n, s) => n + Number(s.size_bytes), 0),
      modalities_in_study: [...new Set(series.map((s) => s.modality).filter(Boolean))].sort().join('\\'),
      sop_classes_in_study: classes.map((c) => String(c.sop_class_uid)).sort().join('\\'),
      updated_at: now,
    }).where('pk', '=', studyPk).execute();
  }

  /** Removes an index patient row left without a study (a patient-level C-FIND would list an empty identity). */
  async removeIfEmpty(patientPk: number): Promise<boolean> {
    const result = await this.db.deleteFrom('patient').where('pk', '=', patientPk)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('study').select('study.pk').whereRef('study.patient_pk', '=', 'patient.pk')))).executeTakeFirst();
    return Number(result.numDeletedRows ?? 0) === 1;
  }

  // ------------------------------------------------------------------------------------- served values

  async served(study: string, series = ''): Promise<ServedRow | null> {
    const row = await this.db.selectFrom('served_correction').select(['study_instance_uid', 'series_instance_uid', 'attributes', 'correction_pk', 'corrected_at'])
      .where('study_instance_uid', '=', study).where('series_instance_uid', '=', series).executeTakeFirst();
    return row ? { ...row, correction_pk: Number(row.correction_pk) } as ServedRow : null;
  }

  async writeServed(study: string, series: string, row: ServedRow | null): Promise<void> {
    await this.db.deleteFrom('served_correction').where('study_instance_uid', '=', study).where('series_instance_uid', '=', series).execute();
    if (row) await this.db.insertInto('served_correction').values({ ...row, study_instance_uid: study, series_instance_uid: series }).execute();
  }

  /** The served row of a study or series with `attributes` set over what it served already. */
  async serve(study: string, series: string, attributes: ServedAttribute[], correctionId: number, now: string): Promise<void> {
    const current = await this.served(study, series);
    const byTag = new Map<string, ServedAttribute>((current ? JSON.parse(current.attributes) as ServedAttribute[] : []).map((a) => [a.tag, a]));
    for (const a of attributes) byTag.set(a.tag, a);
    const merged = [...byTag.values()].sort((a, b) => a.tag.localeCompare(b.tag));
    await this.writeServed(study, series, { study_instance_uid: study, series_instance_uid: series, attributes: JSON.stringify(merged), correction_pk: correctionId, corrected_at: now });
  }

  // ------------------------------------------------------------------------------------------ the RIS

  async ordersOf(risPatientPk: number, accessions: string[]): Promise<{ pk: number; patient_pk: number; accession_number: string }[]> {
    if (accessions.length === 0) return [];
    return (await this.db.selectFrom('ris_order').select(['pk', 'patient_pk', 'accession_number']).where('patient_pk', '=', risPatientPk).where('accession_number', 'in', accessions).execute())
      .map((r) => ({ pk: Number(r.pk), patient_pk: Number(r.patient_pk), accession_number: String(r.accession_number) }));
  }

  async risPatient(patientId: string, issuer: string): Promise<{ pk: number; status: string; merged_into_pk: number | null; patient_name: string | null; patient_birth_date: string | null; patient_sex: string | null } | null> {
    const row = await this.db.selectFrom('ris_patient').select(['pk', 'status', 'merged_into_pk', 'patient_name', 'patient_birth_date', 'patient_sex'])
      .where('patient_id', '=', patientId).where('issuer_of_patient_id', '=', issuer).executeTakeFirst();
    return row ? { ...row, pk: Number(row.pk), merged_into_pk: row.merged_into_pk === null ? null : Number(row.merged_into_pk) } as never : null;
  }

  async writeOrderPatient(orderPk: number, patientPk: number, now: string): Promise<void> {
    await this.db.updateTable('ris_order').set({ patient_pk: patientPk, updated_at: now }).where('pk', '=', orderPk).execute();
  }

  async writeRisPatientStatus(pk: number, status: string, mergedIntoPk: number | null, now: string): Promise<void> {
    await this.db.updateTable('ris_patient').set({ status, merged_into_pk: mergedIntoPk, updated_at: now }).where('pk', '=', pk).execute();
  }

  async unmatchedRow(uid: string): Promise<Record<string, unknown> | null> {
    const row = await this.db.selectFrom('ris_unmatched_study').selectAll().where('study_instance_uid', '=', uid).executeTakeFirst();
    return row ? { ...row } : null;
  }

  async unlinkStudy(orderPk: number, uid: string, unmatched: Record<string, unknown> | null): Promise<void> {
    await this.db.deleteFrom('ris_order_study').where('order_pk', '=', orderPk).where('study_instance_uid', '=', uid).execute();
    if (unmatched && !(await this.unmatchedRow(uid))) await this.db.insertInto('ris_unmatched_study').values(unmatched).execute();
  }

  // ---------------------------------------------------------------------------------------- the record

  async insert(r: { kind: string; reason: string; actor: string; actorName: string; request: unknown; before: Snapshot; createdAt: string }): Promise<number> {
    const row = await this.db.insertInto('identity_correction').values({
      kind: r.kind, reason: r.reason, actor: r.actor, actor_name: r.actorName, request: JSON.stringify(r.request), before: JSON.stringify(r.before),
      after: '{}', study_instance_uids: '[]', patient_ids: '[]', created_at: r.createdAt,
    }).returning('pk').executeTakeFirstOrThrow();
    return Number(row.pk);
  }

  async complete(id: number, before: Snapshot, after: Snapshot, studies: string[], patientIds: string[]): Promise<void> {
    await this.db.updateTable('identity_correction').set({
      before: JSON.stringify(before), after: JSON.stringify(after), study_instance_uids: JSON.stringify(studies), patient_ids: JSON.stringify(patientIds),
    }).where('pk', '=', id).execute();
  }

  async markUndone(id: number, by: string, reason: string, now: string): Promise<void> {
    await this.db.updateTable('identity_correction').set({ undone_at: now, undone_by: by, undo_reason: reason }).where('pk', '=', id).execute();
  }

  async get(id: number): Promise<CorrectionRecord | null> {
    const row = await this.db.selectFrom('identity_correction').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  /** Corrections after `id`, not undone, touching one of these studies or patients. */
  async laterOverlapping(id: number, studies: string[], patientIds: string[]): Promise<CorrectionRecord | null> {
    const rows = await this.db.selectFrom('identity_correction').selectAll().where('pk', '>', id).where('undone_at', 'is', null).orderBy('pk').execute();
    return rows.map(toRecord).find((r) => r.studyInstanceUids.some((s) => studies.includes(s)) || r.patientIds.some((p) => patientIds.includes(p))) ?? null;
  }

  async list(filter: { study?: string; patientId?: string; kind?: string }, page: { limit: number; offset: number }): Promise<{ items: CorrectionRecord[]; total: number }> {
    let q = this.db.selectFrom('identity_correction');
    if (filter.kind) q = q.where('kind', '=', filter.kind);
    if (filter.study) q = q.where('study_instance_uids', 'like', `%${JSON.stringify(filter.study).slice(1, -1)}%`);
    if (filter.patientId) q = q.where('patient_ids', 'like', `%${JSON.stringify(filter.patientId).slice(1, -1)}%`);
    const [rows, total] = await Promise.all([
      q.selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      q.select(sql<number>`count(*)`.as('n')).executeTakeFirst(),
    ]);
    return { items: rows.map(toRecord), total: Number(total?.n ?? 0) };
  }
}

function toPatient(r: any): PatientRow {
  return { pk: Number(r.pk), patient_id: r.patient_id, issuer_of_patient_id: r.issuer_of_patient_id, patient_name: r.patient_name, patient_birth_date: r.patient_birth_date, patient_sex: r.patient_sex };
}

function toStudy(r: any): StudyRow {
  return {
    pk: Number(r.pk), patient_pk: Number(r.patient_pk), study_instance_uid: r.study_instance_uid, study_date: r.study_date, study_time: r.study_time,
    accession_number: r.accession_number, referring_physician_name: r.referring_physician_name, study_description: r.study_description, study_id: r.study_id,
  };
}

function toRecord(r: any): CorrectionRecord {
  return {
    id: Number(r.pk), kind: r.kind, reason: r.reason, actor: r.actor, actorName: r.actor_name, request: JSON.parse(r.request), before: JSON.parse(r.before),
    after: JSON.parse(r.after), studyInstanceUids: JSON.parse(r.study_instance_uids), patientIds: JSON.parse(r.patient_ids), createdAt: r.created_at,
    undoneAt: r.undone_at ?? null, undoneBy: r.undone_by ?? null, undoReason: r.undo_reason ?? null,
  };
}
