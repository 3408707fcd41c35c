// A lenient header dump, as dcmdump prints one, of objects that may well be broken (quarantined ones: truncated,
// a damaged preamble, a bare data set, an invalid VR halfway): the streaming Part10Reader reads as far as it
// can, and whatever it had read when it stopped is shown, with where and why it stopped. No I/O: the caller
// pushes the bytes and stops when push() says that nothing more will be read.
import { DicomParseError, Part10Reader } from './part10-reader.ts';
import type { DataElement, DataSet } from './dataset.ts';
import { characterSetOf, elementStrings, UNDEFINED_LENGTH } from './dataset.ts';
import { keywordOf } from './dictionary.ts';
import { formatTag } from './tags.ts';
import { BINARY_VRS, VALID_VRS } from './vr.ts';

export interface DumpedElement {
  /** "(0010,0010)". */
  tag: string;
  vr: string;
  /** The dictionary keyword; '' for private and unknown tags. */
  keyword: string;
  /** The value length as encoded; 4294967295 (FFFFFFFFH) for undefined length. */
  length: number;
  /** The value as text, shortened; binary and bulk values as "<n bytes>", sequences as "<n items>". */
  value: string;
  /** 0 for the File Meta and the data set, 1 inside an item of a sequence, and so on. */
  depth: number;
  /** Inside a sequence: which item (from 1) the element is in. */
  item?: number;
  /** Where the value starts in the stream (for deflated data sets, in the inflated stream). */
  offset: number;
}

export interface HeaderDump {
  elements: DumpedElement[];
  /** Why and where reading stopped before the end; absent when the whole object was read. */
  stoppedAt?: string;
  /** What was tolerated ("DICM" without preamble, a guessed encoding...). */
  warnings: string[];
  /** From the File Meta, or the encoding guessed for a bare data set; null when none was found. */
  transferSyntaxUid: string | null;
}

export interface HeaderDumpOptions {
  /** Longer values are cut to this many characters (default 200). */
  maxValueLength?: number;
  /** At most this many elements are dumped (default 5000); reading stops there. */
  maxElements?: number;
  /** Reading stops once this many bytes of Pixel Data would be skipped (default 64 MiB): what follows is rarely anything. */
  maxPixelDataBytes?: number;
}

const PREAMBLE = 128;
/** Enough of the start to tell where reading starts: the preamble, "DICM" and the first File Meta element header. */
const START_BYTES = PREAMBLE + 4 + 12;

/**
 * Push the object's bytes in order; `push` answers false once reading has stopped (an error, or the limits),
 * then call `end()` for the dump. A damaged preamble is stepped over: File Meta at offset 132 without "DICM"
 * before it is read from there, and an object that does not start like DICOM is read again from offset 128
 * (a data set after a preamble without "DICM").
 */
export class HeaderDumper {
  readonly #options: Required<HeaderDumpOptions>;
  #reader: Part10Reader | undefined;
  /** Where the current reader's byte 0 is in the stream. */
  #base = 0;
  /** The first bytes, until the reader starts (it starts once it is known where). */
  #head: Uint8Array[] = [];
  #headLength = 0;
  #stopped: string | undefined;
  readonly #warnings: string[] = [];

  constructor(options: HeaderDumpOptions = {}) {
    this.#options = { maxValueLength: options.maxValueLength ?? 200, maxElements: options.maxElements ?? 5000, maxPixelDataBytes: options.maxPixelDataBytes ?? 64 * 1024 * 1024 };
  }

