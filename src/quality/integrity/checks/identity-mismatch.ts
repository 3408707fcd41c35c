/**
 * Identity mismatch: the patient a study's images carry (its index patient: Patient ID, Issuer, Name, Birth
 * Date, Sex as first received) against the patient of the order the study matches, by Accession Number, else
 * by the Study Instance UID the order was given (the RIS's post-verification matches the same way). Compared
 * by the one comparison the RIS's wrong-patient flag uses (src/dicom/patient-identity.ts): another Patient ID
 * or issuer is critical (wrong patient), other demographics only are major.
 */
import { compareIdentity, IDENTITY_KEYWORDS, isWrongPatient } from '../../../dicom/patient-identity.ts';
import type { DetectedFinding } from '../sql-integrity-store.ts';
import { rowsFor, type IntegrityCheck } from './check.ts';

const STUDY_COLUMNS = ['s.study_instance_uid', 's.accession_number', 'p.patient_id', 'p.issuer_of_patient_id', 'p.patient_name', 'p.patient_birth_date', 'p.patient_sex'] as const;
const ORDER_COLUMNS = [
  'o.accession_number as order_accession', 'o.study_instance_uid as order_study', 'rp.patient_id as order_patient_id', 'rp.issuer_of_patient_id as order_issuer',
  'rp.patient_name as order_patient_name', 'rp.patient_birth_date as order_birth_date', 'rp.patient_sex as order_sex',
] as const;

export const identityMismatchCheck: IntegrityCheck = {
  kind: 'identity-mismatch',
  async detect({ db }, scope) {
    const studies = scope.all ? null : [...scope.studies];
    const byAccession = await rowsFor(studies, (part) => {
      let q = db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk').innerJoin('ris_order as o', 'o.accession_number', 's.accession_number')
        .innerJoin('ris_patient as rp', 'rp.pk', 'o.patient_pk').select([...STUDY_COLUMNS, ...ORDER_COLUMNS]);
      if (part) q = q.where('s.study_instance_uid', 'in', part);
      return q.execute();
    });
    const byUid = await rowsFor(studies, (part) => {
      let q = db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk').innerJoin('ris_order as o', 'o.study_instance_uid', 's.study_instance_uid')
        .innerJoin('ris_patient as rp', 'rp.pk', 'o.patient_pk').select([...STUDY_COLUMNS, ...ORDER_COLUMNS]);
      if (part) q = q.where('s.study_instance_uid', 'in', part);
      return q.execute();
    });
    const matched = new Map<string, any & { matchedBy: string }>();
    for (const r of byAccession) matched.set(r.study_instance_uid, { ...r, matchedBy: 'accession' });
    for (const r of byUid) if (!matched.has(r.study_instance_uid)) matched.set(r.study_instance_uid, { ...r, matchedBy: 'study-uid' });
    const findings: DetectedFinding[] = [];
    for (const r of matched.values()) {
      const differences = compareIdentity(
        { patientId: r.order_patient_id, issuerOfPatientId: r.order_issuer, patientName: r.order_patient_name, patientBirthDate: r.order_birth_date, patientSex: r.order_sex },
        { patientId: r.patient_id, issuerOfPatientId: r.issuer_of_patient_id, patientName: r.patient_name, patientBirthDate: r.patient_birth_date, patientSex: r.patient_sex },
      );
      if (differences.length === 0) continue;
      const wrongPatient = isWrongPatient(differences);
      findings.push({
        kind: 'identity-mismatch', subject: r.study_instance_uid, severity: wrongPatient ? 'critical' : 'major',
        summary: `study ${r.study_instance_uid} matches order ${r.order_accession} by ${r.matchedBy === 'accession' ? 'accession number' : 'Study Instance UID'} but its images carry `
          + `${differences.map((d) => `${IDENTITY_KEYWORDS[d.attribute]} ${d.actual ?? '(none)'} (order: ${d.expected ?? '(none)'})`).join(', ')}`,
        studyInstanceUid: r.study_instance_uid, seriesInstanceUid: null, sopInstanceUid: null, accessionNumber: r.order_accession, patientId: r.patient_id || null,
        objects: { order: { accessionNumber: r.order_accession, studyInstanceUid: r.order_study, patientId: r.order_patient_id, issuerOfPatientId: r.order_issuer || null }, matchedBy: r.matchedBy, wrongPatient },
        evidence: differences.map((d) => ({ attribute: IDENTITY_KEYWORDS[d.attribute], expected: d.expected, actual: d.actual })),
      });
    }
    return { findings, considered: studies ?? 'all' };
  },
};
