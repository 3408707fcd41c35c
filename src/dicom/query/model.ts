/**
 * The query model of the archive: one description of DICOM attribute matching (PS3.4 C.2.2.2) that the
 * DIMSE C-FIND SCP and DICOMweb QIDO-RS both build, and that the index compiles to SQL. Pure: no I/O.
 */
import type { DicomJsonDataSet } from '../dicom-json.ts';

export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';
export const QUERY_LEVELS: readonly QueryLevel[] = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'];

export interface QueryKey {
  tag: number;
  vr: string;
  /** Raw matching value as text; '' = universal matching (a return key). */
  value: string;
  /** Sequence matching (PS3.4 C.2.2.2.6): the items of item keys; [] or [[]] = universal (return the sequence). */
  items?: QueryKey[][];
}

export interface IndexQuery {
  level: QueryLevel;
  root: 'PATIENT' | 'STUDY';
  keys: QueryKey[];
  /** Relational queries (extended negotiation) lift the requirement of unique keys at higher levels. */
  relational?: boolean;
  /** Person names: case-insensitive, accent-insensitive, word-prefix (PS3.18 fuzzymatching) when true. */
  fuzzy?: boolean;
  /** Case-insensitive (and accent-insensitive) PN matching, a common configuration option of archives. */
  caseInsensitivePersonNames?: boolean;
  /**
   * Combined datetime matching (PS3.4 C.2.2.2.5.4, extended negotiation for C-FIND): a date and a time key
   * of the same pair (StudyDate/StudyTime, SeriesDate/SeriesTime, ...) that both hold the same form of
   * range match as one datetime range.
   */
  combinedDateTime?: boolean;
  limit?: number;
  offset?: number;
  /** Extra attributes to return (QIDO includefield); 'all' returns every attribute known at that level. */
  include?: number[] | 'all';
  /** Whether the caller wants `total()` (may cost a scan when keys are matched in memory). */
  count?: boolean;
}

/** The matches of a query as DICOM JSON data sets, produced in batches. */
export interface QueryResults extends AsyncIterable<DicomJsonDataSet> {
  /** Number of matches ignoring limit/offset. */
  total(): Promise<number>;
}

// Tags the model needs by name.
export const T = {
  SpecificCharacterSet: 0x00080005,
  QueryRetrieveLevel: 0x00080052,
  InstanceAvailability: 0x00080056,
  ModalitiesInStudy: 0x00080061,
  SOPClassesInStudy: 0x00080062,
  SOPClassUID: 0x00080016,
  SOPInstanceUID: 0x00080018,
  StudyDate: 0x00080020,
  SeriesDate: 0x00080021,
  AcquisitionDate: 0x00080022,
  ContentDate: 0x00080023,
  StudyTime: 0x00080030,
  SeriesTime: 0x00080031,
  AcquisitionTime: 0x00080032,
  ContentTime: 0x00080033,
  AccessionNumber: 0x00080050,
  Modality: 0x00080060,
  TimezoneOffsetFromUTC: 0x00080201,
  ReferringPhysicianName: 0x00080090,
  StudyDescription: 0x00081030,
  SeriesDescription: 0x0008103e,
  PatientName: 0x00100010,
  PatientID: 0x00100020,
  IssuerOfPatientID: 0x00100021,
  PatientBirthDate: 0x00100030,
  PatientSex: 0x00100040,
  StudyInstanceUID: 0x0020000d,
  SeriesInstanceUID: 0x0020000e,
  StudyID: 0x00200010,
  SeriesNumber: 0x00200011,
  InstanceNumber: 0x00200013,
  NumberOfPatientRelatedStudies: 0x00201200,
  NumberOfPatientRelatedSeries: 0x00201202,
  NumberOfPatientRelatedInstances: 0x00201204,
  NumberOfStudyRelatedSeries: 0x00201206,
  NumberOfStudyRelatedInstances: 0x00201208,
  NumberOfSeriesRelatedInstances: 0x00201209,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  PerformedProcedureStepStartDate: 0x00400244,
  PerformedProcedureStepStartTime: 0x00400245,
  RequestAttributesSequence: 0x00400275,
  ScheduledProcedureStepID: 0x00400009,
  RequestedProcedureID: 0x00401001,
} as const;

/** Unique key of each level (PS3.4 C.6.1.1 / C.6.2.1). */
export const UNIQUE_KEY: Record<QueryLevel, number> = {
  PATIENT: T.PatientID,
  STUDY: T.StudyInstanceUID,
  SERIES: T.SeriesInstanceUID,
  IMAGE: T.SOPInstanceUID,
};

