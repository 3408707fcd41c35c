/**
 * Orders of a radiology department for the RIS benchmark, from one seeded generator (the same data on
 * every run for the same size and day), used four ways:
 * - `ormMessage`: each order as an HL7 v2.5.1 ORM^O01 NW message, the way a RIS sends it (IHE SWF: PID, PV1,
 *   ORC, OBR with the accession number in OBR-18 and the step in OBR-19..24);
 * - `seedRisWorklist`: rows written straight into the RIS tables of a stopped Atrium data folder (patients,
 *   orders, scheduled procedure steps and the two timeline entries `place` writes), 100k steps in seconds;
 * - `writeWorklistFiles`: the same orders as DCMTK `wlmscpfs` worklist files (one .wl file per step);
 * - `worklistQueries`: `findscu -W` queries on that data (a modality's query for its day, a patient ID, an
 *   accession number).
 *
 * The department: 22 stations over 9 modalities, each with its number of exams per day (about 800 a day in
 * all), from two days ago on: 10k steps are about 12 days of schedule, 100k about 4 months. A station's day
 * has the same number of steps at every size, so a modality's query for today finds about as many items
 * at 10k as at 100k: what grows is the table the query has to find them in. The steps are shuffled before
 * they get their keys, so that insertion (primary key) order says nothing about dates or stations.
 */
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openDatabase } from '../../src/app.ts';
import { searchableName } from '../../src/adapters/index/matching.ts';
import { FAMILY, GIVEN, rng } from './study-index.ts';

interface Station { ae: string; modality: string; name: string; location: string; perDay: number }
const STATION_SPECS: [modality: string, count: number, perDay: number][] = [
  ['CT', 4, 50], ['MR', 3, 25], ['CR', 3, 60], ['DX', 2, 60], ['US', 4, 35], ['MG', 2, 30], ['NM', 1, 12], ['XA', 1, 10], ['PT', 2, 15],
];
export const STATIONS: Station[] = STATION_SPECS.flatMap(([modality, count, perDay]) => Array.from({ length: count }, (_, i) => ({
  ae: `${modality}${String(i + 1).padStart(2, '0')}`, modality, name: `${modality} ROOM ${i + 1}`, location: `RAD-${modality}-${i + 1}`, perDay,
})));
const PER_DAY = STATIONS.reduce((n, s) => n + s.perDay, 0);

/** Requested procedures by modality: code (local scheme "L"), meaning. */
const PROCEDURES: Record<string, [string, string][]> = {
  CT: [['CTCHESTC', 'CT CHEST W CONTRAST'], ['CTHEAD', 'CT HEAD WO CONTRAST'], ['CTABDPEL', 'CT ABDOMEN PELVIS W CONTRAST'], ['CTSPINEL', 'CT LUMBAR SPINE']],
  MR: [['MRBRAIN', 'MRI BRAIN WO CONTRAST'], ['MRKNEEL', 'MRI KNEE LEFT'], ['MRLSPINE', 'MRI LUMBAR SPINE']],
  CR: [['XRCHEST2', 'XR CHEST 2 VIEWS'], ['XRPELVIS', 'XR PELVIS AP']],
  DX: [['XRHANDR', 'XR HAND RIGHT 3 VIEWS'], ['XRFOOTL', 'XR FOOT LEFT 3 VIEWS'], ['XRKNEER', 'XR KNEE RIGHT 2 VIEWS']],
  US: [['USABD', 'US ABDOMEN COMPLETE'], ['USTHYR', 'US THYROID'], ['USPELV', 'US PELVIS TRANSVAGINAL']],
  MG: [['MGSCRBI', 'MAMMO SCREENING BILATERAL'], ['MGDIAGL', 'MAMMO DIAGNOSTIC LEFT']],
  NM: [['NMBONE', 'NM BONE SCAN WHOLE BODY']],
  XA: [['XACORO', 'CORONARY ANGIOGRAPHY']],
  PT: [['PTCTWB', 'PET CT WHOLE BODY FDG']],
};
const REASONS = ['R/O PNEUMONIA', 'FOLLOW-UP', 'PAIN', 'TRAUMA', 'SCREENING', 'STAGING', 'R/O FRACTURE', 'HEADACHE'];
const PRIORITIES: [code: string, priority: string, weight: number][] = [['R', 'ROUTINE', 85], ['T', 'URGENT', 8], ['S', 'STAT', 4], ['A', 'ASAP', 3]];

