// Rendering a decoded frame for presentation (PS3.18 8.3.5, PS3.4 Annex Z): Modality LUT, VOI LUT,
// Presentation LUT (MONOCHROME1 inverted), color to RGB, then region, scaling and encoding with sharp.
// Runs in the imaging worker threads.
import sharp from 'sharp';
import type { DecodedFrame } from './decode.ts';
import { ImagingError } from './decode.ts';
import type { ImageInfo, PaletteLut } from './image-info.ts';

export type RenderedMediaType = 'image/jpeg' | 'image/png';

export interface WindowParam {
  center: number;
  width: number;
  /** VOI LUT Function (PS3.3 C.11.2.1.3). */
  function: 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';
}

export interface ViewportParam {
  width: number;
  height: number;
  /** Source region: top-left corner and size in image pixels; a negative size flips that axis. */
  sx?: number;
  sy?: number;
  sw?: number;
  sh?: number;
}

export interface RenderParams {
  mediaType: RenderedMediaType;
  window?: WindowParam;
  viewport?: ViewportParam;
  /** JPEG quality, 1..100 (PS3.18 8.3.5.1.4). */
  quality?: number;
}

export const DEFAULT_JPEG_QUALITY = 90;

sharp.cache(false);
// The pool already runs one worker per CPU: one libvips thread each.
sharp.concurrency(1);

