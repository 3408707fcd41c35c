/**
 * Reads a radiation dose report out of an SR's content tree (given as the DICOM JSON model of our own
 * parse, src/dicom/dicom-json.ts): the per-study accumulated values and each irradiation event with its
 * parameters. Templates: TID 10011 (CT), TID 10001 (projection X-ray, mammography and fluoroscopy included),
 * TID 10021 (radiopharmaceutical), PS3.16. Codes: dose-codes.ts. No I/O.
 *
 * Every numeric content item of an accumulated-data container or an event is kept in `measurements` with
 * its concept, value and the unit code the SR gave (Measurement Units Code Sequence); the fields people
 * filter and chart by are also set in canonical units (dose-units.ts). A NUM without a value (the Canon DX
 * file's empty "Dose (RP)") is kept with value null.
 *
 * The SR is recognised by its document title (113701 X-Ray Radiation Dose Report, 113500 Radiopharmaceutical
 * Radiation Dose Report), not only its SOP class: GE CT scanners send the CT dose report (TID 10011) in an
 * Enhanced SR, and an Enhanced or Comprehensive SR with another title is just not a dose report.
 */
import type { DicomJsonAttribute, DicomJsonDataSet } from '../../dicom/dicom-json.ts';
import {
  CODES, EVENT_TYPE_FLUOROSCOPY, PROCEDURE_CT, PROCEDURE_MAMMOGRAPHY, RadiopharmaceuticalRadiationDoseReport, XRayRadiationDoseReport,
} from './dose-codes.ts';
import { toCanonical, type Dimension } from './dose-units.ts';

export interface CodedValue { code: string; scheme: string; meaning: string }

/** One NUM content item as the SR gave it. */
export interface Measurement {
  /** The concept name: CodeValue^CodingSchemeDesignator. */
  concept: string;
  meaning: string;
  value: number | null;
  /** The UCUM code of Measurement Units Code Sequence, null when absent. */
  unit: string | null;
  /** A Laterality concept modifier (AGD per breast), or the Acquisition Plane of the container. */
  laterality?: string;
  plane?: string;
}

export type DoseKind = 'ct' | 'projection' | 'mammography' | 'fluoroscopy' | 'radiopharmaceutical';

export interface DoseTotals {
  /** CT Dose Length Product Total, mGy.cm. */
  dlpTotal: number | null;
  /** Dose Area Product Total over every plane, Gy.cm2. */
  dapTotal: number | null;
  fluoroDapTotal: number | null;
  acquisitionDapTotal: number | null;
  /** Dose (RP) Total over every plane, mGy. */
  doseRpTotal: number | null;
  /** Total Fluoro Time, s. */
  fluoroTimeTotal: number | null;
  acquisitionTimeTotal: number | null;
  /** Accumulated Average Glandular Dose, mGy, summed over both breasts; per breast in `measurements`. */
  agdTotal: number | null;
  /** Sum of the events' Entrance Exposure at RP (mammography), mGy. */
  entranceDoseTotal: number | null;
  /** Total Number of Irradiation Events as the SR states it (CT), else the events found. */
  eventCount: number;
  /** Every NUM of the accumulated-data containers. */
  measurements: Measurement[];
}

export interface DoseEvent {
  sequence: number;
  irradiationEventUid: string | null;
  /** CT Acquisition Type or Irradiation Event Type, as meaning. */
  eventType: string | null;
  acquisitionProtocol: string | null;
  targetRegion: CodedValue | null;
  anatomy: CodedValue | null;
  laterality: string | null;
  imageView: string | null;
  acquisitionPlane: string | null;
  phantomType: string | null;
  startedAt: string | null;
  // canonical units (dose-units.ts)
  ctdivol: number | null;
  dlp: number | null;
  scanLength: number | null;
  kvp: number | null;
  tubeCurrent: number | null;
  exposureTime: number | null;
  /** Exposure (mAs): the SR's Exposure item; for CT, X-Ray Tube Current x Exposure Time when both are given. */
  exposure: number | null;
  pitch: number | null;
  dap: number | null;
  doseRp: number | null;
  agd: number | null;
  entranceDose: number | null;
  compressionThickness: number | null;
  administeredActivity: number | null;
  /** Radiopharmaceutical agent / radionuclide (TID 10022), as meanings. */
  radiopharmaceutical: string | null;
  /** Route of administration (TID 10022), as meaning; radiopharmaceutical events only. Not kept in the dose index (no column yet). */
  route?: string | null;
  measurements: Measurement[];
}

