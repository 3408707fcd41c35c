// Whole-object transcoding, for WADO-RS retrieves of studies, series and instances asked for in another
// transfer syntax than the stored one, and WADO-URI's transferSyntax. The stored object is re-encoded as a
// stream: the data set before the Pixel Data and the elements after it are read by range and written in the
// new syntax; the Pixel Data is copied (native to native) or its frames are decoded, and encoded again when a
// compressed syntax is asked, one at a time in the worker pool. A multi-GB multi-frame object is never held
// in memory: at most a few frames are in flight. Deflated objects are inflated as a stream.
import { pipeline } from 'node:stream';
import { createInflateRaw } from 'node:zlib';
import type { DataElement, DataSet } from '../dicom/dataset.ts';
import { findElement, numberValue, stringValue } from '../dicom/dataset.ts';
import { DatasetReader } from '../dicom/dataset-reader.ts';
import { encodeDatasetStream, swapWords, type StreamedElementValue, type StreamedValue } from '../dicom/dataset-stream-writer.ts';
import { Part10Reader, type Part10Header } from '../dicom/part10-reader.ts';
import { encodeFileMeta, fileMetaLength } from '../dicom/part10-writer.ts';
import { parseDataset } from '../dicom/parse-dataset.ts';
import * as Tag from '../dicom/tags.ts';
import { DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, transferSyntaxInfo } from '../dicom/transfer-syntax.ts';
import { swapUnit } from '../dicom/vr.ts';
import type { InstanceRecord, PixelDataLayout } from '../ports/index-store.ts';
import { AtriumError } from '../errors.ts';
import { canDecode, isNative } from './decode.ts';
import { ENCODABLE_TRANSFER_SYNTAXES, encodeRefusal } from './encode.ts';
import { DEFAULT_LIMITS, FrameReader, readRange, type ImagingLimits, type ImagingStores } from './frame-source.ts';
import { hasPixelData, imageInfoFromMetadata, Tags, type ImageInfo } from './image-info.ts';
import { transferable, type WorkerPool } from './worker-pool.ts';
import type { ImagingResult } from './worker.ts';

/** The native transfer syntaxes objects are transcoded into. */
export const NATIVE_TARGETS: readonly string[] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian];

/** Every transfer syntax an object may be asked for in, the native ones first. */
export const TRANSCODE_TARGETS: readonly string[] = [...NATIVE_TARGETS, ...ENCODABLE_TRANSFER_SYNTAXES];

// A defined length is 32 bits and even (PS3.5 7.1.1): larger native Pixel Data cannot be written.
const MAX_NATIVE_PIXEL_BYTES = 0xfffffffe;

