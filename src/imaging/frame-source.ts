// Fetching one frame's bytes from the stored object (through the retrieve service) with ranged reads, on the main thread (it is I/O): the
// index's pixel data layout says where native frames and encapsulated fragments lie, so only that frame's
// bytes are read. Deflated objects have no layout (their offsets refer to the inflated stream) and are
// inflated whole, within a bound.
import { promisify } from 'node:util';
import { inflateRaw } from 'node:zlib';
import type { StoredInstanceReader } from '../ports/stored-instance-reader.ts';
import type { IndexStore, InstanceRecord, PixelDataLayout } from '../ports/index-store.ts';
import { AtriumError } from '../errors.ts';
import { parseDataset } from '../dicom/parse-dataset.ts';
import { findElement, elementNumbers, type DataSet } from '../dicom/dataset.ts';
import { fileMetaLength } from '../dicom/part10-writer.ts';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../dicom/transfer-syntax.ts';
import { canDecode, isNative } from './decode.ts';
import { hasPixelData, imageInfoFromMetadata, nativeFrameBits, Tags, type ImageInfo, type PaletteLut } from './image-info.ts';

const inflateRawAsync = promisify(inflateRaw);

export interface ImagingLimits {
  /** Largest deflated object read whole (compressed bytes). */
  maxDeflatedBytes: number;
  /** Largest inflated data set accepted (zip bombs stop here). */
  maxInflatedBytes: number;
  /** Largest frame read (compressed or not). */
  maxFrameBytes: number;
}

export const DEFAULT_LIMITS: ImagingLimits = {
  maxDeflatedBytes: 256 * 1024 * 1024,
  maxInflatedBytes: 1024 * 1024 * 1024,
  maxFrameBytes: 512 * 1024 * 1024,
};

export interface FrameInput {
  instance: InstanceRecord;
  info: ImageInfo;
  /** The native frame (from bit `bitOffset` for 1-bit images) or the frame's fragments joined. */
  bytes: Uint8Array;
  bitOffset: number;
}

/** What imaging reads: the index, and stored bytes through the one read path (the archive's RetrieveService). */
export interface ImagingStores {
  index: IndexStore;
  retrieve: StoredInstanceReader;
}

/** The instance's image attributes, checked to be decodable, without reading pixel data. */
export async function describeImage(stores: ImagingStores, sopInstanceUid: string, frame = 1): Promise<{ instance: InstanceRecord; info: ImageInfo }> {
  const instance = await stores.index.findInstance(sopInstanceUid);
  if (!instance) throw new AtriumError('not-found', `no instance with SOP Instance UID ${sopInstanceUid}`);
  const metadata = await stores.index.instanceMetadata(sopInstanceUid);
  if (!metadata || !hasPixelData(metadata)) {
    throw new AtriumError('not-acceptable', `instance ${sopInstanceUid} has no pixel data to render or decode`, { reason: 'not-an-image' });
  }
  const ts = instance.transferSyntaxUid.replace(/[\0 ]+$/, '');
  const info = imageInfoFromMetadata(metadata, ts, frame);
  if (!Number.isInteger(frame) || frame < 1 || frame > info.numberOfFrames) {
    throw new AtriumError('not-found', `instance ${sopInstanceUid} has ${info.numberOfFrames} frame(s); there is no frame ${frame}`);
  }
  if (!canDecode(ts)) {
    throw new AtriumError('not-acceptable', `frames in transfer syntax ${ts} cannot be decoded here`, { reason: 'unsupported-transfer-syntax', transferSyntaxUid: ts });
  }
  if (![1, 8, 16, 32, 64].includes(info.bitsAllocated) || info.bitsAllocated === 64 && info.floatPixels !== 64) {
    throw new AtriumError('not-acceptable', `Bits Allocated ${info.bitsAllocated} is not supported`, { reason: 'unsupported-pixel-format' });
  }
  return { instance, info };
}

