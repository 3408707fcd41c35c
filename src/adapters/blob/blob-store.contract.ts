/**
 * Behaviour every BlobStore adapter must have, as node:test cases. Use from a *.test.ts file:
 *
 *   blobStoreContract('fs', async () => ({ store, cleanup }));
 *
 * Each case gets a fresh store from `makeStore` (empty: list() must return nothing) and calls
 * `cleanup()` afterwards.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { BlobNotFoundError } from '../../ports/blob-store.ts';
import type { BlobStore, BlobWriter } from '../../ports/blob-store.ts';
import { InvalidBlobKeyError } from './blob-key.ts';

export interface BlobStoreFixture {
  store: BlobStore;
  cleanup(): Promise<void>;
  /**
   * From now on, storing bytes fails the way the engine's storage fails (a full disk, a server refusing
   * uploads); objects already committed stay readable. Without it the failed-write case is skipped.
   */
  failWrites?(): Promise<void>;
}

export interface BlobStoreContractOptions {
  /** Size of the "large" object; pick it so S3 needs several parts. Default 25 MiB. */
  largeObjectBytes?: number;
  /**
   * Bytes an abandoned ("crashed") writer writes before being forgotten, such that it leaves
   * something behind for cleanupIncomplete() (S3: more than one part). Default 1 MiB.
   */
  crashWriterBytes?: number;
}

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

