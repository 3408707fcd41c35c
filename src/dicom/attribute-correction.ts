// Correcting top-level text attributes of a Part-10 object (or a bare data set) in place, the way PS3.3
// C.12.1.1.9 asks corrections to be recorded: the new values go into the data set, the previous ones into an
// item of Original Attributes Sequence (0400,0561) with when, by which system and why. Every other byte of the
// object stays as it was (the changed elements are spliced in; nothing is re-encoded), so that a correction
// changes what the operator asked and nothing else. No I/O: the object is given and returned in memory.
import type { DataElement } from './dataset.ts';
import { characterSetOf, elementStrings, findElement, UNDEFINED_LENGTH } from './dataset.ts';
import { lookupTag, tagOfKeyword } from './dictionary.ts';
import type { Part10Header } from './part10-reader.ts';
import { encodeElementHeader, encodeItemHeader, encodeSequenceDelimiter } from './part10-writer.ts';
import {
  FileMetaInformationGroupLength, ItemDelimitationItem, MediaStorageSOPClassUID, MediaStorageSOPInstanceUID, SequenceDelimitationItem,
  SOPClassUID, SOPInstanceUID, SpecificCharacterSet, formatTag,
} from './tags.ts';
import { ExplicitVRLittleEndian, transferSyntaxInfo } from './transfer-syntax.ts';
import { uidProblem } from './uid.ts';
import { CHARSET_VRS, LONG_HEADER_VRS, STRING_VRS, paddingByte } from './vr.ts';

export const OriginalAttributesSequence = 0x04000561;
const ModifiedAttributesSequence = 0x04000550;
const AttributeModificationDateTime = 0x04000562;
const ModifyingSystem = 0x04000563;
const SourceOfPreviousValues = 0x04000564;
const ReasonForTheAttributeModification = 0x04000565;

/**
 * Why a correction cannot be made: `invalid` when the request is wrong (an unknown keyword, a value its VR does
 * not allow), `impossible` when this object cannot take it (deflated, an element of undefined length...).
 */
export class AttributeCorrectionError extends Error {
  readonly kind: 'invalid' | 'impossible';
  constructor(kind: 'invalid' | 'impossible', message: string) {
    super(message);
    this.name = 'AttributeCorrectionError';
    this.kind = kind;
  }
}

/** One attribute to set: a top-level text attribute of the dictionary, and its new value ('' for empty). */
export interface AttributeChange {
  tag: number;
  keyword: string;
  vr: string;
  value: string;
}

/** What a correction did to one attribute. */
export interface AppliedChange {
  tag: string;
  keyword: string;
  /** The value before, null when the attribute was absent. */
  previous: string | null;
  value: string;
}

export interface CorrectionOptions {
  /** Modifying System (0400,0563), e.g. "ATRIUM ARCHIVE_1". */
  modifyingSystem: string;
  /** When: Attribute Modification DateTime (0400,0562). */
  at: Date;
  /** Reason for the Attribute Modification (0400,0565): CORRECT (the values were wrong) or COERCE (made to fit local rules). Default CORRECT. */
  reason?: 'CORRECT' | 'COERCE';
}

/** PS3.5 Table 6.2-1: the longest value (characters; for PN, per component group) of the text VRs that have a limit. */
const MAX_LENGTH: Record<string, number> = {
  AE: 16, AS: 4, CS: 16, DA: 8, DS: 16, DT: 26, IS: 12, LO: 64, LT: 10240, PN: 64, SH: 16, ST: 1024, TM: 14, UI: 64,
};
const FORMAT: Record<string, [RegExp, string]> = {
  AS: [/^\d{3}[DWMY]$/, 'nnnD, nnnW, nnnM or nnnY'],
  CS: [/^[A-Z0-9 _]*$/, 'upper-case letters, digits, space and underscore'],
  DA: [/^\d{8}$/, 'YYYYMMDD'],
  DS: [/^ *[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)? *$/, 'a decimal number'],
  DT: [/^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$/, 'YYYYMMDDHHMMSS.FFFFFF&ZZXX'],
  IS: [/^ *[+-]?\d+ *$/, 'a whole number'],
  TM: [/^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$/, 'HHMMSS.FFFFFF'],
};

/**
 * The changes asked for as `{ keyword: value }` (keywords of the data dictionary, or 8 hex digits), checked:
 * top-level text attributes only, not the File Meta (group 0002), not Specific Character Set (it decides how
 * every other text is read), values as their VR allows. Throws AttributeCorrectionError('invalid') listing
 * every problem.
 */
