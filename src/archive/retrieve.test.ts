/**
 * The one read path (RetrieveService): its reads honour ranges and pieces exactly (no more of the object is
 * asked of the blob store than the caller asked for), by record or by UID, positional or streamed; and every
 * transport reads stored bytes through it. For the latter the archive's own `blobs` is swapped for a store
 * that refuses to read, while the RetrieveService (which holds the real store) is wrapped to record its calls:
 * WADO-RS (instances, frames, bulk data, transcoding), rendered resources, thumbnails, WADO-URI, the admin
 * download and a DIMSE C-STORE send (the sub-operations of C-MOVE and C-GET) must all still work, and each
 * must show up in the record.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { get, startDicomwebServer, type DicomwebServer } from '../../test/support/dicomweb.ts';
import { RetrieveService } from './retrieve.ts';
import type { BlobStore, ByteRange, PositionalSource } from '../ports/blob-store.ts';
import type { InstanceRecord } from '../ports/index-store.ts';
import type { StoredBytes } from '../ports/stored-instance-reader.ts';
import { AtriumError } from '../errors.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { startDicomService, type DicomService } from '../dimse/services/dicom-service.ts';
import { DicomClient } from '../dimse/services/scu.ts';

const TESTDATA = '/work/shared/testdata/dicom';

async function collect(source: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** Reads a positional source the way the multipart writer does: its pieces (or all of it) into a buffer of ours. */
async function readPositional(source: PositionalSource): Promise<Buffer> {
  const out: Buffer[] = [];
  try {
    for (const [offset, length] of source.pieces ?? [[0, source.reader.size]]) {
      const into = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = await source.reader.read(into.subarray(done), offset + done);
        if (n === 0) break;
        done += n;
      }
      out.push(Buffer.from(into.subarray(0, done)));
    }
  } finally {
    await source.reader.close();
  }
  return Buffer.concat(out);
}

const bytesOf = async (source: StoredBytes): Promise<Buffer> => ('reader' in source ? await readPositional(source) : await collect(source));

/** The blob store seen through a recorder: every read and openReader, with its range. */
function recording(blobs: BlobStore, options: { positional: boolean }) {
  const reads: { key: string; range?: ByteRange }[] = [];
  const opened: string[] = [];
  const store: BlobStore = {
    kind: blobs.kind,
    createWriter: (key) => blobs.createWriter(key),
    read: async (key, range) => {
      reads.push(range ? { key, range } : { key });
      return await blobs.read(key, range);
    },
    ...(options.positional ? { openReader: async (key: string) => { opened.push(key); return await blobs.openReader!(key); } } : {}),
    stat: (key) => blobs.stat(key),
    delete: (key) => blobs.delete(key),
    list: () => blobs.list(),
    cleanupIncomplete: (ms) => blobs.cleanupIncomplete(ms),
    probe: () => blobs.probe(),
    close: async () => {},
  };
  return { store, reads, opened };
}

