/**
 * The dose tables (migrations 0020, 0021) on SQLite and PostgreSQL through one Kysely handle.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../database/database.ts';
import { AtriumError } from '../../errors.ts';
import type { DoseExtraction } from './dose-extraction.ts';
import {
  ageBandOf, compareWithReferenceLevels, type AgeBand, type ComparedReport, type Quantity, type ReferenceLevel,
} from './reference-levels.ts';

export interface DoseReportRecord {
  id: number;
  sopInstanceUid: string;
  sopClassUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string | null;
  patientId: string | null;
  accessionNumber: string | null;
  template: string | null;
  kind: string;
  modality: string;
  stationName: string | null;
  manufacturer: string | null;
  model: string | null;
  studyDate: string | null;
  studyDescription: string | null;
  procedureCode: string | null;
  patientSex: string | null;
  patientAgeYears: number | null;
  ageBand: AgeBand;
  eventCount: number;
  totals: {
    dlpTotal: number | null; dapTotal: number | null; fluoroDapTotal: number | null; acquisitionDapTotal: number | null; doseRpTotal: number | null;
    fluoroTimeTotal: number | null; acquisitionTimeTotal: number | null; agdTotal: number | null; entranceDoseTotal: number | null;
  };
  /** Every NUM of the accumulated-data containers as the SR gave it. */
  measurements: unknown[];
  extractedAt: string;
  /** The later cumulative report of the study that holds all of this one's irradiation events, if any. */
  supersededBy: number | null;
}

export interface DoseEventRecord {
  id: number;
  reportId: number;
  sequence: number;
  studyInstanceUid: string;
  modality: string;
  stationName: string | null;
  studyDate: string | null;
  ageBand: string;
  irradiationEventUid: string | null;
  eventType: string | null;
  acquisitionProtocol: string | null;
  targetRegion: string | null;
  targetRegionCode: string | null;
  anatomy: string | null;
  laterality: string | null;
  imageView: string | null;
  acquisitionPlane: string | null;
  phantomType: string | null;
  startedAt: string | null;
  ctdivol: number | null; dlp: number | null; scanLength: number | null; kvp: number | null; tubeCurrent: number | null; exposureTime: number | null;
  exposure: number | null; pitch: number | null; dap: number | null; doseRp: number | null; agd: number | null; entranceDose: number | null;
  compressionThickness: number | null; administeredActivity: number | null; radiopharmaceutical: string | null;
  measurements: unknown[];
}

export interface DoseAlertRecord {
  id: number;
  reportId: number;
  eventId: number | null;
  referenceLevelId: number | null;
  studyInstanceUid: string;
  kind: string;
  quantity: string;
  value: number;
  unit: string;
  threshold: number;
  message: string;
  /** withdrawn: by the system, its report superseded or its level changed (`withdrawnReason`). */
  state: 'open' | 'acknowledged' | 'withdrawn';
  withdrawnReason: string | null;
  createdAt: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  modality: string;
  stationName: string | null;
  studyDate: string | null;
}

export interface EventFilter {
  modality?: string;
  station?: string;
  protocol?: string;
  /** YYYY-MM-DD, inclusive. */
  from?: string;
  to?: string;
  ageBand?: string;
  studyInstanceUid?: string;
  /** Also the reports (and their events) a later cumulative report superseded; default false. */
  includeSuperseded?: boolean;
}

export type ReferenceLevelInput = Omit<ReferenceLevel, 'id' | 'updatedAt' | 'updatedBy' | 'example'> & { example?: boolean };

const json = (v: string | null) => (v ? JSON.parse(v) : []);