export function attributeChanges(requested: Record<string, unknown>): AttributeChange[] {
  const problems: string[] = [];
  const changes: AttributeChange[] = [];
  for (const [name, value] of Object.entries(requested)) {
    const tag = /^[0-9A-Fa-f]{8}$/.test(name) ? parseInt(name, 16) >>> 0 : tagOfKeyword(name);
    const entry = tag === undefined ? undefined : lookupTag(tag);
    if (tag === undefined || !entry) { problems.push(`${name}: not an attribute of the data dictionary`); continue; }
    const where = `${entry.keyword} ${formatTag(tag)}`;
    if (typeof value !== 'string') { problems.push(`${where}: the value must be a string`); continue; }
    if (tag >>> 16 <= 0x0002 || tag >>> 16 === 0xfffe) { problems.push(`${where}: File Meta and command elements are not corrected here`); continue; }
    if (tag === SpecificCharacterSet) { problems.push(`${where} is not changed here: it decides how every other text of the object is read`); continue; }
    if (!STRING_VRS.has(entry.vr)) { problems.push(`${where} has VR ${entry.vr}: only text attributes are set here`); continue; }
    if (changes.some((c) => c.tag === tag)) { problems.push(`${where} is given twice`); continue; }
    const problem = valueProblem(entry.vr, value);
    if (problem) { problems.push(`${where} (${entry.vr}): ${problem}`); continue; }
    changes.push({ tag, keyword: entry.keyword, vr: entry.vr, value });
  }
  if (problems.length) throw new AttributeCorrectionError('invalid', problems.join('; '));
  return changes.sort((a, b) => a.tag - b.tag);
}

function valueProblem(vr: string, value: string): string | null {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000e-\u001f\u007f]/.test(value) || (!['LT', 'ST', 'UT'].includes(vr) && /[\r\n\t\f]/.test(value))) return 'control characters are not allowed';
  const values = ['LT', 'ST', 'UT', 'UR'].includes(vr) ? [value] : value.split('\\');
  for (const v of values) {
    if (v === '') continue;
    const max = MAX_LENGTH[vr];
    const parts = vr === 'PN' ? v.split('=') : [v];
    if (max !== undefined && parts.some((p) => p.length > max)) return `"${v}" is longer than the ${max} characters VR ${vr} allows`;
    const format = FORMAT[vr];
    if (format && !format[0].test(v)) return `"${v}" is not ${format[1]}`;
    if (vr === 'UI' && uidProblem(v)) return `"${v}" is not a valid UID (${uidProblem(v)})`;
  }
  return null;
}

/**
 * The object with `changes` applied and recorded in a new item of its Original Attributes Sequence, and
 * what each change did. `header` is the complete parse of `bytes` (Part10Reader.end()): a correction needs
 * every element's place. Changes that set the value already there are left out (and recorded nowhere).
 * Throws AttributeCorrectionError('impossible') when the object cannot take the change in place.
 */
