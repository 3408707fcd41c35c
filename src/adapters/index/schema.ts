import type { Generated } from 'kysely';

/** Table shapes as Kysely sees them; one schema for SQLite and PostgreSQL (migrations in each module's migrations/ folder). */
export interface PatientTable {
  pk: Generated<number>;
  patient_id: string;
  issuer_of_patient_id: string;
  patient_name: string | null;
  /** Upper-cased, accent-free name for case-insensitive and fuzzy matching. */
  patient_name_search: string | null;
  patient_birth_date: string | null;
  patient_sex: string | null;
  created_at: string;
}

export interface StudyTable {
  pk: Generated<number>;
  patient_pk: number;
  study_instance_uid: string;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  study_description: string | null;
  referring_physician_name: string | null;
  study_id: string | null;
  timezone_offset_from_utc: string | null;
  patient_age: string | null;
  patient_size: number | null;
  patient_weight: number | null;
  /** Backslash-separated, as the DICOM multi-value it is served as. */
  modalities_in_study: Generated<string>;
  sop_classes_in_study: Generated<string>;
  number_of_series: Generated<number>;
  number_of_instances: Generated<number>;
  size_bytes: Generated<number>;
  created_at: string;
  updated_at: string;
}

export interface SeriesTable {
  pk: Generated<number>;
  study_pk: number;
  series_instance_uid: string;
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
  body_part_examined: string | null;
  series_date: string | null;
  series_time: string | null;
  performed_procedure_step_start_date: string | null;
  performed_procedure_step_start_time: string | null;
  institution_name: string | null;
  station_name: string | null;
  manufacturer: string | null;
  laterality: string | null;
  requested_procedure_id: string | null;
  scheduled_procedure_step_id: string | null;
  number_of_instances: Generated<number>;
  size_bytes: Generated<number>;
  created_at: string;
  updated_at: string;
}

export interface InstanceTable {
  pk: Generated<number>;
  series_pk: number;
  sop_instance_uid: string;
  sop_class_uid: string;
  instance_number: number | null;
  transfer_syntax_uid: string;
  number_of_frames: number | null;
  rows: number | null;
  columns: number | null;
  content_date: string | null;
  content_time: string | null;
  /** The Patient ID the object itself carries, which may differ from its study's patient (a safety flag). */
  patient_id_received: string;
  blob_key: string;
  size_bytes: number;
  sha256: string;
  dataset_sha256: string;
  /** PixelDataLayout as JSON, or null. */
  pixel_data: string | null;
  metadata: string;
  source: string;
  received_at: string;
}

export interface InstanceVersionTable {
  pk: Generated<number>;
  sop_instance_uid: string;
  transfer_syntax_uid: string;
  blob_key: string;
  size_bytes: number;
  sha256: string;
  metadata: string;
  source: string;
  received_at: string;
  superseded_at: string;
}

export interface QuarantineTable {
  pk: Generated<number>;
  source: string;
  reason_code: string;
  reason: string;
  element: string | null;
  byte_offset: number | null;
  sop_instance_uid: string | null;
  original_name: string | null;
  blob_key: string;
  size_bytes: number;
  sha256: string;
  received_at: string;
}

export interface OutboxTable {
  pk: Generated<number>;
  event_type: string;
  payload: string;
  created_at: string;
  /** When its deliveries were created (routed to the handlers subscribed then). */
  dispatched_at: Generated<string | null>;
  /** The study the event belongs to: its events are delivered in order (migration 0006). */
  ordering_key: string | null;
}

/** One event's delivery to one handler (src/events/dispatcher.ts, sql-event-outbox.ts). */
export interface EventDeliveryTable {
  pk: Generated<number>;
  event_pk: number;
  handler: string;
  ordering_key: string | null;
  state: 'pending' | 'done';
  attempts: Generated<number>;
  run_at: string;
  last_error: string | null;
  locked_by: string | null;
  locked_until: string | null;
  created_at: string;
  updated_at: string;
  delivered_at: string | null;
}