export interface PatientSpec { id: string; issuer: string; name: string; birthDate: string; sex: 'F' | 'M' }

export interface OrderSpec {
  /** 0-based, in key order (the shuffled order): accession, placer and filler numbers come from it. */
  index: number;
  patient: PatientSpec;
  placerOrderNumber: string;
  fillerOrderNumber: string;
  accessionNumber: string;
  requestedProcedureId: string;
  procedure: { code: string; meaning: string; scheme: string };
  priority: { hl7: string; atrium: string };
  reason: string;
  referringPhysician: string;
  orderingPhysician: string;
  studyInstanceUid: string;
  step: { stepId: string; modality: string; stationAeTitle: string; stationName: string; location: string; startDate: string; startTime: string; performingPhysician: string };
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');
const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)]!;
/** YYYYMMDD of `day` days after `base` (UTC calendar days). */
export function dicomDate(base: Date, day = 0): string {
  return new Date(Date.UTC(base.getUTCFullYear(), base.getUTCMonth(), base.getUTCDate() + day)).toISOString().slice(0, 10).replace(/-/g, '');
}
/** Today as the bench's machine sees it (local date): what a modality would ask for. */
export function localToday(): Date {
  const now = new Date();
  return new Date(Date.UTC(now.getFullYear(), now.getMonth(), now.getDate()));
}

/**
 * `count` orders of one scheduled procedure step each: stations' days filled from `today` - 2 days on, then
 * shuffled. One order in three is for a patient who already has one (a second exam), the others for a
 * new patient. Deterministic for (count, today, seed).
 */
export function describeOrders(count: number, today: Date, seed = 9): OrderSpec[] {
  const r = rng(seed);
  const slots: { station: Station; day: number; slot: number }[] = [];
  for (let day = -2; slots.length < count; day++) {
    for (const station of STATIONS) {
      for (let slot = 0; slot < station.perDay && slots.length < count; slot++) slots.push({ station, day, slot });
    }
  }
  // Fisher-Yates with the seeded generator: key order independent of date and station.
  for (let i = slots.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [slots[i], slots[j]] = [slots[j]!, slots[i]!];
  }
  const patients: PatientSpec[] = [];
  const totalWeight = PRIORITIES.reduce((n, [, , w]) => n + w, 0);
  const person = () => `${pick(r, FAMILY)}^${pick(r, GIVEN)}`;
  return slots.map(({ station, day, slot }, index) => {
    let patient: PatientSpec;
    if (patients.length > 0 && r() < 1 / 3) patient = pick(r, patients);
    else {
      const birth = new Date(Date.UTC(1930 + Math.floor(r() * 85), Math.floor(r() * 12), 1 + Math.floor(r() * 28)));
      patient = { id: `MRN${pad(patients.length + 1, 7)}`, issuer: 'HOSP', name: `${pick(r, FAMILY)}^${pick(r, GIVEN)}`, birthDate: dicomDate(birth), sex: r() < 0.5 ? 'F' : 'M' };
      patients.push(patient);
    }
    // Slots spread over 07:00 to 19:00.
    const minutes = 7 * 60 + Math.floor((slot * 12 * 60) / station.perDay);
    let x = r() * totalWeight;
    const [hl7Priority, atriumPriority] = PRIORITIES.find(([, , w]) => (x -= w) < 0) ?? PRIORITIES[0]!;
    const [code, meaning] = pick(r, PROCEDURES[station.modality]!);
    const n = index + 1;
    return {
      index, patient,
      placerOrderNumber: `PL${pad(n, 8)}`, fillerOrderNumber: `FL${pad(n, 8)}`, accessionNumber: `ACC${pad(n, 8)}`, requestedProcedureId: `RP${pad(n, 8)}`,
      procedure: { code, meaning, scheme: 'L' }, priority: { hl7: hl7Priority, atrium: atriumPriority }, reason: pick(r, REASONS),
      referringPhysician: person(), orderingPhysician: person(),
      studyInstanceUid: `1.2.826.0.1.3680043.10.1444.9.${n}`,
      step: {
        stepId: `SPS${pad(n, 8)}`, modality: station.modality, stationAeTitle: station.ae, stationName: station.name, location: station.location,
        startDate: dicomDate(today, day), startTime: `${pad(Math.floor(minutes / 60), 2)}${pad(minutes % 60, 2)}00`, performingPhysician: person(),
      },
    };
  });
}