export function correctAttributes(bytes: Uint8Array, header: Part10Header, changes: readonly AttributeChange[], options: CorrectionOptions): { bytes: Uint8Array; applied: AppliedChange[] } {
  const syntax = header.transferSyntaxUID;
  const info = transferSyntaxInfo(syntax);
  if (info.deflated) throw new AttributeCorrectionError('impossible', 'the data set is deflated: attributes cannot be set in place (inflate it first)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = header.littleEndian;
  const explicit = header.explicitVR;
  const top = header.dataset.elements;
  const characterSet = characterSetOf(header.dataset);

  /** Where an element's header starts: its value offset less the header, told by finding the tag there. */
  const headerStart = (el: DataElement, littleEndian = le, explicitVR = explicit): number => {
    const tagAt = (at: number) => at >= 0 && ((view.getUint16(at, littleEndian) << 16) | view.getUint16(at + 2, littleEndian)) >>> 0;
    if (tagAt(el.offset - 8) === el.tag) return el.offset - 8;
    // Explicit VR with a 32-bit length: OB, SQ, UN (also a text value a gateway sent as UN), UT...
    if (explicitVR && tagAt(el.offset - 12) === el.tag) return el.offset - 12;
    throw new AttributeCorrectionError('impossible', `the header of ${formatTag(el.tag)} at offset ${el.offset} cannot be found`);
  };
  const next = (el: DataElement): number => {
    const i = top.indexOf(el);
    return i + 1 < top.length ? headerStart(top[i + 1]) : bytes.length;
  };

  interface Edit { start: number; end: number; bytes: Uint8Array[]; tag: number }
  const edits: Edit[] = [];
  const applied: AppliedChange[] = [];
  const previousElements: Uint8Array[] = [];
  for (const change of changes) {
    const el = findElement(header.dataset, change.tag);
    const previous = el ? (el.value ? (elementStrings(el, le, characterSet) ?? []).join('\\') : null) : null;
    if (el && (el.items || el.encapsulated || el.length === UNDEFINED_LENGTH || (!el.value && !el.bulk))) {
      throw new AttributeCorrectionError('impossible', `${change.keyword} ${formatTag(change.tag)} is not encoded as a text value here`);
    }
    if (el && !el.bulk && previous === change.value) continue;
    const encoded = encodeText(change, characterSet, syntax);
    if (el) {
      const start = headerStart(el);
      previousElements.push(bytes.subarray(start, el.offset + el.length));
      edits.push({ start, end: el.offset + el.length, bytes: [encoded], tag: change.tag });
    } else {
      // An absent attribute is listed with an empty value: the item then says which attributes the correction added.
      previousElements.push(encodeElementHeader(change.tag, change.vr, 0, syntax));
      const at = insertionPoint(change.tag);
      edits.push({ start: at, end: at, bytes: [encoded], tag: change.tag });
    }
    applied.push({ tag: formatTag(change.tag), keyword: change.keyword, previous, value: change.value });
  }
  if (applied.length === 0) return { bytes, applied };

  // The Original Attributes Sequence item (PS3.3 Table C.12-1), elements in ascending tag order.
  const item = [
    encodeItemHeader(UNDEFINED_LENGTH, syntax),
    encodeElementHeader(ModifiedAttributesSequence, 'SQ', UNDEFINED_LENGTH, syntax), encodeItemHeader(UNDEFINED_LENGTH, syntax),
    ...previousElements, encodeElementHeader(ItemDelimitationItem, '', 0, syntax), encodeSequenceDelimiter(syntax),
    text(AttributeModificationDateTime, 'DT', dicomDateTime(options.at), syntax),
    text(ModifyingSystem, 'LO', options.modifyingSystem.slice(0, 64), syntax),
    text(SourceOfPreviousValues, 'LO', '', syntax),
    text(ReasonForTheAttributeModification, 'CS', options.reason ?? 'CORRECT', syntax),
    encodeElementHeader(ItemDelimitationItem, '', 0, syntax),
  ];
  const itemLength = item.reduce((n, b) => n + b.length, 0);
  const original = findElement(header.dataset, OriginalAttributesSequence);
  if (!original) {
    const at = insertionPoint(OriginalAttributesSequence);
    edits.push({ start: at, end: at, tag: OriginalAttributesSequence,
      bytes: [encodeElementHeader(OriginalAttributesSequence, 'SQ', UNDEFINED_LENGTH, syntax), ...item, encodeSequenceDelimiter(syntax)] });
  } else {
    const start = headerStart(original);
    if (!original.items || (explicit && String.fromCharCode(bytes[start + 4], bytes[start + 5]) !== 'SQ')) {
      throw new AttributeCorrectionError('impossible', `Original Attributes Sequence ${formatTag(OriginalAttributesSequence)} is not encoded as a sequence here`);
    }
    if (original.length === UNDEFINED_LENGTH) {
      // The new item goes last, before the sequence's delimiter (the 8 bytes before what follows the sequence).
      const delimiter = next(original) - 8;
      const tag = delimiter >= 0 ? ((view.getUint16(delimiter, le) << 16) | view.getUint16(delimiter + 2, le)) >>> 0 : 0;
      if (tag !== SequenceDelimitationItem) throw new AttributeCorrectionError('impossible', `the end of ${formatTag(OriginalAttributesSequence)} cannot be found`);
      edits.push({ start: delimiter, end: delimiter, bytes: item, tag: OriginalAttributesSequence });
    } else {
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, original.length + itemLength, le);
      edits.push({ start: original.offset - 4, end: original.offset, bytes: [length], tag: OriginalAttributesSequence });
      edits.push({ start: original.offset + original.length, end: original.offset + original.length, bytes: item, tag: OriginalAttributesSequence });
    }
  }

  // A changed SOP Class or Instance UID is also the File Meta's (PS3.10 7.1), whose group length follows.
  const meta = header.fileMeta;
  if (meta) {
    let delta = 0;
    for (const [datasetTag, metaTag] of [[SOPClassUID, MediaStorageSOPClassUID], [SOPInstanceUID, MediaStorageSOPInstanceUID]] as const) {
      const change = changes.find((c) => c.tag === datasetTag);
      const el = findElement(meta, metaTag);
      if (!change || !el || !applied.some((a) => a.keyword === change.keyword)) continue;
      const encoded = encodeText({ ...change, tag: metaTag }, undefined, ExplicitVRLittleEndian);
      const start = headerStart(el, true, true);
      edits.push({ start, end: el.offset + el.length, bytes: [encoded], tag: metaTag });
      delta += encoded.length - (el.offset + el.length - start);
    }
    const groupLength = findElement(meta, FileMetaInformationGroupLength);
    if (delta !== 0 && groupLength?.value?.length === 4) {
      const value = new Uint8Array(4);
      new DataView(value.buffer).setUint32(0, new DataView(groupLength.value.buffer, groupLength.value.byteOffset, 4).getUint32(0, true) + delta, true);
      edits.push({ start: groupLength.offset, end: groupLength.offset + 4, bytes: [value], tag: FileMetaInformationGroupLength });
    }
  }

  edits.sort((a, b) => a.start - b.start || a.tag - b.tag);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const edit of edits) {
    if (edit.start < at) throw new AttributeCorrectionError('impossible', `the changes overlap at offset ${edit.start}`);
    out.push(bytes.subarray(at, edit.start), ...edit.bytes);
    at = edit.end;
  }
  out.push(bytes.subarray(at));
  return { bytes: concat(out), applied };

  /** Where a new top-level element goes: before the first with a greater tag (PS3.5 7.1: ascending order). */
  function insertionPoint(tag: number): number {
    const after = top.find((e) => e.tag > tag);
    return after ? headerStart(after) : bytes.length;
  }
}

