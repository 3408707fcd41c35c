/**
 * The reading tables (migrations 0031-0033) on SQLite and PostgreSQL through one Kysely handle, and the reads
 * of the RIS's orders, timeline and reports and of the index's studies that the worklist and the turnaround
 * times are computed from (read only: the RIS and the archive own those tables).
 */
import type { Kysely } from 'kysely';
import type { Database } from '../database/database.ts';
import type { Priority } from '../ris/model.ts';
import type { ReadingPriority, SlaRule } from './sla.ts';

export interface ReadingItemRow {
  studyInstanceUid: string;
  accessionNumber: string | null;
  patientId: string | null;
  readyAt: string;
  readyReason: 'mpps' | 'order' | 'stable';
  triage: string | null;
  claimedBy: string | null;
  claimedByName: string | null;
  claimedAt: string | null;
  reportedAt: string | null;
}

/** An order with what turnaround times and the worklist read of it. */
export interface OrderFacts {
  pk: number;
  accessionNumber: string;
  studyInstanceUid: string;
  patientId: string;
  patientName: string | null;
  priority: Priority;
  screening: boolean;
  status: string;
  procedure: string | null;
  orderingPhysician: string | null;
  referringPhysician: string | null;
  createdAt: string;
  modality: string | null;
  location: string | null;
  timeline: { status: string; sourceKind: string; at: string }[];
  reports: { status: string; author: string | null; createdAt: string }[];
}

/** What the index says of a study: its modalities, body parts, institution, patient. */
export interface StudyFacts {
  studyInstanceUid: string;
  patientId: string | null;
  patientName: string | null;
  studyDescription: string | null;
  studyDate: string | null;
  modalities: string[];
  bodyParts: string[];
  institutions: string[];
  instances: number;
}

export interface SlaAlertRecord {
  id: number;
  studyInstanceUid: string;
  accessionNumber: string | null;
  kind: 'warning' | 'breach';
  priority: ReadingPriority;
  modality: string | null;
  slaMinutes: number;
  completedAt: string;
  dueAt: string;
  detectedAt: string;
}

export interface CriticalResultRecord {
  id: number;
  reportId: number;
  accessionNumber: string;
  studyInstanceUid: string;
  patientId: string | null;
  reportStatus: string;
  author: string | null;
  clinician: string | null;
  destination: string | null;
  notifiedAt: string;
  acknowledgeBy: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  escalatedAt: string | null;
  escalationDestination: string | null;
  state: 'notified' | 'acknowledged' | 'escalated';
}

const chunks = <T>(list: readonly T[], size = 500): T[][] => Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

function toItem(r: any): ReadingItemRow {
  return {
    studyInstanceUid: r.study_instance_uid, accessionNumber: r.accession_number, patientId: r.patient_id, readyAt: r.ready_at, readyReason: r.ready_reason,
    triage: r.triage, claimedBy: r.claimed_by, claimedByName: r.claimed_by_name, claimedAt: r.claimed_at, reportedAt: r.reported_at,
  };
}

function toAlert(r: any): SlaAlertRecord {
  return {
    id: Number(r.pk), studyInstanceUid: r.study_instance_uid, accessionNumber: r.accession_number, kind: r.kind, priority: r.priority, modality: r.modality,
    slaMinutes: Number(r.sla_minutes), completedAt: r.completed_at, dueAt: r.due_at, detectedAt: r.detected_at,
  };
}

function toCritical(r: any): CriticalResultRecord {
  return {
    id: Number(r.pk), reportId: Number(r.report_id), accessionNumber: r.accession_number, studyInstanceUid: r.study_instance_uid, patientId: r.patient_id,
    reportStatus: r.report_status, author: r.author, clinician: r.clinician, destination: r.destination, notifiedAt: r.notified_at, acknowledgeBy: r.acknowledge_by,
    acknowledgedAt: r.acknowledged_at, acknowledgedBy: r.acknowledged_by, escalatedAt: r.escalated_at, escalationDestination: r.escalation_destination, state: r.state,
  };
}

export class SqlReadingStore {
  readonly #db: Kysely<any>;

  constructor(database: Database) {
    this.#db = database.kysely<any>();
  }