/** How many days of schedule `count` steps are (from two days ago). */
export function scheduleDays(count: number): number {
  return Math.ceil(count / PER_DAY);
}

// ---------------------------------------------------------------------------------------------- HL7

/** DICOM PN family^given -> HL7 XPN family^given; XCN: id^family^given. */
const xcn = (id: string, pn: string) => `${id}^${pn}`;

/**
 * The order as an ORM^O01 NW (HL7 v2.5.1, IHE Scheduled Workflow): MSH, PID, PV1, ORC, OBR, one segment per
 * line ending in <CR>. `controlId` is MSH-10; `sentAt` MSH-7 (YYYYMMDDHHMMSS).
 */
export function ormMessage(o: OrderSpec, controlId: string, sentAt: string): string {
  const s = o.step;
  const start = `${s.startDate}${s.startTime}`;
  const p = o.patient;
  const [family, given] = p.name.split('^');
  return [
    `MSH|^~\\&|RIS|HOSP|ATRIUM|RAD|${sentAt}||ORM^O01^ORM_O01|${controlId}|P|2.5.1|||AL|NE`,
    `PID|1||${p.id}^^^${p.issuer}^MR||${family}^${given}||${p.birthDate}|${p.sex}|||${1 + (o.index % 997)} MAIN ST^^SPRINGFIELD^IL^62701^USA||(217)555-${pad(o.index % 10_000, 4)}`,
    `PV1|1|O|RAD^^^HOSP||||${xcn(`R${pad(o.index % 500, 4)}`, o.referringPhysician)}|||RAD||||||||||V${pad(o.index + 1, 9)}`,
    `ORC|NW|${o.placerOrderNumber}|${o.fillerOrderNumber}||SC||^^^${start}^^${o.priority.hl7}||${sentAt}|||${xcn(`O${pad(o.index % 300, 4)}`, o.orderingPhysician)}`,
    `OBR|1|${o.placerOrderNumber}|${o.fillerOrderNumber}|${o.procedure.code}^${o.procedure.meaning}^${o.procedure.scheme}|||${sentAt}|||||||||${xcn(`O${pad(o.index % 300, 4)}`, o.orderingPhysician)}||${o.accessionNumber}|${o.requestedProcedureId}|${s.stepId}|${s.stationAeTitle}|||${s.modality}|||^^^${start}^^${o.priority.hl7}|||||^${o.reason}|||${xcn(`P${pad(o.index % 200, 4)}`, s.performingPhysician)}||||||||||${o.procedure.code}^${o.procedure.meaning}^${o.procedure.scheme}`,
  ].join('\r') + '\r';
}

// ---------------------------------------------------------------------------------- Atrium's tables

/**
 * Writes `orders` into the RIS tables of the SQLite database at `indexPath` (created and migrated by
 * `openDatabase`; the Atrium that will serve it must be stopped): what placing each order by ORM^O01 NW
 * writes (patient, order 'scheduled', its step SCHEDULED, the 'ordered' and 'scheduled' timeline entries),
 * without the HL7 message log, the audit records and the outbox events. Multi-row inserts, 500 rows each.
 */