export interface DoseHeader {
  sopClassUid: string | null;
  sopInstanceUid: string | null;
  studyInstanceUid: string | null;
  seriesInstanceUid: string | null;
  patientId: string | null;
  accessionNumber: string | null;
  /** YYYY-MM-DD from Study Date, else the SR's Content Date. */
  studyDate: string | null;
  studyDescription: string | null;
  procedureCode: CodedValue | null;
  stationName: string | null;
  manufacturer: string | null;
  model: string | null;
  patientSex: string | null;
  /** From Patient's Age, else Patient's Birth Date and the study date; years, fractional under one. */
  patientAgeYears: number | null;
}

export type DoseExtraction =
  | { dose: true; kind: DoseKind; modality: string; template: string | null; header: DoseHeader; totals: DoseTotals; events: DoseEvent[] }
  | { dose: false; reason: string; header: DoseHeader };

// ---- DICOM JSON access -------------------------------------------------------------------------------

const T = {
  SOPClassUID: '00080016', SOPInstanceUID: '00080018', StudyDate: '00080020', ContentDate: '00080023', AccessionNumber: '00080050',
  Manufacturer: '00080070', StationName: '00081010', StudyDescription: '00081030', ProcedureCodeSequence: '00081032', ManufacturerModelName: '00081090',
  PatientID: '00100020', PatientBirthDate: '00100030', PatientSex: '00100040', PatientAge: '00101010',
  StudyInstanceUID: '0020000D', SeriesInstanceUID: '0020000E',
  CodeValue: '00080100', CodingSchemeDesignator: '00080102', CodeMeaning: '00080104', LongCodeValue: '00080119', URNCodeValue: '00080120',
  MeasurementUnitsCodeSequence: '004008EA', RelationshipType: '0040A010', ValueType: '0040A040', ConceptNameCodeSequence: '0040A043',
  DateTime: '0040A120', UID: '0040A124', TextValue: '0040A160', ConceptCodeSequence: '0040A168', MeasuredValueSequence: '0040A300',
  NumericValue: '0040A30A', ContentTemplateSequence: '0040A504', ContentSequence: '0040A730', TemplateIdentifier: '0040DB00',
} as const;

function attr(ds: DicomJsonDataSet, tag: string): DicomJsonAttribute | undefined {
  return ds[tag];
}
function str(ds: DicomJsonDataSet, tag: string): string | null {
  const v = attr(ds, tag)?.Value?.[0];
  if (v === undefined || v === null) return null;
  if (typeof v === 'object') return (v as { Alphabetic?: string }).Alphabetic ?? null;
  const s = String(v).trim();
  return s === '' ? null : s;
}
function items(ds: DicomJsonDataSet, tag: string): DicomJsonDataSet[] {
  return ((attr(ds, tag)?.Value ?? []) as unknown[]).filter((v): v is DicomJsonDataSet => !!v && typeof v === 'object');
}
function coded(item: DicomJsonDataSet | undefined): CodedValue | null {
  if (!item) return null;
  const code = str(item, T.CodeValue) ?? str(item, T.LongCodeValue) ?? str(item, T.URNCodeValue);
  if (code === null) return null;
  return { code, scheme: str(item, T.CodingSchemeDesignator) ?? '', meaning: str(item, T.CodeMeaning) ?? '' };
}
const key = (c: CodedValue | null) => (c ? `${c.code}^${c.scheme}` : '');

/** One content item, read once. */
interface ContentItem {
  valueType: string;
  relationship: string | null;
  concept: CodedValue | null;
  conceptKey: string;
  ds: DicomJsonDataSet;
  children: ContentItem[];
}