// Attributes that only describe encapsulated Pixel Data (PS3.5 A.4): wrong once the Pixel Data is rewritten.
const ENCAPSULATION_TAGS = new Set([Tag.ExtendedOffsetTable, Tag.ExtendedOffsetTableLengths, 0x7fe00003 /* EncapsulatedPixelDataValueTotalLength */]);
// "US or SS" attributes (PS3.6) that implicit VR reads as US; signed when Pixel Representation is 1.
const PIXEL_VALUE_TAGS = new Set([0x00280106, 0x00280107, 0x00280108, 0x00280109, 0x00280120, 0x00280121]);
const JPEG_PROCESSES = new Set(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70']);
const JPEG_2000_FAMILY = new Set(['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.4.92', '1.2.840.10008.1.2.4.93',
  '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203']);

const clean = (uid: string) => uid.replace(/[\0 ]+$/, '');

/**
 * Why objects stored in `from` are never sent in `to` here, judged by the transfer syntaxes alone; undefined
 * when they may be (the image itself can still refuse, see transcodeInstance).
 */
export function transcodeRefusal(from: string, to: string): string | undefined {
  if (from === to) return undefined;
  if (!TRANSCODE_TARGETS.includes(to)) {
    return `no transcoding into it here (available: ${TRANSCODE_TARGETS.join(', ')})`;
  }
  if (transferSyntaxInfo(from).deflated) {
    return from === DeflatedExplicitVRLittleEndian && to === ExplicitVRLittleEndian ? undefined
      : `a deflated object (${from}) is sent inflated, in ${ExplicitVRLittleEndian}, or as stored`;
  }
  if (!canDecode(from)) return `pixel data in ${from} is not decoded here`;
  return undefined;
}

/** The attributes of the decoded frames, as decode.ts will give them (JPEG colour comes out RGB, and so on). */
function decodedImage(info: ImageInfo, from: string): ImageInfo {
  if (isNative(from) || info.samplesPerPixel === 1) return info;
  const pi = info.photometricInterpretation;
  const rgb = JPEG_PROCESSES.has(from) || (JPEG_2000_FAMILY.has(from) && (pi === 'YBR_RCT' || pi === 'YBR_ICT'));
  return rgb ? { ...info, photometricInterpretation: 'RGB', planarConfiguration: 0 } : { ...info, planarConfiguration: 0 };
}

/** Why this image cannot be sent in `to`, or undefined. */
function imageRefusal(info: ImageInfo, from: string, to: string): string | undefined {
  const copied = isNative(from) && NATIVE_TARGETS.includes(to);
  if (copied) return undefined; // native Pixel Data is copied as it is, whatever its format
  if (info.rows <= 0 || info.columns <= 0) return 'the image has no Rows or Columns';
  if (![8, 16, 32].includes(info.bitsAllocated) || info.floatPixels) return `Bits Allocated ${info.bitsAllocated} pixel data is not transcoded here`;
  const decoded = decodedImage(info, from);
  if (!NATIVE_TARGETS.includes(to)) return encodeRefusal(to, decoded);
  const bytes = info.numberOfFrames * decodedFrameBytes(decoded);
  if (bytes > MAX_NATIVE_PIXEL_BYTES) return `its ${bytes} bytes of native pixel data do not fit the 32-bit length of the Pixel Data element`;
  return undefined;
}

function decodedFrameBytes(image: ImageInfo): number {
  const samples = /_42[02]$/.test(image.photometricInterpretation) ? 2 : image.samplesPerPixel;
  return image.rows * image.columns * samples * (image.bitsAllocated / 8);
}

/**
 * Why this stored object cannot be sent in `to`, or undefined when it can: the transfer syntaxes, then the
 * image (from the index's metadata, no blob is read). A few rare reasons only show when the object is read
 * (encapsulated icon images), and transcodeInstance rejects then.
 */
export async function instanceTranscodeRefusal(stores: ImagingStores, instance: InstanceRecord, to: string): Promise<string | undefined> {
  const from = clean(instance.transferSyntaxUid);
  const refusal = transcodeRefusal(from, to);
  if (refusal || from === to || transferSyntaxInfo(from).deflated) return refusal;
  const metadata = await stores.index.instanceMetadata(instance.sopInstanceUid);
  if (!metadata || !hasPixelData(metadata)) return undefined;
  return imageRefusal(imageInfoFromMetadata(metadata, from), from, to);
}

export interface TranscodeOptions {
  pool: WorkerPool;
  limits?: ImagingLimits;
}

/**
 * The stored object `instance` as a Part-10 stream in transfer syntax `to` (not the stored one). What can fail
 * before the first byte does so here, as AtriumError not-acceptable (406: this object cannot be given in `to`) or
 * AtriumError: the header is read and the first frame decoded before the stream is returned. A later failure
 * (a corrupt frame further on) ends the stream with an error.
 */
export async function transcodeInstance(stores: ImagingStores, instance: InstanceRecord, to: string, options: TranscodeOptions): Promise<AsyncIterable<Uint8Array>> {
  const from = clean(instance.transferSyntaxUid);
  const refusal = await instanceTranscodeRefusal(stores, instance, to);
  if (refusal) throw new AtriumError('not-acceptable', `instance ${instance.sopInstanceUid} cannot be sent in ${to}: ${refusal}`, { reason: 'cannot-transcode', transferSyntaxUid: to });
  if (transferSyntaxInfo(from).deflated) return await inflated(stores, instance);

  const metadata = await stores.index.instanceMetadata(instance.sopInstanceUid);
  const layout = await stores.index.pixelDataLayout(instance.sopInstanceUid);
  const info = metadata && hasPixelData(metadata) ? imageInfoFromMetadata(metadata, from) : undefined;
  const source = transferSyntaxInfo(from);
  // Only the data set before the Pixel Data is parsed (the index knows where it is), and what follows it.
  const pixelStart = layout ? layout.offset - (source.explicitVR ? 12 : 8) : undefined;
  const header = await readHeader(stores, instance, pixelStart);
  const tail = layout ? await readTail(stores, instance, layout, from) : [];
  const elements = [...header.dataset.elements, ...tail];
  if (containsEncapsulated(elements)) {
    throw new AtriumError('not-acceptable', `instance ${instance.sopInstanceUid} has encapsulated pixel data nested in a sequence (an icon image), which is not transcoded here`,
      { reason: 'cannot-transcode', transferSyntaxUid: to });
  }

  let pixel: { element: DataElement; value: StreamedElementValue } | undefined;
  let pixelAttributes: { photometricInterpretation: string; planarConfiguration?: number } | undefined;
  if (layout && info && !(isNative(from) && NATIVE_TARGETS.includes(to))) {
    const frames = await frameStream(stores, instance, info, layout, to, options);
    pixel = frames.pixel;
    pixelAttributes = frames.attributes;
  } else if (layout) {
    // Native to native: the same bytes, little endian.
    const bigEndian = !source.littleEndian;
    const unit = layout.vr === 'OW' && (info?.bitsAllocated ?? 16) > 8 ? (info?.bitsAllocated ?? 16) / 8 : swapUnit(layout.vr);
    const vr = !source.explicitVR && layout.tag === Tag.PixelData ? ((info?.bitsAllocated ?? 16) > 8 ? 'OW' : 'OB') : layout.vr;
    pixel = {
      element: { tag: layout.tag, vr, length: layout.length, offset: layout.offset, bulk: true },
      value: { length: layout.length, bytes: () => swapWords(stores.retrieve.readInstancePieces(instance, [[layout.offset, layout.length]]), bigEndian ? unit : 1) },
    };
  }

  let dataset = withoutGroupLengths(elements);
  if (!source.explicitVR && transferSyntaxInfo(to).explicitVR) dataset = withExplicitPixelValueVRs(dataset, header.dataset);
  if (pixelAttributes) dataset = withPixelAttributes(dataset, pixelAttributes);
  if (pixel) dataset = [...dataset.filter((el) => el.tag < pixel!.element.tag), pixel.element, ...dataset.filter((el) => el.tag > pixel!.element.tag)];

  const meta = fileMeta(header, instance, to);
  const pixelElement = pixel?.element;
  const pixelValue = pixel?.value;
  const bulkValue = (el: DataElement): StreamedElementValue | undefined => {
    if (el === pixelElement) return pixelValue;
    if (!el.bulk) return undefined;
    const unit = source.littleEndian ? 1 : swapUnit(el.vr);
    return { length: el.length, bytes: () => swapWords(stores.retrieve.readInstancePieces(instance, [[el.offset, el.length]]), unit) };
  };
  return (async function* () {
    yield meta;
    yield* encodeDatasetStream(dataset, to, { sourceLittleEndian: source.littleEndian, bulkValue });
  })();
}

/** Decoded (and, for a compressed `to`, encoded) frames, the first one done before anything is sent. */
async function frameStream(stores: ImagingStores, instance: InstanceRecord, info: ImageInfo, layout: PixelDataLayout, to: string, options: TranscodeOptions) {
  const reader = new FrameReader(stores, instance, info, layout, options.limits ?? DEFAULT_LIMITS);
  const native = NATIVE_TARGETS.includes(to);
  const run = async (n: number): Promise<ImagingResult> => {
    const input = await reader.read(n);
    const task = native
      ? { op: 'decode' as const, info, bytes: input.bytes, bitOffset: input.bitOffset }
      : { op: 'encode' as const, info, bytes: input.bytes, bitOffset: input.bitOffset, encodeAs: to };
    return await options.pool.run(task, transferable(input.bytes));
  };
  const first = await run(1);
  const attributes = first.frame!;
  const frameBytes = attributes.rows * attributes.columns * attributes.samplesPerPixel * (attributes.bitsAllocated / 8);
  const count = info.numberOfFrames;
  // A few frames in flight keep the pool's threads busy; no more, so that memory stays a few frames.
  const depth = Math.max(1, Math.min(options.pool.size, 4));
  const frames = (async function* (): AsyncGenerator<Uint8Array> {
    const pending: Promise<ImagingResult>[] = [Promise.resolve(first)];
    let next = 2;
    const more = () => {
      const p = run(next++);
      p.catch(() => {}); // awaited in order below; this keeps a failure ahead of its turn from being "unhandled"
      pending.push(p);
    };
    while (pending.length < depth && next <= count) more();
    while (pending.length > 0) {
      const result = await pending.shift()!;
      if (next <= count) more();
      yield result.bytes;
    }
  })();
  const pixel: { element: DataElement; value: StreamedElementValue } = native
    ? {
      element: { tag: Tag.PixelData, vr: attributes.bitsAllocated > 8 ? 'OW' : 'OB', length: count * frameBytes, offset: 0, bulk: true },
      value: { length: count * frameBytes, bytes: () => checkedFrames(frames, frameBytes) },
    }
    : {
      element: { tag: Tag.PixelData, vr: 'OB', length: 0, offset: 0, bulk: true },
      value: { fragments: fragmentsOf(frames) },
    };
  return {
    pixel,
    attributes: {
      photometricInterpretation: attributes.photometricInterpretation,
      planarConfiguration: attributes.samplesPerPixel > 1 ? attributes.planarConfiguration : undefined,
    },
  };
}

async function* checkedFrames(frames: AsyncIterable<Uint8Array>, frameBytes: number): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const bytes of frames) {
    n++;
    if (bytes.length !== frameBytes) {
      throw new AtriumError('internal', `frame ${n} decoded to ${bytes.length} bytes where the first had ${frameBytes}`, { reason: 'corrupt-pixel-data' });
    }
    yield bytes;
  }
}

