/**
 * Identity corrections (issue 11, docs/corrections.md): the actions that resolve identity findings. Each one, in
 * one transaction: changes the index (what C-FIND, QIDO-RS and FHIR answer from), sets what is served for the
 * studies or series concerned (table served_correction: every retrieve splices those values in and keeps the
 * replaced ones in an Original Attributes Sequence item; the stored objects are never rewritten), writes the
 * correction's record with a snapshot of everything it changed, and an IdentityCorrected event. Audited once
 * committed. An undo puts the snapshot back, if no later correction touched the same studies or patients.
 * Merges go through the RIS merge HL7 A40 uses (src/ris/patient-service.ts) when both patients are the RIS's.
 */
import type { Transaction } from 'kysely';
import { attributeChanges, AttributeCorrectionError } from '../../dicom/attribute-correction.ts';
import { emit } from '../../adapters/index/sql-event-outbox.ts';
import { AtriumError } from '../../errors.ts';
import type { AuditEventInput, AuditInterface, AuditNetworkEnd, AuditPrincipal } from '../../ports/audit-store.ts';
import type { ServedAttribute } from '../../ports/served-corrections.ts';
import type { Ris } from '../../ris/ris.ts';
import { SqlRisStore } from '../../ris/sql-ris-store.ts';
import type { ChangeContext } from '../../ris/ris-context.ts';
import {
  CorrectionStore, PATIENT_ATTRIBUTES, STUDY_ATTRIBUTES, type CorrectionRecord, type PatientAttribute, type PatientRow, type Snapshot, type StudyAttribute, type StudyRow,
} from './correction-store.ts';

export const CORRECTION_KINDS = ['move-study', 'move-series', 'edit-patient', 'edit-study', 'merge', 'split', 'link-order'] as const;
export type CorrectionKind = typeof CORRECTION_KINDS[number];

export interface PatientKey { patientId: string; issuerOfPatientId?: string }

export type CorrectionRequest =
  | { kind: 'move-study'; studyInstanceUid: string; to: PatientKey & { patientName?: string; patientBirthDate?: string; patientSex?: string } }
  | { kind: 'move-series'; seriesInstanceUid: string; toStudyInstanceUid: string }
  | { kind: 'edit-patient'; patient: PatientKey; attributes: Partial<Record<PatientAttribute, string>> }
  | { kind: 'edit-study'; studyInstanceUid: string; attributes: Partial<Record<Exclude<StudyAttribute, 'StudyInstanceUID'>, string>> }
  | { kind: 'merge'; survivor: PatientKey; prior: PatientKey }
  | { kind: 'split'; from: PatientKey; to: PatientKey & { patientName?: string; patientBirthDate?: string; patientSex?: string }; studies: string[]; orders?: string[] }
  | { kind: 'link-order'; studyInstanceUid: string; accessionNumber: string };

export interface Actor {
  principal: AuditPrincipal;
  interface: AuditInterface;
  origin?: AuditNetworkEnd | null;
}

export interface CorrectionDeps {
  store: CorrectionStore;
  ris: Ris;
  audit: { record(event: AuditEventInput): Promise<unknown> };
  clock?: () => Date;
  /** Called after a correction or its undo committed (peers are told: queued sends). */
  onCommitted?: (record: CorrectionRecord, actor: Actor) => Promise<void>;
}

const MAX_REASON = 1024;

/** What one apply is building up inside its transaction. */
class Work {
  readonly before: Snapshot = { patients: [], studies: [], series: [], served: [] };
  readonly studies = new Set<string>();
  readonly patientIds = new Set<string>();
  readonly audits: AuditEventInput[] = [];
  readonly store: CorrectionStore;
  readonly tx: Transaction<any>;
  readonly now: string;
  id = 0;

  constructor(store: CorrectionStore, tx: Transaction<any>, now: string) {
    this.store = store;
    this.tx = tx;
    this.now = now;
  }

  keepPatient(p: PatientRow): void {
    if (!this.before.patients.some((x) => x.pk === p.pk)) this.before.patients.push({ ...p });
    this.patientIds.add(p.patient_id);
  }

