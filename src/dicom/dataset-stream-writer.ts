// Encoding a data set as a stream of chunks (PS3.5 Section 7) when not all of its values are in memory: the
// bulk values of a multi-GB object (read by range from a stored object, or from spooled STOW-RS parts) are
// pulled one after the other while the chunks are consumed, so memory stays bounded whatever the object's
// size. Sequences and items are written with undefined lengths (PS3.5 7.5.2), which needs no look-ahead.
// No I/O here: the caller hands over the values' bytes as async iterables.
import { UNDEFINED_LENGTH, type DataElement } from './dataset.ts';
import { describeTag } from './errors.ts';
import { DicomEncodeError, encodeElement, encodeElementHeader, encodeItemHeader, encodeSequenceDelimiter } from './part10-writer.ts';
import { ItemDelimitationItem } from './tags.ts';
import { ImplicitVRLittleEndian, transferSyntaxInfo } from './transfer-syntax.ts';
import { LONG_HEADER_VRS, paddingByte } from './vr.ts';

/** A value given as a stream: exactly `length` bytes, already in the byte order of the target transfer syntax. */
export interface StreamedValue {
  length: number;
  bytes: () => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** Encapsulated Pixel Data (PS3.5 A.4) given as its fragments, in order; an empty Basic Offset Table is written. */
export interface StreamedFragments {
  fragments: AsyncIterable<StreamedValue> | Iterable<StreamedValue>;
}

export type StreamedElementValue = StreamedValue | StreamedFragments;

export interface DatasetStreamOptions {
  /** Byte order of the kept values (`el.value`); default true. They are swapped to the target's when it differs. */
  sourceLittleEndian?: boolean;
  /** The value of an element that is not kept (bulk data); `path` alternates tags and item indexes, ending with the tag. */
  bulkValue?: (el: DataElement, path: number[]) => StreamedElementValue | undefined;
}

/**
 * The elements (ascending tags, as PS3.5 7.1 requires) encoded in `transferSyntaxUID`, as a stream of chunks.
 * Not deflated: compress the output for Deflated Explicit VR Little Endian. In explicit VR, a value too long
 * for the 16-bit length of its VR is written as UN (PS3.5 6.2.2), as happens to values read in implicit VR.
 */
export async function* encodeDatasetStream(elements: DataElement[], transferSyntaxUID: string, options: DatasetStreamOptions = {},
  path: number[] = []): AsyncGenerator<Uint8Array> {
  const explicitVR = transferSyntaxInfo(transferSyntaxUID).explicitVR;
  for (const el of elements) {
    const tag = el.tag >>> 0;
    const here = [...path, tag];
    if (el.items) {
      // A UN element holding a sequence keeps its items in Implicit VR Little Endian (PS3.5 6.2.2).
      const asUN = el.vr === 'UN' && explicitVR;
      const itemSyntax = asUN ? ImplicitVRLittleEndian : transferSyntaxUID;
      yield encodeElementHeader(tag, asUN ? 'UN' : 'SQ', UNDEFINED_LENGTH, transferSyntaxUID);
      for (let i = 0; i < el.items.length; i++) {
        const item = el.items[i];
        yield encodeItemHeader(UNDEFINED_LENGTH, itemSyntax);
        yield* encodeDatasetStream(item.elements, itemSyntax, { ...options, sourceLittleEndian: item.littleEndian ?? true }, [...here, i]);
        yield encodeElementHeader(ItemDelimitationItem, '', 0, itemSyntax);
      }
      yield encodeSequenceDelimiter(itemSyntax);
      continue;
    }
    const streamed = el.value ? undefined : options.bulkValue?.(el, here);
    const length = el.value ? el.value.length : streamed && !('fragments' in streamed) ? streamed.length : 0;
    const vr = explicitVR && !LONG_HEADER_VRS.has(el.vr) && length > 0xfffe ? 'UN' : el.vr;
    if (el.value) {
      yield encodeElement(vr === el.vr ? el : { ...el, vr }, transferSyntaxUID, { sourceLittleEndian: options.sourceLittleEndian ?? true });
      continue;
    }
    if (!streamed) throw new DicomEncodeError(`cannot encode ${describeTag(tag)}: its value is neither kept nor given as a stream`, tag);
    if ('fragments' in streamed) {
      yield encodeElementHeader(tag, 'OB', UNDEFINED_LENGTH, transferSyntaxUID);
      yield encodeItemHeader(0, transferSyntaxUID); // empty Basic Offset Table (PS3.5 A.4)
      for await (const fragment of streamed.fragments) {
        // Fragments have an even length (PS3.5 A.4): an odd codestream gets one trailing zero byte.
        yield encodeItemHeader(fragment.length + (fragment.length % 2), transferSyntaxUID);
        yield* exactly(fragment, tag);
        if (fragment.length % 2) yield new Uint8Array(1);
      }
      yield encodeSequenceDelimiter(transferSyntaxUID);
      continue;
    }
    // Values have an even length (PS3.5 7.1.1), padded as their VR says.
    yield encodeElementHeader(tag, vr, streamed.length + (streamed.length % 2), transferSyntaxUID);
    yield* exactly(streamed, tag);
    if (streamed.length % 2) yield new Uint8Array([paddingByte(vr)]);
  }
}

/** The value's bytes, checked to be exactly as many as announced (a short source would corrupt every element after it). */
async function* exactly(value: StreamedValue, tag: number): AsyncGenerator<Uint8Array> {
  let seen = 0;
  for await (const chunk of value.bytes()) {
    seen += chunk.length;
    if (seen > value.length) throw new DicomEncodeError(`${describeTag(tag)}: the value's source gave more than the ${value.length} bytes announced`, tag);
    if (chunk.length) yield chunk;
  }
  if (seen !== value.length) throw new DicomEncodeError(`${describeTag(tag)}: the value's source gave ${seen} of the ${value.length} bytes announced`, tag);
}

/** Reverses each `unit`-byte word of a stream (big to little endian or back), whatever the chunk boundaries. */
export async function* swapWords(source: AsyncIterable<Uint8Array>, unit: number): AsyncGenerator<Uint8Array> {
  if (unit <= 1) {
    yield* source;
    return;
  }
  let carry = new Uint8Array(0);
  for await (const chunk of source) {
    const joined = carry.length ? concat(carry, chunk) : chunk;
    const whole = joined.length - (joined.length % unit);
    const out = new Uint8Array(whole);
    for (let i = 0; i < whole; i += unit) for (let j = 0; j < unit; j++) out[i + j] = joined[i + unit - 1 - j];
    carry = joined.slice(whole);
    if (out.length) yield out;
  }
  if (carry.length) yield carry;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
