import type { Readable } from 'node:stream';
import type { ByteRange, PositionalSource } from './blob-store.ts';
import type { InstanceRecord } from './index-store.ts';

/**
 * An instance to read: its index record (no lookup; the caller has just found it) or its SOP Instance UID
 * (looked up, AtriumError not-found when absent). Never a blob key: where an instance's bytes live, and what
 * is done to them on the way out, is the retrieve service's business (archive/retrieve.ts).
 */
export type InstanceRef = InstanceRecord | string;

/** Bytes of a stored instance: a stream, or a positional source the caller's own buffers are filled from. */
export type StoredBytes = AsyncIterable<Uint8Array> | PositionalSource;

/**
 * The one read path of stored instances (RetrieveService implements it). A port so that areas beside the
 * archive (imaging/) read through it without importing archive/ at run time. Ranges stay ranges: nothing
 * here reads more of the object than was asked, nor buffers what it streams.
 */
export interface StoredInstanceReader {
  /** Streams the stored object, or the inclusive-exclusive byte range [start, end) of it. */
  readInstance(instance: InstanceRef, range?: ByteRange): Promise<Readable>;
  /** The [offset, length] pieces of the stored object one after the other, each by a ranged read. */
  readInstancePieces(instance: InstanceRef, pieces: [number, number][]): AsyncIterable<Uint8Array>;
  /**
   * The stored object, or these [offset, length] pieces of it, read by position into the reader's own
   * buffers where the store allows (the filesystem), else streamed by ranged reads (S3). Whoever takes a
   * positional source closes its reader.
   */
  openInstanceBytes(instance: InstanceRef, pieces?: [number, number][]): Promise<StoredBytes>;
}
