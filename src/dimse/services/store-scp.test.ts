// End-to-end: Atrium's C-STORE SCP against DCMTK's storescu, with the whole test corpus.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { collect, killAllChildren, parsePart10, runTool, startStorescp, type Storescp } from '../../../test/support/dcmtk.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { requestAssociation } from '../requestor.ts';
import { CommandField } from '../command.ts';
import { Status } from '../status.ts';
import * as TS from '../../dicom/transfer-syntax.ts';
import { fileMetaLength } from '../../dicom/part10-writer.ts';
import { generateUid } from '../../dicom/uid.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import type { AuditRecord } from '../../ports/audit-store.ts';

const CORPUS = '/work/shared/testdata/dicom';

/** storescu's option that makes a transfer syntax the preferred (and, for compressed ones, the only non-fallback) one. */
const PROPOSE: Record<string, string> = {
  [TS.ExplicitVRLittleEndian]: '-xe',
  [TS.ExplicitVRBigEndian]: '-xb',
  [TS.ImplicitVRLittleEndian]: '-xi',
  [TS.DeflatedExplicitVRLittleEndian]: '-xd',
  [TS.JPEGBaseline8Bit]: '-xy',
  [TS.JPEGExtended12Bit]: '-xx',
  [TS.JPEGLosslessSV1]: '-xs',
  [TS.JPEGLSLossless]: '-xt',
  [TS.JPEGLSNearLossless]: '-xu',
  [TS.JPEG2000Lossless]: '-xv',
  [TS.JPEG2000]: '-xw',
  [TS.RLELossless]: '-xr',
};

