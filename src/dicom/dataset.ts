// The parsed DataSet model and value accessors (PS3.5 Section 7).
import { decodeText, parseSpecificCharacterSet, splitValues, trimValue } from './charset.ts';
import { SpecificCharacterSet } from './tags.ts';
import { STRING_VRS } from './vr.ts';

/** Value Length of undefined length sequences, items and encapsulated Pixel Data (PS3.5 7.1.1). */
export const UNDEFINED_LENGTH = 0xffffffff;

export interface Fragment {
  /** Absolute offset of the first byte of the fragment's data (after its item header). */
  offset: number;
  length: number;
}

export interface DataElement {
  /** (group << 16 | element) >>> 0 */
  tag: number;
  /** Explicit VR as read, or from the dictionary for implicit VR ('UN' when unknown). */
  vr: string;
  /** Value length as encoded (UNDEFINED_LENGTH when undefined). */
  length: number;
  /** Absolute byte offset (in the Part-10 stream as fed) of the first value byte. */
  offset: number;
  /** Raw value bytes in the dataset's byte order; absent for SQ, encapsulated and bulk values. */
  value?: Uint8Array;
  /** SQ, and UN/undefined-length elements that turn out to be sequences (PS3.5 6.2.2). */
  items?: DataSet[];
  /** Encapsulated Pixel Data (PS3.5 A.4): fragment positions only, bytes not kept. */
  encapsulated?: { basicOffsetTable: Uint8Array; fragments: Fragment[] };
  /** The value was longer than the reader's bulk threshold and was not kept. */
  bulk?: boolean;
}

export interface DataSet {
  /** In stream order. */
  elements: DataElement[];
  /** Byte order of the values; defaults to true. Items of a UN sequence are always little endian (PS3.5 6.2.2). */
  littleEndian?: boolean;
}

export function findElement(ds: DataSet, tag: number): DataElement | undefined {
  const t = tag >>> 0;
  for (const el of ds.elements) if (el.tag === t) return el;
  return undefined;
}

/** The Specific Character Set terms declared in `ds`, if any. */
export function characterSetOf(ds: DataSet): string[] | undefined {
  const el = findElement(ds, SpecificCharacterSet);
  if (!el?.value) return undefined;
  return parseSpecificCharacterSet(new TextDecoder('latin1').decode(el.value));
}

/**
 * All values of an element as strings: text VRs decoded with `characterSet` and trimmed per VR, numeric VRs
 * formatted, AT as 8 hex digits. Undefined when the element has no kept value.
 */
export function elementStrings(el: DataElement, littleEndian = true, characterSet?: string[] | string): string[] | undefined {
  if (!el.value) return undefined;
  if (el.value.length === 0) return [];
  if (STRING_VRS.has(el.vr)) {
    return splitValues(decodeText(el.value, el.vr, characterSet), el.vr).map((v) => trimValue(v, el.vr));
  }
  if (el.vr === 'AT') {
    const v = new DataView(el.value.buffer, el.value.byteOffset, el.value.byteLength);
    const out: string[] = [];
    for (let i = 0; i + 4 <= el.value.length; i += 4) {
      const tag = ((v.getUint16(i, littleEndian) << 16) | v.getUint16(i + 2, littleEndian)) >>> 0;
      out.push(tag.toString(16).toUpperCase().padStart(8, '0'));
    }
    return out;
  }
  const nums = elementNumbers(el, littleEndian);
  return nums?.map(String);
}

/** All values of a numeric element (IS, DS and the binary numeric VRs); undefined for other VRs. */
export function elementNumbers(el: DataElement, littleEndian = true): number[] | undefined {
  const b = el.value;
  if (!b) return undefined;
  if (el.vr === 'IS' || el.vr === 'DS') {
    return new TextDecoder('latin1').decode(b).split('\\').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const read = (size: number, get: (o: number) => number): number[] => {
    const out: number[] = [];
    for (let o = 0; o + size <= b.length; o += size) out.push(get(o));
    return out;
  };
  switch (el.vr) {
    case 'US': case 'OW': return read(2, (o) => dv.getUint16(o, littleEndian));
    case 'SS': return read(2, (o) => dv.getInt16(o, littleEndian));
    case 'UL': case 'OL': return read(4, (o) => dv.getUint32(o, littleEndian));
    case 'SL': return read(4, (o) => dv.getInt32(o, littleEndian));
    case 'FL': case 'OF': return read(4, (o) => dv.getFloat32(o, littleEndian));
    case 'FD': case 'OD': return read(8, (o) => dv.getFloat64(o, littleEndian));
    case 'SV': return read(8, (o) => Number(dv.getBigInt64(o, littleEndian)));
    case 'UV': case 'OV': return read(8, (o) => Number(dv.getBigUint64(o, littleEndian)));
    default: return undefined;
  }
}

export function stringValues(ds: DataSet, tag: number, characterSet?: string[] | string): string[] | undefined {
  const el = findElement(ds, tag);
  if (!el) return undefined;
  return elementStrings(el, ds.littleEndian ?? true, characterSet ?? characterSetOf(ds));
}

/** First value, trimmed per VR; undefined when absent or empty. */
export function stringValue(ds: DataSet, tag: number, characterSet?: string[] | string): string | undefined {
  const v = stringValues(ds, tag, characterSet)?.[0];
  return v === undefined || v === '' ? undefined : v;
}

export function numberValues(ds: DataSet, tag: number): number[] | undefined {
  const el = findElement(ds, tag);
  return el ? elementNumbers(el, ds.littleEndian ?? true) : undefined;
}

export function numberValue(ds: DataSet, tag: number): number | undefined {
  const v = numberValues(ds, tag)?.[0];
  return v === undefined || Number.isNaN(v) ? undefined : v;
}
