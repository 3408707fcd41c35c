/**
 * Study-level data for the QIDO-RS part of the DICOMweb benchmark, from one deterministic description
 * (a seeded generator) used three ways:
 * - `seedAtriumIndex`: rows written straight into the index (SQLite of a stopped data folder, or PostgreSQL)
 *   (patient, study, series, instance), 100k instances in seconds; no blobs (QIDO never opens them);
 * - `smallInstances`: the same kind of studies as real Part-10 objects with tiny images, to load a server
 *   (Orthanc, or Atrium for a same-scale comparison) through STOW-RS;
 * - `qidoQueries`: a fixed list of study searches that match that data, like a viewer's study list.
 */
import { sql } from 'kysely';
import { openDatabase } from '../../src/app.ts';
import type { DatabaseConfig } from '../../src/database/database.ts';
import type { AtriumDatabase } from '../../src/adapters/index/schema.ts';
import { searchableName } from '../../src/adapters/index/matching.ts';
import { syntheticInstance } from '../../src/synthetic/synthetic-instance.ts';

export const FAMILY = [
  'SMITH', 'JOHNSON', 'WILLIAMS', 'BROWN', 'JONES', 'GARCIA', 'MILLER', 'DAVIS', 'RODRIGUEZ', 'MARTINEZ',
  'HERNANDEZ', 'LOPEZ', 'GONZALEZ', 'WILSON', 'ANDERSON', 'THOMAS', 'TAYLOR', 'MOORE', 'JACKSON', 'MARTIN',
  'LEE', 'PEREZ', 'THOMPSON', 'WHITE', 'HARRIS', 'SANCHEZ', 'CLARK', 'RAMIREZ', 'LEWIS', 'ROBINSON',
  'WALKER', 'YOUNG', 'ALLEN', 'KING', 'WRIGHT', 'SCOTT', 'TORRES', 'NGUYEN', 'HILL', 'FLORES',
  'GREEN', 'ADAMS', 'NELSON', 'BAKER', 'HALL', 'RIVERA', 'CAMPBELL', 'MITCHELL', 'CARTER', 'ROBERTS',
  'MULLER', 'SCHMIDT', 'SCHNEIDER', 'FISCHER', 'WEBER', 'DUBOIS', 'BERNARD', 'ROSSI', 'RUSSO', 'FERRARI',
];
export const GIVEN = [
  'JAMES', 'MARY', 'JOHN', 'PATRICIA', 'ROBERT', 'JENNIFER', 'MICHAEL', 'LINDA', 'WILLIAM', 'ELIZABETH',
  'DAVID', 'BARBARA', 'RICHARD', 'SUSAN', 'JOSEPH', 'JESSICA', 'THOMAS', 'SARAH', 'CHARLES', 'KAREN',
  'ANNA', 'LUCAS', 'EMMA', 'NOAH', 'MARIE', 'PAUL', 'SOPHIE', 'LEON', 'CLARA', 'HUGO',
];
/** Modality mix of the studies (weights), with two-series studies for PET/CT. */
const MODALITY_MIX: [string[], number][] = [
  [['CT'], 30], [['MR'], 20], [['CR'], 12], [['DX'], 10], [['US'], 10], [['PT', 'CT'], 5], [['MG'], 6], [['NM'], 3], [['XA'], 4],
];
const DESCRIPTIONS: Record<string, string[]> = {
  CT: ['CT CHEST W CONTRAST', 'CT HEAD WO CONTRAST', 'CT ABDOMEN PELVIS'], MR: ['MRI BRAIN', 'MRI KNEE LEFT', 'MRI LUMBAR SPINE'],
  CR: ['XR CHEST 2 VIEWS'], DX: ['XR HAND RIGHT', 'XR FOOT LEFT'], US: ['US ABDOMEN', 'US THYROID'], PT: ['PET CT WHOLE BODY'],
  MG: ['MAMMO SCREENING BILATERAL'], NM: ['NM BONE SCAN'], XA: ['CORONARY ANGIOGRAPHY'],
};
export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
/** First and last study dates of the generated data (inclusive). */
const FIRST_DAY = Date.UTC(2015, 0, 1);
const DAYS = Math.floor((Date.UTC(2026, 9, 31) - FIRST_DAY) / 86_400_000) + 1;

