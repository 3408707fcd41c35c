// Whether two copies of one SOP Instance in different transfer syntaxes hold the same pixels: every frame of
// each is decoded (in the worker pool) and the native bytes compared. The copies need not be in the index
// yet: each comes with its own record, metadata and pixel data layout (the ingest pipeline asks this about an
// object it has just received and one it holds).
import type { BlobStore } from '../ports/blob-store.ts';
import type { StoredInstanceReader } from '../ports/stored-instance-reader.ts';
import type { IndexStore, InstanceRecord, PixelDataLayout } from '../ports/index-store.ts';
import type { DecodedFrame } from './decode.ts';
import { DEFAULT_LIMITS, loadFrame, type ImagingLimits, type ImagingStores } from './frame-source.ts';
import { hasPixelData, imageInfoFromMetadata } from './image-info.ts';
import { transferable, type WorkerPool } from './worker-pool.ts';

export interface PixelCopy {
  record: InstanceRecord;
  metadata: unknown;
  pixelData: PixelDataLayout | null;
}

export type PixelComparison =
  | { result: 'same'; frames: number }
  | { result: 'different'; detail: string }
  /** One of them cannot be decoded here (codec, corrupt data): nothing can be said. */
  | { result: 'unknown'; detail: string };

/** Compares the decoded frames of `a` and `b`, frame by frame; stops at the first difference. */
export async function comparePixels(blobs: BlobStore, a: PixelCopy, b: PixelCopy, pool: WorkerPool, limits: ImagingLimits = DEFAULT_LIMITS): Promise<PixelComparison> {
  const hasA = hasPixelData(a.metadata);
  if (hasA !== hasPixelData(b.metadata)) return { result: 'different', detail: 'one copy has pixel data, the other none' };
  if (!hasA) return { result: 'same', frames: 0 };
  const framesA = imageInfoFromMetadata(a.metadata, a.record.transferSyntaxUid).numberOfFrames;
  const framesB = imageInfoFromMetadata(b.metadata, b.record.transferSyntaxUid).numberOfFrames;
  if (framesA !== framesB) return { result: 'different', detail: `${framesA} frames against ${framesB}` };
  for (let frame = 1; frame <= framesA; frame++) {
    let x: DecodedFrame;
    let y: DecodedFrame;
    try {
      x = await decode(blobs, a, frame, pool, limits);
      y = await decode(blobs, b, frame, pool, limits);
    } catch (error) {
      return { result: 'unknown', detail: `frame ${frame} could not be decoded: ${(error as Error).message}` };
    }
    for (const k of ['rows', 'columns', 'samplesPerPixel', 'bitsAllocated'] as const) {
      if (x[k] !== y[k]) return { result: 'different', detail: `frame ${frame}: ${k} ${x[k]} against ${y[k]}` };
    }
    if (x.samplesPerPixel > 1 && x.photometricInterpretation !== y.photometricInterpretation) {
      return { result: 'different', detail: `frame ${frame}: decoded as ${x.photometricInterpretation} against ${y.photometricInterpretation}` };
    }
    const bx = byPixel(x);
    const by = byPixel(y);
    if (bx.length !== by.length || !Buffer.from(bx.buffer, bx.byteOffset, bx.byteLength).equals(Buffer.from(by.buffer, by.byteOffset, by.byteLength))) {
      return { result: 'different', detail: `frame ${frame}: the decoded pixels differ` };
    }
  }
  return { result: 'same', frames: framesA };
}

async function decode(blobs: BlobStore, copy: PixelCopy, frame: number, pool: WorkerPool, limits: ImagingLimits): Promise<DecodedFrame> {
  const sop = copy.record.sopInstanceUid;
  // The frame source reads these three from the index; for a copy not (or not yet) indexed they come from here.
  const index = {
    findInstance: async (uid: string) => (uid === sop ? copy.record : null),
    instanceMetadata: async (uid: string) => (uid === sop ? copy.metadata : null),
    pixelDataLayout: async (uid: string) => (uid === sop ? copy.pixelData : null),
  } as Pick<IndexStore, 'findInstance' | 'instanceMetadata' | 'pixelDataLayout'> as IndexStore;
  // The copy being compared is not indexed yet (ingest compares before it decides), so it has no place on the
  // retrieve service's read path: its bytes are read here from the blob the ingest just wrote.
  const key = copy.record.blobKey;
  const retrieve: StoredInstanceReader = {
    readInstance: async (_instance, range) => await blobs.read(key, range),
    async *readInstancePieces(_instance, pieces) {
      for (const [offset, length] of pieces) {
        if (length > 0) for await (const chunk of await blobs.read(key, { start: offset, end: offset + length })) yield chunk as Uint8Array;
      }
    },
    async openInstanceBytes(instance, pieces) {
      if (blobs.openReader) return { reader: await blobs.openReader(key), pieces };
      return pieces ? this.readInstancePieces(instance, pieces) : await blobs.read(key);
    },
  };
  const stores: ImagingStores = { index, retrieve };
  const input = await loadFrame(stores, sop, frame, limits);
  const result = await pool.run({ op: 'decode', info: input.info, bytes: input.bytes, bitOffset: input.bitOffset }, transferable(input.bytes));
  return { ...result.frame!, bytes: result.bytes };
}

/** Color-by-plane frames (Planar Configuration 1, native only) rearranged color-by-pixel, as decoders give them. */
function byPixel(frame: DecodedFrame): Uint8Array {
  if (frame.planarConfiguration !== 1 || frame.samplesPerPixel === 1) return frame.bytes;
  const sample = frame.bitsAllocated / 8;
  const pixels = frame.rows * frame.columns;
  const plane = pixels * sample;
  const out = new Uint8Array(plane * frame.samplesPerPixel);
  for (let p = 0; p < pixels; p++) {
    for (let s = 0; s < frame.samplesPerPixel; s++) {
      out.set(frame.bytes.subarray(s * plane + p * sample, s * plane + (p + 1) * sample), (p * frame.samplesPerPixel + s) * sample);
    }
  }
  return out;
}
