// Incremental data set parser (PS3.5 Section 7): consumes whatever bytes a ByteQueue holds and resumes when
// more arrive. Nesting is an explicit stack of frames rather than recursion so that parsing can stop at any
// byte and resume on the next push without re-reading anything.
import type { ByteQueue } from './byte-queue.ts';
import { UNDEFINED_LENGTH } from './dataset.ts';
import type { DataElement, DataSet } from './dataset.ts';
import { lookupTag, vrOf } from './dictionary.ts';
import { DicomParseError, describeTag } from './errors.ts';
import { Item, ItemDelimitationItem, PixelData, SequenceDelimitationItem, formatTag } from './tags.ts';
import { LONG_HEADER_VRS, VALID_VRS, swapBytes, swapUnit } from './vr.ts';

export interface ParserOptions {
  explicitVR: boolean;
  littleEndian: boolean;
  /** Values longer than this are skipped, not kept. */
  bulkThreshold: number;
  /** Parse File Meta Information: stop before the first top-level element outside group 0002. */
  metaOnly?: boolean;
  /** Called once the header of the top-level Pixel Data element has been read. */
  onPixelData?: (el: DataElement) => void;
  /** Collects recoverable oddities. */
  warnings?: string[];
}

interface DataSetFrame {
  kind: 'ds';
  ds: DataSet;
  /** Absolute end offset for defined-length items; undefined for the root and undefined-length items. */
  end?: number;
  isItem: boolean;
  explicitVR: boolean;
  littleEndian: boolean;
}
interface SequenceFrame {
  kind: 'seq';
  el: DataElement;
  end?: number;
  explicitVR: boolean;
  littleEndian: boolean;
}
interface FragmentsFrame {
  kind: 'frag';
  el: DataElement;
  littleEndian: boolean;
  sawOffsetTable: boolean;
}
type Frame = DataSetFrame | SequenceFrame | FragmentsFrame;

interface Pending {
  el: DataElement;
  keep: boolean;
  remaining: number;
  declared: number;
  /** The value is the Basic Offset Table item of encapsulated Pixel Data. */
  offsetTable: boolean;
  /** A UN value read with its dictionary VR in a Big Endian data set: swap it from Little Endian by this unit. */
  swapUnit?: number;
}

// Basic Offset Tables are kept whatever the bulk threshold (they are needed to locate frames) up to this size:
// 4 bytes per frame, so this allows 4M frames.
const MAX_OFFSET_TABLE = 16 * 1024 * 1024;
// A value that is not bulk data by nature and still claims more than this is garbage (PS3.5 has no VR but the
// binary and unlimited-text ones that can hold this much).
const SANE_NON_BULK_LENGTH = 1024 * 1024;
// Sequences nested deeper than this are refused. The parser has no limit of its own (an explicit stack), but
// what reads the data set afterwards recurses (the DICOM JSON model, JSON.stringify, the writers): 20,000
// nested undefined-length sequences, 320 KB of input, overflowed the call stack of an import. Real objects
// nest a handful of levels (SR content trees a few dozen at most).
export const MAX_SEQUENCE_DEPTH = 128;
const BULK_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN', 'UT', 'UC', 'UR', 'LT', 'ST']);

export class DatasetParser {
  readonly root: DataSet;
  /** metaOnly: the next top-level element is not in group 0002. */
  stopped = false;
  private readonly q: ByteQueue;
  private readonly opts: ParserOptions;
  private readonly stack: Frame[];
  private pending: Pending | undefined;
  private unReinterpreted = 0;

  constructor(q: ByteQueue, root: DataSet, opts: ParserOptions) {
    this.q = q;
    this.root = root;
    this.opts = opts;
    root.littleEndian = opts.littleEndian;
    this.stack = [{ kind: 'ds', ds: root, isItem: false, explicitVR: opts.explicitVR, littleEndian: opts.littleEndian }];
  }

  /** Parses as far as the buffered bytes allow. */
  pump(): void {
    for (;;) {
      if (this.pending) {
        if (!this.advancePending(this.pending)) return;
        continue;
      }
      const f = this.stack[this.stack.length - 1];
      if (f.kind !== 'frag' && f.end !== undefined && this.q.position >= f.end) {
        this.stack.pop();
        continue;
      }
      const progressed = f.kind === 'ds' ? this.readElement(f) : f.kind === 'seq' ? this.readItem(f) : this.readFragment(f);
      if (!progressed) return;
    }
  }

