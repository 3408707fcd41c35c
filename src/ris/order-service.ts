import type { Logger } from 'pino';
import { AtriumError } from '../errors.ts';
import { generateUid, isValidUid } from '../dicom/uid.ts';
import { compareIdentity } from '../dicom/patient-identity.ts';
import type { Page, Paged } from '../ports/index-store.ts';
import {
  STATUS_RANK, type ChangeSource, type IdentityMismatch, type LinkedStudy, type Order, type OrderChange, type OrderDetail, type OrderFilter, type OrderInput,
  type OrderStatus, type Patient, type PatientIdentity, type ScheduledStepFilter, type ScheduledStepView, type StepStatus,
} from './model.ts';
import type { ChangeContext, RisCore, RisUnit } from './ris-context.ts';

export type OrderKey = { accessionNumber: string } | { placerOrderNumber: string } | { fillerOrderNumber: string } | { studyInstanceUid: string } | { pk: number };

/** A procedure step transition an MPPS (or a technologist by hand) reports. */
export interface StepTransition {
  /** Which order: its accession number or the Study Instance UID it was given (MPPS Scheduled Step Attributes). */
  accessionNumber?: string;
  studyInstanceUid?: string;
  /** The scheduled step; absent: every open step of the order (an unscheduled MPPS for the whole order). */
  stepId?: string | null;
  status: 'IN PROGRESS' | 'COMPLETED' | 'DISCONTINUED';
  /** Free text for the timeline: the discontinuation reason, the performed series ... */
  detail?: string | null;
}

const STEP_TO_ORDER: Record<StepTransition['status'], OrderStatus> = { 'IN PROGRESS': 'in-progress', COMPLETED: 'completed', DISCONTINUED: 'discontinued' };
const ENDED: readonly OrderStatus[] = ['cancelled', 'discontinued'];

/**
 * Orders (one requested procedure each) with their scheduled procedure steps and status timeline. Each
 * change records a timeline entry with its source; the order's status is the furthest reached.
 */
export class OrderService {
  readonly #core: RisCore;
  readonly #log: Logger | null;

  constructor(core: RisCore, log: Logger | null = null) {
    this.#core = core;
    this.#log = log;
  }

  /** A new order (ORM/OMI NW, or by hand) for a patient the store knows. */
  async place(unit: RisUnit, input: OrderInput, known?: Patient): Promise<Order> {
    // `known`: the patient the caller has just read or written in this unit (an ORM NW's PID), not read again.
    const patient = known && known.patientId === input.patient.patientId && known.issuerOfPatientId === input.patient.issuerOfPatientId
      ? known : await unit.store.findPatient(input.patient.patientId, input.patient.issuerOfPatientId);
    if (!patient) throw new AtriumError('not-found', `no patient ${input.patient.patientId} (issuer "${input.patient.issuerOfPatientId}")`, { key: 'patient' });
    if (patient.status === 'merged') throw new AtriumError('conflict', `patient ${patient.patientId} was merged into ${patient.mergedInto?.patientId}`, { key: 'patient' });
    if (!input.accessionNumber) throw new AtriumError('invalid-input', 'an order needs an accession number', { key: 'accessionNumber' });
    if (await unit.store.findOrder({ accessionNumber: input.accessionNumber })) {
      throw new AtriumError('conflict', `accession number ${input.accessionNumber} is another order's`, { key: 'accessionNumber' });
    }
    if (input.studyInstanceUid && !isValidUid(input.studyInstanceUid)) throw new AtriumError('invalid-input', `Study Instance UID "${input.studyInstanceUid}" is not a valid UID`, { key: 'studyInstanceUid' });
    if (input.studyInstanceUid && await unit.store.findOrder({ studyInstanceUid: input.studyInstanceUid })) {
      throw new AtriumError('conflict', `Study Instance UID ${input.studyInstanceUid} is another order's`, { key: 'studyInstanceUid' });
    }
    const stepIds = new Set<string>();
    for (const step of input.steps) {
      if (stepIds.has(step.stepId)) throw new AtriumError('invalid-input', `scheduled procedure step ${step.stepId} is given twice`, { key: 'steps' });
      stepIds.add(step.stepId);
    }
    // Written with the status it reaches at once (scheduled when a step has a start), both timeline entries
    // kept: the same rows and event as an insert as 'ordered' then a move to 'scheduled', one UPDATE fewer.
    const scheduled = input.steps.some((s) => s.startDate);
    const pk = await unit.store.insertOrder(patient.pk, { ...input, studyInstanceUid: input.studyInstanceUid || generateUid(), priority: input.priority ?? 'ROUTINE' }, scheduled ? 'scheduled' : 'ordered', unit.now);
    let order = (await unit.store.getOrder(pk))!;
    const source = unit.context.source;
    await unit.store.addTimeline(pk, { status: 'ordered', stepId: null, source, detail: null, at: unit.now });
    if (scheduled) {
      await unit.store.addTimeline(pk, { status: 'scheduled', stepId: null, source, detail: null, at: unit.now });
      await unit.store.emitOrderStatus(order, 'scheduled', source, unit.now);
    }
    unit.audit('order-record', `order ${order.accessionNumber} placed`, { patientIds: [patient.patientId], studies: [studyRef(order)] });
    // Post-verification in the other order: images that came before their order are linked now.
    for (const study of await unit.store.unmatchedByAccession(order.accessionNumber)) {
      order = await this.linkStudy(unit, order, study.studyInstanceUid, 'accession');
    }
    return order;
  }