function contentItem(ds: DicomJsonDataSet, depth: number): ContentItem {
  const concept = coded(items(ds, T.ConceptNameCodeSequence)[0]);
  // PS3.3 C.17.3: content trees are not deep; the codec already refuses nesting past 128 sequences.
  const children = depth > 64 ? [] : items(ds, T.ContentSequence).map((c) => contentItem(c, depth + 1));
  return { valueType: str(ds, T.ValueType) ?? '', relationship: str(ds, T.RelationshipType), concept, conceptKey: key(concept), ds, children };
}

const child = (item: ContentItem, concept: string) => item.children.find((c) => c.conceptKey === concept);
const childrenOf = (item: ContentItem, concept: string) => item.children.filter((c) => c.conceptKey === concept);
const codeOf = (item: ContentItem | undefined) => (item ? coded(items(item.ds, T.ConceptCodeSequence)[0]) : null);
const textOf = (item: ContentItem | undefined) => (item ? str(item.ds, T.TextValue) ?? str(item.ds, T.UID) ?? str(item.ds, T.DateTime) : null);
/** TEXT or CODE (some devices code what the template has as text, and the reverse). */
const textOrMeaning = (item: ContentItem | undefined) => (item ? (item.valueType === 'CODE' ? codeOf(item)?.meaning || null : textOf(item)) : null);

function measurementOf(item: ContentItem, context: { plane?: string }): Measurement {
  const measured = items(item.ds, T.MeasuredValueSequence)[0];
  const raw = measured ? attr(measured, T.NumericValue)?.Value?.[0] : undefined;
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : null;
  const unit = measured ? coded(items(measured, T.MeasurementUnitsCodeSequence)[0])?.code ?? null : null;
  const m: Measurement = { concept: item.conceptKey, meaning: item.concept?.meaning ?? '', value, unit };
  const laterality = item.children.find((c) => c.conceptKey === CODES.LateralitySRT || c.conceptKey === CODES.LateralitySCT);
  if (laterality) m.laterality = codeOf(laterality)?.meaning ?? undefined;
  if (context.plane) m.plane = context.plane;
  return m;
}

/** Every NUM under `item` (depth first, in order), with the plane of the container when known. */
function measurementsUnder(item: ContentItem, context: { plane?: string } = {}): Measurement[] {
  const out: Measurement[] = [];
  for (const c of item.children) {
    if (c.valueType === 'NUM') out.push(measurementOf(c, context));
    if (c.children.length && c.valueType !== 'NUM') out.push(...measurementsUnder(c, context));
  }
  return out;
}

function canonical(ms: Measurement[], concept: string, dimension: Dimension): number | null {
  const m = ms.find((x) => x.concept === concept && x.value !== null);
  return m ? toCanonical(dimension, m.value!, m.unit) : null;
}
function canonicalSum(ms: Measurement[], concept: string, dimension: Dimension): number | null {
  const values = ms.filter((x) => x.concept === concept && x.value !== null).map((x) => toCanonical(dimension, x.value!, x.unit));
  if (!values.length || values.some((v) => v === null)) return null;
  return Number((values as number[]).reduce((a, b) => a + b, 0).toPrecision(12));
}
const sumOf = (values: (number | null)[]) => {
  const known = values.filter((v): v is number => v !== null);
  return known.length ? Number(known.reduce((a, b) => a + b, 0).toPrecision(12)) : null;
};

// ---- header ------------------------------------------------------------------------------------------

const dashed = (d: string | null) => (d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : null);

/** PS3.5 AS (nnnD/W/M/Y), else the years between the birth date and the study date. */
export function ageInYears(patientAge: string | null, birthDate: string | null, studyDate: string | null): number | null {
  const m = patientAge?.match(/^(\d{3})([DWMY])$/);
  if (m) {
    const n = Number(m[1]);
    return Number(({ D: n / 365.25, W: (n * 7) / 365.25, M: n / 12, Y: n }[m[2] as 'D'])!.toFixed(3));
  }
  const b = dashed(birthDate);
  const s = studyDate;
  if (!b || !s) return null;
  const years = (Date.parse(s) - Date.parse(b)) / (365.25 * 86_400_000);
  return Number.isFinite(years) && years >= 0 ? Number(years.toFixed(3)) : null;
}

