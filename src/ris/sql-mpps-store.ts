import type { Kysely } from 'kysely';
import type { Database } from '../database/database.ts';
import type { DicomJsonDataSet } from '../dicom/dicom-json.ts';
import type { Page, Paged } from '../ports/index-store.ts';

export type MppsStatus = 'IN PROGRESS' | 'COMPLETED' | 'DISCONTINUED';
export const MPPS_STATUSES: readonly MppsStatus[] = ['IN PROGRESS', 'COMPLETED', 'DISCONTINUED'];

/** One scheduled step an MPPS named (an item of its Scheduled Step Attributes Sequence) and the order it matched. */
export interface MppsScheduledStep {
  accessionNumber: string | null;
  studyInstanceUid: string | null;
  requestedProcedureId: string | null;
  stepId: string | null;
  /** The accession number of the order it was matched to; null: none (unscheduled, or the order had ended). */
  order: string | null;
  note: string | null;
}

export interface MppsRecord {
  sopInstanceUid: string;
  status: MppsStatus;
  ppsId: string | null;
  stationAeTitle: string | null;
  callingAeTitle: string | null;
  modality: string | null;
  patientId: string | null;
  patientName: string | null;
  accessionNumber: string | null;
  studyInstanceUid: string | null;
  startDate: string | null;
  startTime: string | null;
  endDate: string | null;
  endTime: string | null;
  scheduledSteps: MppsScheduledStep[];
  /** False: no order matched (an unscheduled procedure): kept and listed. */
  matched: boolean;
  discontinuationReason: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface MppsFilter {
  status?: MppsStatus;
  accessionNumber?: string;
  studyInstanceUid?: string;
  matched?: boolean;
}

export type NewMpps = Omit<MppsRecord, 'createdAt' | 'updatedAt'> & { dataset: DicomJsonDataSet };

/** The ris_mpps table (migration 0012) on SQLite and PostgreSQL. */
export class SqlMppsStore {
  readonly #db: Kysely<any>;

  constructor(database: Database) {
    this.#db = database.kysely<any>();
  }

  /** Inserts a new instance; throws a unique violation (isUniqueViolation) when the SOP Instance UID exists. */
  async insert(m: NewMpps, now: string): Promise<void> {
    await this.#db.insertInto('ris_mpps').values({ ...columns(m), sop_instance_uid: m.sopInstanceUid, created_at: now, updated_at: now }).execute();
  }

  /** Writes an N-SET's result, only while the instance is still IN PROGRESS; false when it was not (a final state is final). */
  async update(m: NewMpps, now: string): Promise<boolean> {
    const r = await this.#db.updateTable('ris_mpps').set({ ...columns(m), updated_at: now })
      .where('sop_instance_uid', '=', m.sopInstanceUid).where('status', '=', 'IN PROGRESS').executeTakeFirst();
    return Number(r.numUpdatedRows ?? 0) === 1;
  }

  async get(sopInstanceUid: string): Promise<(MppsRecord & { dataset: DicomJsonDataSet }) | null> {
    const row = await this.#db.selectFrom('ris_mpps').selectAll().where('sop_instance_uid', '=', sopInstanceUid).executeTakeFirst();
    return row ? { ...toRecord(row), dataset: JSON.parse(row.dataset) as DicomJsonDataSet } : null;
  }

  async list(filter: MppsFilter, page: Page): Promise<Paged<MppsRecord>> {
    let q = this.#db.selectFrom('ris_mpps');
    if (filter.status) q = q.where('status', '=', filter.status);
    if (filter.accessionNumber) q = q.where('accession_number', '=', filter.accessionNumber);
    if (filter.studyInstanceUid) q = q.where('study_instance_uid', '=', filter.studyInstanceUid);
    if (filter.matched !== undefined) q = q.where('matched', '=', filter.matched ? 1 : 0);
    const [rows, total] = await Promise.all([
      q.selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirst(),
    ]);
    return { items: rows.map(toRecord), total: Number(total?.n ?? 0), ...page };
  }
}

function columns(m: NewMpps) {
  return {
    status: m.status, pps_id: m.ppsId, station_ae_title: m.stationAeTitle, calling_ae_title: m.callingAeTitle, modality: m.modality,
    patient_id: m.patientId, patient_name: m.patientName, accession_number: m.accessionNumber, study_instance_uid: m.studyInstanceUid,
    start_date: m.startDate, start_time: m.startTime, end_date: m.endDate, end_time: m.endTime, scheduled_steps: JSON.stringify(m.scheduledSteps),
    matched: m.matched ? 1 : 0, discontinuation_reason: m.discontinuationReason, dataset: JSON.stringify(m.dataset),
  };
}

function toRecord(r: any): MppsRecord {
  return {
    sopInstanceUid: r.sop_instance_uid, status: r.status, ppsId: r.pps_id, stationAeTitle: r.station_ae_title, callingAeTitle: r.calling_ae_title,
    modality: r.modality, patientId: r.patient_id, patientName: r.patient_name, accessionNumber: r.accession_number, studyInstanceUid: r.study_instance_uid,
    startDate: r.start_date, startTime: r.start_time, endDate: r.end_date, endTime: r.end_time, scheduledSteps: JSON.parse(r.scheduled_steps),
    matched: Number(r.matched) === 1, discontinuationReason: r.discontinuation_reason, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}
