import * as TS from '../../dicom/transfer-syntax.ts';

/** Query/Retrieve SOP classes (PS3.4 C.6), by root and operation. */
export const QueryRetrieve = {
  PatientRootFind: '1.2.840.10008.5.1.4.1.2.1.1',
  PatientRootMove: '1.2.840.10008.5.1.4.1.2.1.2',
  PatientRootGet: '1.2.840.10008.5.1.4.1.2.1.3',
  StudyRootFind: '1.2.840.10008.5.1.4.1.2.2.1',
  StudyRootMove: '1.2.840.10008.5.1.4.1.2.2.2',
  StudyRootGet: '1.2.840.10008.5.1.4.1.2.2.3',
} as const;

export const Verification = '1.2.840.10008.1.1';
export const StorageCommitmentPushModel = '1.2.840.10008.1.20.1';
/** The well-known SOP Instance of Storage Commitment (PS3.4 J.3.1). */
export const StorageCommitmentPushModelInstance = '1.2.840.10008.1.20.1.1';

export function queryRoot(sopClass: string): 'PATIENT' | 'STUDY' | undefined {
  if (sopClass.startsWith('1.2.840.10008.5.1.4.1.2.1.')) return 'PATIENT';
  if (sopClass.startsWith('1.2.840.10008.5.1.4.1.2.2.')) return 'STUDY';
  return undefined;
}

/** Storage SOP classes outside the 1.2.840.10008.5.1.4.1.1 arc (PS3.4 B.5). */
const OTHER_STORAGE = new Set([
  '1.2.840.10008.5.1.4.34.7', '1.2.840.10008.5.1.4.34.10', // RT Beams / Brachy Application Setup Delivery Instruction
  '1.2.840.10008.5.1.4.38.1', // Hanging Protocol
  '1.2.840.10008.5.1.4.39.1', // Color Palette
  '1.2.840.10008.5.1.4.43.1', '1.2.840.10008.5.1.4.44.1', '1.2.840.10008.5.1.4.45.1', // implant templates
]);

/**
 * Every Storage SOP class of the standard lives under 1.2.840.10008.5.1.4.1.1 (images, SR, RT, waveforms,
 * encapsulated documents, presentation states, segmentations...), plus the few above: a rule rather than a
 * table keeps classes added to PS3.4 next year storable without a code change.
 */
export function isStorageSopClass(uid: string): boolean {
  return uid.startsWith('1.2.840.10008.5.1.4.1.1.') || OTHER_STORAGE.has(uid);
}

/** A private SOP class (a vendor's raw data, say): stored when the administrator allows unknown classes. */
export function acceptsUnknownStorage(abstractSyntax: string): boolean {
  return /^[0-9.]+$/.test(abstractSyntax) && !abstractSyntax.startsWith('1.2.840.10008.');
}

/**
 * The Query/Retrieve answer to SOP Class Extended Negotiation (PS3.4 C.5.1.1.1, C.5.2.1.1): relational queries
 * and retrieval, and (C-FIND) combined date-time matching; not fuzzy semantic matching nor timezone adjustment.
 */
export function queryRetrieveExtendedNegotiation(sopClass: string, info: Uint8Array): Uint8Array {
  const answer = new Uint8Array(info.length);
  if (info.length > 0) answer[0] = info[0] === 1 ? 1 : 0;
  if (info.length > 1 && sopClass.endsWith('.1')) answer[1] = info[1] === 1 ? 1 : 0;
  return answer;
}

/** Transfer syntaxes for commands and identifiers (non-storage contexts), ours in order of preference. */
export const UNCOMPRESSED = [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian, TS.ExplicitVRBigEndian];

/**
 * Transfer syntaxes Atrium stores as received: every syntax it can parse the header of, compressed ones
 * included (the pixel data is kept as sent, never transcoded on ingest).
 */
export function storableTransferSyntax(uid: string): boolean {
  const info = TS.transferSyntaxInfo(uid);
  return info.known;
}
