// Transfer Syntax UIDs (PS3.6 Annex A) and their encoding rules (PS3.5 Section 10 and Annex A).

export const ImplicitVRLittleEndian = '1.2.840.10008.1.2';
export const ExplicitVRLittleEndian = '1.2.840.10008.1.2.1';
export const EncapsulatedUncompressedExplicitVRLittleEndian = '1.2.840.10008.1.2.1.98';
export const DeflatedExplicitVRLittleEndian = '1.2.840.10008.1.2.1.99';
export const ExplicitVRBigEndian = '1.2.840.10008.1.2.2';
export const JPEGBaseline8Bit = '1.2.840.10008.1.2.4.50';
export const JPEGExtended12Bit = '1.2.840.10008.1.2.4.51';
export const JPEGLossless = '1.2.840.10008.1.2.4.57';
export const JPEGLosslessSV1 = '1.2.840.10008.1.2.4.70';
export const JPEGLSLossless = '1.2.840.10008.1.2.4.80';
export const JPEGLSNearLossless = '1.2.840.10008.1.2.4.81';
export const JPEG2000Lossless = '1.2.840.10008.1.2.4.90';
export const JPEG2000 = '1.2.840.10008.1.2.4.91';
export const JPEG2000MCLossless = '1.2.840.10008.1.2.4.92';
export const JPEG2000MC = '1.2.840.10008.1.2.4.93';
export const JPIPReferenced = '1.2.840.10008.1.2.4.94';
export const JPIPReferencedDeflate = '1.2.840.10008.1.2.4.95';
export const MPEG2MPML = '1.2.840.10008.1.2.4.100';
export const MPEG2MPMLF = '1.2.840.10008.1.2.4.100.1';
export const MPEG2MPHL = '1.2.840.10008.1.2.4.101';
export const MPEG2MPHLF = '1.2.840.10008.1.2.4.101.1';
export const MPEG4HP41 = '1.2.840.10008.1.2.4.102';
export const MPEG4HP41F = '1.2.840.10008.1.2.4.102.1';
export const MPEG4HP41BD = '1.2.840.10008.1.2.4.103';
export const MPEG4HP41BDF = '1.2.840.10008.1.2.4.103.1';
export const MPEG4HP422D = '1.2.840.10008.1.2.4.104';
export const MPEG4HP422DF = '1.2.840.10008.1.2.4.104.1';
export const MPEG4HP423D = '1.2.840.10008.1.2.4.105';
export const MPEG4HP423DF = '1.2.840.10008.1.2.4.105.1';
export const MPEG4HP42STEREO = '1.2.840.10008.1.2.4.106';
export const MPEG4HP42STEREOF = '1.2.840.10008.1.2.4.106.1';
export const HEVCMP51 = '1.2.840.10008.1.2.4.107';
export const HEVCM10P51 = '1.2.840.10008.1.2.4.108';
export const JPEGXLLossless = '1.2.840.10008.1.2.4.110';
export const JPEGXLJPEGRecompression = '1.2.840.10008.1.2.4.111';
export const JPEGXL = '1.2.840.10008.1.2.4.112';
export const HTJ2KLossless = '1.2.840.10008.1.2.4.201';
export const HTJ2KLosslessRPCL = '1.2.840.10008.1.2.4.202';
export const HTJ2K = '1.2.840.10008.1.2.4.203';
export const JPIPHTJ2KReferenced = '1.2.840.10008.1.2.4.204';
export const JPIPHTJ2KReferencedDeflate = '1.2.840.10008.1.2.4.205';
export const RLELossless = '1.2.840.10008.1.2.5';
export const SMPTEST211020UncompressedProgressiveActiveVideo = '1.2.840.10008.1.2.7.1';
export const SMPTEST211020UncompressedInterlacedActiveVideo = '1.2.840.10008.1.2.7.2';
export const SMPTEST211030PCMDigitalAudio = '1.2.840.10008.1.2.7.3';
export const DeflatedImageFrameCompression = '1.2.840.10008.1.2.8.1';

export interface TransferSyntaxInfo {
  explicitVR: boolean;
  littleEndian: boolean;
  /** The whole dataset after the file meta is a raw deflate stream (PS3.5 A.5). */
  deflated: boolean;
  /** Pixel Data is encapsulated in fragments (PS3.5 A.4). */
  encapsulated: boolean;
  /** The UID is one this codec recognizes; unknown UIDs are assumed Explicit VR LE encapsulated (PS3.5 A.4). */
  known: boolean;
}

// Transfer syntaxes whose Pixel Data is native (not encapsulated).
const NATIVE = new Set([
  ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
  JPIPReferenced, JPIPReferencedDeflate, JPIPHTJ2KReferenced, JPIPHTJ2KReferencedDeflate,
]);
const DEFLATED = new Set([DeflatedExplicitVRLittleEndian, JPIPReferencedDeflate, JPIPHTJ2KReferencedDeflate]);

const KNOWN = new Set<string>([
  ImplicitVRLittleEndian, ExplicitVRLittleEndian, EncapsulatedUncompressedExplicitVRLittleEndian,
  DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless,
  JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, JPEG2000MCLossless,
  JPEG2000MC, JPIPReferenced, JPIPReferencedDeflate, MPEG2MPML, MPEG2MPMLF, MPEG2MPHL, MPEG2MPHLF, MPEG4HP41,
  MPEG4HP41F, MPEG4HP41BD, MPEG4HP41BDF, MPEG4HP422D, MPEG4HP422DF, MPEG4HP423D, MPEG4HP423DF,
  MPEG4HP42STEREO, MPEG4HP42STEREOF, HEVCMP51, HEVCM10P51, JPEGXLLossless, JPEGXLJPEGRecompression, JPEGXL,
  HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K, JPIPHTJ2KReferenced, JPIPHTJ2KReferencedDeflate, RLELossless,
  SMPTEST211020UncompressedProgressiveActiveVideo, SMPTEST211020UncompressedInterlacedActiveVideo,
  SMPTEST211030PCMDigitalAudio, DeflatedImageFrameCompression,
  // JPEG processes retired from PS3.6 but still found in archives.
  '1.2.840.10008.1.2.4.52', '1.2.840.10008.1.2.4.53', '1.2.840.10008.1.2.4.54', '1.2.840.10008.1.2.4.55',
  '1.2.840.10008.1.2.4.56', '1.2.840.10008.1.2.4.58', '1.2.840.10008.1.2.4.59', '1.2.840.10008.1.2.4.60',
  '1.2.840.10008.1.2.4.61', '1.2.840.10008.1.2.4.62', '1.2.840.10008.1.2.4.63', '1.2.840.10008.1.2.4.64',
  '1.2.840.10008.1.2.4.65', '1.2.840.10008.1.2.4.66',
]);

export function transferSyntaxInfo(uid: string): TransferSyntaxInfo {
  const ts = uid.replace(/[\0 ]+$/, '');
  const known = KNOWN.has(ts);
  return {
    explicitVR: ts !== ImplicitVRLittleEndian,
    littleEndian: ts !== ExplicitVRBigEndian,
    deflated: DEFLATED.has(ts),
    // An unknown transfer syntax is most likely a compressed one, all of which encapsulate (PS3.5 A.4).
    encapsulated: !NATIVE.has(ts),
    known,
  };
}