  /** Validates that the stream may end here. */
  finish(): void {
    const q = this.q;
    const p = this.pending;
    if (p) {
      const present = p.keep ? q.length : p.declared - p.remaining;
      const what = p.offsetTable ? 'Basic Offset Table' : p.el.encapsulated ? 'fragment' : 'value';
      const absurd = !p.offsetTable && !BULK_VRS.has(p.el.vr) && p.declared > SANE_NON_BULK_LENGTH;
      throw new DicomParseError(
        absurd ? 'ABSURD_LENGTH' : 'TRUNCATED',
        `${absurd ? 'absurd length' : 'truncated'} ${what} of ${describeTag(p.el.tag)} (${p.el.vr}) at offset ${p.el.offset}: ` +
          `${p.declared} bytes declared, ${present} present`,
        p.el.offset, p.el.tag);
    }
    if (q.length > 0 && !this.stopped) {
      throw new DicomParseError('TRUNCATED', `truncated element header at offset ${q.position}: ${q.length} bytes present`, q.position);
    }
    for (let i = this.stack.length - 1; i > 0; i--) {
      const f = this.stack[i];
      if (f.kind === 'ds' && f.end === undefined && f.isItem) {
        throw new DicomParseError('TRUNCATED', `stream ended inside an undefined-length item at offset ${q.position}`, q.position);
      }
      if (f.kind !== 'ds') {
        throw new DicomParseError('TRUNCATED', `stream ended inside ${f.kind === 'frag' ? 'encapsulated' : 'sequence'} ` +
          `${describeTag(f.el.tag)} starting at offset ${f.el.offset}`, q.position, f.el.tag);
      }
      // A defined-length item that is not complete.
      throw new DicomParseError('TRUNCATED', `stream ended inside an item ending at offset ${f.end} (at ${q.position})`, q.position);
    }
  }

  private advancePending(p: Pending): boolean {
    if (p.keep) {
      const bytes = this.q.read(p.remaining);
      if (!bytes) return false;
      if (p.offsetTable) p.el.encapsulated!.basicOffsetTable = bytes;
      else p.el.value = p.swapUnit ? swapBytes(bytes, p.swapUnit) : bytes;
    } else {
      p.remaining -= this.q.skip(p.remaining);
      if (p.remaining > 0) return false;
    }
    this.pending = undefined;
    return true;
  }

  private readTag(b: Uint8Array, le: boolean): number {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return ((dv.getUint16(0, le) << 16) | dv.getUint16(2, le)) >>> 0;
  }