export async function seedRisWorklist(indexPath: string, orders: OrderSpec[], onProgress?: (done: number) => void): Promise<void> {
  const database = await openDatabase({ engine: 'sqlite', path: indexPath });
  const db = database.kysely<any>();
  const now = new Date().toISOString();
  const BATCH = 500;
  // Set-up, not the archive's own writing: a page cache that holds the indexes being filled (random keys:
  // accession, Study Instance UID, station and date) instead of SQLite's default 2 MB.
  await sql`pragma cache_size = -262144`.execute(db);
  try {
    const patientPk = new Map<string, number>();
    for (let from = 0; from < orders.length; from += 5000) {
      await db.transaction().execute(async (tx) => {
        for (let i = from; i < Math.min(orders.length, from + 5000); i += BATCH) {
          const batch = orders.slice(i, Math.min(i + BATCH, from + 5000));
          const newPatients = [...new Map(batch.filter((o) => !patientPk.has(o.patient.id)).map((o) => [o.patient.id, o.patient])).values()];
          if (newPatients.length) {
            const rows = await tx.insertInto('ris_patient').values(newPatients.map((p) => ({
              patient_id: p.id, issuer_of_patient_id: p.issuer, patient_name: p.name, patient_name_search: searchableName(p.name),
              patient_birth_date: p.birthDate, patient_sex: p.sex, other_identifiers: '[]', status: 'active', created_at: now, updated_at: now,
            }))).returning(['pk', 'patient_id']).execute();
            for (const row of rows) patientPk.set(String(row.patient_id), Number(row.pk));
          }
          const orderRows = await tx.insertInto('ris_order').values(batch.map((o) => ({
            patient_pk: patientPk.get(o.patient.id)!, placer_order_number: o.placerOrderNumber, filler_order_number: o.fillerOrderNumber,
            accession_number: o.accessionNumber, requested_procedure_id: o.requestedProcedureId, requested_procedure_code: JSON.stringify(o.procedure),
            requested_procedure_description: o.procedure.meaning, priority: o.priority.atrium, screening: 0, reason: o.reason,
            referring_physician: o.referringPhysician, ordering_physician: o.orderingPhysician, study_instance_uid: o.studyInstanceUid,
            status: 'scheduled', created_at: now, updated_at: now,
          }))).returning(['pk', 'accession_number']).execute();
          const orderPk = new Map(orderRows.map((row) => [String(row.accession_number), Number(row.pk)]));
          await tx.insertInto('ris_procedure_step').values(batch.map((o) => ({
            order_pk: orderPk.get(o.accessionNumber)!, step_id: o.step.stepId, modality: o.step.modality, station_ae_title: o.step.stationAeTitle,
            station_name: o.step.stationName, location: o.step.location, start_date: o.step.startDate, start_time: o.step.startTime,
            start_at: `${o.step.startDate}${o.step.startTime}`, description: o.procedure.meaning, performing_physician: o.step.performingPhysician,
            protocol_codes: '[]', status: 'SCHEDULED', updated_at: now,
          }))).execute();
          await tx.insertInto('ris_order_event').values(batch.flatMap((o) => ['ordered', 'scheduled'].map((status) => ({
            order_pk: orderPk.get(o.accessionNumber)!, status, step_pk: null, source_kind: 'hl7', source_ref: `RIS^HOSP:SEED${o.index + 1}`, detail: null, at: now,
          })))).execute();
        }
      });
      onProgress?.(Math.min(orders.length, from + 5000));
    }
  } finally {
    await database.close();
  }
}

// ------------------------------------------------------------------------------ wlmscpfs files

/**
 * A minimal DICOM writer (explicit VR little endian, defined lengths for elements, undefined lengths for
 * sequences and items as dump2dcm writes them): enough for worklist files, independent of Atrium's own
 * encoder, and fast enough for 100k files (dump2dcm, one process per file, would take minutes).
 */
type Element = [tag: number, vr: string, value: string | Element[][]];
const LONG_VRS = new Set(['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR']);

