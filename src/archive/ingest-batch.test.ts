/**
 * IngestBatch (several objects made durable and indexed together, for STOW-RS) on every engine combination,
 * and its failure paths with a failing index.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createTestArchive, ENGINE_COMBINATIONS, type TestArchive } from '../../test/support/archive.ts';
import { FsBlobStore } from '../adapters/blob/fs-blob-store.ts';
import { openDatabase } from '../app.ts';
import type { Database } from '../database/database.ts';
import { SqlIndexStore } from '../adapters/index/sql-index-store.ts';
import type { Archive } from '../app.ts';
import { stringValue } from '../dicom/dataset.ts';
import { Part10Reader } from '../dicom/part10-reader.ts';
import { generateUid } from '../dicom/uid.ts';
import { Metrics } from '../observability/metrics.ts';
import type { IndexStore } from '../ports/index-store.ts';
import { syntheticInstance, syntheticSeries } from '../synthetic/synthetic-instance.ts';
import { IngestService } from './ingest.ts';

const bytesOf = (chunks: Iterable<Uint8Array>) => Buffer.concat([...chunks]);

function* chunked(bytes: Uint8Array, size = 4096): Iterable<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function* failingAfter(bytes: Uint8Array, n: number): AsyncIterable<Uint8Array> {
  yield bytes.subarray(0, n);
  throw new Error('the request body broke off');
}

async function blobKeys(archive: Archive): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of archive.blobs.list()) keys.push(key);
  return keys;
}

for (const combination of ENGINE_COMBINATIONS) {
  describe(`ingest batch on ${combination}`, () => {
    let t: TestArchive;
    let archive: Archive;
    before(async () => {
      t = await createTestArchive(combination);
      archive = t.archive;
    });
    after(async () => await t?.cleanup());

    test('stores, quarantines and deduplicates like ingest(), with results in order and counts right', async () => {
      const studyInstanceUid = generateUid();
      const series = [...syntheticSeries(7, { rows: 8, columns: 8, studyInstanceUid, seed: 700 })].map(bytesOf);
      const blobsBefore = (await blobKeys(archive)).length;
      // Flushes of 3: the index takes the objects in three transactions, the last one at commit().
      const batch = archive.ingest.batch({ source: 'stow' }, { flushEvery: 3 });
      for (const bytes of series.slice(0, 5)) await batch.add(chunked(bytes));
      await batch.add(chunked(Buffer.from('not DICOM at all')), { originalName: 'junk' });
      await batch.add(chunked(series[1])); // the same object again, within the batch
      for (const bytes of series.slice(5)) await batch.add(chunked(bytes));
      const results = await batch.commit();

      assert.deepEqual(results.map((r) => r.status), ['stored', 'stored', 'stored', 'stored', 'stored', 'quarantined', 'duplicate', 'stored', 'stored']);
      const study = await archive.index.getStudy(studyInstanceUid);
      assert.equal(study?.numberOfStudyRelatedInstances, 7);
      assert.equal(study?.numberOfStudyRelatedSeries, 1);
      for (const [i, bytes] of series.entries()) {
        const result = results[i < 5 ? i : i + 2];
        assert.ok(result.status === 'stored');
        const { bytes: stored } = await archive.retrieve.openInstance(result.sopInstanceUid);
        const parts: Buffer[] = [];
        for await (const c of stored) parts.push(Buffer.from(c as Uint8Array));
        assert.ok(Buffer.concat(parts).equals(bytes), `instance ${i} byte-exact`);
      }
      // 7 objects and the quarantined one; the duplicate's copy was dropped.
      const keys = await blobKeys(archive);
      assert.equal(keys.length, blobsBefore + 8);
    });

    test('an object whose bytes fail is not part of the batch and leaves nothing behind; abort() drops the rest', async () => {
      const studyInstanceUid = generateUid();
      const [a, b, c] = [...syntheticSeries(3, { rows: 8, columns: 8, studyInstanceUid, seed: 800 })].map(bytesOf);
      const blobsBefore = (await blobKeys(archive)).length;
      const batch = archive.ingest.batch({ source: 'stow' });
      await batch.add(chunked(a));
      await assert.rejects(batch.add(failingAfter(b, 1000)), /broke off/);
      await batch.add(chunked(c));
      const results = await batch.commit();
      assert.deepEqual(results.map((r) => r.status), ['stored', 'stored']);
      assert.equal((await archive.index.getStudy(studyInstanceUid))?.numberOfStudyRelatedInstances, 2);
      assert.equal((await blobKeys(archive)).length, blobsBefore + 2);

      const other = generateUid();
      const aborted = archive.ingest.batch({ source: 'stow' });
      await aborted.add(chunked(bytesOf(syntheticInstance({ rows: 8, columns: 8, studyInstanceUid: other, seed: 801 }))));
      await aborted.abort();
      assert.equal(await archive.index.getStudy(other), null);
      assert.equal((await blobKeys(archive)).length, blobsBefore + 2);
      await assert.rejects(aborted.add(chunked(a)), /after commit\(\) or abort\(\)/);
    });
  });
}

describe('ingest batch failures', () => {
  let dir: string;
  let database: Database;
  let index: IndexStore;
  let blobs: FsBlobStore;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-batch-'));
    database = await openDatabase({ engine: 'sqlite', path: path.join(dir, 'index.sqlite') });
    index = new SqlIndexStore(database);
    blobs = new FsBlobStore(path.join(dir, 'blobs'));
  });
  after(async () => {
    await database.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('an object the index refuses fails alone and its blob is removed; the others are stored', async () => {
    const [good1, bad, good2] = [...syntheticSeries(3, { rows: 8, columns: 8, seed: 900 })].map(bytesOf);
    const refused = new Set<string>();
    // The index fails the whole batch transaction and then that one object: the batch falls back to one
    // transaction per object.
    const failing = new Proxy(index, {
      get(target, prop, receiver) {
        if (prop === 'storeInstances') return async () => { throw new Error('database unavailable'); };
        if (prop === 'storeInstance') {
          return async (input: Parameters<IndexStore['storeInstance']>[0], policy: Parameters<IndexStore['storeInstance']>[1]) => {
            if (refused.has(input.instance.sopInstanceUid)) throw new Error('row refused');
            return await target.storeInstance(input, policy);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const ingest = new IngestService({ index: failing, blobs, log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }), options: { duplicatePolicy: 'reject' } });
    const batch = ingest.batch({ source: 'stow' });
    await batch.add(chunked(good1));
    await batch.add(chunked(bad));
    await batch.add(chunked(good2));
    // The refused UID is known once parsed; refuse it before the commit indexes anything.
    const reader = new Part10Reader();
    reader.push(bad);
    refused.add(stringValue(reader.end().dataset, 0x00080018)!.replace(/\0$/, ''));
    const results = await batch.commit();
    assert.deepEqual(results.map((r) => r.status), ['stored', 'failed', 'stored']);
    assert.match((results[1] as { error: Error }).error.message, /row refused/);
    const keys: string[] = [];
    for await (const key of blobs.list()) keys.push(key);
    assert.equal(keys.length, 2);
    assert.equal((await index.statistics()).instances, 2);
  });
});
