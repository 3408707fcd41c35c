/**
 * The two mirrors: an orphan study (images no order matches, by Accession Number or by the Study Instance UID
 * the order was given, once the study is older than `orphanGraceMinutes`), and an order without images (an
 * order neither cancelled nor discontinued whose scheduled start, or its creation when it has no step, is more
 * than `orderGraceMinutes` ago, and which no study matches).
 */
import { sql } from 'kysely';
import type { DetectedFinding } from '../sql-integrity-store.ts';
import { rowsFor, type IntegrityCheck } from './check.ts';

export const orphanStudyCheck: IntegrityCheck = {
  kind: 'orphan-study',
  async detect({ db, settings, now }, scope) {
    const studies = scope.all ? null : [...scope.studies];
    const cutoff = new Date(now.getTime() - settings.orphanGraceMinutes * 60_000).toISOString();
    const rows = await rowsFor(studies, (part) => {
      let q = db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk')
        .select(['s.study_instance_uid', 's.accession_number', 's.study_date', 's.study_description', 's.created_at', 's.number_of_instances', 'p.patient_id', 'p.patient_name'])
        .where('s.created_at', '<=', cutoff).where('s.number_of_instances', '>', 0)
        .where((eb: any) => eb.not(eb.exists(eb.selectFrom('ris_order_study as os').select(sql`1`.as('x')).whereRef('os.study_instance_uid', '=', 's.study_instance_uid'))))
        .where((eb: any) => eb.not(eb.exists(eb.selectFrom('ris_order as o').select(sql`1`.as('x')).whereRef('o.study_instance_uid', '=', 's.study_instance_uid'))))
        .where((eb: any) => eb.or([eb('s.accession_number', 'is', null),
          eb.not(eb.exists(eb.selectFrom('ris_order as o2').select(sql`1`.as('x')).whereRef('o2.accession_number', '=', 's.accession_number')))]));
      if (part) q = q.where('s.study_instance_uid', 'in', part);
      return q.execute();
    });
    const findings: DetectedFinding[] = rows.map((r: any) => ({
      kind: 'orphan-study', subject: r.study_instance_uid, severity: 'major',
      summary: `study ${r.study_instance_uid} (patient ${r.patient_id || '(none)'}, accession ${r.accession_number ?? '(none)'}) matches no order`,
      studyInstanceUid: r.study_instance_uid, seriesInstanceUid: null, sopInstanceUid: null, accessionNumber: r.accession_number ?? null, patientId: r.patient_id || null,
      objects: { receivedAt: r.created_at, studyDate: r.study_date ?? null, studyDescription: r.study_description ?? null, instances: Number(r.number_of_instances), linkOrder: true },
      evidence: [{ attribute: 'AccessionNumber', expected: 'an order with this Accession Number or Study Instance UID', actual: r.accession_number ?? null, problem: 'no matching order' }],
    }));
    return { findings, considered: studies ?? 'all' };
  },
};

/** DICOM DA+TM as the RIS stores a step's start (`start_at`, YYYYMMDDHHMMSS, the site's local time) for `at`. */
function localStamp(at: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${at.getFullYear()}${p(at.getMonth() + 1)}${p(at.getDate())}${p(at.getHours())}${p(at.getMinutes())}${p(at.getSeconds())}`;
}

export const orderWithoutImagesCheck: IntegrityCheck = {
  kind: 'order-without-images',
  async detect({ db, settings, now }, scope) {
    const accessions = scope.all ? null : [...scope.accessions];
    const cutoff = new Date(now.getTime() - settings.orderGraceMinutes * 60_000);
    const rows = await rowsFor(accessions, (part) => {
      let q = db.selectFrom('ris_order as o').innerJoin('ris_patient as rp', 'rp.pk', 'o.patient_pk')
        .select(['o.accession_number', 'o.study_instance_uid', 'o.status', 'o.created_at', 'o.requested_procedure_description', 'rp.patient_id'])
        .select((eb: any) => eb.selectFrom('ris_procedure_step as st').select((e: any) => e.fn.min('st.start_at').as('m')).whereRef('st.order_pk', '=', 'o.pk').as('start_at'))
        .where('o.status', 'not in', ['cancelled', 'discontinued'])
        .where((eb: any) => eb.not(eb.exists(eb.selectFrom('ris_order_study as os').select(sql`1`.as('x')).whereRef('os.order_pk', '=', 'o.pk'))))
        .where((eb: any) => eb.not(eb.exists(eb.selectFrom('study as s').select(sql`1`.as('x')).whereRef('s.study_instance_uid', '=', 'o.study_instance_uid'))))
        .where((eb: any) => eb.not(eb.exists(eb.selectFrom('study as s2').select(sql`1`.as('x')).whereRef('s2.accession_number', '=', 'o.accession_number'))));
      if (part) q = q.where('o.accession_number', 'in', part);
      return q.execute();
    });
    const stamp = localStamp(cutoff);
    const findings: DetectedFinding[] = [];
    for (const r of rows as any[]) {
      const due = r.start_at ? String(r.start_at).padEnd(14, '0') <= stamp : String(r.created_at) <= cutoff.toISOString();
      if (!due) continue;
      findings.push({
        kind: 'order-without-images', subject: r.accession_number, severity: 'major',
        summary: `order ${r.accession_number} (${r.requested_procedure_description ?? 'procedure'}, patient ${r.patient_id}, ${r.status}) has no images; scheduled ${r.start_at ?? `(no step; ordered ${r.created_at})`}`,
        studyInstanceUid: r.study_instance_uid, seriesInstanceUid: null, sopInstanceUid: null, accessionNumber: r.accession_number, patientId: r.patient_id,
        objects: { order: { accessionNumber: r.accession_number, status: r.status, scheduledStart: r.start_at ?? null, studyInstanceUid: r.study_instance_uid } },
        evidence: [{ attribute: 'images', expected: `a study by ${r.start_at ?? r.created_at} + ${settings.orderGraceMinutes} min`, actual: null, problem: 'none archived' }],
      });
    }
    return { findings, considered: accessions ?? 'all' };
  },
};
