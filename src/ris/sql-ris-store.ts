import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../database/database.ts';
import type { Page, Paged } from '../ports/index-store.ts';
import { likePattern, searchableName } from '../adapters/index/matching.ts';
import { emit } from '../adapters/index/sql-event-outbox.ts';
import { insertAuditRecords } from '../adapters/index/sql-audit-store.ts';
import type { AuditRecord, NewAuditRecord } from '../ports/audit-store.ts';
import { AtriumError } from '../errors.ts';
import type {
  ChangeSource, Code, Hl7MessageFilter, Hl7MessageRecord, IdentityMismatch, LinkedStudy, Order, OrderChange, OrderDetail, OrderFilter, OrderInput, OrderStatus,
  Patient, PatientChange, PatientIdentity, PatientInput, Priority, ProcedureStep, Report, ReportInput, ScheduledStepFilter, ScheduledStepView, StepInput,
  StepStatus, TimelineEntry, TimelineFlag, UnmatchedStudy,
} from './model.ts';
import { OPEN_STEP_STATUSES } from './model.ts';
import type { Hl7MessageOutcome, NewHl7Message, PatientChangeResult, RisStore } from './ris-store.ts';

type Db = Kysely<any>;

/** What a merge or identifier change moved (the `moved` column), enough to put it back. */
interface Moved {
  orders: number[];
  studies: { uid: string; fromPatientPk: number }[];
  /** A47: the RIS patient's identifiers before. */
  renamed?: { fromId: string; fromIssuer: string; toId: string; toIssuer: string };
  /** The survivor's index patient row the change created (it had no images); the undo removes it again when empty. */
  createdPatientPk?: number | null;
  /** The prior's index patient rows the change left without a study, removed (a patient-level C-FIND no longer lists them) and kept here whole for the undo. */
  removedPatients?: Record<string, unknown>[];
}

interface MovedIndex {
  studies: Moved['studies'];
  createdPatientPk: number | null;
  removedPatients: Record<string, unknown>[];
}

/** The columns of a scheduled procedure step as given (order, step ID and status aside). */
function stepValues(step: StepInput, now: string) {
  const start = step.startDate ? `${step.startDate}${(step.startTime ?? '').padEnd(6, '0').slice(0, 6)}` : null;
  return {
    modality: step.modality ?? null, station_ae_title: step.stationAeTitle ?? null, station_name: step.stationName ?? null, location: step.location ?? null,
    start_date: step.startDate ?? null, start_time: step.startTime ?? null, start_at: start, description: step.description ?? null,
    performing_physician: step.performingPhysician ?? null, protocol_codes: JSON.stringify(step.protocolCodes ?? []), updated_at: now,
  };
}

/** RisStore over the one database (SQLite or PostgreSQL through Kysely), tables of migration 0010. */
export class SqlRisStore implements RisStore {
  readonly #db: Db;
  readonly #inTransaction: boolean;

  constructor(database: Database | { db: Db; inTransaction: boolean }) {
    if ('kysely' in database) {
      this.#db = database.kysely<any>();
      this.#inTransaction = false;
    } else {
      this.#db = database.db;
      this.#inTransaction = database.inTransaction;
    }
  }