  keepStudy(s: StudyRow): void {
    if (!this.before.studies.some((x) => x.pk === s.pk)) this.before.studies.push({ ...s });
    this.studies.add(s.study_instance_uid);
  }

  async keepServed(study: string, series = ''): Promise<void> {
    if (this.before.served.some((x) => x.study === study && x.series === series)) return;
    this.before.served.push({ study, series, row: await this.store.served(study, series) });
  }

  /** Serves the patient's attributes (as the index now has them) for a study. */
  async servePatient(study: string, patient: PatientRow, only?: PatientAttribute[]): Promise<void> {
    await this.keepServed(study);
    const names = only ?? (Object.keys(PATIENT_ATTRIBUTES) as PatientAttribute[]);
    await this.store.serve(study, '', names.map((k) => served(k, PATIENT_ATTRIBUTES[k], patientValue(patient, k))), this.id, this.now);
  }
}

function served(keyword: string, a: { tag: string; vr: string }, value: string | null): ServedAttribute {
  return { tag: a.tag, keyword, vr: a.vr, value: value ?? '' };
}

function patientValue(p: PatientRow, k: PatientAttribute): string | null {
  return p[PATIENT_ATTRIBUTES[k].column as keyof PatientRow] as string | null;
}

export class CorrectionService {
  readonly #deps: CorrectionDeps;
  readonly #clock: () => Date;

  constructor(deps: CorrectionDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? (() => new Date());
  }

  async list(filter: { study?: string; patientId?: string; kind?: string }, page: { limit: number; offset: number }) {
    return await this.#deps.store.list(filter, page);
  }

  async get(id: number): Promise<CorrectionRecord> {
    const record = await this.#deps.store.get(id);
    if (!record) throw new AtriumError('not-found', `no correction ${id}`);
    return record;
  }