export function blobStoreContract(
  name: string,
  makeStore: () => Promise<BlobStoreFixture>,
  options: BlobStoreContractOptions = {},
): void {
  const largeBytes = options.largeObjectBytes ?? 25 * MiB;
  const crashBytes = options.crashWriterBytes ?? 1 * MiB;

  async function withStore(fn: (store: BlobStore, fixture: BlobStoreFixture) => Promise<void>): Promise<void> {
    const fixture = await makeStore();
    try {
      await fn(fixture.store, fixture);
    } finally {
      await fixture.store.close();
      await fixture.cleanup();
    }
  }

  describe(`BlobStore contract: ${name}`, () => {
    test('writes, commits and reads back a small object byte-exact', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const data = randomBytes(1000);
        const writer = await store.createWriter(key);
        await writer.write(data.subarray(0, 300));
        await writer.write(data.subarray(300));
        assert.equal(writer.bytesWritten, 1000);
        await writer.commit();
        await assertSize(store, key, 1000);
        assert.ok((await readAll(await store.read(key))).equals(data));
      }));

    test(`writes a large object (${(largeBytes / MiB).toFixed(1)} MiB) in chunks, invisible until commit`, () =>
      withStore(async (store) => {
        const key = nestedKey();
        const data = randomBytes(largeBytes);
        const writer = await store.createWriter(key);
        for (let off = 0; off < data.length; off += CHUNK) await writer.write(data.subarray(off, off + CHUNK));
        assert.equal(writer.bytesWritten, largeBytes);
        await assertInvisible(store, key);
        await writer.commit();
        await assertSize(store, key, largeBytes);
        const back = await readAll(await store.read(key));
        assert.equal(back.length, data.length);
        assert.equal(sha256(back), sha256(data));
        // a range across what would be part boundaries on S3
        const from = 5 * MiB - 10;
        const to = 10 * MiB + 10;
        if (to <= largeBytes) {
          assert.ok((await readAll(await store.read(key, { start: from, end: to }))).equals(data.subarray(from, to)));
        }
      }));

    test('nothing is visible before commit', () =>
      withStore(async (store) => {
        const key = randomUUID();
        const writer = await store.createWriter(key);
        await writer.write(Buffer.from('pending bytes'));
        await assertInvisible(store, key);
        await writer.commit();
        await assertSize(store, key, 13);
        assert.deepEqual(await listAll(store), [key]);
      }));

    test('abort leaves nothing, is idempotent and closes the writer', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const writer = await store.createWriter(key);
        await writer.write(randomBytes(4096));
        await writer.abort();
        await writer.abort();
        await assertInvisible(store, key);
        await assert.rejects(writer.write(Buffer.from('x')));
        await assert.rejects(writer.commit());
        // the key is still free for a new writer
        const again = await store.createWriter(key);
        await again.write(Buffer.from('second'));
        await again.commit();
        assert.equal((await readAll(await store.read(key))).toString(), 'second');
      }));

    test('abort after a successful commit keeps the object', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const writer = await store.createWriter(key);
        await writer.write(Buffer.from('kept'));
        await writer.commit();
        await writer.abort();
        assert.equal((await readAll(await store.read(key))).toString(), 'kept');
      }));

    test('commit twice, even at once, is one commit', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const writer = await store.createWriter(key);
        await writer.write(Buffer.from('once'));
        await Promise.all([writer.commit(), writer.commit()]);
        await writer.commit();
        assert.equal((await readAll(await store.read(key))).toString(), 'once');
        assert.deepEqual(await listAll(store), [key]);
        assert.equal(writer.bytesWritten, 4);
      }));

    test('writes during or after commit are refused and change nothing', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const writer = await store.createWriter(key);
        await writer.write(Buffer.from('final'));
        const committing = writer.commit();
        await assert.rejects(writer.write(Buffer.from('late')), /cannot write: blob writer is committing/);
        await committing;
        await assert.rejects(writer.write(Buffer.from('more')), /cannot write: blob writer is committed/);
        assert.equal(writer.bytesWritten, 5);
        await writer.commit();
        assert.equal((await readAll(await store.read(key))).toString(), 'final');
        await assertSize(store, key, 5);
      }));

    test('chunks passed to write() before commit() are stored in order, awaited or not', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const chunks = [randomBytes(100_000), randomBytes(3000), Buffer.from('tail')];
        const writer = await store.createWriter(key);
        const writes = chunks.map((chunk) => writer.write(chunk));
        await writer.commit();
        await Promise.all(writes);
        assert.equal(writer.bytesWritten, 103_004);
        assert.ok((await readAll(await store.read(key))).equals(Buffer.concat(chunks)));
      }));

    test('abort during a commit waits for it and keeps the object', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const writer = await store.createWriter(key);
        await writer.write(Buffer.from('committed meanwhile'));
        const committing = writer.commit();
        await writer.abort();
        await assertSize(store, key, 19); // before awaiting the commit: abort() waited for it
        await committing;
        await writer.abort();
        assert.equal((await readAll(await store.read(key))).toString(), 'committed meanwhile');
      }));

    test('a second abort while the first is under way resolves only once nothing is left', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const writer = await store.createWriter(key);
        const junk = randomBytes(crashBytes); // enough to leave something behind (S3: a multipart upload)
        for (let off = 0; off < junk.length; off += CHUNK) await writer.write(junk.subarray(off, off + CHUNK));
        const first = writer.abort();
        await writer.abort();
        assert.equal(await store.cleanupIncomplete(), 0, 'the second abort resolved before the writer was discarded');
        await first;
        await assertInvisible(store, key);
        assert.deepEqual(await listAll(store), []);
      }));

    test('commit after abort is refused and makes nothing visible', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const writer = await store.createWriter(key);
        await writer.write(Buffer.from('abandoned'));
        await writer.abort();
        await assert.rejects(writer.commit(), /cannot commit: blob writer is aborted/);
        await assert.rejects(writer.commit(), /cannot commit: blob writer is aborted/);
        await assertInvisible(store, key);
        assert.equal(await store.cleanupIncomplete(), 0);
      }));

    test('a failed write fails the writer: commit reports it, abort leaves nothing', (t) =>
      withStore(async (store, fixture) => {
        if (!fixture.failWrites) return t.skip('the fixture cannot make writes fail');
        const kept = nestedKey();
        await put(store, kept, Buffer.from('kept'));
        await fixture.failWrites();
        const key = nestedKey();
        const writer = await store.createWriter(key);
        let failure: unknown;
        try {
          for (let off = 0; off < crashBytes; off += CHUNK) await writer.write(randomBytes(CHUNK));
          await writer.commit();
        } catch (err) {
          failure = err;
        }
        assert.ok(failure !== undefined, 'writing to a failing store should reject');
        await assert.rejects(writer.write(Buffer.from('x')), /cannot write: blob writer is failed/);
        await assert.rejects(writer.commit(), (err: unknown) => err === failure);
        await writer.abort();
        await writer.abort();
        await assert.rejects(writer.commit(), (err: unknown) => err === failure);
        await assertInvisible(store, key);
        assert.equal(await store.cleanupIncomplete(), 0, 'abort should have removed what the writer left');
        assert.deepEqual(await listAll(store), [kept]);
        assert.equal((await readAll(await store.read(kept))).toString(), 'kept');
      }));

    test('an empty object can be stored', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const writer = await store.createWriter(key);
        await writer.commit();
        await assertSize(store, key, 0);
        assert.equal((await readAll(await store.read(key))).length, 0);
        assert.deepEqual(await listAll(store), [key]);
      }));

    test('committing a key again replaces the object', () =>
      withStore(async (store) => {
        const key = nestedKey();
        await put(store, key, Buffer.from('first version, longer'));
        await put(store, key, Buffer.from('second'));
        assert.equal((await readAll(await store.read(key))).toString(), 'second');
        await assertSize(store, key, 6);
      }));

    test('ranged reads return exactly the requested bytes', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const data = randomBytes(10_000);
        await put(store, key, data);
        const range = async (start: number, end?: number) =>
          readAll(await store.read(key, end === undefined ? { start } : { start, end }));
        assert.ok((await range(0)).equals(data), 'start 0');
        assert.ok((await range(1234)).equals(data.subarray(1234)), 'start only');
        assert.ok((await range(100, 200)).equals(data.subarray(100, 200)), 'start+end');
        assert.ok((await range(0, 1)).equals(data.subarray(0, 1)), 'first byte');
        assert.ok((await range(9999)).equals(data.subarray(9999)), 'last byte, open end');
        assert.ok((await range(9999, 10_000)).equals(data.subarray(9999)), 'last byte, explicit end');
        assert.equal((await range(500, 500)).length, 0, 'empty range');
        assert.ok((await range(9000, 20_000)).equals(data.subarray(9000)), 'end past the object is clamped');
        assert.equal((await range(10_000)).length, 0, 'start at the end reads nothing');
        await assert.rejects(store.read(key, { start: -1 }), RangeError);
        await assert.rejects(store.read(key, { start: 10, end: 5 }), RangeError);
        await assert.rejects(store.read(key, { start: 1.5 }), RangeError);
        await assert.rejects(store.read(nestedKey(), { start: 0, end: 0 }), BlobNotFoundError);
        await assert.rejects(store.read(nestedKey(), { start: 5 }), BlobNotFoundError);
      }));

    test('openReader, where offered: positional reads into the caller\'s buffer, the size, a missing key', () =>
      withStore(async (store) => {
        if (!store.openReader) return; // optional: S3 serves streams only
        const key = nestedKey();
        const data = randomBytes(10_000);
        await put(store, key, data);
        const reader = await store.openReader(key);
        try {
          assert.equal(reader.size, 10_000);
          const buffer = new Uint8Array(4096);
          const copy = Buffer.alloc(10_000);
          let position = 0;
          for (let n; (n = await reader.read(buffer, position)) > 0; position += n) copy.set(buffer.subarray(0, n), position);
          assert.equal(position, 10_000);
          assert.ok(copy.equals(data));
          assert.equal(await reader.read(buffer, 9_990), 10);
          assert.ok(Buffer.from(buffer.subarray(0, 10)).equals(data.subarray(9_990)));
          assert.equal(await reader.read(buffer, 10_000), 0, 'a read at the end gives nothing');
        } finally {
          await reader.close();
        }
        await assert.rejects(store.openReader(nestedKey()), BlobNotFoundError);
      }));

    test('probe: a fresh store answers, naming where its objects are and nothing secret', () =>
      withStore(async (store) => {
        const where = await store.probe();
        assert.equal(typeof where, 'string');
        assert.ok(where.length > 0);
        assert.doesNotMatch(where, /secret|password|@/i);
        assert.deepEqual(await listAll(store), [], 'a probe stores nothing');
      }));

    test('missing objects: stat is null, read rejects with BlobNotFoundError', () =>
      withStore(async (store) => {
        const key = nestedKey();
        assert.equal(await store.stat(key), null);
        await assert.rejects(store.read(key), (err: unknown) => {
          assert.ok(err instanceof BlobNotFoundError);
          assert.equal(err.key, key);
          return true;
        });
      }));

    test('delete removes an object and is idempotent', () =>
      withStore(async (store) => {
        const key = nestedKey();
        const other = nestedKey();
        await put(store, key, Buffer.from('doomed'));
        await put(store, other, Buffer.from('survivor'));
        await store.delete(key);
        assert.equal(await store.stat(key), null);
        await assert.rejects(store.read(key), BlobNotFoundError);
        await store.delete(key);
        await store.delete(nestedKey());
        assert.deepEqual(await listAll(store), [other]);
      }));

    test('list returns exactly the committed keys', () =>
      withStore(async (store) => {
        assert.deepEqual(await listAll(store), []);
        const keys = [nestedKey(), nestedKey(), randomUUID(), `${randomUUID()}.dcm`, `a/b/c/d/${randomUUID()}`];
        for (const key of keys) await put(store, key, randomBytes(10));
        const aborted = await store.createWriter(nestedKey());
        await aborted.write(Buffer.from('x'));
        await aborted.abort();
        const pending = await store.createWriter(nestedKey());
        await pending.write(Buffer.from('y'));
        assert.deepEqual(await listAll(store), [...keys].sort());
        await pending.abort();
      }));

    test('concurrent writers to different keys do not interfere', () =>
      withStore(async (store) => {
        const items = Array.from({ length: 8 }, (_, i) => ({ key: nestedKey(), data: randomBytes(50_000 + i * 7919) }));
        const writers = await Promise.all(items.map((item) => store.createWriter(item.key)));
        // interleave: one chunk of each writer per round
        for (let off = 0; off < 120_000; off += 8192) {
          await Promise.all(
            writers.map((w, i) => {
              const slice = items[i].data.subarray(off, off + 8192);
              return slice.length > 0 ? w.write(slice) : Promise.resolve();
            }),
          );
        }
        await Promise.all(writers.map((w) => w.commit()));
        for (const item of items) {
          assert.ok((await readAll(await store.read(item.key))).equals(item.data), item.key);
        }
        assert.deepEqual(await listAll(store), items.map((i) => i.key).sort());
      }));

    test('invalid keys are rejected with InvalidBlobKeyError', () =>
      withStore(async (store) => {
        const bad = ['', '../escape', 'a/../../b', '..', '/etc/passwd', 'a//b', 'a/./b', 'trailing/', 'sp ace', 'a\\b',
          'caf\u00e9', 'nul\u0000', '.incoming/x', 'x'.repeat(1025)];
        for (const key of bad) {
          const isInvalid = (err: unknown) => err instanceof InvalidBlobKeyError;
          await assert.rejects(store.createWriter(key), isInvalid, `createWriter ${JSON.stringify(key)}`);
          await assert.rejects(store.read(key), isInvalid, `read ${JSON.stringify(key)}`);
          await assert.rejects(store.stat(key), isInvalid, `stat ${JSON.stringify(key)}`);
          await assert.rejects(store.delete(key), isInvalid, `delete ${JSON.stringify(key)}`);
        }
        // the accepted alphabet
        const good = `Az09/._-/${randomUUID()}.dcm`;
        await put(store, good, Buffer.from('ok'));
        assert.deepEqual(await listAll(store), [good]);
      }));

    test('a crashed writer (neither committed nor aborted) is removed by cleanupIncomplete', () =>
      withStore(async (store) => {
        const committedKey = nestedKey();
        const committedData = randomBytes(3000);
        await put(store, committedKey, committedData);
        const crashedKey = nestedKey();
        const crashed = await store.createWriter(crashedKey);
        const junk = randomBytes(crashBytes);
        for (let off = 0; off < junk.length; off += CHUNK) await crashed.write(junk.subarray(off, off + CHUNK));
        // "crash": the writer is forgotten. A recent leftover is kept when asked for old ones only...
        assert.equal(await store.cleanupIncomplete(60 * 60 * 1000), 0);
        // ...and removed at start-up.
        assert.ok((await store.cleanupIncomplete()) >= 1, 'the leftover should be removed');
        assert.equal(await store.cleanupIncomplete(), 0, 'nothing left on a second run');
        await assertInvisible(store, crashedKey);
        assert.deepEqual(await listAll(store), [committedKey]);
        assert.ok((await readAll(await store.read(committedKey))).equals(committedData));
        // the orphaned writer can still be released without error
        await crashed.abort();
      }));
  });
}