async function* fragmentsOf(frames: AsyncIterable<Uint8Array>): AsyncGenerator<StreamedValue> {
  // One fragment per frame (PS3.5 A.4.1 allows it for every compressed syntax here).
  for await (const bytes of frames) yield { length: bytes.length, bytes: () => [bytes] };
}

async function readHeader(stores: ImagingStores, instance: InstanceRecord, end: number | undefined): Promise<Part10Header> {
  const reader = new Part10Reader();
  for await (const chunk of await stores.retrieve.readInstance(instance, end === undefined ? undefined : { start: 0, end })) reader.push(chunk as Uint8Array);
  return reader.end();
}

/** The elements after the Pixel Data (rare, but nothing is dropped): Data Set Trailing Padding, private tags... */
async function readTail(stores: ImagingStores, instance: InstanceRecord, layout: PixelDataLayout, from: string): Promise<DataElement[]> {
  let start: number;
  if (layout.fragments) {
    const last = layout.fragments[layout.fragments.length - 1];
    if (!last) throw new AtriumError('internal', 'stored pixel data is corrupt: encapsulated pixel data without fragments', { reason: 'corrupt-pixel-data' });
    start = last[0] + last[1] + 8; // the Sequence Delimitation Item closes the fragments
  } else {
    start = layout.offset + layout.length;
  }
  if (start >= instance.sizeBytes) return [];
  const reader = new DatasetReader(from, start);
  for await (const chunk of await stores.retrieve.readInstance(instance, { start, end: instance.sizeBytes })) reader.push(chunk as Uint8Array);
  return reader.end().elements;
}

