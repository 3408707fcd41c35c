/**
 * The Modality Worklist Information Model (PS3.4 K.6.1) over the RIS tables, pure: which attributes a
 * worklist item has (each scheduled procedure step with its order and patient is one item), which of them
 * matching is pushed to SQL for, how an identifier becomes a WorklistQuery, and how a response is built
 * from a row. Matching follows the query model C-FIND uses (src/dicom/query/matching.ts, PS3.4 C.2.2.2);
 * the one difference is the Scheduled Procedure Step Start Date and Time pair, matched as one datetime
 * (PS3.4 C.2.2.2.5: "20240301-20240302" with "0800-1200" is March 1 08:00 to March 2 12:00).
 */
import { splitPersonName } from '../dicom/charset.ts';
import type { DicomJsonAttribute, DicomJsonDataSet } from '../dicom/dicom-json.ts';
import { datasetMatchesKey, invalid, matcherOf, type Matcher, type NameOptions } from '../dicom/query/matching.ts';
import { hexTag, type QueryKey } from '../dicom/query/model.ts';

export const WorklistTags = {
  SpecificCharacterSet: 0x00080005,
  AccessionNumber: 0x00080050,
  Modality: 0x00080060,
  ReferringPhysicianName: 0x00080090,
  CodeValue: 0x00080100,
  CodingSchemeDesignator: 0x00080102,
  CodeMeaning: 0x00080104,
  PatientName: 0x00100010,
  PatientID: 0x00100020,
  IssuerOfPatientID: 0x00100021,
  PatientBirthDate: 0x00100030,
  PatientSex: 0x00100040,
  StudyInstanceUID: 0x0020000d,
  RequestingPhysician: 0x00321032,
  RequestedProcedureDescription: 0x00321060,
  RequestedProcedureCodeSequence: 0x00321064,
  ScheduledStationAETitle: 0x00400001,
  ScheduledProcedureStepStartDate: 0x00400002,
  ScheduledProcedureStepStartTime: 0x00400003,
  ScheduledPerformingPhysicianName: 0x00400006,
  ScheduledProcedureStepDescription: 0x00400007,
  ScheduledProtocolCodeSequence: 0x00400008,
  ScheduledProcedureStepID: 0x00400009,
  ScheduledStationName: 0x00400010,
  ScheduledProcedureStepLocation: 0x00400011,
  ScheduledProcedureStepStatus: 0x00400020,
  ScheduledProcedureStepSequence: 0x00400100,
  RequestedProcedureID: 0x00401001,
  ReasonForTheRequestedProcedure: 0x00401002,
  RequestedProcedurePriority: 0x00401003,
  PlacerOrderNumberImagingServiceRequest: 0x00402016,
  FillerOrderNumberImagingServiceRequest: 0x00402017,
} as const;
const W = WorklistTags;

/** One row of the worklist query: a step with its order and patient (column names of the SQL select). */
export interface WorklistRow {
  step_pk: number;
  step_id: string;
  modality: string | null;
  station_ae_title: string | null;
  station_name: string | null;
  location: string | null;
  start_date: string | null;
  start_time: string | null;
  description: string | null;
  performing_physician: string | null;
  protocol_codes: string | null;
  step_status: string;
  accession_number: string;
  requested_procedure_id: string | null;
  requested_procedure_code: string | null;
  requested_procedure_description: string | null;
  priority: string;
  reason: string | null;
  referring_physician: string | null;
  ordering_physician: string | null;
  study_instance_uid: string;
  placer_order_number: string | null;
  filler_order_number: string | null;
  patient_id: string;
  issuer_of_patient_id: string;
  patient_name: string | null;
  patient_birth_date: string | null;
  patient_sex: string | null;
}

/** How SQL matches a column: literal text, a person name, or the start date/time pair (start_at). */
export type ColumnKind = 'text' | 'pn';

export interface WorklistAttribute {
  tag: number;
  vr: string;
  /** The SQL column matching is pushed down to (qualified: s. step, o. order, p. patient); none: in memory only. */
  column?: string;
  kind?: ColumnKind;
  /** For person names matched case-insensitively: the folded column (upper case, accents removed). */
  search?: string;
  value(row: WorklistRow): DicomJsonAttribute;
}