  async apply(request: CorrectionRequest, reason: string, actor: Actor): Promise<CorrectionRecord> {
    checkReason(reason);
    if (!(CORRECTION_KINDS as readonly string[]).includes(request.kind)) throw new AtriumError('invalid-input', `kind must be one of ${CORRECTION_KINDS.join(', ')}`);
    const now = this.#clock().toISOString();
    const name = actorName(actor);
    let audits: AuditEventInput[] = [];
    const record = await this.#deps.store.transaction(async (store, tx) => {
      const work = new Work(store, tx, now);
      work.id = await store.insert({ kind: request.kind, reason, actor: name, actorName: actor.principal.displayName ?? name, request, before: work.before, createdAt: now });
      await this.#do(work, request, actor, reason);
      const after = await snapshotNow(store, work.before);
      await store.complete(work.id, work.before, after, [...work.studies], [...work.patientIds]);
      await emitCorrected(tx, work.id, request.kind, [...work.studies], [...work.patientIds], false, name, reason, now);
      audits = work.audits;
      return (await store.get(work.id))!;
    });
    await Promise.all(audits.map((a) => this.#deps.audit.record(a)));
    await this.#deps.audit.record({
      principal: actor.principal, action: 'update', interface: actor.interface, origin: actor.origin ?? null, time: now,
      patientIds: record.patientIds, studies: record.studyInstanceUids.map((uid) => ({ studyInstanceUid: uid })),
      detail: `identity correction ${record.id} (${record.kind}): ${reason}`,
    });
    await this.#deps.onCommitted?.(record, actor);
    return record;
  }

  async undo(id: number, reason: string, actor: Actor): Promise<CorrectionRecord> {
    checkReason(reason);
    const now = this.#clock().toISOString();
    const name = actorName(actor);
    let audits: AuditEventInput[] = [];
    const record = await this.#deps.store.transaction(async (store, tx) => {
      const record = await store.get(id);
      if (!record) throw new AtriumError('not-found', `no correction ${id}`);
      if (record.undoneAt) throw new AtriumError('conflict', `correction ${id} was undone already (${record.undoneAt})`);
      const later = await store.laterOverlapping(id, record.studyInstanceUids, record.patientIds);
      if (later) throw new AtriumError('conflict', `correction ${later.id} (${later.kind}) came after ${id} on the same studies or patients: undo it first`);
      const before = record.before;
      if (before.risChange !== undefined) {
        const ris = new SqlRisStore({ db: tx, inTransaction: true });
        const within = { store: ris, audits: [] as AuditEventInput[] };
        await this.#deps.ris.patients.undoChange(changeContext(actor, name), before.risChange, within);
        audits = within.audits;
      }
      if (before.linkedOrder) await store.unlinkStudy(before.linkedOrder.orderPk, before.linkedOrder.studyInstanceUid, before.linkedOrder.unmatched);
      for (const p of before.patients) await store.writePatient(p);
      for (const s of before.studies) await store.writeStudy(s, now);
      for (const s of before.series) await store.writeSeries(s, now);
      for (const s of before.studies) await store.recount(s.pk, now);
      for (const s of before.served) await store.writeServed(s.study, s.series, s.row);
      for (const o of before.orders ?? []) await store.writeOrderPatient(o.pk, o.patient_pk, now);
      for (const p of before.risPatients ?? []) await store.writeRisPatientStatus(p.pk, p.status, p.merged_into_pk, now);
      for (const pk of before.createdPatients ?? []) await store.removeIfEmpty(pk);
      await store.markUndone(id, name, reason, now);
      await emitCorrected(tx, id, record.kind, record.studyInstanceUids, record.patientIds, true, name, reason, now);
      return (await store.get(id))!;
    });
    await Promise.all(audits.map((a) => this.#deps.audit.record(a)));
    await this.#deps.audit.record({
      principal: actor.principal, action: 'update', interface: actor.interface, origin: actor.origin ?? null, time: now,
      patientIds: record.patientIds, studies: record.studyInstanceUids.map((uid) => ({ studyInstanceUid: uid })),
      detail: `identity correction ${id} (${record.kind}) undone: ${reason}`,
    });
    await this.#deps.onCommitted?.(record, actor);
    return record;
  }

  async #do(work: Work, request: CorrectionRequest, actor: Actor, reason: string): Promise<void> {
    const { store } = work;
    switch (request.kind) {
      case 'move-study': {
        const study = await mustStudy(store, request.studyInstanceUid);
        const from = (await store.patientByPk(study.patient_pk))!;
        const to = await this.#targetPatient(work, request.to);
        if (to.pk === from.pk) throw new AtriumError('invalid-input', `study ${study.study_instance_uid} is already patient ${to.patient_id}'s`);
        await this.#moveStudy(work, study, from, to);
        return;
      }
      case 'move-series': {
        const series = await store.series(request.seriesInstanceUid);
        if (!series) throw new AtriumError('not-found', `no series ${request.seriesInstanceUid}`);
        const from = (await store.studyByPk(series.study_pk))!;
        const to = await mustStudy(store, request.toStudyInstanceUid);
        if (from.pk === to.pk) throw new AtriumError('invalid-input', `series ${request.seriesInstanceUid} is in study ${to.study_instance_uid} already`);
        const patient = (await store.patientByPk(to.patient_pk))!;
        work.keepStudy(from);
        work.keepStudy(to);
        work.keepPatient((await store.patientByPk(from.patient_pk))!);
        work.keepPatient(patient);
        work.before.series.push({ ...series });
        await store.writeSeries({ series_instance_uid: series.series_instance_uid, study_pk: to.pk }, work.now);
        await store.recount(from.pk, work.now);
        await store.recount(to.pk, work.now);
        // The series is served as part of its new study: that study's identity and patient, with its UID.
        await work.keepServed(from.study_instance_uid, series.series_instance_uid);
        const attributes = [
          ...(Object.keys(PATIENT_ATTRIBUTES) as PatientAttribute[]).map((k) => served(k, PATIENT_ATTRIBUTES[k], patientValue(patient, k))),
          ...(Object.keys(STUDY_ATTRIBUTES) as StudyAttribute[]).map((k) => served(k, STUDY_ATTRIBUTES[k], to[STUDY_ATTRIBUTES[k].column as keyof StudyRow] as string | null)),
        ];
        // Keyed by the study the index now has it under (retrieve reads the instance's current study and series).
        await work.keepServed(to.study_instance_uid, series.series_instance_uid);
        await store.serve(to.study_instance_uid, series.series_instance_uid, attributes, work.id, work.now);
        return;
      }
      case 'edit-patient': {
        const patient = await mustPatient(store, request.patient);
        const names = checkedAttributes(request.attributes, PATIENT_ATTRIBUTES);
        const next = { ...patient };
        for (const k of names) (next as Record<string, unknown>)[PATIENT_ATTRIBUTES[k].column] = request.attributes[k] === '' ? null : request.attributes[k];
        if ((next.patient_id !== patient.patient_id || next.issuer_of_patient_id !== patient.issuer_of_patient_id) && await store.patient(next.patient_id, next.issuer_of_patient_id ?? '')) {
          throw new AtriumError('conflict', `patient ${next.patient_id} exists already: merge the two patients instead`);
        }
        next.issuer_of_patient_id ??= '';
        work.keepPatient(patient);
        work.patientIds.add(next.patient_id);
        await store.writePatient(next);
        for (const study of await store.studiesOfPatient(patient.pk)) {
          work.keepStudy(study);
          await work.servePatient(study.study_instance_uid, next, names);
        }
        return;
      }
      case 'edit-study': {
        const study = await mustStudy(store, request.studyInstanceUid);
        if (request.attributes && 'StudyInstanceUID' in request.attributes) throw new AtriumError('invalid-input', 'StudyInstanceUID is not edited: move the series to another study instead');
        const names = checkedAttributes(request.attributes, STUDY_ATTRIBUTES) as Exclude<StudyAttribute, 'StudyInstanceUID'>[];
        work.keepStudy(study);
        work.keepPatient((await store.patientByPk(study.patient_pk))!);
        const next = { ...study };
        for (const k of names) (next as Record<string, unknown>)[STUDY_ATTRIBUTES[k].column] = request.attributes[k] === '' ? null : request.attributes[k];
        await store.writeStudy(next, work.now);
        await work.keepServed(study.study_instance_uid);
        await store.serve(study.study_instance_uid, '', names.map((k) => served(k, STUDY_ATTRIBUTES[k], request.attributes[k] ?? '')), work.id, work.now);
        return;
      }
      case 'merge': {
        const survivor = await mustPatient(store, request.survivor);
        const prior = await mustPatient(store, request.prior);
        if (survivor.pk === prior.pk) throw new AtriumError('invalid-input', 'a patient cannot be merged into itself');
        const risSurvivor = await store.risPatient(survivor.patient_id, survivor.issuer_of_patient_id);
        const risPrior = await store.risPatient(prior.patient_id, prior.issuer_of_patient_id);
        work.keepPatient(survivor);
        work.keepPatient(prior);
        const studies = await store.studiesOfPatient(prior.pk);
        for (const s of studies) work.keepStudy(s);
        if (risSurvivor && risPrior) {
          // The RIS's merge (the one HL7 A40 runs): orders and studies move, the prior is marked merged.
          const ris = new SqlRisStore({ db: work.tx, inTransaction: true });
          const result = await this.#deps.ris.core.change(changeContext(actor, actorName(actor), reason), (unit) => this.#deps.ris.patients.merge(unit, {
            patientId: survivor.patient_id, issuerOfPatientId: risSurvivor ? survivor.issuer_of_patient_id : '',
          }, { patientId: prior.patient_id, issuerOfPatientId: prior.issuer_of_patient_id }), { store: ris, audits: work.audits });
          work.before.risChange = result.change.id;
          // The RIS's undo puts the index rows back: the snapshot's own rows must not overwrite them first.
          work.before.patients = [];
          work.before.studies = [];
        } else {
          // Patients only the images know: their studies move; the prior's (now empty) index row is kept for the undo.
          for (const s of studies) await store.writeStudy({ ...s, patient_pk: survivor.pk }, work.now);
        }
        const current = (await store.patient(survivor.patient_id, survivor.issuer_of_patient_id))!;
        for (const s of studies) await work.servePatient(s.study_instance_uid, current);
        return;
      }
      case 'split': {
        const from = await mustPatient(store, request.from);
        if (!request.studies?.length && !request.orders?.length) throw new AtriumError('invalid-input', 'name the studies (and orders) that go to the other patient');
        const to = await this.#targetPatient(work, request.to);
        if (to.pk === from.pk) throw new AtriumError('invalid-input', 'split to the same patient');
        for (const uid of request.studies ?? []) {
          const study = await mustStudy(store, uid);
          if (study.patient_pk !== from.pk) throw new AtriumError('invalid-input', `study ${uid} is not patient ${from.patient_id}'s`);
          await this.#moveStudy(work, study, from, to);
        }
        const risFrom = await store.risPatient(from.patient_id, from.issuer_of_patient_id);
        const risTo = await store.risPatient(to.patient_id, to.issuer_of_patient_id);
        if (request.orders?.length) {
          if (!risFrom || !risTo) throw new AtriumError('invalid-input', 'orders are split between patients the RIS knows: both patients must be RIS patients');
          const orders = await store.ordersOf(risFrom.pk, request.orders);
          const missing = request.orders.filter((a) => !orders.some((o) => o.accession_number === a));
          if (missing.length) throw new AtriumError('invalid-input', `orders ${missing.join(', ')} are not patient ${from.patient_id}'s`);
          work.before.orders = orders.map((o) => ({ pk: o.pk, patient_pk: o.patient_pk }));
          for (const o of orders) await store.writeOrderPatient(o.pk, risTo.pk, work.now);
        }
        if (risTo && risTo.status === 'merged') {
          // The patient wrongly merged away is a patient again.
          work.before.risPatients = [{ pk: risTo.pk, status: risTo.status, merged_into_pk: risTo.merged_into_pk }];
          await store.writeRisPatientStatus(risTo.pk, 'active', null, work.now);
        }
        return;
      }
      case 'link-order': {
        const study = await mustStudy(store, request.studyInstanceUid);
        const ris = new SqlRisStore({ db: work.tx, inTransaction: true });
        const order = await ris.findOrder({ accessionNumber: request.accessionNumber });
        if (!order) throw new AtriumError('not-found', `no order with accession number ${request.accessionNumber}`);
        work.keepStudy(study);
        work.keepPatient((await store.patientByPk(study.patient_pk))!);
        work.patientIds.add(order.patient.patientId);
        work.before.linkedOrder = { orderPk: order.pk, studyInstanceUid: study.study_instance_uid, unmatched: await store.unmatchedRow(study.study_instance_uid) };
        if (study.accession_number !== order.accessionNumber) {
          await store.writeStudy({ ...study, accession_number: order.accessionNumber }, work.now);
          await work.keepServed(study.study_instance_uid);
          await store.serve(study.study_instance_uid, '', [served('AccessionNumber', STUDY_ATTRIBUTES.AccessionNumber, order.accessionNumber)], work.id, work.now);
        }
        // The RIS's link (what post-verification does): a study of another patient is linked with a wrong-patient flag.
        await this.#deps.ris.core.change(changeContext(actor, actorName(actor), reason), (unit) => this.#deps.ris.orders.linkStudy(unit, order, study.study_instance_uid, 'accession'),
          { store: ris, audits: work.audits });
        return;
      }
    }
  }

  async #moveStudy(work: Work, study: StudyRow, from: PatientRow, to: PatientRow): Promise<void> {
    work.keepStudy(study);
    work.keepPatient(from);
    work.keepPatient(to);
    await work.store.writeStudy({ ...study, patient_pk: to.pk }, work.now);
    await work.servePatient(study.study_instance_uid, to);
  }

  /** The index patient a study goes to: found, or made from the demographics given (then removed again by the undo). */
  async #targetPatient(work: Work, key: PatientKey & { patientName?: string; patientBirthDate?: string; patientSex?: string }): Promise<PatientRow> {
    if (!key || typeof key.patientId !== 'string' || key.patientId === '') throw new AtriumError('invalid-input', 'the target patient needs a patientId');
    const issuer = key.issuerOfPatientId ?? '';
    const found = await work.store.patient(key.patientId, issuer);
    if (found) return found;
    const given = { PatientID: key.patientId, IssuerOfPatientID: issuer, PatientName: key.patientName ?? '', PatientBirthDate: key.patientBirthDate ?? '', PatientSex: key.patientSex ?? '' };
    checkedAttributes(given, PATIENT_ATTRIBUTES);
    const row = {
      patient_id: key.patientId, issuer_of_patient_id: issuer, patient_name: key.patientName || null, patient_birth_date: key.patientBirthDate || null, patient_sex: key.patientSex || null,
    };
    const pk = await work.store.insertPatient(row, work.now);
    (work.before.createdPatients ??= []).push(pk);
    return { pk, ...row };
  }
}