/** A text element in `syntax`, its value encoded as the data set's character set allows and padded to even length. */
function encodeText(change: Pick<AttributeChange, 'tag' | 'keyword' | 'vr' | 'value'>, characterSet: string[] | undefined, syntax: string): Uint8Array {
  const raw = textBytes(change, characterSet);
  const value = new Uint8Array(raw.length + (raw.length % 2));
  value.set(raw);
  if (raw.length % 2) value[raw.length] = paddingByte(change.vr);
  const explicit = transferSyntaxInfo(syntax).explicitVR;
  if (explicit && !LONG_HEADER_VRS.has(change.vr) && value.length > 0xffff) {
    throw new AttributeCorrectionError('invalid', `${change.keyword}: ${value.length} bytes do not fit VR ${change.vr}`);
  }
  return concat([encodeElementHeader(change.tag, change.vr, value.length, syntax), value]);
}

function text(tag: number, vr: string, value: string, syntax: string): Uint8Array {
  return encodeText({ tag, keyword: '', vr, value }, undefined, syntax);
}

/**
 * ASCII always; beyond it, UTF-8 under ISO_IR 192 and Latin-1 under ISO_IR 100, for the VRs Specific
 * Character Set applies to. Anything else would need an escape sequence or another repertoire than the object
 * declares: refused rather than written wrongly.
 */
function textBytes(change: Pick<AttributeChange, 'keyword' | 'vr' | 'value'>, characterSet: string[] | undefined): Uint8Array {
  const { value, vr } = change;
  // eslint-disable-next-line no-control-regex
  if (/^[\u0000-\u007f]*$/.test(value)) return new TextEncoder().encode(value);
  const single = characterSet?.length === 1 ? characterSet[0] : undefined;
  if (CHARSET_VRS.has(vr) && characterSet?.includes('ISO_IR 192')) return new TextEncoder().encode(value);
  if (CHARSET_VRS.has(vr) && single === 'ISO_IR 100' && /^[\u0000-\u00ff]*$/.test(value)) return Uint8Array.from(value, (c) => c.charCodeAt(0));
  throw new AttributeCorrectionError('invalid', `${change.keyword}: "${value}" has characters the object's Specific Character Set `
    + `(${characterSet?.join('\\') || 'the default repertoire'}) cannot hold${CHARSET_VRS.has(vr) ? '' : ` (VR ${vr} is always in the default repertoire)`}`);
}

/** DT in UTC with its offset: YYYYMMDDHHMMSS.FFFFFF+0000. */
function dicomDateTime(at: Date): string {
  const iso = at.toISOString(); // 2024-01-02T03:04:05.678Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}.${iso.slice(20, 23)}000+0000`;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