  async transaction<T>(fn: (tx: RisStore) => Promise<T>): Promise<T> {
    if (this.#inTransaction) return await fn(this);
    return await this.#db.transaction().execute((tx) => fn(new SqlRisStore({ db: tx, inTransaction: true })));
  }

  async savepoint<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.#inTransaction) throw new Error('savepoint runs inside a transaction');
    // One name: savepoints of this store are not nested (one per HL7 message of a group commit), and a
    // fixed text keeps SQLite's statement cache from growing.
    await sql`savepoint ris_change`.execute(this.#db);
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      await sql`rollback to savepoint ris_change`.execute(this.#db);
      await sql`release savepoint ris_change`.execute(this.#db);
      throw error;
    }
    await sql`release savepoint ris_change`.execute(this.#db);
    return result;
  }

  // ------------------------------------------------------------------------------------------ patients

  async findPatient(patientId: string, issuer: string): Promise<Patient | null> {
    const row = await this.#db.selectFrom('ris_patient').selectAll().where('patient_id', '=', patientId).where('issuer_of_patient_id', '=', issuer).executeTakeFirst();
    return row ? await this.#toPatient(row) : null;
  }

  async getPatient(pk: number): Promise<Patient | null> {
    const row = await this.#db.selectFrom('ris_patient').selectAll().where('pk', '=', pk).executeTakeFirst();
    return row ? await this.#toPatient(row) : null;
  }

  async upsertPatient(input: PatientInput, now: string): Promise<{ patient: Patient; created: boolean; changed: string[] }> {
    const existing = await this.findPatient(input.patientId, input.issuerOfPatientId);
    if (!existing) {
      const row = await this.#db.insertInto('ris_patient').values({
        patient_id: input.patientId, issuer_of_patient_id: input.issuerOfPatientId, patient_name: input.patientName ?? null,
        patient_name_search: searchableName(input.patientName ?? null), patient_birth_date: input.patientBirthDate ?? null,
        patient_sex: input.patientSex ?? null, other_identifiers: JSON.stringify(input.otherIdentifiers ?? []), status: 'active',
        created_at: now, updated_at: now,
      }).returningAll().executeTakeFirstOrThrow();
      return { patient: await this.#toPatient(row), created: true, changed: [] };
    }
    const set: Record<string, unknown> = {};
    const changed: string[] = [];
    const compare = (key: keyof PatientInput, column: string, value: unknown, current: unknown) => {
      if (input[key] === undefined) return;
      if (JSON.stringify(value) !== JSON.stringify(current)) { set[column] = value; changed.push(key); }
    };
    compare('patientName', 'patient_name', input.patientName ?? null, existing.patientName);
    compare('patientBirthDate', 'patient_birth_date', input.patientBirthDate ?? null, existing.patientBirthDate);
    compare('patientSex', 'patient_sex', input.patientSex ?? null, existing.patientSex);
    if (input.otherIdentifiers !== undefined && JSON.stringify(input.otherIdentifiers) !== JSON.stringify(existing.otherIdentifiers)) {
      set.other_identifiers = JSON.stringify(input.otherIdentifiers);
      changed.push('otherIdentifiers');
    }
    if (set.patient_name !== undefined) set.patient_name_search = searchableName(set.patient_name as string | null);
    if (changed.length > 0) await this.#db.updateTable('ris_patient').set({ ...set, updated_at: now }).where('pk', '=', existing.pk).execute();
    return { patient: changed.length ? (await this.getPatient(existing.pk))! : existing, created: false, changed };
  }

  async listPatients(filter: { patientId?: string; patientName?: string; status?: 'active' | 'merged' }, page: Page): Promise<Paged<Patient>> {
    let q = this.#db.selectFrom('ris_patient');
    if (filter.patientId) q = q.where(textMatch('patient_id', filter.patientId));
    if (filter.patientName) q = q.where(textMatch('patient_name_search', searchableName(filter.patientName) ?? ''));
    if (filter.status) q = q.where('status', '=', filter.status);
    const [rows, total] = await Promise.all([
      q.selectAll().orderBy('pk').limit(page.limit).offset(page.offset).execute(),
      q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirst(),
    ]);
    return { items: await Promise.all(rows.map((r) => this.#toPatient(r))), total: Number(total?.n ?? 0), ...page };
  }

  async updateIndexPatient(patient: Patient): Promise<number> {
    const result = await this.#db.updateTable('patient').set({
      patient_name: patient.patientName, patient_name_search: searchableName(patient.patientName),
      patient_birth_date: patient.patientBirthDate, patient_sex: patient.patientSex,
    }).where('patient_id', '=', patient.patientId).where('issuer_of_patient_id', 'in', [...new Set([patient.issuerOfPatientId, ''])]).executeTakeFirst();
    return Number(result.numUpdatedRows ?? 0);
  }

  /**
   * Moves the index studies of one patient ID to another's patient row (found or made); the rows of the
   * first left without a study are removed, so that a patient-level C-FIND does not list a merged-away
   * identity. Returns what it did, for the undo.
   */
  async #moveIndexStudies(from: { patientId: string; issuerOfPatientId: string }, to: Patient): Promise<MovedIndex> {
    const none: MovedIndex = { studies: [], createdPatientPk: null, removedPatients: [] };
    const issuers = [...new Set([from.issuerOfPatientId, ''])];
    const sources = await this.#db.selectFrom('patient').select(['pk', 'issuer_of_patient_id']).where('patient_id', '=', from.patientId).where('issuer_of_patient_id', 'in', issuers).execute();
    if (sources.length === 0) return none;
    const targetIssuers = [...new Set([to.issuerOfPatientId, ''])];
    let target = await this.#db.selectFrom('patient').select('pk').where('patient_id', '=', to.patientId).where('issuer_of_patient_id', 'in', targetIssuers)
      .orderBy(sql`issuer_of_patient_id = ''`).executeTakeFirst();
    let createdPatientPk: number | null = null;
    if (!target) {
      // The images' own convention for the issuer (often none) is kept for the survivor's row.
      const issuer = String(sources[0]!.issuer_of_patient_id);
      target = await this.#db.insertInto('patient').values({
        patient_id: to.patientId, issuer_of_patient_id: issuer, patient_name: to.patientName, patient_name_search: searchableName(to.patientName),
        patient_birth_date: to.patientBirthDate, patient_sex: to.patientSex, created_at: new Date().toISOString(),
      }).returning('pk').executeTakeFirstOrThrow();
      createdPatientPk = Number(target.pk);
    }
    const targetPk = Number(target.pk);
    const sourcePks = sources.map((s) => Number(s.pk)).filter((pk) => pk !== targetPk);
    if (sourcePks.length === 0) return { ...none, createdPatientPk };
    const studies = await this.#db.selectFrom('study').select(['study_instance_uid', 'patient_pk']).where('patient_pk', 'in', sourcePks).execute();
    if (studies.length > 0) await this.#db.updateTable('study').set({ patient_pk: targetPk }).where('patient_pk', 'in', sourcePks).execute();
    const removedPatients: Record<string, unknown>[] = [];
    for (const pk of sourcePks) {
      const row = await this.#db.selectFrom('patient').selectAll().where('pk', '=', pk).executeTakeFirst();
      const removed = await this.#db.deleteFrom('patient').where('pk', '=', pk)
        .where((eb) => eb.not(eb.exists(eb.selectFrom('study').select('study.pk').whereRef('study.patient_pk', '=', 'patient.pk')))).executeTakeFirst();
      if (row && Number(removed.numDeletedRows ?? 0) === 1) removedPatients.push({ ...row, pk: Number(row.pk) });
    }
    return { studies: studies.map((s) => ({ uid: String(s.study_instance_uid), fromPatientPk: Number(s.patient_pk) })), createdPatientPk, removedPatients };
  }