function checkReason(reason: unknown): asserts reason is string {
  if (typeof reason !== 'string' || reason.trim() === '') throw new AtriumError('invalid-input', 'a reason is required for every correction and undo');
  if (reason.length > MAX_REASON) throw new AtriumError('invalid-input', `the reason is longer than ${MAX_REASON} characters`);
}

/** The attributes given, checked against the names a correction may set and against their VRs (the values are spliced into served objects). */
function checkedAttributes<K extends string>(given: Partial<Record<K, string>> | undefined, allowed: Record<K, { tag: string }>): K[] {
  if (!given || typeof given !== 'object' || Object.keys(given).length === 0) throw new AtriumError('invalid-input', `name the attributes to set: ${Object.keys(allowed).join(', ')}`);
  const unknown = Object.keys(given).filter((k) => !(k in allowed));
  if (unknown.length) throw new AtriumError('invalid-input', `${unknown.join(', ')}: not corrected here (allowed: ${Object.keys(allowed).join(', ')})`);
  try {
    attributeChanges(given as Record<string, unknown>);
  } catch (error) {
    if (error instanceof AttributeCorrectionError) throw new AtriumError('invalid-input', error.message);
    throw error;
  }
  return Object.keys(given) as K[];
}

async function mustStudy(store: CorrectionStore, uid: string): Promise<StudyRow> {
  const study = typeof uid === 'string' ? await store.study(uid) : null;
  if (!study) throw new AtriumError('not-found', `no study ${uid}`);
  return study;
}

