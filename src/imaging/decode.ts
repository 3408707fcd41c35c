// Decoding one frame to native pixels. Runs in the imaging worker threads (worker.ts): the codecs are
// WebAssembly (dcmjs-codecs: IJG libjpeg 8/12/16-bit, CharLS, OpenJPEG, OpenJPH) and block while they run.
import { createRequire } from 'node:module';
import type { ImageInfo } from './image-info.ts';
import { decodeRle, RleError } from './rle.ts';

/** Failures with a reason the client can act on; `kind` is carried across the worker boundary. */
export class ImagingError extends Error {
  readonly kind: 'unsupported' | 'corrupt' | 'too-large';
  constructor(kind: 'unsupported' | 'corrupt' | 'too-large', message: string) {
    super(message);
    this.name = 'ImagingError';
    this.kind = kind;
  }
}

/** A frame as native Little Endian bytes, with the attributes that describe these bytes. */
export interface DecodedFrame {
  bytes: Uint8Array;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  pixelRepresentation: number;
  planarConfiguration: number;
  /** After decoding: JPEG/J2K color is returned as RGB whatever it was compressed as. */
  photometricInterpretation: string;
}

const TS = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  encapsulatedUncompressed: '1.2.840.10008.1.2.1.98',
  deflated: '1.2.840.10008.1.2.1.99',
  explicitBE: '1.2.840.10008.1.2.2',
  rle: '1.2.840.10008.1.2.5',
};
const JPEG = new Set(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70']);
const JPEG_LS = new Set(['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81']);
const JPEG_2000 = new Set(['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.4.92', '1.2.840.10008.1.2.4.93']);
const HTJ2K = new Set(['1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203']);
const NATIVE = new Set([TS.implicitLE, TS.explicitLE, TS.deflated, TS.explicitBE]);

/** Transfer syntaxes whose frames this module decodes. */
export function canDecode(transferSyntaxUid: string): boolean {
  const ts = transferSyntaxUid;
  return NATIVE.has(ts) || ts === TS.encapsulatedUncompressed || ts === TS.rle || JPEG.has(ts) || JPEG_LS.has(ts) || JPEG_2000.has(ts) || HTJ2K.has(ts);
}

export function isNative(transferSyntaxUid: string): boolean {
  return NATIVE.has(transferSyntaxUid);
}

/**
 * Decodes one frame. `bytes` is the native frame (for native transfer syntaxes, starting at bit
 * `bitOffset` for 1-bit images) or the frame's encapsulated fragments joined.
 */
export async function decodeFrameBytes(info: ImageInfo, bytes: Uint8Array, bitOffset = 0): Promise<DecodedFrame> {
  const ts = info.transferSyntaxUid;
  const base: DecodedFrame = {
    bytes, rows: info.rows, columns: info.columns, samplesPerPixel: info.samplesPerPixel, bitsAllocated: info.bitsAllocated,
    bitsStored: info.bitsStored, pixelRepresentation: info.pixelRepresentation, planarConfiguration: info.planarConfiguration,
    photometricInterpretation: info.photometricInterpretation,
  };
  if (info.rows <= 0 || info.columns <= 0) throw new ImagingError('unsupported', 'the image has no Rows or Columns');
  if (NATIVE.has(ts) || ts === TS.encapsulatedUncompressed) {
    if (info.bitsAllocated === 1) return { ...base, bytes: unpackBits(bytes, bitOffset, info.rows * info.columns * info.samplesPerPixel), bitsAllocated: 8, bitsStored: 1 };
    const expected = nativeFrameBytes(info);
    if (bytes.length < expected) throw new ImagingError('corrupt', `the frame has ${bytes.length} bytes, ${expected} expected`);
    const frame = bytes.length > expected ? bytes.subarray(0, expected) : bytes;
    return { ...base, bytes: ts === TS.explicitBE ? swapToLittleEndian(frame, info.bitsAllocated / 8) : frame };
  }
  if (ts === TS.rle) {
    if (info.bitsAllocated % 8 !== 0) throw new ImagingError('unsupported', `RLE with Bits Allocated ${info.bitsAllocated}`);
    try {
      return { ...base, bytes: decodeRle(bytes, info.rows, info.columns, info.samplesPerPixel, info.bitsAllocated / 8), planarConfiguration: 0 };
    } catch (error) {
      if (error instanceof RleError) throw new ImagingError('corrupt', error.message);
      throw error;
    }
  }
  if (JPEG.has(ts) || JPEG_LS.has(ts) || JPEG_2000.has(ts) || HTJ2K.has(ts)) return await decodeWithCodecs(info, bytes, base);
  throw new ImagingError('unsupported', `transfer syntax ${ts} is not decodable`);
}

export function nativeFrameBytes(info: ImageInfo): number {
  const pixels = info.rows * info.columns;
  const bytesPerSample = info.bitsAllocated / 8;
  if (info.photometricInterpretation === 'YBR_FULL_422' || info.photometricInterpretation === 'YBR_PARTIAL_422') return pixels * 2 * bytesPerSample;
  return pixels * info.samplesPerPixel * bytesPerSample;
}

function swapToLittleEndian(bytes: Uint8Array, width: number): Uint8Array {
  if (width <= 1) return bytes;
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i + width <= bytes.length; i += width) for (let k = 0; k < width; k++) out[i + k] = bytes[i + width - 1 - k];
  return out;
}

