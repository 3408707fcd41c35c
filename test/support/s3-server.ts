/**
 * An in-process S3 server (s3rver 3.7.1) on 127.0.0.1 for tests, with shims for what it lacks or gets
 * wrong under Node 24 / a current AWS SDK:
 *
 *  - ListObjectsV2 pagination: s3rver encrypts continuation tokens with DES, which OpenSSL 3 (Node >= 17)
 *    no longer offers, so any truncated listing (> 1000 keys, or MaxKeys) fails with 500 InternalError.
 *    The shim answers `GET /<bucket>?list-type=2` itself with a plain base64url token.
 *  - AbortMultipartUpload (`DELETE ?uploadId=`) is not implemented (405 MethodNotAllowed): shimmed.
 *  - ListMultipartUploads (`GET /<bucket>?uploads`) is not implemented (501 NotImplemented): shimmed,
 *    reading s3rver's `<bucket>/._S3rver_uploads/<uploadId>/` folders.
 *  - PutObject / UploadPart resolve when the hashing Transform finishes, not when the file stream has
 *    flushed, so the response (and a CompleteMultipartUpload reading the part files) can race with
 *    the last bytes reaching disk. Patched to use stream.pipeline, writing objects to a temp file and
 *    renaming (so a reader never sees half an object).
 *  - GetObject with `Range: bytes=0-0` returns the whole object (s3rver treats end 0 as "no end"):
 *    patched to return the first byte.
 *  - Part sizes are not checked: the patched CompleteMultipartUpload rejects parts but the last smaller
 *    than 5 MiB with EntityTooSmall, like S3.
 *
 * Pass `{ shims: false }` to get plain s3rver (to test how adapters cope with its missing features).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** s3rver's storage folder (removed by stop()). */
  directory: string;
  stop(): Promise<void>;
}

export interface StartS3ServerOptions {
  /** Install the fixes listed at the top of this file (default true). */
  shims?: boolean;
}

// --- minimal typings of the s3rver internals used here (it ships no types) ---
interface S3rverObject {
  bucket: string;
  key: string;
  content: Readable | Buffer;
  metadata: Record<string, string>;
  readonly size: number;
  readonly lastModifiedDate: Date;
}
interface S3rverStore {
  rootDirectory: string;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5?: string): Promise<void>;
  getBucket(bucket: string): Promise<unknown>;
  listObjects(
    bucket: string,
    options: { prefix?: string; delimiter?: string; startAfter?: string; maxKeys?: number },
  ): Promise<{ objects: S3rverObject[]; commonPrefixes: string[]; isTruncated: boolean }>;
  getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<
    (S3rverObject & { range?: { start: number; end: number } }) | null
  >;
  putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
  putPart(bucket: string, uploadId: string, partNumber: string | number, content: Readable): Promise<{ size: number; md5: string }>;
  putObjectMultipart(bucket: string, uploadId: string, parts: { number: number; etag: string }[]): Promise<{ size: number; md5: string }>;
}
interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  store: S3rverStore;
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface S3rverInstance {
  store: S3rverStore;
  middleware: KoaMiddleware[];
  httpServer?: Server;
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverInstance;
type S3ErrorCtor = new (code: string, message?: string, detail?: Record<string, unknown>) => Error;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverCtor;
const S3Error = require('s3rver/lib/models/error') as S3ErrorCtor;

const UPLOADS_DIR = '._S3rver_uploads';
const MIN_PART_SIZE = 5 * 1024 * 1024;

export async function startS3Server(options: StartS3ServerOptions = {}): Promise<TestS3Server> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'atrium-s3rver-'));
  const bucket = `atrium-test-${randomBytes(4).toString('hex')}`;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory,
    silent: true,
    // Path-style only: with vhost buckets on, 'localhost'-like hosts would be misread as bucket names.
    vhostBuckets: false,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  if (options.shims ?? true) installShims(server);
  let address: { port: number };
  try {
    address = await server.run();
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    bucket,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    directory,
    async stop() {
      if (stopped) return;
      stopped = true;
      const closing = server.close();
      server.httpServer?.closeAllConnections(); // keep-alive sockets of SDK clients would hold close()
      await closing;
      await rm(directory, { recursive: true, force: true });
    },
  };
}

