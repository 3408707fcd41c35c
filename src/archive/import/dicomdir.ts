import { Part10Reader } from '../../dicom/part10-reader.ts';
import { stringValues, type DataSet } from '../../dicom/dataset.ts';

const DirectoryRecordSequence = 0x00041220;
const ReferencedFileID = 0x00041500;

/**
 * The files a DICOMDIR (PS3.10 8.5, PS3.3 F.5) refers to, as relative paths ("PT000000/ST000000/IM000001").
 * Referenced File ID components are joined with "/", as media store them in the folder tree.
 */
export function dicomdirReferencedFiles(bytes: Uint8Array): string[] {
  const reader = new Part10Reader({ bulkThreshold: bytes.length + 1 });
  reader.push(bytes);
  const header = reader.end();
  const records = header.dataset.elements.find((e) => e.tag === DirectoryRecordSequence)?.items ?? [];
  const files: string[] = [];
  for (const record of records as DataSet[]) {
    const components = (stringValues(record, ReferencedFileID) ?? []).map((c) => c.trim()).filter(Boolean);
    if (components.length) files.push(components.join('/'));
  }
  return files;
}
