/**
 * Rejection Notes for peers (IHE IOCM, docs/corrections.md "Peers"): a Key Object Selection Document (PS3.3
 * A.35.4, TID 2010) titled (113037, DCM, "Rejected for Patient Safety Reasons") that references, in its Current
 * Requested Procedure Evidence Sequence and as IMAGE/COMPOSITE content items, the instances a correction
 * replaced. It carries the patient and study the peer was sent the instances under (the identity being
 * rejected), and is sent to the peers configured for it before the corrected objects, by the same send job.
 * Written by dcmjs.
 */
import dcmjs from 'dcmjs';
import { KEY_OBJECT_SELECTION_DOCUMENT_STORAGE } from '../../archive/key-images.ts';
import { generateUid } from '../../dicom/uid.ts';
import type { IndexStore } from '../../ports/index-store.ts';
import type { BuiltObject } from '../../exchange/dicom-jobs.ts';
import type { CorrectionRecord, CorrectionStore, PatientRow, StudyRow } from './correction-store.ts';

const { DicomMetaDictionary, DicomDict } = (dcmjs as any).data;

export const REJECTED_FOR_PATIENT_SAFETY = { CodeValue: '113037', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Rejected for Patient Safety Reasons' } as const;
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.9.7433.1.1';

export interface RejectedInstance {
  seriesInstanceUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
}

export interface RejectionNoteInput {
  sopInstanceUid: string;
  seriesInstanceUid: string;
  /** The patient and study the rejected instances were sent under. */
  patient: Pick<PatientRow, 'patient_id' | 'issuer_of_patient_id' | 'patient_name' | 'patient_birth_date' | 'patient_sex'>;
  study: Pick<StudyRow, 'study_instance_uid' | 'study_date' | 'study_time' | 'accession_number' | 'referring_physician_name' | 'study_id'>;
  instances: RejectedInstance[];
  /** Key Object Description (113012): why. */
  description: string;
  /** When the note is made. */
  at: Date;
  manufacturer?: string;
}

/** The content item value type of a referenced object (TID 2010): IMAGE, WAVEFORM or COMPOSITE. */
function valueTypeOf(sopClassUid: string): 'IMAGE' | 'WAVEFORM' | 'COMPOSITE' {
  if (sopClassUid.startsWith('1.2.840.10008.5.1.4.1.1.9.')) return 'WAVEFORM';
  // Structured reports (88.x), encapsulated documents (104.x), presentation states (11.x), raw data, spatial
  // registration and fiducials (66.x) and the like are not images.
  if (/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.(88|104|11|66|67|68)\./.test(sopClassUid)) return 'COMPOSITE';
  return 'IMAGE';
}

/** DA/TM of a date, UTC. */
function dicomDateTime(at: Date): { date: string; time: string } {
  const iso = at.toISOString();
  return { date: iso.slice(0, 10).replaceAll('-', ''), time: iso.slice(11, 19).replaceAll(':', '') };
}

/** The rejection note's data set: Explicit VR Little Endian, without File Meta Information. */
export function buildRejectionNote(input: RejectionNoteInput): Uint8Array {
  if (input.instances.length === 0) throw new Error('a rejection note references at least one instance');
  const { date, time } = dicomDateTime(input.at);
  const bySeries = new Map<string, RejectedInstance[]>();
  for (const i of input.instances) bySeries.set(i.seriesInstanceUid, [...(bySeries.get(i.seriesInstanceUid) ?? []), i]);
  const p = input.patient;
  const s = input.study;
  const ds = {
    SpecificCharacterSet: 'ISO_IR 192',
    SOPClassUID: KEY_OBJECT_SELECTION_DOCUMENT_STORAGE, SOPInstanceUID: input.sopInstanceUid,
    // Patient module: the identity being rejected.
    PatientName: p.patient_name ?? '', PatientID: p.patient_id, ...(p.issuer_of_patient_id ? { IssuerOfPatientID: p.issuer_of_patient_id } : {}),
    PatientBirthDate: p.patient_birth_date ?? '', PatientSex: p.patient_sex ?? '',
    // General Study module: the study of the rejected instances.
    StudyInstanceUID: s.study_instance_uid, StudyDate: s.study_date ?? '', StudyTime: s.study_time ?? '', ReferringPhysicianName: s.referring_physician_name ?? '',
    StudyID: s.study_id ?? '', AccessionNumber: s.accession_number ?? '',
    // Key Object Document Series and General Equipment.
    Modality: 'KO', SeriesInstanceUID: input.seriesInstanceUid, SeriesNumber: '999', ReferencedPerformedProcedureStepSequence: [],
    Manufacturer: input.manufacturer ?? 'Atrium',
    // Key Object Document module.
    InstanceNumber: '1', ContentDate: date, ContentTime: time,
    CurrentRequestedProcedureEvidenceSequence: [{
      StudyInstanceUID: s.study_instance_uid,
      ReferencedSeriesSequence: [...bySeries].map(([series, refs]) => ({
        SeriesInstanceUID: series,
        ReferencedSOPSequence: refs.map((r) => ({ ReferencedSOPClassUID: r.sopClassUid, ReferencedSOPInstanceUID: r.sopInstanceUid })),
      })),
    }],
    // SR Document Content (TID 2010): the document title, a description, one item per rejected object.
    ValueType: 'CONTAINER', ConceptNameCodeSequence: [{ ...REJECTED_FOR_PATIENT_SAFETY }], ContinuityOfContent: 'SEPARATE',
    ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: '2010' }],
    ContentSequence: [
      {
        RelationshipType: 'CONTAINS', ValueType: 'TEXT',
        ConceptNameCodeSequence: [{ CodeValue: '113012', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Key Object Description' }],
        TextValue: input.description.slice(0, 1024),
      },
      ...input.instances.map((r) => ({
        RelationshipType: 'CONTAINS', ValueType: valueTypeOf(r.sopClassUid),
        ReferencedSOPSequence: [{ ReferencedSOPClassUID: r.sopClassUid, ReferencedSOPInstanceUID: r.sopInstanceUid }],
      })),
    ],
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer, MediaStorageSOPClassUID: ds.SOPClassUID, MediaStorageSOPInstanceUID: ds.SOPInstanceUID,
    TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN, ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(ds);
  return withoutFileMeta(new Uint8Array(dict.write()));
}

/** The data set of a Part-10 file: after the preamble, "DICM" and the File Meta group (its length in (0002,0000)). */
function withoutFileMeta(file: Uint8Array): Uint8Array {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = String.fromCharCode(...file.subarray(128, 132));
  if (magic !== 'DICM' || view.getUint16(132, true) !== 0x0002 || view.getUint16(134, true) !== 0x0000) throw new Error('dcmjs wrote no File Meta group length');
  return file.slice(132 + 12 + view.getUint32(140, true));
}

/**
 * The rejection notes of a correction (or its undo) for the instances now in `studyInstanceUid`: the instances
 * whose served identity it changed (those of the studies and series whose served values it set), one note per
 * study they were served under before, with that study's and patient's attributes as they were. Empty when
 * the correction replaced nothing in the study (an edit that left every value as it was).
 */
export async function rejectionNotesFor(record: CorrectionRecord, studyInstanceUid: string, deps: { store: CorrectionStore; index: IndexStore; at: Date }): Promise<BuiltObject[]> {
  const undone = record.undoneAt !== null;
  // What the peer had: before the correction, or, for an undo, what the correction left.
  const previous = undone ? record.after : record.before;
  const touched = new Set(record.before.served.map((s) => `${s.study}|${s.series}`));
  const byPreviousStudy = new Map<string, RejectedInstance[]>();
  const series = await deps.index.listSeries(studyInstanceUid, { limit: 10_000, offset: 0 });
  for (const se of series.items) {
    if (!touched.has(`${studyInstanceUid}|`) && !touched.has(`${studyInstanceUid}|${se.seriesInstanceUid}`)) continue;
    // A series moved by the correction was served under another study before.
    const moved = previous.series.find((x) => x.series_instance_uid === se.seriesInstanceUid);
    const previousStudy = moved ? previous.studies.find((x) => x.pk === moved.study_pk)?.study_instance_uid ?? studyInstanceUid : studyInstanceUid;
    for (let offset = 0; ; offset += 1000) {
      const page = await deps.index.listInstances(se.seriesInstanceUid, { limit: 1000, offset });
      const list = byPreviousStudy.get(previousStudy) ?? [];
      list.push(...page.items.map((i) => ({ seriesInstanceUid: se.seriesInstanceUid, sopClassUid: i.sopClassUid, sopInstanceUid: i.sopInstanceUid })));
      byPreviousStudy.set(previousStudy, list);
      if (offset + 1000 >= page.total) break;
    }
  }
  const notes: BuiltObject[] = [];
  for (const [uid, instances] of byPreviousStudy) {
    if (instances.length === 0) continue;
    const study = previous.studies.find((x) => x.study_instance_uid === uid) ?? await deps.store.study(uid);
    if (!study) continue;
    const patient = previous.patients.find((x) => x.pk === study.patient_pk) ?? await mergedPatient(record, undone, deps.store) ?? await deps.store.patientByPk(study.patient_pk);
    if (!patient) continue;
    const sopInstanceUid = generateUid();
    const dataset = buildRejectionNote({
      sopInstanceUid, seriesInstanceUid: generateUid(), patient, study, instances, at: deps.at,
      description: `${undone ? 'Undo of identity correction' : 'Identity correction'} ${record.id} (${record.kind}): ${undone ? record.undoReason ?? '' : record.reason}`,
    });
    notes.push({ sopClassUid: KEY_OBJECT_SELECTION_DOCUMENT_STORAGE, sopInstanceUid, dataset: Buffer.from(dataset).toString('base64') });
  }
  return notes;
}

/** A merge through the RIS keeps no index rows in its snapshot: the patient its studies were under is the request's. */
async function mergedPatient(record: CorrectionRecord, undone: boolean, store: CorrectionStore): Promise<PatientRow | null> {
  if (record.kind !== 'merge') return null;
  const request = record.request as { survivor?: { patientId: string; issuerOfPatientId?: string }; prior?: { patientId: string; issuerOfPatientId?: string } };
  const key = undone ? request.survivor : request.prior;
  return key ? await store.patient(key.patientId, key.issuerOfPatientId ?? '') : null;
}
