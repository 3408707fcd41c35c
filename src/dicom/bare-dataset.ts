// Data sets stored without preamble or File Meta Information (PS3.10 7.1 requires both), as old equipment and
// some export tools write them: DCMTK reads them with +td (its default), pydicom with force=True. The encoding
// is the reader's guess from the first element (Part10Reader); a File Meta can then be generated for them.
import { findElement, stringValue } from './dataset.ts';
import type { Part10Header } from './part10-reader.ts';
import { encodeFileMeta } from './part10-writer.ts';
import { PixelData, SOPClassUID, SOPInstanceUID } from './tags.ts';
import { ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian } from './transfer-syntax.ts';

const GUESSABLE = new Set([ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]);

/** A bare data set from its first byte: no preamble, no "DICM", no group 0002. */
export function isBareDataset(header: Part10Header): boolean {
  return header.fileMeta === null && !header.hasPreamble && header.datasetOffset === 0;
}

/**
 * The File Meta Information (preamble and "DICM" included) to put before a bare data set, or why none can be
 * made: its SOP Class and Instance UIDs are needed, and its transfer syntax must be one the encoding tells.
 * Encapsulated (compressed) Pixel Data says nothing of its codec, so such a data set is refused.
 */
export function fileMetaForBareDataset(header: Part10Header): { meta: Uint8Array } | { refusal: string } {
  if (!isBareDataset(header)) return { refusal: 'the object is not a bare data set (it has a preamble, "DICM" or File Meta Information)' };
  const ds = header.dataset;
  if (findElement(ds, PixelData)?.encapsulated) {
    return { refusal: 'its Pixel Data is encapsulated (compressed) and, without File Meta Information, nothing tells the transfer syntax' };
  }
  if (!GUESSABLE.has(header.transferSyntaxUID)) return { refusal: `transfer syntax ${header.transferSyntaxUID} cannot be told from the encoding` };
  const sopClassUid = stringValue(ds, SOPClassUID);
  const sopInstanceUid = stringValue(ds, SOPInstanceUID);
  if (!sopClassUid || !sopInstanceUid) return { refusal: 'the data set has no SOP Class UID (0008,0016) or SOP Instance UID (0008,0018) to put in it' };
  return { meta: encodeFileMeta({ mediaStorageSOPClassUID: sopClassUid, mediaStorageSOPInstanceUID: sopInstanceUid, transferSyntaxUID: header.transferSyntaxUID }) };
}
