import type { Readable } from 'node:stream';

/**
 * Where stored objects' bytes live. Keys are chosen by the caller before writing (a random id, never a
 * DICOM UID), so that S3 needs no server-side rename: a write goes straight to its final key and only
 * becomes visible when committed.
 */
export interface BlobStore {
  /** Human-readable name of the engine, for logs and stats ("fs", "s3"). */
  readonly kind: string;
  /**
   * Starts writing the object `key`. Nothing is under `key` before `commit()` starts, and it is durable only
   * once `commit()` resolves: a store may make it visible during the commit (the filesystem renames, then
   * flushes file and folder together), so a crash can leave an incomplete object that no index row names.
   */
  createWriter(key: string): Promise<BlobWriter>;
  /** Streams the object, or the inclusive-exclusive byte range [start, end). Rejects with BlobNotFoundError. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /**
   * Opens the object for positional reads into the caller's own buffers, where the store can do that cheaply
   * (the filesystem; S3 cannot, each read would be a request). Serving a study this way allocates nothing per
   * chunk: fresh 64 KiB chunks at hundreds of MB/s kept V8 in back-to-back full collections (see
   * dicomweb/multipart-writer.ts). Rejects with BlobNotFoundError.
   */
  openReader?(key: string): Promise<BlobReader>;
  /** Size and last write of a committed object, or null when there is none. */
  stat(key: string): Promise<{ size: number; modifiedAt: Date } | null>;
  /** Removes a committed object; removing a missing one is not an error. */
  delete(key: string): Promise<void>;
  /** Every committed key, in no particular order (for verify and garbage collection). */
  list(): AsyncIterable<string>;
  /**
   * Removes what crashed writers left behind (temp files, unfinished multipart uploads): everything older
   * than `olderThanMs`, and sooner whatever the store can tell belongs to a writer that no longer runs
   * (the filesystem store knows the writer's PID). Returns how many were removed. Called at start-up.
   */
  cleanupIncomplete(olderThanMs?: number): Promise<number>;
  /**
   * A cheap check that the store answers, for health pages (the filesystem: its folder is writable; S3: the
   * bucket answers a HEAD). Resolves with where the objects are (a path, a bucket and endpoint; never a
   * credential), rejects with why not.
   */
  probe(): Promise<string>;
  close(): Promise<void>;
}

/** A committed object open for reads at any position (BlobStore.openReader). */
export interface BlobReader {
  readonly size: number;
  /** Reads up to `into.length` bytes at `position`; resolves with how many (0 at or past the end). */
  read(into: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Bytes of a stored object to be read by position into the reader's user's own buffers (BlobStore.openReader):
 * the whole object, or these [offset, length] pieces in order. Whoever takes one closes its reader.
 */
export interface PositionalSource {
  reader: BlobReader;
  pieces?: [number, number][];
}

export interface ByteRange {
  start: number;
  /** Exclusive; absent means to the end of the object. */
  end?: number;
}

export interface BlobWriter {
  /**
   * Appends bytes; resolves when the store can take more (backpressure). The store may hold on to the chunk
   * until commit (to gather small chunks into large writes): the caller must not modify it afterwards.
   */
  write(chunk: Uint8Array): Promise<void>;
  /** Makes the object visible under its key and durable (fsync / completed upload); resolved: both. */
  commit(): Promise<void>;
  /** Discards everything written; safe to call after a failed write or twice. */
  abort(): Promise<void>;
  readonly bytesWritten: number;
}

export class BlobNotFoundError extends Error {
  readonly key: string;
  constructor(key: string) {
    super(`blob not found: ${key}`);
    this.name = 'BlobNotFoundError';
    this.key = key;
  }
}
