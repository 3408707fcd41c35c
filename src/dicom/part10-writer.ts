// Encoder for data sets (PS3.5 Section 7) and Part 10 files (PS3.10 Section 7).
import { UNDEFINED_LENGTH } from './dataset.ts';
import type { DataElement, DataSet } from './dataset.ts';
import { describeTag } from './errors.ts';
import {
  FileMetaInformationGroupLength, FileMetaInformationVersion, ImplementationClassUID, ImplementationVersionName, Item,
  ItemDelimitationItem, MediaStorageSOPClassUID, MediaStorageSOPInstanceUID, SequenceDelimitationItem,
  SourceApplicationEntityTitle, TransferSyntaxUID,
} from './tags.ts';
import { transferSyntaxInfo } from './transfer-syntax.ts';
import { ATRIUM_IMPLEMENTATION_CLASS_UID, ATRIUM_IMPLEMENTATION_VERSION_NAME } from './uid.ts';
import { LONG_HEADER_VRS, paddingByte, swapBytes, swapUnit } from './vr.ts';

export class DicomEncodeError extends Error {
  readonly tag?: number;
  constructor(message: string, tag?: number) {
    super(message);
    this.name = 'DicomEncodeError';
    if (tag !== undefined) this.tag = tag;
  }
}

export interface FileMetaOptions {
  mediaStorageSOPClassUID: string;
  mediaStorageSOPInstanceUID: string;
  transferSyntaxUID: string;
  implementationClassUID?: string;
  implementationVersionName?: string;
  sourceApplicationEntityTitle?: string;
}

export interface EncodeOptions {
  /** Byte order of the values of a bare element list (DataSets carry their own `littleEndian`); default true. */
  sourceLittleEndian?: boolean;
  /** Write sequences and items with defined lengths instead of delimiters (default false). */
  definedLengthSequences?: boolean;
}

interface Encoding {
  explicitVR: boolean;
  littleEndian: boolean;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function header(tag: number, vr: string, length: number, enc: Encoding): Uint8Array {
  const le = enc.littleEndian;
  if (!enc.explicitVR || tag >>> 16 === 0xfffe) {
    const b = new Uint8Array(8);
    const dv = new DataView(b.buffer);
    dv.setUint16(0, tag >>> 16, le);
    dv.setUint16(2, tag & 0xffff, le);
    dv.setUint32(4, length, le);
    return b;
  }
  const long = LONG_HEADER_VRS.has(vr);
  if (!long && length > 0xffff) {
    throw new DicomEncodeError(`${describeTag(tag)}: ${length} bytes do not fit the 16-bit length of VR ${vr} (PS3.5 7.1.2)`, tag);
  }
  const b = new Uint8Array(long ? 12 : 8);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, tag >>> 16, le);
  dv.setUint16(2, tag & 0xffff, le);
  b[4] = vr.charCodeAt(0);
  b[5] = vr.charCodeAt(1);
  if (long) dv.setUint32(8, length, le);
  else dv.setUint16(6, length, le);
  return b;
}

/**
 * Header of one element, for streaming a large value after it (e.g. Pixel Data): the caller then writes
 * exactly `length` bytes (even, PS3.5 7.1.1) in the transfer syntax's byte order.
 */
export function encodeElementHeader(tag: number, vr: string, length: number, transferSyntaxUID: string): Uint8Array {
  const info = transferSyntaxInfo(transferSyntaxUID);
  return header(tag >>> 0, vr, length, info);
}

/** Item header (FFFE,E000), e.g. for streaming encapsulated fragments (PS3.5 A.4). */
export function encodeItemHeader(length: number, transferSyntaxUID: string): Uint8Array {
  return header(Item, '', length, transferSyntaxInfo(transferSyntaxUID));
}

/** Sequence Delimitation Item (FFFE,E0DD), closing a sequence or encapsulated Pixel Data. */
export function encodeSequenceDelimiter(transferSyntaxUID: string): Uint8Array {
  return header(SequenceDelimitationItem, '', 0, transferSyntaxInfo(transferSyntaxUID));
}

function padded(value: Uint8Array, vr: string): Uint8Array {
  if (value.length % 2 === 0) return value;
  const out = new Uint8Array(value.length + 1);
  out.set(value);
  out[value.length] = paddingByte(vr);
  return out;
}

function encodeItems(items: DataSet[], enc: Encoding, opts: EncodeOptions): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (const item of items) {
    const body = encodeElements(item.elements, enc, item.littleEndian ?? true, opts);
    if (opts.definedLengthSequences) {
      parts.push(header(Item, '', body.length, enc), body);
    } else {
      parts.push(header(Item, '', UNDEFINED_LENGTH, enc), body, header(ItemDelimitationItem, '', 0, enc));
    }
  }
  return parts;
}