export interface PresentationPixels {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** Encodes a decoded frame as JPEG or PNG. */
export async function renderFrame(info: ImageInfo, frame: DecodedFrame, params: RenderParams): Promise<Uint8Array> {
  const pixels = toPresentation(info, frame, params.window);
  let image = sharp(pixels.data, { raw: { width: pixels.width, height: pixels.height, channels: pixels.channels } });
  const vp = params.viewport;
  if (vp) {
    if (vp.sx !== undefined) {
      const sw = vp.sw ?? pixels.width - vp.sx;
      const sh = vp.sh ?? pixels.height - (vp.sy ?? 0);
      const left = sw < 0 ? vp.sx + sw : vp.sx;
      const top = sh < 0 ? (vp.sy ?? 0) + sh : (vp.sy ?? 0);
      const width = Math.abs(sw);
      const height = Math.abs(sh);
      if (left < 0 || top < 0 || width === 0 || height === 0 || left + width > pixels.width || top + height > pixels.height) {
        throw new ImagingError('unsupported', `viewport source region ${vp.sx},${vp.sy},${vp.sw},${vp.sh} is outside the ${pixels.width}x${pixels.height} image`);
      }
      image = image.extract({ left, top, width, height });
      if (sw < 0) image = image.flop();
      if (sh < 0) image = image.flip();
    }
    // Scaled to fit the viewport, keeping the aspect ratio (PS3.18 8.3.5.1.2).
    image = image.resize(vp.width, vp.height, { fit: 'inside', kernel: 'lanczos3' });
  }
  if (pixels.channels === 1) image = image.toColourspace('b-w'); // grayscale PNG/JPEG, not RGB
  const out = params.mediaType === 'image/png'
    ? await image.png({ compressionLevel: 6 }).toBuffer()
    : await image.jpeg({ quality: params.quality ?? DEFAULT_JPEG_QUALITY, chromaSubsampling: pixels.channels === 1 ? undefined : '4:4:4' }).toBuffer();
  // A copy in an ordinary ArrayBuffer: sharp's buffers are external memory, which cannot be transferred.
  return new Uint8Array(out);
}

/** 8-bit grayscale or RGB pixels ready for display. */
export function toPresentation(info: ImageInfo, frame: DecodedFrame, window?: WindowParam): PresentationPixels {
  const width = frame.columns;
  const height = frame.rows;
  const count = width * height;
  const pi = frame.photometricInterpretation;
  if (pi === 'PALETTE COLOR') {
    if (!info.palette) throw new ImagingError('unsupported', 'PALETTE COLOR without palette lookup tables');
    const values = storedValues(frame, count);
    const out = new Uint8Array(count * 3);
    const luts = [info.palette.red, info.palette.green, info.palette.blue];
    const tables = luts.map(lutTo8Bit);
    for (let i = 0; i < count; i++) {
      for (let c = 0; c < 3; c++) {
        const lut = luts[c];
        const entries = lut.data.length;
        let index = values[i] - lut.descriptor[1];
        if (index < 0) index = 0;
        else if (index >= entries) index = entries - 1;
        out[i * 3 + c] = tables[c][index];
      }
    }
    return { data: out, width, height, channels: 3 };
  }
  if (frame.samplesPerPixel >= 3) return { data: colorToRgb(frame, count), width, height, channels: 3 };

  // Grayscale: stored values -> Modality LUT -> VOI LUT -> (MONOCHROME1) inversion.
  const values = info.floatPixels ? floatValues(frame, count, info.floatPixels) : storedValues(frame, count);
  const slope = info.rescaleSlope;
  const intercept = info.rescaleIntercept;
  const modality = new Float64Array(count);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < count; i++) {
    const v = values[i] * slope + intercept;
    modality[i] = v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  let voi: WindowParam;
  if (window) voi = window;
  else if (info.windowCenters.length > 0 && info.windowWidths.length > 0 && info.windowWidths[0] > 0) {
    const fn = info.voiLutFunction === 'SIGMOID' || info.voiLutFunction === 'LINEAR_EXACT' ? info.voiLutFunction : 'LINEAR';
    voi = { center: info.windowCenters[0], width: info.windowWidths[0], function: fn };
  } else {
    // No window anywhere: the full range of the frame.
    voi = { center: (min + max) / 2, width: Math.max(max - min, 1), function: 'LINEAR_EXACT' };
  }
  const out = new Uint8Array(count);
  const invert = frame.photometricInterpretation === 'MONOCHROME1';
  const apply = voiFunction(voi);
  for (let i = 0; i < count; i++) {
    const y = apply(modality[i]);
    out[i] = invert ? 255 - y : y;
  }
  return { data: out, width, height, channels: 1 };
}

/** The VOI LUT Function of PS3.3 C.11.2.1.2 to an 8-bit output range. */
export function voiFunction(voi: WindowParam): (x: number) => number {
  const c = voi.center;
  const ymax = 255;
  if (voi.function === 'SIGMOID') {
    const w = voi.width > 0 ? voi.width : 1;
    return (x) => Math.round(ymax / (1 + Math.exp((-4 * (x - c)) / w)));
  }
  if (voi.function === 'LINEAR_EXACT') {
    const w = voi.width > 0 ? voi.width : 1;
    return (x) => {
      if (x <= c - w / 2) return 0;
      if (x > c + w / 2) return ymax;
      return Math.round(((x - c) / w + 0.5) * ymax);
    };
  }
  const w = voi.width >= 1 ? voi.width : 1;
  return (x) => {
    if (x <= c - 0.5 - (w - 1) / 2) return 0;
    if (x > c - 0.5 + (w - 1) / 2) return ymax;
    if (w === 1) return ymax;
    return Math.round(((x - (c - 0.5)) / (w - 1) + 0.5) * ymax);
  };
}

/** The stored values of a single-sample frame, sign-extended or masked to Bits Stored. */
export function storedValues(frame: DecodedFrame, count: number): Float64Array | Int32Array {
  const bytes = frame.bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = Math.min(frame.bitsStored, frame.bitsAllocated);
  const signed = frame.pixelRepresentation === 1;
  const out = new Float64Array(count);
  const step = frame.bitsAllocated / 8;
  if (bytes.length < count * step) throw new ImagingError('corrupt', `the frame has ${bytes.length} bytes, ${count * step} expected`);
  if (frame.bitsAllocated === 32 && stored === 32) {
    for (let i = 0; i < count; i++) out[i] = signed ? view.getInt32(i * 4, true) : view.getUint32(i * 4, true);
    return out;
  }
  const mask = stored >= 32 ? 0xffffffff : 2 ** stored - 1;
  const signBit = 2 ** (stored - 1);
  for (let i = 0; i < count; i++) {
    let raw: number;
    if (step === 1) raw = bytes[i];
    else if (step === 2) raw = view.getUint16(i * 2, true);
    else raw = view.getUint32(i * 4, true);
    let v = stored >= 32 ? raw : raw % (mask + 1);
    if (signed && v >= signBit) v -= 2 * signBit;
    out[i] = v;
  }
  return out;
}

/** Float Pixel Data frames: values as they are (no Bits Stored). */
export function floatValues(frame: DecodedFrame, count: number, bits: 32 | 64): Float64Array {
  const view = new DataView(frame.bytes.buffer, frame.bytes.byteOffset, frame.bytes.byteLength);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = bits === 32 ? view.getFloat32(i * 4, true) : view.getFloat64(i * 8, true);
  return out;
}

function lutTo8Bit(lut: PaletteLut): Uint8Array {
  const out = new Uint8Array(lut.data.length);
  let max = 0;
  for (const v of lut.data) if (v > max) max = v;
  // Descriptors of 16 bits whose entries never exceed 255 are 8-bit tables in a 16-bit container (seen in
  // the wild, PS3.3 C.7.6.3.1.5 notes it).
  const shift = lut.descriptor[2] === 16 && max > 255 ? 8 : 0;
  for (let i = 0; i < out.length; i++) out[i] = lut.data[i] >> shift;
  return out;
}

function colorToRgb(frame: DecodedFrame, count: number): Uint8Array {
  const bytes = frame.bytes;
  const step = frame.bitsAllocated / 8;
  const shift = Math.max(0, Math.min(frame.bitsStored, frame.bitsAllocated) - 8);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sample = (index: number): number => {
    if (step === 1) return bytes[index];
    const raw = step === 2 ? view.getUint16(index * 2, true) : view.getUint32(index * 4, true);
    return Math.min(255, Math.floor(raw / 2 ** shift));
  };
  const out = new Uint8Array(count * 3);
  const pi = frame.photometricInterpretation;
  if ((pi === 'YBR_FULL_422' || pi === 'YBR_PARTIAL_422') && frame.planarConfiguration === 0 && bytes.length < count * 3 * step) {
    // Native 4:2:2 (PS3.5 8.2.6): Y1 Y2 Cb Cr for each pair of pixels on a row.
    const cols = frame.columns;
    for (let row = 0; row < frame.rows; row++) {
      for (let x = 0; x < cols; x += 2) {
        const pair = (row * cols + x) * 2;
        const cb = sample(pair + 2);
        const cr = sample(pair + 3);
        ybrToRgb(sample(pair), cb, cr, out, (row * cols + x) * 3, pi);
        if (x + 1 < cols) ybrToRgb(sample(pair + 1), cb, cr, out, (row * cols + x + 1) * 3, pi);
      }
    }
    return out;
  }
  if (bytes.length < count * 3 * step) throw new ImagingError('corrupt', `the color frame has ${bytes.length} bytes, ${count * 3 * step} expected`);
  const planar = frame.planarConfiguration === 1;
  const at = (i: number, c: number) => sample(planar ? c * count + i : i * 3 + c);
  const ybr = pi.startsWith('YBR');
  for (let i = 0; i < count; i++) {
    if (ybr) ybrToRgb(at(i, 0), at(i, 1), at(i, 2), out, i * 3, pi);
    else {
      out[i * 3] = at(i, 0);
      out[i * 3 + 1] = at(i, 1);
      out[i * 3 + 2] = at(i, 2);
    }
  }
  return out;
}

const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** YCbCr to RGB, PS3.3 C.7.6.3.1.2: full range for YBR_FULL(_422), ITU-R BT.601 head-room for YBR_PARTIAL_*. */
function ybrToRgb(y: number, cb: number, cr: number, out: Uint8Array, o: number, pi: string): void {
  if (pi.startsWith('YBR_PARTIAL')) {
    const yy = 1.1644 * (y - 16);
    out[o] = clamp(yy + 1.5960 * (cr - 128));
    out[o + 1] = clamp(yy - 0.3918 * (cb - 128) - 0.8130 * (cr - 128));
    out[o + 2] = clamp(yy + 2.0172 * (cb - 128));
    return;
  }
  out[o] = clamp(y + 1.402 * (cr - 128));
  out[o + 1] = clamp(y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128));
  out[o + 2] = clamp(y + 1.772 * (cb - 128));
}
