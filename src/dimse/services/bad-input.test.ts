// End-to-end, service level: what Atrium does with callers and objects it must refuse (the association layer's
// own tests cover malformed PDUs).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { killAllChildren, runTool } from '../../../test/support/dcmtk.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { requestAssociation } from '../requestor.ts';
import { CommandField } from '../command.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';
import * as TS from '../../dicom/transfer-syntax.ts';

const CORPUS = '/work/shared/testdata/dicom';
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

async function waitUntil(cond: () => Promise<boolean>, what: string, limitMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('service-level refusals', { timeout: 300_000 }, () => {
  let t: TestArchive;
  let dicom: DicomService;
  let work: string;
  const incoming = () => readdir(path.join(t.config.dataDir, 'blobs', '.incoming')).catch(() => [] as string[]);
  const aec = () => t.archive.config.dicom.aeTitle;

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    dicom = await startDicomService(t.archive, { port: 0 });
    work = await mkdtemp(path.join(os.tmpdir(), 'atrium-bad-input-'));
  });
  after(async () => {
    await dicom?.close();
    await t?.cleanup();
    killAllChildren();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('an unknown called AE title: the association is rejected', async () => {
    const r = await runTool('echoscu', ['-v', '-aec', 'NOT_ATRIUM', '127.0.0.1', String(dicom.port)], { timeoutMs: 30_000 });
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /Association Rejected/i);
    assert.match(r.output, /Called AE Title Not Recognized/i, r.output);
    const ok = await runTool('echoscu', ['-aec', aec(), '127.0.0.1', String(dicom.port)], { timeoutMs: 30_000 });
    assert.equal(ok.code, 0, ok.output);
  });

  test('an unsupported SOP class (storescu): its context is rejected, storescu says so, the object beside it is stored', async () => {
    // storescu ignores files whose SOP class it does not know as storage, so a class DCMTK knows and Atrium does
    // not serve: Hardcopy Grayscale Image Storage (retired, outside the 1.2.840.10008.5.1.4.1.1 storage arc).
    const hardcopy = '1.2.840.10008.5.1.1.29';
    const file = path.join(work, 'hardcopy.dcm');
    await copyFile(path.join(CORPUS, 'CT_small.dcm'), file);
    await chmod(file, 0o644); // the corpus is read-only
    const uid = generateUid();
    // dcmodify updates the file meta (0002,0002/0003) from the data set.
    const m = await runTool('dcmodify', ['-nb', '-m', `(0008,0016)=${hardcopy}`, '-m', `(0008,0018)=${uid}`, file], { timeoutMs: 30_000 });
    assert.equal(m.code, 0, m.output);

    const r = await runTool('storescu', ['-v', '+v', '-R', '-nh', '-aec', aec(), '127.0.0.1', String(dicom.port), file, path.join(CORPUS, 'MR_small.dcm')],
      { timeoutMs: 60_000 });
    // With -nh storescu goes on after the file it could not send, and exits 0: its log is what tells.
    assert.match(r.output, /Context ID:\s+\d+ \(Abstract Syntax Not Supported\)\s+I:\s+Abstract Syntax: =RETIRED_HardcopyGrayscaleImageStorage/, r.output);
    assert.match(r.output, /No presentation context for: \(\w+\) 1\.2\.840\.10008\.5\.1\.1\.29/i, r.output);
    assert.match(r.output, /Received Store Response \(Success\)/);
    assert.equal(await t.archive.index.findInstance(uid), null);
    assert.ok(await t.archive.index.findInstance('1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457'));

    // Alone, it leaves nothing acceptable: the association itself is refused.
    const alone = await runTool('storescu', ['-v', '-R', '-aec', aec(), '127.0.0.1', String(dicom.port), file], { timeoutMs: 60_000 });
    assert.notEqual(alone.code, 0, alone.output);
    assert.match(alone.output, /Association Rejected/i, alone.output);
    assert.equal(await t.archive.index.findInstance(uid), null);
  });

  test('a private SOP class (our requestor): "abstract syntax not supported" for it, the standard context beside it accepted', async () => {
    const assoc = await requestAssociation({ host: '127.0.0.1', port: dicom.port, callingAETitle: 'RAWSCU', calledAETitle: aec(),
      contexts: [
        { abstractSyntax: '1.3.6.1.4.1.99999.1.1', transferSyntaxes: [TS.ExplicitVRLittleEndian] },
        { abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS.ExplicitVRLittleEndian] },
      ] });
    try {
      const [priv, ct] = assoc.contexts;
      assert.equal(priv.accepted, false);
      assert.equal(priv.result, 3, 'abstract syntax not supported (acceptUnknownSopClasses is off)');
      assert.equal(ct.accepted, true);
    } finally {
      await assoc.release().catch(() => assoc.abort());
    }
  });

  test('a C-STORE whose SOP class differs from its presentation context is refused (0x0122), nothing stored', async () => {
    const uid = generateUid();
    const bytes = Buffer.concat([...syntheticInstance({ sopInstanceUid: uid, rows: 8, columns: 8 })]);
    const mr = '1.2.840.10008.5.1.4.1.1.4';
    const assoc = await requestAssociation({ host: '127.0.0.1', port: dicom.port, callingAETitle: 'RAWSCU', calledAETitle: aec(),
      contexts: [{ abstractSyntax: mr, transferSyntaxes: [TS.ExplicitVRLittleEndian] }] });
    try {
      const pc = assoc.findContext(mr)!;
      let status: number | undefined;
      const { fileMetaLength } = await import('../../dicom/part10-writer.ts');
      for await (const rsp of assoc.request(pc.id, { CommandField: CommandField.C_STORE_RQ, AffectedSOPClassUID: CT_IMAGE_STORAGE, AffectedSOPInstanceUID: uid, Priority: 0 },
        bytes.subarray(fileMetaLength(bytes)!))) status = rsp.command.Status;
      assert.equal(status, 0x0122);
    } finally {
      await assoc.release().catch(() => assoc.abort());
    }
    assert.equal(await t.archive.index.findInstance(uid), null);
  });

  test('a peer that aborts in the middle of an object: nothing stored, no blob left in .incoming, the archive still answers', async () => {
    const before = await t.archive.index.statistics();
    const uid = generateUid();
    const chunks = [...syntheticInstance({ sopInstanceUid: uid, rows: 512, columns: 512 })];
    const { fileMetaLength } = await import('../../dicom/part10-writer.ts');
    const whole = Buffer.concat(chunks);
    const dataset = whole.subarray(fileMetaLength(whole)!);
    const assoc = await requestAssociation({ host: '127.0.0.1', port: dicom.port, callingAETitle: 'ABORTER', calledAETitle: aec(),
      contexts: [{ abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [TS.ExplicitVRLittleEndian] }] });
    const pc = assoc.findContext(CT_IMAGE_STORAGE)!;
    assert.ok(pc);
    async function* halfThenAbort(): AsyncIterable<Uint8Array> {
      yield dataset.subarray(0, dataset.length >> 1);
      // Atrium has begun ingesting (its temporary blob exists) before we go away.
      await waitUntil(async () => (await incoming()).length > 0, 'the temporary blob of the incoming object');
      assoc.abort();
      throw new Error('the sender gave up');
    }
    await assert.rejects(async () => {
      for await (const _ of assoc.request(pc.id, { CommandField: CommandField.C_STORE_RQ, AffectedSOPClassUID: CT_IMAGE_STORAGE, AffectedSOPInstanceUID: uid, Priority: 0 },
        halfThenAbort()));
    });
    await assoc.closed;
    await waitUntil(async () => (await incoming()).length === 0, 'the temporary blob to be removed');
    const after = await t.archive.index.statistics();
    assert.equal(await t.archive.index.findInstance(uid), null);
    assert.equal(after.instances, before.instances);
    assert.equal(after.quarantined, before.quarantined, 'an interrupted transfer is not a quarantined object');

    const echo = await runTool('echoscu', ['-aec', aec(), '127.0.0.1', String(dicom.port)], { timeoutMs: 30_000 });
    assert.equal(echo.code, 0, echo.output);
    const store = await runTool('storescu', ['-aec', aec(), '127.0.0.1', String(dicom.port), path.join(CORPUS, 'CT_small.dcm')], { timeoutMs: 60_000 });
    assert.equal(store.code, 0, store.output);
  });

});
