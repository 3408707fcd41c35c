import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { PutObjectCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { startS3Server } from '../../../test/support/s3-server.ts';
import type { TestS3Server } from '../../../test/support/s3-server.ts';
import { blobStoreContract, listAll, nestedKey, put, readAll } from './blob-store.contract.ts';
import { S3BlobStore, S3BlobWriter } from './s3-blob-store.ts';
import type { S3BlobStoreConfig } from './s3-blob-store.ts';

const MiB = 1024 * 1024;
const PART = 5 * MiB;

describe('S3BlobStore (s3rver)', () => {
  let s3: TestS3Server;
  before(async () => {
    s3 = await startS3Server();
  });
  after(async () => {
    await s3?.stop();
  });

  function s3Config(extra: Partial<S3BlobStoreConfig> = {}): S3BlobStoreConfig {
    return {
      endpoint: s3.endpoint,
      region: s3.region,
      bucket: s3.bucket,
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      forcePathStyle: true,
      prefix: `t-${randomUUID()}/`, // a fresh, empty namespace per store
      partSize: PART,
      ...extra,
    };
  }

  /** A client of the test server whose uploads (PutObject, UploadPart) fail once fail() was called. */
  function clientWithFaults(): { client: S3Client; fail(): void } {
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    let failing = false;
    const originalSend = client.send.bind(client) as (command: unknown) => Promise<unknown>;
    (client as unknown as { send: (command: unknown) => Promise<unknown> }).send = async (command) => {
      if (failing && (command instanceof UploadPartCommand || command instanceof PutObjectCommand)) {
        throw Object.assign(new Error('injected: InternalError'), { name: 'InternalError', $metadata: { httpStatusCode: 500 } });
      }
      return originalSend(command);
    };
    return { client, fail: () => (failing = true) };
  }

  // Each contract case gets its own prefix in the shared bucket; nothing to clean but the client.
  blobStoreContract('S3BlobStore', async () => {
    const { client, fail } = clientWithFaults();
    return {
      store: new S3BlobStore({ ...s3Config(), client }),
      failWrites: async () => fail(),
      cleanup: async () => client.destroy(),
    };
  }, {
    crashWriterBytes: PART + MiB, // more than one part, so a multipart upload is left behind
  });

  test('small objects use one PutObject; large ones multipart with bounded part buffers', async () => {
    const store = new S3BlobStore(s3Config());
    try {
      const small = (await store.createWriter(nestedKey())) as S3BlobWriter;
      await small.write(randomBytes(300_000));
      await small.commit();
      assert.equal(small.usesMultipart, false);
      assert.deepEqual({ ...store.stats }, { singlePuts: 1, multipartUploads: 0, partsUploaded: 0, peakPartsHeldPerWriter: 1 });

      // exactly one part's worth still needs no multipart upload
      const exact = (await store.createWriter(nestedKey())) as S3BlobWriter;
      await exact.write(randomBytes(PART));
      await exact.commit();
      assert.equal(exact.usesMultipart, false);

      const key = nestedKey();
      const data = randomBytes(25 * MiB + 12345);
      const big = (await store.createWriter(key)) as S3BlobWriter;
      for (let off = 0; off < data.length; off += 64 * 1024) {
        await big.write(data.subarray(off, off + 64 * 1024));
        assert.ok(big.partsHeld <= store.maxPartsInFlight + 1, `holding ${big.partsHeld} parts`);
      }
      await big.commit();
      assert.equal(big.usesMultipart, true);
      assert.ok(big.peakPartsHeld <= store.maxPartsInFlight + 1, `peak ${big.peakPartsHeld} parts`);
      assert.equal(store.stats.multipartUploads, 1);
      assert.equal(store.stats.partsUploaded, 6); // 5 full parts + the 12345-byte tail
      assert.equal(big.partsHeld, 0);
      assert.ok((await readAll(await store.read(key))).equals(data));
    } finally {
      await store.close();
    }
  });

  test('write() waits while the part upload slots are busy (backpressure)', async () => {
    // A client whose UploadPart requests wait for the test to open a gate.
    const inner = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    let partsStarted = 0;
    let partStarted!: () => void;
    const firstPartStarted = new Promise<void>((resolve) => (partStarted = resolve));
    const originalSend = inner.send.bind(inner) as (command: unknown) => Promise<unknown>;
    (inner as unknown as { send: (command: unknown) => Promise<unknown> }).send = async (command) => {
      if (command instanceof UploadPartCommand) {
        partsStarted++;
        partStarted();
        await gate;
      }
      return originalSend(command);
    };
    const store = new S3BlobStore({ ...s3Config(), client: inner, maxPartsInFlight: 1 });
    try {
      const key = nestedKey();
      const data = randomBytes(3 * PART + 100);
      const writer = (await store.createWriter(key)) as S3BlobWriter;
      await writer.write(data.subarray(0, PART)); // fills part 1 (held)
      await writer.write(data.subarray(PART, 2 * PART)); // part 1 goes in flight, part 2 filled
      await firstPartStarted;
      assert.equal(partsStarted, 1);
      assert.equal(writer.partsHeld, 2);
      let settled = false;
      const blocked = writer.write(data.subarray(2 * PART)).then(() => (settled = true));
      for (let i = 0; i < 50; i++) await nextTurn(); // let everything that can run, run
      assert.equal(settled, false, 'write must wait while the only upload slot is busy');
      assert.equal(writer.partsHeld, 2);
      openGate();
      await blocked;
      await writer.commit();
      assert.ok(writer.peakPartsHeld <= 2);
      assert.ok((await readAll(await store.read(key))).equals(data));
    } finally {
      await store.close();
      inner.destroy();
    }
  });

  for (const maxPartsInFlight of [1, 2]) {
    test(`memory stays bounded with ${maxPartsInFlight} part(s) in flight`, async () => {
      const store = new S3BlobStore(s3Config({ maxPartsInFlight }));
      try {
        const key = nestedKey();
        const data = randomBytes(6 * PART + 1);
        const writer = (await store.createWriter(key)) as S3BlobWriter;
        for (let off = 0; off < data.length; off += 256 * 1024) await writer.write(data.subarray(off, off + 256 * 1024));
        await writer.commit();
        assert.ok(writer.peakPartsHeld <= maxPartsInFlight + 1, `peak ${writer.peakPartsHeld} parts`);
        assert.equal(store.stats.partsUploaded, 7);
        assert.ok((await readAll(await store.read(key))).equals(data));
      } finally {
        await store.close();
      }
    });
  }

  test('a failed part upload fails the writer; abort() then removes the multipart upload', async () => {
    const inner = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    const originalSend = inner.send.bind(inner) as (command: unknown) => Promise<unknown>;
    (inner as unknown as { send: (command: unknown) => Promise<unknown> }).send = async (command) => {
      if (command instanceof UploadPartCommand && command.input.PartNumber === 2) throw new Error('injected part failure');
      return originalSend(command);
    };
    const store = new S3BlobStore({ ...s3Config(), client: inner });
    try {
      const key = nestedKey();
      const writer = (await store.createWriter(key)) as S3BlobWriter;
      const data = randomBytes(4 * PART);
      await assert.rejects(async () => {
        for (let off = 0; off < data.length; off += MiB) await writer.write(data.subarray(off, off + MiB));
        await writer.commit();
      }, /injected part failure/);
      await assert.rejects(writer.commit(), /injected part failure/);
      await writer.abort();
      assert.equal(await store.stat(key), null);
      assert.equal(await store.cleanupIncomplete(), 0, 'abort() already removed the upload');
    } finally {
      await store.close();
      inner.destroy();
    }
  });

  test('list() follows ListObjectsV2 pagination', async () => {
    const store = new S3BlobStore(s3Config({ listPageSize: 3 }));
    try {
      const keys = Array.from({ length: 8 }, () => nestedKey());
      for (const key of keys) await put(store, key, Buffer.from(key));
      assert.deepEqual(await listAll(store), keys.sort());
    } finally {
      await store.close();
    }
  });

  test('stores with different prefixes in one bucket do not see each other', async () => {
    const a = new S3BlobStore(s3Config());
    const b = new S3BlobStore(s3Config());
    try {
      await put(a, 'same/key', Buffer.from('a'));
      await put(b, 'same/key', Buffer.from('b'));
      await put(b, 'only-b', Buffer.from('b'));
      assert.deepEqual(await listAll(a), ['same/key']);
      assert.deepEqual(await listAll(b), ['only-b', 'same/key']);
      assert.equal((await readAll(await a.read('same/key'))).toString(), 'a');
      await a.delete('same/key');
      assert.equal((await readAll(await b.read('same/key'))).toString(), 'b');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('ensureBucket creates a missing bucket and is idempotent', async () => {
    const store = new S3BlobStore(s3Config({ bucket: `atrium-new-${randomBytes(4).toString('hex')}`, prefix: '' }));
    try {
      await store.ensureBucket();
      await store.ensureBucket();
      await put(store, 'k', Buffer.from('v'));
      assert.deepEqual(await listAll(store), ['k']);
    } finally {
      await store.close();
    }
  });

  test('rejects part sizes S3 would refuse', () => {
    assert.throws(() => new S3BlobStore(s3Config({ partSize: 4 * MiB })), RangeError);
    assert.throws(() => new S3BlobStore(s3Config({ maxPartsInFlight: 3 })), RangeError);
  });
});

describe('S3BlobStore against plain s3rver (no AbortMultipartUpload / ListMultipartUploads)', () => {
  let s3: TestS3Server;
  before(async () => {
    s3 = await startS3Server({ shims: false });
  });
  after(async () => {
    await s3?.stop();
  });

  test('abort() and cleanupIncomplete() degrade gracefully and log a warning', async () => {
    const warnings: string[] = [];
    const store = new S3BlobStore({
      endpoint: s3.endpoint,
      region: s3.region,
      bucket: s3.bucket,
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      forcePathStyle: true,
      partSize: PART,
      logger: { warn: (_obj, msg) => warnings.push(msg) },
    });
    try {
      const key = nestedKey();
      const writer = (await store.createWriter(key)) as S3BlobWriter;
      await writer.write(randomBytes(PART + 1)); // starts a multipart upload
      assert.equal(writer.usesMultipart, true);
      await writer.abort(); // s3rver answers 405: resolved, logged
      assert.equal(await store.stat(key), null);
      assert.equal(await store.cleanupIncomplete(), 0); // s3rver answers 501: 0, logged
      assert.equal(warnings.length, 2);
      assert.match(warnings[0], /AbortMultipartUpload/);
      assert.match(warnings[1], /ListMultipartUploads/);
    } finally {
      await store.close();
    }
  });

  test('a server that mis-serves a Range is detected instead of returning wrong bytes', async () => {
    // plain s3rver answers `Range: bytes=0-0` with the whole object
    const store = new S3BlobStore({
      endpoint: s3.endpoint,
      region: s3.region,
      bucket: s3.bucket,
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      forcePathStyle: true,
    });
    try {
      const key = nestedKey();
      await put(store, key, Buffer.from('0123456789'));
      assert.equal((await readAll(await store.read(key, { start: 2, end: 5 }))).toString(), '234');
      await assert.rejects(store.read(key, { start: 0, end: 1 }), /Content-Range|instead of bytes 0-0/);
    } finally {
      await store.close();
    }
  });
});