function reportRecord(r: any): DoseReportRecord {
  return {
    id: r.pk, sopInstanceUid: r.sop_instance_uid, sopClassUid: r.sop_class_uid, studyInstanceUid: r.study_instance_uid, seriesInstanceUid: r.series_instance_uid,
    patientId: r.patient_id, accessionNumber: r.accession_number, template: r.template, kind: r.kind, modality: r.modality, stationName: r.station_name,
    manufacturer: r.manufacturer, model: r.model, studyDate: r.study_date, studyDescription: r.study_description, procedureCode: r.procedure_code,
    patientSex: r.patient_sex, patientAgeYears: r.patient_age_years, ageBand: r.age_band, eventCount: r.event_count,
    totals: {
      dlpTotal: r.dlp_total, dapTotal: r.dap_total, fluoroDapTotal: r.fluoro_dap_total, acquisitionDapTotal: r.acquisition_dap_total, doseRpTotal: r.dose_rp_total,
      fluoroTimeTotal: r.fluoro_time_total, acquisitionTimeTotal: r.acquisition_time_total, agdTotal: r.agd_total, entranceDoseTotal: r.entrance_dose_total,
    },
    measurements: json(r.totals_json), extractedAt: r.extracted_at, supersededBy: r.superseded_by === null || r.superseded_by === undefined ? null : Number(r.superseded_by),
  };
}

function eventRecord(r: any): DoseEventRecord {
  return {
    id: r.pk, reportId: r.report_pk, sequence: r.sequence, studyInstanceUid: r.study_instance_uid, modality: r.modality, stationName: r.station_name,
    studyDate: r.study_date, ageBand: r.age_band, irradiationEventUid: r.irradiation_event_uid, eventType: r.event_type, acquisitionProtocol: r.acquisition_protocol,
    targetRegion: r.target_region, targetRegionCode: r.target_region_code, anatomy: r.anatomy, laterality: r.laterality, imageView: r.image_view,
    acquisitionPlane: r.acquisition_plane, phantomType: r.phantom_type, startedAt: r.started_at, ctdivol: r.ctdivol, dlp: r.dlp, scanLength: r.scan_length,
    kvp: r.kvp, tubeCurrent: r.tube_current, exposureTime: r.exposure_time, exposure: r.exposure, pitch: r.pitch, dap: r.dap, doseRp: r.dose_rp, agd: r.agd,
    entranceDose: r.entrance_dose, compressionThickness: r.compression_thickness, administeredActivity: r.administered_activity,
    radiopharmaceutical: r.radiopharmaceutical, measurements: json(r.measurements_json),
  };
}

function levelRecord(r: any): ReferenceLevel {
  return {
    id: r.pk, modality: r.modality, quantity: r.quantity, protocol: r.protocol, procedureCode: r.procedure_code, bodyRegion: r.body_region, ageBand: r.age_band,
    breastThicknessMinMm: r.breast_thickness_min_mm, breastThicknessMaxMm: r.breast_thickness_max_mm, value: r.value, unit: r.unit, source: r.source,
    example: Number(r.example) === 1, updatedAt: r.updated_at, updatedBy: r.updated_by,
  };
}

function alertRecord(r: any): DoseAlertRecord {
  return {
    id: r.pk, reportId: r.report_pk, eventId: r.event_pk, referenceLevelId: r.reference_level_pk, studyInstanceUid: r.study_instance_uid, kind: r.kind,
    quantity: r.quantity, value: r.value, unit: r.unit, threshold: r.threshold, message: r.message, state: r.state, createdAt: r.created_at,
    acknowledgedAt: r.acknowledged_at, acknowledgedBy: r.acknowledged_by, withdrawnReason: r.withdrawn_reason ?? null, modality: r.modality, stationName: r.station_name, studyDate: r.study_date,
  };
}

type Tx = Kysely<any>;

/**
 * A cumulative report sent again (or a later one that includes the earlier irradiation events) replaces
 * the earlier report of the same study and modality: the one whose Irradiation Event UIDs are all in the
 * other's is superseded (its open alerts withdrawn), so the study's totals count each event once. Reports
 * without event UIDs, or with events of their own on both sides (one report per procedure step), stay side
 * by side and are summed. Returns the report that supersedes the new one, if a stored one holds all its events.
 */