/** The durable job queue (src/adapters/index/sql-job-queue.ts). JSON columns are text. */
export interface JobTable {
  pk: Generated<number>;
  type: string;
  payload: string;
  /** queued | running | succeeded | failed | cancelled */
  state: string;
  attempts: Generated<number>;
  max_attempts: number;
  run_at: string;
  dedupe_key: string | null;
  last_error: string | null;
  progress: string | null;
  result: string | null;
  locked_by: string | null;
  locked_until: string | null;
  created_at: string;
  updated_at: string;
}

/** Known DICOM application entities (src/adapters/index/sql-peer-registry.ts). */
export interface AePeerTable {
  pk: Generated<number>;
  ae_title: string;
  host: string;
  port: number;
  /** 0 or 1 (SQLite has no boolean). */
  tls: Generated<number>;
  /** JSON array of DicomOperation. */
  operations: string;
  description: string | null;
  /** config | api */
  source: string;
  created_at: string;
  updated_at: string;
  /** The last association with the peer, either way (migration 0009); null until the first. */
  last_contact_at: string | null;
  /** ok | failed */
  last_contact_outcome: string | null;
  last_contact_detail: string | null;
}

/** The append-only audit trail (src/adapters/index/sql-audit-store.ts); `record` is the whole AuditRecord as JSON. */
export interface AuditEventTable {
  pk: Generated<number>;
  /** UUID. */
  event_id: string;
  /** ISO-8601 UTC: when the event happened. */
  recorded_at: string;
  action: string;
  interface: string;
  outcome: string;
  principal_kind: string;
  principal_id: string | null;
  origin_address: string | null;
  origin_ae_title: string | null;
  record: string;
}

/** Patients and studies an audit event touched, for indexed search: kind is 'patient' or 'study'. */
export interface AuditObjectTable {
  pk: Generated<number>;
  event_pk: number;
  kind: string;
  value: string;
}

/** Local users (src/adapters/index/sql-security-store.ts). `roles` is a JSON array. */
export interface SecurityUserTable {
  pk: Generated<number>;
  username: string;
  display_name: string | null;
  /** scrypt$N$r$p$salt$hash */
  password_hash: string;
  roles: string;
  dicom_person_name: string | null;
  /** 0 or 1. */
  disabled: Generated<number>;
  created_at: string;
  updated_at: string;
  last_login_at: string | null;
}

/** Sessions of local users: only the SHA-256 of the session id is stored. */
export interface SecuritySessionTable {
  pk: Generated<number>;
  id_hash: string;
  user_pk: number;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  source_address: string | null;
}

/** API keys: only the SHA-256 of the key is stored. `roles` and `route_prefixes` are JSON arrays. */
export interface SecurityApiKeyTable {
  pk: Generated<number>;
  key_id: string;
  name: string;
  secret_hash: string;
  roles: string;
  route_prefixes: string | null;
  created_by: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

/** Login failure counters per `user:<name>` and `addr:<ip>` (lock-out and rate limiting). */
export interface SecurityLoginThrottleTable {
  throttle_key: string;
  failures: number;
  window_started_at: string;
  locked_until: string | null;
}

export interface SecuritySettingTable {
  setting_key: string;
  value: string;
  updated_at: string;
}

/** What was odd about an accepted object (src/archive/migrations/0007_archive_quality_findings.ts). */
export interface QualityFindingTable {
  pk: Generated<number>;
  study_instance_uid: string;
  series_instance_uid: string | null;
  sop_instance_uid: string | null;
  code: string;
  element: string | null;
  detail: string;
  source: string;
  recorded_at: string;
}

export interface AtriumDatabase {
  patient: PatientTable;
  study: StudyTable;
  series: SeriesTable;
  instance: InstanceTable;
  instance_version: InstanceVersionTable;
  quarantine: QuarantineTable;
  quality_finding: QualityFindingTable;
  outbox: OutboxTable;
  event_delivery: EventDeliveryTable;
  job: JobTable;
  ae_peer: AePeerTable;
  security_user: SecurityUserTable;
  security_session: SecuritySessionTable;
  security_api_key: SecurityApiKeyTable;
  security_login_throttle: SecurityLoginThrottleTable;
  security_setting: SecuritySettingTable;
  audit_event: AuditEventTable;
  audit_object: AuditObjectTable;
}
