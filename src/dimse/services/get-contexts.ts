/**
 * The storage presentation contexts Atrium proposes on a C-GET association, with itself in the SCP role
 * (PS3.4 C.4.3: the sub-operations come back on the same association, so every class and transfer syntax an
 * object may come in must be negotiated beforehand).
 *
 * An acceptor answers each presentation context with one transfer syntax. One context per class listing
 * ten syntaxes gets one of them (Orthanc takes Explicit VR Little Endian), and an object stored compressed
 * then cannot come back as it is stored: the SCP must transcode it or fail the sub-operation (Orthanc 1.10
 * cannot transcode JPEG 2000 and fails it). So, as DCMTK's getscu and dcm4che do, each compressed syntax
 * gets a context of its own: per class one context with the uncompressed syntaxes, then one context per
 * (image class, compressed syntax), syntax by syntax in the order below and class by class, as long as
 * the 128 contexts of an association last (one is the C-GET's own). With the default class list (34
 * classes, 25 of them images) every image class gets JPEG 2000 lossless, JPEG lossless SV1 and JPEG
 * baseline, and the first 18 (CR, DX, MG, CT, MR, US, SC, XA, RF, NM...) JPEG 2000 too: 127 contexts. With
 * the classes a study is known to hold (SOP Classes in Study from a C-FIND), every class gets every syntax.
 */
import * as TS from '../../dicom/transfer-syntax.ts';
import type { RequestedContext } from '../requestor.ts';

/** Storage classes offered when the classes to come are not known: images, SR, documents, RT, presentation states. */
export const GET_STORAGE_CLASSES: readonly string[] = [
  '1.2.840.10008.5.1.4.1.1.1', '1.2.840.10008.5.1.4.1.1.1.1', '1.2.840.10008.5.1.4.1.1.1.2', '1.2.840.10008.5.1.4.1.1.1.3',
  '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.2.1', '1.2.840.10008.5.1.4.1.1.3.1', '1.2.840.10008.5.1.4.1.1.4',
  '1.2.840.10008.5.1.4.1.1.4.1', '1.2.840.10008.5.1.4.1.1.6.1', '1.2.840.10008.5.1.4.1.1.7', '1.2.840.10008.5.1.4.1.1.7.1',
  '1.2.840.10008.5.1.4.1.1.7.2', '1.2.840.10008.5.1.4.1.1.7.3', '1.2.840.10008.5.1.4.1.1.7.4', '1.2.840.10008.5.1.4.1.1.12.1',
  '1.2.840.10008.5.1.4.1.1.12.2', '1.2.840.10008.5.1.4.1.1.20', '1.2.840.10008.5.1.4.1.1.128', '1.2.840.10008.5.1.4.1.1.130',
  '1.2.840.10008.5.1.4.1.1.481.1', '1.2.840.10008.5.1.4.1.1.481.2', '1.2.840.10008.5.1.4.1.1.481.3', '1.2.840.10008.5.1.4.1.1.481.5',
  '1.2.840.10008.5.1.4.1.1.88.11', '1.2.840.10008.5.1.4.1.1.88.22', '1.2.840.10008.5.1.4.1.1.88.33', '1.2.840.10008.5.1.4.1.1.88.67',
  '1.2.840.10008.5.1.4.1.1.104.1', '1.2.840.10008.5.1.4.1.1.66.4', '1.2.840.10008.5.1.4.1.1.11.1', '1.2.840.10008.5.1.4.1.1.9.1.1',
  '1.2.840.10008.5.1.4.1.1.77.1.6', '1.2.840.10008.5.1.4.1.1.13.1.3',
];

/** Classes without compressed pixel data (structured reports, documents, RT plans and structures, presentation states, waveforms). */
const NEVER_COMPRESSED = new Set([
  '1.2.840.10008.5.1.4.1.1.88.11', '1.2.840.10008.5.1.4.1.1.88.22', '1.2.840.10008.5.1.4.1.1.88.33', '1.2.840.10008.5.1.4.1.1.88.67',
  '1.2.840.10008.5.1.4.1.1.104.1', '1.2.840.10008.5.1.4.1.1.11.1', '1.2.840.10008.5.1.4.1.1.9.1.1',
  '1.2.840.10008.5.1.4.1.1.481.3', '1.2.840.10008.5.1.4.1.1.481.5',
]);

/** The context every class gets: our preference first. */
export const GET_UNCOMPRESSED: readonly string[] = [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian];

/** Compressed syntaxes, each in a context of its own, most common in archives first (lossless before lossy). */
export const GET_COMPRESSED: readonly string[] = [
  TS.JPEG2000Lossless, TS.JPEGLosslessSV1, TS.JPEGBaseline8Bit, TS.JPEG2000, TS.RLELossless, TS.JPEGLSLossless,
  TS.JPEGLossless, TS.JPEGExtended12Bit, TS.JPEGLSNearLossless, TS.HTJ2KLossless, TS.HTJ2K, TS.DeflatedExplicitVRLittleEndian,
];

/** At most 128 contexts per association (context IDs 1..255, odd); `reserved` are the caller's own (the C-GET one). */
export function getStorageContexts(sopClasses: readonly string[] = GET_STORAGE_CLASSES, reserved = 1): RequestedContext[] {
  const room = 128 - reserved;
  const classes = [...new Set(sopClasses)].slice(0, room);
  const role = { scuRole: false, scpRole: true };
  const contexts: RequestedContext[] = classes.map((c) => ({ abstractSyntax: c, transferSyntaxes: [...GET_UNCOMPRESSED], ...role }));
  const images = classes.filter((c) => !NEVER_COMPRESSED.has(c));
  for (const syntax of GET_COMPRESSED) {
    for (const c of images) {
      if (contexts.length >= room) return contexts;
      contexts.push({ abstractSyntax: c, transferSyntaxes: [syntax], ...role });
    }
  }
  return contexts;
}
