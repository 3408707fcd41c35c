/**
 * Quality benchmark (issue 11): the full integrity sweep (every check) over an index of 100k instances in 10k
 * studies and 10k orders, seeded as rows directly (as bench/fhir.ts and bench/ris.ts seed theirs), on SQLite
 * (a fresh data folder) and, with --postgres <url>, on PostgreSQL; seconds and the process's peak RSS; and
 * dose extraction per RDSR in ms over ../shared/testdata/dose. The seeded index holds, per 1000 studies,
 * 10 of each problem (wrong patient, two patients under one study UID, a series in two studies, a missing
 * accession, an orphan) and 10 orders without images. A benchmark, not a test. See docs/benchmarks.md.
 *
 *   npm run bench:quality -- [--studies 10000] [--per-study 10] [--repeat 3] [--postgres <url>] [--dose-rounds 20]
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { MODULES } from '../src/app.ts';
import { Database } from '../src/database/database.ts';
import { migrationsOf } from '../src/modules/module.ts';
import { INTEGRITY_KINDS } from '../src/quality/config.ts';
import { IntegrityService } from '../src/quality/integrity/integrity-service.ts';
import { SqlIntegrityStore } from '../src/quality/integrity/sql-integrity-store.ts';
import { readDoseReport } from '../src/quality/dose/read-dose-report.ts';

const { values } = parseArgs({ options: {
  studies: { type: 'string', default: '10000' }, 'per-study': { type: 'string', default: '10' }, repeat: { type: 'string', default: '3' },
  postgres: { type: 'string' }, 'dose-rounds': { type: 'string', default: '20' },
} });
const STUDIES = Number(values.studies);
const PER_STUDY = Number(values['per-study']);

async function seed(db: Database): Promise<void> {
  const k = db.kysely<any>();
  const now = new Date(Date.now() - 86_400_000 * 3).toISOString();
  const batch = async (table: string, rows: Record<string, unknown>[]) => { for (let i = 0; i < rows.length; i += 500) await k.insertInto(table).values(rows.slice(i, i + 500)).execute(); };
  const uid = (i: number) => `1.2.826.0.1.3680043.10.999.${i}`;
  const patients = [], risPatients = [], orders = [], studies = [], series = [], instances = [], steps = [];
  for (let i = 0; i < STUDIES; i++) {
    const pid = `P${i}`;
    patients.push({ patient_id: pid, issuer_of_patient_id: '', patient_name: `DOE^PATIENT${i}`, patient_name_search: `DOE^PATIENT${i}`, patient_birth_date: '19800101', patient_sex: 'F', created_at: now });
    risPatients.push({ patient_id: i % 100 === 1 ? `RIS${i}` : pid, issuer_of_patient_id: 'HOSP', patient_name: `DOE^PATIENT${i}`, patient_name_search: `DOE^PATIENT${i}`, patient_birth_date: '19800101', patient_sex: 'F', other_identifiers: '[]', status: 'active', merged_into_pk: null, created_at: now, updated_at: now });
  }
  await batch('patient', patients);
  await batch('ris_patient', risPatients);
  for (let i = 0; i < STUDIES; i++) {
    const orphan = i % 100 === 5;
    const accession = i % 100 === 4 ? null : `ACC${i}`;
    orders.push({ patient_pk: i + 1, accession_number: orphan ? `ORD${i}` : (accession ?? `ORD${i}`), priority: 'routine', screening: 0, study_instance_uid: i % 100 === 4 ? uid(i) : `2.25.${i}`, status: 'scheduled', created_at: now, updated_at: now,
      requested_procedure_description: 'CT HEAD' });
    steps.push({ order_pk: i + 1, step_id: `S${i}`, modality: 'CT', start_date: '20240101', start_time: '100000', start_at: '20240101100000', protocol_codes: '[]', status: 'SCHEDULED', updated_at: now });
    studies.push({ patient_pk: i + 1, study_instance_uid: uid(i), study_date: '20240101', accession_number: accession, study_description: `CT HEAD ${i}`, referring_physician_name: 'REF^RITA',
      modalities_in_study: 'CT', sop_classes_in_study: '1.2.840.10008.5.1.4.1.1.2', number_of_series: 1, number_of_instances: PER_STUDY, size_bytes: 0, created_at: now, updated_at: now });
    series.push({ study_pk: i + 1, series_instance_uid: `${uid(i)}.1`, modality: 'CT', number_of_instances: PER_STUDY, size_bytes: 0, created_at: now, updated_at: now });
  }
  // 10 orders per 1000 with no images at all.
  for (let i = 0; i < STUDIES / 100; i++) orders.push({ patient_pk: 1, accession_number: `NOIMG${i}`, priority: 'routine', screening: 0, study_instance_uid: `2.26.${i}`, status: 'scheduled', created_at: now, updated_at: now });
  await batch('ris_order', orders);
  await batch('ris_procedure_step', steps);
  await batch('study', studies);
  await batch('series', series);
  let pk = 0;
  for (let i = 0; i < STUDIES; i++) {
    for (let j = 0; j < PER_STUDY; j++) {
      const headerStudy = i % 100 === 3 && j === 0 ? uid(i + 1) : uid(i);
      const metadata = JSON.stringify({ '00080018': { vr: 'UI', Value: [`${uid(i)}.1.${j}`] }, '0020000D': { vr: 'UI', Value: [headerStudy] }, '0020000E': { vr: 'UI', Value: [`${uid(i)}.1`] },
        '00100010': { vr: 'PN', Value: [{ Alphabetic: `DOE^PATIENT${i}` }] }, '00100020': { vr: 'LO', Value: [`P${i}`] }, '00080060': { vr: 'CS', Value: ['CT'] }, '00280010': { vr: 'US', Value: [512] } });
      instances.push({ series_pk: i + 1, sop_instance_uid: `${uid(i)}.1.${j}`, sop_class_uid: '1.2.840.10008.5.1.4.1.1.2', instance_number: j + 1, transfer_syntax_uid: '1.2.840.10008.1.2.1',
        patient_id_received: i % 100 === 2 && j === 0 ? `OTHER${i}` : `P${i}`, blob_key: `k${++pk}`, size_bytes: 0, sha256: '', dataset_sha256: '', metadata, source: 'bench', received_at: now });
    }
    if (instances.length >= 5000) await batch('instance', instances.splice(0));
  }
  await batch('instance', instances);
}

async function sweep(label: string, config: ConstructorParameters<typeof Object>[0]): Promise<void> {
  const db = Database.open(config as any);
  await db.migrate(migrationsOf(MODULES));
  const seeded = performance.now();
  await seed(db);
  console.log(`${label}: seeded ${STUDIES} studies, ${STUDIES * PER_STUDY} instances, ${STUDIES + STUDIES / 100} orders in ${((performance.now() - seeded) / 1000).toFixed(1)} s`);
  const store = new SqlIntegrityStore(db);
  const service = new IntegrityService({ database: db, store, log: pino({ level: 'silent' }),
    settings: () => ({ checks: [...INTEGRITY_KINDS], sweepIntervalMinutes: 0, orphanGraceMinutes: 60, orderGraceMinutes: 60 }) });
  for (let r = 0; r < Number(values.repeat); r++) {
    const started = performance.now();
    const checks = await service.check({ all: true }, `bench:${r}`);
    const seconds = (performance.now() - started) / 1000;
    console.log(`${label}: sweep ${r + 1}: ${seconds.toFixed(2)} s, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; `
      + checks.map((c) => `${c.kind} ${c.detected}${c.opened ? ` (+${c.opened})` : ''}`).join(', '));
  }
  await db.close();
}

const tmp = await mkdtemp(path.join(os.tmpdir(), 'atrium-bench-quality-'));
try {
  await sweep('sqlite', { engine: 'sqlite', path: path.join(tmp, 'index.sqlite') });
  if (values.postgres) await sweep('postgres', { engine: 'postgres', connectionString: values.postgres });
} finally {
  await rm(tmp, { recursive: true, force: true });
}

const DOSE = new URL('../../shared/testdata/dose/', import.meta.url);
const files = (await readdir(DOSE)).filter((f) => f.endsWith('.dcm')).sort();
for (const f of files) {
  const bytes = await readFile(new URL(f, DOSE));
  await readDoseReport([bytes]);
  const rounds = Number(values['dose-rounds']);
  const started = performance.now();
  let events = 0;
  for (let i = 0; i < rounds; i++) { const x = await readDoseReport([bytes]); events = x.dose ? x.events.length : 0; }
  console.log(`dose extraction ${f}: ${((performance.now() - started) / rounds).toFixed(2)} ms per report (${(bytes.length / 1024).toFixed(0)} KiB, ${events} events)`);
}
