/**
 * The viewer launch's request, as IHE Invoke Image Display (RAD-106, IID) names its parameters, plus the
 * shorter names of Atrium's own URL: what is asked for (a patient, or studies by Study Instance UID or
 * accession number), and the studies of the index that answer it. Pure over the index; the route
 * (launch.ts) authorizes, audits and redirects.
 */
import { AtriumError } from '../../errors.ts';
import { isValidUid } from '../../dicom/uid.ts';
import type { IndexStore, StudyRecord } from '../../ports/index-store.ts';

/** Studies of one patient read at most (a patient launch lists them; mostRecentResults narrows). */
export const MAX_PATIENT_STUDIES = 1000;

export interface LaunchRequest {
  requestType: 'PATIENT' | 'STUDY';
  /** PATIENT: whose studies; STUDY: when given, every study must be this patient's (a wrong-patient check). */
  patient: { id: string; issuer: string | null } | null;
  studyInstanceUids: string[];
  accessionNumbers: string[];
  /** PATIENT: only the n most recent studies. */
  mostRecentResults: number | null;
  /** PATIENT: studies from / until (inclusive), as DICOM DT prefixes (YYYYMMDD[HHMMSS]). */
  lowerDateTime: string | null;
  upperDateTime: string | null;
  /** PATIENT: studies holding at least one of these modalities. */
  modalities: string[];
}

/** The query parameters, with the names each may be given by (compared without regard to case). */
const NAMES = {
  requestType: ['requestType'],
  patientId: ['patientID', 'patientId'],
  issuer: ['issuer', 'issuerOfPatientID'],
  studyUid: ['studyUID', 'studyInstanceUid', 'StudyInstanceUIDs'],
  accessionNumber: ['accessionNumber'],
  mostRecentResults: ['mostRecentResults'],
  lowerDateTime: ['lowerDateTime'],
  upperDateTime: ['upperDateTime'],
  modalitiesInStudy: ['modalitiesInStudy'],
} as const;

/** IID parameters that change how a study is shown, not which: accepted and left to the viewer's defaults. */
export const DISPLAY_PARAMETERS = ['viewerType', 'diagnosticQuality', 'keyImagesOnly'] as const;

function invalid(message: string): AtriumError {
  return new AtriumError('invalid-input', message);
}

function param(query: Record<string, unknown>, names: readonly string[]): string | null {
  const wanted = names.map((n) => n.toLowerCase());
  for (const [key, value] of Object.entries(query)) {
    if (!wanted.includes(key.toLowerCase())) continue;
    const text = Array.isArray(value) ? value.join(',') : String(value ?? '');
    return text.trim() === '' ? null : text.trim();
  }
  return null;
}

function list(value: string | null): string[] {
  return value === null ? [] : [...new Set(value.split(',').map((v) => v.trim()).filter(Boolean))];
}

function exact(value: string, what: string): string {
  if (/[*?\\]/.test(value)) throw invalid(`${what} "${value}": a launch names its patient or study exactly (no wildcards or backslashes)`);
  return value;
}

/**
 * An IID patient identifier is an HL7 CX (`id^^^issuer`, the issuer an HD `namespace&universal id&type`):
 * its ID and the issuer's namespace (or universal ID when the namespace is empty), which is how Atrium
 * keeps Issuer of Patient ID.
 */
export function parsePatientIdentifier(cx: string): { id: string; issuer: string | null } {
  const [id = '', , , authority = ''] = cx.split('^');
  const [namespace = '', universal = ''] = authority.split('&');
  return { id: id.trim(), issuer: (namespace || universal).trim() || null };
}

/** IID's lowerDateTime/upperDateTime (XML Schema dateTime, or a DICOM DA/DT) as a DICOM DT prefix. */
function dateTime(value: string | null, what: string): string | null {
  if (value === null) return null;
  const m = /^(\d{4})-?(\d{2})-?(\d{2})(?:[T ]?(\d{2}):?(\d{2})(?::?(\d{2}))?)?/.exec(value);
  if (!m) throw invalid(`${what} "${value}" is not a date-time (2024-03-05T10:15:00 or 20240305)`);
  return `${m[1]}${m[2]}${m[3]}${m[4] ? `${m[4]}${m[5]}${m[6] ?? '00'}` : ''}`;
}

/** Reads the launch URL's query: 400 (invalid-input) for what cannot name a patient or a study. */
export function parseLaunchRequest(query: Record<string, unknown>): LaunchRequest {
  const typeText = param(query, NAMES.requestType);
  if (typeText !== null && !['PATIENT', 'STUDY'].includes(typeText.toUpperCase())) throw invalid(`requestType "${typeText}" is not PATIENT or STUDY`);
  const patientText = param(query, NAMES.patientId);
  let patient = patientText === null ? null : parsePatientIdentifier(exact(patientText, 'patientID'));
  const issuer = param(query, NAMES.issuer);
  if (patient && issuer !== null) patient = { id: patient.id, issuer: exact(issuer, 'issuer') };
  if (patient && patient.id === '') throw invalid(`patientID "${patientText}" has no identifier before its first ^`);
  const studyInstanceUids = list(param(query, NAMES.studyUid));
  for (const uid of studyInstanceUids) if (!isValidUid(uid)) throw invalid(`studyUID "${uid}" is not a valid UID`);
  const accessionNumbers = list(param(query, NAMES.accessionNumber)).map((a) => exact(a, 'accessionNumber'));
  const requestType = (typeText?.toUpperCase() as LaunchRequest['requestType'] | undefined)
    ?? (studyInstanceUids.length || accessionNumbers.length ? 'STUDY' : 'PATIENT');
  if (requestType === 'STUDY' && !studyInstanceUids.length && !accessionNumbers.length) throw invalid('a study launch needs studyUID or accessionNumber');
  if (requestType === 'PATIENT' && !patient) throw invalid('a launch needs patientID, studyUID or accessionNumber');
  const recentText = param(query, NAMES.mostRecentResults);
  const mostRecentResults = recentText === null ? null : Number(recentText);
  if (mostRecentResults !== null && (!Number.isInteger(mostRecentResults) || mostRecentResults < 1)) throw invalid(`mostRecentResults "${recentText}" is not a positive whole number`);
  return {
    requestType, patient, studyInstanceUids, accessionNumbers,
    mostRecentResults: requestType === 'PATIENT' ? mostRecentResults : null,
    lowerDateTime: requestType === 'PATIENT' ? dateTime(param(query, NAMES.lowerDateTime), 'lowerDateTime') : null,
    upperDateTime: requestType === 'PATIENT' ? dateTime(param(query, NAMES.upperDateTime), 'upperDateTime') : null,
    modalities: requestType === 'PATIENT' ? list(param(query, NAMES.modalitiesInStudy)).map((m) => m.toUpperCase()) : [],
  };
}

