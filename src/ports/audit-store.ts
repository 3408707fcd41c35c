import type { Page, Paged } from './index-store.ts';

/**
 * The audit trail: who did what to which patient data (or to the archive's users, keys, peers and jobs), when, from where, through which interface, and
 * with what outcome. Records are append-only: the port has no update or delete, and the SQL adapter's
 * database rejects UPDATE and DELETE on its tables (triggers) whoever asks.
 */

/** How the actor was identified. */
export type PrincipalKind = 'user' | 'api-key' | 'oidc' | 'dicom-ae' | 'anonymous';
export const PRINCIPAL_KINDS: readonly PrincipalKind[] = ['user', 'api-key', 'oidc', 'dicom-ae', 'anonymous'];

export interface AuditPrincipal {
  kind: PrincipalKind;
  /** User name, API key id (never the key), OIDC subject, calling AE title; null when anonymous. */
  id: string | null;
  displayName?: string | null;
  /** RBAC roles the principal acted with. */
  roles?: string[];
}

/**
 * What was done. Mapped to PS3.15 A.5.3 events (src/audit/event-codes.ts):
 * read: 110103 Instances Accessed (R) -- viewing, WADO, downloads;
 * store: 110104 Instances Transferred (C) -- C-STORE, STOW, upload;
 * import: 110107 Import (C) -- folder or media import;
 * export: 110104 Instances Transferred (R) -- C-MOVE, C-GET, sends to a peer;
 * media-export: 110106 Export (R) -- to media, de-identified export, download of a whole study as a file;
 * delete: 110105 Study Deleted (D); update: 110110 Patient Record (U) -- corrections, merges;
 * query: 110112 Query (E) -- C-FIND, QIDO, searches, with the filters as text;
 * login / logout / login-failed: 110114 User Authentication (E) with 110122 Login / 110123 Logout;
 * audit-log-used: 110101 Audit Log Used (R) -- someone read or exported this trail, the filter as the query;
 * order-record: 110109 Order Record (U) -- an order or its report created, changed, cancelled (src/ris/);
 * administrative changes, each a 110113 Security Alert (E) whose event type says what changed:
 * security-change: users and API keys created, changed, deleted, revoked, passwords set -- 110137 User
 *   Security Attributes Changed, with 110136 Security Roles Changed when roles were given or changed;
 * network-config: DICOM peers added, changed, removed -- 110128 Network Configuration;
 * job-control: durable jobs cancelled or retried -- 110132 Use of Restricted Function.
 */
export type AuditAction =
  | 'read' | 'store' | 'import' | 'export' | 'media-export' | 'delete' | 'update' | 'query'
  | 'login' | 'logout' | 'login-failed' | 'audit-log-used' | 'order-record'
  | 'security-change' | 'network-config' | 'job-control';
export const AUDIT_ACTIONS: readonly AuditAction[] = [
  'read', 'store', 'import', 'export', 'media-export', 'delete', 'update', 'query', 'login', 'logout', 'login-failed', 'audit-log-used',
  'order-record', 'security-change', 'network-config', 'job-control',
];

/** The transport the request came through. */
export type AuditInterface = 'rest' | 'dicomweb' | 'dimse' | 'ui' | 'cli' | 'hl7' | 'fhir';
export const AUDIT_INTERFACES: readonly AuditInterface[] = ['rest', 'dicomweb', 'dimse', 'ui', 'cli', 'hl7', 'fhir'];

/** PS3.15 EventOutcomeIndicator: 0 success, 4 minor failure, 8 serious failure, 12 major failure. */
export type AuditOutcome = 'success' | 'minor-failure' | 'serious-failure' | 'major-failure';
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ['success', 'minor-failure', 'serious-failure', 'major-failure'];

/** A network end: the requestor's (IP address, and the AE title for DIMSE) or a transfer's destination. */
export interface AuditNetworkEnd {
  /** IP address or host name. */
  address?: string | null;
  aeTitle?: string | null;
  port?: number | null;
}

export interface AuditStudyRef {
  studyInstanceUid: string;
  patientId?: string | null;
  accessionNumber?: string | null;
  seriesInstanceUids?: string[];
  sopClassUids?: string[];
  /** Instances of the study touched by the event (not the study's size). */
  numberOfInstances?: number | null;
}

