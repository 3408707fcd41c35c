import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { CompletedPart, S3ClientConfig } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { BlobNotFoundError } from '../../ports/blob-store.ts';
import type { BlobStore, BlobWriter, ByteRange } from '../../ports/blob-store.ts';
import { assertValidBlobKey, assertValidRange } from './blob-key.ts';
import { BlobWriterBase } from './blob-writer.ts';

const MiB = 1024 * 1024;
/** S3's minimum size of every part but the last. */
export const S3_MIN_PART_SIZE = 5 * MiB;
export const S3_MAX_PART_SIZE = 5 * 1024 * MiB;
export const S3_DEFAULT_PART_SIZE = 8 * MiB;
const S3_MAX_PARTS = 10_000;

/** Minimal logger (pino-compatible) for problems the store survives, such as a failed abort. */
export interface S3BlobStoreLogger {
  warn(obj: object, msg: string): void;
}

export interface S3BlobStoreConfig {
  bucket: string;
  /** Default 'us-east-1'. */
  region?: string;
  /** e.g. 'http://127.0.0.1:9000' for MinIO / s3rver; absent for AWS. */
  endpoint?: string;
  /** Absent: the SDK's default credential chain (env, profile, instance role...). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style URLs (`endpoint/bucket/key`); needed by most non-AWS servers. */
  forcePathStyle?: boolean;
  /** Key prefix inside the bucket, e.g. 'atrium/blobs'; a trailing '/' is added when missing. */
  prefix?: string;
  /** Bytes per multipart part and threshold for using multipart at all. Default 8 MiB, min 5 MiB. */
  partSize?: number;
  /**
   * Parts uploading at once per writer (1 or 2, default 1). A writer holds at most
   * `maxPartsInFlight + 1` part buffers: the in-flight ones and the one being filled.
   */
  maxPartsInFlight?: number;
  /**
   * 'WHEN_SUPPORTED' (SDK default) sends CRC checksums with uploads; 'WHEN_REQUIRED' only where the API
   * demands it, for S3-compatible servers that reject the newer checksum headers.
   */
  checksums?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  /** Use this client instead of building one (tests, custom middleware). Not destroyed by close(). */
  client?: S3Client;
  logger?: S3BlobStoreLogger;
  /** MaxKeys of each ListObjectsV2 page (default: the server's, 1000 on S3). */
  listPageSize?: number;
}

/** Counters for tests and metrics; per store, summed over its writers. */
export interface S3BlobStoreStats {
  singlePuts: number;
  multipartUploads: number;
  partsUploaded: number;
  /** Most part buffers any single writer held at the same time (filling + in flight). */
  peakPartsHeldPerWriter: number;
}