async function mustPatient(store: CorrectionStore, key: PatientKey): Promise<PatientRow> {
  if (!key || typeof key.patientId !== 'string') throw new AtriumError('invalid-input', 'a patient is named by patientId (and issuerOfPatientId)');
  const patient = await store.patient(key.patientId, key.issuerOfPatientId ?? '');
  if (!patient) throw new AtriumError('not-found', `no patient ${key.patientId} (issuer "${key.issuerOfPatientId ?? ''}")`);
  return patient;
}

/** The rows the snapshot names, as they are now: the record's "after". */
async function snapshotNow(store: CorrectionStore, before: Snapshot): Promise<Snapshot> {
  const patients = (await Promise.all(before.patients.map((p) => store.patientByPk(p.pk)))).filter((p): p is PatientRow => p !== null);
  const studies = (await Promise.all(before.studies.map((s) => store.studyByPk(s.pk)))).filter((s): s is StudyRow => s !== null);
  const series = (await Promise.all(before.series.map((s) => store.series(s.series_instance_uid)))).filter((s) => s !== null);
  const served = await Promise.all(before.served.map(async (s) => ({ study: s.study, series: s.series, row: await store.served(s.study, s.series) })));
  return { patients, studies, series, served };
}

async function emitCorrected(tx: Transaction<any>, id: number, kind: string, studies: string[], patientIds: string[], undone: boolean, actor: string, reason: string, now: string): Promise<void> {
  await emit(tx, {
    type: 'IdentityCorrected',
    payload: { correctionId: id, kind, studyInstanceUid: studies[0], studyInstanceUids: studies, patientIds, undone, actor, reason },
  }, now);
}

function actorName(actor: Actor): string {
  return actor.principal.id ?? actor.principal.displayName ?? actor.principal.kind;
}

function changeContext(actor: Actor, name: string, reason?: string): ChangeContext {
  return { source: { kind: 'user', ref: reason ? `${name}: ${reason}`.slice(0, 200) : name }, principal: actor.principal, interface: actor.interface, origin: actor.origin ?? null };
}