/** A small, seeded pseudo-random generator (mulberry32): the same data and queries on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)];
const dayString = (day: number) => new Date(FIRST_DAY + day * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
const pad = (n: number, w: number) => String(n).padStart(w, '0');

export interface PatientSpec { id: string; name: string; birthDate: string; sex: string }
export interface SeriesSpec { uid: string; modality: string; number: number; instances: number }
export interface StudySpec {
  index: number;
  uid: string;
  patient: PatientSpec;
  date: string;
  time: string;
  accession: string;
  description: string;
  referringPhysician: string;
  series: SeriesSpec[];
}

/**
 * `studies` studies of `instancesPerStudy` instances each (split over the study's 1 or 2 series), for
 * about studies / 3 patients. UIDs are made from `uidRoot` and the indexes, so two calls with the same
 * arguments describe the same data.
 */
export function describeStudies(studies: number, instancesPerStudy: number, uidRoot: string, seed = 42): StudySpec[] {
  const r = rng(seed);
  const patients: PatientSpec[] = Array.from({ length: Math.max(1, Math.ceil(studies / 3)) }, (_, i) => ({
    id: `PID${pad(i, 6)}`,
    name: `${pick(r, FAMILY)}^${pick(r, GIVEN)}`,
    birthDate: dayString(Math.floor(r() * DAYS)).replace(/^20(1|2)/, (_, d: string) => `19${d === '1' ? '5' : '7'}`),
    sex: r() < 0.5 ? 'F' : 'M',
  }));
  const totalWeight = MODALITY_MIX.reduce((s, [, w]) => s + w, 0);
  const out: StudySpec[] = [];
  for (let s = 0; s < studies; s++) {
    let x = r() * totalWeight;
    const modalities = MODALITY_MIX.find(([, w]) => (x -= w) < 0)?.[0] ?? ['CT'];
    const per = Math.floor(instancesPerStudy / modalities.length);
    out.push({
      index: s,
      uid: `${uidRoot}.${s + 1}`,
      patient: pick(r, patients),
      date: dayString(Math.floor(r() * DAYS)),
      time: `${pad(7 + Math.floor(r() * 12), 2)}${pad(Math.floor(r() * 60), 2)}${pad(Math.floor(r() * 60), 2)}`,
      accession: `A${pad(s + 1, 8)}`,
      description: pick(r, DESCRIPTIONS[modalities[0]] ?? ['STUDY']),
      referringPhysician: `${pick(r, FAMILY)}^${pick(r, GIVEN)}`,
      series: modalities.map((modality, i) => ({
        uid: `${uidRoot}.${s + 1}.${i + 1}`, modality, number: i + 1,
        instances: i === modalities.length - 1 ? instancesPerStudy - per * (modalities.length - 1) : per,
      })),
    });
  }
  return out;
}