  private u32(b: Uint8Array, at: number, le: boolean): number {
    return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, le);
  }

  private checkWithin(end: number | undefined, valueEnd: number, tag: number, at: number): void {
    if (end !== undefined && valueEnd > end) {
      throw new DicomParseError('LENGTH_OVERFLOW', `${describeTag(tag)} at offset ${at} ends at ${valueEnd}, ` +
        `beyond the end of its enclosing item or sequence at ${end}`, at, tag);
    }
  }

  private readElement(f: DataSetFrame): boolean {
    const q = this.q;
    const b = q.peek(8);
    if (!b) return false;
    const start = q.position;
    const tag = this.readTag(b, f.littleEndian);
    if (tag >>> 16 === 0xfffe) return this.readDelimiterInDataSet(f, tag, start);
    if (this.opts.metaOnly && f.ds === this.root && tag >>> 16 !== 0x0002) {
      this.stopped = true;
      return false;
    }
    let vr: string;
    let length: number;
    let headerLength = 8;
    const vrText = String.fromCharCode(b[4], b[5]);
    if (f.explicitVR && VALID_VRS.has(vrText)) {
      vr = vrText;
      if (LONG_HEADER_VRS.has(vr)) {
        const b12 = q.peek(12);
        if (!b12) return false;
        length = this.u32(b12, 8, f.littleEndian);
        headerLength = 12;
      } else {
        length = new DataView(b.buffer, b.byteOffset, 8).getUint16(6, f.littleEndian);
      }
    } else if (f.explicitVR && !this.opts.metaOnly) {
      const shown = Array.from(b.subarray(4, 6), (x) => x.toString(16).padStart(2, '0')).join(' ');
      throw new DicomParseError('INVALID_VR', `invalid VR (bytes ${shown}) for ${describeTag(tag)} at offset ${start}`, start, tag);
    } else {
      // Implicit VR; also File Meta Information wrongly written in Implicit VR, which DCMTK and pydicom accept.
      if (f.explicitVR) this.opts.warnings?.push(`${formatTag(tag)} at offset ${start}: implicit VR in file meta`);
      vr = vrOf(tag);
      length = this.u32(b, 4, f.littleEndian);
    }
    q.skip(headerLength);
    const offset = q.position;
    const el: DataElement = { tag, vr, length, offset };
    // UN of a tag the dictionary knows: a gateway converted Implicit VR to Explicit without knowing the VRs.
    // The value is Implicit VR Little Endian encoded whatever the transfer syntax (PS3.5 6.2.2), so it is read
    // with the dictionary VR, as DCMTK and pydicom do. Private data elements stay UN.
    const known = vr === 'UN' && f.explicitVR ? lookupTag(tag)?.vr : undefined;
    const reinterpret = known !== undefined && known !== 'UN' ? known : undefined;
    if (reinterpret) {
      if (this.unReinterpreted++ === 0) {
        this.opts.warnings?.push(`${formatTag(tag)} at offset ${start}: VR UN read as ${reinterpret}, the dictionary VR (PS3.5 6.2.2)`);
      }
      el.vr = tag === PixelData && length === UNDEFINED_LENGTH ? 'OB' : reinterpret;
    }
    f.ds.elements.push(el);
    if (tag === PixelData && f.ds === this.root) this.opts.onPixelData?.(el);

    if (reinterpret && length === UNDEFINED_LENGTH && tag === PixelData) return this.startFragments(f, el);
    if (reinterpret === 'SQ' && length !== UNDEFINED_LENGTH) {
      this.checkWithin(f.end, offset + length, tag, start);
      el.items = [];
      this.stack.push({ kind: 'seq', el, end: offset + length, explicitVR: false, littleEndian: true });
      return true;
    }

    if (length === UNDEFINED_LENGTH) {
      if (vr === 'SQ' || vr === 'UN' || !f.explicitVR) {
        // Explicit UN of undefined length holds a sequence in Implicit VR LE (PS3.5 6.2.2); in Implicit VR only
        // SQ may have undefined length (PS3.5 7.1.3), so an unknown (private) tag with it is a sequence too.
        const implicitItems = vr === 'UN' && f.explicitVR;
        if (implicitItems && el.vr !== 'SQ') el.vr = 'UN'; // items under a tag the dictionary does not call SQ
        if (!f.explicitVR && vr !== 'SQ' && tag !== PixelData) el.vr = 'SQ';
        if (tag === PixelData && !f.explicitVR) return this.startFragments(f, el);
        el.items = [];
        this.checkDepth(tag, start);
        this.stack.push({
          kind: 'seq', el,
          explicitVR: implicitItems ? false : f.explicitVR,
          littleEndian: implicitItems ? true : f.littleEndian,
        });
        return true;
      }
      return this.startFragments(f, el);
    }
    this.checkWithin(f.end, offset + length, tag, start);
    if (vr === 'SQ') {
      el.items = [];
      this.checkDepth(tag, start);
      this.stack.push({ kind: 'seq', el, end: offset + length, explicitVR: f.explicitVR, littleEndian: f.littleEndian });
      return true;
    }
    const keep = length <= this.opts.bulkThreshold;
    if (!keep) el.bulk = true;
    this.pending = { el, keep, remaining: length, declared: length, offsetTable: false };
    if (reinterpret && !f.littleEndian && swapUnit(el.vr) > 1) this.pending.swapUnit = swapUnit(el.vr);
    return true;
  }

  private checkDepth(tag: number, start: number): void {
    let depth = 0;
    for (const frame of this.stack) if (frame.kind === 'seq') depth++;
    if (depth >= MAX_SEQUENCE_DEPTH) {
      throw new DicomParseError('NESTING_TOO_DEEP', `${describeTag(tag)} at offset ${start} opens a sequence nested ${depth + 1} deep; at most ${MAX_SEQUENCE_DEPTH} levels are read`, start, tag);
    }
  }

  private startFragments(f: DataSetFrame, el: DataElement): boolean {
    // Encapsulated format (PS3.5 A.4): an offset table item, then one item per fragment, then a delimiter.
    el.encapsulated = { basicOffsetTable: new Uint8Array(0), fragments: [] };
    this.stack.push({ kind: 'frag', el, littleEndian: f.littleEndian, sawOffsetTable: false });
    return true;
  }

  private readDelimiterInDataSet(f: DataSetFrame, tag: number, start: number): boolean {
    const q = this.q;
    if (tag === ItemDelimitationItem && f.isItem && f.end === undefined) {
      q.skip(8);
      this.stack.pop();
      return true;
    }
    if (tag === SequenceDelimitationItem && f.ds === this.root && !this.opts.metaOnly) {
      // A stray delimiter after a defined-length sequence, written by some DICOMDIR creators; DCMTK skips it.
      this.opts.warnings?.push(`stray sequence delimiter at offset ${start} skipped`);
      q.skip(8);
      return true;
    }
    throw new DicomParseError('DELIMITER_MISMATCH',
      `unexpected ${describeTag(tag)} at offset ${start} in a ${f.isItem ? (f.end === undefined ? 'undefined' : 'defined') + '-length item' : 'data set'}`,
      start, tag);
  }

  private readItem(f: SequenceFrame): boolean {
    const q = this.q;
    const b = q.peek(8);
    if (!b) return false;
    const start = q.position;
    const tag = this.readTag(b, f.littleEndian);
    const length = this.u32(b, 4, f.littleEndian);
    if (tag === Item) {
      q.skip(8);
      const ds: DataSet = { elements: [], littleEndian: f.littleEndian };
      f.el.items!.push(ds);
      const frame: DataSetFrame = { kind: 'ds', ds, isItem: true, explicitVR: f.explicitVR, littleEndian: f.littleEndian };
      if (length !== UNDEFINED_LENGTH) {
        frame.end = q.position + length;
        if (f.end !== undefined && frame.end > f.end) {
          // Item lengths left stale by editing tools (e.g. DICOMDIR offsets removed); like DCMTK, trust the
          // enclosing sequence's length, which bounds what can belong to it.
          this.opts.warnings?.push(`item at offset ${start} overruns its sequence; truncated to offset ${f.end}`);
          frame.end = f.end;
        }
      }
      this.stack.push(frame);
      return true;
    }
    if (tag === SequenceDelimitationItem && f.end === undefined) {
      q.skip(8);
      this.stack.pop();
      return true;
    }
    throw new DicomParseError('DELIMITER_MISMATCH',
      `expected an item in sequence ${describeTag(f.el.tag)} at offset ${start}, found ${describeTag(tag)}`, start, tag);
  }

  private readFragment(f: FragmentsFrame): boolean {
    const q = this.q;
    const b = q.peek(8);
    if (!b) return false;
    const start = q.position;
    const tag = this.readTag(b, f.littleEndian);
    const length = this.u32(b, 4, f.littleEndian);
    if (tag === SequenceDelimitationItem) {
      q.skip(8);
      this.stack.pop();
      return true;
    }
    if (tag !== Item || length === UNDEFINED_LENGTH) {
      throw new DicomParseError('DELIMITER_MISMATCH', `expected a fragment item of ${describeTag(f.el.tag)} at offset ${start}, ` +
        `found ${describeTag(tag)}${length === UNDEFINED_LENGTH ? ' with undefined length' : ''}`, start, tag);
    }
    q.skip(8);
    if (!f.sawOffsetTable) {
      f.sawOffsetTable = true;
      if (length > MAX_OFFSET_TABLE) {
        throw new DicomParseError('ABSURD_LENGTH', `Basic Offset Table of ${length} bytes at offset ${start}`, start, f.el.tag);
      }
      this.pending = { el: f.el, keep: true, remaining: length, declared: length, offsetTable: true };
      return true;
    }
    f.el.encapsulated!.fragments.push({ offset: q.position, length });
    this.pending = { el: f.el, keep: false, remaining: length, declared: length, offsetTable: false };
    return true;
  }
}
