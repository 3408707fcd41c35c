import { AtriumError } from '../errors.ts';
import type { Page, Paged } from '../ports/index-store.ts';
import type { Patient, PatientChange, PatientInput } from './model.ts';
import type { RisCore, ChangeContext, RisUnit } from './ris-context.ts';
import type { PatientChangeResult, RisStore } from './ris-store.ts';
import type { AuditEventInput } from '../ports/audit-store.ts';

export interface PatientKey {
  patientId: string;
  issuerOfPatientId: string;
}

/**
 * Patient identity as the RIS/ADT gives it. Demographic changes are copied to the index's patient rows,
 * which is what C-FIND and QIDO-RS answer from; stored objects are never rewritten (docs/ris.md,
 * "What the index shows and what is served").
 */
export class PatientService {
  readonly #core: RisCore;

  constructor(core: RisCore) {
    this.#core = core;
  }

  /** Creates the patient or updates the demographics given (A01/A04/A05/A08, or by hand). */
  async upsert(unit: RisUnit, input: PatientInput): Promise<Patient> {
    const { patient, created, changed } = await unit.store.upsertPatient(input, unit.now);
    if (patient.status === 'merged') throw new AtriumError('conflict', `patient ${patient.patientId} was merged into ${patient.mergedInto?.patientId}: update the surviving patient`, { reason: 'merged' });
    if (created || changed.some((c) => c !== 'otherIdentifiers')) await unit.store.updateIndexPatient(patient);
    if (created) unit.audit('update', `patient created`, { patientIds: [patient.patientId] });
    else if (changed.length) unit.audit('update', `patient demographics updated: ${changed.join(', ')}`, { patientIds: [patient.patientId] });
    return patient;
  }

  /** A40: `prior`'s orders and studies move to `survivor` (created or updated from `survivor`). */
  async merge(unit: RisUnit, survivorInput: PatientInput, prior: PatientKey): Promise<PatientChangeResult> {
    const priorPatient = await unit.store.findPatient(prior.patientId, prior.issuerOfPatientId);
    if (!priorPatient) throw new AtriumError('not-found', `no patient ${prior.patientId} (issuer "${prior.issuerOfPatientId}") to merge`, { key: 'prior' });
    if (priorPatient.status === 'merged') throw new AtriumError('conflict', `patient ${prior.patientId} was merged already`, { key: 'prior' });
    if (priorPatient.patientId === survivorInput.patientId && priorPatient.issuerOfPatientId === survivorInput.issuerOfPatientId) {
      throw new AtriumError('invalid-input', 'a patient cannot be merged into itself', { key: 'prior' });
    }
    const survivor = await this.upsert(unit, survivorInput);
    const result = await unit.store.mergePatients(survivor, priorPatient, unit.context.source, unit.now);
    await unit.store.emitPatientMerged(result.change, false, unit.context.source, unit.now);
    unit.audit('update', `patient ${prior.patientId} merged into ${survivor.patientId}: ${result.orders.length} orders, ${result.studies.length} studies moved (change ${result.change.id})`, {
      patientIds: [survivor.patientId, prior.patientId], studies: result.studies.map((uid) => ({ studyInstanceUid: uid, patientId: survivor.patientId })),
    });
    return result;
  }

  /** A47: the patient known as `prior` is `next` from now on. */
  async changeIdentifier(unit: RisUnit, prior: PatientKey, next: PatientKey): Promise<PatientChangeResult> {
    const priorPatient = await unit.store.findPatient(prior.patientId, prior.issuerOfPatientId);
    if (!priorPatient) throw new AtriumError('not-found', `no patient ${prior.patientId} (issuer "${prior.issuerOfPatientId}")`, { key: 'prior' });
    if (await unit.store.findPatient(next.patientId, next.issuerOfPatientId)) {
      throw new AtriumError('conflict', `patient ${next.patientId} exists already: use a merge (A40)`, { key: 'next' });
    }
    const result = await unit.store.changeIdentifier(priorPatient, next, unit.context.source, unit.now);
    unit.audit('update', `patient identifier ${prior.patientId} changed to ${next.patientId}: ${result.studies.length} studies moved (change ${result.change.id})`, {
      patientIds: [next.patientId, prior.patientId], studies: result.studies.map((uid) => ({ studyInstanceUid: uid, patientId: next.patientId })),
    });
    return result;
  }

  /**
   * An administrator's undo of a merge or identifier change: orders and studies go back where they were.
   * `within`: the transaction of a caller's change to join (an identity correction's undo, src/quality/corrections/).
   */
  async undoChange(context: ChangeContext, changeId: number, within?: { store: RisStore; audits: AuditEventInput[] }): Promise<PatientChangeResult> {
    return await this.#core.change(context, async (unit) => {
      const result = await unit.store.undoPatientChange(changeId, context.principal.id ?? context.principal.kind, unit.now);
      const prior = await unit.store.findPatient(result.change.prior.patientId, result.change.prior.issuerOfPatientId);
      if (prior) await unit.store.updateIndexPatient(prior);
      if (result.change.kind === 'merge') await unit.store.emitPatientMerged(result.change, true, context.source, unit.now);
      unit.audit('update', `patient change ${changeId} (${result.change.kind} of ${result.change.prior.patientId} into ${result.change.survivor.patientId}) undone: ${result.orders.length} orders, ${result.studies.length} studies moved back`, {
        patientIds: [result.change.survivor.patientId, result.change.prior.patientId],
        studies: result.studies.map((uid) => ({ studyInstanceUid: uid, patientId: result.change.prior.patientId })),
      });
      return result;
    }, within);
  }

  async upsertPatient(context: ChangeContext, input: PatientInput): Promise<Patient> {
    return await this.#core.change(context, (unit) => this.upsert(unit, input));
  }

  async list(filter: { patientId?: string; patientName?: string; status?: 'active' | 'merged' }, page: Page): Promise<Paged<Patient>> {
    return await this.#core.store.listPatients(filter, page);
  }

  async get(key: PatientKey): Promise<(Patient & { history: PatientChange[] }) | null> {
    const patient = await this.#core.store.findPatient(key.patientId, key.issuerOfPatientId);
    return patient ? { ...patient, history: await this.#core.store.patientChanges(patient.pk) } : null;
  }

  async getByPk(pk: number): Promise<(Patient & { history: PatientChange[] }) | null> {
    const patient = await this.#core.store.getPatient(pk);
    return patient ? { ...patient, history: await this.#core.store.patientChanges(patient.pk) } : null;
  }
}