/** 1-bit pixels (PS3.5 8.1.1: the first pixel in the least significant bit) to one byte each (0 or 1). */
function unpackBits(bytes: Uint8Array, bitOffset: number, count: number): Uint8Array {
  if (bytes.length * 8 < bitOffset + count) throw new ImagingError('corrupt', `the 1-bit frame needs ${Math.ceil((bitOffset + count) / 8)} bytes, ${bytes.length} present`);
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const bit = bitOffset + i;
    out[i] = (bytes[bit >> 3] >> (bit & 7)) & 1;
  }
  return out;
}

// dcmjs-codecs is CommonJS with one WebAssembly module, initialized once per thread.
type Codecs = typeof import('dcmjs-codecs');
let codecs: Promise<Codecs> | undefined;

/** The codecs of this thread (also used by encode.ts). */
export function loadCodecs(): Promise<Codecs> {
  codecs ??= (async () => {
    const require = createRequire(import.meta.url);
    const module = require('dcmjs-codecs') as Codecs;
    module.log.setLevel('silent');
    await module.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
    return module;
  })();
  return codecs;
}

async function decodeWithCodecs(info: ImageInfo, bytes: Uint8Array, base: DecodedFrame): Promise<DecodedFrame> {
  const { Context, NativeCodecs } = await loadCodecs();
  const ts = info.transferSyntaxUid;
  const color = info.samplesPerPixel > 1;
  const context = new Context({
    width: info.columns, height: info.rows, bitsAllocated: info.bitsAllocated, bitsStored: info.bitsStored,
    samplesPerPixel: info.samplesPerPixel, pixelRepresentation: info.pixelRepresentation, planarConfiguration: 0,
    photometricInterpretation: info.photometricInterpretation, encodedBuffer: bytes,
  });
  let decoded: Uint8Array | undefined;
  try {
    let result;
    if (JPEG.has(ts)) result = NativeCodecs.decodeJpeg(context, { convertColorspaceToRgb: color });
    else if (JPEG_LS.has(ts)) result = NativeCodecs.decodeJpegLs(context, {});
    else if (JPEG_2000.has(ts)) result = NativeCodecs.decodeJpeg2000(context, {});
    else result = NativeCodecs.decodeHtJpeg2000(context, {});
    decoded = result.getDecodedBuffer();
  } catch (error) {
    throw new ImagingError('corrupt', `the ${codecName(ts)} frame could not be decoded: ${(error as Error)?.message ?? String(error)}`);
  }
  if (!decoded || decoded.length === 0) throw new ImagingError('corrupt', `the ${codecName(ts)} frame decoded to nothing`);
  const pixels = info.rows * info.columns * info.samplesPerPixel;
  const bytesPerSample = info.bitsAllocated / 8;
  let out = new Uint8Array(decoded); // out of the WebAssembly heap
  if (out.length === pixels && bytesPerSample === 2) {
    // An 8-bit codestream in a 16-bit allocation: widen.
    const wide = new Uint8Array(pixels * 2);
    for (let i = 0; i < pixels; i++) wide[i * 2] = out[i];
    out = wide;
  } else if (out.length < pixels * bytesPerSample) {
    throw new ImagingError('corrupt', `the ${codecName(ts)} frame decoded to ${out.length} bytes, ${pixels * bytesPerSample} expected`);
  } else if (out.length > pixels * bytesPerSample) {
    out = out.subarray(0, pixels * bytesPerSample);
  }
  // JPEG decodes YBR to RGB (convertColorspaceToRgb); JPEG 2000's RCT/ICT are undone by the codec.
  let photometricInterpretation = info.photometricInterpretation;
  if (color && photometricInterpretation !== 'RGB') {
    const converted = JPEG.has(ts) || JPEG_2000.has(ts) && (photometricInterpretation === 'YBR_RCT' || photometricInterpretation === 'YBR_ICT')
      || HTJ2K.has(ts) && (photometricInterpretation === 'YBR_RCT' || photometricInterpretation === 'YBR_ICT');
    if (converted) photometricInterpretation = 'RGB';
  }
  return { ...base, bytes: out, planarConfiguration: 0, photometricInterpretation };
}

function codecName(ts: string): string {
  if (JPEG.has(ts)) return 'JPEG';
  if (JPEG_LS.has(ts)) return 'JPEG-LS';
  if (JPEG_2000.has(ts)) return 'JPEG 2000';
  return 'HTJ2K';
}