const text = (vr: string, v: string | null | undefined): DicomJsonAttribute => (v === null || v === undefined || v === '' ? { vr } : { vr, Value: [v] });
const pn = (v: string | null | undefined): DicomJsonAttribute => (v ? { vr: 'PN', Value: [splitPersonName(v)] } : { vr: 'PN' });
interface Code { code: string; scheme: string; meaning: string }
const codeItem = (c: Code): DicomJsonDataSet => ({
  [hexTag(W.CodeValue)]: text('SH', c.code), [hexTag(W.CodingSchemeDesignator)]: text('SH', c.scheme), [hexTag(W.CodeMeaning)]: text('LO', c.meaning),
});
const codes = (json: string | null): DicomJsonAttribute => {
  const list = json ? (JSON.parse(json) as Code | Code[]) : [];
  const items = (Array.isArray(list) ? list : [list]).map(codeItem);
  return items.length ? { vr: 'SQ', Value: items } : { vr: 'SQ' };
};
/** Atrium's priorities as Requested Procedure Priority (PS3.3 C.4.11: STAT, HIGH, ROUTINE, MEDIUM, LOW). */
const PRIORITY: Record<string, string> = { STAT: 'STAT', ASAP: 'HIGH', URGENT: 'HIGH', ROUTINE: 'ROUTINE' };
/** Step statuses as Scheduled Procedure Step Status (PS3.3 C.4.10: SCHEDULED, ARRIVED, READY, STARTED, DEPARTED). */
const SPS_STATUS: Record<string, string> = { SCHEDULED: 'SCHEDULED', ARRIVED: 'ARRIVED', READY: 'READY', 'IN PROGRESS': 'STARTED' };

const attribute = (tag: number, vr: string, value: WorklistAttribute['value'], column?: string, kind: ColumnKind = 'text', search?: string): WorklistAttribute =>
  ({ tag, vr, value, ...(column ? { column, kind } : {}), ...(search ? { search } : {}) });

/** The attributes of a worklist item outside the Scheduled Procedure Step Sequence. */
export const ITEM_ATTRIBUTES: ReadonlyMap<number, WorklistAttribute> = new Map([
  attribute(W.AccessionNumber, 'SH', (r) => text('SH', r.accession_number), 'o.accession_number'),
  attribute(W.ReferringPhysicianName, 'PN', (r) => pn(r.referring_physician), 'o.referring_physician', 'pn'),
  attribute(W.PatientName, 'PN', (r) => pn(r.patient_name), 'p.patient_name', 'pn', 'p.patient_name_search'),
  attribute(W.PatientID, 'LO', (r) => text('LO', r.patient_id), 'p.patient_id'),
  attribute(W.IssuerOfPatientID, 'LO', (r) => text('LO', r.issuer_of_patient_id), 'p.issuer_of_patient_id'),
  attribute(W.PatientBirthDate, 'DA', (r) => text('DA', r.patient_birth_date)),
  attribute(W.PatientSex, 'CS', (r) => text('CS', r.patient_sex), 'p.patient_sex'),
  attribute(W.StudyInstanceUID, 'UI', (r) => text('UI', r.study_instance_uid), 'o.study_instance_uid'),
  attribute(W.RequestingPhysician, 'PN', (r) => pn(r.ordering_physician), 'o.ordering_physician', 'pn'),
  attribute(W.RequestedProcedureDescription, 'LO', (r) => text('LO', r.requested_procedure_description), 'o.requested_procedure_description'),
  attribute(W.RequestedProcedureCodeSequence, 'SQ', (r) => codes(r.requested_procedure_code)),
  attribute(W.RequestedProcedureID, 'SH', (r) => text('SH', r.requested_procedure_id), 'o.requested_procedure_id'),
  attribute(W.ReasonForTheRequestedProcedure, 'LO', (r) => text('LO', r.reason), 'o.reason'),
  attribute(W.RequestedProcedurePriority, 'SH', (r) => text('SH', PRIORITY[r.priority] ?? r.priority)),
  attribute(W.PlacerOrderNumberImagingServiceRequest, 'LO', (r) => text('LO', r.placer_order_number), 'o.placer_order_number'),
  attribute(W.FillerOrderNumberImagingServiceRequest, 'LO', (r) => text('LO', r.filler_order_number), 'o.filler_order_number'),
].map((a) => [a.tag, a]));