function installShims(server: S3rverInstance): void {
  const store = server.store;

  store.putObject = async function putObject(this: S3rverStore, object: S3rverObject) {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(path.dirname(objectPath), { recursive: true });
    const tempPath = `${objectPath}.${randomBytes(6).toString('hex')}.tmp`;
    const hash = createHash('md5');
    let size = 0;
    try {
      if (Buffer.isBuffer(object.content)) {
        hash.update(object.content);
        size = object.content.length;
        await writeFile(tempPath, object.content);
      } else {
        await pipeline(
          object.content,
          new Transform({
            transform(chunk: Buffer, _encoding, callback) {
              hash.update(chunk);
              size += chunk.length;
              callback(null, chunk);
            },
          }),
          createWriteStream(tempPath),
        );
      }
      const md5 = hash.digest('hex');
      await this.putMetadata(object.bucket, object.key, object.metadata, md5);
      await rename(tempPath, objectPath);
      return { size, md5 };
    } catch (err) {
      await unlink(tempPath).catch(() => {});
      throw err;
    }
  };

  store.putPart = async function putPart(this: S3rverStore, bucketName, uploadId, partNumber, content) {
    const partPath = path.join(this.getResourcePath(bucketName, undefined, 'uploads'), uploadId, String(partNumber));
    await mkdir(path.dirname(partPath), { recursive: true });
    const hash = createHash('md5');
    let size = 0;
    await pipeline(
      content,
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      }),
      createWriteStream(partPath),
    );
    const md5 = hash.digest('hex');
    await writeFile(`${partPath}.md5`, md5);
    return { size, md5 };
  };

  const originalGetObject = store.getObject;
  store.getObject = async function getObject(this: S3rverStore, bucketName, key, options) {
    const object = await originalGetObject.call(this, bucketName, key, options);
    if (object && object.range && object.content && options?.start === 0 && options.end === 0) {
      (object.content as Readable).destroy();
      object.content = createReadStream(this.getResourcePath(bucketName, key, 'object'), { start: 0, end: 0 });
      object.range = { start: 0, end: 0 };
    }
    return object;
  };

  const originalComplete = store.putObjectMultipart;
  store.putObjectMultipart = async function putObjectMultipart(this: S3rverStore, bucketName, uploadId, parts) {
    const uploadDir = path.join(this.getResourcePath(bucketName, undefined, 'uploads'), uploadId);
    const sorted = [...parts].sort((a, b) => a.number - b.number);
    for (const [i, part] of sorted.entries()) {
      let info;
      try {
        info = await stat(path.join(uploadDir, String(part.number)));
      } catch {
        throw new S3Error('InvalidPart', `part ${part.number} was not uploaded`);
      }
      if (i < sorted.length - 1 && info.size < MIN_PART_SIZE) {
        throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.');
      }
    }
    return originalComplete.call(this, bucketName, uploadId, parts);
  };

  const shim: KoaMiddleware = async (ctx, next) => {
    const segments = ctx.path.split('/').slice(1).map((s) => decodeURIComponent(s));
    const bucketName = segments[0];
    const key = segments.slice(1).join('/');
    const q = ctx.query;
    if (!bucketName) return next();

    if (ctx.method === 'GET' && key === '' && q['list-type'] === '2') return listObjectsV2(ctx, bucketName);
    if (ctx.method === 'GET' && key === '' && 'uploads' in q) return listMultipartUploads(ctx, bucketName);
    if (ctx.method === 'DELETE' && key !== '' && typeof q.uploadId === 'string') {
      return abortMultipartUpload(ctx, bucketName, q.uploadId);
    }
    return next();
  };
  // Koa composes `middleware` when the server starts; s3rver's router is the last entry.
  server.middleware.splice(server.middleware.length - 1, 0, shim);
}

