/**
 * The quarantine as an operator works it, over the REST API on SQLite+fs and PostgreSQL+S3: a lenient header
 * dump of broken objects, the release of an object once its cause is fixed (the configuration, a stored copy
 * deleted, attributes set, recorded in Original Attributes Sequence and in the audit trail), a release that
 * fails again (422, the entry and its bytes kept), and deletion.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { createHttpServer } from '../http/server.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { IngestService } from './ingest.ts';
import { QuarantineService } from './quarantine.ts';
import { Metrics } from '../observability/metrics.ts';
import { headerOf, setText } from '../../test/support/dicom-mutations.ts';

const TESTDATA = new URL('../../../shared/testdata/dicom/', import.meta.url);

async function json(response: Response | Promise<Response>): Promise<any> {
  return await (await response).json();
}

for (const combination of ['sqlite+fs', 'postgres+s3'] as const) {
  describe(`quarantine operations on ${combination}`, { timeout: 120_000 }, () => {
    let t: TestArchive;
    let http: FastifyInstance;
    let base: string;

    before(async () => {
      t = await createTestArchive(combination);
      http = await createHttpServer(t.archive);
      base = await http.listen({ host: '127.0.0.1', port: 0 });
    });
    after(async () => {
      await http?.close();
      await t?.cleanup();
    });

    const upload = async (bytes: Uint8Array, name: string): Promise<any> =>
      await json(fetch(`${base}/api/instances`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/dicom', 'x-file-name': name } }));
    const quarantined = async (bytes: Uint8Array, name: string): Promise<number> => {
      const result = await upload(bytes, name);
      assert.equal(result.status, 'quarantined', `${name}: ${JSON.stringify(result)}`);
      return result.quarantineId;
    };
    const release = (id: number | string, body?: unknown) => fetch(`${base}/api/quarantine/${id}/release`, {
      method: 'POST', ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const quarantineBlobs = async () => {
      const keys: string[] = [];
      for await (const o of t.archive.index.storedObjects()) if (o.where === 'quarantine') keys.push(o.blobKey);
      return keys;
    };

    test('dump: a truncated object is read as far as it goes, nested items shown with their depth, and where it stopped', async () => {
      const id = await quarantined(await readFile(new URL('rtplan_truncated.dcm', TESTDATA)), 'rtplan_truncated.dcm');
      const dump = await json(fetch(`${base}/api/quarantine/${id}/dump`));
      const patientName = dump.elements.find((e: any) => e.tag === '(0010,0010)');
      assert.deepEqual({ ...patientName, offset: undefined }, { tag: '(0010,0010)', vr: 'PN', keyword: 'PatientName', length: patientName.length, value: patientName.value, depth: 0, offset: undefined });
      assert.ok(patientName.value.length > 0);
      assert.equal(dump.elements[0].keyword, 'FileMetaInformationGroupLength', 'the File Meta comes first');
      const nested = dump.elements.filter((e: any) => e.depth > 0);
      assert.ok(nested.length > 0 && nested.every((e: any) => e.item >= 1));
      assert.ok(dump.elements.some((e: any) => e.vr === 'SQ' && /^<\d+ items?>$/.test(e.value)));
      assert.match(dump.stoppedAt, /TRUNCATED at offset 2100.*IsocenterPosition/);
      assert.equal(dump.elements.at(-1).keyword, 'IsocenterPosition');
    });

    test('dump: a damaged preamble is stepped over; pixel data and long values are summarized', async () => {
      const ct = Buffer.from(await readFile(new URL('CT_small.dcm', TESTDATA)));
      ct.write('XXXX', 128); // "DICM" damaged: the ingest cannot tell it is DICOM
      const id = await quarantined(ct, 'damaged-preamble.dcm');
      const dump = await json(fetch(`${base}/api/quarantine/${id}/dump`));
      assert.equal(dump.stoppedAt, undefined, JSON.stringify(dump.stoppedAt));
      assert.match(dump.warnings.join(' '), /no "DICM" at offset 128.*read from offset 132/);
      const pixels = dump.elements.find((e: any) => e.keyword === 'PixelData');
      assert.equal(pixels.value, `<${pixels.length} bytes>`);
      assert.ok(dump.elements.find((e: any) => e.keyword === 'PatientID' && e.value === '1CT1'));
      // A long text is cut to about 200 characters, saying how long it was.
      const long = 'A'.repeat(1000);
      const header = headerOf(await readFile(new URL('CT_small.dcm', TESTDATA)));
      const withLong = setText(await readFile(new URL('CT_small.dcm', TESTDATA)), header, 0x00081030, Buffer.from(long)); // StudyDescription
      withLong.write('XXXX', 128);
      const longId = await quarantined(withLong, 'long.dcm');
      const description = (await json(fetch(`${base}/api/quarantine/${longId}/dump`))).elements.find((e: any) => e.keyword === 'StudyDescription');
      assert.ok(description.value.length < 240 && description.value.startsWith('A'.repeat(200)) && /1000 characters/.test(description.value), description.value);
      await fetch(`${base}/api/quarantine/${longId}`, { method: 'DELETE' });
    });

    test('unknown quarantine ids are 404 problems on every route', async () => {
      for (const id of ['999999', 'abc']) {
        for (const [method, path] of [['GET', 'dump'], ['POST', 'release'], ['DELETE', '']] as const) {
          const r = await fetch(`${base}/api/quarantine/${id}${path ? `/${path}` : ''}`, { method });
          assert.equal(r.status, 404, `${method} ${id} ${path}`);
          assert.match(r.headers.get('content-type')!, /application\/problem\+json/);
          assert.match((await json(r)).detail, new RegExp(`no quarantined object ${id}`));
        }
      }
    });

    test('a truly broken (truncated) object fails its release with 422; the entry and its bytes stay', async () => {
      const broken = await readFile(new URL('rtplan_truncated.dcm', TESTDATA));
      const id = await quarantined(broken, 'again-truncated.dcm');
      const before = await quarantineBlobs();
      const r = await release(id);
      assert.equal(r.status, 422);
      const problem = await json(r);
      assert.equal(problem.quarantineId, id);
      assert.equal(problem.reasonCode, 'truncated');
      assert.match(problem.detail, /not released: .*truncated/);
      const withAttributes = await release(id, { attributes: { PatientID: 'X' } });
      assert.equal(withAttributes.status, 422);
      assert.match((await json(withAttributes)).detail, /attributes cannot be set: the object cannot be read/);
      assert.equal((await fetch(`${base}/api/quarantine/${id}`)).status, 200);
      const bytes = Buffer.from(await (await fetch(`${base}/api/quarantine/${id}/file`)).arrayBuffer());
      assert.ok(bytes.equals(broken), 'the quarantined bytes are unchanged');
      assert.deepEqual(await quarantineBlobs(), before, 'no new quarantine entry, no blob left behind');
      await t.archive.audit.drain();
      const { items } = await t.archive.audit.search({ action: 'store', outcome: 'minor-failure' }, { limit: 10, offset: 0 });
      assert.ok(items.some((a) => a.detail?.includes(`quarantined object ${id}`) && /truncated/.test(a.outcomeReason ?? '')), 'the failed release is audited');
    });

    test('a conflicting duplicate is released once the stored copy is gone; the entry and its blob go', async () => {
      const sopInstanceUid = generateUid();
      const studyInstanceUid = generateUid();
      const first = Buffer.concat([...syntheticInstance({ rows: 8, columns: 8, sopInstanceUid, studyInstanceUid, seed: 1 })]);
      const second = Buffer.concat([...syntheticInstance({ rows: 8, columns: 8, sopInstanceUid, studyInstanceUid, seed: 2 })]);
      assert.equal((await upload(first, 'first.dcm')).status, 'stored');
      const id = await quarantined(second, 'second.dcm');
      const still = await release(id);
      assert.equal(still.status, 422, 'the cause is still there');
      assert.equal((await json(still)).reasonCode, 'duplicate-conflict');
      assert.equal((await fetch(`${base}/api/instances/${sopInstanceUid}`, { method: 'DELETE' })).status, 200);
      const quarantineKey = (await t.archive.index.getQuarantined(id))!.blobKey;
      const r = await release(id, {});
      assert.equal(r.status, 200);
      const result = await json(r);
      assert.equal(result.status, 'stored');
      assert.equal(result.sopInstanceUid, sopInstanceUid);
      assert.deepEqual(result.corrections, []);
      assert.equal((await fetch(`${base}/api/quarantine/${id}`)).status, 404);
      assert.ok(!(await quarantineBlobs()).includes(quarantineKey));
      assert.equal(await t.archive.blobs.stat(quarantineKey), null, 'the quarantine copy is deleted');
      const file = Buffer.from(await (await fetch(`${base}/api/instances/${sopInstanceUid}/file`)).arrayBuffer());
      assert.ok(file.equals(second), 'what is stored is the released object');
      await t.archive.audit.drain();
      const { items } = await t.archive.audit.search({ action: 'store', studyInstanceUid }, { limit: 10, offset: 0 });
      assert.ok(items.some((a) => a.outcome === 'success' && a.interface === 'rest'), 'the release is audited as a store');
    });

    test('attributes set on release (a missing Series Instance UID, a Patient ID) are recorded in Original Attributes Sequence and in the audit trail', async () => {
      const studyInstanceUid = generateUid();
      const seriesInstanceUid = generateUid();
      const bytes = Buffer.concat([...syntheticInstance({ rows: 8, columns: 8, studyInstanceUid, seriesInstanceUid: '', patientId: 'WRONG-ID' })]);
      const id = await quarantined(bytes, 'no-series.dcm');
      assert.equal((await json(fetch(`${base}/api/quarantine/${id}`))).reasonCode, 'missing-uid');

      const invalid = await release(id, { attributes: { StudyDate: '2024-1-1', NoSuchKeyword: 'x' } });
      assert.equal(invalid.status, 400);
      assert.match((await json(invalid)).detail, /StudyDate.*YYYYMMDD.*NoSuchKeyword/);
      assert.equal((await release(id, { attributes: ['PatientID'] })).status, 400);

      const r = await release(id, { attributes: { SeriesInstanceUID: seriesInstanceUid, PatientID: 'PAT-42', InstitutionName: 'General Hospital' } });
      assert.equal(r.status, 200);
      const result = await json(r);
      assert.equal(result.status, 'stored');
      assert.equal(result.seriesInstanceUid, seriesInstanceUid);
      assert.deepEqual(result.corrections, [
        { tag: '(0008,0080)', keyword: 'InstitutionName', previous: null, value: 'General Hospital' },
        { tag: '(0010,0020)', keyword: 'PatientID', previous: 'WRONG-ID', value: 'PAT-42' },
        { tag: '(0020,000E)', keyword: 'SeriesInstanceUID', previous: '', value: seriesInstanceUid },
      ]);
      const instance = await json(fetch(`${base}/api/instances/${result.sopInstanceUid}`));
      assert.equal(instance.metadata['00100020'].Value[0], 'PAT-42');
      const original = instance.metadata['04000561'].Value;
      assert.equal(original.length, 1);
      const modified = original[0]['04000550'].Value[0];
      assert.equal(modified['00100020'].Value[0], 'WRONG-ID', 'the previous value is kept');
      assert.equal(modified['0020000E'].Value, undefined, 'it was empty');
      assert.deepEqual(modified['00080080'], { vr: 'LO' }, 'an added attribute is listed empty');
      assert.equal(instance.metadata['00080080'].Value[0], 'General Hospital');
      assert.equal(original[0]['04000565'].Value[0], 'CORRECT');
      assert.equal(original[0]['04000563'].Value[0], `ATRIUM ${t.archive.config.dicom.aeTitle}`);
      assert.equal((await json(fetch(`${base}/api/patients?patientId=PAT-42`))).total, 1);
      assert.equal((await fetch(`${base}/api/quarantine/${id}`)).status, 404);
      await t.archive.audit.drain();
      const { items } = await t.archive.audit.search({ action: 'update', studyInstanceUid }, { limit: 10, offset: 0 });
      assert.equal(items.length, 1);
      assert.match(items[0].detail ?? '', new RegExp(`quarantined object ${id} released with attributes corrected: InstitutionName \\(absent\\) -> "General Hospital", PatientID "WRONG-ID" -> "PAT-42", SeriesInstanceUID "" -> "2`));
    });

    test('after ingest.invalidUidPolicy is relaxed, an object quarantined for an invalid UID is released with a quality finding', async () => {
      const strict = new IngestService({ index: t.archive.index, blobs: t.archive.blobs, log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }),
        options: { duplicatePolicy: 'reject', invalidUidPolicy: 'quarantine' } });
      const sopInstanceUid = '1.2.826.0.1.3680043.99.01.7'; // a leading zero: PS3.5 9.1 forbids it, old equipment writes it
      const result = await strict.ingest([...syntheticInstance({ rows: 8, columns: 8, sopInstanceUid })], { source: 'dimse:OLD_CT' });
      assert.equal(result.status, 'quarantined');
      assert.ok(result.status === 'quarantined');
      // The archive's own ingest runs the default policy, "flag" (as after the operator changed it and restarted).
      const r = await release(result.quarantineId);
      assert.equal(r.status, 200);
      const released = await json(r);
      assert.equal(released.sopInstanceUid, sopInstanceUid);
      const findings = await json(fetch(`${base}/api/quality/findings?studyInstanceUid=${released.studyInstanceUid}&code=invalid-uid`));
      assert.equal(findings.total, 1);
      assert.equal((await t.archive.index.findInstance(sopInstanceUid))!.source, 'dimse:OLD_CT', 'the instance keeps the source it came from');
    });

    test('a bare data set (no File Meta) is released with a File Meta generated for it, as atrium import does', async () => {
      const bare = await readFile(new URL('ExplVR_LitEndNoMeta.dcm', TESTDATA));
      const uploaded = await upload(bare, 'bare.dcm');
      // Unless the same object was stored on an earlier run of this suite's engine, the upload is quarantined.
      assert.equal(uploaded.reasonCode, 'missing-file-meta');
      const r = await release(uploaded.quarantineId);
      assert.equal(r.status, 200, JSON.stringify(await r.clone().json()));
      const result = await json(r);
      const findings = await json(fetch(`${base}/api/quality/findings?studyInstanceUid=${result.studyInstanceUid}&code=generated-file-meta`));
      assert.equal(findings.total, 1);
    });

    test('delete removes the entry and its blob: 204, then 404', async () => {
      const id = await quarantined(new TextEncoder().encode('not DICOM at all, and never will be'), 'junk.txt');
      const key = (await t.archive.index.getQuarantined(id))!.blobKey;
      const r = await fetch(`${base}/api/quarantine/${id}`, { method: 'DELETE' });
      assert.equal(r.status, 204);
      assert.equal((await fetch(`${base}/api/quarantine/${id}`)).status, 404);
      assert.equal(await t.archive.blobs.stat(key), null);
      assert.equal((await fetch(`${base}/api/quarantine/${id}`, { method: 'DELETE' })).status, 404);
      await t.archive.audit.drain();
      const { items } = await t.archive.audit.search({ action: 'delete' }, { limit: 10, offset: 0 });
      assert.ok(items.some((a) => a.detail === `quarantined object ${id} deleted (not-dicom, junk.txt)`));
    });
  });
}

test('QuarantineService refuses attributes on objects too large to correct in memory, before reading them', async () => {
  const entry = { id: 1, sizeBytes: 300 * 1024 * 1024, reasonCode: 'missing-uid' };
  const service = new QuarantineService({
    index: { getQuarantined: async () => entry } as any, blobs: { delete: async () => {} },
    retrieve: { openQuarantined: async () => { throw new Error('must not be read'); } }, ingest: { ingest: async () => { throw new Error('must not be ingested'); } },
    log: pino({ level: 'silent' }), modifyingSystem: 'ATRIUM TEST',
  });
  await assert.rejects(service.release(1, { PatientID: 'X' }), (e: any) => e.code === 'unprocessable' && /up to 256 MiB/.test(e.message));
});