function encodeElements(elements: Element[], out: Buffer[]): void {
  for (const [tag, vr, value] of [...elements].sort((a, b) => a[0] - b[0])) {
    const head = Buffer.alloc(LONG_VRS.has(vr) ? 12 : 8);
    head.writeUInt16LE(tag >>> 16, 0);
    head.writeUInt16LE(tag & 0xffff, 2);
    head.write(vr, 4, 'latin1');
    if (vr === 'SQ') {
      head.writeUInt32LE(0xffffffff, 8);
      out.push(head);
      for (const item of value as Element[][]) {
        out.push(Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]));
        encodeElements(item, out);
        out.push(Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]));
      }
      out.push(Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]));
      continue;
    }
    let bytes = vr === 'OB' ? Buffer.from(value as string, 'latin1') : Buffer.from(value as string, 'utf8');
    if (bytes.length % 2) bytes = Buffer.concat([bytes, Buffer.from([vr === 'UI' || vr === 'OB' ? 0 : 0x20])]);
    if (LONG_VRS.has(vr)) head.writeUInt32LE(bytes.length, 8); else head.writeUInt16LE(bytes.length, 6);
    out.push(head, bytes);
  }
}

const WORKLIST_SOP_CLASS = '1.2.840.10008.5.1.4.31';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const IMPLEMENTATION_CLASS = '1.2.826.0.1.3680043.10.1444.99';

/** The order's worklist item as a Part-10 file's bytes (the attributes Atrium's worklist gives, same values). */
export function worklistFile(o: OrderSpec): Buffer {
  const s = o.step;
  const code = (c: OrderSpec['procedure']): Element[][] => [[[0x00080100, 'SH', c.code], [0x00080102, 'SH', c.scheme], [0x00080104, 'LO', c.meaning]]];
  const dataset: Element[] = [
    [0x00080005, 'CS', 'ISO_IR 192'],
    [0x00080050, 'SH', o.accessionNumber],
    [0x00080090, 'PN', o.referringPhysician],
    [0x00100010, 'PN', o.patient.name],
    [0x00100020, 'LO', o.patient.id],
    [0x00100021, 'LO', o.patient.issuer],
    [0x00100030, 'DA', o.patient.birthDate],
    [0x00100040, 'CS', o.patient.sex],
    [0x0020000d, 'UI', o.studyInstanceUid],
    [0x00321032, 'PN', o.orderingPhysician],
    [0x00321060, 'LO', o.procedure.meaning],
    [0x00321064, 'SQ', code(o.procedure)],
    [0x00400100, 'SQ', [[
      [0x00080060, 'CS', s.modality],
      [0x00400001, 'AE', s.stationAeTitle],
      [0x00400002, 'DA', s.startDate],
      [0x00400003, 'TM', s.startTime],
      [0x00400006, 'PN', s.performingPhysician],
      [0x00400007, 'LO', o.procedure.meaning],
      [0x00400009, 'SH', s.stepId],
      [0x00400010, 'SH', s.stationName],
      [0x00400011, 'SH', s.location],
      [0x00400020, 'CS', 'SCHEDULED'],
    ]]],
    [0x00401001, 'SH', o.requestedProcedureId],
    [0x00401002, 'LO', o.reason],
    [0x00401003, 'SH', o.priority.atrium === 'ASAP' || o.priority.atrium === 'URGENT' ? 'HIGH' : o.priority.atrium],
    [0x00402016, 'LO', o.placerOrderNumber],
    [0x00402017, 'LO', o.fillerOrderNumber],
  ];
  const meta: Buffer[] = [];
  encodeElements([
    [0x00020001, 'OB', '\x00\x01'], [0x00020002, 'UI', WORKLIST_SOP_CLASS], [0x00020003, 'UI', `${o.studyInstanceUid}.1`],
    [0x00020010, 'UI', EXPLICIT_LE], [0x00020012, 'UI', IMPLEMENTATION_CLASS],
  ], meta);
  const metaBytes = Buffer.concat(meta);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(0x0002, 0);
  groupLength.writeUInt16LE(0x0000, 2);
  groupLength.write('UL', 4, 'latin1');
  groupLength.writeUInt16LE(4, 6);
  groupLength.writeUInt32LE(metaBytes.length, 8);
  const body: Buffer[] = [];
  encodeElements(dataset, body);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), groupLength, metaBytes, ...body]);
}

/**
 * The worklist folder wlmscpfs reads: `<root>/<aeTitle>/` with its `lockfile` and one `<accession>.wl` per
 * order (16 writes in flight). Returns the folder.
 */
