import type { Part10Header } from '../dicom/part10-reader.ts';
import { fileMetaForBareDataset, isBareDataset } from '../dicom/bare-dataset.ts';
import { findElement, stringValue, stringValues, numberValue, type DataSet } from '../dicom/dataset.ts';
import * as Tag from '../dicom/tags.ts';
import type { InstanceAttributes, InvalidUidPolicy, PatientAttributes, QualityFinding, SeriesAttributes, StudyAttributes } from '../ports/index-store.ts';
import { isTolerableUid, uidProblem } from '../dicom/uid.ts';

/** A reason an object cannot enter the archive, with the element concerned (PS3.10, PS3.3 Type 1). */
export interface Rejection {
  reasonCode: string;
  reason: string;
  element: string | null;
  byteOffset: number | null;
  /** 'reject': refuse the object and keep nothing (ingest.invalidUidPolicy "reject"); else it is quarantined. */
  disposition?: 'reject';
}

export interface IndexedAttributes {
  patient: PatientAttributes;
  study: StudyAttributes;
  series: SeriesAttributes;
  instance: InstanceAttributes;
  characterSet: string[];
  /** What was tolerated (UIDs breaking PS3.5 9.1 under the "flag" policy, VR UN read with the dictionary VR). */
  findings: QualityFinding[];
}


