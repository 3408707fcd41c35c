// Encoding a native frame into a compressed transfer syntax, for WADO-RS and WADO-URI retrieves that ask for
// one. Lossless codecs only: a retrieve must not silently lose pixel values (design.md: never silently change
// pixel data). Runs in the imaging worker threads, with the same WebAssembly codecs as decoding.
import type { DecodedFrame } from './decode.ts';
import { ImagingError, loadCodecs } from './decode.ts';

export const RLELossless = '1.2.840.10008.1.2.5';
export const JPEGLSLossless = '1.2.840.10008.1.2.4.80';
export const JPEG2000Lossless = '1.2.840.10008.1.2.4.90';
export const HTJ2KLossless = '1.2.840.10008.1.2.4.201';

/** The compressed transfer syntaxes frames are encoded into, all lossless. */
export const ENCODABLE_TRANSFER_SYNTAXES: readonly string[] = [RLELossless, JPEGLSLossless, JPEG2000Lossless, HTJ2KLossless];

/** What an encoder needs to know of the (decoded) frames. */
export interface EncodableImage {
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  pixelRepresentation: number;
  photometricInterpretation: string;
  floatPixels?: 32 | 64;
}

/** Why frames of `image` cannot be encoded in `transferSyntaxUid`, or undefined when they can. */
export function encodeRefusal(transferSyntaxUid: string, image: EncodableImage): string | undefined {
  if (!ENCODABLE_TRANSFER_SYNTAXES.includes(transferSyntaxUid)) {
    return `frames are not encoded into ${transferSyntaxUid} here (lossless encoders: ${ENCODABLE_TRANSFER_SYNTAXES.join(', ')})`;
  }
  if (image.floatPixels) return 'float pixel data has no compressed transfer syntax';
  if (image.bitsAllocated !== 8 && image.bitsAllocated !== 16) return `Bits Allocated ${image.bitsAllocated} is not encoded here (8 or 16)`;
  // Subsampled color is stored as such only natively; the encoders take one sample per component and pixel.
  if (/_42[02]$/.test(image.photometricInterpretation)) return `${image.photometricInterpretation} pixels are not re-encoded`;
  if (transferSyntaxUid === RLELossless) return undefined; // byte planes: lossless for any 8/16-bit pixel
  // JPEG-LS and JPEG 2000 code Bits Stored bits: a signed value in fewer bits than allocated would come back
  // without its sign extension, i.e. not the same pixel data.
  if (image.pixelRepresentation === 1 && image.bitsStored !== image.bitsAllocated) {
    return `signed pixels of ${image.bitsStored} bits in ${image.bitsAllocated} would not survive ${transferSyntaxUid} unchanged`;
  }
  if (image.bitsStored < 2) return `Bits Stored ${image.bitsStored} is not encoded here`;
  // With colour, JPEG 2000 applies a component transform whose Photometric Interpretation (YBR_RCT) the
  // encoder does not report: only grayscale is encoded, so that the attributes stay true.
  if ((transferSyntaxUid === JPEG2000Lossless || transferSyntaxUid === HTJ2KLossless) && image.samplesPerPixel !== 1) {
    return `colour frames are not encoded into ${transferSyntaxUid} here`;
  }
  return undefined;
}

/** One frame (native, colour-by-pixel) encoded; the attributes of the result are those of `frame`. */
export async function encodeFrame(frame: DecodedFrame, transferSyntaxUid: string): Promise<Uint8Array> {
  const refusal = encodeRefusal(transferSyntaxUid, frame);
  if (refusal) throw new ImagingError('unsupported', refusal);
  const { Context, NativeCodecs } = await loadCodecs();
  const context = new Context({
    width: frame.columns, height: frame.rows, bitsAllocated: frame.bitsAllocated, bitsStored: frame.bitsStored,
    samplesPerPixel: frame.samplesPerPixel, pixelRepresentation: frame.pixelRepresentation, planarConfiguration: frame.planarConfiguration,
    photometricInterpretation: frame.photometricInterpretation, decodedBuffer: frame.bytes,
  });
  let encoded: Uint8Array | undefined;
  try {
    let result;
    if (transferSyntaxUid === RLELossless) result = NativeCodecs.encodeRle(context, {});
    else if (transferSyntaxUid === JPEGLSLossless) result = NativeCodecs.encodeJpegLs(context, { lossy: false });
    else if (transferSyntaxUid === JPEG2000Lossless) result = NativeCodecs.encodeJpeg2000(context, { lossy: false });
    else result = NativeCodecs.encodeHtJpeg2000(context, { lossy: false });
    encoded = result.getEncodedBuffer();
  } catch (error) {
    throw new ImagingError('unsupported', `the frame could not be encoded into ${transferSyntaxUid}: ${(error as Error)?.message ?? String(error)}`);
  }
  if (!encoded || encoded.length === 0) throw new ImagingError('unsupported', `the frame encoded into ${transferSyntaxUid} to nothing`);
  return new Uint8Array(encoded); // out of the WebAssembly heap
}
