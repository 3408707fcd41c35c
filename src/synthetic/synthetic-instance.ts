import type { DataElement } from '../dicom/dataset.ts';
import { encodeDataset, encodeElementHeader, encodeFileMeta } from '../dicom/part10-writer.ts';
import { ExplicitVRLittleEndian } from '../dicom/transfer-syntax.ts';
import { generateUid } from '../dicom/uid.ts';
import * as Tag from '../dicom/tags.ts';

/**
 * Synthetic but valid DICOM images for tests and benchmarks: a CT slice, a series, or one multi-frame
 * instance of any size, produced frame by frame so that a multi-GB object never exists in memory.
 */
export interface SyntheticInstanceOptions {
  patientId?: string;
  /** Issuer of Patient ID (0010,0021); absent when not given (what most images carry). */
  issuerOfPatientId?: string;
  patientName?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
  accessionNumber?: string;
  studyDate?: string;
  modality?: string;
  instanceNumber?: number;
  rows?: number;
  columns?: number;
  /** More than one makes an Enhanced-style multi-frame object (NumberOfFrames). */
  frames?: number;
  /** Varies the pixel content so that instances differ byte for byte. */
  seed?: number;
  studyTime?: string;
  studyDescription?: string;
  referringPhysicianName?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  /** Image Type (0008,0008), backslash-separated (default ORIGINAL\\PRIMARY\\AXIAL). */
  imageType?: string;
  /** Items of Request Attributes Sequence (0040,0275); absent when not given. */
  requestAttributes?: { requestedProcedureId?: string; scheduledProcedureStepId?: string }[];
}

const CTImageStorage = '1.2.840.10008.5.1.4.1.1.2';
const SecondaryCaptureMultiframeGrayscaleWord = '1.2.840.10008.5.1.4.1.1.7.3';

const text = new TextEncoder();

function str(tag: number, vr: string, value: string): DataElement {
  const bytes = text.encode(value);
  return { tag, vr, length: bytes.length, offset: 0, value: bytes };
}

function us(tag: number, value: number): DataElement {
  const bytes = new Uint8Array(2);
  new DataView(bytes.buffer).setUint16(0, value, true);
  return { tag, vr: 'US', length: 2, offset: 0, value: bytes };
}

function requestAttributesSequence(items: NonNullable<SyntheticInstanceOptions['requestAttributes']>): DataElement {
  return {
    tag: Tag.RequestAttributesSequence, vr: 'SQ', length: 0, offset: 0,
    items: items.map((item) => ({
      elements: [
        ...(item.scheduledProcedureStepId !== undefined ? [str(Tag.ScheduledProcedureStepID, 'SH', item.scheduledProcedureStepId)] : []),
        ...(item.requestedProcedureId !== undefined ? [str(Tag.RequestedProcedureID, 'SH', item.requestedProcedureId)] : []),
      ],
    })),
  };
}

/** Size in bytes of the pixel data of these options. */
export function pixelDataLength(options: SyntheticInstanceOptions): number {
  return (options.rows ?? 512) * (options.columns ?? 512) * 2 * (options.frames ?? 1);
}

