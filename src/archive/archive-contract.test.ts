/**
 * The archive contract: ingest, query, retrieve, delete and verify behave the same on every engine
 * combination (SQLite+fs, PostgreSQL+fs, PostgreSQL+S3), against real PostgreSQL and a real S3 server.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { createTestArchive, ENGINE_COMBINATIONS, type TestArchive } from '../../test/support/archive.ts';
import { collect } from '../../test/support/dcmtk.ts';
import { syntheticInstance, syntheticSeries } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { Part10Reader } from '../dicom/part10-reader.ts';
import { encodeFileMeta } from '../dicom/part10-writer.ts';
import type { Archive } from '../app.ts';

const TESTDATA = new URL('../../../shared/testdata/dicom/', import.meta.url);

function bytesOf(chunks: Iterable<Uint8Array>): Buffer {
  return Buffer.concat([...chunks]);
}

function source(bytes: Uint8Array, chunkSize = 4096): AsyncIterable<Uint8Array> {
  return Readable.from((function* () {
    for (let i = 0; i < bytes.length; i += chunkSize) yield bytes.subarray(i, i + chunkSize);
  })());
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

async function blobCount(archive: Archive): Promise<number> {
  let n = 0;
  for await (const _ of archive.blobs.list()) n++;
  return n;
}

for (const combination of ENGINE_COMBINATIONS) {
  describe(`archive contract on ${combination}`, () => {
    let t: TestArchive;
    let archive: Archive;
    before(async () => {
      t = await createTestArchive(combination);
      archive = t.archive;
    });
    after(async () => await t?.cleanup());

    test('stores an instance, indexes it at every level and returns it byte-exact', async () => {
      const ct = await readFile(new URL('CT_small.dcm', TESTDATA));
      const result = await archive.ingest.ingest(source(ct), { source: 'test' });
      assert.equal(result.status, 'stored');
      assert.ok(result.status === 'stored');
      const instance = await archive.index.findInstance(result.sopInstanceUid);
      assert.ok(instance);
      assert.equal(instance.sizeBytes, ct.length);
      const { bytes } = await archive.retrieve.openInstance(result.sopInstanceUid);
      assert.deepEqual(await readAll(bytes), ct);
      // The bare data set, as DIMSE sends it: everything after the File Meta Information.
      const reader = new Part10Reader();
      reader.push(ct);
      const { dataset } = await archive.retrieve.openDataset(result.sopInstanceUid);
      assert.deepEqual(await collect(dataset), ct.subarray(reader.end().datasetOffset));
      // Frames are served by ranged reads at the recorded pixel data position.
      const layout = await archive.index.pixelDataLayout(result.sopInstanceUid);
      assert.ok(layout);
      assert.equal(layout.length, 128 * 128 * 2);
      assert.deepEqual(await readAll(await archive.blobs.read(result.blobKey, { start: layout.offset, end: layout.offset + layout.length })),
        ct.subarray(layout.offset, layout.offset + layout.length));
      const study = await archive.index.getStudy(result.studyInstanceUid);
      assert.ok(study);
      assert.equal(study.patient.patientName, 'CompressedSamples^CT1');
      assert.equal(study.numberOfStudyRelatedInstances, 1);
      assert.equal(study.numberOfStudyRelatedSeries, 1);
      assert.deepEqual(study.modalitiesInStudy, ['CT']);
      assert.deepEqual(study.sopClassesInStudy, ['1.2.840.10008.5.1.4.1.1.2']);
      const metadata = (await archive.index.instanceMetadata(result.sopInstanceUid)) as Record<string, any>;
      assert.deepEqual(metadata['00100010'].Value, [{ Alphabetic: 'CompressedSamples^CT1' }]);
      assert.match(metadata['7FE00010'].BulkDataURI, /^bulkdata\//);
      assert.equal(metadata['7FE00010'].InlineBinary, undefined);
    });

    test('records where encapsulated pixel data fragments lie', async () => {
      const jpeg = await readFile(new URL('SC_rgb_jpeg_dcmtk.dcm', TESTDATA));
      const result = await archive.ingest.ingest(source(jpeg), { source: 'test' });
      assert.ok(result.status === 'stored' || result.status === 'duplicate', JSON.stringify(result));
      const layout = await archive.index.pixelDataLayout(result.sopInstanceUid);
      assert.ok(layout?.fragments?.length);
      const [offset] = layout.fragments[0];
      assert.deepEqual([...jpeg.subarray(offset, offset + 2)], [0xff, 0xd8], 'the first fragment starts a JPEG stream');
    });

    test('an identical duplicate succeeds without a second copy', async () => {
      const bytes = bytesOf(syntheticInstance({ rows: 16, columns: 16, seed: 1 }));
      const first = await archive.ingest.ingest(source(bytes), { source: 'test' });
      const blobsBefore = await blobCount(archive);
      const again = await archive.ingest.ingest(source(bytes), { source: 'test' });
      assert.equal(first.status, 'stored');
      assert.equal(again.status, 'duplicate');
      assert.equal(await blobCount(archive), blobsBefore);

      // The same data set behind another File Meta Information (as C-STORE rebuilds it) is the same object.
      const reader = new Part10Reader();
      reader.push(bytes);
      const header = reader.end();
      const otherMeta = encodeFileMeta({
        mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', mediaStorageSOPInstanceUID: (first as { sopInstanceUid: string }).sopInstanceUid,
        transferSyntaxUID: header.transferSyntaxUID, sourceApplicationEntityTitle: 'ANOTHER_AE',
      });
      const viaNetwork = await archive.ingest.ingest(source(Buffer.concat([otherMeta, bytes.subarray(header.datasetOffset)])), { source: 'test' });
      assert.equal(viaNetwork.status, 'duplicate');
      assert.equal(await blobCount(archive), blobsBefore);
    });

    test('different bytes under a stored SOP Instance UID are rejected by default and the stored copy is untouched', async () => {
      const sopInstanceUid = generateUid();
      const original = bytesOf(syntheticInstance({ rows: 16, columns: 16, seed: 2, sopInstanceUid }));
      const changed = bytesOf(syntheticInstance({ rows: 16, columns: 16, seed: 3, sopInstanceUid }));
      assert.equal((await archive.ingest.ingest(source(original), { source: 'test' })).status, 'stored');
      const result = await archive.ingest.ingest(source(changed), { source: 'test', originalName: 'changed.dcm' });
      assert.equal(result.status, 'quarantined');
      assert.ok(result.status === 'quarantined');
      assert.equal(result.reasonCode, 'duplicate-conflict');
      const { bytes } = await archive.retrieve.openInstance(sopInstanceUid);
      assert.deepEqual(await readAll(bytes), original);
      assert.deepEqual(await readAll(await archive.retrieve.openQuarantined(result.quarantineId)), changed);
    });

    test('version and overwrite policies', async () => {
      const versioning = await t.reopen({ duplicatePolicy: 'version' });
      const sopInstanceUid = generateUid();
      const v1 = bytesOf(syntheticInstance({ rows: 8, columns: 8, seed: 4, sopInstanceUid }));
      const v2 = bytesOf(syntheticInstance({ rows: 8, columns: 8, seed: 5, sopInstanceUid }));
      const v3 = bytesOf(syntheticInstance({ rows: 8, columns: 8, seed: 6, sopInstanceUid }));
      await versioning.ingest.ingest(source(v1), { source: 'test' });
      const second = await versioning.ingest.ingest(source(v2), { source: 'test' });
      assert.ok(second.status === 'stored' && second.replaced === 'versioned');
      assert.deepEqual(await readAll((await versioning.retrieve.openInstance(sopInstanceUid)).bytes), v2);
      const objects: string[] = [];
      for await (const o of versioning.index.storedObjects()) if (o.sopInstanceUid === sopInstanceUid) objects.push(o.where);
      assert.deepEqual(objects.sort(), ['instance', 'version']);

      const overwriting = await t.reopen({ duplicatePolicy: 'overwrite' });
      const replacedKey = (await overwriting.index.findInstance(sopInstanceUid))!.blobKey;
      const third = await overwriting.ingest.ingest(source(v3), { source: 'test' });
      assert.ok(third.status === 'stored' && third.replaced === 'overwritten');
      assert.deepEqual(await readAll((await overwriting.retrieve.openInstance(sopInstanceUid)).bytes), v3);
      assert.equal(await overwriting.blobs.stat(replacedKey), null);
    });

    test('a truncated file is quarantined whole with the element and offset, and nothing else changes', async () => {
      const before = await archive.index.statistics();
      const broken = await readFile(new URL('MR_truncated.dcm', TESTDATA));
      const result = await archive.ingest.ingest(source(broken), { source: 'test', originalName: 'MR_truncated.dcm' });
      assert.equal(result.status, 'quarantined');
      assert.ok(result.status === 'quarantined');
      assert.match(result.reasonCode, /truncat/);
      assert.ok(result.byteOffset !== null && result.byteOffset > 0);
      assert.match(result.element ?? '', /^\([0-9A-F]{4},[0-9A-F]{4}\)$/);
      const entry = await archive.index.getQuarantined(result.quarantineId);
      assert.equal(entry?.originalName, 'MR_truncated.dcm');
      assert.deepEqual(await readAll(await archive.retrieve.openQuarantined(result.quarantineId)), broken);
      const after = await archive.index.statistics();
      assert.equal(after.instances, before.instances);
      assert.equal(after.quarantined, before.quarantined + 1);
    });

    test('concurrent ingests into one series neither duplicate rows nor lose counts', async () => {
      const studyInstanceUid = generateUid();
      const instances = [...syntheticSeries(40, { rows: 8, columns: 8, studyInstanceUid, seed: 100 })].map(bytesOf);
      // Every instance twice, all at once: 40 stored, 40 identical duplicates.
      const results = await Promise.all([...instances, ...instances].map((b) => archive.ingest.ingest(source(b, 97), { source: 'test' })));
      assert.equal(results.filter((r) => r.status === 'stored').length, 40);
      assert.equal(results.filter((r) => r.status === 'duplicate').length, 40);
      const study = await archive.index.getStudy(studyInstanceUid);
      assert.equal(study?.numberOfStudyRelatedInstances, 40);
      assert.equal(study?.numberOfStudyRelatedSeries, 1);
      const series = await archive.index.listSeries(studyInstanceUid, { limit: 10, offset: 0 });
      assert.equal(series.total, 1);
      assert.equal(series.items[0].numberOfSeriesRelatedInstances, 40);
      assert.equal((await archive.index.listInstances(series.items[0].seriesInstanceUid, { limit: 100, offset: 0 })).total, 40);
    });

    test('study listing filters: wildcard names, date ranges, modality, accession', async () => {
      const studyInstanceUid = generateUid();
      const bytes = bytesOf(syntheticInstance({ rows: 8, columns: 8, studyInstanceUid, patientName: 'Müller^Jürgen', patientId: 'FILTER-1', studyDate: '20240315', accessionNumber: 'A-777', modality: 'MR' }));
      await archive.ingest.ingest(source(bytes), { source: 'test' });
      const find = async (filter: Record<string, string>) =>
        (await archive.index.listStudies(filter, { limit: 100, offset: 0 })).items.map((s) => s.studyInstanceUid).includes(studyInstanceUid);
      assert.equal(await find({ patientName: 'muller*' }), true);
      assert.equal(await find({ patientName: 'MÜLLER^JÜRGEN' }), true);
      assert.equal(await find({ patientName: 'meier*' }), false);
      assert.equal(await find({ studyDate: '20240301-20240331' }), true);
      assert.equal(await find({ studyDate: '20240316-' }), false);
      assert.equal(await find({ modality: 'MR', patientId: 'FILTER-?' }), true);
      assert.equal(await find({ modality: 'CT', patientId: 'FILTER-1' }), false);
      assert.equal(await find({ accessionNumber: 'A-777' }), true);
    });

    test('deleting an instance, a series and a study keeps counts right and removes the blobs', async () => {
      const studyInstanceUid = generateUid();
      const series = [...syntheticSeries(3, { rows: 8, columns: 8, studyInstanceUid, seed: 300 })].map(bytesOf);
      const other = bytesOf(syntheticInstance({ rows: 8, columns: 8, studyInstanceUid, seed: 400 }));
      const stored = [];
      for (const b of [...series, other]) stored.push(await archive.ingest.ingest(source(b), { source: 'test' }));
      const first = stored[0];
      assert.ok(first.status === 'stored');
      const key = first.blobKey;
      await archive.deletion.delete('instance', first.sopInstanceUid);
      assert.equal(await archive.blobs.stat(key), null);
      assert.equal((await archive.index.getStudy(studyInstanceUid))?.numberOfStudyRelatedInstances, 3);
      await archive.deletion.delete('series', first.seriesInstanceUid);
      const study = await archive.index.getStudy(studyInstanceUid);
      assert.equal(study?.numberOfStudyRelatedInstances, 1);
      assert.equal(study?.numberOfStudyRelatedSeries, 1);
      await archive.deletion.delete('study', studyInstanceUid);
      assert.equal(await archive.index.getStudy(studyInstanceUid), null);
      await assert.rejects(archive.deletion.delete('study', studyInstanceUid), /no study/);
    });

    test('verify finds a corrupted object and passes an intact archive', async () => {
      const { verifyArchive } = await import('./verify.ts');
      const clean = await verifyArchive(archive.index, archive.blobs);
      assert.deepEqual(clean.problems, []);
      assert.ok(clean.checked > 0);
      const bytes = bytesOf(syntheticInstance({ rows: 8, columns: 8, seed: 500 }));
      const result = await archive.ingest.ingest(source(bytes), { source: 'test' });
      assert.ok(result.status === 'stored');
      const corrupted = Buffer.from(bytes);
      corrupted[corrupted.length - 1] ^= 0xff;
      const writer = await archive.blobs.createWriter(result.blobKey);
      await writer.write(corrupted);
      await writer.commit();
      const report = await verifyArchive(archive.index, archive.blobs);
      assert.deepEqual(report.problems.map((p) => [p.kind, p.sopInstanceUid]), [['checksum-mismatch', result.sopInstanceUid]]);
      await archive.deletion.delete('instance', result.sopInstanceUid);
    });

    test('the index survives a restart: another node opens the same storage and sees everything', async () => {
      const stats = await archive.index.statistics();
      const other = await t.reopen();
      assert.deepEqual(await other.index.statistics(), stats);
    });
  });
}