  /** Feeds bytes; false when nothing more will be read (the caller may stop reading the object). */
  push(chunk: Uint8Array): boolean {
    if (this.#stopped !== undefined) return false;
    if (!this.#reader) {
      this.#head.push(chunk);
      this.#headLength += chunk.length;
      if (this.#headLength >= START_BYTES) this.#start();
    } else {
      this.#feed(() => this.#reader!.push(chunk));
    }
    const reader = this.#reader;
    if (reader && this.#stopped === undefined) {
      const pixel = reader.pixelData;
      if (pixel && reader.bytesSeen - pixel.offset > this.#options.maxPixelDataBytes) {
        const size = pixel.length === UNDEFINED_LENGTH ? 'encapsulated' : `${pixel.length} bytes`;
        this.#stopped = `stopped reading inside ${formatTag(pixel.tag)} PixelData (${size}, from offset ${pixel.offset + this.#base}): the rest of the object is not read`;
      } else if (reader.partial().dataset.elements.length > this.#options.maxElements) {
        this.#stopped = `more than ${this.#options.maxElements} elements: the first ${this.#options.maxElements} are shown`;
      }
    }
    return this.#stopped === undefined;
  }

  end(): HeaderDump {
    if (!this.#reader && this.#stopped === undefined) this.#start();
    if (this.#stopped === undefined) this.#feed(() => { this.#reader!.end(); });
    const header = this.#reader?.partial();
    const elements: DumpedElement[] = [];
    const limit = this.#options.maxElements;
    let cut = false;
    const add = (el: DumpedElement) => {
      if (elements.length < limit) elements.push(el);
      else cut = true;
    };
    if (header?.fileMeta) this.#walk(header.fileMeta, 0, undefined, undefined, add);
    if (header) this.#walk(header.dataset, 0, undefined, characterSetOf(header.dataset), add);
    let stoppedAt = this.#stopped;
    if (cut && stoppedAt === undefined) stoppedAt = `more than ${limit} elements: the first ${limit} are shown`;
    return {
      elements,
      ...(stoppedAt !== undefined ? { stoppedAt } : {}),
      warnings: [...this.#warnings, ...(header?.warnings ?? [])],
      transferSyntaxUid: header?.transferSyntaxUID || null,
    };
  }

  /** Decides where reading starts, from the first bytes, and hands them to the reader. */
  #start(): void {
    const head = concat(this.#head);
    this.#head = [];
    const ascii = (at: number, n: number) => String.fromCharCode(...head.subarray(at, at + n));
    // "DICM" damaged or missing, File Meta Information right where it belongs (group 0002, explicit VR).
    const metaAt132 = head.length >= PREAMBLE + 12 && ascii(PREAMBLE, 4) !== 'DICM'
      && head[PREAMBLE + 4] === 0x02 && head[PREAMBLE + 5] === 0x00 && VALID_VRS.has(ascii(PREAMBLE + 8, 2));
    if (metaAt132) {
      this.#warnings.push(`no "DICM" at offset 128 ("${printable(ascii(PREAMBLE, 4))}" instead): read from offset 132, where File Meta Information is`);
      this.#begin(head, PREAMBLE + 4);
      return;
    }
    this.#begin(head, 0);
    // Not DICOM from byte 0: perhaps a data set after a 128-byte preamble without "DICM".
    if (this.#stopped?.startsWith('NOT_DICOM') && head.length > PREAMBLE + 8) {
      const first = this.#stopped;
      this.#stopped = undefined;
      this.#begin(head, PREAMBLE);
      if ((this.#stopped as string | undefined)?.startsWith('NOT_DICOM')) {
        this.#stopped = first;
        this.#warnings.pop();
      }
    }
  }

  #begin(head: Uint8Array, from: number): void {
    this.#reader = new Part10Reader();
    this.#base = from;
    if (from === PREAMBLE) this.#warnings.push('not DICOM from offset 0: read from offset 128 as a data set after a preamble without "DICM"');
    this.#feed(() => this.#reader!.push(head.subarray(from)));
  }

  /** Runs a reader step; a parse error stops reading, with where and why. */
  #feed(step: () => void): void {
    try {
      step();
    } catch (error) {
      if (!(error instanceof DicomParseError)) throw error;
      const base = this.#base ? ` (offsets count from byte ${this.#base} of the object)` : '';
      this.#stopped = `${error.code} at offset ${error.offset + this.#base}: ${error.message}${base}`;
    }
  }

  #walk(ds: DataSet, depth: number, item: number | undefined, characterSet: string[] | undefined, add: (el: DumpedElement) => void): void {
    const charset = depth === 0 ? characterSet : (characterSetOf(ds) ?? characterSet);
    for (const el of ds.elements) {
      add({
        tag: formatTag(el.tag), vr: el.vr, keyword: keywordOf(el.tag) ?? '', length: el.length,
        value: this.#value(el, ds.littleEndian ?? true, charset), depth, ...(item !== undefined ? { item } : {}), offset: el.offset + this.#base,
      });
      el.items?.forEach((child, i) => this.#walk(child, depth + 1, i + 1, charset, add));
    }
  }

  #value(el: DataElement, littleEndian: boolean, characterSet: string[] | undefined): string {
    if (el.items) return `<${el.items.length} item${el.items.length === 1 ? '' : 's'}>`;
    if (el.encapsulated) {
      const bytes = el.encapsulated.fragments.reduce((n, f) => n + f.length, 0);
      return `<encapsulated: ${el.encapsulated.fragments.length} fragment${el.encapsulated.fragments.length === 1 ? '' : 's'}, ${bytes} bytes>`;
    }
    if (el.bulk) return `<${el.length} bytes>`;
    if (!el.value) return '<not read>';
    if (BINARY_VRS.has(el.vr)) {
      // A short binary value is shown as dcmdump does (File Meta Information Version "00\01"); a longer one by its size.
      return el.value.length <= 16 ? Array.from(el.value, (b) => b.toString(16).padStart(2, '0')).join('\\') : `<${el.value.length} bytes>`;
    }
    let text: string;
    try {
      text = (elementStrings(el, littleEndian, characterSet) ?? []).join('\\');
    } catch {
      text = new TextDecoder('latin1').decode(el.value);
    }
    const max = this.#options.maxValueLength;
    return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
  }
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

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '.');
}