  // ------------------------------------------------------------------------------------------ worklist

  /** Records a study as ready to read; a study already listed keeps its first ready time. True when added. */
  async markReady(item: { studyInstanceUid: string; accessionNumber: string | null; patientId: string | null; readyAt: string; readyReason: ReadingItemRow['readyReason'] }, now: string): Promise<boolean> {
    const r = await this.#db.insertInto('reading_item').values({
      study_instance_uid: item.studyInstanceUid, accession_number: item.accessionNumber, patient_id: item.patientId, ready_at: item.readyAt,
      ready_reason: item.readyReason, created_at: now, updated_at: now,
    }).onConflict((oc) => oc.column('study_instance_uid').doNothing()).executeTakeFirst();
    if (Number(r.numInsertedOrUpdatedRows ?? 0) > 0) return true;
    // An accession learnt later (a stable study the order matched afterwards).
    if (item.accessionNumber) {
      await this.#db.updateTable('reading_item').set({ accession_number: item.accessionNumber, updated_at: now })
        .where('study_instance_uid', '=', item.studyInstanceUid).where('accession_number', 'is', null).execute();
    }
    return false;
  }

  async markReported(studyInstanceUid: string, at: string): Promise<void> {
    await this.#db.updateTable('reading_item').set({ reported_at: at, updated_at: at }).where('study_instance_uid', '=', studyInstanceUid).where('reported_at', 'is', null).execute();
  }

  async setTriage(studyInstanceUid: string, triage: string | null, now: string): Promise<boolean> {
    const r = await this.#db.updateTable('reading_item').set({ triage, updated_at: now }).where('study_instance_uid', '=', studyInstanceUid).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async item(studyInstanceUid: string): Promise<ReadingItemRow | null> {
    const r = await this.#db.selectFrom('reading_item').selectAll().where('study_instance_uid', '=', studyInstanceUid).executeTakeFirst();
    return r ? toItem(r) : null;
  }

  async openItems(limit = 5000): Promise<ReadingItemRow[]> {
    const rows = await this.#db.selectFrom('reading_item').selectAll().where('reported_at', 'is', null).orderBy('ready_at').orderBy('pk').limit(limit).execute();
    return rows.map(toItem);
  }

  /**
   * One conditional UPDATE: taken only when nobody holds it (or the caller already does). On both engines the
   * row's write lock serializes two claims; the second sees claimed_by set and changes nothing.
   */
  async claim(studyInstanceUid: string, user: { id: string; name: string }, now: string): Promise<boolean> {
    const r = await this.#db.updateTable('reading_item').set({ claimed_by: user.id, claimed_by_name: user.name, claimed_at: now, updated_at: now })
      .where('study_instance_uid', '=', studyInstanceUid).where('reported_at', 'is', null)
      .where((eb) => eb.or([eb('claimed_by', 'is', null), eb('claimed_by', '=', user.id)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Gives a claim back: the holder's own (`holder` given), or anyone's (an administrator's release). */
  async unclaim(studyInstanceUid: string, holder: string | null, now: string): Promise<boolean> {
    let q = this.#db.updateTable('reading_item').set({ claimed_by: null, claimed_by_name: null, claimed_at: null, updated_at: now })
      .where('study_instance_uid', '=', studyInstanceUid).where('claimed_by', 'is not', null);
    if (holder !== null) q = q.where('claimed_by', '=', holder);
    return Number((await q.executeTakeFirst()).numUpdatedRows) > 0;
  }

  // ------------------------------------------------------------------------------------------ RIS and index reads

  async ordersByAccession(accessionNumbers: readonly string[]): Promise<Map<string, OrderFacts>> {
    const out = new Map<string, OrderFacts>();
    for (const part of chunks([...new Set(accessionNumbers)])) {
      if (!part.length) continue;
      for (const o of await this.#orderFacts(this.#orderQuery().where('o.accession_number', 'in', part))) out.set(o.accessionNumber, o);
    }
    return out;
  }

  /** Orders placed in [from, to) (ISO times), with their timelines and reports, for turnaround times. */
  async ordersPlaced(from: string, to: string, limit = 20_000): Promise<OrderFacts[]> {
    return await this.#orderFacts(this.#orderQuery().where('o.created_at', '>=', from).where('o.created_at', '<', to).orderBy('o.created_at').limit(limit));
  }

  #orderQuery() {
    return this.#db.selectFrom('ris_order as o').innerJoin('ris_patient as p', 'p.pk', 'o.patient_pk')
      .select(['o.pk', 'o.accession_number', 'o.study_instance_uid', 'o.priority', 'o.screening', 'o.status', 'o.requested_procedure_description', 'o.ordering_physician',
        'o.referring_physician', 'o.created_at', 'p.patient_id', 'p.patient_name']);
  }

  async #orderFacts(query: { execute(): Promise<unknown[]> }): Promise<OrderFacts[]> {
    const orders = await query.execute();
    const byPk = new Map<number, OrderFacts>();
    for (const o of orders as any[]) {
      byPk.set(Number(o.pk), {
        pk: Number(o.pk), accessionNumber: o.accession_number, studyInstanceUid: o.study_instance_uid, patientId: o.patient_id, patientName: o.patient_name,
        priority: o.priority, screening: Number(o.screening) === 1, status: o.status, procedure: o.requested_procedure_description, orderingPhysician: o.ordering_physician,
        referringPhysician: o.referring_physician, createdAt: o.created_at, modality: null, location: null, timeline: [], reports: [],
      });
    }
    for (const part of chunks([...byPk.keys()])) {
      if (!part.length) continue;
      for (const s of await this.#db.selectFrom('ris_procedure_step').select(['order_pk', 'modality', 'location']).where('order_pk', 'in', part).orderBy('pk').execute() as any[]) {
        const o = byPk.get(Number(s.order_pk))!;
        o.modality ??= s.modality;
        o.location ??= s.location;
      }
      for (const e of await this.#db.selectFrom('ris_order_event').select(['order_pk', 'status', 'source_kind', 'at']).where('order_pk', 'in', part).where('flag', 'is', null).orderBy('pk').execute() as any[]) {
        byPk.get(Number(e.order_pk))!.timeline.push({ status: e.status, sourceKind: e.source_kind, at: e.at });
      }
      for (const r of await this.#db.selectFrom('ris_report').select(['order_pk', 'status', 'author', 'created_at']).where('order_pk', 'in', part).orderBy('pk').execute() as any[]) {
        byPk.get(Number(r.order_pk))!.reports.push({ status: r.status, author: r.author, createdAt: r.created_at });
      }
    }
    return [...byPk.values()];
  }

  async studies(studyInstanceUids: readonly string[]): Promise<Map<string, StudyFacts>> {
    const out = new Map<string, StudyFacts>();
    for (const part of chunks([...new Set(studyInstanceUids)])) {
      if (!part.length) continue;
      const rows = await this.#db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk')
        .select(['s.pk', 's.study_instance_uid', 's.study_description', 's.study_date', 's.modalities_in_study', 's.number_of_instances', 'p.patient_id', 'p.patient_name'])
        .where('s.study_instance_uid', 'in', part).execute() as any[];
      const byPk = new Map<number, StudyFacts>();
      for (const r of rows) {
        const facts: StudyFacts = {
          studyInstanceUid: r.study_instance_uid, patientId: r.patient_id, patientName: r.patient_name, studyDescription: r.study_description, studyDate: r.study_date,
          modalities: r.modalities_in_study ? String(r.modalities_in_study).split('\\').filter(Boolean) : [], bodyParts: [], institutions: [], instances: Number(r.number_of_instances),
        };
        byPk.set(Number(r.pk), facts);
        out.set(facts.studyInstanceUid, facts);
      }
      if (!byPk.size) continue;
      for (const s of await this.#db.selectFrom('series').select(['study_pk', 'body_part_examined', 'institution_name']).where('study_pk', 'in', [...byPk.keys()]).execute() as any[]) {
        const f = byPk.get(Number(s.study_pk))!;
        if (s.body_part_examined && !f.bodyParts.includes(s.body_part_examined)) f.bodyParts.push(s.body_part_examined);
        if (s.institution_name && !f.institutions.includes(s.institution_name)) f.institutions.push(s.institution_name);
      }
    }
    return out;
  }

  /** The patient's other studies in the index (the priors a reading opens beside the study), newest first. */
  async priors(patientId: string, except: string, limit = 10): Promise<{ studyInstanceUid: string; studyDate: string | null; studyDescription: string | null; modalities: string[] }[]> {
    const rows = await this.#db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk')
      .select(['s.study_instance_uid', 's.study_date', 's.study_description', 's.modalities_in_study'])
      .where('p.patient_id', '=', patientId).where('s.study_instance_uid', '!=', except)
      .orderBy('s.study_date', 'desc').orderBy('s.pk', 'desc').limit(limit).execute() as any[];
    return rows.map((r) => ({ studyInstanceUid: r.study_instance_uid, studyDate: r.study_date, studyDescription: r.study_description, modalities: r.modalities_in_study ? String(r.modalities_in_study).split('\\').filter(Boolean) : [] }));
  }

  // ------------------------------------------------------------------------------------------ SLA table

  async slaRules(): Promise<(SlaRule & { updatedAt: string; updatedBy: string | null })[]> {
    const rows = await this.#db.selectFrom('reading_sla').selectAll().orderBy('priority').orderBy('modality').execute() as any[];
    return rows.map((r) => ({ priority: r.priority, modality: r.modality, minutes: Number(r.minutes), warningMinutes: r.warning_minutes === null ? null : Number(r.warning_minutes), updatedAt: r.updated_at, updatedBy: r.updated_by }));
  }

  /** Sets the table to exactly `rules` in one transaction (the REST PUT of the whole table). */
  async replaceSla(rules: readonly SlaRule[], by: string, now: string): Promise<void> {
    await this.#db.transaction().execute(async (tx) => {
      await tx.deleteFrom('reading_sla').execute();
      for (const r of rules) {
        await tx.insertInto('reading_sla').values({ priority: r.priority, modality: r.modality, minutes: r.minutes, warning_minutes: r.warningMinutes, updated_at: now, updated_by: by }).execute();
      }
    });
  }

  // ------------------------------------------------------------------------------------------ SLA alerts

  /** The alert, created unless one with its key exists; `created` says which. */
  async recordAlert(a: Omit<SlaAlertRecord, 'id'>, now: string): Promise<{ alert: SlaAlertRecord; created: boolean }> {
    const key = `${a.studyInstanceUid}:${a.kind}`;
    const r = await this.#db.insertInto('reading_sla_alert').values({
      alert_key: key, study_instance_uid: a.studyInstanceUid, accession_number: a.accessionNumber, kind: a.kind, priority: a.priority, modality: a.modality,
      sla_minutes: a.slaMinutes, completed_at: a.completedAt, due_at: a.dueAt, detected_at: a.detectedAt, created_at: now,
    }).onConflict((oc) => oc.column('alert_key').doNothing()).executeTakeFirst();
    const row = await this.#db.selectFrom('reading_sla_alert').selectAll().where('alert_key', '=', key).executeTakeFirstOrThrow();
    return { alert: toAlert(row), created: Number(r.numInsertedOrUpdatedRows ?? 0) > 0 };
  }

  async alerts(filter: { kind?: string; from?: string; to?: string }, page: { limit: number; offset: number }): Promise<{ items: SlaAlertRecord[]; total: number }> {
    let q = this.#db.selectFrom('reading_sla_alert');
    if (filter.kind) q = q.where('kind', '=', filter.kind);
    if (filter.from) q = q.where('detected_at', '>=', filter.from);
    if (filter.to) q = q.where('detected_at', '<', filter.to);
    const total = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow() as any).n);
    const rows = await q.selectAll().orderBy('detected_at', 'desc').orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute();
    return { items: rows.map(toAlert), total };
  }

  // ------------------------------------------------------------------------------------------ notifications

  /** The notification row of (key, destination), created with its body on first call; its job once queued. */
  async notificationOf(key: string, destination: string, kind: string, body: unknown, now: string): Promise<{ id: number; jobId: number | null }> {
    await this.#db.insertInto('reading_notification').values({ notification_key: key, destination, kind, body: JSON.stringify(body), created_at: now })
      .onConflict((oc) => oc.columns(['notification_key', 'destination']).doNothing()).execute();
    const row = await this.#db.selectFrom('reading_notification').select(['pk', 'job_id']).where('notification_key', '=', key).where('destination', '=', destination).executeTakeFirstOrThrow() as any;
    return { id: Number(row.pk), jobId: row.job_id === null ? null : Number(row.job_id) };
  }

  async setNotificationJob(id: number, jobId: number): Promise<void> {
    await this.#db.updateTable('reading_notification').set({ job_id: jobId }).where('pk', '=', id).execute();
  }

  async notification(id: number): Promise<{ id: number; key: string; destination: string; kind: string; body: unknown } | null> {
    const r = await this.#db.selectFrom('reading_notification').selectAll().where('pk', '=', id).executeTakeFirst() as any;
    return r ? { id: Number(r.pk), key: r.notification_key, destination: r.destination, kind: r.kind, body: JSON.parse(r.body) } : null;
  }

  async notifications(key: string): Promise<{ destination: string; kind: string; body: any; jobId: number | null }[]> {
    const rows = await this.#db.selectFrom('reading_notification').selectAll().where('notification_key', '=', key).orderBy('pk').execute() as any[];
    return rows.map((r) => ({ destination: r.destination, kind: r.kind, body: JSON.parse(r.body), jobId: r.job_id === null ? null : Number(r.job_id) }));
  }

  // ------------------------------------------------------------------------------------------ critical results

  async recordCritical(c: Omit<CriticalResultRecord, 'id' | 'acknowledgedAt' | 'acknowledgedBy' | 'escalatedAt' | 'escalationDestination' | 'state'>, now: string): Promise<{ record: CriticalResultRecord; created: boolean }> {
    const r = await this.#db.insertInto('reading_critical_result').values({
      report_id: c.reportId, accession_number: c.accessionNumber, study_instance_uid: c.studyInstanceUid, patient_id: c.patientId, report_status: c.reportStatus,
      author: c.author, clinician: c.clinician, destination: c.destination, notified_at: c.notifiedAt, acknowledge_by: c.acknowledgeBy, state: 'notified', created_at: now,
    }).onConflict((oc) => oc.column('report_id').doNothing()).executeTakeFirst();
    const row = await this.#db.selectFrom('reading_critical_result').selectAll().where('report_id', '=', c.reportId).executeTakeFirstOrThrow();
    return { record: toCritical(row), created: Number(r.numInsertedOrUpdatedRows ?? 0) > 0 };
  }

  async critical(id: number): Promise<CriticalResultRecord | null> {
    const r = await this.#db.selectFrom('reading_critical_result').selectAll().where('pk', '=', id).executeTakeFirst();
    return r ? toCritical(r) : null;
  }

  async criticals(filter: { state?: string; accessionNumber?: string }, page: { limit: number; offset: number }): Promise<{ items: CriticalResultRecord[]; total: number }> {
    let q = this.#db.selectFrom('reading_critical_result');
    if (filter.state) q = q.where('state', '=', filter.state);
    if (filter.accessionNumber) q = q.where('accession_number', '=', filter.accessionNumber);
    const total = Number((await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow() as any).n);
    const rows = await q.selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute();
    return { items: rows.map(toCritical), total };
  }

  /** Acknowledged once: true for the first acknowledgement (before or after the escalation), false after. */
  async acknowledgeCritical(id: number, by: string, now: string): Promise<boolean> {
    const r = await this.#db.updateTable('reading_critical_result').set({ acknowledged_at: now, acknowledged_by: by, state: 'acknowledged' })
      .where('pk', '=', id).where('acknowledged_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async dueForEscalation(now: string): Promise<CriticalResultRecord[]> {
    const rows = await this.#db.selectFrom('reading_critical_result').selectAll().where('state', '=', 'notified').where('acknowledge_by', '<=', now).orderBy('pk').limit(1000).execute();
    return rows.map(toCritical);
  }

  /** Marks it escalated unless acknowledged (or escalated) meanwhile: true when this call did. */
  async markEscalated(id: number, destination: string | null, now: string): Promise<boolean> {
    const r = await this.#db.updateTable('reading_critical_result').set({ state: 'escalated', escalated_at: now, escalation_destination: destination })
      .where('pk', '=', id).where('state', '=', 'notified').executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