  /** XO, or an edit by hand: what is given changes; steps given replace theirs, steps left out and not started are cancelled. */
  async change(unit: RisUnit, key: OrderKey, change: OrderChange): Promise<Order> {
    const order = await this.#require(unit, key);
    if (ENDED.includes(order.status)) throw new AtriumError('conflict', `order ${order.accessionNumber} is ${order.status}`, { key: 'order' });
    await unit.store.updateOrder(order.pk, change, unit.now);
    let changed = (await unit.store.getOrder(order.pk))!;
    if (changed.status === 'ordered' && changed.steps.some((s) => s.startDate && s.status === 'SCHEDULED')) changed = await this.#transition(unit, changed, 'scheduled', null, null);
    unit.audit('order-record', `order ${order.accessionNumber} changed: ${Object.keys(change).join(', ')}`, { patientIds: [order.patient.patientId], studies: [studyRef(order)] });
    return changed;
  }

  /** CA: the order will not be done. Refused once the procedure has started (use discontinue). */
  async cancel(unit: RisUnit, key: OrderKey, reason: string | null): Promise<Order> {
    const order = await this.#require(unit, key);
    if (order.status === 'cancelled') return order;
    if (STATUS_RANK[order.status] >= STATUS_RANK['in-progress']) {
      throw new AtriumError('conflict', `order ${order.accessionNumber} is ${order.status}: it can no longer be cancelled`, { key: 'order' });
    }
    await unit.store.setStepStatus(order.pk, null, 'CANCELLED', unit.now);
    const cancelled = await this.#transition(unit, order, 'cancelled', null, reason);
    unit.audit('order-record', `order ${order.accessionNumber} cancelled${reason ? `: ${reason}` : ''}`, { patientIds: [order.patient.patientId], studies: [studyRef(order)] });
    return cancelled;
  }

  /** DC: the order is stopped, started or not. */
  async discontinue(unit: RisUnit, key: OrderKey, reason: string | null): Promise<Order> {
    const order = await this.#require(unit, key);
    if (order.status === 'discontinued') return order;
    if (order.status === 'cancelled' || STATUS_RANK[order.status] >= STATUS_RANK.completed) {
      throw new AtriumError('conflict', `order ${order.accessionNumber} is ${order.status}: it can no longer be discontinued`, { key: 'order' });
    }
    await unit.store.setStepStatus(order.pk, null, 'DISCONTINUED', unit.now);
    const stopped = await this.#transition(unit, order, 'discontinued', null, reason);
    unit.audit('order-record', `order ${order.accessionNumber} discontinued${reason ? `: ${reason}` : ''}`, { patientIds: [order.patient.patientId], studies: [studyRef(order)] });
    return stopped;
  }

  /** A status the RIS reports (ORM SC): recorded on the timeline, the order's status moving forward only. */
  async reportStatus(unit: RisUnit, key: OrderKey, status: OrderStatus, detail: string | null): Promise<Order> {
    if (status === 'cancelled') return await this.cancel(unit, key, detail);
    if (status === 'discontinued') return await this.discontinue(unit, key, detail);
    const order = await this.#require(unit, key);
    if (ENDED.includes(order.status)) throw new AtriumError('conflict', `order ${order.accessionNumber} is ${order.status}`, { key: 'order' });
    const stepStatus: Partial<Record<OrderStatus, StepStatus>> = { arrived: 'ARRIVED', 'in-progress': 'IN PROGRESS', completed: 'COMPLETED' };
    if (stepStatus[status]) await unit.store.setStepStatus(order.pk, null, stepStatus[status]!, unit.now);
    const moved = await this.#transition(unit, order, status, null, detail);
    unit.audit('order-record', `order ${order.accessionNumber} status ${status}`, { patientIds: [order.patient.patientId], studies: [studyRef(order)] });
    return moved;
  }

