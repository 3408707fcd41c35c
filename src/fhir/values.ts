/**
 * DICOM and HL7 v2 values as FHIR R4 datatypes: person names, dates and times, identifier systems,
 * coding systems, and the logical ids Atrium gives resources that have no number of their own.
 */
import type { Coding, HumanName } from '@medplum/fhirtypes';

/** R4 `id`: 1 to 64 of A-Z a-z 0-9 - . */
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/**
 * A patient's logical id, from its identity (Patient ID, Issuer of Patient ID), reversibly: letters, digits
 * and '.' stand for themselves, any other byte of the UTF-8 is `-` and two hex digits, and `--` (which no
 * escape produces) separates the issuer. `12345` with issuer `HOSP` is `12345--HOSP`; `1.2.3` is itself.
 * Stable whatever table the patient comes from (the index, the RIS), and needing no table of its own.
 * Null when the result would pass 64 characters.
 */
export function patientLogicalId(patientId: string, issuer: string): string | null {
  const id = escapeId(patientId) + (issuer ? `--${escapeId(issuer)}` : '');
  return id.length <= 64 && id.length > 0 ? id : null;
}

/** The identity a logical id of patientLogicalId stands for; null when it is not one. */
export function parsePatientLogicalId(id: string): { patientId: string; issuer: string } | null {
  if (!FHIR_ID.test(id)) return null;
  const at = id.indexOf('--');
  const patientId = unescapeId(at < 0 ? id : id.slice(0, at));
  const issuer = at < 0 ? '' : unescapeId(id.slice(at + 2));
  if (patientId === null || issuer === null || patientId === '') return null;
  return patientLogicalId(patientId, issuer) === id ? { patientId, issuer } : null;
}