// Level of the attributes the model knows (PS3.4 C.6.1.1.2-5, C.6.2.1.2-4; the Patient module and the
// General Study, Patient Study, General Series, Frame of Reference and Equipment modules of PS3.3).
// Attributes not listed are taken to belong to the level they are asked at.
const PATIENT_TAGS = [
  T.PatientName, T.PatientID, T.IssuerOfPatientID, T.PatientBirthDate, T.PatientSex,
  0x00100032 /* PatientBirthTime */, 0x00101000 /* OtherPatientIDs */, 0x00101001 /* OtherPatientNames */,
  0x00102160 /* EthnicGroup */, 0x00104000 /* PatientComments */, 0x00101002 /* OtherPatientIDsSequence */,
  0x00100024 /* IssuerOfPatientIDQualifiersSequence */, 0x00102201 /* PatientSpeciesDescription */,
  0x00102292 /* PatientBreedDescription */, 0x00102297 /* ResponsiblePerson */, 0x00120062 /* PatientIdentityRemoved */,
  T.NumberOfPatientRelatedStudies, T.NumberOfPatientRelatedSeries, T.NumberOfPatientRelatedInstances,
];
const STUDY_TAGS = [
  T.StudyInstanceUID, T.StudyDate, T.StudyTime, T.AccessionNumber, T.StudyDescription, T.ReferringPhysicianName,
  T.StudyID, T.ModalitiesInStudy, T.SOPClassesInStudy, T.NumberOfStudyRelatedSeries, T.NumberOfStudyRelatedInstances,
  0x00101010 /* PatientAge */, 0x00101020 /* PatientSize */, 0x00101030 /* PatientWeight */,
  0x00080051 /* IssuerOfAccessionNumberSequence */, 0x00081032 /* ProcedureCodeSequence */,
  0x00081060 /* NameOfPhysiciansReadingStudy */, 0x00081080 /* AdmittingDiagnosesDescription */,
  0x00081110 /* ReferencedStudySequence */, 0x00102180 /* Occupation */, 0x001021b0 /* AdditionalPatientHistory */,
  0x00080063 /* AnatomicRegionsInStudyCodeSequence */, 0x00321032 /* RequestingPhysician */,
  0x00321060 /* RequestedProcedureDescription */,
];
const SERIES_TAGS = [
  T.SeriesInstanceUID, T.Modality, T.SeriesNumber, T.SeriesDescription, T.SeriesDate, T.SeriesTime,
  T.PerformedProcedureStepStartDate, T.PerformedProcedureStepStartTime, T.RequestAttributesSequence,
  T.NumberOfSeriesRelatedInstances, 0x00180015 /* BodyPartExamined */, 0x00080080 /* InstitutionName */,
  0x00081010 /* StationName */, 0x00080070 /* Manufacturer */, 0x00200060 /* Laterality */,
  0x00081090 /* ManufacturerModelName */, 0x00181030 /* ProtocolName */, 0x00081070 /* OperatorsName */,
  0x00081050 /* PerformingPhysicianName */, 0x00185100 /* PatientPosition */, 0x00200052 /* FrameOfReferenceUID */,
  0x00181000 /* DeviceSerialNumber */, 0x00181020 /* SoftwareVersions */, 0x00081040 /* InstitutionalDepartmentName */,
  0x00400253 /* PerformedProcedureStepID */, 0x00400254 /* PerformedProcedureStepDescription */,
];

const LEVEL_OF = new Map<number, QueryLevel>();
for (const t of PATIENT_TAGS) LEVEL_OF.set(t, 'PATIENT');
for (const t of STUDY_TAGS) LEVEL_OF.set(t, 'STUDY');
for (const t of SERIES_TAGS) LEVEL_OF.set(t, 'SERIES');
for (const t of [T.SOPInstanceUID, T.SOPClassUID, T.InstanceNumber, T.NumberOfFrames, T.Rows, T.Columns, T.ContentDate, T.ContentTime]) {
  LEVEL_OF.set(t, 'IMAGE');
}

/** Attributes the query model knows to live at a level (patient attributes are study attributes in the Study Root). */
export function knownTagsOfLevel(level: QueryLevel, root: 'PATIENT' | 'STUDY'): number[] {
  const out: number[] = [];
  for (const [tag, l] of LEVEL_OF) if (l === level || (root === 'STUDY' && level === 'STUDY' && l === 'PATIENT')) out.push(tag);
  return out.sort((a, b) => a - b);
}

/**
 * The level an attribute belongs to. Patient attributes are study attributes in the Study Root (C.3.2);
 * attributes the model does not know are taken to belong to `queryLevel` (the level they are asked at).
 */
export function levelOf(tag: number, root: 'PATIENT' | 'STUDY', queryLevel: QueryLevel): QueryLevel {
  const l = LEVEL_OF.get(tag >>> 0);
  if (!l) return queryLevel;
  if (l === 'PATIENT' && root === 'STUDY') return 'STUDY';
  return l;
}

export function levelIndex(level: QueryLevel): number {
  return QUERY_LEVELS.indexOf(level);
}

export const hexTag = (tag: number): string => (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
export const formatTagParen = (tag: number): string => { const h = hexTag(tag); return `(${h.slice(0, 4)},${h.slice(4)})`; };