export async function writeWorklistFiles(root: string, aeTitle: string, orders: OrderSpec[], onProgress?: (done: number) => void): Promise<string> {
  const dir = join(root, aeTitle);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'lockfile'), '');
  let next = 0;
  let done = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < orders.length) {
      const o = orders[next++]!;
      const file = await open(join(dir, `${o.accessionNumber}.wl`), 'w');
      try {
        await file.write(worklistFile(o));
      } finally {
        await file.close();
      }
      if (++done % 20_000 === 0 || done === orders.length) onProgress?.(done);
    }
  }));
  return dir;
}

// ------------------------------------------------------------------------------------------ queries

const SPS = 'ScheduledProcedureStepSequence[0]';
/** The return keys a modality typically asks for (patient, order, the step), empty: "give me the value". */
export const RETURN_KEYS = [
  'PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex', 'AccessionNumber',
  'ReferringPhysicianName', 'StudyInstanceUID', 'RequestingPhysician', 'RequestedProcedureDescription', 'RequestedProcedureID',
  'RequestedProcedurePriority', `${SPS}.Modality`, `${SPS}.ScheduledStationAETitle`, `${SPS}.ScheduledProcedureStepStartDate`,
  `${SPS}.ScheduledProcedureStepStartTime`, `${SPS}.ScheduledPerformingPhysicianName`, `${SPS}.ScheduledProcedureStepDescription`,
  `${SPS}.ScheduledProcedureStepID`, `${SPS}.ScheduledStationName`, `${SPS}.ScheduledProcedureStepLocation`,
];

export type QueryKind = 'modality' | 'patient' | 'accession';
export const QUERY_KINDS: readonly QueryKind[] = ['modality', 'patient', 'accession'];
export const QUERY_LABEL: Record<QueryKind, string> = {
  modality: "station's day (AE + today + modality)", patient: 'Patient ID', accession: 'Accession Number',
};

export interface WorklistQuery {
  kind: QueryKind;
  /** The calling AE title (the station itself for its day's query). */
  callingAe: string;
  /** Matching keys (findscu -k syntax, key=value) and the return keys. */
  keys: string[];
  /** The items the query should find, counted from the generated data. */
  expected: number;
}

/**
 * `perKind` queries of each kind, interleaved (modality, patient, accession, modality, ...): the
 * modality query for today from stations in turn (station AE + today's date as a range + modality, as
 * modalities ask), Patient ID and Accession Number of orders picked by the seeded generator (so that
 * the patient and accession queries find steps on any day, not only today's).
 */
export function worklistQueries(orders: OrderSpec[], today: Date, perKind: number, seed = 77): WorklistQuery[] {
  const r = rng(seed);
  const day = dicomDate(today);
  const byPatient = new Map<string, number>();
  for (const o of orders) byPatient.set(o.patient.id, (byPatient.get(o.patient.id) ?? 0) + 1);
  const queries: WorklistQuery[] = [];
  for (let i = 0; i < perKind; i++) {
    const station = STATIONS[(i * 7) % STATIONS.length]!;
    queries.push({
      kind: 'modality', callingAe: station.ae,
      keys: withReturnKeys([`${SPS}.ScheduledStationAETitle=${station.ae}`, `${SPS}.ScheduledProcedureStepStartDate=${day}-${day}`, `${SPS}.Modality=${station.modality}`]),
      expected: orders.filter((o) => o.step.stationAeTitle === station.ae && o.step.startDate === day).length,
    });
    const forPatient = pick(r, orders);
    queries.push({ kind: 'patient', callingAe: forPatient.step.stationAeTitle, keys: withReturnKeys([`PatientID=${forPatient.patient.id}`]), expected: byPatient.get(forPatient.patient.id)! });
    const forAccession = pick(r, orders);
    queries.push({ kind: 'accession', callingAe: forAccession.step.stationAeTitle, keys: withReturnKeys([`AccessionNumber=${forAccession.accessionNumber}`]), expected: 1 });
  }
  return queries;
}

function withReturnKeys(matching: string[]): string[] {
  const named = new Set(matching.map((k) => k.split('=')[0]));
  return [...matching, ...RETURN_KEYS.filter((k) => !named.has(k))];
}
