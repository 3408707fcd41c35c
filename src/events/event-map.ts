/**
 * What the archive tells the other areas, by name. Each event is written to the outbox in the same
 * transaction as the change it reports (so an acknowledged store always has its InstanceStored), and is
 * delivered at least once, in order per study, to every handler subscribed to it (dispatcher.ts).
 * Payloads are JSON and versionless: a field is only ever added, so an event written by an older node
 * is still read by a newer one. Modules add their own events here (OrderChanged, ReportFinal ...).
 */
export interface EventMap {
  InstanceStored: {
    sopInstanceUid: string;
    sopClassUid: string;
    seriesInstanceUid: string;
    studyInstanceUid: string;
    patientId: string;
    /** The transport it came by: `dimse:<calling AE>`, `stow`, `import:<path>` ... */
    source: string;
    /** Set when the instance replaced stored bytes under the `version` or `overwrite` policy. */
    replaced?: string;
    policy?: string;
  };
  InstanceQuarantined: { quarantinePk: number; reasonCode: string; sopInstanceUid: string | null; source: string };
  StudyDeleted: { studyInstanceUid: string };
  SeriesDeleted: { seriesInstanceUid: string; studyInstanceUid?: string };
  InstanceDeleted: { sopInstanceUid: string; studyInstanceUid?: string };
  /** An order's status moved (src/ris/): what outbound HL7 status messages and turnaround times start from. */
  OrderStatusChanged: {
    accessionNumber: string;
    /** The Study Instance UID the order was given: its events keep their order with the study's. */
    studyInstanceUid: string;
    patientId: string;
    status: string;
    /** hl7 | mpps | image | user | system, and the message, MPPS instance, study or user. */
    source: string;
    sourceRef: string | null;
  };
  /**
   * A report version with status F (final) or C (corrected) was recorded (src/ris/report-service.ts), from
   * whatever transport brought it (HL7 ORU, REST, FHIR): what the outbound ORU^R01 messages are sent from.
   */
  ReportFinal: {
    /** The report version (its id in /api/ris/reports): the text sent is that version's, not a later one's. */
    reportId: number;
    version: number;
    status: 'F' | 'C';
    accessionNumber: string;
    /** The order's Study Instance UID: its events keep their order with the order's and the study's. */
    studyInstanceUid: string;
    patientId: string;
    /** hl7 | user | fhir ... and its reference (`<MSH-3>^<MSH-4>:<MSH-10>` for HL7). */
    source: string;
    sourceRef: string | null;
  };
  /**
   * A report version was recorded marked critical (src/ris/report-service.ts: HL7 ORU OBX-8 abnormal flag AA,
   * HH or LL, or `critical: true` by REST/FHIR), of any status: the critical results workflow (src/reading/)
   * notifies the ordering clinician from it.
   */
  CriticalResult: {
    reportId: number;
    version: number;
    status: 'P' | 'F' | 'C';
    accessionNumber: string;
    studyInstanceUid: string;
    patientId: string;
    author: string | null;
    orderingPhysician: string | null;
    referringPhysician: string | null;
    source: string;
    sourceRef: string | null;
  };
  /**
   * A study has had no new instance for the configured quiet time (src/workflow/): the trigger for routing,
   * AI and the study-level integrity checks. Emitted once per quiet period; a later instance starts another.
   */
  StudyStable: {
    studyInstanceUid: string;
    patientId: string;
    accessionNumber: string | null;
    /** Instances in the study when it was found stable. */
    instanceCount: number;
    /** ISO time of the last instance stored before the quiet period. */
    lastInstanceAt: string;
  };
  /** Two patients were merged, or a merge was undone (HL7 A40/A47, REST, UI): src/ris/patient-service.ts. */
  PatientMerged: {
    /** The surviving patient (`patientId`, `issuer` may be empty). */
    survivorPatientId: string;
    survivorIssuer: string;
    /** The patient merged into the survivor (or split out again when `undone`). */
    mergedPatientId: string;
    mergedIssuer: string;
    undone: boolean;
    /** hl7 | user | fhir ... and its reference. */
    source: string;
    sourceRef: string | null;
  };
  /**
   * An identity correction was applied or undone (src/quality/corrections/): what is served for these studies
   * changed; integrity findings on them are re-checked.
   */
  IdentityCorrected: {
    correctionId: number;
    /** move-study | move-series | edit-patient | edit-study | merge | split | link-order */
    kind: string;
    /** The first affected study (the ordering key), and all of them. */
    studyInstanceUid?: string;
    studyInstanceUids: string[];
    patientIds: string[];
    undone: boolean;
    actor: string;
    reason: string;
  };
}

export type EventType = keyof EventMap;

/** One event as written: its type, its payload, and the key its order is kept within (the study). */
export type ArchiveEvent = { [K in EventType]: { type: K; payload: EventMap[K] } }[EventType];

export const EVENT_TYPES: readonly EventType[] = ['InstanceStored', 'InstanceQuarantined', 'StudyDeleted', 'SeriesDeleted', 'InstanceDeleted', 'OrderStatusChanged', 'ReportFinal', 'CriticalResult', 'StudyStable', 'PatientMerged', 'IdentityCorrected'];

/** Events of one study are delivered in the order they were written; others have no order between them. */
export function orderingKeyOf(event: ArchiveEvent): string | null {
  const payload = event.payload as { studyInstanceUid?: string };
  return payload.studyInstanceUid ?? null;
}

/** One delivery of one event to one handler, as a handler sees it. */
export interface DeliveredEvent<K extends EventType = EventType> {
  /** The outbox id: the same on every redelivery, what an idempotent handler keys on. */
  id: number;
  type: K;
  payload: EventMap[K];
  createdAt: string;
  /** 1 on first delivery; more after failures or a node lost mid-delivery. */
  attempt: number;
}

/**
 * A reaction to an event, contributed by a module. `name` is stored with each pending delivery: keep it
 * stable across releases (renaming it orphans the deliveries under the old name). Handlers must be
 * idempotent: a delivery whose node died before recording success is delivered again.
 */
export interface EventHandler<K extends EventType = EventType> {
  name: string;
  event: K;
  handle(event: DeliveredEvent<K>): Promise<void>;
}

/** A handler for one event type with its payload typed (the list of a module holds several types). */
export function on<K extends EventType>(event: K, name: string, handle: (event: DeliveredEvent<K>) => Promise<void>): EventHandler {
  return { name, event, handle } as unknown as EventHandler;
}