async function corpusFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...await corpusFiles(p));
    else if (!/\.(txt|json|dump|gz)$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

/** The file's transfer syntax as DCMTK reads it (from the meta), else as our reader detects it (files without meta). */
async function fileTransferSyntax(file: string, bytes: Buffer): Promise<string | undefined> {
  const r = await runTool('dcmdump', ['-q', '-Un', '+P', '0002,0010', file], { timeoutMs: 30_000 });
  const m = /\(0002,0010\) UI \[([0-9.]+)/.exec(r.stdout);
  if (m) return m[1];
  try { return parsePart10(bytes).transferSyntaxUID; } catch { return undefined; }
}

interface Sent {
  file: string;
  /** What reached a bit-preserving DCMTK storescp: the exact data set storescu puts on the wire, and its syntax. */
  wire?: { dataset: Buffer; transferSyntaxUID: string; sopInstanceUid: string };
  fileDataset?: Buffer;
  fileTransferSyntaxUID?: string;
  propose: string;
  atrium?: { code: number | null; output: string };
}

describe('C-STORE SCP with DCMTK storescu', { timeout: 600_000 }, () => {
  let t: TestArchive;
  let dicom: DicomService;
  let oracle: Storescp;
  let oracleDir: string;
  const aet = () => t.archive.config.dicom.aeTitle;
  const storescu = (propose: string, file: string, callingAE = 'STORESCU') =>
    runTool('storescu', ['-v', '-R', propose, '-aet', callingAE, '-aec', aet(), '127.0.0.1', String(dicom.port), file], { timeoutMs: 60_000 });

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    dicom = await startDicomService(t.archive, { port: 0 });
    oracleDir = await mkdtemp(path.join(os.tmpdir(), 'atrium-storescp-oracle-'));
    // +B: storescp writes the received data set exactly as read from the network.
    oracle = await startStorescp(oracleDir, { aeTitle: 'ORACLE', extraArgs: ['+B'] });
  });
  after(async () => {
    await oracle?.stop();
    await dicom?.close();
    await t?.cleanup();
    killAllChildren();
    if (oracleDir) await rm(oracleDir, { recursive: true, force: true });
  });

  test('echoscu gets a C-ECHO success', async () => {
    const r = await runTool('echoscu', ['-v', '-aec', aet(), '127.0.0.1', String(dicom.port)], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /Received Echo Response \(Success\)/);
  });

  const sent: Sent[] = [];

  test('every file of the corpus: stored as sent, in its own transfer syntax; conflicting duplicates refused', async () => {
    const files = await corpusFiles(CORPUS);
    assert.ok(files.length > 100, `corpus at ${CORPUS}: ${files.length} files`);
    for (const file of files) {
      const bytes = await readFile(file);
      const ts = await fileTransferSyntax(file, bytes);
      const entry: Sent = { file, propose: (ts && PROPOSE[ts]) ?? '-xe' };
      try {
        const parsed = parsePart10(bytes);
        entry.fileDataset = parsed.dataset;
        entry.fileTransferSyntaxUID = parsed.transferSyntaxUID;
      } catch { /* our reader refuses it: DCMTK may too */ }
      // What does storescu put on the wire for this file? Ask a bit-preserving storescp.
      const o = await runTool('storescu', ['-R', entry.propose, '-aec', 'ORACLE', '127.0.0.1', String(oracle.port), file], { timeoutMs: 60_000 });
      const received = (await readdir(oracleDir)).filter((n) => !n.startsWith('.'));
      assert.ok(received.length <= 1, `storescp wrote ${received.join(', ')}`);
      if (received.length === 1) {
        assert.equal(o.code, 0, `storescu to storescp: ${o.output}`);
        const p = path.join(oracleDir, received[0]);
        const rx = parsePart10(await readFile(p));
        await unlink(p);
        const sopInstanceUid = new TextDecoder().decode(rx.header.fileMeta!.elements.find((e) => e.tag === 0x00020003)!.value!).replace(/\0+$/, '');
        entry.wire = { dataset: rx.dataset, transferSyntaxUID: rx.transferSyntaxUID, sopInstanceUid };
      }
      entry.atrium = await storescu(entry.propose, file);
      sent.push(entry);
    }

    // The outcome Atrium must give, from what was on the wire: the first data set under a SOP Instance UID is
    // stored; the same bytes again are a success (duplicate); other bytes under that UID are refused (0x0111).
    const first = new Map<string, Sent>();
    let conflicts = 0;
    let sameInstance = 0;
    const unsendable: string[] = [];
    for (const s of sent) {
      const rel = path.relative(CORPUS, s.file);
      if (!s.wire) {
        // DCMTK could not read it (truncated, no SOP Instance UID, not DICOM...): storescu sends nothing.
        assert.notEqual(s.atrium!.code, 0, `${rel}: storescu refused it towards storescp but not towards Atrium`);
        assert.doesNotMatch(s.atrium!.output, /Sending Store Request/, rel);
        unsendable.push(rel);
        continue;
      }
      // The point of proposing each file's own syntax: a file is sent as it is, never transcoded.
      if (s.fileTransferSyntaxUID && s.fileDataset && s.fileDataset.length > 0 && parsePart10(await readFile(s.file)).header.fileMeta) {
        assert.equal(s.wire.transferSyntaxUID, s.fileTransferSyntaxUID, `${rel}: storescu changed the transfer syntax`);
      }
      const earlier = first.get(s.wire.sopInstanceUid);
      if (!earlier) {
        first.set(s.wire.sopInstanceUid, s);
        assert.equal(s.atrium!.code, 0, `${rel} should be stored: ${s.atrium!.output}`);
        assert.match(s.atrium!.output, /Received Store Response \(Success\)/, rel);
      } else if (earlier.wire!.dataset.equals(s.wire.dataset) && earlier.wire!.transferSyntaxUID === s.wire.transferSyntaxUID) {
        assert.equal(s.atrium!.code, 0, `${rel} is an identical duplicate of ${path.relative(CORPUS, earlier.file)}: ${s.atrium!.output}`);
      } else if (earlier.wire!.transferSyntaxUID !== s.wire.transferSyntaxUID && s.atrium!.code === 0) {
        // The same instance in another transfer syntax, found equal once decoded (issue 16): one copy, success.
        conflicts++;
        sameInstance++;
        assert.match(s.atrium!.output, /Received Store Response \(Success\)/, rel);
      } else {
        conflicts++;
        assert.notEqual(s.atrium!.code, 0, `${rel} conflicts with ${path.relative(CORPUS, earlier.file)} yet storescu succeeded`);
        assert.match(s.atrium!.output, /Store Response \(.*0x111\)/, `${rel}: expected Duplicate SOP Instance (0x0111): ${s.atrium!.output}`);
      }
    }
    assert.ok(conflicts >= 10, `the corpus has many same-UID variants; ${conflicts} seen`);
    // DCMTK itself refuses the broken files and the DICOMDIRs (not a storage SOP class); the rest it sends.
    for (const broken of ['MR_truncated.dcm', 'rtplan_truncated.dcm', 'dicomdirtests/DICOMDIR']) assert.ok(unsendable.includes(broken), broken);
    assert.ok(unsendable.length < 25, `unsendable: ${unsendable.join(', ')}`);

    // What is stored is byte for byte what was sent, in the syntax it was sent in. (storescu re-encodes what
    // it parsed: it drops data set group lengths and re-deflates, so for some files the wire bytes are not the
    // file's; the bit-preserving storescp tells what was actually sent.)
    let identicalToFile = 0;
    for (const [uid, s] of first) {
      const rel = path.relative(CORPUS, s.file);
      const { instance, dataset } = await t.archive.retrieve.openDataset(uid);
      const stored = await collect(dataset);
      assert.equal(instance.transferSyntaxUid, s.wire!.transferSyntaxUID, `${rel}: stored transfer syntax`);
      assert.ok(stored.equals(s.wire!.dataset), `${rel}: stored data set (${stored.length} bytes) differs from the one sent (${s.wire!.dataset.length} bytes)`);
      if (s.fileDataset && stored.equals(s.fileDataset)) identicalToFile++;
    }
    assert.ok(identicalToFile >= first.size / 2, `${identicalToFile} of ${first.size} stored data sets are byte-identical to their file's`);

    // Nothing half-stored: one instance per first-sent UID, one quarantine entry per conflict, no temporary blob.
    const stats = await t.archive.index.statistics();
    assert.equal(stats.instances, first.size);
    assert.equal(stats.quarantined, conflicts - sameInstance);
    assert.deepEqual(await readdir(path.join(t.config.dataDir, 'blobs', '.incoming')).catch(() => []), []);
  });

  test('every sendable file, each variant in turn (overwrite policy): stored as sent, compressed syntaxes included', async () => {
    // Under "reject" the same-UID variants (MR_small in RLE, JPEG-LS, J2K...) are refused; an archive that
    // overwrites shows that each of them, too, is stored exactly as it arrived.
    assert.ok(sent.length > 0, 'runs after the corpus test');
    const o = await createTestArchive('sqlite+fs', { duplicatePolicy: 'overwrite' });
    const service = await startDicomService(o.archive, { port: 0 });
    const syntaxes = new Set<string>();
    try {
      for (const s of sent.filter((x) => x.wire)) {
        const rel = path.relative(CORPUS, s.file);
        const r = await runTool('storescu', ['-v', '-R', s.propose, '-aec', o.archive.config.dicom.aeTitle, '127.0.0.1', String(service.port), s.file], { timeoutMs: 60_000 });
        assert.equal(r.code, 0, `${rel}: ${r.output}`);
        const { instance, dataset } = await o.archive.retrieve.openDataset(s.wire!.sopInstanceUid);
        const stored = await collect(dataset);
        if (instance.transferSyntaxUid !== s.wire!.transferSyntaxUID) {
          // An equal lossless copy in another syntax keeps the one stored (issue 16): it was sent before.
          assert.ok(sent.some((x) => x.wire?.sopInstanceUid === s.wire!.sopInstanceUid && x.wire.transferSyntaxUID === instance.transferSyntaxUid), rel);
          if (s.fileTransferSyntaxUID === s.wire!.transferSyntaxUID) syntaxes.add(s.wire!.transferSyntaxUID);
          continue;
        }
        assert.ok(stored.equals(s.wire!.dataset), `${rel}: stored data set differs from the one sent`);
        if (s.fileTransferSyntaxUID === s.wire!.transferSyntaxUID) syntaxes.add(instance.transferSyntaxUid);
      }
      for (const ts of [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian, TS.ExplicitVRBigEndian, TS.DeflatedExplicitVRLittleEndian,
        TS.JPEGBaseline8Bit, TS.JPEGExtended12Bit, TS.JPEGLosslessSV1, TS.JPEGLSLossless, TS.JPEG2000Lossless, TS.JPEG2000, TS.RLELossless]) {
        assert.ok(syntaxes.has(ts), `nothing was stored (or accepted as the same instance) in ${ts}; seen: ${[...syntaxes].join(', ')}`);
      }
      const stats = await o.archive.index.statistics();
      assert.equal(stats.quarantined, 0);
      assert.equal(stats.instances, new Set(sent.filter((x) => x.wire).map((x) => x.wire!.sopInstanceUid)).size);
    } finally {
      await service.close();
      await o.cleanup();
    }
  });

  test('the same files again: every stored one succeeds as an identical duplicate, nothing new is stored', async () => {
    const before = await t.archive.index.statistics();
    const stored = new Set<string>();
    const again = sent.filter((s) => s.wire && !stored.has(s.wire.sopInstanceUid) && stored.add(s.wire.sopInstanceUid));
    assert.ok(again.length > 50);
    for (const s of again) {
      const r = await storescu(s.propose, s.file);
      assert.equal(r.code, 0, `${s.file}: ${r.output}`);
    }
    const after = await t.archive.index.statistics();
    assert.equal(after.instances, before.instances);
    assert.equal(after.quarantined, before.quarantined);
    assert.equal(after.sizeBytes, before.sizeBytes);
  });

  test('the same object from another calling AE is an identical duplicate, not a conflict', async () => {
    const file = path.join(CORPUS, 'CT_small.dcm');
    const before = await t.archive.index.statistics();
    const r = await storescu('-xe', file, 'OTHERSCU');
    assert.equal(r.code, 0, r.output);
    const after = await t.archive.index.statistics();
    assert.equal(after.quarantined, before.quarantined, 'the copy from OTHERSCU was quarantined as a conflicting duplicate');
    assert.equal(after.instances, before.instances);
  });

  test('the stores of one association are audited once per study, with their counts, when it ends', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-store-audit-'));
    try {
      const studies = [generateUid(), generateUid()];
      const files: string[] = [];
      for (const [i, studyInstanceUid] of [studies[0], studies[0], studies[0], studies[1], studies[1]].entries()) {
        const file = path.join(dir, `IM${i}.dcm`);
        await writeFile(file, await collect(syntheticInstance({ studyInstanceUid, patientId: 'AUDIT-P', rows: 16, columns: 16, seed: i })));
        files.push(file);
      }
      // One storescu run: one association for the five objects.
      const r = await runTool('storescu', ['-aet', 'AUDITSCU', '-aec', aet(), '127.0.0.1', String(dicom.port), ...files], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.output);
      let records: AuditRecord[] = [];
      for (let i = 0; i < 100 && records.length < 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50)); // the record follows the association's end
        await t.archive.audit.drain();
        records = (await t.archive.audit.search({ action: 'store', interface: 'dimse', patientId: 'AUDIT-P' }, { limit: 10, offset: 0 })).items;
      }
      const counts = Object.fromEntries(records.map((rec) => [rec.studies[0].studyInstanceUid, rec.studies[0].numberOfInstances]));
      assert.deepEqual(counts, { [studies[0]]: 3, [studies[1]]: 2 });
      assert.ok(records.every((rec) => rec.outcome === 'success' && rec.patientIds.includes('AUDIT-P') && rec.origin?.aeTitle === 'AUDITSCU'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a data set that does not parse (truncated) is refused with a failure status and nothing is kept as an instance', async () => {
    // DCMTK will not send a broken file, so our own requestor sends the bytes of one (the data set of rtplan_truncated.dcm).
    const bytes = await readFile(path.join(CORPUS, 'rtplan_truncated.dcm'));
    const broken = bytes.subarray(fileMetaLength(bytes)!);
    const before = await t.archive.index.statistics();
    const sopClass = '1.2.840.10008.5.1.4.1.1.481.5';
    const uid = '1.2.777.777.77.7.7777.7777.20030903150023';
    const assoc = await requestAssociation({
      host: '127.0.0.1', port: dicom.port, callingAETitle: 'RAWSCU', calledAETitle: aet(),
      contexts: [{ abstractSyntax: sopClass, transferSyntaxes: [TS.ImplicitVRLittleEndian] }],
    });
    try {
      const pc = assoc.findContext(sopClass)!;
      assert.ok(pc);
      let status: number | undefined;
      for await (const rsp of assoc.request(pc.id, { CommandField: CommandField.C_STORE_RQ, AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: uid + '.9', Priority: 0 }, broken)) {
        status = rsp.command.Status;
      }
      assert.ok(status !== undefined && (status & 0xf000) !== 0 && status !== Status.Success, `status 0x${status?.toString(16)}`);
      assert.equal(status, Status.CannotUnderstand);
    } finally {
      await assoc.release().catch(() => assoc.abort());
    }
    const after = await t.archive.index.statistics();
    assert.equal(after.instances, before.instances);
    assert.equal(await t.archive.index.findInstance(uid + '.9'), null);
    assert.deepEqual(await readdir(path.join(t.config.dataDir, 'blobs', '.incoming')).catch(() => []), []);
  });
});