/** Reads frame `frame` (1-based) of an instance, and the lookup tables its rendering needs. */
export async function loadFrame(stores: ImagingStores, sopInstanceUid: string, frame: number, limits: ImagingLimits = DEFAULT_LIMITS): Promise<FrameInput> {
  const { instance, info } = await describeImage(stores, sopInstanceUid, frame);
  const ts = info.transferSyntaxUid;
  const layout = await stores.index.pixelDataLayout(sopInstanceUid);
  if (!layout) {
    // Deflated objects (PS3.5 A.5) have no layout: inflate the data set and take the frame from it.
    return { instance, ...(await loadFromDeflated(stores, instance, info, frame, limits)) };
  }
  if (info.photometricInterpretation === 'PALETTE COLOR') info.palette = palette(await readHeader(stores, instance, layout, ts));
  return await new FrameReader(stores, instance, info, layout, limits).read(frame);
}

/**
 * The frames of one instance read one after the other (whole-object transcoding): the index is asked once and
 * the fragments of every frame are found once, however many frames are read. Not for deflated objects.
 */
export class FrameReader {
  readonly instance: InstanceRecord;
  readonly info: ImageInfo;
  readonly layout: PixelDataLayout;
  readonly #stores: ImagingStores;
  readonly #limits: ImagingLimits;
  #fragments: Promise<[number, number][][]> | undefined;

  constructor(stores: ImagingStores, instance: InstanceRecord, info: ImageInfo, layout: PixelDataLayout, limits: ImagingLimits = DEFAULT_LIMITS) {
    this.#stores = stores;
    this.instance = instance;
    this.info = info;
    this.layout = layout;
    this.#limits = limits;
  }

  /** The reader of an instance's frames; rejects like describeImage, and for deflated objects (no layout). */
  static async open(stores: ImagingStores, sopInstanceUid: string, limits: ImagingLimits = DEFAULT_LIMITS): Promise<FrameReader> {
    const { instance, info } = await describeImage(stores, sopInstanceUid);
    const layout = await stores.index.pixelDataLayout(sopInstanceUid);
    if (!layout) throw new AtriumError('not-acceptable', `the frames of instance ${sopInstanceUid} cannot be read by range (deflated)`, { reason: 'unsupported-transfer-syntax' });
    return new FrameReader(stores, instance, info, layout, limits);
  }

