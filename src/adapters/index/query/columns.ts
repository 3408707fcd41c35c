import { T, type QueryLevel } from '../../../dicom/query/model.ts';

export type Table = 'patient' | 'study' | 'series' | 'instance';

export const TABLE_OF_LEVEL: Record<QueryLevel, Table> = { PATIENT: 'patient', STUDY: 'study', SERIES: 'series', IMAGE: 'instance' };
export const LEVEL_OF_TABLE: Record<Table, QueryLevel> = { patient: 'PATIENT', study: 'STUDY', series: 'SERIES', instance: 'IMAGE' };

export type ColumnKind = 'text' | 'pn' | 'date' | 'time' | 'uid' | 'number' | 'multi';

export interface Column {
  table: Table;
  column: string;
  vr: string;
  kind: ColumnKind;
  /** Upper-cased accent-free copy for case-insensitive and fuzzy person name matching. */
  search?: string;
  /**
   * Multi-valued derived columns (ModalitiesInStudy, SOPClassesInStudy) are matched on the rows they are
   * derived from: the table and column of that row, below the study.
   */
  matchOn?: { table: 'series' | 'instance'; column: string };
}

const c = (table: Table, column: string, vr: string, kind: ColumnKind, extra: Partial<Column> = {}): Column => ({ table, column, vr, kind, ...extra });

/** The attributes the index has a column for (schema.ts). */
export const COLUMNS = new Map<number, Column>([
  [T.PatientName, c('patient', 'patient_name', 'PN', 'pn', { search: 'patient_name_search' })],
  [T.PatientID, c('patient', 'patient_id', 'LO', 'text')],
  [T.IssuerOfPatientID, c('patient', 'issuer_of_patient_id', 'LO', 'text')],
  [T.PatientBirthDate, c('patient', 'patient_birth_date', 'DA', 'date')],
  [T.PatientSex, c('patient', 'patient_sex', 'CS', 'text')],

  [T.StudyInstanceUID, c('study', 'study_instance_uid', 'UI', 'uid')],
  [T.StudyDate, c('study', 'study_date', 'DA', 'date')],
  [T.StudyTime, c('study', 'study_time', 'TM', 'time')],
  [T.AccessionNumber, c('study', 'accession_number', 'SH', 'text')],
  [T.StudyDescription, c('study', 'study_description', 'LO', 'text')],
  [T.ReferringPhysicianName, c('study', 'referring_physician_name', 'PN', 'pn')],
  [T.StudyID, c('study', 'study_id', 'SH', 'text')],
  [T.TimezoneOffsetFromUTC, c('study', 'timezone_offset_from_utc', 'SH', 'text')],
  [0x00101010, c('study', 'patient_age', 'AS', 'text')],
  [0x00101020, c('study', 'patient_size', 'DS', 'number')],
  [0x00101030, c('study', 'patient_weight', 'DS', 'number')],
  [T.ModalitiesInStudy, c('study', 'modalities_in_study', 'CS', 'multi', { matchOn: { table: 'series', column: 'modality' } })],
  [T.SOPClassesInStudy, c('study', 'sop_classes_in_study', 'UI', 'multi', { matchOn: { table: 'instance', column: 'sop_class_uid' } })],
  [T.NumberOfStudyRelatedSeries, c('study', 'number_of_series', 'IS', 'number')],
  [T.NumberOfStudyRelatedInstances, c('study', 'number_of_instances', 'IS', 'number')],

  [T.SeriesInstanceUID, c('series', 'series_instance_uid', 'UI', 'uid')],
  [T.Modality, c('series', 'modality', 'CS', 'text')],
  [T.SeriesNumber, c('series', 'series_number', 'IS', 'number')],
  [T.SeriesDescription, c('series', 'series_description', 'LO', 'text')],
  [0x00180015, c('series', 'body_part_examined', 'CS', 'text')],
  [T.SeriesDate, c('series', 'series_date', 'DA', 'date')],
  [T.SeriesTime, c('series', 'series_time', 'TM', 'time')],
  [T.PerformedProcedureStepStartDate, c('series', 'performed_procedure_step_start_date', 'DA', 'date')],
  [T.PerformedProcedureStepStartTime, c('series', 'performed_procedure_step_start_time', 'TM', 'time')],
  [0x00080080, c('series', 'institution_name', 'LO', 'text')],
  [0x00081010, c('series', 'station_name', 'SH', 'text')],
  [0x00080070, c('series', 'manufacturer', 'LO', 'text')],
  [0x00200060, c('series', 'laterality', 'CS', 'text')],
  [T.NumberOfSeriesRelatedInstances, c('series', 'number_of_instances', 'IS', 'number')],

  [T.SOPInstanceUID, c('instance', 'sop_instance_uid', 'UI', 'uid')],
  [T.SOPClassUID, c('instance', 'sop_class_uid', 'UI', 'uid')],
  [T.InstanceNumber, c('instance', 'instance_number', 'IS', 'number')],
  [T.NumberOfFrames, c('instance', 'number_of_frames', 'IS', 'number')],
  [T.Rows, c('instance', 'rows', 'US', 'number')],
  [T.Columns, c('instance', 'columns', 'US', 'number')],
  [T.ContentDate, c('instance', 'content_date', 'DA', 'date')],
  [T.ContentTime, c('instance', 'content_time', 'TM', 'time')],
]);

/**
 * Item keys of Request Attributes Sequence with a column: the values of its first item, kept on the series
 * (QIDO-RS matches on them, PS3.18 10.6.1.2). Other items are only in the instances' metadata.
 */
export const REQUEST_ATTRIBUTES_COLUMNS = new Map<number, Column>([
  [T.RequestedProcedureID, c('series', 'requested_procedure_id', 'SH', 'text')],
  [T.ScheduledProcedureStepID, c('series', 'scheduled_procedure_step_id', 'SH', 'text')],
]);

/** Date/time pairs matched together under combined datetime matching (PS3.4 C.2.2.2.5.4). */
export const DATE_TIME_PAIRS: [number, number][] = [
  [T.StudyDate, T.StudyTime],
  [T.SeriesDate, T.SeriesTime],
  [T.PerformedProcedureStepStartDate, T.PerformedProcedureStepStartTime],
  [T.ContentDate, T.ContentTime],
];

/** Data columns selected per table (everything the return values may need, metadata apart). */
export const SELECTED: Record<Table, string[]> = {
  patient: ['pk', 'patient_id', 'issuer_of_patient_id', 'patient_name', 'patient_birth_date', 'patient_sex'],
  study: ['pk', 'study_instance_uid', 'study_date', 'study_time', 'accession_number', 'study_description', 'referring_physician_name',
    'study_id', 'timezone_offset_from_utc', 'patient_age', 'patient_size', 'patient_weight', 'modalities_in_study', 'sop_classes_in_study',
    'number_of_series', 'number_of_instances'],
  series: ['pk', 'series_instance_uid', 'modality', 'series_number', 'series_description', 'body_part_examined', 'series_date', 'series_time',
    'performed_procedure_step_start_date', 'performed_procedure_step_start_time', 'institution_name', 'station_name', 'manufacturer',
    'laterality', 'requested_procedure_id', 'scheduled_procedure_step_id', 'number_of_instances'],
  instance: ['pk', 'sop_instance_uid', 'sop_class_uid', 'instance_number', 'number_of_frames', 'rows', 'columns', 'content_date', 'content_time'],
};