describe('RetrieveService reads honour ranges and pieces', () => {
  let t: TestArchive;
  let bytes: Buffer;
  let rec: InstanceRecord;

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    bytes = Buffer.concat([...syntheticInstance({ rows: 16, columns: 12, frames: 3 })]);
    const r = await t.archive.ingest.ingest([bytes], { source: 'test' });
    assert.equal(r.status, 'stored');
    rec = (await t.archive.index.findInstance(r.sopInstanceUid))!;
  });
  after(async () => { await t?.cleanup(); });

  for (const positional of [true, false]) {
    test(positional ? 'on a store with positional reads (filesystem)' : 'on a store that only streams (S3)', async () => {
      const blobs = recording(t.archive.blobs, { positional });
      const retrieve = new RetrieveService({ index: t.archive.index, blobs: blobs.store });

      // Whole, and a range, by record and by UID: exactly that range is asked of the store.
      assert.ok((await collect(await retrieve.readInstance(rec))).equals(bytes));
      assert.deepEqual(blobs.reads.splice(0), [{ key: rec.blobKey }]);
      assert.ok((await collect(await retrieve.readInstance(rec, { start: 130, end: 1000 }))).equals(bytes.subarray(130, 1000)));
      assert.ok((await collect(await retrieve.readInstance(rec.sopInstanceUid, { start: 7, end: 9 }))).equals(bytes.subarray(7, 9)));
      assert.deepEqual(blobs.reads.splice(0), [{ key: rec.blobKey, range: { start: 130, end: 1000 } }, { key: rec.blobKey, range: { start: 7, end: 9 } }]);

      // Pieces: one ranged read per non-empty piece, in order, nothing between them.
      const pieces: [number, number][] = [[200, 16], [0, 0], [100, 4], [bytes.length - 10, 10]];
      const expected = Buffer.concat(pieces.map(([o, l]) => bytes.subarray(o, o + l)));
      assert.ok((await collect(retrieve.readInstancePieces(rec, pieces))).equals(expected));
      assert.deepEqual(blobs.reads.splice(0).map((r) => r.range), [{ start: 200, end: 216 }, { start: 100, end: 104 }, { start: bytes.length - 10, end: bytes.length }]);

      // openInstanceBytes: positional where the store can (no read at all), else the same ranged reads.
      const some = await retrieve.openInstanceBytes(rec, pieces);
      assert.equal('reader' in some, positional);
      assert.ok((await bytesOf(some)).equals(expected));
      const whole = await retrieve.openInstanceBytes(rec.sopInstanceUid);
      assert.ok((await bytesOf(whole)).equals(bytes));
      if (positional) {
        assert.deepEqual(blobs.reads, []);
        assert.deepEqual(blobs.opened, [rec.blobKey, rec.blobKey]);
      } else {
        assert.deepEqual(blobs.reads.map((r) => r.range), [{ start: 200, end: 216 }, { start: 100, end: 104 }, { start: bytes.length - 10, end: bytes.length }, undefined]);
      }

      // A UID the index does not know is not-found, before anything is read.
      blobs.reads.length = 0;
      const notFound = (e: unknown) => e instanceof AtriumError && e.code === 'not-found';
      await assert.rejects(retrieve.readInstance('1.2.3.4', { start: 0, end: 4 }), notFound);
      await assert.rejects(retrieve.openInstanceBytes('1.2.3.4', [[0, 4]]), notFound);
      await assert.rejects(collect(retrieve.readInstancePieces('1.2.3.4', [[0, 4]])), notFound);
      assert.deepEqual(blobs.reads, []);
    });
  }
});

