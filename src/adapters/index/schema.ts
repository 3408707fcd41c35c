import type { Generated } from 'kysely';

/** Table shapes as Kysely sees them; one schema for SQLite and PostgreSQL (see migrations.ts). */
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
  dispatched_at: Generated<string | null>;
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
}

export interface AtriumDatabase {
  patient: PatientTable;
  study: StudyTable;
  series: SeriesTable;
  instance: InstanceTable;
  instance_version: InstanceVersionTable;
  quarantine: QuarantineTable;
  outbox: OutboxTable;
  job: JobTable;
  ae_peer: AePeerTable;
}