/**
 * BlobStore over an S3 bucket (AWS, MinIO, Ceph RGW, s3rver...). The object `a/b.dcm` is stored at
 * `<prefix>a/b.dcm`. Objects up to one part are sent with a single PutObject on commit; larger ones
 * with a multipart upload that only becomes visible on CompleteMultipartUpload, so nothing is
 * visible before commit either way.
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  readonly bucket: string;
  readonly prefix: string;
  readonly partSize: number;
  readonly maxPartsInFlight: number;
  readonly client: S3Client;
  readonly stats: S3BlobStoreStats = { singlePuts: 0, multipartUploads: 0, partsUploaded: 0, peakPartsHeldPerWriter: 0 };
  readonly #ownsClient: boolean;
  readonly #logger: S3BlobStoreLogger | undefined;
  readonly #listPageSize: number | undefined;
  /** What probe() names: bucket, prefix and endpoint, without credentials. */
  readonly #where: string;

  constructor(config: S3BlobStoreConfig) {
    if (!config.bucket) throw new Error('S3BlobStore: bucket is required');
    this.bucket = config.bucket;
    this.#where = `bucket ${config.bucket}${config.prefix ? ` prefix ${normalizePrefix(config.prefix)}` : ''}${config.endpoint ? ` at ${endpointOrigin(config.endpoint)}` : ''}`;
    this.prefix = normalizePrefix(config.prefix);
    this.partSize = config.partSize ?? S3_DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(this.partSize) || this.partSize < S3_MIN_PART_SIZE || this.partSize > S3_MAX_PART_SIZE) {
      throw new RangeError(`S3BlobStore: partSize must be an integer between ${S3_MIN_PART_SIZE} and ${S3_MAX_PART_SIZE}`);
    }
    this.maxPartsInFlight = config.maxPartsInFlight ?? 1;
    if (this.maxPartsInFlight !== 1 && this.maxPartsInFlight !== 2) {
      throw new RangeError('S3BlobStore: maxPartsInFlight must be 1 or 2');
    }
    this.#logger = config.logger;
    this.#listPageSize = config.listPageSize;
    if (config.client) {
      this.client = config.client;
      this.#ownsClient = false;
    } else {
      if ((config.accessKeyId === undefined) !== (config.secretAccessKey === undefined)) {
        throw new Error('S3BlobStore: give both accessKeyId and secretAccessKey, or neither');
      }
      const clientConfig: S3ClientConfig = {
        region: config.region ?? 'us-east-1',
        forcePathStyle: config.forcePathStyle ?? false,
        requestChecksumCalculation: config.checksums ?? 'WHEN_SUPPORTED',
        responseChecksumValidation: config.checksums ?? 'WHEN_SUPPORTED',
      };
      if (config.endpoint) clientConfig.endpoint = config.endpoint;
      if (config.accessKeyId !== undefined && config.secretAccessKey !== undefined) {
        clientConfig.credentials = { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey };
      }
      this.client = new S3Client(clientConfig);
      this.#ownsClient = true;
    }
  }

  async probe(): Promise<string> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    return this.#where;
  }

  /** Creates the bucket when it does not exist (first run, tests). */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const name = errorName(err);
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
    }
  }

  async createWriter(key: string): Promise<BlobWriter> {
    assertValidBlobKey(key);
    return new S3BlobWriter(this, this.prefix + key, this.#logger);
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    assertValidBlobKey(key);
    if (range) assertValidRange(range);
    const start = range?.start ?? 0;
    const end = range?.end;
    if (end !== undefined && end <= start) {
      // Empty range: S3 cannot express it, but a missing key must still reject.
      if ((await this.stat(key)) === null) throw new BlobNotFoundError(key);
      return Readable.from([]);
    }
    let rangeHeader: string | undefined;
    if (start > 0 || end !== undefined) rangeHeader = `bytes=${start}-${end === undefined ? '' : end - 1}`;
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Range: rangeHeader }),
      );
      const body = toNodeReadable(out.Body);
      if (rangeHeader !== undefined) {
        const problem = checkContentRange(out.ContentRange, start, end);
        if (problem) {
          body.destroy();
          throw new Error(`S3 GetObject ${key} ${rangeHeader}: ${problem}`);
        }
      }
      return body;
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(key);
      // 416: the object exists but `start` is at or past its end; like a file, that reads as empty.
      if (httpStatus(err) === 416 || errorName(err) === 'InvalidRange') return Readable.from([]);
      throw err;
    }
  }

  async stat(key: string): Promise<{ size: number; modifiedAt: Date } | null> {
    assertValidBlobKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return { size: out.ContentLength ?? 0, modifiedAt: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    assertValidBlobKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async *list(): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix || undefined,
          ContinuationToken: token,
          MaxKeys: this.#listPageSize,
        }),
      );
      for (const object of out.Contents ?? []) {
        if (object.Key !== undefined && object.Key.startsWith(this.prefix)) yield object.Key.slice(this.prefix.length);
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Aborts multipart uploads under the prefix initiated at least `olderThanMs` ago (left by crashed
   * writers; with the default 0 also those of writers still running, so call it at start-up). Servers
   * without ListMultipartUploads (s3rver answers 501 NotImplemented) are logged and yield 0: configure
   * a bucket lifecycle rule (AbortIncompleteMultipartUpload) there instead.
   */
  async cleanupIncomplete(olderThanMs = 0): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let out;
      try {
        out = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix || undefined,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
      } catch (err) {
        if (isUnsupported(err)) {
          this.#logger?.warn(
            { err, bucket: this.bucket },
            'S3 server does not support ListMultipartUploads; unfinished uploads are not cleaned up',
          );
          return removed;
        }
        throw err;
      }
      for (const upload of out.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId) continue;
        if (upload.Initiated && upload.Initiated.getTime() > cutoff) continue;
        try {
          await this.client.send(
            new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }),
          );
          removed++;
        } catch (err) {
          if (errorName(err) !== 'NoSuchUpload') throw err; // gone meanwhile: completed or aborted
        }
      }
      if (!out.IsTruncated) return removed;
      keyMarker = out.NextKeyMarker;
      uploadIdMarker = out.NextUploadIdMarker;
      if (keyMarker === undefined && uploadIdMarker === undefined) return removed;
    }
  }

  async close(): Promise<void> {
    if (this.#ownsClient) this.client.destroy();
  }
}

/**
 * Buffers up to one part; once more than one part's worth has been written it switches to a
 * multipart upload, keeping at most `maxPartsInFlight` UploadPart requests running. write() waits
 * while that many are running and the current buffer is full, which bounds memory to
 * (maxPartsInFlight + 1) * partSize per writer whatever the object size. The lifecycle around these
 * steps is BlobWriterBase's.
 */
