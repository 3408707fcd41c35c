// DICOM JSON Model (PS3.18 Annex F) from and to our parsed model.
import { characterSetOf, elementNumbers, elementStrings } from './dataset.ts';
import type { DataElement, DataSet } from './dataset.ts';
import { decodeText, parseSpecificCharacterSet, splitPersonName, splitValues, trimValue } from './charset.ts';
import { describeTag } from './errors.ts';
import { SpecificCharacterSet } from './tags.ts';
import { BINARY_VRS, CHARSET_VRS, STRING_VRS, swapBytes, swapUnit } from './vr.ts';

export interface DicomJsonPersonName {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}
export type DicomJsonValue = string | number | DicomJsonPersonName | DicomJsonDataSet | null;
export interface DicomJsonAttribute {
  vr: string;
  Value?: DicomJsonValue[];
  InlineBinary?: string;
  BulkDataURI?: string;
}
export type DicomJsonDataSet = Record<string, DicomJsonAttribute>;

export interface ToDicomJsonOptions {
  /** Specific Character Set to decode with, overriding (0008,0005) of the data set. */
  characterSet?: string[];
  /**
   * URI for a value sent as BulkDataURI (PS3.18 F.2.6). The path alternates tags and item indexes:
   * [seqTag, itemIndex, ..., tag]. Called for every value that was not kept, and for kept binary values
   * longer than inlineBinaryMax; returning undefined keeps the value inline (or omits a value not kept).
   */
  bulkDataUri?: (tagPath: number[]) => string | undefined;
  /** Kept binary values longer than this are offered to bulkDataUri (default: never). */
  inlineBinaryMax?: number;
}