async function supersede(tx: Tx, reportId: number, studyInstanceUid: string, modality: string, eventUids: (string | null)[], now: Date): Promise<number | null> {
  const mine = new Set(eventUids.filter((u): u is string => !!u));
  if (!mine.size) return null;
  const others = await tx.selectFrom('dose_report').select('pk').where('study_instance_uid', '=', studyInstanceUid).where('modality', '=', modality)
    .where('pk', '!=', reportId).where('superseded_by', 'is', null).orderBy('pk').execute();
  for (const other of others) {
    const theirs = new Set((await tx.selectFrom('dose_event').select('irradiation_event_uid').where('report_pk', '=', other.pk).execute())
      .map((e: any) => e.irradiation_event_uid as string | null).filter((u): u is string => !!u));
    if (!theirs.size) continue;
    const theyHoldMine = [...mine].every((u) => theirs.has(u));
    const iHoldTheirs = [...theirs].every((u) => mine.has(u));
    // Equal sets: the later report (the resend) wins.
    if (iHoldTheirs) {
      await tx.updateTable('dose_report').set({ superseded_by: reportId }).where('pk', '=', other.pk).execute();
      await tx.updateTable('dose_alert').set({ state: 'withdrawn', withdrawn_reason: `report superseded by dose report #${reportId}`, acknowledged_at: now.toISOString() })
        .where('report_pk', '=', other.pk).where('state', '=', 'open').execute();
    } else if (theyHoldMine) {
      await tx.updateTable('dose_report').set({ superseded_by: Number(other.pk) }).where('pk', '=', reportId).execute();
      return Number(other.pk);
    }
  }
  return null;
}

/**
 * Compares one report with the reference levels as they are now: raises the alerts it does not have yet
 * (`alert_key` keeps each once) and withdraws its open DRL alerts that no longer hold (the level was raised
 * or removed). The one comparison path of extraction and of the re-check after a level changes.
 */
async function compareAndAlert(tx: Tx, report: Omit<ComparedReport, 'events'> & { id: number; studyInstanceUid: string }, events: ComparedReport['events'],
  options: { drlPercent: number; ctdivolAlertMgy: number; now: Date; reason?: string }): Promise<{ raised: number; withdrawn: number }> {
  const levels = (await tx.selectFrom('dose_reference_level').selectAll().execute()).map(levelRecord);
  const candidates = compareWithReferenceLevels({ ...report, events }, levels, options);
  const keys = new Set<string>();
  let raised = 0;
  for (const c of candidates) {
    const key = `${report.id}:${c.kind}:${c.quantity}:${c.referenceLevelId ?? ''}:${c.eventId ?? ''}`;
    keys.add(key);
    const r = await tx.insertInto('dose_alert').values({
      alert_key: key, report_pk: report.id, event_pk: c.eventId,
      reference_level_pk: c.referenceLevelId, study_instance_uid: report.studyInstanceUid, kind: c.kind, quantity: c.quantity, value: c.value, unit: c.unit,
      threshold: c.threshold, message: c.message, state: 'open', created_at: options.now.toISOString(), acknowledged_at: null, acknowledged_by: null,
    }).onConflict((oc) => oc.column('alert_key').doNothing()).returning('pk').executeTakeFirst();
    if (r) raised++;
  }
  const open = await tx.selectFrom('dose_alert').select(['pk', 'alert_key']).where('report_pk', '=', report.id).where('state', '=', 'open').execute();
  const stale = open.filter((a: any) => !keys.has(a.alert_key)).map((a: any) => a.pk);
  if (stale.length) {
    await tx.updateTable('dose_alert').set({ state: 'withdrawn', withdrawn_reason: options.reason ?? 'no longer over its reference level', acknowledged_at: options.now.toISOString() })
      .where('pk', 'in', stale).execute();
  }
  return { raised, withdrawn: stale.length };
}