export class S3BlobWriter extends BlobWriterBase {
  readonly #store: S3BlobStore;
  readonly #objectKey: string;
  readonly #logger: S3BlobStoreLogger | undefined;
  /** Part being filled; grows geometrically up to partSize while the object may still be small. */
  #buffer: Buffer | undefined;
  #filled = 0;
  #uploadId: string | undefined;
  #nextPartNumber = 1;
  readonly #parts: CompletedPart[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  /** The first part upload that failed: parts upload behind write()'s back, so the next put or finalize reports it. */
  #uploadFailure: { error: unknown } | undefined;
  /** Most part buffers held at once (the one being filled plus those uploading); for tests. */
  peakPartsHeld = 0;

  constructor(store: S3BlobStore, objectKey: string, logger: S3BlobStoreLogger | undefined) {
    super();
    this.#store = store;
    this.#objectKey = objectKey;
    this.#logger = logger;
  }

  /** Part buffers held right now (filling + uploading). */
  get partsHeld(): number {
    return (this.#buffer ? 1 : 0) + this.#inFlight.size;
  }

  /** True once the writer switched to a multipart upload. */
  get usesMultipart(): boolean {
    return this.#uploadId !== undefined;
  }

  protected async put(chunk: Uint8Array): Promise<void> {
    if (this.#uploadFailure !== undefined) throw this.#uploadFailure.error;
    const partSize = this.#store.partSize;
    let offset = 0;
    while (offset < chunk.byteLength) {
      if (this.#buffer && this.#filled === partSize) {
        // More bytes than one part: this full buffer becomes a part (waits for a free upload slot).
        await this.#flushPart();
      }
      this.#reserve(Math.min(partSize, this.#filled + (chunk.byteLength - offset)));
      const n = Math.min(chunk.byteLength - offset, partSize - this.#filled);
      this.#buffer!.set(chunk.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      this.#notePeak();
    }
  }

  /** Makes the current buffer at least `needed` bytes (<= partSize), growing by doubling. */
  #reserve(needed: number): void {
    const partSize = this.#store.partSize;
    if (!this.#buffer) {
      // After the first part the object is known to be large: take a whole part at once.
      const size = this.#uploadId ? partSize : Math.min(partSize, Math.max(needed, 64 * 1024));
      this.#buffer = Buffer.allocUnsafe(size);
      this.#filled = 0;
      return;
    }
    if (this.#buffer.byteLength >= needed) return;
    let size = this.#buffer.byteLength;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafe(Math.min(size, partSize));
    this.#buffer.copy(grown, 0, 0, this.#filled);
    this.#buffer = grown;
  }

  #notePeak(): void {
    const held = this.partsHeld;
    if (held > this.peakPartsHeld) this.peakPartsHeld = held;
    const stats = this.#store.stats;
    if (held > stats.peakPartsHeldPerWriter) stats.peakPartsHeldPerWriter = held;
  }

  /** Hands the current buffer to an UploadPart, after waiting for a free slot. */
  async #flushPart(): Promise<void> {
    const store = this.#store;
    if (this.#uploadId === undefined) {
      const out = await store.client.send(
        new CreateMultipartUploadCommand({ Bucket: store.bucket, Key: this.#objectKey }),
      );
      if (!out.UploadId) throw new Error('S3 CreateMultipartUpload returned no UploadId');
      this.#uploadId = out.UploadId;
      store.stats.multipartUploads++;
    }
    while (this.#inFlight.size >= store.maxPartsInFlight) {
      await Promise.race(this.#inFlight);
    }
    if (this.#uploadFailure !== undefined) throw this.#uploadFailure.error;
    const partNumber = this.#nextPartNumber++;
    if (partNumber > S3_MAX_PARTS) {
      throw new Error(`object too large for S3 multipart upload with partSize ${store.partSize} (10000 parts)`);
    }
    const body = this.#buffer!.subarray(0, this.#filled);
    const uploadId = this.#uploadId;
    this.#buffer = undefined;
    this.#filled = 0;
    const upload = (async () => {
      const out = await store.client.send(
        new UploadPartCommand({
          Bucket: store.bucket,
          Key: this.#objectKey,
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          ContentLength: body.byteLength,
        }),
      );
      if (!out.ETag) throw new Error(`S3 UploadPart ${partNumber} returned no ETag`);
      this.#parts.push({
        PartNumber: partNumber,
        ETag: out.ETag,
        ChecksumCRC32: out.ChecksumCRC32,
        ChecksumCRC32C: out.ChecksumCRC32C,
        ChecksumCRC64NVME: out.ChecksumCRC64NVME,
        ChecksumSHA1: out.ChecksumSHA1,
        ChecksumSHA256: out.ChecksumSHA256,
      });
      store.stats.partsUploaded++;
    })();
    const tracked: Promise<void> = upload.then(
      () => {
        this.#inFlight.delete(tracked);
      },
      (err: unknown) => {
        this.#inFlight.delete(tracked);
        this.#uploadFailure ??= { error: err };
      },
    );
    this.#inFlight.add(tracked);
    this.#notePeak();
  }

  protected async finalize(): Promise<void> {
    const store = this.#store;
    if (this.#uploadId === undefined) {
      const body = this.#buffer ? this.#buffer.subarray(0, this.#filled) : Buffer.alloc(0);
      await store.client.send(
        new PutObjectCommand({ Bucket: store.bucket, Key: this.#objectKey, Body: body, ContentLength: body.byteLength }),
      );
      store.stats.singlePuts++;
    } else {
      if (this.#filled > 0) await this.#flushPart();
      await Promise.all(this.#inFlight);
      if (this.#uploadFailure !== undefined) throw this.#uploadFailure.error;
      const parts = [...this.#parts].sort((a, b) => a.PartNumber! - b.PartNumber!);
      await store.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: store.bucket,
          Key: this.#objectKey,
          UploadId: this.#uploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    }
    this.#buffer = undefined;
  }

  /**
   * Drops the buffer and aborts the multipart upload, if any. Never rejects because the server refused
   * the abort (logged; cleanupIncomplete() or a bucket lifecycle rule reclaims such uploads), so that
   * abort() is safe in error paths.
   */
  protected async discard(): Promise<void> {
    this.#buffer = undefined;
    this.#filled = 0;
    await Promise.allSettled(this.#inFlight);
    const uploadId = this.#uploadId;
    this.#uploadId = undefined;
    if (uploadId === undefined) return;
    try {
      await this.#store.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.#store.bucket, Key: this.#objectKey, UploadId: uploadId }),
      );
    } catch (err) {
      if (errorName(err) === 'NoSuchUpload') return;
      this.#logger?.warn(
        { err, bucket: this.#store.bucket, key: this.#objectKey, uploadId },
        'S3 AbortMultipartUpload failed; the unfinished upload stays until cleanupIncomplete()',
      );
    }
  }
}

function normalizePrefix(prefix: string | undefined): string {
  if (!prefix) return '';
  let p = prefix.replace(/^\/+/, '');
  if (p !== '' && !p.endsWith('/')) p += '/';
  return p;
}

/**
 * Some S3-compatible servers ignore or mis-handle Range (s3rver answers `bytes=0-0` with the whole
 * object); serving the wrong bytes would corrupt every ranged read, so check what we got.
 */
function checkContentRange(contentRange: string | undefined, start: number, end: number | undefined): string | undefined {
  const m = contentRange === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange);
  if (!m) return `missing or malformed Content-Range ${JSON.stringify(contentRange)} (server ignored the range?)`;
  const [gotStart, gotLast] = [Number(m[1]), Number(m[2])];
  const total = m[3] === '*' ? undefined : Number(m[3]);
  let wantLast = end === undefined ? undefined : end - 1;
  if (total !== undefined) wantLast = Math.min(wantLast ?? total - 1, total - 1);
  if (gotStart !== start || (wantLast !== undefined && gotLast !== wantLast)) {
    return `server returned ${contentRange} instead of bytes ${start}-${wantLast ?? ''}`;
  }
  return undefined;
}

function toNodeReadable(body: unknown): Readable {
  if (body instanceof Readable) return body;
  if (body && typeof (body as { getReader?: unknown }).getReader === 'function') {
    return Readable.fromWeb(body as WebReadableStream<Uint8Array>);
  }
  if (body === undefined || body === null) return Readable.from([]);
  throw new TypeError('unexpected S3 GetObject body type');
}

function errorName(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { name?: unknown; Code?: unknown };
  return typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : undefined;
}

function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** Missing object (GetObject: NoSuchKey, HEAD requests: bare 404). A missing bucket is not "not found". */
function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || httpStatus(err) === 404;
}

function isUnsupported(err: unknown): boolean {
  const name = errorName(err);
  const status = httpStatus(err);
  return name === 'NotImplemented' || name === 'MethodNotAllowed' || status === 501 || status === 405;
}

/** Scheme, host and port of an endpoint: never a user or password it may carry. */
function endpointOrigin(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return '(an endpoint that is not a URL)';
  }
}