/** Kinds of objects an administrative record names (PS3.15 ParticipantObject other than patients and studies). */
export type AuditObjectType = 'user' | 'api-key' | 'dicom-peer' | 'job' | 'quarantined-object' | 'audit-trail' | 'dose-reference-level' | 'dose-alert' | 'reading-sla' | 'critical-result' | 'integrity-finding' | 'prefetch-rule' | 'routing-rule' | 'ai-node';
export const AUDIT_OBJECT_TYPES: readonly AuditObjectType[] = ['user', 'api-key', 'dicom-peer', 'job', 'quarantined-object', 'audit-trail', 'dose-reference-level', 'dose-alert', 'reading-sla', 'critical-result', 'integrity-finding', 'prefetch-rule', 'routing-rule', 'ai-node'];

/**
 * A thing an event acted on besides patient data: the user (by user name), the API key (by key id), the
 * DICOM peer (by AE title), the job or quarantined object (by id), the audit trail (by URI). Never a
 * secret: a password or a key's secret has no place here, only the name of the attribute that changed.
 */
export interface AuditObjectRef {
  type: AuditObjectType;
  id: string;
  /** A name beside the id: an API key's name, a job's type, a quarantined file's name. */
  name?: string | null;
  /** What was done to it: created, updated, deleted, revoked, password-set, cancelled, retried, read, exported... */
  change?: string | null;
  /** Which of its attributes were set (names only: `roles`, `disabled`, `password`). */
  attributes?: string[];
}

/** What a transport hands to AuditService.record. */
export interface AuditEventInput {
  principal: AuditPrincipal;
  action: AuditAction;
  interface: AuditInterface;
  /** Default: the service's clock. */
  time?: Date | string;
  /** Where the request came from. */
  origin?: AuditNetworkEnd | null;
  /** The other end of a transfer (C-MOVE destination, forward target), when it is not the requestor. */
  destination?: AuditNetworkEnd | null;
  /** Patients concerned; patients of `studies` are added. */
  patientIds?: string[];
  studies?: AuditStudyRef[];
  /** Other things acted on (users, keys, peers, jobs...). */
  objects?: AuditObjectRef[];
  /** A query's filters as text (e.g. `PatientID=123&StudyDate=20240101-`, or the C-FIND identifier as JSON). */
  query?: string | null;
  outcome?: AuditOutcome;
  /** Why it failed (or anything worth keeping about a success). */
  outcomeReason?: string | null;
  /** Free text: the request ("GET /studies/1.2/frames/3"), the DIMSE command, the job id... */
  detail?: string | null;
}

/** A stored record: the input normalized, with its identity. */
export interface AuditRecord {
  /** Position in the trail, increasing (the table's key). */
  seq: number;
  /** UUID, stable across exports (FHIR id, syslog). */
  id: string;
  /** ISO-8601 UTC with milliseconds. */
  time: string;
  principal: { kind: PrincipalKind; id: string | null; displayName: string | null; roles: string[] };
  action: AuditAction;
  interface: AuditInterface;
  origin: AuditNetworkEnd | null;
  destination: AuditNetworkEnd | null;
  patientIds: string[];
  studies: AuditStudyRef[];
  /** Absent in records written before administrative changes were recorded (read as []). */
  objects: AuditObjectRef[];
  query: string | null;
  outcome: AuditOutcome;
  outcomeReason: string | null;
  detail: string | null;
  /** Who wrote the record: the archive's audit source id (AE title or node name). */
  sourceId: string;
}

export type NewAuditRecord = Omit<AuditRecord, 'seq'>;

export interface AuditFilter {
  /** Inclusive lower bound of `time` (ISO-8601). */
  from?: string;
  /** Exclusive upper bound of `time` (ISO-8601). */
  to?: string;
  /** Principal id, exactly. */
  user?: string;
  patientId?: string;
  studyInstanceUid?: string;
  action?: AuditAction;
  interface?: AuditInterface;
  outcome?: AuditOutcome;
}

export interface AuditStore {
  /** Writes the records in one transaction; resolves once durable, with their sequence numbers. */
  append(records: NewAuditRecord[]): Promise<AuditRecord[]>;
  /** Newest first (time, then seq) unless `order` is 'asc'. */
  search(filter: AuditFilter, page: Page, order?: 'asc' | 'desc'): Promise<Paged<AuditRecord>>;
  /** Every matching record, oldest first, fetched in batches (keyset paging: constant memory). */
  scan(filter: AuditFilter, options?: { batchSize?: number }): AsyncIterable<AuditRecord>;
}