function headerOf(ds: DicomJsonDataSet): DoseHeader {
  const studyDate = dashed(str(ds, T.StudyDate)) ?? dashed(str(ds, T.ContentDate));
  return {
    sopClassUid: str(ds, T.SOPClassUID), sopInstanceUid: str(ds, T.SOPInstanceUID), studyInstanceUid: str(ds, T.StudyInstanceUID),
    seriesInstanceUid: str(ds, T.SeriesInstanceUID), patientId: str(ds, T.PatientID), accessionNumber: str(ds, T.AccessionNumber),
    studyDate, studyDescription: str(ds, T.StudyDescription), procedureCode: coded(items(ds, T.ProcedureCodeSequence)[0]),
    stationName: str(ds, T.StationName), manufacturer: str(ds, T.Manufacturer), model: str(ds, T.ManufacturerModelName),
    patientSex: str(ds, T.PatientSex), patientAgeYears: ageInYears(str(ds, T.PatientAge), str(ds, T.PatientBirthDate), studyDate),
  };
}

// ---- the templates -----------------------------------------------------------------------------------

function emptyEvent(sequence: number): DoseEvent {
  return {
    sequence, irradiationEventUid: null, eventType: null, acquisitionProtocol: null, targetRegion: null, anatomy: null, laterality: null, imageView: null,
    acquisitionPlane: null, phantomType: null, startedAt: null, ctdivol: null, dlp: null, scanLength: null, kvp: null, tubeCurrent: null, exposureTime: null,
    exposure: null, pitch: null, dap: null, doseRp: null, agd: null, entranceDose: null, compressionThickness: null, administeredActivity: null,
    radiopharmaceutical: null, measurements: [],
  };
}

/** TID 10013 CT Irradiation Event Data. */
function ctEvent(acq: ContentItem, sequence: number): DoseEvent {
  const e = emptyEvent(sequence);
  const ms = measurementsUnder(acq);
  e.measurements = ms;
  e.irradiationEventUid = textOf(child(acq, CODES.IrradiationEventUID));
  e.acquisitionProtocol = textOrMeaning(child(acq, CODES.AcquisitionProtocol));
  e.targetRegion = codeOf(child(acq, CODES.TargetRegion));
  e.eventType = codeOf(child(acq, CODES.CTAcquisitionType))?.meaning ?? null;
  const dose = child(acq, CODES.CTDose);
  e.phantomType = codeOf(dose && child(dose, CODES.CTDIwPhantomType))?.meaning ?? null;
  e.ctdivol = canonical(ms, CODES.MeanCTDIvol, 'dose');
  e.dlp = canonical(ms, CODES.DLP, 'dlp');
  e.scanLength = canonical(ms, CODES.ScanningLength, 'length');
  e.kvp = canonical(ms, CODES.KVP, 'voltage');
  e.tubeCurrent = canonical(ms, CODES.XRayTubeCurrent, 'current');
  e.exposureTime = canonical(ms, CODES.ExposureTime, 'time');
  e.pitch = canonical(ms, CODES.PitchFactor, 'ratio');
  e.exposure = canonical(ms, CODES.Exposure, 'exposure')
    ?? (e.tubeCurrent !== null && e.exposureTime !== null ? Number((e.tubeCurrent * e.exposureTime).toPrecision(12)) : null);
  return e;
}

