import type { IndexQuery, QueryResults } from '../dicom/query/model.ts';

/**
 * The index: what the archive knows about every stored object, answered without opening blobs.
 * One contract, two engines (SQLite embedded, PostgreSQL scale-out), see adapters/index.
 */

export interface PatientAttributes {
  patientId: string;
  issuerOfPatientId: string;
  patientName: string | null;
  patientBirthDate: string | null;
  patientSex: string | null;
}

export interface StudyAttributes {
  studyInstanceUid: string;
  studyDate: string | null;
  studyTime: string | null;
  accessionNumber: string | null;
  studyDescription: string | null;
  referringPhysicianName: string | null;
  studyId: string | null;
  timezoneOffsetFromUtc: string | null;
  /** Patient's Age, Size and Weight are study-level keys in the Study Root (PS3.4 C.6.2.1.2). */
  patientAge: string | null;
  patientSize: number | null;
  patientWeight: number | null;
}

export interface SeriesAttributes {
  seriesInstanceUid: string;
  modality: string | null;
  seriesNumber: number | null;
  seriesDescription: string | null;
  bodyPartExamined: string | null;
  seriesDate: string | null;
  seriesTime: string | null;
  performedProcedureStepStartDate: string | null;
  performedProcedureStepStartTime: string | null;
  institutionName: string | null;
  stationName: string | null;
  manufacturer: string | null;
  laterality: string | null;
  /** From the first item of Request Attributes Sequence (0040,0275): QIDO-RS matches on them (PS3.18 10.6.1.2). */
  requestedProcedureId: string | null;
  scheduledProcedureStepId: string | null;
}

export interface InstanceAttributes {
  sopInstanceUid: string;
  sopClassUid: string;
  instanceNumber: number | null;
  transferSyntaxUid: string;
  numberOfFrames: number | null;
  rows: number | null;
  columns: number | null;
  contentDate: string | null;
  contentTime: string | null;
}

/** Where and what the stored bytes are. */
export interface StoredObject {
  blobKey: string;
  sizeBytes: number;
  sha256: string;
}

/**
 * Where the pixel data lies in the stored object, so that a frame is served with a ranged read instead of
 * parsing the object again: the value's offset and length, and for encapsulated pixel data (PS3.5 A.4)
 * each fragment's [offset, length] after the Basic Offset Table. Absent for deflated objects, whose
 * offsets refer to the inflated stream.
 */
export interface PixelDataLayout {
  tag: number;
  vr: string;
  offset: number;
  length: number;
  fragments?: [number, number][];
  basicOffsetTable?: number[];
}

export interface NewInstance extends StoredObject {
  pixelData: PixelDataLayout | null;
  /**
   * SHA-256 of the data set alone (the bytes after the File Meta Information). Duplicates are told by it:
   * the same object imported from a file and sent by C-STORE differs only in its meta.
   */
  datasetSha256: string;
  patient: PatientAttributes;
  study: StudyAttributes;
  series: SeriesAttributes;
  instance: InstanceAttributes;
  /** DICOM JSON (PS3.18 F) of the whole dataset without bulk data, serialized. */
  metadataJson: string;
  /** Which transport brought it, e.g. "import", "dimse:CT_SCANNER", "stow". */
  source: string;
  receivedAt: string;
  /** Oddities tolerated at ingest; recorded in the same transaction when the instance is stored. */
  findings?: QualityFinding[];
  /**
   * The SOP Instance UID is stored in another transfer syntax with another data set: 'ask' (default) answers
   * `other-transfer-syntax` without changing anything, for the caller to compare the decoded copies; 'replace'
   * replaces the stored copy (kept as history under the `version` policy, else overwritten); 'policy' applies the
   * duplicate policy as for any other conflict.
   */
  otherTransferSyntax?: 'ask' | 'replace' | 'policy';
}

/** Something odd about an object the archive accepted anyway, recorded on its study (never silently fixed). */
export interface QualityFinding {
  /** e.g. "invalid-uid", "generated-file-meta", "vr-un-read-as-dictionary", "same-instance-other-transfer-syntax". */
  code: string;
  /** The element concerned as "(gggg,eeee)", when there is one. */
  element: string | null;
  detail: string;
}