function containsEncapsulated(elements: DataElement[]): boolean {
  return elements.some((el) => el.encapsulated !== undefined || el.items?.some((item) => containsEncapsulated(item.elements)));
}

/** Group Length elements (gggg,0000) are retired (PS3.5 7.2) and would be wrong once headers change size. */
function withoutGroupLengths(elements: DataElement[]): DataElement[] {
  return elements.filter((el) => (el.tag & 0xffff) !== 0).map((el) => (el.items
    ? { ...el, items: el.items.map((item): DataSet => ({ ...item, elements: withoutGroupLengths(item.elements) })) }
    : el));
}

/** Implicit VR reads "US or SS" as US; in explicit VR, pixel values of signed images are SS (PS3.5 A.1). */
function withExplicitPixelValueVRs(elements: DataElement[], dataset: DataSet): DataElement[] {
  if (numberValue(dataset, Tag.PixelRepresentation) !== 1) return elements;
  return elements.map((el) => (PIXEL_VALUE_TAGS.has(el.tag) && el.vr === 'US' ? { ...el, vr: 'SS' } : el));
}

/** Photometric Interpretation and Planar Configuration of the rewritten pixels; attributes of encapsulation removed. */
function withPixelAttributes(elements: DataElement[], attributes: { photometricInterpretation: string; planarConfiguration?: number }): DataElement[] {
  let out = elements.filter((el) => !ENCAPSULATION_TAGS.has(el.tag));
  out = put(out, { tag: Tags.PhotometricInterpretation, vr: 'CS', length: 0, offset: 0, value: new TextEncoder().encode(attributes.photometricInterpretation) });
  if (attributes.planarConfiguration !== undefined) {
    const value = new Uint8Array(2);
    new DataView(value.buffer).setUint16(0, attributes.planarConfiguration, true);
    out = put(out, { tag: Tags.PlanarConfiguration, vr: 'US', length: 2, offset: 0, value });
  }
  return out;
}

