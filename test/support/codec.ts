// Shared helpers for the codec's tests (test-only: reads the shared test data from disk).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Part10Reader } from '../../src/dicom/part10-reader.ts';
import type { Part10Header, Part10ReaderOptions } from '../../src/dicom/part10-reader.ts';
import type { DataElement, DataSet } from '../../src/dicom/dataset.ts';
import { encodeDataset } from '../../src/dicom/part10-writer.ts';
import { ImplicitVRLittleEndian } from '../../src/dicom/transfer-syntax.ts';
import { LONG_HEADER_VRS, paddingByte, swapBytes, swapUnit } from '../../src/dicom/vr.ts';

export const TESTDATA = '/work/shared/testdata/dicom';

/** Every candidate DICOM file under the test data, relative paths. */
export function testFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir).sort().flatMap((name) => {
      const p = join(dir, name);
      return statSync(p).isDirectory() ? walk(p) : [p];
    });
  return walk(TESTDATA).filter((p) => !/\.(json|txt|dump|gz)$/i.test(p)).map((p) => relative(TESTDATA, p));
}

export function readTestFile(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(TESTDATA, name)));
}

/** Parses `bytes` fed in chunks of `chunkSize` (whole when undefined). */
export function parse(bytes: Uint8Array, chunkSize?: number, options?: Part10ReaderOptions): { header: Part10Header; reader: Part10Reader } {
  const reader = new Part10Reader(options);
  const step = chunkSize ?? bytes.length;
  for (let i = 0; i < bytes.length; i += step) reader.push(bytes.subarray(i, i + step));
  if (bytes.length === 0) reader.push(bytes);
  return { header: reader.end(), reader };
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** A comparable snapshot of a data set, with everything the parser produced. */
export function snapshot(ds: DataSet): unknown {
  return {
    littleEndian: ds.littleEndian,
    elements: ds.elements.map((e) => ({
      ...e,
      value: e.value && hex(e.value),
      items: e.items?.map(snapshot),
      encapsulated: e.encapsulated && { bot: hex(e.encapsulated.basicOffsetTable), fragments: e.encapsulated.fragments },
    })),
  };
}

/**
 * Encoding-independent content: tags, values normalized to little endian, nested items. VRs are compared
 * only when `withVR` (Implicit VR loses them for private tags).
 */
export function content(ds: DataSet, withVR: boolean): unknown {
  const le = ds.littleEndian ?? true;
  return ds.elements.map((e) => {
    const unit = swapUnit(e.vr);
    let value = e.value && (le || unit === 1 ? e.value : swapBytes(e.value, unit));
    // The writer pads odd (non-conformant) lengths, as PS3.5 7.1.1 requires.
    if (value && value.length % 2 === 1) value = new Uint8Array([...value, paddingByte(e.vr)]);
    return {
      tag: e.tag.toString(16),
      ...(withVR ? { vr: e.items ? 'SQ' : e.vr } : {}),
      value: value && hex(value),
      items: e.items?.map((i) => content(i, withVR)),
    };
  });
}

/**
 * What a gateway that knows no VRs makes of an Explicit VR Little Endian object: every top-level data set
 * element rewritten with VR UN (PS3.5 6.2.2), sequences as Implicit VR LE items (defined length), encapsulated
 * Pixel Data as UN of undefined length with its fragments copied byte for byte. The File Meta is kept.
 * `keep` lists tags left as they were (e.g. Pixel Data, as some converters do).
 */
export function allVrsToUn(bytes: Uint8Array, keep: number[] = []): Uint8Array {
  const { header } = parse(bytes, undefined, { bulkThreshold: 1 << 30 });
  if (!header.explicitVR || !header.littleEndian) throw new Error('allVrsToUn: an Explicit VR Little Endian object is expected');
  const parts: Uint8Array[] = [bytes.subarray(0, header.datasetOffset)];
  const unHeader = (tag: number, length: number) => {
    const b = new Uint8Array(12);
    const dv = new DataView(b.buffer);
    dv.setUint16(0, tag >>> 16, true);
    dv.setUint16(2, tag & 0xffff, true);
    b[4] = 0x55; b[5] = 0x4e; // "UN"
    dv.setUint32(8, length, true);
    return b;
  };
  const elements = header.dataset.elements;
  for (let i = 0; i < elements.length; i++) {
    const el = elements[i];
    const end = i + 1 < elements.length ? elements[i + 1].offset - headerLength(elements[i + 1]) : bytes.length;
    if (keep.includes(el.tag)) {
      parts.push(bytes.subarray(el.offset - headerLength(el), end));
    } else if (el.items) {
      const value = encodeDataset([{ ...el, vr: 'SQ' }], ImplicitVRLittleEndian, { definedLengthSequences: true }).subarray(8);
      parts.push(unHeader(el.tag, value.length), value);
    } else if (el.encapsulated) {
      parts.push(unHeader(el.tag, 0xffffffff), bytes.subarray(el.offset, end));
    } else {
      parts.push(unHeader(el.tag, el.length), bytes.subarray(el.offset, el.offset + el.length));
    }
  }
  return Buffer.concat(parts);
}

/** Length of an element's Explicit VR header (PS3.5 Table 7.1-1). */
function headerLength(el: DataElement): number {
  return LONG_HEADER_VRS.has(el.vr) || el.items ? 12 : 8;
}