  /** Frame `frame` (1-based): the native frame, or its fragments joined. */
  async read(frame: number): Promise<FrameInput> {
    const { instance, info, layout } = this;
    const stores = this.#stores;
    const limits = this.#limits;
    if (isNative(info.transferSyntaxUid)) {
      const frameBits = nativeFrameBits(info);
      const startBit = (frame - 1) * frameBits;
      const start = Math.floor(startBit / 8);
      const end = Math.ceil((startBit + frameBits) / 8);
      if (end - start > limits.maxFrameBytes) throw new AtriumError('invalid-input', `frame of ${end - start} bytes is over the ${limits.maxFrameBytes}-byte limit`, { reason: 'too-large' });
      if (end > layout.length) throw new AtriumError('internal', `stored pixel data is corrupt: frame ${frame} ends at byte ${end} of ${layout.length}`, { reason: 'corrupt-pixel-data' });
      const bytes = await readRange(stores.retrieve, instance, layout.offset + start, layout.offset + end);
      return { instance, info, bytes, bitOffset: startBit % 8 };
    }
    const fragments = layout.fragments ?? [];
    if (fragments.length === 0) throw new AtriumError('internal', 'stored pixel data is corrupt: encapsulated pixel data without fragments', { reason: 'corrupt-pixel-data' });
    this.#fragments ??= frameFragments(stores, instance, layout, fragments, info.numberOfFrames, info.transferSyntaxUid);
    const chosen = (await this.#fragments)[frame - 1];
    const first = chosen[0];
    const last = chosen[chosen.length - 1];
    const total = chosen.reduce((n, f) => n + f[1], 0);
    if (total > limits.maxFrameBytes) throw new AtriumError('invalid-input', `frame of ${total} bytes is over the ${limits.maxFrameBytes}-byte limit`, { reason: 'too-large' });
    // One read from the first fragment to the end of the last; item headers between them are dropped.
    const span = await readRange(stores.retrieve, instance, first[0], last[0] + last[1]);
    const bytes = new Uint8Array(total);
    let o = 0;
    for (const [offset, length] of chosen) {
      bytes.set(span.subarray(offset - first[0], offset - first[0] + length), o);
      o += length;
    }
    return { instance, info, bytes, bitOffset: 0 };
  }
}

/**
 * The fragments of each frame (PS3.5 A.4): by the Basic Offset Table when there is one, one fragment per frame
 * when the counts match, all of them for a single frame, else by looking for each codestream's start marker.
 */
async function frameFragments(stores: ImagingStores, instance: InstanceRecord, layout: PixelDataLayout, fragments: [number, number][],
  frames: number, ts: string): Promise<[number, number][][]> {
  if (frames === 1) return [fragments];
  const bot = layout.basicOffsetTable;
  if (bot && bot.length >= frames) {
    // Offsets count from the first fragment's item tag, 8 bytes before its data.
    const base = fragments[0][0] - 8;
    const table: [number, number][][] = Array.from({ length: frames }, () => []);
    let f = 0;
    for (const fragment of fragments) {
      const at = fragment[0] - 8 - base;
      while (f + 1 < frames && at >= bot[f + 1]) f++;
      if (at >= bot[f]) table[f].push(fragment);
    }
    if (table.every((t) => t.length > 0)) return table;
  }
  if (fragments.length === frames) return fragments.map((f) => [f]);
  if (ts === '1.2.840.10008.1.2.5') throw new AtriumError('internal', `stored pixel data is corrupt: ${fragments.length} RLE fragments for ${frames} frames`, { reason: 'corrupt-pixel-data' });
  // Several fragments per frame and no offset table: a frame starts with a fragment that begins with a
  // JPEG SOI (FFD8) or JPEG 2000 SOC (FF4F) marker.
  const starts: number[] = [];
  for (let i = 0; i < fragments.length; i++) {
    const [offset, length] = fragments[i];
    if (length < 2) continue;
    const head = await readRange(stores.retrieve, instance, offset, offset + 2);
    if (head[0] === 0xff && (head[1] === 0xd8 || head[1] === 0x4f)) starts.push(i);
  }
  if (starts.length !== frames) throw new AtriumError('internal', `stored pixel data is corrupt: ${starts.length} codestreams found for ${frames} frames`, { reason: 'corrupt-pixel-data' });
  return starts.map((start, n) => fragments.slice(start, n + 1 < frames ? starts[n + 1] : fragments.length));
}

/** Bytes [start, end) of the stored instance, read by range and checked to be all there. */
export async function readRange(retrieve: StoredInstanceReader, instance: InstanceRecord, start: number, end: number): Promise<Uint8Array> {
  const stream = await retrieve.readInstance(instance, { start, end });
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  const joined = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length);
  if (joined.length < end - start) {
    throw new AtriumError('internal', `stored object is shorter than its index says (${joined.length} of ${end - start} bytes at ${start})`, { reason: 'corrupt-pixel-data' });
  }
  return new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength);
}

/** The data set before the Pixel Data element (for lookup-table data the index keeps only as bulk data). */
async function readHeader(stores: ImagingStores, instance: InstanceRecord, layout: PixelDataLayout, ts: string): Promise<DataSet> {
  const explicit = ts !== ImplicitVRLittleEndian;
  const elementStart = layout.offset - (explicit ? 12 : 8);
  const head = await readRange(stores.retrieve, instance, 0, elementStart);
  let metaLength = 0;
  try {
    metaLength = fileMetaLength(head) ?? 0;
  } catch {
    metaLength = 0; // stored without preamble and meta
  }
  return parseDataset(head.subarray(metaLength), ts, 64 * 1024 * 1024);
}

