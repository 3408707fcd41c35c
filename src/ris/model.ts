/**
 * The RIS domain as the services speak it (no transport, no SQL). Shaped so that FHIR ServiceRequest
 * (an Order), DiagnosticReport (a Report) and Patient can be served from it later.
 */

export type Priority = 'STAT' | 'ASAP' | 'URGENT' | 'ROUTINE';
export const PRIORITIES: readonly Priority[] = ['STAT', 'ASAP', 'URGENT', 'ROUTINE'];

/**
 * An order's status. The order's `status` is the furthest it has reached (by STATUS_RANK): images arriving
 * after the final report are on the timeline but do not take the status back. `cancelled` and
 * `discontinued` end an order.
 */
export type OrderStatus =
  | 'ordered' | 'scheduled' | 'arrived' | 'in-progress' | 'completed' | 'discontinued'
  | 'preliminary-report' | 'final-report' | 'amended' | 'cancelled';
export const ORDER_STATUSES: readonly OrderStatus[] = [
  'ordered', 'scheduled', 'arrived', 'in-progress', 'completed', 'discontinued', 'preliminary-report', 'final-report', 'amended', 'cancelled',
];
export const STATUS_RANK: Readonly<Record<OrderStatus, number>> = {
  ordered: 0, scheduled: 1, arrived: 2, 'in-progress': 3, completed: 4, discontinued: 4,
  'preliminary-report': 5, 'final-report': 6, amended: 7, cancelled: 8,
};

/** A scheduled procedure step's status (DICOM Scheduled Procedure Step Status, plus ours for the timeline). */
export type StepStatus = 'SCHEDULED' | 'ARRIVED' | 'READY' | 'IN PROGRESS' | 'COMPLETED' | 'DISCONTINUED' | 'CANCELLED';
/** Steps a worklist offers: not completed, discontinued or cancelled. */
export const OPEN_STEP_STATUSES: readonly StepStatus[] = ['SCHEDULED', 'ARRIVED', 'READY', 'IN PROGRESS'];

/** Who caused a change: the timeline's source, which turnaround times are computed from. */
export type SourceKind = 'hl7' | 'mpps' | 'image' | 'user' | 'system';
export interface ChangeSource {
  kind: SourceKind;
  /** hl7: `<sender>:<MSH-10>`; mpps: the MPPS SOP Instance UID; image: the Study Instance UID; user: the user name. */
  ref: string | null;
}

export interface Code {
  code: string;
  scheme: string;
  meaning: string;
}

export interface Identifier {
  id: string;
  issuer: string;
  /** CX-5 identifier type code (MR, PI, SS ...), '' when not given. */
  type: string;
}

export interface PatientInput {
  patientId: string;
  issuerOfPatientId: string;
  /** DICOM PN form (Family^Given^Middle^Prefix^Suffix). null: unknown; undefined: unchanged on update. */
  patientName?: string | null;
  patientBirthDate?: string | null;
  patientSex?: string | null;
  otherIdentifiers?: Identifier[];
}

export interface Patient {
  pk: number;
  patientId: string;
  issuerOfPatientId: string;
  patientName: string | null;
  patientBirthDate: string | null;
  patientSex: string | null;
  otherIdentifiers: Identifier[];
  status: 'active' | 'merged';
  mergedInto: { patientId: string; issuerOfPatientId: string } | null;
  createdAt: string;
  updatedAt: string;
}

export interface PatientChange {
  id: number;
  kind: 'merge' | 'identifier-change';
  survivor: { patientId: string; issuerOfPatientId: string };
  prior: { patientId: string; issuerOfPatientId: string };
  movedOrders: number;
  movedStudies: string[];
  source: ChangeSource;
  createdAt: string;
  undoneAt: string | null;
  undoneBy: string | null;
}

export interface StepInput {
  stepId: string;
  modality?: string | null;
  stationAeTitle?: string | null;
  stationName?: string | null;
  location?: string | null;
  /** DICOM DA (YYYYMMDD) and TM (HHMMSS). */
  startDate?: string | null;
  startTime?: string | null;
  description?: string | null;
  performingPhysician?: string | null;
  protocolCodes?: Code[];
}

