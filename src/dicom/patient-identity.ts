/**
 * The one comparison of two patient identities (what an image header carries against what an order's
 * patient is), used by the RIS's wrong-patient flag (src/ris/order-service.ts) and by the integrity
 * monitor's identity-mismatch check (src/quality/integrity/). Pure: no I/O.
 *
 * What counts as a difference, and why:
 * - Patient ID: any difference, an absent one included (the identifier is what every system matches on).
 * - Issuer of Patient ID: only when the image carries one and it is not the reference's (modalities often
 *   send no issuer, which is no difference).
 * - Patient's Name: compared as DICOM person names (PS3.5 6.2, PN): the alphabetic group only, component by
 *   component, case-insensitive, spaces trimmed and runs of spaces collapsed, trailing empty components
 *   ignored (`Doe^Jane^^` is `DOE^JANE`); only when both are present.
 * - Patient's Birth Date and Sex: only when both are present.
 */
export interface PatientIdentityAttributes {
  patientId: string | null;
  issuerOfPatientId: string | null;
  patientName: string | null;
  patientBirthDate: string | null;
  patientSex: string | null;
}

export type IdentityAttribute = keyof PatientIdentityAttributes;

/** One differing attribute with both values: `expected` is the reference (the order), `actual` the image's. */
export interface IdentityDifference {
  attribute: IdentityAttribute;
  expected: string | null;
  actual: string | null;
}

/** The DICOM keywords of the attributes, for evidence an administrator reads. */
export const IDENTITY_KEYWORDS: Readonly<Record<IdentityAttribute, string>> = {
  patientId: 'PatientID', issuerOfPatientId: 'IssuerOfPatientID', patientName: 'PatientName', patientBirthDate: 'PatientBirthDate', patientSex: 'PatientSex',
};

/** A person name reduced for comparison (see the module comment). */
export function comparablePersonName(name: string): string {
  const alphabetic = name.split('=')[0] ?? '';
  const components = alphabetic.split('^').map((c) => c.trim().replace(/\s+/g, ' ').toUpperCase());
  while (components.length > 0 && components[components.length - 1] === '') components.pop();
  return components.join('^');
}

const blank = (v: string | null | undefined): v is null | undefined | '' => v === null || v === undefined || v.trim() === '';

/** The attributes of `actual` that differ from `expected`, in the order patientId, issuer, name, birth date, sex. */
export function compareIdentity(expected: PatientIdentityAttributes, actual: PatientIdentityAttributes): IdentityDifference[] {
  const out: IdentityDifference[] = [];
  const add = (attribute: IdentityAttribute) => out.push({ attribute, expected: expected[attribute] || null, actual: actual[attribute] || null });
  if ((actual.patientId ?? '').trim() !== (expected.patientId ?? '').trim()) add('patientId');
  if (!blank(actual.issuerOfPatientId) && actual.issuerOfPatientId.trim() !== (expected.issuerOfPatientId ?? '').trim()) add('issuerOfPatientId');
  if (!blank(actual.patientName) && !blank(expected.patientName) && comparablePersonName(actual.patientName) !== comparablePersonName(expected.patientName)) add('patientName');
  if (!blank(actual.patientBirthDate) && !blank(expected.patientBirthDate) && actual.patientBirthDate.trim() !== expected.patientBirthDate.trim()) add('patientBirthDate');
  if (!blank(actual.patientSex) && !blank(expected.patientSex) && actual.patientSex.trim().toUpperCase() !== expected.patientSex.trim().toUpperCase()) add('patientSex');
  return out;
}

/** Whether the differences name another patient (identifier or issuer), not only other demographics. */
export function isWrongPatient(differences: readonly IdentityDifference[]): boolean {
  return differences.some((d) => d.attribute === 'patientId' || d.attribute === 'issuerOfPatientId');
}
