import type { AuditRecord, NewAuditRecord } from '../ports/audit-store.ts';
import type { Page, Paged } from '../ports/index-store.ts';
import type {
  ChangeSource, Hl7MessageFilter, Hl7MessageRecord, IdentityMismatch, LinkedStudy, Order, OrderChange, OrderDetail, OrderFilter, OrderInput, OrderStatus,
  Patient, PatientChange, PatientIdentity, PatientInput, Priority, ProcedureStep, Report, ReportInput, ScheduledStepFilter, ScheduledStepView, StepInput,
  StepStatus, TimelineEntry, TimelineFlag, UnmatchedStudy,
} from './model.ts';

/** A message row as first written (its ACK is set before the transaction commits). */
export interface NewHl7Message {
  sender: string;
  controlId: string | null;
  messageType: string | null;
  version: string | null;
  remoteAddress: string | null;
  raw: Buffer;
  text: string;
  ack: string;
  ackCode: 'AA' | 'AE' | 'AR';
  errorCode: string | null;
  errorLocation: string | null;
  errorText: string | null;
  patientId: string | null;
  accessionNumber: string | null;
  receivedAt: string;
}

export interface Hl7MessageOutcome {
  ack: string;
  ackCode: 'AA' | 'AE' | 'AR';
  errorCode: string | null;
  errorLocation: string | null;
  errorText: string | null;
  patientId: string | null;
  accessionNumber: string | null;
}

/** What a merge or identifier change moved, kept with it so that an administrator can undo it. */
export interface PatientChangeResult {
  change: PatientChange;
  /** Study Instance UIDs whose index patient changed. */
  studies: string[];
  orders: string[];
}

/**
 * The RIS tables, one implementation (sql-ris-store.ts) over SQLite and PostgreSQL. `transaction` gives a
 * store whose calls share one transaction: an HL7 message's effect, its log row and its events commit
 * together or not at all. The store also writes the index's patient attributes and the patient of index
 * studies (merges, demographics): the same transaction keeps the RIS and what C-FIND/QIDO show in step.
 */
export interface RisStore {
  transaction<T>(fn: (tx: RisStore) => Promise<T>): Promise<T>;
  /**
   * Inside a transaction: runs `fn` under a savepoint; when it throws, what it wrote is rolled back (the
   * transaction goes on, on PostgreSQL too) and the error rethrown. One HL7 message of a group commit each.
   */
  savepoint<T>(fn: () => Promise<T>): Promise<T>;

  findPatient(patientId: string, issuer: string): Promise<Patient | null>;
  getPatient(pk: number): Promise<Patient | null>;
  /** Creates or updates (given keys only); returns the patient and the names of what changed. */
  upsertPatient(input: PatientInput, now: string): Promise<{ patient: Patient; created: boolean; changed: string[] }>;
  listPatients(filter: { patientId?: string; patientName?: string; status?: 'active' | 'merged' }, page: Page): Promise<Paged<Patient>>;
  /** Copies the patient's demographics to the index's patient rows of the same ID (issuer equal, or empty in the images). */
  updateIndexPatient(patient: Patient): Promise<number>;
  /** A40: orders and index studies of `prior` move to `survivor`; `prior` becomes merged. */
  mergePatients(survivor: Patient, prior: Patient, source: ChangeSource, now: string): Promise<PatientChangeResult>;
  /** A47: `prior` is known as `next` from now on (its orders follow; index studies move to a patient row of the new ID). */
  changeIdentifier(prior: Patient, next: { patientId: string; issuerOfPatientId: string }, source: ChangeSource, now: string): Promise<PatientChangeResult>;
  patientChanges(patientPk: number): Promise<PatientChange[]>;
  getPatientChange(id: number): Promise<PatientChange | null>;
  undoPatientChange(id: number, by: string, now: string): Promise<PatientChangeResult>;