/** TID 10003 Irradiation Event X-Ray Data (10003A detector, 10003B source, 10003C mechanical flattened). */
function projectionEvent(ev: ContentItem, sequence: number): DoseEvent {
  const e = emptyEvent(sequence);
  const plane = codeOf(child(ev, CODES.AcquisitionPlane))?.meaning ?? null;
  const ms = measurementsUnder(ev, plane ? { plane } : {});
  e.measurements = ms;
  e.acquisitionPlane = plane;
  e.irradiationEventUid = textOf(child(ev, CODES.IrradiationEventUID));
  e.eventType = codeOf(child(ev, CODES.IrradiationEventType))?.meaning ?? null;
  e.acquisitionProtocol = textOrMeaning(child(ev, CODES.AcquisitionProtocol));
  e.targetRegion = codeOf(child(ev, CODES.TargetRegion));
  const anatomy = child(ev, CODES.AnatomicalStructureSRT) ?? child(ev, CODES.AnatomicalStructureSCT);
  e.anatomy = codeOf(anatomy);
  const laterality = anatomy?.children.find((c) => c.conceptKey === CODES.LateralitySRT || c.conceptKey === CODES.LateralitySCT);
  e.laterality = codeOf(laterality)?.meaning ?? null;
  e.imageView = codeOf(child(ev, CODES.ImageView))?.meaning ?? null;
  e.startedAt = textOf(child(ev, CODES.DateTimeStarted));
  e.dap = canonical(ms, CODES.DoseAreaProduct, 'dap');
  e.doseRp = canonical(ms, CODES.DoseRP, 'dose');
  e.agd = canonical(ms, CODES.AverageGlandularDose, 'dose');
  e.entranceDose = canonical(ms, CODES.EntranceExposureAtRP, 'dose');
  e.compressionThickness = canonical(ms, CODES.CompressionThickness, 'length');
  e.kvp = canonical(ms, CODES.KVP, 'voltage');
  e.tubeCurrent = canonical(ms, CODES.XRayTubeCurrent, 'current');
  e.exposureTime = canonical(ms, CODES.ExposureTime, 'time');
  e.exposure = canonical(ms, CODES.Exposure, 'exposure');
  return e;
}

/** TID 10021: each Radiopharmaceutical Administration is one event. */
function radiopharmaceuticalEvent(adm: ContentItem, sequence: number): DoseEvent {
  const e = emptyEvent(sequence);
  e.measurements = measurementsUnder(adm);
  e.eventType = 'Radiopharmaceutical Administration';
  e.administeredActivity = canonical(e.measurements, CODES.AdministeredActivity, 'activity');
  const agent = child(adm, CODES.RadiopharmaceuticalAgentSRT) ?? child(adm, CODES.RadiopharmaceuticalAgentSCT);
  const nuclide = child(adm, CODES.RadionuclideSRT) ?? child(adm, CODES.RadionuclideSCT);
  e.radiopharmaceutical = [textOrMeaning(agent), textOrMeaning(nuclide)].filter(Boolean).join(' / ') || null;
  e.irradiationEventUid = textOf(child(adm, CODES.RadiopharmaceuticalAdministrationEventUid) ?? adm.children.find((c) => c.valueType === 'UIDREF'));
  // When it was given: Radiopharmaceutical Start DateTime, as the SR's DT (as DateTime Started of X-ray events).
  e.startedAt = textOf(child(adm, CODES.RadiopharmaceuticalStartDateTime));
  const route = child(adm, CODES.RouteOfAdministrationSCT) ?? child(adm, CODES.RouteOfAdministrationSRT);
  e.route = textOrMeaning(route);
  // The site of administration (a "Site of" modifier of the route), as the event's anatomy.
  const site = route ? child(route, CODES.SiteOfSCT) ?? child(route, CODES.SiteOfSRT) : undefined;
  const siteCode = codeOf(site);
  if (siteCode) e.anatomy = siteCode;
  return e;
}

