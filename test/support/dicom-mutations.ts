/**
 * Bad input for the fuzz tests: seeded mutations of real Part-10 files (truncation, flipped header bytes, absurd
 * lengths, invalid VRs, text with CR/LF, controls and non-ASCII in attributes that end up in messages), random
 * bytes, and deeply nested sequences. Deterministic: the same seed gives the same objects, so a failure is
 * reproduced by its seed and the mutation's name.
 */
import { Part10Reader, type Part10Header } from '../../src/dicom/part10-reader.ts';
import { encodeFileMeta } from '../../src/dicom/part10-writer.ts';
import type { DataElement } from '../../src/dicom/dataset.ts';

/** mulberry32: a small, fast PRNG good enough to pick mutations; a fixed seed makes a run reproducible. */
export class Prng {
  #state: number;
  readonly seed: number;
  constructor(seed: number) {
    this.seed = seed;
    this.#state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

export interface Mutation {
  /** What was done, e.g. "CT_small.dcm: truncated at 1234"; with the seed, enough to reproduce it. */
  name: string;
  bytes: Buffer;
}

const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** The parsed header of a well-formed source file (elements with their offsets), for targeted mutations. */
export function headerOf(bytes: Uint8Array): Part10Header {
  const reader = new Part10Reader();
  reader.push(bytes);
  return reader.end();
}

/** Top-level data set elements whose header can be found from their value offset, with where it starts. */
function elementHeaders(header: Part10Header): { el: DataElement; start: number; lengthAt: number; lengthSize: 2 | 4 }[] {
  // A deflated data set's offsets are in the inflated stream: nothing to target in the file's bytes.
  if (header.transferSyntaxUID === '1.2.840.10008.1.2.1.99') return [];
  return header.dataset.elements.filter((el) => el.length !== 0xffffffff || el.vr === 'SQ').map((el) => {
    if (!header.explicitVR) return { el, start: el.offset - 8, lengthAt: el.offset - 4, lengthSize: 4 as const };
    return LONG_LENGTH_VRS.has(el.vr)
      ? { el, start: el.offset - 12, lengthAt: el.offset - 4, lengthSize: 4 as const }
      : { el, start: el.offset - 8, lengthAt: el.offset - 2, lengthSize: 2 as const };
  });
}

export function truncate(name: string, bytes: Buffer, rng: Prng): Mutation {
  const at = rng.int(bytes.length);
  return { name: `${name}: truncated at ${at} of ${bytes.length}`, bytes: Buffer.from(bytes.subarray(0, at)) };
}

/** 1 to 8 random bytes of the first 1 KiB (preamble, file meta, the first elements) set to random values. */
export function flipHeaderBytes(name: string, bytes: Buffer, rng: Prng): Mutation {
  const out = Buffer.from(bytes);
  const where: string[] = [];
  for (let n = 1 + rng.int(8); n > 0; n--) {
    const at = 128 + rng.int(Math.min(1024, out.length) - 128);
    out[at] = rng.int(256);
    where.push(String(at));
  }
  return { name: `${name}: header bytes set at ${where.join(',')}`, bytes: out };
}

/** One element's length field set to 0xFFFFFFF0 (or 0xFFFF for a 2-byte field: the largest even value). */
export function absurdLength(name: string, bytes: Buffer, header: Part10Header, rng: Prng): Mutation {
  const candidates = elementHeaders(header);
  if (candidates.length === 0) return truncate(name, bytes, rng);
  const { el, lengthAt, lengthSize } = rng.pick(candidates);
  const out = Buffer.from(bytes);
  if (lengthSize === 4) out.writeUInt32LE(0xfffffff0, lengthAt);
  else out.writeUInt16LE(0xfffe, lengthAt);
  if (!header.littleEndian) {
    if (lengthSize === 4) out.writeUInt32BE(0xfffffff0, lengthAt);
    else out.writeUInt16BE(0xfffe, lengthAt);
  }
  return { name: `${name}: length of (${el.tag.toString(16).padStart(8, '0')}) set to ${lengthSize === 4 ? '0xFFFFFFF0' : '0xFFFE'}`, bytes: out };
}

/** An explicit VR replaced by two bytes that are no VR ("ZZ", "\0\0", random). */
export function invalidVr(name: string, bytes: Buffer, header: Part10Header, rng: Prng): Mutation {
  const candidates = elementHeaders(header);
  if (candidates.length === 0) return flipHeaderBytes(name, bytes, rng);
  const { el, start } = rng.pick(candidates);
  const out = Buffer.from(bytes);
  const vr = rng.pick([Buffer.from('ZZ'), Buffer.from([0, 0]), Buffer.from('ob'), rng.bytes(2)]);
  vr.copy(out, start + 4);
  return { name: `${name}: VR of (${el.tag.toString(16).padStart(8, '0')}) set to ${JSON.stringify(vr.toString('latin1'))}`, bytes: out };
}

/** Text that a careless message would pass on: header injection, controls, UTF-8 and Latin-1 bytes, length. */
export const HOSTILE_TEXTS: readonly Buffer[] = [
  Buffer.from('1.2.3\r\nX-Injected: yes'),
  Buffer.from('1.2.\x01\x02\x7f.3'),
  Buffer.from('1.2.840.ü.€.😀', 'utf8'),
  Buffer.from([0x31, 0x2e, 0xff, 0xfe, 0x80, 0x2e, 0x32]),
  Buffer.from('"quoted" \\back\\slash\\ "'),
  Buffer.from('\n'.repeat(40)),
  Buffer.from('9'.repeat(62) + '\r\n'),
  Buffer.from('Ř'.repeat(32), 'utf8'),
];

/**
 * The value of a top-level element with a 2-byte length (UI, PN, LO, SH...) replaced by `text`, padded to an
 * even length; its length field follows. For explicit VR little endian sources.
 */
export function setText(bytes: Buffer, header: Part10Header, tag: number, text: Buffer): Buffer {
  const found = elementHeaders(header).find((h) => h.el.tag === tag && h.lengthSize === 2);
  if (!found) throw new Error(`no short element (${tag.toString(16)}) to replace`);
  const value = text.length % 2 ? Buffer.concat([text, Buffer.from([0x20])]) : text;
  const head = Buffer.from(bytes.subarray(0, found.el.offset));
  head.writeUInt16LE(value.length, found.lengthAt);
  return Buffer.concat([head, value, bytes.subarray(found.el.offset + found.el.length)]);
}

/** The file meta's Media Storage SOP Instance UID (0002,0003) replaced by `text` (the group length follows). */
export function setMetaInstanceUid(bytes: Buffer, header: Part10Header, text: Buffer): Buffer {
  const el = header.fileMeta?.elements.find((e) => e.tag === 0x00020003);
  if (!el) throw new Error('no (0002,0003)');
  const value = text.length % 2 ? Buffer.concat([text, Buffer.from([0])]) : text;
  const head = Buffer.from(bytes.subarray(0, el.offset));
  head.writeUInt16LE(value.length, el.offset - 2);
  const groupLength = header.fileMeta!.elements.find((e) => e.tag === 0x00020000);
  if (groupLength) head.writeUInt32LE(head.readUInt32LE(groupLength.offset) + value.length - el.length, groupLength.offset);
  return Buffer.concat([head, value, bytes.subarray(el.offset + el.length)]);
}

/** Random bytes, 0 to 4 KiB, half of the time behind a valid preamble and "DICM". */
export function randomBytes(rng: Prng): Mutation {
  const n = rng.int(4096);
  const withPrefix = rng.next() < 0.5;
  const body = rng.bytes(n);
  const bytes = withPrefix ? Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), body]) : body;
  return { name: `random ${n} bytes${withPrefix ? ' after a preamble and DICM' : ''}`, bytes };
}

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