  insertOrder(patientPk: number, input: OrderInput & { studyInstanceUid: string; priority: Priority }, status: OrderStatus, now: string): Promise<number>;
  updateOrder(pk: number, change: OrderChange, now: string): Promise<void>;
  replaceSteps(orderPk: number, steps: StepInput[], status: StepStatus, now: string): Promise<void>;
  getOrder(pk: number): Promise<Order | null>;
  findOrder(key: { accessionNumber?: string; placerOrderNumber?: string; fillerOrderNumber?: string; studyInstanceUid?: string }): Promise<Order | null>;
  orderDetail(pk: number): Promise<OrderDetail | null>;
  listOrders(filter: OrderFilter, page: Page): Promise<Paged<Order>>;
  setOrderStatus(pk: number, status: OrderStatus, now: string): Promise<void>;
  setStepStatus(orderPk: number, stepId: string | null, status: StepStatus, now: string): Promise<number>;
  addTimeline(orderPk: number, entry: Omit<TimelineEntry, 'flag'> & { flag?: TimelineFlag | null; stepPk?: number | null }): Promise<void>;
  timeline(orderPk: number): Promise<TimelineEntry[]>;
  scheduledSteps(filter: ScheduledStepFilter): Promise<ScheduledStepView[]>;
  findStep(key: { stepId: string; accessionNumber?: string; studyInstanceUid?: string }): Promise<{ order: Order; step: ProcedureStep } | null>;

  insertReport(orderPk: number, order: Order, input: ReportInput, source: ChangeSource, now: string): Promise<Report>;
  currentReport(orderPk: number): Promise<Report | null>;
  listReports(filter: { accessionNumber?: string; status?: string }, page: Page): Promise<Paged<Report>>;
  getReport(id: number): Promise<Report | null>;

  /** Links a study to an order once, with the identity it carried and its wrong-patient flag; false when it was linked already. */
  linkStudy(orderPk: number, study: { studyInstanceUid: string; matchedBy: LinkedStudy['matchedBy']; identity: PatientIdentity; mismatch: IdentityMismatch | null }, now: string): Promise<boolean>;
  /** The patient identity of an index study (what its images carry, as indexed); null when the index has no such study. */
  studyIdentity(studyInstanceUid: string): Promise<PatientIdentity | null>;
  isStudyKnown(studyInstanceUid: string): Promise<'linked' | 'unmatched' | null>;
  recordUnmatched(study: { studyInstanceUid: string; accessionNumber: string | null; patientId: string | null }, now: string): Promise<void>;
  removeUnmatched(studyInstanceUid: string): Promise<void>;
  unmatchedByAccession(accessionNumber: string): Promise<UnmatchedStudy[]>;
  listUnmatched(page: Page): Promise<Paged<UnmatchedStudy>>;

  /** Inserts the message row; throws a unique violation (isUniqueViolation) when (sender, control ID) is there already. */
  insertMessage(message: NewHl7Message): Promise<number>;
  setMessageOutcome(id: number, outcome: Hl7MessageOutcome, replay?: { by: string; at: string }): Promise<void>;
  findMessage(sender: string, controlId: string): Promise<Hl7MessageRecord | null>;
  getMessage(id: number): Promise<(Hl7MessageRecord & { raw: Buffer }) | null>;
  listMessages(filter: Hl7MessageFilter, page: Page): Promise<Paged<Hl7MessageRecord>>;

  /** Writes audit records in this transaction (the change they report commits with them). */
  appendAudit(records: readonly NewAuditRecord[]): Promise<AuditRecord[]>;

  /** Writes an event to the outbox in this transaction. */
  emitOrderStatus(order: Order, status: OrderStatus, source: ChangeSource, now: string): Promise<void>;
  /** Writes ReportFinal to the outbox in this transaction (a report version with status F or C). */
  emitReportFinal(report: Report, order: Order, now: string): Promise<void>;
  /** The CriticalResult event of a report version marked critical, in the report's transaction. */
  emitCriticalResult(report: Report, order: Order, now: string): Promise<void>;
  /** Writes PatientMerged to the outbox in this transaction: a merge (A40, REST) done, or undone. */
  emitPatientMerged(change: PatientChange, undone: boolean, source: ChangeSource, now: string): Promise<void>;
}

export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e?.code === '23505' || /UNIQUE constraint failed/.test(e?.message ?? '');
}