/** The dose report of an SR data set, or why it is none. Never throws on odd content. */
export function extractDose(ds: DicomJsonDataSet): DoseExtraction {
  const header = headerOf(ds);
  if (str(ds, T.ValueType) !== 'CONTAINER') return { dose: false, reason: 'not a structured report (no root CONTAINER)', header };
  const root = contentItem(ds, 0);
  const template = str(items(ds, T.ContentTemplateSequence)[0] ?? {}, T.TemplateIdentifier);
  if (root.conceptKey === RadiopharmaceuticalRadiationDoseReport) {
    const events = root.children.filter((c) => c.conceptKey === CODES.RadiopharmaceuticalAdministration).map((c, i) => radiopharmaceuticalEvent(c, i + 1));
    const totals = emptyTotals(events.length);
    return { dose: true, kind: 'radiopharmaceutical', modality: 'NM', template, header, totals, events };
  }
  if (root.conceptKey !== XRayRadiationDoseReport) {
    return { dose: false, reason: `document title ${root.conceptKey || 'absent'} (${root.concept?.meaning ?? ''}) is not a radiation dose report`, header };
  }
  const procedure = key(codeOf(child(root, CODES.ProcedureReported)));
  const ctAccumulated = child(root, CODES.CTAccumulatedDoseData);
  if (PROCEDURE_CT.includes(procedure) || ctAccumulated || template === '10011') {
    const events = childrenOf(root, CODES.CTAcquisition).map((c, i) => ctEvent(c, i + 1));
    const ms = ctAccumulated ? measurementsUnder(ctAccumulated) : [];
    const stated = ms.find((m) => m.concept === CODES.TotalNumberOfIrradiationEvents)?.value;
    const totals = { ...emptyTotals(stated ?? events.length), measurements: ms, dlpTotal: canonical(ms, CODES.CTDoseLengthProductTotal, 'dlp') };
    return { dose: true, kind: 'ct', modality: 'CT', template, header, totals, events };
  }
  const eventItems = childrenOf(root, CODES.IrradiationEventXRayData);
  const events = eventItems.map((c, i) => projectionEvent(c, i + 1));
  const ms = childrenOf(root, CODES.AccumulatedXRayDoseData).flatMap((acc) => {
    const plane = codeOf(child(acc, CODES.AcquisitionPlane))?.meaning;
    return measurementsUnder(acc, plane ? { plane } : {});
  });
  const mammography = PROCEDURE_MAMMOGRAPHY.includes(procedure) || ms.some((m) => m.concept === CODES.AccumulatedAverageGlandularDose);
  const fluoro = !mammography && (eventItems.some((ev) => EVENT_TYPE_FLUOROSCOPY.includes(key(codeOf(child(ev, CODES.IrradiationEventType)))))
    || ms.some((m) => m.concept === CODES.TotalFluoroTime && (m.value ?? 0) > 0));
  const totals: DoseTotals = {
    ...emptyTotals(events.length), measurements: ms,
    dapTotal: canonicalSum(ms, CODES.DoseAreaProductTotal, 'dap'),
    fluoroDapTotal: canonicalSum(ms, CODES.FluoroDoseAreaProductTotal, 'dap'),
    acquisitionDapTotal: canonicalSum(ms, CODES.AcquisitionDoseAreaProductTotal, 'dap'),
    doseRpTotal: canonicalSum(ms, CODES.DoseRPTotal, 'dose'),
    fluoroTimeTotal: canonicalSum(ms, CODES.TotalFluoroTime, 'time'),
    acquisitionTimeTotal: canonicalSum(ms, CODES.TotalAcquisitionTime, 'time'),
    agdTotal: canonicalSum(ms, CODES.AccumulatedAverageGlandularDose, 'dose'),
    entranceDoseTotal: mammography ? sumOf(events.map((e) => e.entranceDose)) : null,
  };
  const kind: DoseKind = mammography ? 'mammography' : fluoro ? 'fluoroscopy' : 'projection';
  return { dose: true, kind, modality: mammography ? 'MG' : fluoro ? 'RF' : 'DX', template, header, totals, events };
}

function emptyTotals(eventCount: number): DoseTotals {
  return {
    dlpTotal: null, dapTotal: null, fluoroDapTotal: null, acquisitionDapTotal: null, doseRpTotal: null, fluoroTimeTotal: null, acquisitionTimeTotal: null,
    agdTotal: null, entranceDoseTotal: null, eventCount, measurements: [],
  };
}