const hexKey = (tag: number) => (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');

/** The DICOM JSON Model of `ds` (PS3.18 F.2), every element including private ones, in tag order. */
export function toDicomJson(ds: DataSet, options: ToDicomJsonOptions = {}): DicomJsonDataSet {
  return datasetToJson(ds, options.characterSet ?? characterSetOf(ds), [], options);
}

function datasetToJson(ds: DataSet, charset: string[] | undefined, path: number[], opts: ToDicomJsonOptions): DicomJsonDataSet {
  const out: DicomJsonDataSet = {};
  const le = ds.littleEndian ?? true;
  const sorted = [...ds.elements].sort((a, b) => a.tag - b.tag);
  for (const el of sorted) out[hexKey(el.tag)] = elementToJson(el, le, charset, [...path, el.tag], opts);
  return out;
}

function elementToJson(el: DataElement, le: boolean, charset: string[] | undefined, path: number[], opts: ToDicomJsonOptions): DicomJsonAttribute {
  if (el.items) {
    // A UN element that parsed as a sequence (PS3.5 6.2.2) is presented as what it is: a sequence.
    const attr: DicomJsonAttribute = { vr: 'SQ' };
    if (el.items.length > 0) {
      attr.Value = el.items.map((item, i) => datasetToJson(item, characterSetOf(item) ?? charset, [...path, i], opts));
    }
    return attr;
  }
  const attr: DicomJsonAttribute = { vr: el.vr };
  if (!el.value) {
    const uri = opts.bulkDataUri?.(path);
    if (uri !== undefined) attr.BulkDataURI = uri;
    return attr;
  }
  if (el.value.length === 0) return attr; // F.2.5: no Value for an empty attribute
  if (BINARY_VRS.has(el.vr)) {
    const uri = opts.inlineBinaryMax !== undefined && el.value.length > opts.inlineBinaryMax ? opts.bulkDataUri?.(path) : undefined;
    if (uri !== undefined) {
      attr.BulkDataURI = uri;
    } else {
      // InlineBinary is the Little Endian encoding of the value (PS3.18 F.2.7).
      const unit = swapUnit(el.vr);
      const bytes = !le && unit > 1 ? swapBytes(el.value, unit) : el.value;
      attr.InlineBinary = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
    }
    return attr;
  }
  attr.Value = jsonValues(el, le, charset);
  return attr;
}

function jsonValues(el: DataElement, le: boolean, charset: string[] | undefined): DicomJsonValue[] {
  const vr = el.vr;
  if (vr === 'PN') {
    const text = decodeText(el.value!, vr, charset);
    return splitValues(text, vr).map((v) => {
      const name = trimValue(v, vr);
      return name === '' ? null : splitPersonName(name);
    });
  }
  if (vr === 'IS' || vr === 'DS') {
    return (elementStrings(el, le) ?? []).map((s) => {
      if (s === '') return null;
      const n = Number(s);
      // Keep malformed numbers as text rather than lose them; F.2.3 wants numbers for well-formed ones.
      return Number.isFinite(n) ? n : s;
    });
  }
  if (vr === 'SV' || vr === 'UV') {
    const b = el.value!;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const out: DicomJsonValue[] = [];
    for (let o = 0; o + 8 <= b.length; o += 8) {
      const big = vr === 'SV' ? dv.getBigInt64(o, le) : dv.getBigUint64(o, le);
      // Outside the exact range of JSON numbers, 64-bit integers are strings (PS3.18 F.2.3.1).
      out.push(big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(big) : big.toString());
    }
    return out;
  }
  if (STRING_VRS.has(vr) || vr === 'AT') {
    return (elementStrings(el, le, charset) ?? []).map((s) => (s === '' ? null : s));
  }
  return elementNumbers(el, le) ?? [];
}

export interface FromDicomJsonOptions {
  /** Bytes for a BulkDataURI; when absent or returning undefined the element is marked bulk with no value. */
  resolveBulkData?: (uri: string) => Uint8Array | undefined;
}

/**
 * Elements (Little Endian values, ascending tags) from a DICOM JSON data set, ready for encodeDataset.
 * Text is encoded as UTF-8 when (0008,0005) is ISO_IR 192 and as Latin-1 otherwise; characters that do not
 * fit the declared repertoire raise an error instead of being silently mangled.
 */
export function fromDicomJson(json: DicomJsonDataSet, options: FromDicomJsonOptions = {}, inheritedCharset?: string[]): DataElement[] {
  const scs = json[hexKey(SpecificCharacterSet)]?.Value;
  const charset = scs ? parseSpecificCharacterSet(scs.map((v) => (v === null ? '' : String(v))).join('\\')) : inheritedCharset;
  const keys = Object.keys(json).sort();
  return keys.map((key) => {
    if (!/^[0-9A-Fa-f]{8}$/.test(key)) throw new Error(`DICOM JSON: invalid attribute key "${key}"`);
    return attributeToElement(parseInt(key, 16) >>> 0, json[key], charset, options);
  });
}

function attributeToElement(tag: number, attr: DicomJsonAttribute, charset: string[] | undefined, opts: FromDicomJsonOptions): DataElement {
  const vr = attr.vr;
  if (!vr || !/^[A-Z]{2}$/.test(vr)) throw new Error(`DICOM JSON: ${describeTag(tag)} has no valid vr`);
  const el: DataElement = { tag, vr, length: 0, offset: 0 };
  if (vr === 'SQ') {
    el.items = (attr.Value ?? []).map((item) => ({
      elements: fromDicomJson((item ?? {}) as DicomJsonDataSet, opts, charset),
      littleEndian: true,
    }));
    return el;
  }
  let value: Uint8Array | undefined;
  if (attr.InlineBinary !== undefined) {
    value = new Uint8Array(Buffer.from(attr.InlineBinary, 'base64'));
  } else if (attr.BulkDataURI !== undefined) {
    value = opts.resolveBulkData?.(attr.BulkDataURI);
    if (!value) el.bulk = true;
  } else {
    value = encodeJsonValues(tag, vr, attr.Value ?? [], charset);
  }
  if (value) {
    el.value = value;
    el.length = value.length;
  }
  return el;
}

function encodeJsonValues(tag: number, vr: string, values: DicomJsonValue[], charset: string[] | undefined): Uint8Array {
  const nums = values as (number | string | null)[];
  const fixed = (size: number, set: (dv: DataView, o: number, v: number | string) => void) => {
    const b = new Uint8Array(size * values.length);
    const dv = new DataView(b.buffer);
    nums.forEach((v, i) => set(dv, i * size, v ?? 0));
    return b;
  };
  switch (vr) {
    case 'US': return fixed(2, (dv, o, v) => dv.setUint16(o, Number(v), true));
    case 'SS': return fixed(2, (dv, o, v) => dv.setInt16(o, Number(v), true));
    case 'UL': return fixed(4, (dv, o, v) => dv.setUint32(o, Number(v), true));
    case 'SL': return fixed(4, (dv, o, v) => dv.setInt32(o, Number(v), true));
    case 'FL': return fixed(4, (dv, o, v) => dv.setFloat32(o, Number(v), true));
    case 'FD': return fixed(8, (dv, o, v) => dv.setFloat64(o, Number(v), true));
    case 'SV': return fixed(8, (dv, o, v) => dv.setBigInt64(o, BigInt(v), true));
    case 'UV': return fixed(8, (dv, o, v) => dv.setBigUint64(o, BigInt(v), true));
    case 'AT': return fixed(4, (dv, o, v) => {
      const t = parseInt(String(v), 16) >>> 0;
      dv.setUint16(o, t >>> 16, true);
      dv.setUint16(o + 2, t & 0xffff, true);
    });
  }
  let text: string;
  if (vr === 'PN') {
    text = values.map((v) => {
      if (v === null || typeof v !== 'object') return v === null ? '' : String(v);
      const pn = v as DicomJsonPersonName;
      return [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''].join('=').replace(/=+$/, '');
    }).join('\\');
  } else if (vr === 'DS' || vr === 'IS') {
    text = values.map((v) => (v === null ? '' : typeof v === 'number' ? formatNumber(v) : String(v))).join('\\');
  } else {
    text = values.map((v) => (v === null ? '' : String(v))).join('\\');
  }
  return encodeText(tag, vr, text, charset);
}

function encodeText(tag: number, vr: string, text: string, charset: string[] | undefined): Uint8Array {
  if (CHARSET_VRS.has(vr) && charset?.some((t) => t === 'ISO_IR 192')) return new TextEncoder().encode(text);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) {
      throw new Error(`DICOM JSON: ${describeTag(tag)} has characters outside the declared Specific Character Set ` +
        `(${charset?.join('\\') ?? 'default'}); use ISO_IR 192`);
    }
    out[i] = c;
  }
  return out;
}

/** A JSON number as DS/IS text: at most 16 characters (PS3.5 Table 6.2-1), keeping the sign of -0. */
function formatNumber(n: number): string {
  if (Object.is(n, -0)) return '-0';
  let text = String(n);
  for (let precision = 15; text.length > 16 && precision > 0; precision--) {
    text = n.toPrecision(precision).replace(/\.?0+(?=e|$)/, '');
  }
  return text;
}