export class SqlDoseStore {
  readonly #db: Kysely<any>;

  constructor(database: Database) {
    this.#db = database.kysely<any>() as Kysely<any>;
  }

  async reportBySopInstanceUid(sopInstanceUid: string): Promise<DoseReportRecord | null> {
    const r = await this.#db.selectFrom('dose_report').selectAll().where('sop_instance_uid', '=', sopInstanceUid).executeTakeFirst();
    return r ? reportRecord(r) : null;
  }

  /**
   * Stores a report, its events and the alerts they raise, in one transaction. A report already stored under
   * the SOP Instance UID (a redelivered event, two nodes at once) is left as it is: `created` false.
   */
  async saveReport(x: Extract<DoseExtraction, { dose: true }>, options: { eventId: number | null; drlPercent: number; ctdivolAlertMgy: number; now: Date }): Promise<{ reportId: number; created: boolean; alerts: number }> {
    const h = x.header;
    if (!h.sopInstanceUid || !h.studyInstanceUid || !h.sopClassUid) throw new AtriumError('invalid-input', 'a dose report needs its SOP Instance, SOP Class and Study Instance UIDs');
    return await this.#db.transaction().execute(async (tx) => {
      const ageBand = ageBandOf(h.patientAgeYears);
      const t = x.totals;
      const inserted = await tx.insertInto('dose_report').values({
        sop_instance_uid: h.sopInstanceUid, sop_class_uid: h.sopClassUid, study_instance_uid: h.studyInstanceUid, series_instance_uid: h.seriesInstanceUid,
        patient_id: h.patientId, accession_number: h.accessionNumber, template: x.template, kind: x.kind, modality: x.modality, station_name: h.stationName,
        manufacturer: h.manufacturer, model: h.model, study_date: h.studyDate, study_description: h.studyDescription, procedure_code: h.procedureCode?.code ?? null,
        patient_sex: h.patientSex, patient_age_years: h.patientAgeYears, age_band: ageBand, event_count: t.eventCount, dlp_total: t.dlpTotal, dap_total: t.dapTotal,
        fluoro_dap_total: t.fluoroDapTotal, acquisition_dap_total: t.acquisitionDapTotal, dose_rp_total: t.doseRpTotal, fluoro_time_total: t.fluoroTimeTotal,
        acquisition_time_total: t.acquisitionTimeTotal, agd_total: t.agdTotal, entrance_dose_total: t.entranceDoseTotal, totals_json: JSON.stringify(t.measurements),
        event_id: options.eventId, extracted_at: options.now.toISOString(),
      }).onConflict((oc) => oc.column('sop_instance_uid').doNothing()).returning('pk').executeTakeFirst();
      if (!inserted) {
        const existing = await tx.selectFrom('dose_report').select('pk').where('sop_instance_uid', '=', h.sopInstanceUid).executeTakeFirstOrThrow();
        return { reportId: existing.pk, created: false, alerts: 0 };
      }
      const reportId = Number(inserted.pk);
      const events: ComparedReport['events'] = [];
      for (const e of x.events) {
        const row = await tx.insertInto('dose_event').values({
          report_pk: reportId, sequence: e.sequence, irradiation_event_uid: e.irradiationEventUid, event_type: e.eventType, acquisition_protocol: e.acquisitionProtocol,
          target_region: e.targetRegion?.meaning || null, target_region_code: e.targetRegion?.code ?? null, anatomy: e.anatomy?.meaning || null,
          laterality: e.laterality, image_view: e.imageView, acquisition_plane: e.acquisitionPlane, phantom_type: e.phantomType, started_at: e.startedAt,
          ctdivol: e.ctdivol, dlp: e.dlp, scan_length: e.scanLength, kvp: e.kvp, tube_current: e.tubeCurrent, exposure_time: e.exposureTime, exposure: e.exposure,
          pitch: e.pitch, dap: e.dap, dose_rp: e.doseRp, agd: e.agd, entrance_dose: e.entranceDose, compression_thickness: e.compressionThickness,
          administered_activity: e.administeredActivity, radiopharmaceutical: e.radiopharmaceutical, measurements_json: JSON.stringify(e.measurements),
        }).returning('pk').executeTakeFirstOrThrow();
        events.push({
          id: Number(row.pk), acquisitionProtocol: e.acquisitionProtocol, targetRegion: e.targetRegion?.meaning || null, targetRegionCode: e.targetRegion?.code ?? null,
          compressionThickness: e.compressionThickness, ctdivol: e.ctdivol, agd: e.agd,
        });
      }
      const studyInstanceUid = h.studyInstanceUid!;
      const supersededBy = await supersede(tx, reportId, studyInstanceUid, x.modality, x.events.map((e) => e.irradiationEventUid), options.now);
      // A report whose events a stored cumulative one already holds raises nothing of its own.
      const alerts = supersededBy === null
        ? await compareAndAlert(tx, { id: reportId, studyInstanceUid, modality: x.modality, procedureCode: h.procedureCode?.code ?? null, ageBand,
          totals: { dlpTotal: t.dlpTotal, dapTotal: t.dapTotal, doseRpTotal: t.doseRpTotal, fluoroTimeTotal: t.fluoroTimeTotal } }, events, options)
        : { raised: 0, withdrawn: 0 };
      return { reportId, created: true, alerts: alerts.raised };
    });
  }

  /**
   * The re-check after a reference level changed: every current (not superseded) report of the modality,
   * a page at a time, compared again. Returns the alerts raised (to be notified) and the count withdrawn.
   */
  async recheckModality(modality: string, options: { drlPercent: number; ctdivolAlertMgy: number; now: Date; reason: string }): Promise<{ reports: number; raised: DoseAlertRecord[]; withdrawn: number }> {
    let reports = 0;
    let withdrawn = 0;
    const raisedIds: number[] = [];
    for (let after = 0; ;) {
      const page = await this.#db.selectFrom('dose_report').selectAll().where('modality', '=', modality.toUpperCase()).where('superseded_by', 'is', null)
        .where('pk', '>', after).orderBy('pk').limit(200).execute();
      if (!page.length) break;
      for (const row of page) {
        after = Number(row.pk);
        reports++;
        await this.#db.transaction().execute(async (tx) => {
          const events = (await tx.selectFrom('dose_event').select(['pk', 'acquisition_protocol', 'target_region', 'target_region_code', 'compression_thickness', 'ctdivol', 'agd'])
            .where('report_pk', '=', row.pk).orderBy('pk').execute()).map((e: any) => ({
            id: Number(e.pk), acquisitionProtocol: e.acquisition_protocol, targetRegion: e.target_region, targetRegionCode: e.target_region_code,
            compressionThickness: e.compression_thickness, ctdivol: e.ctdivol, agd: e.agd,
          }));
          const before = new Set((await tx.selectFrom('dose_alert').select('pk').where('report_pk', '=', row.pk).execute()).map((a: any) => Number(a.pk)));
          const r = await compareAndAlert(tx, {
            id: Number(row.pk), studyInstanceUid: row.study_instance_uid, modality: row.modality, procedureCode: row.procedure_code, ageBand: row.age_band,
            totals: { dlpTotal: row.dlp_total, dapTotal: row.dap_total, doseRpTotal: row.dose_rp_total, fluoroTimeTotal: row.fluoro_time_total },
          }, events, options);
          withdrawn += r.withdrawn;
          if (r.raised) {
            for (const a of await tx.selectFrom('dose_alert').select('pk').where('report_pk', '=', row.pk).execute()) if (!before.has(Number(a.pk))) raisedIds.push(Number(a.pk));
          }
        });
      }
    }
    const raised: DoseAlertRecord[] = [];
    for (const id of raisedIds) { const a = await this.alert(id); if (a) raised.push(a); }
    return { reports, raised, withdrawn };
  }

  async reportsOfStudy(studyInstanceUid: string): Promise<DoseReportRecord[]> {
    return (await this.#db.selectFrom('dose_report').selectAll().where('study_instance_uid', '=', studyInstanceUid).orderBy('pk').execute()).map(reportRecord);
  }

  async report(id: number): Promise<DoseReportRecord | null> {
    const r = await this.#db.selectFrom('dose_report').selectAll().where('pk', '=', id).executeTakeFirst();
    return r ? reportRecord(r) : null;
  }

  #reportFilter<Q extends { where: any }>(q: Q, f: EventFilter): Q {
    let out: any = q;
    if (!f.includeSuperseded) out = out.where('r.superseded_by', 'is', null);
    if (f.modality) out = out.where('r.modality', '=', f.modality.toUpperCase());
    if (f.station) out = out.where('r.station_name', '=', f.station);
    if (f.ageBand) out = out.where('r.age_band', '=', f.ageBand);
    if (f.from) out = out.where('r.study_date', '>=', f.from);
    if (f.to) out = out.where('r.study_date', '<=', f.to);
    if (f.studyInstanceUid) out = out.where('r.study_instance_uid', '=', f.studyInstanceUid);
    return out;
  }

  async listEvents(f: EventFilter, page: { limit: number; offset: number }): Promise<{ items: DoseEventRecord[]; total: number }> {
    let base: any = this.#reportFilter(this.#db.selectFrom('dose_event as e').innerJoin('dose_report as r', 'r.pk', 'e.report_pk'), f);
    if (f.protocol) base = base.where('e.acquisition_protocol', '=', f.protocol);
    const total = Number((await base.select((eb: any) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const rows = await base.selectAll('e').select(['r.study_instance_uid', 'r.modality', 'r.station_name', 'r.study_date', 'r.age_band'])
      .orderBy('r.study_date', 'desc').orderBy('e.pk').limit(page.limit).offset(page.offset).execute();
    return { items: rows.map(eventRecord), total };
  }

  async listReports(f: EventFilter, page: { limit: number; offset: number }, order: 'recent' | 'highest' = 'recent'): Promise<{ items: DoseReportRecord[]; total: number }> {
    let base: any = this.#reportFilter(this.#db.selectFrom('dose_report as r'), f);
    if (f.protocol) base = base.where((eb: any) => eb.exists(eb.selectFrom('dose_event as e').select('e.pk').whereRef('e.report_pk', '=', 'r.pk').where('e.acquisition_protocol', '=', f.protocol)));
    const total = Number((await base.select((eb: any) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    let q = base.selectAll('r');
    // "highest": the modality's headline quantity; with no modality given, CT's DLP then projection DAP.
    q = order === 'highest'
      ? q.orderBy((eb: any) => eb.fn.coalesce('r.dlp_total', 'r.dap_total', 'r.agd_total'), 'desc').orderBy('r.pk')
      : q.orderBy('r.study_date', 'desc').orderBy('r.pk', 'desc');
    const rows = await q.limit(page.limit).offset(page.offset).execute();
    return { items: rows.map(reportRecord), total };
  }

  async listAlerts(f: EventFilter & { state?: string; kind?: string }, page: { limit: number; offset: number }): Promise<{ items: DoseAlertRecord[]; total: number }> {
    let base: any = this.#reportFilter(this.#db.selectFrom('dose_alert as a').innerJoin('dose_report as r', 'r.pk', 'a.report_pk'), f);
    if (f.state) base = base.where('a.state', '=', f.state);
    if (f.kind) base = base.where('a.kind', '=', f.kind);
    const total = Number((await base.select((eb: any) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const rows = await base.selectAll('a').select(['r.modality', 'r.station_name', 'r.study_date']).orderBy('a.pk', 'desc').limit(page.limit).offset(page.offset).execute();
    return { items: rows.map(alertRecord), total };
  }

  async alert(id: number): Promise<DoseAlertRecord | null> {
    const r = await this.#db.selectFrom('dose_alert as a').innerJoin('dose_report as r', 'r.pk', 'a.report_pk').selectAll('a')
      .select(['r.modality', 'r.station_name', 'r.study_date']).where('a.pk', '=', id).executeTakeFirst();
    return r ? alertRecord(r) : null;
  }

  async alertsOfReport(reportId: number): Promise<DoseAlertRecord[]> {
    const rows = await this.#db.selectFrom('dose_alert as a').innerJoin('dose_report as r', 'r.pk', 'a.report_pk').selectAll('a')
      .select(['r.modality', 'r.station_name', 'r.study_date']).where('a.report_pk', '=', reportId).orderBy('a.pk').execute();
    return rows.map(alertRecord);
  }

  async acknowledgeAlert(id: number, by: string, now: Date): Promise<DoseAlertRecord> {
    await this.#db.updateTable('dose_alert').set({ state: 'acknowledged', acknowledged_at: now.toISOString(), acknowledged_by: by }).where('pk', '=', id).where('state', '=', 'open').execute();
    const a = await this.alert(id);
    if (!a) throw new AtriumError('not-found', `no dose alert ${id}`);
    return a;
  }

  async openAlertCounts(): Promise<{ kind: string; modality: string; n: number }[]> {
    const rows = await this.#db.selectFrom('dose_alert as a').innerJoin('dose_report as r', 'r.pk', 'a.report_pk').select(['a.kind', 'r.modality'])
      .select((eb: any) => eb.fn.countAll().as('n')).where('a.state', '=', 'open').groupBy(['a.kind', 'r.modality']).execute();
    return rows.map((r: any) => ({ kind: r.kind, modality: r.modality, n: Number(r.n) }));
  }

  // ---- reference levels ----

  async listLevels(): Promise<ReferenceLevel[]> {
    return (await this.#db.selectFrom('dose_reference_level').selectAll().orderBy('modality').orderBy('quantity').orderBy('pk').execute()).map(levelRecord);
  }

  async level(id: number): Promise<ReferenceLevel | null> {
    const r = await this.#db.selectFrom('dose_reference_level').selectAll().where('pk', '=', id).executeTakeFirst();
    return r ? levelRecord(r) : null;
  }

  #levelRow(l: ReferenceLevelInput, by: string, now: Date) {
    return {
      modality: l.modality.toUpperCase(), quantity: l.quantity as Quantity, protocol: l.protocol, procedure_code: l.procedureCode, body_region: l.bodyRegion,
      age_band: l.ageBand, breast_thickness_min_mm: l.breastThicknessMinMm, breast_thickness_max_mm: l.breastThicknessMaxMm, value: l.value, unit: l.unit,
      source: l.source, example: l.example ? 1 : 0, updated_at: now.toISOString(), updated_by: by,
    };
  }

  async createLevel(l: ReferenceLevelInput, by: string, now: Date): Promise<ReferenceLevel> {
    const row = await this.#db.insertInto('dose_reference_level').values(this.#levelRow(l, by, now)).returning('pk').executeTakeFirstOrThrow();
    return (await this.level(Number(row.pk)))!;
  }

  async updateLevel(id: number, l: ReferenceLevelInput, by: string, now: Date): Promise<ReferenceLevel> {
    const r = await this.#db.updateTable('dose_reference_level').set(this.#levelRow(l, by, now)).where('pk', '=', id).executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) throw new AtriumError('not-found', `no dose reference level ${id}`);
    return (await this.level(id))!;
  }

  async deleteLevel(id: number): Promise<ReferenceLevel> {
    const before = await this.level(id);
    if (!before) throw new AtriumError('not-found', `no dose reference level ${id}`);
    await this.#db.deleteFrom('dose_reference_level').where('pk', '=', id).execute();
    return before;
  }
}