export interface QualityFindingEntry extends QualityFinding {
  studyInstanceUid: string;
  seriesInstanceUid: string | null;
  sopInstanceUid: string | null;
  source: string;
  recordedAt: string;
}

export interface QualityFindingRecord extends QualityFindingEntry {
  id: number;
}

/** What to do when a SOP Instance UID arrives again with different bytes. */
export type DuplicatePolicy = 'reject' | 'version' | 'overwrite';

/**
 * UIDs that break PS3.5 9.1 (letters, hex strings, over 64 characters, leading zeros), common from old
 * equipment: "flag" stores and indexes them and records a quality finding on the study; "quarantine" keeps the
 * object in quarantine (reason invalid-uid); "reject" refuses it and keeps nothing.
 */
export type InvalidUidPolicy = 'flag' | 'quarantine' | 'reject';

export type StoreOutcome =
  | { kind: 'stored'; instancePk: number }
  /** Same SOP Instance UID, same data set: nothing to do, the caller drops its copy. */
  | { kind: 'identical'; existing: StoredObject }
  /** Same SOP Instance UID in another transfer syntax, other data set bytes (otherTransferSyntax 'ask'): nothing done. */
  | { kind: 'other-transfer-syntax'; existing: StoredObject & { transferSyntaxUid: string } }
  /** Same SOP Instance UID, other bytes, policy reject: the caller keeps its copy out of the archive. */
  | { kind: 'conflict'; existing: StoredObject }
  /** Policy version: the old object is kept as history. */
  | { kind: 'versioned'; instancePk: number; previous: StoredObject }
  /** Policy overwrite: the caller deletes `replaced` once this is committed. */
  | { kind: 'overwritten'; instancePk: number; replaced: StoredObject };

export interface QuarantineEntry extends StoredObject {
  source: string;
  /** Machine-readable reason, e.g. "truncated", "invalid-vr", "missing-uid", "duplicate-conflict". */
  reasonCode: string;
  reason: string;
  /** The element concerned as "(gggg,eeee)", when there is one. */
  element: string | null;
  byteOffset: number | null;
  sopInstanceUid: string | null;
  originalName: string | null;
  receivedAt: string;
}

export interface QuarantineRecord extends QuarantineEntry {
  id: number;
}

export interface Page {
  limit: number;
  offset: number;
}

export interface Paged<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

/** Filters of the admin listing; `*` and `?` are wildcards in text fields, dates are YYYYMMDD or a range "A-B". */
export interface StudyFilter {
  patientId?: string;
  patientName?: string;
  accessionNumber?: string;
  studyDate?: string;
  modality?: string;
  studyInstanceUid?: string;
}

export interface PatientRecord extends PatientAttributes {
  pk: number;
  numberOfStudies: number;
}

export interface StudyRecord extends StudyAttributes {
  pk: number;
  patient: PatientAttributes;
  modalitiesInStudy: string[];
  sopClassesInStudy: string[];
  numberOfStudyRelatedSeries: number;
  numberOfStudyRelatedInstances: number;
  sizeBytes: number;
  createdAt: string;
  updatedAt: string;
}

export interface SeriesRecord extends SeriesAttributes {
  pk: number;
  studyInstanceUid: string;
  numberOfSeriesRelatedInstances: number;
  sizeBytes: number;
}

export interface InstanceRecord extends InstanceAttributes, StoredObject {
  pk: number;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  source: string;
  receivedAt: string;
}

export interface ArchiveStatistics {
  patients: number;
  studies: number;
  series: number;
  instances: number;
  sizeBytes: number;
  quarantined: number;
  pendingEvents: number;
}

/** Instances received (stored) on one UTC day. */
export interface ReceivedDay {
  /** YYYY-MM-DD, UTC. */
  date: string;
  /** Distinct studies that received instances that day. */
  studies: number;
  instances: number;
  bytes: number;
}