/** The Part-10 bytes of one instance, as chunks: file meta and header first, then one chunk per frame. */
export function* syntheticInstance(options: SyntheticInstanceOptions = {}): Generator<Uint8Array> {
  const rows = options.rows ?? 512;
  const columns = options.columns ?? 512;
  const frames = options.frames ?? 1;
  const seed = options.seed ?? 0;
  const multiFrame = frames > 1;
  const sopClassUid = multiFrame ? SecondaryCaptureMultiframeGrayscaleWord : CTImageStorage;
  const sopInstanceUid = options.sopInstanceUid ?? generateUid();
  const instanceNumber = options.instanceNumber ?? 1;
  const elements: DataElement[] = [
    str(Tag.SpecificCharacterSet, 'CS', 'ISO_IR 192'),
    str(Tag.ImageType, 'CS', options.imageType ?? 'ORIGINAL\\PRIMARY\\AXIAL'),
    str(Tag.SOPClassUID, 'UI', sopClassUid),
    str(Tag.SOPInstanceUID, 'UI', sopInstanceUid),
    str(Tag.StudyDate, 'DA', options.studyDate ?? '20260101'),
    str(Tag.StudyTime, 'TM', options.studyTime ?? '120000'),
    str(Tag.AccessionNumber, 'SH', options.accessionNumber ?? 'ACC0001'),
    str(Tag.Modality, 'CS', options.modality ?? (multiFrame ? 'OT' : 'CT')),
    str(Tag.ReferringPhysicianName, 'PN', options.referringPhysicianName ?? ''),
    str(Tag.StudyDescription, 'LO', options.studyDescription ?? 'Synthetic study'),
    str(Tag.SeriesDescription, 'LO', options.seriesDescription ?? 'Synthetic series'),
    str(Tag.PatientName, 'PN', options.patientName ?? 'SYNTHETIC^PATIENT'),
    str(Tag.PatientID, 'LO', options.patientId ?? 'SYN0001'),
    ...(options.issuerOfPatientId !== undefined ? [str(Tag.IssuerOfPatientID, 'LO', options.issuerOfPatientId)] : []),
    str(Tag.PatientBirthDate, 'DA', '19700101'),
    str(Tag.PatientSex, 'CS', 'O'),
    str(Tag.StudyInstanceUID, 'UI', options.studyInstanceUid ?? generateUid()),
    str(Tag.SeriesInstanceUID, 'UI', options.seriesInstanceUid ?? generateUid()),
    str(Tag.StudyID, 'SH', '1'),
    str(Tag.SeriesNumber, 'IS', String(options.seriesNumber ?? 1)),
    str(Tag.InstanceNumber, 'IS', String(instanceNumber)),
    ...(multiFrame ? [str(Tag.NumberOfFrames, 'IS', String(frames))] : []),
    us(Tag.SamplesPerPixel, 1),
    str(Tag.PhotometricInterpretation, 'CS', 'MONOCHROME2'),
    us(Tag.Rows, rows),
    us(Tag.Columns, columns),
    us(Tag.BitsAllocated, 16),
    us(Tag.BitsStored, 12),
    us(Tag.HighBit, 11),
    us(Tag.PixelRepresentation, 0),
    ...(options.requestAttributes ? [requestAttributesSequence(options.requestAttributes)] : []),
  ].sort((a, b) => a.tag - b.tag);

  yield encodeFileMeta({ mediaStorageSOPClassUID: sopClassUid, mediaStorageSOPInstanceUID: sopInstanceUid, transferSyntaxUID: ExplicitVRLittleEndian });
  yield encodeDataset(elements, ExplicitVRLittleEndian);
  const frameBytes = rows * columns * 2;
  yield encodeElementHeader(Tag.PixelData, 'OW', frameBytes * frames, ExplicitVRLittleEndian);
  for (let f = 0; f < frames; f++) {
    const frame = new Uint16Array(rows * columns);
    // A gradient with a per-instance, per-frame offset: cheap, compressible like a real image, never identical.
    const base = (seed * 7919 + f * 31) & 0xfff;
    for (let i = 0; i < frame.length; i++) frame[i] = (base + (i % columns) + ((i / columns) | 0)) & 0xfff;
    yield new Uint8Array(frame.buffer);
  }
}

/** A CT series of `count` slices in one study, as an iterable of instances (each an iterable of chunks). */
export function* syntheticSeries(count: number, options: SyntheticInstanceOptions = {}): Generator<Generator<Uint8Array>> {
  const studyInstanceUid = options.studyInstanceUid ?? generateUid();
  const seriesInstanceUid = options.seriesInstanceUid ?? generateUid();
  for (let i = 0; i < count; i++) {
    yield syntheticInstance({ ...options, studyInstanceUid, seriesInstanceUid, instanceNumber: i + 1, seed: (options.seed ?? 0) + i });
  }
}
