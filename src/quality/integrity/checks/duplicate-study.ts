/**
 * Duplicate studies: two or more studies of one patient (the index patient) on the same Study Date with the
 * same procedure (the Study Description, compared upper case with spaces collapsed) and different Study
 * Instance UIDs: usually a modality that sent an exam again under a new UID, or a study split on the way.
 * A study without date or description is never a duplicate (key-attributes reports it). Two real exams of the
 * same kind on one day are possible: a person marks that finding a false positive.
 */
import type { DetectedFinding } from '../sql-integrity-store.ts';
import { rowsFor, type IntegrityCheck } from './check.ts';

const procedureOf = (description: string | null) => (description ?? '').trim().replace(/\s+/g, ' ').toUpperCase();

export function duplicateSubject(patientId: string, issuer: string, date: string, description: string | null): string {
  return `${patientId}|${issuer}|${date}|${procedureOf(description)}`;
}

export const duplicateStudyCheck: IntegrityCheck = {
  kind: 'duplicate-study',
  async detect({ db }, scope) {
    const columns = ['s.pk', 's.patient_pk', 's.study_instance_uid', 's.study_date', 's.study_description', 's.accession_number', 's.created_at', 's.number_of_instances',
      'p.patient_id', 'p.issuer_of_patient_id'] as const;
    // Scoped: every study of the touched studies' patients (a duplicate pair may be one touched and one not).
    let patients: string[] | null = null;
    const considered: string[] = [];
    if (!scope.all) {
      const touched = await rowsFor([...scope.studies], (part) => db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk').select(columns)
        .where('s.study_instance_uid', 'in', part!).execute());
      patients = [...new Set(touched.map((r: any) => String(r.patient_pk)))];
      for (const r of touched as any[]) if (r.study_date && procedureOf(r.study_description)) considered.push(duplicateSubject(r.patient_id, r.issuer_of_patient_id, r.study_date, r.study_description));
    }
    const rows = await rowsFor(patients, (part) => {
      let q = db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk').select(columns)
        .where('s.study_date', 'is not', null).where('s.study_description', 'is not', null).where('s.number_of_instances', '>', 0);
      if (part) q = q.where('s.patient_pk', 'in', part.map(Number));
      return q.execute();
    });
    const groups = new Map<string, any[]>();
    for (const r of rows as any[]) {
      if (!r.study_date || !procedureOf(r.study_description)) continue;
      const key = duplicateSubject(r.patient_id, r.issuer_of_patient_id, r.study_date, r.study_description);
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    const findings: DetectedFinding[] = [];
    for (const [key, group] of groups) {
      if (group.length < 2) continue;
      group.sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)) || Number(a.pk) - Number(b.pk));
      const [first, ...others] = group;
      findings.push({
        kind: 'duplicate-study', subject: key, severity: 'major',
        summary: `${group.length} studies of patient ${first.patient_id} on ${first.study_date} for "${first.study_description}": ${group.map((s) => s.study_instance_uid).join(', ')}`,
        studyInstanceUid: first.study_instance_uid, seriesInstanceUid: null, sopInstanceUid: null, accessionNumber: first.accession_number ?? null, patientId: first.patient_id || null,
        objects: { studies: group.map((s) => ({ studyInstanceUid: s.study_instance_uid, accessionNumber: s.accession_number ?? null, instances: Number(s.number_of_instances), receivedAt: s.created_at })) },
        evidence: others.map((s) => ({ attribute: 'StudyInstanceUID', expected: first.study_instance_uid, actual: s.study_instance_uid, problem: 'same patient, date and procedure' })),
      });
    }
    return { findings, considered: scope.all ? 'all' : [...new Set([...considered, ...findings.map((f) => f.subject)])] };
  },
};
