// Streaming reader for DICOM Part 10 files (PS3.10 Section 7) and bare data sets.
//
// Written by hand rather than wrapping dcmjs, dicom-parser or similar: those parse from a complete in-memory
// buffer, so an archive ingesting multi-gigabyte objects would have to hold them whole. This reader is a push
// parser: it keeps only element headers and values up to `bulkThreshold`, and skips longer values and
// encapsulated fragments by counting bytes, recording where they are so that the caller (who is streaming
// the bytes to storage anyway) can find them later.
//
// Offsets: every offset is an absolute position in the stream as fed, except for Deflated Explicit VR Little
// Endian (PS3.5 A.5) whose data set is compressed: there, offsets of data set elements count inflated bytes
// starting at `datasetOffset` (the position of the first compressed byte), i.e. they are positions in the
// virtual stream "file meta + inflated data set".
import pako from 'pako';
import type { Inflate } from 'pako';
import { ByteQueue } from './byte-queue.ts';
import { DatasetParser } from './dataset-parser.ts';
import { findElement, stringValue } from './dataset.ts';
import type { DataElement, DataSet } from './dataset.ts';
import { DicomParseError } from './errors.ts';
import { TransferSyntaxUID } from './tags.ts';
import { ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, transferSyntaxInfo } from './transfer-syntax.ts';
import { LONG_HEADER_VRS, VALID_VRS } from './vr.ts';

export { DicomParseError } from './errors.ts';
export type { DicomParseErrorCode } from './errors.ts';

export interface Part10Header {
  /** 128-byte preamble + "DICM" (PS3.10 7.1). */
  hasPreamble: boolean;
  /** Group 0002, always Explicit VR Little Endian; null when the stream has none. */
  fileMeta: DataSet | null;
  /** From the meta, or detected for streams without meta. */
  transferSyntaxUID: string;
  /** Where the data set starts in the stream. */
  datasetOffset: number;
  dataset: DataSet;
  littleEndian: boolean;
  explicitVR: boolean;
  /** Recoverable deviations from the standard that were tolerated. */
  warnings: string[];
}

export interface Part10ReaderOptions {
  /** Values longer than this many bytes are not kept (default 64 KiB). */
  bulkThreshold?: number;
}

type Phase = 'start' | 'meta' | 'dataset' | 'ended';

const DEFAULT_BULK_THRESHOLD = 64 * 1024;
// Inflated output is produced in slices of this size so a highly compressible input chunk cannot balloon.
const INFLATE_INPUT_SLICE = 16 * 1024;

export class Part10Reader {
  private readonly bulkThreshold: number;
  private readonly raw = new ByteQueue(0);
  private phase: Phase = 'start';
  private failure: DicomParseError | undefined;
  private hasPreamble = false;
  private fileMeta: DataSet | null = null;
  private metaParser: DatasetParser | undefined;
  private parser: DatasetParser | undefined;
  private inflater: Inflate | undefined;
  private inflated: ByteQueue | undefined;
  private readonly dataset: DataSet = { elements: [] };
  private transferSyntaxUID = '';
  private datasetOffset = 0;
  private explicitVR = true;
  private littleEndian = true;
  private readonly warnings: string[] = [];
  private pixelDataElement: DataElement | undefined;
  private seen = 0;

  constructor(options: Part10ReaderOptions = {}) {
    this.bulkThreshold = options.bulkThreshold ?? DEFAULT_BULK_THRESHOLD;
  }

  get bytesSeen(): number {
    return this.seen;
  }

  /** Set as soon as the Pixel Data (7FE0,0010) element header has been read: everything before it is parsed. */
  get pixelData(): DataElement | undefined {
    return this.pixelDataElement;
  }

  push(chunk: Uint8Array): void {
    this.guard(() => {
      if (this.phase === 'ended') throw new DicomParseError('ENDED', 'push() after end()', this.seen);
      this.seen += chunk.length;
      if (this.inflater) this.inflate(chunk, false);
      else this.raw.push(chunk);
      this.run(false);
    });
  }