/** A DICOM JSON data set like the one ingest stores for a synthetic instance of `study` (about 1.5 KB). */
function metadataJson(study: StudySpec, series: SeriesSpec, sopInstanceUid: string, instanceNumber: number, rows: number): string {
  const v = (vr: string, value: unknown) => ({ vr, Value: [value] });
  return JSON.stringify({
    '00020001': { vr: 'OB', BulkDataURI: 'bulkdata/00020001' }, '00020002': v('UI', CT_IMAGE_STORAGE), '00020003': v('UI', sopInstanceUid),
    '00020010': v('UI', EXPLICIT_LE), '00020012': v('UI', '1.2.826.0.1.3680043.10.1444'),
    '00080005': v('CS', 'ISO_IR 192'), '00080008': { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', 'AXIAL'] },
    '00080016': v('UI', CT_IMAGE_STORAGE), '00080018': v('UI', sopInstanceUid), '00080020': v('DA', study.date), '00080030': v('TM', study.time),
    '00080050': v('SH', study.accession), '00080060': v('CS', series.modality), '00080090': v('PN', { Alphabetic: study.referringPhysician }),
    '00081030': v('LO', study.description), '0008103E': v('LO', `${series.modality} SERIES ${series.number}`),
    '00100010': v('PN', { Alphabetic: study.patient.name }), '00100020': v('LO', study.patient.id),
    '00100030': v('DA', study.patient.birthDate), '00100040': v('CS', study.patient.sex),
    '0020000D': v('UI', study.uid), '0020000E': v('UI', series.uid), '00200010': v('SH', '1'), '00200011': v('IS', series.number),
    '00200013': v('IS', instanceNumber), '00280002': v('US', 1), '00280004': v('CS', 'MONOCHROME2'), '00280010': v('US', rows),
    '00280011': v('US', rows), '00280100': v('US', 16), '00280101': v('US', 12), '00280102': v('US', 11), '00280103': v('US', 0),
    '7FE00010': { vr: 'OW', BulkDataURI: 'bulkdata/7FE00010' },
  });
}

/**
 * Writes `studies` into the SQLite index at `indexPath` (created and migrated by `openDatabase`; the
 * Atrium that will serve it must be stopped). Rows are what ingest would have written, with counters,
 * ModalitiesInStudy and SOPClassesInStudy filled in; the first instance of each series carries a full
 * metadata JSON (what study-level QIDO reads for attributes that are not index columns), the others `{}`.
 * Blob keys point at nothing. Returns the instance count.
 */
export async function seedAtriumIndex(target: string | DatabaseConfig, studies: StudySpec[], onProgress?: (studiesDone: number) => void): Promise<number> {
  // A path is the SQLite index of a data folder; a DatabaseConfig may name PostgreSQL (bench:qido seeds both).
  const config: DatabaseConfig = typeof target === 'string' ? { engine: 'sqlite', path: target } : target;
  const database = await openDatabase(config);
  const db = database.kysely<AtriumDatabase>();
  const now = new Date().toISOString();
  const SIZE = 525_000;
  let instances = 0;
  try {
    const patientPk = new Map<string, number>();
    const BATCH = 500; // studies per transaction
    for (let from = 0; from < studies.length; from += BATCH) {
      const batch = studies.slice(from, from + BATCH);
      await db.transaction().execute(async (tx) => {
        for (const st of batch) {
          let ppk = patientPk.get(st.patient.id);
          if (ppk === undefined) {
            const row = await tx.insertInto('patient').values({
              patient_id: st.patient.id, issuer_of_patient_id: '', patient_name: st.patient.name, patient_name_search: searchableName(st.patient.name),
              patient_birth_date: st.patient.birthDate, patient_sex: st.patient.sex, created_at: now,
            }).returning('pk').executeTakeFirstOrThrow();
            ppk = Number(row.pk);
            patientPk.set(st.patient.id, ppk);
          }
          const count = st.series.reduce((n, s) => n + s.instances, 0);
          const studyRow = await tx.insertInto('study').values({
            patient_pk: ppk, study_instance_uid: st.uid, study_date: st.date, study_time: st.time, accession_number: st.accession,
            study_description: st.description, referring_physician_name: st.referringPhysician, study_id: '1', timezone_offset_from_utc: null,
            patient_age: null, patient_size: null, patient_weight: null,
            modalities_in_study: [...new Set(st.series.map((s) => s.modality))].sort().join('\\'), sop_classes_in_study: CT_IMAGE_STORAGE,
            number_of_series: st.series.length, number_of_instances: count, size_bytes: count * SIZE, created_at: now, updated_at: now,
          }).returning('pk').executeTakeFirstOrThrow();
          for (const se of st.series) {
            const seriesRow = await tx.insertInto('series').values({
              study_pk: Number(studyRow.pk), series_instance_uid: se.uid, modality: se.modality, series_number: se.number,
              series_description: `${se.modality} SERIES ${se.number}`, body_part_examined: null, series_date: st.date, series_time: st.time,
              performed_procedure_step_start_date: null, performed_procedure_step_start_time: null, institution_name: 'BENCH HOSPITAL',
              station_name: null, manufacturer: 'ATRIUM-BENCH', laterality: null, requested_procedure_id: null, scheduled_procedure_step_id: null,
              number_of_instances: se.instances, size_bytes: se.instances * SIZE, created_at: now, updated_at: now,
            }).returning('pk').executeTakeFirstOrThrow();
            const rows = Array.from({ length: se.instances }, (_, i) => {
              const sop = `${se.uid}.${i + 1}`;
              return {
                series_pk: Number(seriesRow.pk), sop_instance_uid: sop, sop_class_uid: CT_IMAGE_STORAGE, instance_number: i + 1,
                transfer_syntax_uid: EXPLICIT_LE, number_of_frames: null, rows: 512, columns: 512, content_date: st.date, content_time: st.time,
                patient_id_received: st.patient.id, blob_key: `bench/none/${sop}.dcm`, size_bytes: SIZE,
                sha256: '0'.repeat(64), dataset_sha256: '0'.repeat(64), pixel_data: null,
                metadata: i === 0 ? metadataJson(st, se, sop, 1, 512) : '{}', source: 'bench-seed', received_at: now,
              };
            });
            await tx.insertInto('instance').values(rows).execute();
            instances += rows.length;
          }
        }
      });
      onProgress?.(Math.min(from + BATCH, studies.length));
    }
    // What the server would see after a checkpoint; no ANALYZE on SQLite (ingest never runs one either). On
    // PostgreSQL autovacuum analyzes a table this size soon after such an insert: done at once here.
    if (config.engine === 'sqlite') await sql`pragma wal_checkpoint(truncate)`.execute(db);
    else await sql`analyze`.execute(db);
  } finally {
    await database.close();
  }
  return instances;
}

/** The studies as Part-10 objects with `rows` x `rows` 16-bit images (64 -> about 9 KB each), in memory. */
export function smallInstances(studies: StudySpec[], rows = 64): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const st of studies) {
    for (const se of st.series) {
      for (let i = 0; i < se.instances; i++) {
        const chunks = [...syntheticInstance({
          patientId: st.patient.id, patientName: st.patient.name, studyInstanceUid: st.uid, seriesInstanceUid: se.uid,
          sopInstanceUid: `${se.uid}.${i + 1}`, accessionNumber: st.accession, studyDate: st.date, studyTime: st.time, modality: se.modality,
          instanceNumber: i + 1, rows, columns: rows, seed: st.index * 100 + i, studyDescription: st.description,
          referringPhysicianName: st.referringPhysician, seriesNumber: se.number, seriesDescription: `${se.modality} SERIES ${se.number}`,
        })];
        out.push(Buffer.concat(chunks));
      }
    }
  }
  return out;
}