/** The attributes of the Scheduled Procedure Step Sequence item. */
export const STEP_ATTRIBUTES: ReadonlyMap<number, WorklistAttribute> = new Map([
  attribute(W.Modality, 'CS', (r) => text('CS', r.modality), 's.modality'),
  attribute(W.ScheduledStationAETitle, 'AE', (r) => text('AE', r.station_ae_title), 's.station_ae_title'),
  // Matched in SQL on s.start_at, the pair as one datetime (see dateTimeBounds).
  attribute(W.ScheduledProcedureStepStartDate, 'DA', (r) => text('DA', r.start_date)),
  attribute(W.ScheduledProcedureStepStartTime, 'TM', (r) => text('TM', r.start_time)),
  attribute(W.ScheduledPerformingPhysicianName, 'PN', (r) => pn(r.performing_physician), 's.performing_physician', 'pn'),
  attribute(W.ScheduledProcedureStepDescription, 'LO', (r) => text('LO', r.description), 's.description'),
  attribute(W.ScheduledProtocolCodeSequence, 'SQ', (r) => codes(r.protocol_codes)),
  attribute(W.ScheduledProcedureStepID, 'SH', (r) => text('SH', r.step_id), 's.step_id'),
  attribute(W.ScheduledStationName, 'SH', (r) => text('SH', r.station_name), 's.station_name'),
  attribute(W.ScheduledProcedureStepLocation, 'SH', (r) => text('SH', r.location), 's.location'),
  attribute(W.ScheduledProcedureStepStatus, 'CS', (r) => text('CS', SPS_STATUS[r.step_status] ?? r.step_status)),
].map((a) => [a.tag, a]));

const CODE_KEYS: QueryKey[] = [W.CodeValue, W.CodingSchemeDesignator, W.CodeMeaning].map((tag, i) => ({ tag, vr: i === 2 ? 'LO' : 'SH', value: '' }));

/** A SQL condition on one column: the matcher of the key, compiled by the store. */
export interface ColumnCondition {
  attribute: WorklistAttribute;
  matcher: Matcher;
}

/** The start date/time pair as inclusive bounds on s.start_at (YYYYMMDDHHMMSS), and a time-of-day range when no date is given. */
export interface StartCondition {
  from?: string;
  to?: string;
  timeOfDay?: { from?: string; to?: string };
}

export interface WorklistQuery {
  /** The identifier's keys, for the responses (every requested key is returned). */
  keys: QueryKey[];
  /** The keys of the Scheduled Procedure Step Sequence item; empty: all of them (the sequence was asked for empty). */
  stepKeys: QueryKey[] | null;
  columns: ColumnCondition[];
  start: StartCondition | null;
  /** Decided in memory on the built item, after SQL narrowed (keys without a column, and person names in folded mode). */
  residual: QueryKey[];
  /** Tags of keys with a value Atrium does not match on (answered with Pending 0xFF01, PS3.4 C.4.1.1.4). */
  unsupported: number[];
  names: NameOptions;
}

/**
 * The query of an identifier's keys (identifierKeys). Throws AtriumError('invalid-input') naming the
 * element for values the matching rules reject (C-FIND answers them 0xA900 with the Offending Element).
 */
export function worklistQuery(keys: QueryKey[], options: { caseInsensitivePersonNames?: boolean } = {}): WorklistQuery {
  const names: NameOptions = { caseInsensitive: options.caseInsensitivePersonNames ?? false };
  const q: WorklistQuery = { keys, stepKeys: null, columns: [], start: null, residual: [], unsupported: [], names };
  for (const key of keys) {
    if (key.tag === W.ScheduledProcedureStepSequence) {
      if ((key.items ?? []).length > 1) throw invalid(key.tag, 'sequence matching takes a single item (PS3.4 C.2.2.2.6)');
      const item = key.items?.[0] ?? [];
      q.stepKeys = item;
      compileKeys(item, STEP_ATTRIBUTES, q);
      const date = item.find((k) => k.tag === W.ScheduledProcedureStepStartDate);
      const time = item.find((k) => k.tag === W.ScheduledProcedureStepStartTime);
      q.start = startCondition(date ? matcherOf(date) : { kind: 'universal' }, time ? matcherOf(time) : { kind: 'universal' });
      continue;
    }
    compileKeys([key], ITEM_ATTRIBUTES, q);
  }
  return q;
}

function compileKeys(keys: QueryKey[], attributes: ReadonlyMap<number, WorklistAttribute>, q: WorklistQuery): void {
  for (const key of keys) {
    const m = matcherOf(key); // validates every key, matched or not
    if (m.kind === 'universal') continue;
    if (key.tag === W.ScheduledProcedureStepStartDate || key.tag === W.ScheduledProcedureStepStartTime) continue;
    const a = attributes.get(key.tag);
    if (!a) { q.unsupported.push(key.tag); continue; }
    if (a.column && m.kind !== 'sequence') {
      q.columns.push({ attribute: a, matcher: m });
      // Folded person names are narrowed in SQL and decided in memory (the folded column has lost the groups).
      if (a.kind === 'pn' && q.names.caseInsensitive) q.residual.push(key);
    } else {
      q.residual.push(key);
    }
  }
}