/** `el` in place of the element with its tag, or inserted in tag order. Values are little endian. */
function put(elements: DataElement[], el: DataElement): DataElement[] {
  const at = elements.findIndex((e) => e.tag >= el.tag);
  if (at < 0) return [...elements, el];
  return [...elements.slice(0, at), el, ...elements.slice(elements[at].tag === el.tag ? at + 1 : at)];
}

/** A new File Meta Information: this is a new encoding of the object, written by Atrium (PS3.10 7.1). */
function fileMeta(header: Part10Header | undefined, instance: InstanceRecord, to: string): Uint8Array {
  const meta = header?.fileMeta;
  const text = (tag: number) => (meta && findElement(meta, tag) ? stringValue(meta, tag) : undefined);
  return encodeFileMeta({
    mediaStorageSOPClassUID: text(Tag.MediaStorageSOPClassUID) ?? instance.sopClassUid,
    mediaStorageSOPInstanceUID: text(Tag.MediaStorageSOPInstanceUID) ?? instance.sopInstanceUid,
    transferSyntaxUID: to,
    sourceApplicationEntityTitle: text(Tag.SourceApplicationEntityTitle),
  });
}

/**
 * A Deflated Explicit VR Little Endian object (PS3.5 A.5) inflated: its data set is the Explicit VR Little
 * Endian encoding, so the inflated bytes follow a new meta as they come out of the inflater.
 */
async function inflated(stores: ImagingStores, instance: InstanceRecord): Promise<AsyncIterable<Uint8Array>> {
  let head = await readRange(stores.retrieve, instance, 0, Math.min(instance.sizeBytes, 64 * 1024));
  let metaLength = fileMetaLength(head);
  if (metaLength === undefined && instance.sizeBytes > head.length) {
    head = await readRange(stores.retrieve, instance, 0, Math.min(instance.sizeBytes, 16 * 1024 * 1024));
    metaLength = fileMetaLength(head);
  }
  if (metaLength === undefined) throw new AtriumError('internal', 'stored deflated object has no complete file meta', { reason: 'corrupt-pixel-data' });
  const meta = parseDataset(head.subarray(132, metaLength), ExplicitVRLittleEndian);
  const header = { fileMeta: meta } as Part10Header;
  const source = await stores.retrieve.readInstance(instance, { start: metaLength, end: instance.sizeBytes });
  return (async function* () {
    yield fileMeta(header, instance, ExplicitVRLittleEndian);
    const inflater = createInflateRaw();
    pipeline(source, inflater, () => {}); // an error of either ends the iteration below with it
    for await (const chunk of inflater) yield chunk as Uint8Array;
  })();
}