/** What the archive holds of one modality (the series' Modality; null for series without one). */
export interface ModalityTotals {
  modality: string | null;
  studies: number;
  instances: number;
  bytes: number;
}

export interface IndexStore {
  readonly kind: string;

  /** A trivial query: resolves when the index answers (health checks), rejects with why not. */
  ping(): Promise<void>;

  /** Indexes one durably stored object, in one transaction with its InstanceStored outbox event. */
  storeInstance(instance: NewInstance, policy: DuplicatePolicy): Promise<StoreOutcome>;
  findInstance(sopInstanceUid: string): Promise<InstanceRecord | null>;
  instanceMetadata(sopInstanceUid: string): Promise<unknown | null>;
  pixelDataLayout(sopInstanceUid: string): Promise<PixelDataLayout | null>;

  quarantine(entry: QuarantineEntry): Promise<number>;
  /** Findings recorded outside an instance's store (e.g. a copy in another transfer syntax that was dropped). */
  recordFindings(entries: QualityFindingEntry[]): Promise<void>;
  /** Newest first; `studyInstanceUid` and `code` filter exactly. */
  listFindings(filter: { studyInstanceUid?: string; code?: string }, page: Page): Promise<Paged<QualityFindingRecord>>;
  listQuarantine(page: Page): Promise<Paged<QuarantineRecord>>;
  getQuarantined(id: number): Promise<QuarantineRecord | null>;
  /** Removes a quarantine entry and returns it (the caller deletes its blob afterwards); null when there is none. */
  deleteQuarantined(id: number): Promise<QuarantineRecord | null>;

  listPatients(filter: { patientId?: string; patientName?: string }, page: Page): Promise<Paged<PatientRecord>>;
  listStudies(filter: StudyFilter, page: Page): Promise<Paged<StudyRecord>>;
  getStudy(studyInstanceUid: string): Promise<StudyRecord | null>;
  listSeries(studyInstanceUid: string, page: Page): Promise<Paged<SeriesRecord>>;
  getSeries(seriesInstanceUid: string): Promise<SeriesRecord | null>;
  listInstances(seriesInstanceUid: string, page: Page): Promise<Paged<InstanceRecord>>;

  /**
   * Removes a study, series or instance from the index (with its history versions) and returns the
   * blob keys the caller must delete afterwards. Counts of the parents are kept right.
   */
  deleteStudy(studyInstanceUid: string): Promise<string[] | null>;
  deleteSeries(seriesInstanceUid: string): Promise<string[] | null>;
  deleteInstance(sopInstanceUid: string): Promise<string[] | null>;

  /**
   * C-FIND / QIDO-RS matching (dicom/query): the matches as DICOM JSON data sets, streamed in batches;
   * `total()` counts them ignoring limit/offset. Throws AtriumError('invalid-input') for an invalid query.
   */
  find(query: IndexQuery): QueryResults;

  statistics(): Promise<ArchiveStatistics>;
  /**
   * The instances stored now, by the UTC day they were received in [from, to) (ISO-8601 times), oldest first;
   * days without any are left out. Counts what is in the archive: deleted instances are gone from it, and a
   * replaced one counts on the day of its new copy.
   */
  receivedPerDay(from: string, to: string): Promise<ReceivedDay[]>;
  /** Bytes of the instances stored now that were received before `time`. */
  bytesReceivedBefore(time: string): Promise<number>;
  /** Instances stored now received in [from, to), per UTC minute ("YYYY-MM-DDTHH:MM"), oldest first; empty minutes left out. */
  receivedPerMinute(from: string, to: string): Promise<{ minute: string; instances: number }[]>;
  /** How many instances stored now were received in [from, to). */
  countReceived(from: string, to: string): Promise<number>;
  /** Studies, instances and bytes per modality, the most bytes first. */
  modalityTotals(): Promise<ModalityTotals[]>;
  /** Every object the index points at (instances, versions, quarantine), for verify and GC. */
  storedObjects(): AsyncIterable<StoredObject & { sopInstanceUid: string | null; where: 'instance' | 'version' | 'quarantine' }>;
}