export interface QidoQuery {
  kind: string;
  /** The query string after `/studies?`. */
  query: string;
}

/**
 * `n` study searches over `studies`, each as a viewer's study list sends it (OHIF: limit=101, offset=0,
 * fuzzymatching=false, includefield=00081030,00080060), cycling through kinds: patient name prefix,
 * date range (a week, a month), modality with a month, modality alone, patient ID, accession number,
 * family and given name prefixes, and no filter (the default list).
 */
export function qidoQueries(studies: StudySpec[], n: number, seed = 7): QidoQuery[] {
  const r = rng(seed);
  const ohif = 'limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060';
  const range = (days: number) => {
    const start = Math.floor(r() * (DAYS - days));
    return `${dayString(start)}-${dayString(start + days - 1)}`;
  };
  const modality = () => pick(r, ['CT', 'MR', 'CR', 'US', 'PT', 'MG']);
  const kinds: (() => QidoQuery)[] = [
    () => ({ kind: 'PatientName prefix', query: `PatientName=${pick(r, FAMILY).slice(0, 2 + Math.floor(r() * 2))}*` }),
    () => ({ kind: 'StudyDate week', query: `StudyDate=${range(7)}` }),
    () => ({ kind: 'StudyDate month + modality', query: `StudyDate=${range(30)}&ModalitiesInStudy=${modality()}` }),
    () => ({ kind: 'ModalitiesInStudy', query: `ModalitiesInStudy=${modality()}` }),
    () => ({ kind: 'PatientID', query: `PatientID=${pick(r, studies).patient.id}` }),
    () => ({ kind: 'AccessionNumber', query: `AccessionNumber=${pick(r, studies).accession}` }),
    // Family name and the start of the given name, joined by a wild card rather than the `^` separator:
    // with Orthanc 1.10 and its DICOMweb plugin 1.7, "BROWN^EMMA*" matched nothing (Atrium: the patient's studies).
    () => {
      const [family, given] = pick(r, studies).patient.name.split('^');
      return { kind: 'PatientName family+given', query: `PatientName=${family}*${given.slice(0, 2)}*` };
    },
    () => ({ kind: 'no filter', query: '' }),
  ];
  return Array.from({ length: n }, (_, i) => {
    const q = kinds[i % kinds.length]();
    return { kind: q.kind, query: q.query ? `${q.query}&${ohif}` : ohif };
  });
}
