/**
 * Validation of blob keys, shared by every BlobStore adapter.
 *
 * Keys are chosen by the caller (random ids such as `1b/9d/1b9d6bcd-....dcm` or a plain uuid). They map
 * to file paths in FsBlobStore and to object keys (after a prefix) in S3BlobStore, so they are kept to a
 * portable subset: `[A-Za-z0-9._-]` segments separated by single `/`, no `.` or `..` segment, no leading
 * or trailing `/` (absolute paths are rejected), at most 1024 characters and 255 per segment.
 */

export class InvalidBlobKeyError extends Error {
  readonly key: string;
  constructor(key: string, reason: string) {
    super(`invalid blob key ${JSON.stringify(key)}: ${reason}`);
    this.name = 'InvalidBlobKeyError';
    this.key = key;
  }
}

/** Top-level folder FsBlobStore uses for unfinished writes; no key may live under it. */
export const RESERVED_INCOMING_DIR = '.incoming';

const KEY_CHARS = /^[A-Za-z0-9._\/-]+$/;

/** Throws InvalidBlobKeyError unless `key` is an acceptable blob key. */
export function assertValidBlobKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidBlobKeyError(String(key), 'not a string');
  if (key.length === 0) throw new InvalidBlobKeyError(key, 'empty');
  if (key.length > 1024) throw new InvalidBlobKeyError(key, 'longer than 1024 characters');
  if (!KEY_CHARS.test(key)) throw new InvalidBlobKeyError(key, 'only A-Z a-z 0-9 . _ - / are allowed');
  if (key.startsWith('/')) throw new InvalidBlobKeyError(key, 'absolute paths are not allowed');
  if (key.endsWith('/')) throw new InvalidBlobKeyError(key, 'must not end with /');
  const segments = key.split('/');
  for (const segment of segments) {
    if (segment === '') throw new InvalidBlobKeyError(key, 'empty path segment');
    if (segment === '..') throw new InvalidBlobKeyError(key, '".." segments are not allowed');
    if (segment === '.') throw new InvalidBlobKeyError(key, '"." segments are not allowed');
    if (segment.length > 255) throw new InvalidBlobKeyError(key, 'path segment longer than 255 characters');
  }
  if (segments[0] === RESERVED_INCOMING_DIR) {
    throw new InvalidBlobKeyError(key, `"${RESERVED_INCOMING_DIR}/" is reserved for unfinished writes`);
  }
}

/** Validates a byte range against the port's contract: integers, 0 <= start, start <= end when given. */
export function assertValidRange(range: { start: number; end?: number }): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new RangeError(`invalid byte range start ${start}: must be a non-negative integer`);
  }
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw new RangeError(`invalid byte range end ${end}: must be an integer >= start (${start})`);
  }
}