export interface ProcedureStep {
  pk: number;
  stepId: string;
  modality: string | null;
  stationAeTitle: string | null;
  stationName: string | null;
  location: string | null;
  startDate: string | null;
  startTime: string | null;
  description: string | null;
  performingPhysician: string | null;
  protocolCodes: Code[];
  status: StepStatus;
  updatedAt: string;
}

export interface OrderInput {
  patient: { patientId: string; issuerOfPatientId: string };
  placerOrderNumber?: string | null;
  fillerOrderNumber?: string | null;
  accessionNumber: string;
  requestedProcedureId?: string | null;
  requestedProcedureCode?: Code | null;
  requestedProcedureDescription?: string | null;
  priority?: Priority;
  screening?: boolean;
  reason?: string | null;
  referringPhysician?: string | null;
  orderingPhysician?: string | null;
  /** Given by the placer (IPC-3, ZDS-1); else Atrium assigns one. */
  studyInstanceUid?: string | null;
  steps: StepInput[];
}

/** What a change (XO, or an edit by hand) may change; absent keys are kept. */
export type OrderChange = Partial<Omit<OrderInput, 'patient' | 'accessionNumber' | 'studyInstanceUid' | 'steps'>> & { steps?: StepInput[] };

/**
 * A finding recorded on the timeline, not a status transition (its `status` is the order's at the time):
 * `identity-mismatch`, a study linked to the order carries another patient's Patient ID or issuer;
 * `prior-prefetch`, what the prior prefetch found and fetched for the order (src/prefetch/, source `system`).
 * Turnaround times read the entries whose flag is null.
 */
export type TimelineFlag = 'identity-mismatch' | 'prior-prefetch';

export interface TimelineEntry {
  status: OrderStatus;
  stepId: string | null;
  source: ChangeSource;
  detail: string | null;
  at: string;
  /** null: a status transition; else the finding this entry records. */
  flag: TimelineFlag | null;
}

export interface Order {
  pk: number;
  patient: { patientId: string; issuerOfPatientId: string; patientName: string | null; patientBirthDate: string | null; patientSex: string | null };
  placerOrderNumber: string | null;
  fillerOrderNumber: string | null;
  accessionNumber: string;
  requestedProcedureId: string | null;
  requestedProcedureCode: Code | null;
  requestedProcedureDescription: string | null;
  priority: Priority;
  screening: boolean;
  reason: string | null;
  referringPhysician: string | null;
  orderingPhysician: string | null;
  studyInstanceUid: string;
  status: OrderStatus;
  steps: ProcedureStep[];
  createdAt: string;
  updatedAt: string;
}

export interface OrderDetail extends Order {
  timeline: TimelineEntry[];
  studies: LinkedStudy[];
  reports: Report[];
  /** The wrong-patient flags of the linked studies; null when every study carries the order's patient. */
  identityMismatch: IdentityMismatch[] | null;
}

/** A patient's identity as a study (its index patient) or an order carries it. */
export interface PatientIdentity {
  patientId: string | null;
  issuerOfPatientId: string | null;
  patientName: string | null;
}

export interface LinkedStudy {
  studyInstanceUid: string;
  matchedBy: 'accession' | 'study-uid';
  /** The study's Patient ID or issuer differs from the order's patient's: flagged, not fixed. */
  patientMismatch: boolean;
  /** The identity the study carried when it was linked (the index patient of its images). */
  studyPatientId: string | null;
  studyIssuerOfPatientId: string | null;
  studyPatientName: string | null;
  linkedAt: string;
}

/**
 * Post-verification's wrong-patient flag: a study matched to the order by accession number or Study
 * Instance UID whose images carry another Patient ID, or another non-empty Issuer of Patient ID, than the
 * order's patient. Recorded as it was when the study was linked; the link is kept (the study is the
 * order's procedure) and nothing is rewritten: someone has to look.
 */
export interface IdentityMismatch {
  studyInstanceUid: string;
  matchedBy: 'accession' | 'study-uid';
  /** Which values differ. */
  differs: ('patientId' | 'issuerOfPatientId')[];
  order: PatientIdentity;
  study: PatientIdentity;
  linkedAt: string;
}