// ---------------------------------------------------------------------------------------------------

export function nestedKey(): string {
  const id = randomUUID();
  return `${id.slice(0, 2)}/${id.slice(2, 4)}/${id}.dcm`;
}

export async function put(store: BlobStore, key: string, data: Uint8Array): Promise<void> {
  const writer: BlobWriter = await store.createWriter(key);
  try {
    await writer.write(data);
    await writer.commit();
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export async function listAll(store: BlobStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of store.list()) keys.push(key);
  return keys.sort();
}

async function assertInvisible(store: BlobStore, key: string): Promise<void> {
  assert.equal(await store.stat(key), null, 'stat of an uncommitted key');
  await assert.rejects(store.read(key), BlobNotFoundError);
  assert.ok(!(await listAll(store)).includes(key), 'list must not include an uncommitted key');
}

async function assertSize(store: BlobStore, key: string, size: number): Promise<void> {
  const info = await store.stat(key);
  assert.ok(info, `stat(${key}) should find the object`);
  assert.equal(info.size, size);
  assert.ok(info.modifiedAt instanceof Date && !Number.isNaN(info.modifiedAt.getTime()), 'modifiedAt is a Date');
  const skew = Math.abs(info.modifiedAt.getTime() - Date.now());
  assert.ok(skew < 24 * 60 * 60 * 1000, `modifiedAt ${info.modifiedAt.toISOString()} is not near now`);
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
