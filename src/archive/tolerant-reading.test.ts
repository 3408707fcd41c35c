// Issue 16, tolerant reading of what real equipment sends: objects whose VRs a gateway replaced with UN, files
// without File Meta, UIDs that break PS3.5 9.1, the same instance again in another transfer syntax. Each is
// ingested for real and checked through what clients see: DCMTK findscu (C-FIND), QIDO-RS and WADO-RS.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { allVrsToUn, parse, readTestFile, TESTDATA } from '../../test/support/codec.ts';
import { dumpValues, filesIn, killAllChildren, runTool } from '../../test/support/dcmtk.ts';
import { get, parseMultipart, startDicomwebServer, type DicomwebServer } from '../../test/support/dicomweb.ts';
import { startDicomService, type DicomService } from '../dimse/services/dicom-service.ts';
import { PixelData } from '../dicom/tags.ts';
import { importPaths } from './import/folder-import.ts';
import { IngestService } from './ingest.ts';
import { pino } from 'pino';
import { Metrics } from '../observability/metrics.ts';
import type { InvalidUidPolicy } from '../ports/index-store.ts';
import { copyFile, mkdir, readFile } from 'node:fs/promises';

describe('tolerant reading (issue 16)', { timeout: 300_000 }, () => {
  let t: TestArchive;
  let dicom: DicomService;
  let web: DicomwebServer;
  let work: string;

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    dicom = await startDicomService(t.archive, { port: 0 });
    web = await startDicomwebServer(t.archive);
    work = await mkdtemp(path.join(os.tmpdir(), 'atrium-tolerant-'));
    await t.archive.peers.upsert({ aeTitle: 'FINDSCU', host: '127.0.0.1', port: 104, operations: ['echo', 'find'] });
  });
  after(async () => {
    await web?.close();
    await dicom?.close();
    await t?.cleanup();
    killAllChildren();
    if (work) await rm(work, { recursive: true, force: true });
  });

  let runs = 0;
  /** findscu at IMAGE level (Study Root) for one SOP Instance UID: the dumped values of `read`. */
  async function findImage(studyUid: string, seriesUid: string, sopUid: string, read: string[]) {
    const dir = path.join(work, `find${++runs}`);
    await runTool('mkdir', ['-p', dir]);
    const r = await runTool('findscu', [
      '-S', '-X', '-od', dir, '-aet', 'FINDSCU', '-aec', t.archive.config.dicom.aeTitle,
      '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${studyUid}`, '-k', `SeriesInstanceUID=${seriesUid}`, '-k', `SOPInstanceUID=${sopUid}`,
      ...read.filter((k) => !/^(StudyInstanceUID|SeriesInstanceUID|SOPInstanceUID)$/.test(k)).flatMap((k) => ['-k', k]), '127.0.0.1', String(dicom.port),
    ], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const responses = [];
    for (const f of await filesIn(dir)) responses.push(await dumpValues(f, read));
    return responses;
  }

  const ingest = (bytes: Uint8Array, name: string) => t.archive.ingest.ingest([bytes], { source: 'test', originalName: name });
  const value = (json: any, tag: string) => json?.[tag]?.Value?.[0];

  test('1. VR UN of dictionary tags (a gateway lost the VRs) is read with the dictionary VR; the bytes are kept as received', async () => {
    for (const [name, keep] of [['JPEG2000.dcm', [PixelData]], ['MR_small_jp2klossless.dcm', []], ['CT_small.dcm', []]] as const) {
      const original = readTestFile(name);
      const un = allVrsToUn(original, [...keep]);
      const result = await ingest(un, `un-${name}`);
      assert.equal(result.status, 'stored', `${name}: ${JSON.stringify(result)}`);
      if (result.status !== 'stored') continue;
      // The archive keeps what it received, byte for byte.
      const wado = await get(`${web.base}/studies/${result.studyInstanceUid}/series/${result.seriesInstanceUid}/instances/${result.sopInstanceUid}`,
        { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' });
      assert.equal(wado.status, 200);
      assert.ok(wado.body.includes(Buffer.from(un.subarray(132))), `${name}: WADO-RS returns the received bytes`);

      // WADO-RS metadata, QIDO-RS and C-FIND give the dictionary VRs and values, as for the original.
      const [meta] = (await get(`${web.base}/studies/${result.studyInstanceUid}/series/${result.seriesInstanceUid}/instances/${result.sopInstanceUid}/metadata`)).json();
      assert.deepEqual(meta['00080018'], { vr: 'UI', Value: [result.sopInstanceUid] });
      assert.equal(meta['00100010'].vr, 'PN');
      assert.equal(meta['00280010'].vr, 'US');
      assert.equal(typeof value(meta, '00280010'), 'number');
      const qido = (await get(`${web.base}/studies?StudyInstanceUID=${result.studyInstanceUid}&includefield=00100010`)).json();
      assert.equal(qido.length, 1);
      assert.equal(value(qido[0], '0020000D'), result.studyInstanceUid);
      const instances = (await get(`${web.base}/studies/${result.studyInstanceUid}/instances?includefield=00280010`)).json();
      assert.equal(value(instances[0], '00080018'), result.sopInstanceUid);
      const [found] = await findImage(result.studyInstanceUid, result.seriesInstanceUid, result.sopInstanceUid, ['SOPInstanceUID', 'PatientName', 'Rows']);
      assert.equal(found.SOPInstanceUID, result.sopInstanceUid);
      assert.equal(found.PatientName, value(meta, '00100010').Alphabetic);
      assert.equal(Number(found.Rows), value(meta, '00280010'));
      const findings: any = await (await fetch(`${web.origin}/api/quality/findings?studyInstanceUid=${result.studyInstanceUid}&code=vr-un-read-as-dictionary`)).json();
      assert.equal(findings.total, 1, `${name}: the tolerance is recorded`);
    }
  });

  test('4. atrium import stores bare data sets (no preamble, no File Meta) with a generated File Meta, and says why not when it cannot', async () => {
    const dir = path.join(work, 'bare');
    await mkdir(dir);
    await copyFile(path.join(TESTDATA, 'ExplVR_LitEndNoMeta.dcm'), path.join(dir, 'explicit-le.dcm'));
    // Implicit VR LE and a compressed data set without meta, written by DCMTK (dcmconv -F: "write data set without file meta").
    let r = await runTool('dcmconv', ['-F', '+ti', path.join(TESTDATA, 'liver_1frame.dcm'), path.join(dir, 'implicit-le.dcm')]);
    assert.equal(r.code, 0, r.stderr);
    r = await runTool('dcmconv', ['-F', path.join(TESTDATA, 'JPEG2000.dcm'), path.join(dir, 'j2k-no-meta.dcm')]);
    assert.equal(r.code, 0, r.stderr);
    const summary = await importPaths(t.archive.ingest, [dir], { concurrency: 1, recordOutcomes: true });
    const outcome = (name: string) => summary.outcomes!.find((o) => path.basename(o.file) === name)!;
    assert.equal(summary.generatedFileMeta, 2);
    for (const [name, ts] of [['explicit-le.dcm', '1.2.840.10008.1.2.1'], ['implicit-le.dcm', '1.2.840.10008.1.2']] as const) {
      const o = outcome(name);
      assert.equal(o.status, 'stored', name);
      assert.equal(o.fileMeta, 'generated');
      const instance = (await t.archive.index.findInstance(o.sopInstanceUid!))!;
      assert.equal(instance.transferSyntaxUid, ts);
      // The stored object is a Part-10 file: the generated meta, then the file's bytes unchanged.
      const wado = await get(`${web.base}/studies/${instance.studyInstanceUid}/series/${instance.seriesInstanceUid}/instances/${o.sopInstanceUid}`,
        { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' });
      assert.equal(wado.status, 200);
      const original = await readFile(path.join(dir, name));
      assert.ok(wado.body.includes(original), `${name}: the data set is stored as it was`);
      const part = parseMultipart(wado.headers.get('content-type')!, wado.body)[0].body;
      assert.ok(part.subarray(part.length - original.length).equals(original));
      await writeFile(path.join(work, `retrieved-${name}`), part);
      const dumped = await dumpValues(path.join(work, `retrieved-${name}`), ['MediaStorageSOPInstanceUID', 'SOPInstanceUID']);
      assert.equal(dumped.MediaStorageSOPInstanceUID, o.sopInstanceUid);
      assert.equal(dumped.SOPInstanceUID, o.sopInstanceUid);
      const qido = (await get(`${web.base}/studies/${instance.studyInstanceUid}/series`)).json();
      assert.equal(value(qido[0], '0020000E'), instance.seriesInstanceUid);
      const [found] = await findImage(instance.studyInstanceUid, instance.seriesInstanceUid, o.sopInstanceUid!, ['SOPInstanceUID', 'Modality']);
      assert.equal(found.SOPInstanceUID, o.sopInstanceUid);
    }
    const j2k = outcome('j2k-no-meta.dcm');
    assert.equal(j2k.status, 'quarantined');
    assert.equal(j2k.reasonCode, 'missing-file-meta');
    const q = summary.quarantined.find((x) => x.file.endsWith('j2k-no-meta.dcm'))!;
    assert.match(q.reason, /none can be generated: its Pixel Data is encapsulated/);
  });

  test('2. UIDs breaking PS3.5 9.1: "flag" stores, indexes and serves them with a finding on the study; "quarantine" and "reject" as configured', async () => {
    const study = '1.2.840.ABC.01';
    const series = '1.2.826.0.1.3680043.2.1143.1590429688519720198888333603882344634.77'; // 67 characters
    const sop = '1.2.3.4.0x4F';
    const file = path.join(work, 'bad-uids.dcm');
    await copyFile(path.join(TESTDATA, 'SC_rgb_small_odd.dcm'), file);
    await runTool('chmod', ['u+w', file]);
    const r = await runTool('dcmodify', ['-nb', '-ie', '-m', `(0020,000d)=${study}`, '-m', `(0020,000e)=${series}`, '-m', `(0008,0018)=${sop}`, file]);
    assert.equal(r.code, 0, r.stderr);
    const bytes = new Uint8Array(await readFile(file));

    const withPolicy = (invalidUidPolicy: InvalidUidPolicy) => new IngestService({
      index: t.archive.index, blobs: t.archive.blobs, log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }),
      options: { duplicatePolicy: 'reject', invalidUidPolicy },
    });
    const quarantinedBefore = (await t.archive.index.statistics()).quarantined;
    const quarantined = await withPolicy('quarantine').ingest([bytes], { source: 'test' });
    assert.equal(quarantined.status, 'quarantined');
    assert.equal((quarantined as { reasonCode: string }).reasonCode, 'invalid-uid');
    const rejected = await withPolicy('reject').ingest([bytes], { source: 'test' });
    assert.equal(rejected.status, 'rejected');
    assert.match((rejected as { reason: string }).reason, /SOPInstanceUID \(0008,0018\) is not a valid UID \(PS3.5 9.1: characters other than digits and dots\)/);
    assert.equal((await t.archive.index.statistics()).quarantined, quarantinedBefore + 1, 'reject keeps nothing');
    assert.equal(await t.archive.index.findInstance(sop), null);

    // The default, "flag": stored as received, never rewritten.
    assert.equal(t.archive.config.ingest.invalidUidPolicy, 'flag');
    const stored = await t.archive.ingest.ingest([bytes], { source: 'test' });
    assert.equal(stored.status, 'stored', JSON.stringify(stored));
    assert.equal((stored as { studyInstanceUid: string }).studyInstanceUid, study);
    const findings: any = await (await fetch(`${web.origin}/api/quality/findings?studyInstanceUid=${encodeURIComponent(study)}`)).json();
    assert.equal(findings.total, 3, JSON.stringify(findings));
    assert.deepEqual(findings.items.map((f: any) => [f.code, f.element]).sort(), [['invalid-uid', '(0008,0018)'], ['invalid-uid', '(0020,000D)'], ['invalid-uid', '(0020,000E)']]);
    assert.ok(findings.items.every((f: any) => f.sopInstanceUid === sop && f.seriesInstanceUid === series && /stored as received/.test(f.detail)));
    assert.match(findings.items.find((f: any) => f.element === '(0020,000E)').detail, /67 characters, more than 64/);
    assert.match(findings.items.find((f: any) => f.element === '(0020,000D)').detail, /characters other than digits and dots, a component with a leading zero/);

    const [meta] = (await get(`${web.base}/studies/${study}/series/${series}/instances/${sop}/metadata`)).json();
    assert.deepEqual(meta['0020000D'].Value, [study]);
    assert.deepEqual(meta['0020000E'].Value, [series]);
    const qido = (await get(`${web.base}/studies?StudyInstanceUID=${study}`)).json();
    assert.equal(value(qido[0], '0020000D'), study);
    const instances = (await get(`${web.base}/studies/${study}/series/${series}/instances`)).json();
    assert.equal(value(instances[0], '00080018'), sop);
    const [found] = await findImage(study, series, sop, ['SOPInstanceUID', 'SeriesInstanceUID', 'StudyInstanceUID']);
    assert.deepEqual([found.StudyInstanceUID, found.SeriesInstanceUID, found.SOPInstanceUID], [study, series, sop]);
    const wado = await get(`${web.base}/studies/${study}/series/${series}/instances/${sop}`, { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' });
    assert.equal(wado.status, 200);
    assert.ok(parseMultipart(wado.headers.get('content-type')!, wado.body)[0].body.equals(Buffer.from(bytes)), 'stored byte for byte');
  });

  test('3. the same instance in another transfer syntax: one copy kept, a finding recorded; lossless wins over lossy; real conflicts go to the duplicate policy', async () => {
    const t2 = await createTestArchive('sqlite+fs', { duplicatePolicy: 'reject' });
    const web2 = await startDicomwebServer(t2.archive);
    try {
      const put = (bytes: Uint8Array, name: string) => t2.archive.ingest.ingest([bytes], { source: 'test', originalName: name });
      const findings = async (study: string): Promise<any[]> => (await (await fetch(`${web2.origin}/api/quality/findings?studyInstanceUid=${study}`)).json() as any).items;
      const mr = readTestFile('MR_small.dcm');
      const first = await put(mr, 'MR_small.dcm');
      assert.equal(first.status, 'stored');
      const { sopInstanceUid: sop, studyInstanceUid: study } = first as { sopInstanceUid: string; studyInstanceUid: string };
      // Lossless copies in five other syntaxes (the pydicom corpus has them): the same instance, the first copy kept.
      const others = ['MR_small_RLE.dcm', 'MR_small_jp2klossless.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_implicit.dcm', 'MR_small_bigendian.dcm'];
      for (const name of others) {
        const again = await put(readTestFile(name), name);
        assert.equal(again.status, 'duplicate', `${name}: ${JSON.stringify(again)}`);
      }
      const same = (await findings(study)).filter((f) => f.code === 'same-instance-other-transfer-syntax');
      assert.equal(same.length, others.length);
      assert.match(same[0].detail, /stored in 1\.2\.840\.10008\.1\.2\.1, received in .* same attributes and, decoded, the same pixels \(1 frames\)/);
      assert.equal((await t2.archive.index.findInstance(sop))!.transferSyntaxUid, '1.2.840.10008.1.2.1');
      const series = (await get(`${web2.base}/studies/${study}/series`)).json();
      assert.equal(value(series[0], '00201209'), 1, 'one instance in the series');
      const wado = await get(`${web2.base}/studies/${study}/series/${value(series[0], '0020000E')}/instances/${sop}`, { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' });
      assert.ok(parseMultipart(wado.headers.get('content-type')!, wado.body)[0].body.equals(Buffer.from(mr)), 'the first copy is the one kept');

      // Real conflicts: another attribute, or other pixels, go to the duplicate policy ("reject": quarantined).
      const renamed = path.join(work, 'rle-renamed.dcm');
      await copyFile(path.join(TESTDATA, 'MR_small_RLE.dcm'), renamed);
      await runTool('chmod', ['u+w', renamed]);
      assert.equal((await runTool('dcmodify', ['-nb', '-m', 'PatientName=OTHER^PATIENT', renamed])).code, 0);
      const conflict = await put(new Uint8Array(await readFile(renamed)), 'rle-renamed.dcm');
      assert.equal(conflict.status, 'quarantined');
      assert.equal((conflict as { reasonCode: string }).reasonCode, 'duplicate-conflict');
      const implicit = Buffer.from(readTestFile('MR_small_implicit.dcm'));
      implicit[parse(implicit).reader.pixelData!.offset + 100] ^= 0xff;
      const pixels = await put(implicit, 'implicit-one-pixel-changed.dcm');
      assert.equal(pixels.status, 'quarantined');
      const quarantine = await t2.archive.index.listQuarantine({ limit: 10, offset: 0 });
      assert.match(quarantine.items.find((q) => q.originalName === 'rle-renamed.dcm')!.reason, /other attributes \(\(0010,0010\) is/);
      assert.match(quarantine.items.find((q) => q.originalName === 'implicit-one-pixel-changed.dcm')!.reason, /other pixels \(frame 1: the decoded pixels differ\)/);

      // Lossy and lossless: the lossless copy is kept, whichever came first.
      const lossyFile = path.join(work, 'lossy.dcm');
      assert.equal((await runTool('dcmcjpeg', ['+eb', '+un', path.join(TESTDATA, 'SC_rgb_small_odd.dcm'), lossyFile])).code, 0);
      const lossy = new Uint8Array(await readFile(lossyFile));
      const lossless = readTestFile('SC_rgb_small_odd.dcm');
      const l1 = await put(lossy, 'lossy.dcm');
      assert.equal(l1.status, 'stored');
      const { sopInstanceUid: scSop, studyInstanceUid: scStudy } = l1 as { sopInstanceUid: string; studyInstanceUid: string };
      const l2 = await put(lossless, 'lossless.dcm');
      assert.equal(l2.status, 'stored', JSON.stringify(l2));
      assert.equal((l2 as { replaced?: string }).replaced, 'overwritten');
      assert.equal((await t2.archive.index.findInstance(scSop))!.transferSyntaxUid, '1.2.840.10008.1.2.1');
      const l3 = await put(lossy, 'lossy-again.dcm');
      assert.equal(l3.status, 'duplicate');
      assert.equal((await t2.archive.index.findInstance(scSop))!.transferSyntaxUid, '1.2.840.10008.1.2.1');
      assert.deepEqual((await findings(scStudy)).map((f) => f.code).sort(), ['lossless-copy-replaced-lossy', 'lossy-copy-dropped']);
      const { bytes } = await t2.archive.retrieve.openInstance(scSop);
      const chunks: Buffer[] = [];
      for await (const c of bytes) chunks.push(Buffer.from(c as Uint8Array));
      assert.ok(Buffer.concat(chunks).equals(Buffer.from(lossless)), 'the lossless copy is the one kept');
      assert.equal((await t2.archive.index.statistics()).instances, 2);
    } finally {
      await web2.close();
      await t2.cleanup();
    }
  });
});
