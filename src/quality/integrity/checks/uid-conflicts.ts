/**
 * UID conflicts. What the archive does (docs/integrity.md, "UID conflicts: what is stored"): a Study Instance
 * UID arriving under a second patient is stored and indexed in the study as first received (the study row keeps
 * its first patient; each instance keeps the Patient ID it came with, `instance.patient_id_received`); a Series
 * Instance UID arriving in a second study is indexed in the series as first received (the instance's own Study
 * Instance UID is in its stored metadata); different bytes under a stored SOP Instance UID are quarantined
 * (`duplicate-conflict`, under the default `reject` policy). Nothing is refused or lost; these checks raise each
 * as a critical finding for a person to correct.
 */
import { sql } from 'kysely';
import type { SqlEngine } from '../../../database/migration.ts';
import type { DetectedFinding } from '../sql-integrity-store.ts';
import { rowsFor, type IntegrityCheck } from './check.ts';

/** Study Instance UID under two patients: instances of one study that came with different Patient IDs. */
export const studyUidConflictCheck: IntegrityCheck = {
  kind: 'study-uid-conflict',
  async detect({ db }, scope) {
    const studies = scope.all ? null : [...scope.studies];
    const rows = await rowsFor(studies, (part) => {
      let conflicted = db.selectFrom('instance as i').innerJoin('series as se', 'se.pk', 'i.series_pk').select('se.study_pk')
        .groupBy('se.study_pk').having((eb: any) => eb(eb.fn.count('i.patient_id_received').distinct(), '>', 1));
      if (part) conflicted = conflicted.innerJoin('study as s2', 's2.pk', 'se.study_pk').where('s2.study_instance_uid', 'in', part);
      return db.selectFrom('instance as i').innerJoin('series as se', 'se.pk', 'i.series_pk').innerJoin('study as s', 's.pk', 'se.study_pk')
        .innerJoin('patient as p', 'p.pk', 's.patient_pk')
        .select(['s.study_instance_uid', 's.accession_number', 'p.patient_id as study_patient_id', 'i.patient_id_received'])
        .select((eb: any) => [eb.fn.countAll().as('n'), eb.fn.min('i.sop_instance_uid').as('example'), eb.fn.min('i.received_at').as('first_at')])
        .where('s.pk', 'in', conflicted)
        .groupBy(['s.study_instance_uid', 's.accession_number', 'p.patient_id', 'i.patient_id_received'])
        .execute();
    });
    const byStudy = new Map<string, any[]>();
    for (const r of rows) byStudy.set(r.study_instance_uid, [...(byStudy.get(r.study_instance_uid) ?? []), r]);
    const findings: DetectedFinding[] = [];
    for (const [uid, group] of byStudy) {
      const studyPatient = group[0].study_patient_id as string;
      const patients = group.map((r) => ({ patientId: r.patient_id_received as string, instances: Number(r.n), exampleSopInstanceUid: r.example as string, firstReceivedAt: r.first_at as string }))
        .sort((a, b) => a.firstReceivedAt.localeCompare(b.firstReceivedAt));
      const others = patients.filter((p) => p.patientId !== studyPatient);
      findings.push({
        kind: 'study-uid-conflict', subject: uid, severity: 'critical',
        summary: `Study Instance UID ${uid} arrived under ${patients.length} patients: ${patients.map((p) => `${p.patientId || '(no Patient ID)'} (${p.instances} instances)`).join(', ')}; indexed under ${studyPatient}`,
        studyInstanceUid: uid, seriesInstanceUid: null, sopInstanceUid: others[0]?.exampleSopInstanceUid ?? null, accessionNumber: group[0].accession_number ?? null, patientId: studyPatient || null,
        objects: { patients, indexedUnder: studyPatient },
        evidence: others.map((p) => ({ attribute: 'PatientID', expected: studyPatient, actual: p.patientId, problem: `${p.instances} instances, e.g. ${p.exampleSopInstanceUid}` })),
      });
    }
    return { findings, considered: studies ?? 'all' };
  },
};

/** The Study Instance UID an instance's own header carries (its stored DICOM JSON metadata). */
function headerStudyUid(engine: SqlEngine) {
  return engine === 'postgres'
    ? sql<string>`(i.metadata::json -> '0020000D' -> 'Value' ->> 0)`
    : sql<string>`json_extract(i.metadata, '$."0020000D".Value[0]')`;
}