  /**
   * For the MPPS SCP: a procedure step went IN PROGRESS, COMPLETED or DISCONTINUED. The step's status and
   * the order's follow, the timeline records the source (kind 'mpps', ref the MPPS SOP Instance UID).
   */
  async recordStepStatus(context: ChangeContext, transition: StepTransition): Promise<Order> {
    return await this.#core.change(context, async (unit) => {
      const key: OrderKey = transition.accessionNumber ? { accessionNumber: transition.accessionNumber }
        : transition.studyInstanceUid ? { studyInstanceUid: transition.studyInstanceUid } : (() => { throw new AtriumError('invalid-input', 'an accession number or a Study Instance UID names the order'); })();
      const order = await this.#require(unit, key);
      if (ENDED.includes(order.status)) throw new AtriumError('conflict', `order ${order.accessionNumber} is ${order.status}`, { key: 'order' });
      const stepId = transition.stepId ?? null;
      if (stepId !== null && !order.steps.some((s) => s.stepId === stepId)) throw new AtriumError('not-found', `order ${order.accessionNumber} has no step ${stepId}`, { key: 'step' });
      await unit.store.setStepStatus(order.pk, stepId, transition.status, unit.now);
      const status = STEP_TO_ORDER[transition.status];
      const after = (await unit.store.getOrder(order.pk))!;
      // The order completes when every step has ended; one step discontinued among others completed is completed.
      const open = after.steps.some((s) => s.status !== 'COMPLETED' && s.status !== 'DISCONTINUED' && s.status !== 'CANCELLED');
      const orderStatus: OrderStatus = status === 'in-progress' || open ? 'in-progress'
        : after.steps.some((s) => s.status === 'COMPLETED') ? 'completed' : 'discontinued';
      const moved = await this.#transition(unit, after, orderStatus, stepId, transition.detail ?? `step ${stepId ?? '(all)'} ${transition.status}`);
      unit.audit('order-record', `order ${order.accessionNumber} step ${stepId ?? '(all)'} ${transition.status}`, { patientIds: [order.patient.patientId], studies: [studyRef(order)] });
      return moved;
    });
  }

  /** For the Modality Worklist SCP: open scheduled steps with their order and patient (see docs/ris.md). */
  async listScheduledSteps(filter: ScheduledStepFilter): Promise<ScheduledStepView[]> {
    return await this.#core.store.scheduledSteps(filter);
  }

  /**
   * Links an archived study to the order (image arrival); the 'arrived' entry is added once per order.
   * Post-verification: the identity the study's images carry (its index patient) is compared with the
   * order's patient; a different Patient ID, or a different non-empty Issuer of Patient ID, is a
   * wrong-patient flag: recorded on the link and as a flagged timeline entry, logged as a warning. The
   * link is kept and nothing is rewritten (someone has to look); a study is never matched by name.
   */
  async linkStudy(unit: RisUnit, order: Order, studyInstanceUid: string, matchedBy: LinkedStudy['matchedBy']): Promise<Order> {
    const identity = await unit.store.studyIdentity(studyInstanceUid);
    const mismatch = identity ? identityMismatch(order, studyInstanceUid, matchedBy, identity, unit.now) : null;
    const linked = await unit.store.linkStudy(order.pk, {
      studyInstanceUid, matchedBy, identity: identity ?? { patientId: null, issuerOfPatientId: null, patientName: null }, mismatch,
    }, unit.now);
    await unit.store.removeUnmatched(studyInstanceUid);
    if (!linked) return order;
    const image: ChangeSource = { kind: 'image', ref: studyInstanceUid };
    let current = order;
    const timeline = await unit.store.timeline(order.pk);
    if (!timeline.some((t) => t.status === 'arrived' && t.flag === null) && !ENDED.includes(order.status)) {
      if (STATUS_RANK[order.status] < STATUS_RANK.arrived) await unit.store.setStepStatus(order.pk, null, 'ARRIVED', unit.now);
      current = await this.#transition(unit, order, 'arrived', null, `study ${studyInstanceUid} by ${matchedBy}`, image, { milestone: true });
    }
    if (mismatch) {
      const detail = describeMismatch(mismatch);
      await unit.store.addTimeline(order.pk, { status: current.status, stepId: null, source: image, detail, at: unit.now, flag: 'identity-mismatch' });
      const patientIds = [...new Set([order.patient.patientId, ...(mismatch.study.patientId ? [mismatch.study.patientId] : [])])];
      unit.audit('order-record', `order ${order.accessionNumber}: wrong-patient flag, ${detail}`,
        { patientIds, studies: [{ studyInstanceUid, patientId: mismatch.study.patientId ?? '', accessionNumber: order.accessionNumber }] });
      this.#log?.warn({ accessionNumber: order.accessionNumber, studyInstanceUid, matchedBy, differs: mismatch.differs, order: mismatch.order, study: mismatch.study },
        `wrong-patient flag: study ${studyInstanceUid} matched order ${order.accessionNumber} by ${matchedBy} but carries another patient`);
    }
    return current;
  }

  /**
   * A timeline entry; the order's status moves when it is a forward move, and then an OrderStatusChanged
   * event is written. A `milestone` (images arrived) is an event also when the status has gone past it
   * (the modality's MPPS IN PROGRESS usually comes before its images), as long as the procedure is not
   * over: the RIS learns that the images came; after completed, its IP would set the RIS back.
   */
  async #transition(unit: RisUnit, order: Order, status: OrderStatus, stepId: string | null, detail: string | null, source: ChangeSource = unit.context.source, options: { milestone?: boolean } = {}): Promise<Order> {
    await unit.store.addTimeline(order.pk, { status, stepId, source, detail, at: unit.now });
    const forward = status === 'cancelled' || status === 'discontinued' || STATUS_RANK[status] > STATUS_RANK[order.status];
    if (!forward || ENDED.includes(order.status)) {
      if (options.milestone && !ENDED.includes(order.status) && STATUS_RANK[order.status] < STATUS_RANK.completed) await unit.store.emitOrderStatus(order, status, source, unit.now);
      return order;
    }
    await unit.store.setOrderStatus(order.pk, status, unit.now);
    const updated = { ...order, status, updatedAt: unit.now };
    await unit.store.emitOrderStatus(updated, status, source, unit.now);
    return updated;
  }

  async #require(unit: RisUnit, key: OrderKey): Promise<Order> {
    const order = 'pk' in key ? await unit.store.getOrder(key.pk) : await unit.store.findOrder(key);
    if (!order) throw new AtriumError('not-found', `no order with ${Object.entries(key).map(([k, v]) => `${k} ${v}`).join(', ')}`, { key: 'order' });
    return order;
  }

  async find(key: OrderKey): Promise<Order | null> {
    return 'pk' in key ? await this.#core.store.getOrder(key.pk) : await this.#core.store.findOrder(key);
  }

  // The same operations as one change each, for REST and other callers outside an HL7 message.
  async placeOrder(context: ChangeContext, input: OrderInput): Promise<Order> { return await this.#core.change(context, (u) => this.place(u, input)); }
  async changeOrder(context: ChangeContext, key: OrderKey, change: OrderChange): Promise<Order> { return await this.#core.change(context, (u) => this.change(u, key, change)); }
  async cancelOrder(context: ChangeContext, key: OrderKey, reason: string | null): Promise<Order> { return await this.#core.change(context, (u) => this.cancel(u, key, reason)); }
  async discontinueOrder(context: ChangeContext, key: OrderKey, reason: string | null): Promise<Order> { return await this.#core.change(context, (u) => this.discontinue(u, key, reason)); }

  async list(filter: OrderFilter, page: Page): Promise<Paged<Order>> { return await this.#core.store.listOrders(filter, page); }
  async detail(pk: number): Promise<OrderDetail | null> { return await this.#core.store.orderDetail(pk); }
}

/**
 * The wrong-patient flag of a study linked to `order`, or null when its identity is the order patient's: the
 * Patient ID or the issuer differs, by the one identity comparison (src/dicom/patient-identity.ts) the
 * integrity monitor's identity-mismatch check also uses (which reports the other demographics as well).
 */
export function identityMismatch(order: Order, studyInstanceUid: string, matchedBy: LinkedStudy['matchedBy'], study: PatientIdentity, now: string): IdentityMismatch | null {
  const differences = compareIdentity(
    { patientId: order.patient.patientId, issuerOfPatientId: order.patient.issuerOfPatientId, patientName: order.patient.patientName, patientBirthDate: null, patientSex: null },
    { ...study, patientBirthDate: null, patientSex: null },
  );
  const differs = differences.map((d) => d.attribute).filter((a): a is IdentityMismatch['differs'][number] => a === 'patientId' || a === 'issuerOfPatientId');
  if (differs.length === 0) return null;
  return {
    studyInstanceUid, matchedBy, differs, linkedAt: now, study,
    order: { patientId: order.patient.patientId, issuerOfPatientId: order.patient.issuerOfPatientId || null, patientName: order.patient.patientName },
  };
}

function describeMismatch(m: IdentityMismatch): string {
  const who = (p: PatientIdentity) => `Patient ID ${p.patientId ?? '(none)'}${p.issuerOfPatientId ? ` (issuer ${p.issuerOfPatientId})` : ''}`;
  return `study ${m.studyInstanceUid}, matched by ${m.matchedBy === 'accession' ? 'accession number' : 'Study Instance UID'}, carries ${who(m.study)}${m.study.patientName ? ` ${m.study.patientName}` : ''}; the order's patient is ${who(m.order)}`;
}

export function studyRef(order: Order): { studyInstanceUid: string; patientId: string; accessionNumber: string } {
  return { studyInstanceUid: order.studyInstanceUid, patientId: order.patient.patientId, accessionNumber: order.accessionNumber };
}