  end(): Part10Header {
    return this.guard(() => {
      if (this.phase === 'ended') throw new DicomParseError('ENDED', 'end() called twice', this.seen);
      if (this.inflater) this.inflate(new Uint8Array(0), true);
      this.run(true);
      if (this.phase === 'meta') this.finishMeta(true);
      this.parser!.finish();
      this.phase = 'ended';
      return {
        hasPreamble: this.hasPreamble,
        fileMeta: this.fileMeta,
        transferSyntaxUID: this.transferSyntaxUID,
        datasetOffset: this.datasetOffset,
        dataset: this.dataset,
        littleEndian: this.littleEndian,
        explicitVR: this.explicitVR,
        warnings: this.warnings,
      };
    });
  }

  /**
   * What has been read so far, whether or not the stream parsed: the File Meta and the data set up to the
   * element where reading stopped (a lenient dump of a broken object shows them). The same objects the
   * reader fills: take it once reading is over.
   */
  partial(): Part10Header {
    return {
      hasPreamble: this.hasPreamble, fileMeta: this.fileMeta, transferSyntaxUID: this.transferSyntaxUID, datasetOffset: this.datasetOffset,
      dataset: this.dataset, littleEndian: this.littleEndian, explicitVR: this.explicitVR, warnings: this.warnings,
    };
  }

  /** The error that stopped the reader, if one did. */
  get error(): DicomParseError | undefined {
    return this.failure;
  }

  /** A failed reader stays failed: later calls rethrow the first error instead of parsing garbage. */
  private guard<T>(fn: () => T): T {
    if (this.failure) throw this.failure;
    try {
      return fn();
    } catch (e) {
      if (e instanceof DicomParseError) this.failure = e;
      throw e;
    }
  }

  private run(eof: boolean): void {
    if (this.phase === 'start' && !this.detectStart(eof)) return;
    if (this.phase === 'meta') {
      this.metaParser!.pump();
      if (!this.metaParser!.stopped) return;
      this.finishMeta(false);
    }
    if (this.phase === 'dataset') this.parser!.pump();
  }

  /** Decides between preamble, bare meta, and bare data set (PS3.10 7.1; files without meta per PS3.5 A.1). */
  private detectStart(eof: boolean): boolean {
    const q = this.raw;
    const head = q.peek(Math.min(q.length, 132));
    if (!head || (head.length < 132 && !eof)) return false;
    const ascii = (at: number) => String.fromCharCode(...head.subarray(at, at + 4));
    if (head.length >= 132 && ascii(128) === 'DICM') {
      this.hasPreamble = true;
      q.skip(132);
      return this.startMeta();
    }
    if (head.length >= 4 && ascii(0) === 'DICM') {
      // Prefix without the 128-byte preamble: not conformant, but unambiguous.
      this.warnings.push('"DICM" prefix without preamble');
      q.skip(4);
      return this.startMeta();
    }
    if (head.length >= 8 && head[0] === 0x02 && head[1] === 0x00 && VALID_VRS.has(String.fromCharCode(head[4], head[5]))) {
      this.warnings.push('file meta without preamble');
      return this.startMeta();
    }
    const guess = detectEncoding(head);
    if (!guess) {
      throw new DicomParseError('NOT_DICOM', `not DICOM: no "DICM" prefix at offset 128 and no recognizable data element at offset 0`, 0);
    }
    this.startDataset(guess.uid);
    return true;
  }

  private startMeta(): boolean {
    this.fileMeta = { elements: [], littleEndian: true };
    this.metaParser = new DatasetParser(this.raw, this.fileMeta, {
      explicitVR: true, littleEndian: true, bulkThreshold: Math.max(this.bulkThreshold, 64 * 1024), metaOnly: true,
      warnings: this.warnings,
    });
    this.phase = 'meta';
    return true;
  }