/** One series of an MPPS performed-series check (src/ris/performed-series.ts): named by an MPPS, or archived in the procedure's studies without being named. */
export interface PerformedSeriesEntry {
  seriesInstanceUid: string;
  /** false: the archive holds this series in the procedure's studies, and no MPPS compared names it. */
  performed: boolean;
  /** Instances the MPPS named in it, and how many of those are archived. */
  named: number;
  archived: number;
  /** SOP Instance UIDs named and not archived. */
  missing: string[];
  /** SOP Instance UIDs archived in it and not named. */
  unnamed: string[];
}

export interface PerformedSeriesCheck {
  /** The MPPS compared: one (its detail), or the final ones of an order (COMPLETED, DISCONTINUED). */
  mpps: string[];
  /** The studies whose archived instances are compared: those the MPPS names, those its named series are archived in, those linked to its orders. */
  studies: string[];
  named: number;
  archived: number;
  missing: number;
  unnamed: number;
  /** Every named instance archived and every archived instance named. */
  complete: boolean;
  series: PerformedSeriesEntry[];
}

export interface UnmatchedStudy {
  studyInstanceUid: string;
  accessionNumber: string | null;
  patientId: string | null;
  firstSeenAt: string;
}

export type ReportStatus = 'P' | 'F' | 'C';

export interface ReportInput {
  accessionNumber: string;
  status: ReportStatus;
  text: string;
  author?: string | null;
  /** ISO-8601 or HL7 TS as received. */
  observedAt?: string | null;
  /** A critical result (ORU OBX-8 AA/HH/LL, REST/FHIR `critical`): the ordering clinician is notified (src/reading/). */
  critical?: boolean;
}

export interface Report {
  id: number;
  accessionNumber: string;
  studyInstanceUid: string;
  version: number;
  status: ReportStatus;
  text: string;
  author: string | null;
  observedAt: string | null;
  source: ChangeSource;
  createdAt: string;
  /** Set when a later version (an amendment) replaced it; kept, never deleted. */
  supersededAt: string | null;
}

export interface OrderFilter {
  status?: OrderStatus[];
  modality?: string;
  stationAeTitle?: string;
  patientId?: string;
  accessionNumber?: string;
  /** Scheduled start, YYYYMMDD or YYYYMMDDHHMMSS bounds (inclusive). */
  from?: string;
  to?: string;
}

/** What the Modality Worklist SCP matches on (docs/ris.md "For the MWL/MPPS services"). */
export interface ScheduledStepFilter {
  stationAeTitle?: string;
  modality?: string;
  /** Inclusive bounds on the step's start, as YYYYMMDD or YYYYMMDDHHMMSS (a date alone covers the day). */
  from?: string;
  to?: string;
  patientId?: string;
  accessionNumber?: string;
  requestedProcedureId?: string;
  stepId?: string;
  /** Default: the open statuses (OPEN_STEP_STATUSES). */
  statuses?: StepStatus[];
  limit?: number;
}

/** One worklist item: a scheduled step with its order and patient. */
export interface ScheduledStepView {
  step: ProcedureStep;
  order: Omit<Order, 'steps'>;
  patient: Patient;
}

export interface Hl7MessageRecord {
  id: number;
  sender: string;
  controlId: string | null;
  messageType: string | null;
  version: string | null;
  remoteAddress: string | null;
  text: string;
  ack: string;
  ackCode: 'AA' | 'AE' | 'AR';
  errorCode: string | null;
  errorLocation: string | null;
  errorText: string | null;
  patientId: string | null;
  accessionNumber: string | null;
  receivedAt: string;
  replays: number;
  replayedAt: string | null;
  replayedBy: string | null;
}

export interface Hl7MessageFilter {
  ackCode?: 'AA' | 'AE' | 'AR';
  messageType?: string;
  sender?: string;
  controlId?: string;
  patientId?: string;
  accessionNumber?: string;
  from?: string;
  to?: string;
  /** Text the message contains. */
  text?: string;
}