function palette(ds: DataSet): ImageInfo['palette'] {
  const le = ds.littleEndian ?? true;
  const lut = (descriptorTag: number, dataTag: number, segmentedTag: number): PaletteLut => {
    const d = findElement(ds, descriptorTag);
    const data = findElement(ds, dataTag);
    const descriptor = d ? elementNumbers(d, le) ?? [] : [];
    if (descriptor.length < 3) throw new AtriumError('invalid-input', 'PALETTE COLOR image without a valid lookup table descriptor', { reason: 'unsupported' });
    if (!data?.value) {
      const segmented = findElement(ds, segmentedTag) !== undefined;
      throw new AtriumError('invalid-input', segmented ? 'segmented palette color lookup tables are not supported' : 'PALETTE COLOR image without lookup table data', { reason: 'unsupported' });
    }
    // The first mapped value may be encoded as US or SS (PS3.3 C.7.6.3.1.5): read it as unsigned 16-bit.
    const entries = descriptor[0] === 0 ? 65536 : descriptor[0];
    const first = descriptor[1] < 0 ? descriptor[1] + 65536 : descriptor[1];
    const bits = descriptor[2];
    const view = new DataView(data.value.buffer, data.value.byteOffset, data.value.byteLength);
    let values: Uint16Array;
    if (data.value.length >= entries * 2) {
      values = new Uint16Array(entries);
      for (let i = 0; i < entries; i++) values[i] = view.getUint16(i * 2, le);
    } else {
      // 8-bit entries packed two per word.
      values = new Uint16Array(Math.min(entries, data.value.length));
      for (let i = 0; i < values.length; i++) values[i] = data.value[i];
    }
    return { descriptor: [entries, first, bits], data: values };
  };
  return {
    red: lut(Tags.RedPaletteColorLookupTableDescriptor, Tags.RedPaletteColorLookupTableData, Tags.SegmentedRedPaletteColorLookupTableData),
    green: lut(Tags.GreenPaletteColorLookupTableDescriptor, Tags.GreenPaletteColorLookupTableData, Tags.SegmentedGreenPaletteColorLookupTableData),
    blue: lut(Tags.BluePaletteColorLookupTableDescriptor, Tags.BluePaletteColorLookupTableData, Tags.SegmentedBluePaletteColorLookupTableData),
  };
}

async function loadFromDeflated(stores: ImagingStores, instance: InstanceRecord, info: ImageInfo, frame: number, limits: ImagingLimits): Promise<Omit<FrameInput, 'instance'>> {
  if (instance.sizeBytes > limits.maxDeflatedBytes) {
    throw new AtriumError('invalid-input', `deflated object of ${instance.sizeBytes} bytes is over the ${limits.maxDeflatedBytes}-byte limit for decoding`, { reason: 'too-large' });
  }
  const whole = await readRange(stores.retrieve, instance, 0, instance.sizeBytes);
  const metaLength = fileMetaLength(whole);
  if (metaLength === undefined) throw new AtriumError('internal', 'stored deflated object has no complete file meta', { reason: 'corrupt-pixel-data' });
  let inflated: Buffer;
  try {
    inflated = await inflateRawAsync(whole.subarray(metaLength), { maxOutputLength: limits.maxInflatedBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError) {
      throw new AtriumError('invalid-input', `deflated data set inflates to more than ${limits.maxInflatedBytes} bytes`, { reason: 'too-large' });
    }
    throw new AtriumError('internal', `stored deflated object cannot be inflated: ${(error as Error).message}`, { reason: 'corrupt-pixel-data' });
  }
  const ds = parseDataset(new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength), ExplicitVRLittleEndian, inflated.length + 1);
  const pixel = findElement(ds, Tags.PixelData) ?? findElement(ds, Tags.FloatPixelData) ?? findElement(ds, Tags.DoubleFloatPixelData);
  if (!pixel?.value) throw new AtriumError('internal', 'stored deflated object has no native pixel data', { reason: 'corrupt-pixel-data' });
  // The frame is read as Explicit VR Little Endian from here on.
  const native: ImageInfo = { ...info, transferSyntaxUid: ExplicitVRLittleEndian };
  if (info.photometricInterpretation === 'PALETTE COLOR') native.palette = palette(ds);
  const frameBits = nativeFrameBits(info);
  const startBit = (frame - 1) * frameBits;
  const start = Math.floor(startBit / 8);
  const end = Math.ceil((startBit + frameBits) / 8);
  if (end > pixel.value.length) throw new AtriumError('internal', `stored pixel data is corrupt: frame ${frame} ends at byte ${end} of ${pixel.value.length}`, { reason: 'corrupt-pixel-data' });
  return { info: native, bytes: pixel.value.slice(start, end), bitOffset: startBit % 8 };
}