export function tagName(tag: number): string {
  const hex = tag.toString(16).toUpperCase().padStart(8, '0');
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

const MEDIA_STORAGE_DIRECTORY = '1.2.840.10008.1.3.10';

/** Checks what the archive needs to file the object, and reads the attributes it indexes. */
export function indexedAttributes(header: Part10Header, options: { invalidUidPolicy?: InvalidUidPolicy } = {}): IndexedAttributes | Rejection {
  const invalidUidPolicy = options.invalidUidPolicy ?? 'flag';
  const findings: QualityFinding[] = [];
  const ds = header.dataset;
  if (!header.fileMeta) {
    const made = isBareDataset(header) ? fileMetaForBareDataset(header) : undefined;
    const why = made && 'refusal' in made ? `; none can be generated: ${made.refusal}` : '';
    return reject('missing-file-meta', `no File Meta Information (PS3.10 7.1): not a DICOM Part-10 file${why}`, null);
  }
  const characterSet = stringValues(ds, Tag.SpecificCharacterSet) ?? [];
  const text = (tag: number) => emptyToNull(stringValue(ds, tag, characterSet));
  const sopClassUid = text(Tag.SOPClassUID);
  if (sopClassUid === MEDIA_STORAGE_DIRECTORY || stringValue(header.fileMeta, Tag.MediaStorageSOPClassUID) === MEDIA_STORAGE_DIRECTORY) {
    return reject('not-storable', 'a DICOMDIR (Media Storage Directory) indexes files; it is not an instance to archive', Tag.SOPClassUID);
  }
  for (const [tag, keyword] of [
    [Tag.SOPInstanceUID, 'SOPInstanceUID'],
    [Tag.SOPClassUID, 'SOPClassUID'],
    [Tag.StudyInstanceUID, 'StudyInstanceUID'],
    [Tag.SeriesInstanceUID, 'SeriesInstanceUID'],
  ] as const) {
    const uid = text(tag);
    if (!uid) return reject('missing-uid', `${keyword} ${tagName(tag)} is missing or empty`, tag);
    const problem = uidProblem(uid);
    if (problem) {
      const reason = `${keyword} ${tagName(tag)} is not a valid UID (PS3.5 9.1: ${problem}): "${uid}"`;
      // Even "flag" cannot keep what no query or URL could name (spaces, backslashes, wild cards, control characters).
      if (invalidUidPolicy === 'quarantine' || !isTolerableUid(uid)) return reject('invalid-uid', reason, tag);
      if (invalidUidPolicy === 'reject') return { ...reject('invalid-uid', reason, tag), disposition: 'reject' };
      findings.push({ code: 'invalid-uid', element: tagName(tag), detail: `${reason}; stored as received (ingest.invalidUidPolicy "flag")` });
    }
  }
  const un = header.warnings.find((w) => /VR UN read as/.test(w));
  if (un) {
    findings.push({ code: 'vr-un-read-as-dictionary', element: un.slice(0, 11), detail: `elements of VR UN whose tag the dictionary knows were read with the dictionary VR (PS3.5 6.2.2), first: ${un}` });
  }
  const sopInstanceUid = text(Tag.SOPInstanceUID)!;
  const metaInstance = emptyToNull(stringValue(header.fileMeta, Tag.MediaStorageSOPInstanceUID));
  if (metaInstance && metaInstance !== sopInstanceUid) {
    return reject('inconsistent-file-meta', `MediaStorageSOPInstanceUID (0002,0003) "${metaInstance}" differs from SOPInstanceUID "${sopInstanceUid}"`, Tag.MediaStorageSOPInstanceUID);
  }
  const metaClass = emptyToNull(stringValue(header.fileMeta, Tag.MediaStorageSOPClassUID));
  if (metaClass && metaClass !== sopClassUid) {
    return reject('inconsistent-file-meta', `MediaStorageSOPClassUID (0002,0002) "${metaClass}" differs from SOPClassUID "${sopClassUid}"`, Tag.MediaStorageSOPClassUID);
  }

  const decimal = (tag: number) => {
    const n = numberValue(ds, tag);
    return n === undefined || n === null || !Number.isFinite(n) ? null : n;
  };
  const request = findElement(ds, Tag.RequestAttributesSequence)?.items?.[0];
  const int = (tag: number) => {
    const n = numberValue(ds, tag);
    return n === undefined || n === null || !Number.isFinite(n) ? null : Math.trunc(n);
  };
  return {
    characterSet,
    findings,
    patient: {
      // Patient ID is Type 2: present but possibly empty; an empty ID is still one patient identity.
      patientId: text(Tag.PatientID) ?? '',
      issuerOfPatientId: text(Tag.IssuerOfPatientID) ?? '',
      patientName: text(Tag.PatientName),
      patientBirthDate: text(Tag.PatientBirthDate),
      patientSex: text(Tag.PatientSex),
    },
    study: {
      studyInstanceUid: text(Tag.StudyInstanceUID)!,
      studyDate: text(Tag.StudyDate),
      studyTime: text(Tag.StudyTime),
      accessionNumber: text(Tag.AccessionNumber),
      studyDescription: text(Tag.StudyDescription),
      referringPhysicianName: text(Tag.ReferringPhysicianName),
      studyId: text(Tag.StudyID),
      timezoneOffsetFromUtc: text(Tag.TimezoneOffsetFromUTC),
      patientAge: text(Tag.PatientAge),
      patientSize: decimal(Tag.PatientSize),
      patientWeight: decimal(Tag.PatientWeight),
    },
    series: {
      seriesInstanceUid: text(Tag.SeriesInstanceUID)!,
      modality: text(Tag.Modality),
      seriesNumber: int(Tag.SeriesNumber),
      seriesDescription: text(Tag.SeriesDescription),
      bodyPartExamined: text(Tag.BodyPartExamined),
      seriesDate: text(Tag.SeriesDate),
      seriesTime: text(Tag.SeriesTime),
      performedProcedureStepStartDate: text(Tag.PerformedProcedureStepStartDate),
      performedProcedureStepStartTime: text(Tag.PerformedProcedureStepStartTime),
      institutionName: text(Tag.InstitutionName),
      stationName: text(Tag.StationName),
      manufacturer: text(Tag.Manufacturer),
      laterality: text(Tag.Laterality),
      requestedProcedureId: request ? emptyToNull(stringValue(request, Tag.RequestedProcedureID, characterSet)) : null,
      scheduledProcedureStepId: request ? emptyToNull(stringValue(request, Tag.ScheduledProcedureStepID, characterSet)) : null,
    },
    instance: {
      sopInstanceUid,
      sopClassUid: sopClassUid!,
      instanceNumber: int(Tag.InstanceNumber),
      transferSyntaxUid: header.transferSyntaxUID,
      numberOfFrames: int(Tag.NumberOfFrames),
      rows: int(Tag.Rows),
      columns: int(Tag.Columns),
      contentDate: text(Tag.ContentDate),
      contentTime: text(Tag.ContentTime),
    },
  };

  function reject(reasonCode: string, reason: string, tag: number | null): Rejection {
    const element = tag === null ? null : findOffset(tag === Tag.MediaStorageSOPInstanceUID || tag === Tag.MediaStorageSOPClassUID ? header.fileMeta : ds, tag);
    return { reasonCode, reason, element: tag === null ? null : tagName(tag), byteOffset: element };
  }
}

function findOffset(ds: DataSet | null, tag: number): number | null {
  const el = ds?.elements.find((e) => e.tag === tag);
  return el ? el.offset : null;
}

function emptyToNull(value: string | undefined | null): string | null {
  if (value === undefined || value === null) return null;
  const v = value.trim();
  return v === '' ? null : v;
}

export function isRejection(value: IndexedAttributes | Rejection): value is Rejection {
  return 'reasonCode' in value;
}