function encodeOne(el: DataElement, enc: Encoding, sourceLE: boolean, opts: EncodeOptions): Uint8Array {
  const tag = el.tag >>> 0;
  if (el.items) {
    // A UN element holding a sequence keeps its items in Implicit VR Little Endian (PS3.5 6.2.2).
    const asUN = el.vr === 'UN' && enc.explicitVR;
    const itemEnc = asUN ? { explicitVR: false, littleEndian: true } : enc;
    const body = concat(encodeItems(el.items, itemEnc, opts));
    if (opts.definedLengthSequences && !asUN) return concat([header(tag, 'SQ', body.length, enc), body]);
    return concat([header(tag, asUN ? 'UN' : 'SQ', UNDEFINED_LENGTH, enc), body, header(SequenceDelimitationItem, '', 0, itemEnc)]);
  }
  if (!el.value) {
    const why = el.encapsulated ? 'encapsulated fragments' : el.bulk ? 'bulk value' : 'value';
    throw new DicomEncodeError(`cannot encode ${describeTag(tag)}: its ${why} was not kept by the reader; ` +
      `stream it with encodeElementHeader() instead`, tag);
  }
  let value = el.value;
  const unit = swapUnit(el.vr);
  if (unit > 1 && sourceLE !== enc.littleEndian) value = swapBytes(value, unit);
  value = padded(value, el.vr);
  return concat([header(tag, el.vr, value.length, enc), value]);
}

function encodeElements(elements: DataElement[], enc: Encoding, sourceLE: boolean, opts: EncodeOptions): Uint8Array {
  return concat(elements.map((el) => encodeOne(el, enc, sourceLE, opts)));
}

/** One element (with its items) in the given transfer syntax. */
export function encodeElement(el: DataElement, transferSyntaxUID: string, options: EncodeOptions = {}): Uint8Array {
  return encodeOne(el, transferSyntaxInfo(transferSyntaxUID), options.sourceLittleEndian ?? true, options);
}

/**
 * A data set in the given transfer syntax (not deflated: compress the result with deflateRaw for
 * Deflated Explicit VR LE). Elements are written in the order given; PS3.5 7.1 requires ascending tags.
 */
export function encodeDataset(elements: DataElement[] | DataSet, transferSyntaxUID: string, options: EncodeOptions = {}): Uint8Array {
  const list = Array.isArray(elements) ? elements : elements.elements;
  const sourceLE = Array.isArray(elements) ? (options.sourceLittleEndian ?? true) : (elements.littleEndian ?? true);
  return encodeElements(list, transferSyntaxInfo(transferSyntaxUID), sourceLE, options);
}

const ascii = (s: string) => new TextEncoder().encode(s);

/** Preamble, "DICM" and the File Meta Information group, always Explicit VR LE (PS3.10 7.1). */
export function encodeFileMeta(opts: FileMetaOptions): Uint8Array {
  const enc = { explicitVR: true, littleEndian: true };
  const el = (tag: number, vr: string, value: Uint8Array) => encodeOne({ tag, vr, length: value.length, offset: 0, value }, enc, true, {});
  const parts = [
    el(FileMetaInformationVersion, 'OB', new Uint8Array([0x00, 0x01])),
    el(MediaStorageSOPClassUID, 'UI', ascii(opts.mediaStorageSOPClassUID)),
    el(MediaStorageSOPInstanceUID, 'UI', ascii(opts.mediaStorageSOPInstanceUID)),
    el(TransferSyntaxUID, 'UI', ascii(opts.transferSyntaxUID)),
    el(ImplementationClassUID, 'UI', ascii(opts.implementationClassUID ?? ATRIUM_IMPLEMENTATION_CLASS_UID)),
    el(ImplementationVersionName, 'SH', ascii(opts.implementationVersionName ?? ATRIUM_IMPLEMENTATION_VERSION_NAME)),
  ];
  if (opts.sourceApplicationEntityTitle) parts.push(el(SourceApplicationEntityTitle, 'AE', ascii(opts.sourceApplicationEntityTitle)));
  const body = concat(parts);
  const groupLength = new Uint8Array(4);
  new DataView(groupLength.buffer).setUint32(0, body.length, true);
  const preamble = new Uint8Array(132);
  preamble.set(ascii('DICM'), 128);
  return concat([preamble, el(FileMetaInformationGroupLength, 'UL', groupLength), body]);
}

/**
 * Length of preamble + "DICM" + File Meta Information at the start of a Part-10 object, found by walking
 * the group 0002 elements (always Explicit VR LE, PS3.10 7.1) rather than trusting (0002,0000), which some
 * writers omit. Undefined until enough bytes are there to see the first element after the meta.
 */
export function fileMetaLength(head: Uint8Array): number | undefined {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 132) return undefined;
  if (view.getUint32(128) !== 0x4449434d) throw new DicomEncodeError('not a Part-10 object: no "DICM" at offset 128');
  let offset = 132;
  for (;;) {
    if (head.length < offset + 8) return undefined;
    if (view.getUint16(offset, true) !== 0x0002) return offset;
    const vr = String.fromCharCode(head[offset + 4], head[offset + 5]);
    if (LONG_HEADER_VRS.has(vr)) {
      if (head.length < offset + 12) return undefined;
      offset += 12 + view.getUint32(offset + 8, true);
    } else {
      offset += 8 + view.getUint16(offset + 6, true);
    }
  }
}