  private finishMeta(eof: boolean): void {
    if (eof) this.metaParser!.finish();
    const meta = this.fileMeta!;
    if (meta.elements.length === 0) {
      // "DICM" directly followed by a data set: detect its encoding as for files without meta.
      this.fileMeta = null;
      const head = this.raw.peek(Math.min(this.raw.length, 8));
      const guess = head && detectEncoding(head);
      if (!guess) throw new DicomParseError('NOT_DICOM', `no file meta and no recognizable data element at offset ${this.raw.position}`, this.raw.position);
      this.startDataset(guess.uid);
      return;
    }
    const ts = findElement(meta, TransferSyntaxUID) ? stringValue(meta, TransferSyntaxUID) : undefined;
    if (!ts) {
      throw new DicomParseError('MISSING_TRANSFER_SYNTAX', `file meta information has no (0002,0010) TransferSyntaxUID ` +
        `(data set at offset ${this.raw.position})`, this.raw.position, TransferSyntaxUID);
    }
    this.startDataset(ts);
  }

  private startDataset(uid: string): void {
    const info = transferSyntaxInfo(uid);
    this.transferSyntaxUID = uid;
    this.explicitVR = info.explicitVR;
    this.littleEndian = info.littleEndian;
    this.datasetOffset = this.raw.position;
    let q = this.raw;
    if (info.deflated) {
      this.inflated = new ByteQueue(this.datasetOffset);
      this.inflater = new pako.Inflate({ raw: true, chunkSize: 64 * 1024 });
      this.inflater.onData = (out: Uint8Array) => this.inflated!.push(out);
      q = this.inflated;
      const rest = this.raw.drain();
      for (const c of rest) this.inflate(c, false);
    }
    this.parser = new DatasetParser(q, this.dataset, {
      explicitVR: info.explicitVR, littleEndian: info.littleEndian, bulkThreshold: this.bulkThreshold,
      warnings: this.warnings, onPixelData: (el) => { this.pixelDataElement = el; },
    });
    this.phase = 'dataset';
  }

  private inflate(chunk: Uint8Array, last: boolean): void {
    const z = this.inflater!;
    for (let i = 0; i < chunk.length || (last && i === 0); i += INFLATE_INPUT_SLICE) {
      if (z.ended) break; // bytes after the end of the deflate stream are ignored
      const slice = chunk.subarray(i, i + INFLATE_INPUT_SLICE);
      z.push(slice, last && i + INFLATE_INPUT_SLICE >= chunk.length);
      if (z.err) {
        const code = last && z.err === -5 ? 'TRUNCATED' : 'DEFLATE_ERROR';
        throw new DicomParseError(code, `deflated data set: ${z.msg || 'unexpected end of stream'} ` +
          `(after ${this.seen - this.datasetOffset} compressed bytes)`, this.datasetOffset);
      }
      // Parse each slice's output right away so the inflated queue holds at most one slice's worth of bulk data.
      if (this.phase === 'dataset') this.parser!.pump();
    }
  }
}

/**
 * Encoding of a data set without file meta, guessed from its first element as DCMTK and pydicom do: a valid
 * VR at bytes 4-5 means Explicit VR; Implicit VR Big Endian was retired and is not detected.
 */
function detectEncoding(b: Uint8Array): { uid: string } | undefined {
  if (b.length < 8) return undefined;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const groupLE = dv.getUint16(0, true);
  const groupBE = dv.getUint16(0, false);
  const vr = String.fromCharCode(b[4], b[5]);
  const explicit = VALID_VRS.has(vr);
  // Big endian data sets start with low groups (0008, 0010...), whose little endian reading has a zero low
  // byte (0800, 1000...); anything else is read as little endian, by far the common case.
  const le = !(explicit && (groupLE & 0xff) === 0 && groupBE < groupLE);
  const group = le ? groupLE : groupBE;
  if (group < 0x0002 || group > 0x7fe0) return undefined;
  if (explicit) {
    if (LONG_HEADER_VRS.has(vr) && (b[6] !== 0 || b[7] !== 0)) return undefined;
    return { uid: le ? ExplicitVRLittleEndian : ExplicitVRBigEndian };
  }
  const length = dv.getUint32(4, true);
  if (length > 0x00ffffff && length !== 0xffffffff) return undefined;
  return { uid: ImplicitVRLittleEndian };
}