function escapeId(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9.]/.test(ch) ? ch : `-${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function unescapeId(value: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] !== '-') { bytes.push(value.charCodeAt(i)); continue; }
    const hex = value.slice(i + 1, i + 3);
    if (!/^[0-9A-F]{2}$/.test(hex)) return null;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  const text = Buffer.from(bytes).toString('utf8');
  return text.includes('\uFFFD') ? null : text;
}

/** The alphabetic group of a DICOM PN (PS3.5 6.2.1): `Family^Given^Middle^Prefix^Suffix`. */
function pnComponents(pn: string): string[] {
  return (pn.split('\\')[0] ?? '').split('=')[0]!.split('^').map((c) => c.trim());
}

/** A DICOM PN (or HL7 XPN/XCN in DICOM form) as a HumanName; null when it has no name in it. */
export function humanName(pn: string | null | undefined): HumanName | null {
  if (!pn) return null;
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = pnComponents(pn);
  const name: HumanName = {};
  const text = displayName(pn);
  if (text) name.text = text;
  if (family) name.family = family;
  const givens = [given, ...middle.split(' ')].filter((g) => g !== '');
  if (givens.length) name.given = givens;
  if (prefix) name.prefix = [prefix];
  if (suffix) name.suffix = [suffix];
  return Object.keys(name).length ? name : null;
}

/** A DICOM PN as people write it (`Dr Jane Q Doe`), for Reference.display; null when empty. */
export function displayName(pn: string | null | undefined): string | null {
  if (!pn) return null;
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = pnComponents(pn);
  const text = [prefix, given, middle, family, suffix].filter((c) => c !== '').join(' ').replace(/\s+/g, ' ').trim();
  return text || null;
}

/** DICOM DA (YYYYMMDD) as a FHIR date; null when it is not a real date. */
export function fhirDate(da: string | null | undefined): string | null {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec((da ?? '').trim());
  if (!m) return null;
  const [, y, mo, d] = m;
  const date = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  if (date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d) || y === '0000') return null;
  return `${y}-${mo}-${d}`;
}

/**
 * The offset of this process's time zone at a local date and time, as `+hh:mm`: DICOM dates and times are
 * local to where they were made, and FHIR wants a zone with any time (R4 dateTime). Atrium reads them in
 * its own zone (TZ), the zone the date searches use too.
 */
export function localOffset(y: number, mo: number, d: number, h: number, mi: number, s: number): string {
  const minutes = -new Date(y, mo - 1, d, h, mi, s).getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/**
 * DICOM DA and TM as a FHIR dateTime: the date alone when there is no (valid) time, else to the second
 * (fractions as given) with the local zone of this process. Null without a valid date.
 */
export function fhirDateTime(da: string | null | undefined, tm: string | null | undefined): string | null {
  const date = fhirDate(da);
  if (!date) return null;
  const t = /^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$/.exec((tm ?? '').trim().replace(/:/g, ''));
  if (!t) return date;
  const [h, mi = '00', s = '00'] = [t[1]!, t[2], t[3]];
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return date;
  const fraction = t[4] && t[3] ? t[4] : '';
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
  return `${date}T${h}:${mi}:${s}${fraction}${localOffset(y, mo, d, Number(h), Number(mi), Number(s))}`;
}

/** A stored ISO-8601 UTC time (`created_at` columns) as a FHIR instant. */
export function fhirInstant(iso: string | null | undefined): string | null {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/**
 * An HL7 TS (`YYYYMMDD[HHMM[SS[.S+]]][+/-ZZZZ]`) or ISO-8601 time as a FHIR dateTime (a time without a zone
 * is read in this process's zone); null when it is neither.
 */
export function dateTimeOfHl7OrIso(value: string | null | undefined): string | null {
  if (!value) return null;
  const v = value.trim();
  const ts = /^(\d{8})(\d{2})?(\d{2})?(\d{2}(?:\.\d{1,6})?)?([+-]\d{4})?$/.exec(v);
  if (ts) {
    const [, da, h, mi, s, zone] = ts;
    if (!h) return fhirDate(da);
    const local = fhirDateTime(da, `${h}${mi ?? '00'}${s ?? '00'}`);
    if (!local || !zone) return local;
    return local.replace(/[+-]\d{2}:\d{2}$/, `${zone.slice(0, 3)}:${zone.slice(3)}`);
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(v)) return v;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/**
 * The URI an identifier's issuer (Issuer of Patient ID, HL7 CX-4) stands for as Identifier.system: an OID
 * as `urn:oid:`, a UUID as `urn:uuid:`, a URI as it is; a local name (`HOSP`) has no URI of its own, so
 * it becomes `urn:atrium:issuer:<name>` (its text also goes in Identifier.assigner.display). Null for no issuer.
 */
export function issuerSystem(issuer: string): string | null {
  const v = issuer.trim();
  if (!v) return null;
  if (/^[0-2](\.(0|[1-9]\d*))+$/.test(v)) return `urn:oid:${v}`;
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)) return `urn:uuid:${v.toLowerCase()}`;
  if (/^[a-z][a-z0-9+.-]*:\S+$/i.test(v)) return v;
  return `urn:atrium:issuer:${encodeURIComponent(v)}`;
}

/** The issuer an Identifier.system stands for (issuerSystem read back); null for a system it never makes. */
export function issuerOfSystem(system: string): string | null {
  if (system.startsWith('urn:oid:')) return system.slice(8);
  if (system.startsWith('urn:uuid:')) return system.slice(9);
  if (system.startsWith('urn:atrium:issuer:')) {
    try { return decodeURIComponent(system.slice(18)); } catch { return null; }
  }
  return /^[a-z][a-z0-9+.-]*:\S+$/i.test(system) ? system : null;
}

/** DICOM Coding Scheme Designators (and HL7 v2 coding systems) -> FHIR code system URIs. */
const CODING_SYSTEMS: Readonly<Record<string, string>> = {
  DCM: 'http://dicom.nema.org/resources/ontology/DCM',
  LN: 'http://loinc.org',
  LOINC: 'http://loinc.org',
  SCT: 'http://snomed.info/sct',
  SNM3: 'http://snomed.info/sct',
  SNOMED: 'http://snomed.info/sct',
  RADLEX: 'http://radlex.org',
  RADLX: 'http://radlex.org',
  RPID: 'http://radlex.org',
  UCUM: 'http://unitsofmeasure.org',
  'I10': 'http://hl7.org/fhir/sid/icd-10',
  'I10P': 'http://www.cms.gov/Medicare/Coding/ICD10',
  C4: 'http://www.ama-assn.org/go/cpt',
  CPT: 'http://www.ama-assn.org/go/cpt',
};

/** The DICOM coding scheme designator (or v2 coding system) a FHIR code system URI stands for. */
const DESIGNATORS: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(CODING_SYSTEMS).reverse().map(([k, v]) => [v, k]));

/** A code of the RIS ({ code, scheme, meaning }) as a Coding. Local schemes keep their designator in a URN. */
export function codingOf(code: { code: string; scheme: string; meaning: string }): Coding {
  const scheme = code.scheme.trim();
  const system = CODING_SYSTEMS[scheme.toUpperCase()] ?? (scheme ? `urn:atrium:coding-scheme:${encodeURIComponent(scheme)}` : undefined);
  return { ...(system ? { system } : {}), code: code.code, ...(code.meaning ? { display: code.meaning } : {}) };
}

/** A Coding as the RIS's code: the designator its system stands for (codingOf read back). */
export function codeOfCoding(coding: Coding): { code: string; scheme: string; meaning: string } | null {
  if (!coding.code) return null;
  const system = coding.system ?? '';
  const scheme = DESIGNATORS[system] ?? (system.startsWith('urn:atrium:coding-scheme:') ? decodeURIComponent(system.slice(25)) : system);
  return { code: coding.code, scheme, meaning: coding.display ?? '' };
}

export const DICOM_CODE_SYSTEM = 'http://dicom.nema.org/resources/ontology/DCM';
export const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
export const SNOMED = 'http://snomed.info/sct';

/** A DICOM modality (0008,0060) as a Coding of DICOM's code system (CID 29). */
export function modalityCoding(modality: string): Coding {
  return { system: DICOM_CODE_SYSTEM, code: modality };
}