describe('every read of stored bytes goes through the RetrieveService', { timeout: 120_000 }, () => {
  let t: TestArchive;
  let receiver: TestArchive;
  let server: DicomwebServer;
  let dicom: DicomService;
  const calls: string[] = [];
  const ids = { study: generateUid(), series: generateUid(), sop: generateUid() };
  const stored: Record<string, { study: string; series: string; sop: string }> = {};

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    receiver = await createTestArchive('sqlite+fs');
    const { archive } = t;
    const ingest = async (name: string, chunks: Uint8Array[]) => {
      const r = await archive.ingest.ingest(chunks, { source: 'test' });
      assert.equal(r.status, 'stored', name);
      stored[name] = { study: r.studyInstanceUid, series: (r as { seriesInstanceUid: string }).seriesInstanceUid, sop: r.sopInstanceUid };
    };
    await ingest('synthetic', [...syntheticInstance({ rows: 16, columns: 12, frames: 3, studyInstanceUid: ids.study, seriesInstanceUid: ids.series, sopInstanceUid: ids.sop })]);
    await ingest('CT_small.dcm', [await readFile(path.join(TESTDATA, 'CT_small.dcm'))]);
    await ingest('SC_rgb_jpeg_dcmtk.dcm', [await readFile(path.join(TESTDATA, 'SC_rgb_jpeg_dcmtk.dcm'))]);

    // Whoever reads archive.blobs directly gets an error; the RetrieveService keeps the real store.
    const real = archive.blobs;
    const refuse = async (): Promise<never> => { throw new Error('a stored object was read past the RetrieveService'); };
    archive.blobs = {
      kind: real.kind, createWriter: (k) => real.createWriter(k), read: refuse, openReader: refuse, stat: (k) => real.stat(k),
      delete: (k) => real.delete(k), list: () => real.list(), cleanupIncomplete: (ms) => real.cleanupIncomplete(ms), probe: () => real.probe(), close: () => real.close(),
    };
    const service = archive.retrieve;
    archive.retrieve = new Proxy(service, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          // correctionOf looks up what is served for a corrected study (the index), it reads no stored bytes.
          if (prop !== 'correctionOf') calls.push(String(prop));
          return value.apply(target, args);
        };
      },
    });

    server = await startDicomwebServer(archive);
    dicom = await startDicomService(receiver.archive, { port: 0 });
    await archive.peers.upsert({ aeTitle: receiver.archive.config.dicom.aeTitle, host: '127.0.0.1', port: dicom.port, operations: ['echo', 'store'] });
  });
  after(async () => {
    await dicom?.close();
    await server?.close();
    await receiver?.cleanup();
    await t?.cleanup();
  });

  const instanceUrl = (name: string) => {
    const s = stored[name];
    return `${server.base}/studies/${s.study}/series/${s.series}/instances/${s.sop}`;
  };

  /** Runs `request`, which must succeed, and returns the RetrieveService methods it called. */
  async function readsOf(what: string, request: () => Promise<{ status: number; body?: Buffer }>): Promise<string[]> {
    calls.length = 0;
    const res = await request();
    assert.equal(res.status, 200, `${what}: ${res.body?.toString('utf8').slice(0, 300)}`);
    return [...new Set(calls)];
  }

  test('WADO-RS instances, frames and bulk data, stored and transcoded', async () => {
    const octets = { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' };
    assert.deepEqual(await readsOf('instance', () => get(instanceUrl('synthetic'), { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' })),
      ['openInstanceBytes']);
    assert.deepEqual(await readsOf('study', () => get(`${server.base}/studies/${ids.study}`, { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' })),
      ['openInstanceBytes']);
    assert.deepEqual(await readsOf('native frames', () => get(`${instanceUrl('synthetic')}/frames/1,3`, octets)), ['openInstanceBytes']);
    assert.ok((await readsOf('encapsulated frame', () => get(`${instanceUrl('SC_rgb_jpeg_dcmtk.dcm')}/frames/1`, octets))).includes('openInstanceBytes'));
    assert.ok((await readsOf('decoded frame', () => get(`${instanceUrl('SC_rgb_jpeg_dcmtk.dcm')}/frames/1`, { accept: 'multipart/related; type="application/octet-stream"' })))
      .includes('readInstance'));
    assert.deepEqual(await readsOf('pixel bulk data', () => get(`${instanceUrl('CT_small.dcm')}/bulkdata/7FE00010`, octets)), ['openInstanceBytes']);
    const transcoded = await readsOf('transcoded to Implicit VR', () => get(instanceUrl('CT_small.dcm'), { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2' }));
    assert.ok(transcoded.includes('readInstance') && transcoded.includes('readInstancePieces'), transcoded.join());
    const decompressed = await readsOf('JPEG to Explicit VR', () => get(instanceUrl('SC_rgb_jpeg_dcmtk.dcm'), { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1' }));
    assert.ok(decompressed.includes('readInstance'), decompressed.join());
  });

  test('rendered, thumbnail, WADO-URI and the admin download', async () => {
    assert.deepEqual(await readsOf('rendered', () => get(`${instanceUrl('CT_small.dcm')}/rendered`, { accept: 'image/png' })), ['readInstance']);
    assert.deepEqual(await readsOf('thumbnail', () => get(`${instanceUrl('SC_rgb_jpeg_dcmtk.dcm')}/thumbnail`, { accept: 'image/jpeg' })), ['readInstance']);
    const s = stored['CT_small.dcm'];
    const wado = (params: Record<string, string>) => get(`${server.base}/wado?${new URLSearchParams({ requestType: 'WADO', studyUID: s.study, seriesUID: s.series, objectUID: s.sop, ...params })}`);
    assert.deepEqual(await readsOf('WADO-URI object', () => wado({ contentType: 'application/dicom' })), ['openInstanceBytes']);
    assert.deepEqual(await readsOf('WADO-URI image', () => wado({ contentType: 'image/jpeg' })), ['readInstance']);
    const download = await readsOf('admin download', () => get(`${server.origin}/api/instances/${s.sop}/file`));
    assert.deepEqual(download, ['openInstance']);
  });

  test('a DIMSE C-STORE send (the sub-operations of C-MOVE and C-GET)', async () => {
    calls.length = 0;
    const uids = Object.values(stored).map((s) => s.sop);
    const counts = await new DicomClient(t.archive).send(receiver.archive.config.dicom.aeTitle, uids);
    assert.equal(counts.completed, uids.length, JSON.stringify(counts));
    assert.deepEqual([...new Set(calls)], ['openDataset']);
    // What arrived is the stored data set, as read through the service.
    for (const uid of uids) {
      const received = await bytesOf((await receiver.archive.retrieve.openDataset(uid)).dataset);
      const sent = await bytesOf((await t.archive.retrieve.openDataset(uid)).dataset);
      assert.ok(received.equals(sent), uid);
    }
  });
});
