// RLE Lossless (PS3.5 Annex G): a 64-byte header of segment offsets, then one PackBits segment per byte
// plane (for each sample, most significant byte first).

export class RleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RleError';
  }
}

/**
 * Decodes one RLE frame to native Little Endian bytes, color-by-pixel (Planar Configuration 0).
 * `bytesPerSample` is BitsAllocated / 8.
 */
export function decodeRle(frame: Uint8Array, rows: number, columns: number, samplesPerPixel: number, bytesPerSample: number): Uint8Array {
  if (frame.length < 64) throw new RleError(`RLE frame of ${frame.length} bytes is shorter than its 64-byte header`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  const expected = samplesPerPixel * bytesPerSample;
  if (segments !== expected) throw new RleError(`RLE header declares ${segments} segments, the image needs ${expected}`);
  const offsets: number[] = [];
  for (let i = 0; i < segments; i++) offsets.push(view.getUint32(4 + i * 4, true));
  const pixels = rows * columns;
  const out = new Uint8Array(pixels * expected);
  const stride = expected;
  for (let s = 0; s < segments; s++) {
    const start = offsets[s];
    const end = s + 1 < segments ? offsets[s + 1] : frame.length;
    if (start < 64 || start > frame.length || end < start) throw new RleError(`RLE segment ${s + 1} offset ${start} is outside the frame`);
    const sample = Math.floor(s / bytesPerSample);
    const byteInSample = s % bytesPerSample; // 0 = most significant
    let o = sample * bytesPerSample + (bytesPerSample - 1 - byteInSample);
    let written = 0;
    let i = start;
    while (i < end && written < pixels) {
      const n = (frame[i++] << 24) >> 24;
      if (n >= 0) {
        const count = Math.min(n + 1, end - i, pixels - written);
        for (let k = 0; k < count; k++, o += stride) out[o] = frame[i + k];
        i += n + 1;
        written += count;
      } else if (n !== -128) {
        if (i >= end) break;
        const value = frame[i++];
        const count = Math.min(1 - n, pixels - written);
        for (let k = 0; k < count; k++, o += stride) out[o] = value;
        written += count;
      }
    }
    if (written < pixels) throw new RleError(`RLE segment ${s + 1} decodes to ${written} bytes, ${pixels} expected`);
  }
  return out;
}
