// Serving a stored object with identity corrections applied, while streaming it (PS3.3 C.12.1.1.9): the
// corrected values go into the data set and the replaced ones into a new item of Original Attributes Sequence
// (0400,0561). Only the head of the object is held: every top-level element up to the Original Attributes
// Sequence (the patient, study and series modules are all in groups 0008-0040, before it). The first top-level
// element after it, and everything that follows (functional groups, Pixel Data), is passed on as it comes.
// No I/O: bytes in, bytes out.
import { attributeChanges, AttributeCorrectionError, correctAttributes, OriginalAttributesSequence, type AttributeChange, type CorrectionOptions } from './attribute-correction.ts';
import type { DataElement } from './dataset.ts';
import { Part10Reader } from './part10-reader.ts';
import { transferSyntaxInfo } from './transfer-syntax.ts';

/** The head held in memory is refused beyond this (a real header is a few KB; this is a guard, not a need). */
export const MAX_CORRECTED_HEAD_BYTES = 16 * 1024 * 1024;

export { attributeChanges, AttributeCorrectionError, type AttributeChange, type CorrectionOptions };

/**
 * `source` (a whole Part-10 object, or a bare data set) with `changes` applied. Values already as asked are
 * left alone; when none differs, the object is passed on byte for byte (no Original Attributes item). Throws
 * AttributeCorrectionError('impossible') for a deflated data set (its bytes cannot be spliced; see
 * docs/corrections.md) and DicomParseError for an object that does not parse up to its head's end.
 */
export async function* correctedStream(source: AsyncIterable<Uint8Array>, changes: readonly AttributeChange[], options: CorrectionOptions,
  maxHead = MAX_CORRECTED_HEAD_BYTES): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  try {
    const reader = new Part10Reader();
    const chunks: Uint8Array[] = [];
    let held = 0;
    let boundary: DataElement | undefined;
    let scanned = 0;
    let ended = false;
    while (!boundary) {
      const next = await it.next();
      if (next.done) { ended = true; break; }
      const chunk = next.value;
      chunks.push(chunk);
      held += chunk.length;
      reader.push(chunk);
      const partial = reader.partial();
      if (partial.transferSyntaxUID && transferSyntaxInfo(partial.transferSyntaxUID).deflated) {
        throw new AttributeCorrectionError('impossible', 'the object is stored deflated: corrected attributes cannot be spliced into it');
      }
      const elements = partial.dataset.elements;
      for (; scanned < elements.length; scanned++) {
        if (elements[scanned].tag > OriginalAttributesSequence) { boundary = elements[scanned]; break; }
      }
      if (!boundary && held > maxHead) throw new AttributeCorrectionError('impossible', `the object's header is longer than ${maxHead} bytes`);
    }
    const head = concat(chunks);
    const header = ended ? reader.end() : reader.partial();
    if (transferSyntaxInfo(header.transferSyntaxUID).deflated) throw new AttributeCorrectionError('impossible', 'the object is stored deflated: corrected attributes cannot be spliced into it');
    let cut = head.length;
    if (boundary) {
      cut = headerStart(head, boundary, header.littleEndian, header.explicitVR);
      header.dataset = { elements: header.dataset.elements.slice(0, header.dataset.elements.indexOf(boundary)) };
    }
    const { bytes } = correctAttributes(head.subarray(0, cut), header, changes, options);
    yield bytes;
    if (cut < head.length) yield head.subarray(cut);
    if (ended) return;
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await it.return?.();
  }
}

/** Where a top-level element's header starts, told by finding its tag 8 or 12 bytes before its value. */
function headerStart(bytes: Uint8Array, el: DataElement, littleEndian: boolean, explicitVR: boolean): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tagAt = (at: number) => at >= 0 && at + 4 <= bytes.length && ((view.getUint16(at, littleEndian) << 16) | view.getUint16(at + 2, littleEndian)) >>> 0;
  if (tagAt(el.offset - 8) === el.tag) return el.offset - 8;
  if (explicitVR && tagAt(el.offset - 12) === el.tag) return el.offset - 12;
  throw new AttributeCorrectionError('impossible', `the header of the element at offset ${el.offset} cannot be found`);
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