  /** The undo of #moveIndexStudies: removed rows come back (or the row of that identity made since), the studies go home, a created row goes when empty. */
  async #restoreIndexStudies(moved: Moved): Promise<void> {
    const pkOf = new Map<number, number>();
    for (const row of moved.removedPatients ?? []) {
      const existing = await this.#db.selectFrom('patient').select('pk').where('patient_id', '=', String(row.patient_id)).where('issuer_of_patient_id', '=', String(row.issuer_of_patient_id)).executeTakeFirst();
      if (existing) pkOf.set(Number(row.pk), Number(existing.pk));
      else await this.#db.insertInto('patient').values(row).execute();
    }
    for (const study of moved.studies) {
      await this.#db.updateTable('study').set({ patient_pk: pkOf.get(study.fromPatientPk) ?? study.fromPatientPk }).where('study_instance_uid', '=', study.uid).execute();
    }
    if (moved.createdPatientPk) {
      await this.#db.deleteFrom('patient').where('pk', '=', moved.createdPatientPk)
        .where((eb) => eb.not(eb.exists(eb.selectFrom('study').select('study.pk').whereRef('study.patient_pk', '=', 'patient.pk')))).execute();
    }
  }

  async mergePatients(survivor: Patient, prior: Patient, source: ChangeSource, now: string): Promise<PatientChangeResult> {
    const orders = await this.#db.selectFrom('ris_order').select(['pk', 'accession_number']).where('patient_pk', '=', prior.pk).execute();
    if (orders.length > 0) await this.#db.updateTable('ris_order').set({ patient_pk: survivor.pk, updated_at: now }).where('patient_pk', '=', prior.pk).execute();
    const { studies, createdPatientPk, removedPatients } = await this.#moveIndexStudies(prior, survivor);
    await this.updateIndexPatient(survivor);
    await this.#db.updateTable('ris_patient').set({ status: 'merged', merged_into_pk: survivor.pk, updated_at: now }).where('pk', '=', prior.pk).execute();
    const moved: Moved = { orders: orders.map((o) => Number(o.pk)), studies, createdPatientPk, removedPatients };
    const id = await this.#insertChange('merge', survivor.pk, prior.pk, prior, moved, source, now);
    return { change: (await this.getPatientChange(id))!, studies: studies.map((s) => s.uid), orders: orders.map((o) => String(o.accession_number)) };
  }

  async changeIdentifier(prior: Patient, next: { patientId: string; issuerOfPatientId: string }, source: ChangeSource, now: string): Promise<PatientChangeResult> {
    await this.#db.updateTable('ris_patient').set({ patient_id: next.patientId, issuer_of_patient_id: next.issuerOfPatientId, updated_at: now }).where('pk', '=', prior.pk).execute();
    const renamed = (await this.getPatient(prior.pk))!;
    const { studies, createdPatientPk, removedPatients } = await this.#moveIndexStudies(prior, renamed);
    await this.updateIndexPatient(renamed);
    const orders = await this.#db.selectFrom('ris_order').select('accession_number').where('patient_pk', '=', prior.pk).execute();
    const moved: Moved = { orders: [], studies, createdPatientPk, removedPatients, renamed: { fromId: prior.patientId, fromIssuer: prior.issuerOfPatientId, toId: next.patientId, toIssuer: next.issuerOfPatientId } };
    const id = await this.#insertChange('identifier-change', prior.pk, prior.pk, prior, moved, source, now);
    return { change: (await this.getPatientChange(id))!, studies: studies.map((s) => s.uid), orders: orders.map((o) => String(o.accession_number)) };
  }

  async #insertChange(kind: PatientChange['kind'], survivorPk: number, priorPk: number, prior: Patient, moved: Moved, source: ChangeSource, now: string): Promise<number> {
    const row = await this.#db.insertInto('ris_patient_change').values({
      kind, survivor_pk: survivorPk, prior_pk: priorPk, prior_patient_id: prior.patientId, prior_issuer: prior.issuerOfPatientId,
      moved: JSON.stringify(moved), source_kind: source.kind, source_ref: source.ref, created_at: now,
    }).returning('pk').executeTakeFirstOrThrow();
    return Number(row.pk);
  }

  async patientChanges(patientPk: number): Promise<PatientChange[]> {
    const rows = await this.#db.selectFrom('ris_patient_change').selectAll()
      .where((eb) => eb.or([eb('survivor_pk', '=', patientPk), eb('prior_pk', '=', patientPk)])).orderBy('pk').execute();
    return await Promise.all(rows.map((r) => this.#toChange(r)));
  }

  async getPatientChange(id: number): Promise<PatientChange | null> {
    const row = await this.#db.selectFrom('ris_patient_change').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? await this.#toChange(row) : null;
  }

  async undoPatientChange(id: number, by: string, now: string): Promise<PatientChangeResult> {
    const row = await this.#db.selectFrom('ris_patient_change').selectAll().where('pk', '=', id).executeTakeFirst();
    if (!row) throw new AtriumError('not-found', `no patient change ${id}`);
    if (row.undone_at) throw new AtriumError('conflict', `patient change ${id} was undone already (${row.undone_at})`);
    const later = await this.#db.selectFrom('ris_patient_change').select('pk').where('pk', '>', id).where('undone_at', 'is', null)
      .where((eb) => eb.or([eb('survivor_pk', 'in', [row.survivor_pk, row.prior_pk]), eb('prior_pk', 'in', [row.survivor_pk, row.prior_pk])])).executeTakeFirst();
    if (later) throw new AtriumError('conflict', `patient change ${later.pk} came after ${id} on the same patients: undo it first`);
    const moved = JSON.parse(row.moved) as Moved;
    if (moved.orders.length > 0) await this.#db.updateTable('ris_order').set({ patient_pk: Number(row.prior_pk), updated_at: now }).where('pk', 'in', moved.orders).execute();
    await this.#restoreIndexStudies(moved);
    if (row.kind === 'merge') {
      await this.#db.updateTable('ris_patient').set({ status: 'active', merged_into_pk: null, updated_at: now }).where('pk', '=', row.prior_pk).execute();
    } else if (moved.renamed) {
      await this.#db.updateTable('ris_patient').set({ patient_id: moved.renamed.fromId, issuer_of_patient_id: moved.renamed.fromIssuer, updated_at: now }).where('pk', '=', row.prior_pk).execute();
    }
    await this.#db.updateTable('ris_patient_change').set({ undone_at: now, undone_by: by }).where('pk', '=', id).execute();
    const orders = moved.orders.length ? await this.#db.selectFrom('ris_order').select('accession_number').where('pk', 'in', moved.orders).execute() : [];
    return { change: (await this.getPatientChange(id))!, studies: moved.studies.map((s) => s.uid), orders: orders.map((o) => String(o.accession_number)) };
  }

  async #toChange(r: any): Promise<PatientChange> {
    const moved = JSON.parse(r.moved) as Moved;
    const survivor = await this.#db.selectFrom('ris_patient').select(['patient_id', 'issuer_of_patient_id']).where('pk', '=', r.survivor_pk).executeTakeFirst();
    return {
      id: Number(r.pk), kind: r.kind,
      survivor: moved.renamed ? { patientId: moved.renamed.toId, issuerOfPatientId: moved.renamed.toIssuer } : { patientId: survivor?.patient_id ?? '', issuerOfPatientId: survivor?.issuer_of_patient_id ?? '' },
      prior: { patientId: r.prior_patient_id, issuerOfPatientId: r.prior_issuer }, movedOrders: moved.orders.length,
      movedStudies: moved.studies.map((s) => s.uid), source: { kind: r.source_kind, ref: r.source_ref }, createdAt: r.created_at,
      undoneAt: r.undone_at ?? null, undoneBy: r.undone_by ?? null,
    };
  }

  async #toPatient(r: any): Promise<Patient> {
    let mergedInto: Patient['mergedInto'] = null;
    if (r.merged_into_pk !== null && r.merged_into_pk !== undefined) {
      const m = await this.#db.selectFrom('ris_patient').select(['patient_id', 'issuer_of_patient_id']).where('pk', '=', r.merged_into_pk).executeTakeFirst();
      if (m) mergedInto = { patientId: m.patient_id, issuerOfPatientId: m.issuer_of_patient_id };
    }
    return {
      pk: Number(r.pk), patientId: r.patient_id, issuerOfPatientId: r.issuer_of_patient_id, patientName: r.patient_name,
      patientBirthDate: r.patient_birth_date, patientSex: r.patient_sex, otherIdentifiers: JSON.parse(r.other_identifiers ?? '[]'),
      status: r.status, mergedInto, createdAt: r.created_at, updatedAt: r.updated_at,
    };
  }

  // -------------------------------------------------------------------------------------------- orders

  async insertOrder(patientPk: number, input: OrderInput & { studyInstanceUid: string; priority: Priority }, status: OrderStatus, now: string): Promise<number> {
    const row = await this.#db.insertInto('ris_order').values({
      patient_pk: patientPk, placer_order_number: input.placerOrderNumber ?? null, filler_order_number: input.fillerOrderNumber ?? null,
      accession_number: input.accessionNumber, requested_procedure_id: input.requestedProcedureId ?? null,
      requested_procedure_code: input.requestedProcedureCode ? JSON.stringify(input.requestedProcedureCode) : null,
      requested_procedure_description: input.requestedProcedureDescription ?? null, priority: input.priority, screening: input.screening ? 1 : 0,
      reason: input.reason ?? null, referring_physician: input.referringPhysician ?? null, ordering_physician: input.orderingPhysician ?? null,
      study_instance_uid: input.studyInstanceUid, status, created_at: now, updated_at: now,
    }).returning('pk').executeTakeFirstOrThrow();
    const pk = Number(row.pk);
    // A new order has no steps to replace: one insert for all of them.
    if (input.steps.length > 0) await this.#db.insertInto('ris_procedure_step').values(input.steps.map((step) => ({ ...stepValues(step, now), order_pk: pk, step_id: step.stepId, status: 'SCHEDULED' }))).execute();
    return pk;
  }

  async updateOrder(pk: number, change: OrderChange, now: string): Promise<void> {
    const set: Record<string, unknown> = { updated_at: now };
    const map: [keyof OrderChange, string, (v: any) => unknown][] = [
      ['placerOrderNumber', 'placer_order_number', (v) => v], ['fillerOrderNumber', 'filler_order_number', (v) => v],
      ['requestedProcedureId', 'requested_procedure_id', (v) => v], ['requestedProcedureCode', 'requested_procedure_code', (v) => (v ? JSON.stringify(v) : null)],
      ['requestedProcedureDescription', 'requested_procedure_description', (v) => v], ['priority', 'priority', (v) => v],
      ['screening', 'screening', (v) => (v ? 1 : 0)], ['reason', 'reason', (v) => v], ['referringPhysician', 'referring_physician', (v) => v],
      ['orderingPhysician', 'ordering_physician', (v) => v],
    ];
    for (const [key, column, convert] of map) if (change[key] !== undefined) set[column] = convert(change[key] ?? null);
    await this.#db.updateTable('ris_order').set(set).where('pk', '=', pk).execute();
    if (change.steps) await this.replaceSteps(pk, change.steps, 'SCHEDULED', now);
  }

  /** Steps given replace those of the same ID (keeping their status) and add new ones; steps not given and not started are cancelled. */
  async replaceSteps(orderPk: number, steps: StepInput[], status: StepStatus, now: string): Promise<void> {
    const existing = await this.#db.selectFrom('ris_procedure_step').select(['pk', 'step_id', 'status']).where('order_pk', '=', orderPk).execute();
    const byId = new Map(existing.map((s) => [String(s.step_id), s]));
    for (const step of steps) {
      const values = stepValues(step, now);
      const known = byId.get(step.stepId);
      if (known) {
        await this.#db.updateTable('ris_procedure_step').set(values).where('pk', '=', known.pk).execute();
        byId.delete(step.stepId);
      } else {
        await this.#db.insertInto('ris_procedure_step').values({ ...values, order_pk: orderPk, step_id: step.stepId, status }).execute();
      }
    }
    const dropped = [...byId.values()].filter((s) => s.status === 'SCHEDULED' || s.status === 'ARRIVED' || s.status === 'READY').map((s) => Number(s.pk));
    if (dropped.length > 0) await this.#db.updateTable('ris_procedure_step').set({ status: 'CANCELLED', updated_at: now }).where('pk', 'in', dropped).execute();
  }

  #orderQuery() {
    return this.#db.selectFrom('ris_order').innerJoin('ris_patient', 'ris_patient.pk', 'ris_order.patient_pk')
      .selectAll('ris_order')
      .select(['ris_patient.patient_id', 'ris_patient.issuer_of_patient_id', 'ris_patient.patient_name', 'ris_patient.patient_birth_date', 'ris_patient.patient_sex']);
  }

  async #withSteps(rows: any[]): Promise<Order[]> {
    if (rows.length === 0) return [];
    const steps = await this.#db.selectFrom('ris_procedure_step').selectAll().where('order_pk', 'in', rows.map((r) => Number(r.pk))).orderBy('pk').execute();
    const byOrder = new Map<number, ProcedureStep[]>();
    for (const s of steps) {
      const list = byOrder.get(Number(s.order_pk)) ?? [];
      list.push(toStep(s));
      byOrder.set(Number(s.order_pk), list);
    }
    return rows.map((r) => ({ ...toOrderCore(r), steps: byOrder.get(Number(r.pk)) ?? [] }));
  }

  async getOrder(pk: number): Promise<Order | null> {
    const row = await this.#orderQuery().where('ris_order.pk', '=', pk).executeTakeFirst();
    return row ? (await this.#withSteps([row]))[0]! : null;
  }

  async findOrder(key: { accessionNumber?: string; placerOrderNumber?: string; fillerOrderNumber?: string; studyInstanceUid?: string }): Promise<Order | null> {
    let q = this.#orderQuery();
    if (key.accessionNumber !== undefined) q = q.where('ris_order.accession_number', '=', key.accessionNumber);
    else if (key.studyInstanceUid !== undefined) q = q.where('ris_order.study_instance_uid', '=', key.studyInstanceUid);
    else if (key.fillerOrderNumber !== undefined) q = q.where('ris_order.filler_order_number', '=', key.fillerOrderNumber);
    else if (key.placerOrderNumber !== undefined) q = q.where('ris_order.placer_order_number', '=', key.placerOrderNumber);
    else return null;
    const row = await q.orderBy('ris_order.pk', 'desc').executeTakeFirst();
    return row ? (await this.#withSteps([row]))[0]! : null;
  }

  async orderDetail(pk: number): Promise<OrderDetail | null> {
    const order = await this.getOrder(pk);
    if (!order) return null;
    const [timeline, studies, reports] = await Promise.all([
      this.timeline(pk),
      this.#db.selectFrom('ris_order_study').selectAll().where('order_pk', '=', pk).orderBy('pk').execute(),
      this.#db.selectFrom('ris_report').selectAll().where('order_pk', '=', pk).orderBy('version').execute(),
    ]);
    const mismatches = studies.filter((s) => s.identity_mismatch).map((s) => JSON.parse(s.identity_mismatch) as IdentityMismatch);
    return {
      ...order, timeline,
      studies: studies.map((s): LinkedStudy => ({
        studyInstanceUid: s.study_instance_uid, matchedBy: s.matched_by, patientMismatch: Number(s.patient_mismatch) === 1, studyPatientId: s.study_patient_id,
        studyIssuerOfPatientId: s.study_issuer_of_patient_id ?? null, studyPatientName: s.study_patient_name ?? null, linkedAt: s.linked_at,
      })),
      reports: reports.map((r) => toReport(r, order.studyInstanceUid)),
      identityMismatch: mismatches.length > 0 ? mismatches : null,
    };
  }

  async listOrders(filter: OrderFilter, page: Page): Promise<Paged<Order>> {
    let q = this.#orderQuery();
    if (filter.status?.length) q = q.where('ris_order.status', 'in', filter.status);
    if (filter.patientId) q = q.where('ris_patient.patient_id', '=', filter.patientId);
    if (filter.accessionNumber) q = q.where(textMatch('ris_order.accession_number', filter.accessionNumber));
    if (filter.modality || filter.stationAeTitle || filter.from || filter.to) {
      q = q.where((eb) => {
        let steps = eb.selectFrom('ris_procedure_step as s').select('s.pk').whereRef('s.order_pk', '=', 'ris_order.pk');
        if (filter.modality) steps = steps.where('s.modality', '=', filter.modality);
        if (filter.stationAeTitle) steps = steps.where('s.station_ae_title', '=', filter.stationAeTitle);
        if (filter.from) steps = steps.where('s.start_at', '>=', lowerBound(filter.from));
        if (filter.to) steps = steps.where('s.start_at', '<=', upperBound(filter.to));
        return eb.exists(steps);
      });
    }
    const [rows, total] = await Promise.all([
      q.orderBy('ris_order.pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      q.clearSelect().select((eb) => eb.fn.countAll().as('n')).executeTakeFirst(),
    ]);
    return { items: await this.#withSteps(rows), total: Number(total?.n ?? 0), ...page };
  }

  async setOrderStatus(pk: number, status: OrderStatus, now: string): Promise<void> {
    await this.#db.updateTable('ris_order').set({ status, updated_at: now }).where('pk', '=', pk).execute();
  }

  async setStepStatus(orderPk: number, stepId: string | null, status: StepStatus, now: string): Promise<number> {
    let q = this.#db.updateTable('ris_procedure_step').set({ status, updated_at: now }).where('order_pk', '=', orderPk);
    if (stepId !== null) q = q.where('step_id', '=', stepId);
    else q = q.where('status', 'not in', ['COMPLETED', 'DISCONTINUED', 'CANCELLED']);
    const result = await q.executeTakeFirst();
    return Number(result.numUpdatedRows ?? 0);
  }

  async addTimeline(orderPk: number, entry: Omit<TimelineEntry, 'flag'> & { flag?: TimelineFlag | null; stepPk?: number | null }): Promise<void> {
    let stepPk = entry.stepPk ?? null;
    if (stepPk === null && entry.stepId) {
      const step = await this.#db.selectFrom('ris_procedure_step').select('pk').where('order_pk', '=', orderPk).where('step_id', '=', entry.stepId).executeTakeFirst();
      stepPk = step ? Number(step.pk) : null;
    }
    await this.#db.insertInto('ris_order_event').values({
      order_pk: orderPk, status: entry.status, step_pk: stepPk, source_kind: entry.source.kind, source_ref: entry.source.ref, detail: entry.detail, at: entry.at,
      flag: entry.flag ?? null,
    }).execute();
  }

  async timeline(orderPk: number): Promise<TimelineEntry[]> {
    const rows = await this.#db.selectFrom('ris_order_event').leftJoin('ris_procedure_step', 'ris_procedure_step.pk', 'ris_order_event.step_pk')
      .select(['ris_order_event.status', 'ris_order_event.source_kind', 'ris_order_event.source_ref', 'ris_order_event.detail', 'ris_order_event.at', 'ris_order_event.flag', 'ris_procedure_step.step_id'])
      .where('ris_order_event.order_pk', '=', orderPk).orderBy('ris_order_event.pk').execute();
    return rows.map((r) => ({ status: r.status, stepId: r.step_id ?? null, source: { kind: r.source_kind, ref: r.source_ref }, detail: r.detail, at: r.at, flag: r.flag ?? null }));
  }

  async scheduledSteps(filter: ScheduledStepFilter): Promise<ScheduledStepView[]> {
    let q = this.#db.selectFrom('ris_procedure_step as s').innerJoin('ris_order', 'ris_order.pk', 's.order_pk').innerJoin('ris_patient', 'ris_patient.pk', 'ris_order.patient_pk')
      .select(['s.pk as step_pk', 'ris_order.pk as order_pk', 'ris_patient.pk as patient_pk'])
      .where('s.status', 'in', filter.statuses?.length ? filter.statuses : [...OPEN_STEP_STATUSES])
      .where('ris_order.status', 'not in', ['cancelled', 'discontinued']);
    if (filter.stationAeTitle) q = q.where(textMatch('s.station_ae_title', filter.stationAeTitle));
    if (filter.modality) q = q.where(textMatch('s.modality', filter.modality));
    if (filter.from) q = q.where('s.start_at', '>=', lowerBound(filter.from));
    if (filter.to) q = q.where('s.start_at', '<=', upperBound(filter.to));
    if (filter.patientId) q = q.where(textMatch('ris_patient.patient_id', filter.patientId));
    if (filter.accessionNumber) q = q.where(textMatch('ris_order.accession_number', filter.accessionNumber));
    if (filter.requestedProcedureId) q = q.where(textMatch('ris_order.requested_procedure_id', filter.requestedProcedureId));
    if (filter.stepId) q = q.where(textMatch('s.step_id', filter.stepId));
    const keys = await q.orderBy('s.start_at').orderBy('s.pk').limit(filter.limit ?? 10_000).execute();
    if (keys.length === 0) return [];
    const orders = new Map((await this.#withSteps(await this.#orderQuery().where('ris_order.pk', 'in', [...new Set(keys.map((k) => Number(k.order_pk)))]).execute())).map((o) => [o.pk, o]));
    const patients = new Map<number, Patient>();
    for (const pk of new Set(keys.map((k) => Number(k.patient_pk)))) patients.set(pk, (await this.getPatient(pk))!);
    return keys.map((k) => {
      const order = orders.get(Number(k.order_pk))!;
      const { steps, ...rest } = order;
      return { step: steps.find((s) => s.pk === Number(k.step_pk))!, order: rest, patient: patients.get(Number(k.patient_pk))! };
    });
  }

  async findStep(key: { stepId: string; accessionNumber?: string; studyInstanceUid?: string }): Promise<{ order: Order; step: ProcedureStep } | null> {
    const order = key.accessionNumber !== undefined ? await this.findOrder({ accessionNumber: key.accessionNumber })
      : key.studyInstanceUid !== undefined ? await this.findOrder({ studyInstanceUid: key.studyInstanceUid }) : null;
    const step = order?.steps.find((s) => s.stepId === key.stepId);
    return order && step ? { order, step } : null;
  }

  // ------------------------------------------------------------------------------------------- reports

  async insertReport(orderPk: number, order: Order, input: ReportInput, source: ChangeSource, now: string): Promise<Report> {
    const current = await this.currentReport(orderPk);
    if (current) await this.#db.updateTable('ris_report').set({ superseded_at: now }).where('order_pk', '=', orderPk).where('superseded_at', 'is', null).execute();
    const row = await this.#db.insertInto('ris_report').values({
      order_pk: orderPk, accession_number: order.accessionNumber, version: (current?.version ?? 0) + 1, status: input.status, text: input.text,
      author: input.author ?? null, observed_at: input.observedAt ?? null, source_kind: source.kind, source_ref: source.ref, created_at: now,
    }).returning('pk').executeTakeFirstOrThrow();
    return (await this.getReport(Number(row.pk)))!;
  }

  async currentReport(orderPk: number): Promise<Report | null> {
    const row = await this.#db.selectFrom('ris_report').innerJoin('ris_order', 'ris_order.pk', 'ris_report.order_pk').selectAll('ris_report').select('ris_order.study_instance_uid')
      .where('ris_report.order_pk', '=', orderPk).where('ris_report.superseded_at', 'is', null).executeTakeFirst();
    return row ? toReport(row, row.study_instance_uid) : null;
  }

  async getReport(id: number): Promise<Report | null> {
    const row = await this.#db.selectFrom('ris_report').innerJoin('ris_order', 'ris_order.pk', 'ris_report.order_pk').selectAll('ris_report').select('ris_order.study_instance_uid')
      .where('ris_report.pk', '=', id).executeTakeFirst();
    return row ? toReport(row, row.study_instance_uid) : null;
  }

  async listReports(filter: { accessionNumber?: string; status?: string }, page: Page): Promise<Paged<Report>> {
    let q = this.#db.selectFrom('ris_report').innerJoin('ris_order', 'ris_order.pk', 'ris_report.order_pk');
    if (filter.accessionNumber) q = q.where('ris_report.accession_number', '=', filter.accessionNumber);
    if (filter.status) q = q.where('ris_report.status', '=', filter.status);
    const [rows, total] = await Promise.all([
      q.selectAll('ris_report').select('ris_order.study_instance_uid').orderBy('ris_report.pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirst(),
    ]);
    return { items: rows.map((r) => toReport(r, r.study_instance_uid)), total: Number(total?.n ?? 0), ...page };
  }

  // ----------------------------------------------------------------------------------- studies to orders

  async linkStudy(orderPk: number, study: { studyInstanceUid: string; matchedBy: LinkedStudy['matchedBy']; identity: PatientIdentity; mismatch: IdentityMismatch | null }, now: string): Promise<boolean> {
    const result = await this.#db.insertInto('ris_order_study').values({
      order_pk: orderPk, study_instance_uid: study.studyInstanceUid, matched_by: study.matchedBy, patient_mismatch: study.mismatch ? 1 : 0,
      study_patient_id: study.identity.patientId, study_issuer_of_patient_id: study.identity.issuerOfPatientId, study_patient_name: study.identity.patientName,
      identity_mismatch: study.mismatch ? JSON.stringify(study.mismatch) : null, linked_at: now,
    }).onConflict((oc) => oc.column('study_instance_uid').doNothing()).returning('pk').executeTakeFirst();
    return result !== undefined;
  }

  async studyIdentity(studyInstanceUid: string): Promise<PatientIdentity | null> {
    const row = await this.#db.selectFrom('study').innerJoin('patient', 'patient.pk', 'study.patient_pk')
      .select(['patient.patient_id', 'patient.issuer_of_patient_id', 'patient.patient_name']).where('study.study_instance_uid', '=', studyInstanceUid).executeTakeFirst();
    if (!row) return null;
    return { patientId: row.patient_id || null, issuerOfPatientId: row.issuer_of_patient_id || null, patientName: row.patient_name ?? null };
  }

  async isStudyKnown(studyInstanceUid: string): Promise<'linked' | 'unmatched' | null> {
    if (await this.#db.selectFrom('ris_order_study').select('pk').where('study_instance_uid', '=', studyInstanceUid).executeTakeFirst()) return 'linked';
    if (await this.#db.selectFrom('ris_unmatched_study').select('pk').where('study_instance_uid', '=', studyInstanceUid).executeTakeFirst()) return 'unmatched';
    return null;
  }

  async recordUnmatched(study: { studyInstanceUid: string; accessionNumber: string | null; patientId: string | null }, now: string): Promise<void> {
    await this.#db.insertInto('ris_unmatched_study').values({
      study_instance_uid: study.studyInstanceUid, accession_number: study.accessionNumber, patient_id: study.patientId, first_seen_at: now,
    }).onConflict((oc) => oc.column('study_instance_uid').doNothing()).execute();
  }

  async removeUnmatched(studyInstanceUid: string): Promise<void> {
    await this.#db.deleteFrom('ris_unmatched_study').where('study_instance_uid', '=', studyInstanceUid).execute();
  }

  async unmatchedByAccession(accessionNumber: string): Promise<UnmatchedStudy[]> {
    const rows = await this.#db.selectFrom('ris_unmatched_study').selectAll().where('accession_number', '=', accessionNumber).execute();
    return rows.map(toUnmatched);
  }

  async listUnmatched(page: Page): Promise<Paged<UnmatchedStudy>> {
    const [rows, total] = await Promise.all([
      this.#db.selectFrom('ris_unmatched_study').selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      this.#db.selectFrom('ris_unmatched_study').select((eb) => eb.fn.countAll().as('n')).executeTakeFirst(),
    ]);
    return { items: rows.map(toUnmatched), total: Number(total?.n ?? 0), ...page };
  }

  // ---------------------------------------------------------------------------------------- HL7 message log

  async insertMessage(m: NewHl7Message): Promise<number> {
    const row = await this.#db.insertInto('ris_hl7_message').values({
      sender: m.sender, control_id: m.controlId, message_type: m.messageType, version: m.version, remote_address: m.remoteAddress,
      raw: m.raw.toString('base64'), text: m.text, ack: m.ack, ack_code: m.ackCode, error_code: m.errorCode, error_location: m.errorLocation,
      error_text: m.errorText, patient_id: m.patientId, accession_number: m.accessionNumber, received_at: m.receivedAt,
    }).returning('pk').executeTakeFirstOrThrow();
    return Number(row.pk);
  }

  async setMessageOutcome(id: number, o: Hl7MessageOutcome, replay?: { by: string; at: string }): Promise<void> {
    await this.#db.updateTable('ris_hl7_message').set({
      ack: o.ack, ack_code: o.ackCode, error_code: o.errorCode, error_location: o.errorLocation, error_text: o.errorText,
      patient_id: o.patientId, accession_number: o.accessionNumber,
      ...(replay ? { replays: sql`replays + 1`, replayed_at: replay.at, replayed_by: replay.by } : {}),
    }).where('pk', '=', id).execute();
  }

  async findMessage(sender: string, controlId: string): Promise<Hl7MessageRecord | null> {
    const row = await this.#db.selectFrom('ris_hl7_message').selectAll().where('sender', '=', sender).where('control_id', '=', controlId).executeTakeFirst();
    return row ? toMessage(row) : null;
  }

  async getMessage(id: number): Promise<(Hl7MessageRecord & { raw: Buffer }) | null> {
    const row = await this.#db.selectFrom('ris_hl7_message').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? { ...toMessage(row), raw: Buffer.from(row.raw, 'base64') } : null;
  }

  async listMessages(filter: Hl7MessageFilter, page: Page): Promise<Paged<Hl7MessageRecord>> {
    let q = this.#db.selectFrom('ris_hl7_message');
    if (filter.ackCode) q = q.where('ack_code', '=', filter.ackCode);
    if (filter.messageType) q = q.where(textMatch('message_type', filter.messageType));
    if (filter.sender) q = q.where(textMatch('sender', filter.sender));
    if (filter.controlId) q = q.where('control_id', '=', filter.controlId);
    if (filter.patientId) q = q.where('patient_id', '=', filter.patientId);
    if (filter.accessionNumber) q = q.where('accession_number', '=', filter.accessionNumber);
    if (filter.from) q = q.where('received_at', '>=', filter.from);
    if (filter.to) q = q.where('received_at', '<', filter.to);
    if (filter.text) q = q.where('text', 'like', `%${likePattern(filter.text)}%`);
    const [rows, total] = await Promise.all([
      q.selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirst(),
    ]);
    return { items: rows.map(toMessage), total: Number(total?.n ?? 0), ...page };
  }

  async appendAudit(records: readonly NewAuditRecord[]): Promise<AuditRecord[]> {
    return await insertAuditRecords(this.#db, records);
  }

  async emitOrderStatus(order: Order, status: OrderStatus, source: ChangeSource, now: string): Promise<void> {
    if (!this.#inTransaction) throw new Error('emitOrderStatus runs inside a transaction');
    await emit(this.#db as Transaction<any>, {
      type: 'OrderStatusChanged',
      payload: { accessionNumber: order.accessionNumber, studyInstanceUid: order.studyInstanceUid, patientId: order.patient.patientId, status, source: source.kind, sourceRef: source.ref },
    }, now);
  }

  async emitPatientMerged(change: PatientChange, undone: boolean, source: ChangeSource, now: string): Promise<void> {
    if (!this.#inTransaction) throw new Error('emitPatientMerged runs inside a transaction');
    await emit(this.#db as Transaction<any>, {
      type: 'PatientMerged',
      payload: {
        survivorPatientId: change.survivor.patientId, survivorIssuer: change.survivor.issuerOfPatientId,
        mergedPatientId: change.prior.patientId, mergedIssuer: change.prior.issuerOfPatientId, undone, source: source.kind, sourceRef: source.ref,
      },
    }, now);
  }

  async emitReportFinal(report: Report, order: Order, now: string): Promise<void> {
    if (!this.#inTransaction) throw new Error('emitReportFinal runs inside a transaction');
    if (report.status !== 'F' && report.status !== 'C') throw new Error(`report ${report.id} is ${report.status}, not final or corrected`);
    await emit(this.#db as Transaction<any>, {
      type: 'ReportFinal',
      payload: {
        reportId: report.id, version: report.version, status: report.status, accessionNumber: order.accessionNumber, studyInstanceUid: order.studyInstanceUid,
        patientId: order.patient.patientId, source: report.source.kind, sourceRef: report.source.ref,
      },
    }, now);
  }

  async emitCriticalResult(report: Report, order: Order, now: string): Promise<void> {
    if (!this.#inTransaction) throw new Error('emitCriticalResult runs inside a transaction');
    await emit(this.#db as Transaction<any>, {
      type: 'CriticalResult',
      payload: {
        reportId: report.id, version: report.version, status: report.status, accessionNumber: order.accessionNumber, studyInstanceUid: order.studyInstanceUid,
        patientId: order.patient.patientId, author: report.author, orderingPhysician: order.orderingPhysician, referringPhysician: order.referringPhysician,
        source: report.source.kind, sourceRef: report.source.ref,
      },
    }, now);
  }
}