/** Series Instance UID under two studies: instances of a series whose own Study Instance UID is not the series' study's. */
export const seriesUidConflictCheck: IntegrityCheck = {
  kind: 'series-uid-conflict',
  async detect({ db, engine }, scope) {
    const studies = scope.all ? null : [...scope.studies];
    const header = headerStudyUid(engine);
    const rows = await rowsFor(studies, (part) => {
      let q = db.selectFrom('instance as i').innerJoin('series as se', 'se.pk', 'i.series_pk').innerJoin('study as s', 's.pk', 'se.study_pk')
        .innerJoin('patient as p', 'p.pk', 's.patient_pk')
        .select(['se.series_instance_uid', 's.study_instance_uid', 's.accession_number', 'p.patient_id', header.as('header_study')])
        .select((eb: any) => [eb.fn.countAll().as('n'), eb.fn.min('i.sop_instance_uid').as('example')])
        .where(sql<boolean>`${header} <> s.study_instance_uid`)
        .groupBy(['se.series_instance_uid', 's.study_instance_uid', 's.accession_number', 'p.patient_id', header]);
      if (part) q = q.where('s.study_instance_uid', 'in', part);
      return q.execute();
    });
    const bySeries = new Map<string, any[]>();
    for (const r of rows) bySeries.set(r.series_instance_uid, [...(bySeries.get(r.series_instance_uid) ?? []), r]);
    const findings: DetectedFinding[] = [];
    for (const [uid, group] of bySeries) {
      const study = group[0].study_instance_uid as string;
      findings.push({
        kind: 'series-uid-conflict', subject: uid, severity: 'critical',
        summary: `Series Instance UID ${uid} arrived in ${group.length + 1} studies: indexed in ${study}, also ${group.map((r) => `${r.header_study} (${Number(r.n)} instances)`).join(', ')}`,
        studyInstanceUid: study, seriesInstanceUid: uid, sopInstanceUid: group[0].example, accessionNumber: group[0].accession_number ?? null, patientId: group[0].patient_id || null,
        objects: { indexedIn: study, otherStudies: group.map((r) => ({ studyInstanceUid: r.header_study, instances: Number(r.n), exampleSopInstanceUid: r.example })) },
        evidence: group.map((r) => ({ attribute: 'StudyInstanceUID', expected: study, actual: r.header_study, problem: `${Number(r.n)} instances, e.g. ${r.example}` })),
      });
    }
    return { findings, considered: studies ?? 'all' };
  },
};

/**
 * Same SOP Instance UID, other content: the quarantine's `duplicate-conflict` entries (the archive kept the
 * stored object and quarantined the other). Always the whole quarantine (it is small); a finding is resolved
 * once its entry is released or deleted (src/archive/quarantine.ts).
 */
export const sopInstanceConflictCheck: IntegrityCheck = {
  kind: 'sop-instance-conflict',
  async detect({ db }) {
    const rows = await db.selectFrom('quarantine as q')
      .leftJoin('instance as i', 'i.sop_instance_uid', 'q.sop_instance_uid')
      .leftJoin('series as se', 'se.pk', 'i.series_pk').leftJoin('study as s', 's.pk', 'se.study_pk').leftJoin('patient as p', 'p.pk', 's.patient_pk')
      .select(['q.pk', 'q.sop_instance_uid', 'q.source', 'q.reason', 'q.sha256 as received_sha256', 'q.received_at', 'i.sha256 as stored_sha256', 'i.source as stored_source',
        'se.series_instance_uid', 's.study_instance_uid', 's.accession_number', 'p.patient_id'])
      .where('q.reason_code', '=', 'duplicate-conflict').orderBy('q.pk').execute();
    const findings: DetectedFinding[] = rows.map((r: any) => ({
      kind: 'sop-instance-conflict', subject: `quarantine:${r.pk}`, severity: 'critical',
      summary: `SOP Instance UID ${r.sop_instance_uid} arrived again from ${r.source} with other content; the stored object was kept and the other quarantined (entry ${r.pk})`,
      studyInstanceUid: r.study_instance_uid ?? null, seriesInstanceUid: r.series_instance_uid ?? null, sopInstanceUid: r.sop_instance_uid, accessionNumber: r.accession_number ?? null,
      patientId: r.patient_id || null,
      objects: { quarantineId: Number(r.pk), quarantine: `/api/quarantine/${r.pk}`, receivedFrom: r.source, receivedAt: r.received_at, storedFrom: r.stored_source ?? null, reason: r.reason },
      evidence: [{ attribute: 'content (SHA-256 of the object)', expected: r.stored_sha256 ?? null, actual: r.received_sha256 }],
    }));
    return { findings, considered: 'all' };
  },
};
