/**
 * Missing or malformed key attributes (the seed's metadata quality list): Accession Number (SH, at most 16
 * characters), Patient ID (LO, 64), Study Date (DA, a real YYYYMMDD date), Referring Physician's Name (PN, at
 * most 5 components per group), Study Description (LO, 64). One finding per study naming each problem;
 * major when the accession or the Patient ID is concerned (they are what orders and patients match on),
 * minor otherwise. Read from the index (the study's attributes as first received).
 */
import type { DetectedFinding, EvidenceItem } from '../sql-integrity-store.ts';
import { rowsFor, text, type IntegrityCheck } from './check.ts';

export function isValidDate(v: string): boolean {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(v);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]) && Number(m[1]) >= 1850;
}

/** The problems of one study's key attributes (also the metadata quality sample's "populated" tests). */
export function keyAttributeProblems(s: { accessionNumber: string | null; patientId: string | null; studyDate: string | null; referringPhysicianName: string | null; studyDescription: string | null }): EvidenceItem[] {
  const out: EvidenceItem[] = [];
  const check = (attribute: string, value: string | null, expected: string, valid: (v: string) => boolean) => {
    if (value === null) out.push({ attribute, expected, actual: null, problem: 'missing' });
    else if (!valid(value)) out.push({ attribute, expected, actual: value, problem: 'malformed' });
  };
  check('AccessionNumber', s.accessionNumber, 'up to 16 characters (SH)', (v) => v.length <= 16 && !/[\\\r\n]/.test(v));
  check('PatientID', s.patientId, 'up to 64 characters (LO)', (v) => v.length <= 64 && !/[\\\r\n]/.test(v));
  check('StudyDate', s.studyDate, 'a date YYYYMMDD (DA)', isValidDate);
  check('ReferringPhysicianName', s.referringPhysicianName, 'a person name (PN)', (v) => v.split('=').every((g) => g.split('^').length <= 5 && g.length <= 64));
  check('StudyDescription', s.studyDescription, 'up to 64 characters (LO)', (v) => v.length <= 64);
  return out;
}

export const keyAttributesCheck: IntegrityCheck = {
  kind: 'key-attributes',
  async detect({ db }, scope) {
    const studies = scope.all ? null : [...scope.studies];
    const rows = await rowsFor(studies, (part) => {
      let q = db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk')
        .select(['s.study_instance_uid', 's.accession_number', 's.study_date', 's.referring_physician_name', 's.study_description', 'p.patient_id'])
        .where('s.number_of_instances', '>', 0);
      if (part) q = q.where('s.study_instance_uid', 'in', part);
      return q.execute();
    });
    const findings: DetectedFinding[] = [];
    for (const r of rows as any[]) {
      const problems = keyAttributeProblems({
        accessionNumber: text(r.accession_number), patientId: text(r.patient_id), studyDate: text(r.study_date),
        referringPhysicianName: text(r.referring_physician_name), studyDescription: text(r.study_description),
      });
      if (problems.length === 0) continue;
      const major = problems.some((p) => p.attribute === 'AccessionNumber' || p.attribute === 'PatientID');
      findings.push({
        kind: 'key-attributes', subject: r.study_instance_uid, severity: major ? 'major' : 'minor',
        summary: `study ${r.study_instance_uid}: ${problems.map((p) => `${p.attribute} ${p.problem}`).join(', ')}`,
        studyInstanceUid: r.study_instance_uid, seriesInstanceUid: null, sopInstanceUid: null, accessionNumber: text(r.accession_number), patientId: text(r.patient_id),
        objects: {}, evidence: problems,
      });
    }
    return { findings, considered: studies ?? 'all' };
  },
};