/** `=`, or LIKE when the value has DICOM wildcards (`*`, `?`). */
function textMatch(column: string, value: string) {
  return (eb: any) => (/[*?]/.test(value) ? eb(column, 'like', sql`${likePattern(value)} escape '\\'`) : eb(column, '=', value));
}

function lowerBound(value: string): string {
  return value.replace(/\D/g, '').padEnd(14, '0').slice(0, 14);
}

function upperBound(value: string): string {
  const digits = value.replace(/\D/g, '');
  return (digits.length <= 8 ? digits.padEnd(8, '9') + '235959' : digits.padEnd(14, '9')).slice(0, 14);
}

function toStep(s: any): ProcedureStep {
  return {
    pk: Number(s.pk), stepId: s.step_id, modality: s.modality, stationAeTitle: s.station_ae_title, stationName: s.station_name, location: s.location,
    startDate: s.start_date, startTime: s.start_time, description: s.description, performingPhysician: s.performing_physician,
    protocolCodes: JSON.parse(s.protocol_codes ?? '[]') as Code[], status: s.status, updatedAt: s.updated_at,
  };
}

function toOrderCore(r: any): Omit<Order, 'steps'> {
  return {
    pk: Number(r.pk),
    patient: { patientId: r.patient_id, issuerOfPatientId: r.issuer_of_patient_id, patientName: r.patient_name, patientBirthDate: r.patient_birth_date, patientSex: r.patient_sex },
    placerOrderNumber: r.placer_order_number, fillerOrderNumber: r.filler_order_number, accessionNumber: r.accession_number,
    requestedProcedureId: r.requested_procedure_id, requestedProcedureCode: r.requested_procedure_code ? JSON.parse(r.requested_procedure_code) : null,
    requestedProcedureDescription: r.requested_procedure_description, priority: r.priority, screening: Number(r.screening) === 1, reason: r.reason,
    referringPhysician: r.referring_physician, orderingPhysician: r.ordering_physician, studyInstanceUid: r.study_instance_uid, status: r.status,
    createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

function toReport(r: any, studyInstanceUid: string): Report {
  return {
    id: Number(r.pk), accessionNumber: r.accession_number, studyInstanceUid, version: Number(r.version), status: r.status, text: r.text, author: r.author,
    observedAt: r.observed_at, source: { kind: r.source_kind, ref: r.source_ref }, createdAt: r.created_at, supersededAt: r.superseded_at ?? null,
  };
}

function toUnmatched(r: any): UnmatchedStudy {
  return { studyInstanceUid: r.study_instance_uid, accessionNumber: r.accession_number, patientId: r.patient_id, firstSeenAt: r.first_seen_at };
}

function toMessage(r: any): Hl7MessageRecord {
  return {
    id: Number(r.pk), sender: r.sender, controlId: r.control_id, messageType: r.message_type, version: r.version, remoteAddress: r.remote_address,
    text: r.text, ack: r.ack, ackCode: r.ack_code, errorCode: r.error_code, errorLocation: r.error_location, errorText: r.error_text,
    patientId: r.patient_id, accessionNumber: r.accession_number, receivedAt: r.received_at, replays: Number(r.replays ?? 0),
    replayedAt: r.replayed_at ?? null, replayedBy: r.replayed_by ?? null,
  };
}