/** Why a launch names nothing to show, for the 404 and 409 pages. */
export type LaunchMiss =
  | { kind: 'not-found'; missing: string[] }
  | { kind: 'ambiguous-patient'; patientId: string; issuers: string[] }
  | { kind: 'other-patient'; studies: { studyInstanceUid: string; patientId: string; issuer: string }[] };

export interface ResolvedLaunch {
  /** The studies asked for, most recent first (PATIENT) or in the order asked (STUDY). */
  studies: StudyRecord[];
  /**
   * PATIENT: whether the index's studies of this Patient ID, whatever their issuer and without the launch's
   * filters, are exactly `studies` (then a study list filtered on the Patient ID shows just these).
   */
  wholePatient: boolean;
  miss: LaunchMiss | null;
}

const issuerMatches = (study: StudyRecord, issuer: string | null) => issuer === null || study.patient.issuerOfPatientId === '' || study.patient.issuerOfPatientId === issuer;

/** A study's start as a DICOM DT prefix, for the date-time filters. */
const startOf = (study: StudyRecord) => `${study.studyDate ?? ''}${(study.studyTime ?? '').replace(/[^0-9]/g, '').padEnd(6, '0').slice(0, 6)}`;

/**
 * The studies of the index a launch names. PATIENT: the patient's (the issuer given, or no issuer in the
 * images, which is what most carry; without an issuer, one Patient ID under two issuers is ambiguous),
 * narrowed by the dates, modalities and mostRecentResults. STUDY: each UID and accession number must name
 * a study, and with a patientID every one must be that patient's.
 */
export async function resolveLaunch(index: IndexStore, request: LaunchRequest): Promise<ResolvedLaunch> {
  if (request.requestType === 'PATIENT') {
    const patient = request.patient!;
    const all = (await index.listStudies({ patientId: patient.id }, { limit: MAX_PATIENT_STUDIES, offset: 0 })).items.filter((s) => s.patient.patientId === patient.id);
    const issuers = [...new Set(all.map((s) => s.patient.issuerOfPatientId).filter(Boolean))].sort();
    if (patient.issuer === null && issuers.length > 1) return { studies: [], wholePatient: false, miss: { kind: 'ambiguous-patient', patientId: patient.id, issuers } };
    const theirs = all.filter((s) => issuerMatches(s, patient.issuer));
    let studies = theirs;
    if (request.lowerDateTime) studies = studies.filter((s) => startOf(s) >= request.lowerDateTime!.padEnd(14, '0'));
    if (request.upperDateTime) studies = studies.filter((s) => startOf(s) <= request.upperDateTime!.padEnd(14, '9'));
    if (request.modalities.length) studies = studies.filter((s) => s.modalitiesInStudy.some((m) => request.modalities.includes(m.toUpperCase())));
    // listStudies orders by study date, newest first.
    if (request.mostRecentResults !== null) studies = studies.slice(0, request.mostRecentResults);
    if (studies.length === 0) return { studies, wholePatient: false, miss: { kind: 'not-found', missing: [`patient ${patient.id}${patient.issuer ? ` (issuer ${patient.issuer})` : ''}`] } };
    return { studies, wholePatient: studies.length === all.length, miss: null };
  }
  const studies: StudyRecord[] = [];
  const missing: string[] = [];
  const add = (study: StudyRecord) => { if (!studies.some((s) => s.studyInstanceUid === study.studyInstanceUid)) studies.push(study); };
  for (const uid of request.studyInstanceUids) {
    const study = await index.getStudy(uid);
    if (study) add(study); else missing.push(`Study Instance UID ${uid}`);
  }
  for (const accession of request.accessionNumbers) {
    const found = (await index.listStudies({ accessionNumber: accession }, { limit: 100, offset: 0 })).items.filter((s) => s.accessionNumber === accession);
    if (found.length === 0) missing.push(`accession number ${accession}`);
    for (const study of found) add(study);
  }
  if (missing.length) return { studies: [], wholePatient: false, miss: { kind: 'not-found', missing } };
  const patient = request.patient;
  if (patient) {
    const others = studies.filter((s) => s.patient.patientId !== patient.id || !issuerMatches(s, patient.issuer));
    if (others.length) {
      return {
        studies: [], wholePatient: false,
        miss: { kind: 'other-patient', studies: others.map((s) => ({ studyInstanceUid: s.studyInstanceUid, patientId: s.patient.patientId, issuer: s.patient.issuerOfPatientId })) },
      };
    }
  }
  return { studies, wholePatient: false, miss: null };
}
