/**
 * The metadata quality sample (seed Step 1; docs/integrity.md): on demand, up to N studies per modality drawn
 * at random, and per modality the share of them
 * - whose Patient ID (and issuer) is the matched order's patient's (by the one identity comparison,
 *   src/dicom/patient-identity.ts), over the sampled studies that match an order;
 * - whose Patient's Name has a consistent format: DICOM PN components (FAMILY^GIVEN...), no comma-separated or
 *   space-separated free text, no stray spaces, and the order's patient's name when there is an order;
 * - whose Accession Number is populated and names an order;
 * - whose Study Description and Referring Physician's Name are populated.
 * The seed's threshold is shown as pass/fail: patient ID accuracy above 99.9 %. Kept as an integrity run.
 */
import { sql } from 'kysely';
import type { Database } from '../../database/database.ts';
import { comparablePersonName, compareIdentity, isWrongPatient } from '../../dicom/patient-identity.ts';
import type { IntegrityRun, SqlIntegrityStore } from './sql-integrity-store.ts';

export const PATIENT_ID_ACCURACY_THRESHOLD = 0.999;

export interface ModalitySample {
  modality: string;
  sampled: number;
  withOrder: number;
  shares: {
    patientIdMatchesOrder: number | null;
    consistentNameFormat: number;
    accessionPopulatedAndMatching: number;
    studyDescriptionPopulated: number;
    referringPhysicianPopulated: number;
  };
  /** Sampled studies failing a test, by test (at most 20 each), for a person to look at. */
  examples: Record<string, string[]>;
}

export interface SampleReport {
  perModality: number;
  modalities: ModalitySample[];
  overall: ModalitySample['shares'] & { sampled: number; withOrder: number };
  patientIdAccuracy: { value: number | null; threshold: number; pass: boolean | null };
}

/** PN written the DICOM way: components separated by ^, none with leading or trailing spaces, no comma. */
export function isConsistentPersonName(name: string | null): boolean {
  if (!name || name.trim() === '') return false;
  const alphabetic = name.split('=')[0]!;
  if (!alphabetic.includes('^') || alphabetic.includes(',')) return false;
  const components = alphabetic.split('^');
  return components.length <= 5 && components.every((c) => c === c.trim() && !/\s{2,}/.test(c)) && components[0] !== '';
}

const share = (n: number, of: number) => (of === 0 ? 0 : Number((n / of).toFixed(6)));

export class MetadataSampler {
  readonly #database: Database;
  readonly #store: SqlIntegrityStore;

  constructor(database: Database, store: SqlIntegrityStore) {
    this.#database = database;
    this.#store = store;
  }