const lowerTime = (t: string) => t.replace(/\..*/, '').padEnd(6, '0');
const upperTime = (t: string) => { const s = t.replace(/\..*/, ''); return s + '235959'.slice(s.length); };

/** The date and time keys of the pair as bounds on the step's start (PS3.4 C.2.2.2.5). */
export function startCondition(date: Matcher, time: Matcher): StartCondition | null {
  const bounds = (m: Matcher, lower: (v: string) => string, upper: (v: string) => string): { from?: string; to?: string } | null => {
    if (m.kind === 'universal') return null;
    if (m.kind === 'single') return { from: lower(m.value), to: upper(m.value) };
    if (m.kind === 'range') return { from: m.from === undefined ? undefined : lower(m.from), to: m.to === undefined ? undefined : upper(m.to) };
    // A list of dates or times is not a form the standard defines for DA/TM (C.2.2.2.5); refused by the caller.
    return { from: '', to: '' };
  };
  const d = bounds(date, (v) => v, (v) => v);
  const t = bounds(time, lowerTime, upperTime);
  if (!d && !t) return null;
  if (!d) return { timeOfDay: t! };
  return {
    ...(d.from !== undefined ? { from: d.from + (t?.from ?? '000000') } : {}),
    ...(d.to !== undefined ? { to: d.to + (t?.to ?? '235959') } : {}),
  };
}

/** The worklist item of a row with the requested keys only, each present (empty when unknown), and the character set. */
export function worklistResponse(row: WorklistRow, q: WorklistQuery): DicomJsonDataSet {
  const out: DicomJsonDataSet = { [hexTag(W.SpecificCharacterSet)]: { vr: 'CS', Value: ['ISO_IR 192'] } };
  for (const key of q.keys) {
    if (key.tag === W.SpecificCharacterSet) continue;
    if (key.tag === W.ScheduledProcedureStepSequence) {
      const item = key.items?.[0] ?? [];
      const stepKeys = item.length ? item : [...STEP_ATTRIBUTES.values()].map((a) => ({ tag: a.tag, vr: a.vr, value: '' }));
      out[hexTag(key.tag)] = { vr: 'SQ', Value: [select(row, stepKeys, STEP_ATTRIBUTES)] };
      continue;
    }
    Object.assign(out, select(row, [key], ITEM_ATTRIBUTES));
  }
  return out;
}

function select(row: WorklistRow, keys: QueryKey[], attributes: ReadonlyMap<number, WorklistAttribute>): DicomJsonDataSet {
  const out: DicomJsonDataSet = {};
  for (const key of keys) {
    const a = attributes.get(key.tag);
    if (!a) { out[hexTag(key.tag)] = { vr: key.vr === 'UN' ? 'UN' : key.vr }; continue; }
    const value = a.value(row);
    if (a.vr === 'SQ' && value.Value) {
      // Code sequences: the item keys asked for, all three code attributes when asked for empty.
      const itemKeys = key.items?.[0]?.length ? key.items[0] : CODE_KEYS;
      out[hexTag(key.tag)] = { vr: 'SQ', Value: (value.Value as DicomJsonDataSet[]).map((item) => pick(item, itemKeys)) };
    } else {
      out[hexTag(key.tag)] = value;
    }
  }
  return out;
}

function pick(item: DicomJsonDataSet, keys: QueryKey[]): DicomJsonDataSet {
  return Object.fromEntries(keys.map((k) => [hexTag(k.tag), item[hexTag(k.tag)] ?? { vr: k.vr }]));
}

/** Whether a row passes the keys SQL did not decide (evaluated on the full item, as C-FIND does on stored JSON). */
export function residualMatches(row: WorklistRow, q: WorklistQuery): boolean {
  if (q.residual.length === 0) return true;
  const full: DicomJsonDataSet = {};
  for (const a of ITEM_ATTRIBUTES.values()) full[hexTag(a.tag)] = a.value(row);
  const step: DicomJsonDataSet = {};
  for (const a of STEP_ATTRIBUTES.values()) step[hexTag(a.tag)] = a.value(row);
  const inStep = new Set(q.stepKeys ?? []);
  return q.residual.every((key) => datasetMatchesKey(inStep.has(key) ? step : full, key, q.names));
}
