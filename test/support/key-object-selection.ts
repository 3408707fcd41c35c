/**
 * A Key Object Selection document (PS3.3 A.35.4, TID 2000) written by dcmjs (not our codec), for the tests of
 * the key images resource and of the ImagingStudy that links to it.
 */
import dcmjs from 'dcmjs';
import { KEY_OBJECT_SELECTION_DOCUMENT_STORAGE } from '../../src/archive/key-images.ts';

const { DicomMetaDictionary, DicomDict } = (dcmjs as any).data;
export const CT = '1.2.840.10008.5.1.4.1.1.2';

export interface Ref { series: string; sop: string; frames?: number[] }

/** A Key Object Selection document (TID 2000) written by dcmjs: title, description, IMAGE items and their evidence. */
export function keyObjectSelection(o: { study: string; series: string; sop: string; title: [string, string]; description?: string; refs: Ref[]; contentTime: string; patientId: string }): Buffer {
  const bySeries = new Map<string, Ref[]>();
  for (const r of o.refs) bySeries.set(r.series, [...(bySeries.get(r.series) ?? []), r]);
  const ds = {
    SpecificCharacterSet: 'ISO_IR 192', SOPClassUID: KEY_OBJECT_SELECTION_DOCUMENT_STORAGE, SOPInstanceUID: o.sop, StudyInstanceUID: o.study, SeriesInstanceUID: o.series,
    Modality: 'KO', SeriesNumber: '0', InstanceNumber: '1', PatientID: o.patientId, PatientName: 'KEY^IMAGES', StudyDate: '20240305', StudyTime: '101500',
    ContentDate: '20240305', ContentTime: o.contentTime, ValueType: 'CONTAINER', ContinuityOfContent: 'SEPARATE',
    ConceptNameCodeSequence: [{ CodeValue: o.title[0], CodingSchemeDesignator: 'DCM', CodeMeaning: o.title[1] }],
    CurrentRequestedProcedureEvidenceSequence: [{
      StudyInstanceUID: o.study,
      ReferencedSeriesSequence: [...bySeries].map(([series, refs]) => ({
        SeriesInstanceUID: series, ReferencedSOPSequence: refs.map((r) => ({ ReferencedSOPClassUID: CT, ReferencedSOPInstanceUID: r.sop })),
      })),
    }],
    ContentSequence: [
      ...(o.description ? [{ RelationshipType: 'CONTAINS', ValueType: 'TEXT', ConceptNameCodeSequence: [{ CodeValue: '113012', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Key Object Description' }], TextValue: o.description }] : []),
      ...o.refs.map((r) => ({
        RelationshipType: 'CONTAINS', ValueType: 'IMAGE',
        ReferencedSOPSequence: [{ ReferencedSOPClassUID: CT, ReferencedSOPInstanceUID: r.sop, ...(r.frames ? { ReferencedFrameNumber: r.frames.map(String) } : {}) }],
      })),
    ],
  };
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer, MediaStorageSOPClassUID: ds.SOPClassUID, MediaStorageSOPInstanceUID: ds.SOPInstanceUID,
    TransferSyntaxUID: '1.2.840.10008.1.2.1', ImplementationClassUID: '1.2.826.0.1.3680043.9.7433.1.1',
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(ds);
  return Buffer.from(dict.write());
}