  async sample(options: { perModality: number; modalities: string[] | null }, requestedBy: string): Promise<IntegrityRun> {
    const runId = await this.#store.startRun('sample', requestedBy, null, new Date());
    try {
      const report = await this.#report(options);
      await this.#store.finishRun(runId, { result: report }, new Date());
    } catch (error) {
      await this.#store.finishRun(runId, { error: (error as Error).message }, new Date());
      throw error;
    }
    return (await this.#store.run(runId))!;
  }

  async #report(options: { perModality: number; modalities: string[] | null }): Promise<SampleReport> {
    const db = this.#database.kysely<any>();
    let mq = db.selectFrom('series').select('modality').distinct().where('modality', 'is not', null).where('number_of_instances', '>', 0);
    if (options.modalities) mq = mq.where('modality', 'in', options.modalities);
    const modalities = (await mq.orderBy('modality').execute()).map((r: any) => r.modality as string);
    const result: ModalitySample[] = [];
    const totals = { sampled: 0, withOrder: 0, pid: 0, name: 0, accession: 0, description: 0, referring: 0 };
    for (const modality of modalities) {
      const studies = await db.selectFrom('study as s').innerJoin('patient as p', 'p.pk', 's.patient_pk')
        .select(['s.study_instance_uid', 's.accession_number', 's.study_description', 's.referring_physician_name', 'p.patient_id', 'p.issuer_of_patient_id', 'p.patient_name'])
        .where((eb: any) => eb.exists(eb.selectFrom('series as se').select(sql`1`.as('x')).whereRef('se.study_pk', '=', 's.pk').where('se.modality', '=', modality)))
        .orderBy(sql`random()`).limit(options.perModality).execute();
      const uids = studies.map((s: any) => s.study_instance_uid);
      const accessions = studies.map((s: any) => s.accession_number).filter(Boolean);
      const orders = new Map<string, any>();
      const byUid = new Map<string, any>();
      const orderColumns = ['o.accession_number', 'o.study_instance_uid', 'rp.patient_id', 'rp.issuer_of_patient_id', 'rp.patient_name'] as const;
      if (accessions.length) for (const o of await db.selectFrom('ris_order as o').innerJoin('ris_patient as rp', 'rp.pk', 'o.patient_pk').select(orderColumns).where('o.accession_number', 'in', accessions).execute()) orders.set(o.accession_number, o);
      if (uids.length) for (const o of await db.selectFrom('ris_order as o').innerJoin('ris_patient as rp', 'rp.pk', 'o.patient_pk').select(orderColumns).where('o.study_instance_uid', 'in', uids).execute()) byUid.set(o.study_instance_uid, o);
      const counts = { withOrder: 0, pid: 0, name: 0, accession: 0, description: 0, referring: 0 };
      const examples: Record<string, string[]> = { patientIdMatchesOrder: [], consistentNameFormat: [], accessionPopulatedAndMatching: [], studyDescriptionPopulated: [], referringPhysicianPopulated: [] };
      const fail = (test: string, uid: string) => { if (examples[test]!.length < 20) examples[test]!.push(uid); };
      for (const s of studies as any[]) {
        const byAccession = s.accession_number ? orders.get(s.accession_number) : undefined;
        const order = byAccession ?? byUid.get(s.study_instance_uid);
        if (order) {
          counts.withOrder++;
          const diff = compareIdentity(
            { patientId: order.patient_id, issuerOfPatientId: order.issuer_of_patient_id, patientName: null, patientBirthDate: null, patientSex: null },
            { patientId: s.patient_id, issuerOfPatientId: s.issuer_of_patient_id, patientName: null, patientBirthDate: null, patientSex: null });
          if (!isWrongPatient(diff)) counts.pid++; else fail('patientIdMatchesOrder', s.study_instance_uid);
        }
        const nameOk = isConsistentPersonName(s.patient_name)
          && (!order?.patient_name || comparablePersonName(order.patient_name) === comparablePersonName(s.patient_name));
        if (nameOk) counts.name++; else fail('consistentNameFormat', s.study_instance_uid);
        if (byAccession) counts.accession++; else fail('accessionPopulatedAndMatching', s.study_instance_uid);
        if (s.study_description?.trim()) counts.description++; else fail('studyDescriptionPopulated', s.study_instance_uid);
        if (s.referring_physician_name?.trim()) counts.referring++; else fail('referringPhysicianPopulated', s.study_instance_uid);
      }
      const n = studies.length;
      result.push({
        modality, sampled: n, withOrder: counts.withOrder, examples,
        shares: {
          patientIdMatchesOrder: counts.withOrder ? share(counts.pid, counts.withOrder) : null, consistentNameFormat: share(counts.name, n),
          accessionPopulatedAndMatching: share(counts.accession, n), studyDescriptionPopulated: share(counts.description, n), referringPhysicianPopulated: share(counts.referring, n),
        },
      });
      totals.sampled += n; totals.withOrder += counts.withOrder; totals.pid += counts.pid; totals.name += counts.name;
      totals.accession += counts.accession; totals.description += counts.description; totals.referring += counts.referring;
    }
    const accuracy = totals.withOrder ? share(totals.pid, totals.withOrder) : null;
    return {
      perModality: options.perModality, modalities: result,
      overall: {
        sampled: totals.sampled, withOrder: totals.withOrder, patientIdMatchesOrder: accuracy, consistentNameFormat: share(totals.name, totals.sampled),
        accessionPopulatedAndMatching: share(totals.accession, totals.sampled), studyDescriptionPopulated: share(totals.description, totals.sampled),
        referringPhysicianPopulated: share(totals.referring, totals.sampled),
      },
      // Not rounded for the verdict: 999 of 1000 is 99.9 %, which is not above 99.9 %.
      patientIdAccuracy: { value: accuracy, threshold: PATIENT_ID_ACCURACY_THRESHOLD, pass: totals.withOrder ? totals.pid / totals.withOrder > PATIENT_ID_ACCURACY_THRESHOLD : null },
    };
  }
}