function queryString(ctx: KoaContext, name: string): string | undefined {
  const v = ctx.query[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

async function requireBucket(ctx: KoaContext, bucketName: string): Promise<void> {
  if (!(await ctx.store.getBucket(bucketName))) {
    throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucketName });
  }
}

async function listObjectsV2(ctx: KoaContext, bucketName: string): Promise<void> {
  await requireBucket(ctx, bucketName);
  const token = queryString(ctx, 'continuation-token');
  const prefix = queryString(ctx, 'prefix');
  const delimiter = queryString(ctx, 'delimiter');
  const maxKeysRaw = queryString(ctx, 'max-keys');
  const maxKeys = Math.min(1000, maxKeysRaw === undefined ? 1000 : Number(maxKeysRaw));
  if (!Number.isInteger(maxKeys) || maxKeys < 0) throw new S3Error('InvalidArgument', 'invalid max-keys');
  const startAfter = token ? Buffer.from(token, 'base64url').toString('utf8') : queryString(ctx, 'start-after');
  const result =
    maxKeys === 0
      ? { objects: [], commonPrefixes: [], isTruncated: false }
      : await ctx.store.listObjects(bucketName, { prefix, delimiter, startAfter, maxKeys });
  const last = result.objects.at(-1);
  ctx.body = {
    ListBucketResult: {
      '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
      Name: bucketName,
      Prefix: prefix ?? '',
      StartAfter: token ? undefined : startAfter,
      ContinuationToken: token,
      NextContinuationToken:
        result.isTruncated && last ? Buffer.from(last.key, 'utf8').toString('base64url') : undefined,
      KeyCount: result.objects.length,
      MaxKeys: maxKeys,
      Delimiter: delimiter,
      IsTruncated: result.isTruncated,
      Contents: result.objects.map((o) => ({
        Key: o.key,
        LastModified: o.lastModifiedDate.toISOString(),
        ETag: o.metadata['etag'],
        Size: o.size,
        StorageClass: 'STANDARD',
      })),
      CommonPrefixes: result.commonPrefixes.map((p) => ({ Prefix: p })),
    },
  };
}

async function listMultipartUploads(ctx: KoaContext, bucketName: string): Promise<void> {
  await requireBucket(ctx, bucketName);
  const prefix = queryString(ctx, 'prefix') ?? '';
  const uploadsDir = path.join(ctx.store.rootDirectory, bucketName, UPLOADS_DIR);
  let ids: string[] = [];
  try {
    ids = await readdir(uploadsDir);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  const uploads: { Key: string; UploadId: string; Initiated: string; StorageClass: string }[] = [];
  for (const id of ids) {
    try {
      const keyFile = path.join(uploadsDir, id, 'key');
      const [key, info] = await Promise.all([readFile(keyFile, 'utf8'), stat(keyFile)]);
      if (key.startsWith(prefix)) {
        uploads.push({ Key: key, UploadId: id, Initiated: info.mtime.toISOString(), StorageClass: 'STANDARD' });
      }
    } catch {
      // completed or aborted meanwhile
    }
  }
  uploads.sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : a.UploadId < b.UploadId ? -1 : 1));
  ctx.body = {
    ListMultipartUploadsResult: {
      '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
      Bucket: bucketName,
      KeyMarker: '',
      UploadIdMarker: '',
      Prefix: prefix,
      MaxUploads: 10000,
      IsTruncated: false,
      Upload: uploads,
    },
  };
}

async function abortMultipartUpload(ctx: KoaContext, bucketName: string, uploadId: string): Promise<void> {
  await requireBucket(ctx, bucketName);
  if (!/^[0-9a-f]+$/.test(uploadId)) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.');
  const uploadDir = path.join(ctx.store.rootDirectory, bucketName, UPLOADS_DIR, uploadId);
  try {
    await stat(uploadDir);
  } catch {
    throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
  }
  await rm(uploadDir, { recursive: true, force: true });
  ctx.status = 204;
  ctx.body = null;
}