function ui(tag: number, value: string): Buffer {
  const v = Buffer.from(value.length % 2 ? `${value}\0` : value, 'latin1');
  const h = Buffer.alloc(8);
  h.writeUInt16LE(tag >>> 16, 0);
  h.writeUInt16LE(tag & 0xffff, 2);
  h.write('UI', 4, 'latin1');
  h.writeUInt16LE(v.length, 6);
  return Buffer.concat([h, v]);
}

function tagBytes(tag: number, rest: number[]): Buffer {
  const b = Buffer.alloc(4 + rest.length);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  Buffer.from(rest).copy(b, 4);
  return b;
}

/**
 * A small, otherwise valid object (Explicit VR LE) whose Content Sequence (0040,A730) nests `depth` levels of
 * undefined-length sequences and items, or, with `flat`, holds `depth` empty items at one level.
 */
export function nestedSequences(depth: number, uids: { sop: string; study: string; series: string }, flat = false): Mutation {
  const meta = Buffer.from(encodeFileMeta({ mediaStorageSOPClassUID: CT_IMAGE_STORAGE, mediaStorageSOPInstanceUID: uids.sop, transferSyntaxUID: EXPLICIT_LE }));
  const sqOpen = tagBytes(0x0040a730, [0x53, 0x51, 0, 0, 0xff, 0xff, 0xff, 0xff]); // SQ, undefined length
  const itemOpen = tagBytes(0xfffee000, [0xff, 0xff, 0xff, 0xff]);
  const itemClose = tagBytes(0xfffee00d, [0, 0, 0, 0]);
  const sqClose = tagBytes(0xfffee0dd, [0, 0, 0, 0]);
  const pieces: Buffer[] = [meta, ui(0x00080016, CT_IMAGE_STORAGE), ui(0x00080018, uids.sop), ui(0x0020000d, uids.study), ui(0x0020000e, uids.series)];
  if (flat) {
    pieces.push(sqOpen);
    for (let i = 0; i < depth; i++) pieces.push(itemOpen, itemClose);
    pieces.push(sqClose);
  } else {
    for (let i = 0; i < depth; i++) pieces.push(sqOpen, itemOpen);
    for (let i = 0; i < depth; i++) pieces.push(itemClose, sqClose);
  }
  return { name: flat ? `${depth} items in one sequence` : `sequences nested ${depth} deep`, bytes: Buffer.concat(pieces) };
}
