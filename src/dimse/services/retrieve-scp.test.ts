// End-to-end: Atrium's C-MOVE and C-GET SCP against DCMTK's movescu (to a DCMTK storescp) and getscu; the
// cancel of a C-GET with our own requestor (getscu 3.6.7 cannot send a C-CANCEL).
//
// What is compared: the receivers run bit-preserving (+B), so the data set in each file they write is exactly
// the bytes Atrium put on the wire; their File Meta Information is their own (their implementation UID, and
// the transfer syntax of the presentation context). So each received file's data set (after its meta) must
// equal, byte for byte, the stored data set (`retrieve.openDataset`), and its meta's transfer syntax must be
// the stored one: Atrium sends what it stored, never transcoded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { collect, filesIn, killAllChildren, parsePart10, runTool, startStorescp, type Storescp } from '../../../test/support/dcmtk.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { syntheticSeries } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';
import * as TS from '../../dicom/transfer-syntax.ts';
import { parseDataset } from '../../dicom/parse-dataset.ts';
import { toDicomJson } from '../../dicom/dicom-json.ts';
import { requestAssociation } from '../requestor.ts';
import type { DimseResponse } from '../association.ts';
import { CommandField, Priority } from '../command.ts';
import { Status } from '../status.ts';
import { encodeJsonDataset } from './identifier.ts';
import { QueryRetrieve } from './sop-classes.ts';

const CORPUS = '/work/shared/testdata/dicom';
/** Corpus objects in distinct studies, one per transfer syntax family. */
const CORPUS_FILES = ['CT_small.dcm', 'JPEG2000.dcm', 'MR_small_RLE.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'image_dfl.dcm', 'liver_expb_1frame.dcm', 'SC_rgb_jpeg_dcmd.dcm'];

interface Stored { sopInstanceUid: string; studyInstanceUid: string; transferSyntaxUid: string }

describe('C-MOVE and C-GET SCP with DCMTK movescu, storescp and getscu', { timeout: 300_000 }, () => {
  let t: TestArchive;
  let dicom: DicomService;
  let work: string;
  let storescp: Storescp;
  let storescpDir: string;
  const studyUid = generateUid();
  const seriesUids = [generateUid(), generateUid()];
  const synthetic: string[][] = [[], []];
  const corpus = new Map<string, Stored>();
  const aec = () => t.archive.config.dicom.aeTitle;

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    dicom = await startDicomService(t.archive, { port: 0 });
    work = await mkdtemp(path.join(os.tmpdir(), 'atrium-retrieve-'));
    storescpDir = path.join(work, 'storescp');
    await mkdir(storescpDir);
    storescp = await startStorescp(storescpDir, { aeTitle: 'DEST', extraArgs: ['+B'] });
    await t.archive.peers.upsert({ aeTitle: 'DEST', host: '127.0.0.1', port: storescp.port, operations: ['echo', 'store'] });
    await t.archive.peers.upsert({ aeTitle: 'MOVESCU', host: '127.0.0.1', port: 104, operations: ['echo', 'find', 'move'] });
    await t.archive.peers.upsert({ aeTitle: 'GETSCU', host: '127.0.0.1', port: 104, operations: ['echo', 'find', 'get'] });
    for (const [i, n] of [3, 2].entries()) {
      for (const chunks of syntheticSeries(n, { patientId: 'RET001', patientName: 'RETRIEVE^ME', studyInstanceUid: studyUid, seriesInstanceUid: seriesUids[i], seriesNumber: i + 1, rows: 16, columns: 16, seed: i * 100 })) {
        const r = await t.archive.ingest.ingest(chunks, { source: 'test' });
        assert.equal(r.status, 'stored');
        synthetic[i].push((r as { sopInstanceUid: string }).sopInstanceUid);
      }
    }
    for (const name of CORPUS_FILES) {
      const r = await t.archive.ingest.ingest([await readFile(path.join(CORPUS, name))], { source: 'test' });
      assert.equal(r.status, 'stored', name);
      const stored = r as { sopInstanceUid: string; studyInstanceUid: string; transferSyntaxUid: string };
      corpus.set(name, { sopInstanceUid: stored.sopInstanceUid, studyInstanceUid: stored.studyInstanceUid, transferSyntaxUid: stored.transferSyntaxUid });
    }
  });
  after(async () => {
    await storescp?.stop();
    await dicom?.close();
    await t?.cleanup();
    killAllChildren();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Reads and removes every file in `dir`; each must be a stored instance, byte-identical data set, same syntax. */
  async function takeReceived(dir: string): Promise<string[]> {
    const uids: string[] = [];
    for (const file of await filesIn(dir)) {
      const rx = parsePart10(await readFile(file));
      await rm(file);
      const uidEl = rx.header.fileMeta?.elements.find((e) => e.tag === 0x00020003);
      const uid = new TextDecoder().decode(uidEl!.value!).replace(/[\0 ]+$/, '');
      const { instance, dataset } = await t.archive.retrieve.openDataset(uid);
      const stored = await collect(dataset);
      assert.equal(rx.transferSyntaxUID, instance.transferSyntaxUid, `${uid}: received in another transfer syntax`);
      // An odd-length data set (a deflated stream) is sent with one trailing NUL byte: PDVs have even lengths.
      const sent = stored.length % 2 === 1 ? Buffer.concat([stored, Buffer.alloc(1)]) : stored;
      assert.ok(rx.dataset.equals(sent), `${uid}: received data set (${rx.dataset.length} bytes) differs from the stored one (${stored.length} bytes)`);
      uids.push(uid);
    }
    return uids.sort();
  }

  function movescu(keys: string[], destination = 'DEST', model = '-S') {
    return runTool('movescu', ['-d', model, '-aet', 'MOVESCU', '-aec', aec(), '-aem', destination, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(dicom.port)], { timeoutMs: 120_000 });
  }

  /** Status and counts of the final C-MOVE/C-GET response, from DCMTK's debug (-d) dump of that message. */
  function finalCounts(output: string): { status: number; remaining?: number; completed?: number; failed?: number; warning?: number } {
    // The last C-MOVE-RSP / C-GET-RSP dumped is the final one.
    const at = Math.max(output.lastIndexOf('Message Type                  : C-MOVE RSP'), output.lastIndexOf('Message Type                  : C-GET RSP'));
    assert.ok(at >= 0, output);
    const dump = output.slice(at, output.indexOf('END DIMSE MESSAGE', at));
    const num = (name: string) => {
      const m = new RegExp(`${name} Suboperations\\s*:\\s*(\\d+)`).exec(dump);
      return m ? Number(m[1]) : undefined;
    };
    const status = /DIMSE Status\s*:\s*0x([0-9a-f]{4})/i.exec(dump);
    assert.ok(status, dump);
    return { status: Number.parseInt(status[1], 16), remaining: num('Remaining'), completed: num('Completed'), failed: num('Failed'), warning: num('Warning') };
  }

  test('C-MOVE at study level: every instance of the study reaches storescp unchanged', async () => {
    const r = await movescu(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studyUid}`]);
    assert.equal(r.code, 0, r.output);
    const counts = finalCounts(r.output);
    assert.equal(counts.status, 0x0000, r.output);
    assert.equal(counts.completed, 5, r.output);
    assert.equal(counts.failed ?? 0, 0);
    assert.deepEqual(await takeReceived(storescpDir), [...synthetic[0], ...synthetic[1]].sort());
  });

  test('C-MOVE at series level: only that series', async () => {
    const r = await movescu(['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${studyUid}`, `SeriesInstanceUID=${seriesUids[1]}`]);
    assert.equal(r.code, 0, r.output);
    assert.equal(finalCounts(r.output).completed, 2, r.output);
    assert.deepEqual(await takeReceived(storescpDir), [...synthetic[1]].sort());
  });

  test('C-MOVE of compressed and big-endian objects: each arrives in its stored transfer syntax, unchanged', async () => {
    const uids = [...corpus.values()];
    const syntaxes = new Set(uids.map((u) => u.transferSyntaxUid));
    for (const ts of [TS.JPEG2000, TS.RLELossless, TS.JPEGBaseline8Bit, TS.DeflatedExplicitVRLittleEndian, TS.ExplicitVRBigEndian, TS.ImplicitVRLittleEndian]) {
      assert.ok(syntaxes.has(ts), `the corpus selection lacks ${ts}`);
    }
    const r = await movescu(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${uids.map((u) => u.studyInstanceUid).join('\\')}`]);
    assert.equal(r.code, 0, r.output);
    assert.equal(finalCounts(r.output).completed, uids.length, r.output + storescp.output());
    assert.deepEqual(await takeReceived(storescpDir), uids.map((u) => u.sopInstanceUid).sort());
  });

  test('C-MOVE to a destination that aborts: every sub-operation is counted failed, none silently dropped', async () => {
    const dir = path.join(work, 'aborting');
    await mkdir(dir);
    const aborting = await startStorescp(dir, { aeTitle: 'ABORTER', extraArgs: ['--abort-after'] });
    try {
      await t.archive.peers.upsert({ aeTitle: 'ABORTER', host: '127.0.0.1', port: aborting.port, operations: ['store'] });
      const r = await movescu(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studyUid}`], 'ABORTER');
      const counts = finalCounts(r.output);
      assert.equal(counts.status, 0xa702, r.output);
      assert.equal(counts.completed, 0, r.output);
      assert.equal(counts.failed, 5, r.output);
      for (const uid of [...synthetic[0], ...synthetic[1]]) assert.ok(r.output.includes(uid), `${uid} not in the Failed SOP Instance UID List`);
    } finally {
      await aborting.stop();
    }
  });

  test('C-CANCEL of a C-MOVE (movescu --cancel 1) to a slow storescp: the sub-operations not yet started are not sent', async (tc) => {
    // storescp sleeps a second after each object: the C-CANCEL sent on the first pending response arrives while
    // the second sub-operation is under way, whatever the speed of the machine.
    const dir = path.join(work, 'slow');
    await mkdir(dir);
    const slow = await startStorescp(dir, { aeTitle: 'SLOWDEST', extraArgs: ['--sleep-after', '1'] });
    try {
      await t.archive.peers.upsert({ aeTitle: 'SLOWDEST', host: '127.0.0.1', port: slow.port, operations: ['store'] });
      const total = synthetic[0].length + synthetic[1].length;
      const r = await runTool('movescu', ['-d', '-S', '--cancel', '1', '-aet', 'MOVESCU', '-aec', aec(), '-aem', 'SLOWDEST',
        '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyUid}`, '127.0.0.1', String(dicom.port)], { timeoutMs: 120_000 });
      assert.match(r.output, /Sending Cancel Request/, r.output);
      const counts = finalCounts(r.output);
      assert.equal(counts.status, 0xfe00, r.output);
      assert.ok(counts.remaining !== undefined && counts.remaining > 0, `Remaining ${counts.remaining}: the cancel stopped nothing\n${r.output}`);
      assert.ok(counts.completed !== undefined && counts.completed >= 1 && counts.completed < total, r.output);
      assert.equal(counts.failed ?? 0, 0, r.output);
      assert.equal(counts.completed + counts.remaining, total, 'every matched instance is either completed or remaining');
      tc.diagnostic(`cancelled with ${counts.completed} completed and ${counts.remaining} remaining of ${total}`);
      assert.equal((await filesIn(dir)).length, counts.completed, 'storescp received exactly the completed sub-operations');
    } finally {
      await slow.stop();
    }
  });

  test('C-MOVE to an unknown destination: 0xA801, nothing sent', async () => {
    const r = await movescu(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studyUid}`], 'NOWHERE');
    assert.equal(finalCounts(r.output).status, 0xa801, r.output);
    assert.deepEqual(await filesIn(storescpDir), []);
  });

  test('C-MOVE that matches nothing: success with zero sub-operations', async () => {
    const r = await movescu(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${generateUid()}`]);
    assert.equal(r.code, 0, r.output);
    assert.equal(finalCounts(r.output).status, 0x0000, r.output);
    assert.deepEqual(await filesIn(storescpDir), []);
  });

  test('C-MOVE from a known peer not allowed to move: the MOVE context is rejected, nothing is sent', async () => {
    const r = await runTool('movescu', ['-v', '-S', '-aet', 'GETSCU', '-aec', aec(), '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY',
      '-k', `StudyInstanceUID=${studyUid}`, '127.0.0.1', String(dicom.port)], { timeoutMs: 60_000 });
    // GETSCU may find, so the association is accepted with the FIND context only; movescu then has no MOVE
    // context to use (and, DCMTK 3.6.7 being what it is, still exits 0).
    assert.match(r.output, /Move SCU Failed: .*No valid Presentation Context/i, r.output);
    assert.deepEqual(await filesIn(storescpDir), []);
  });

  test('C-GET at study and series level into getscu: unchanged data sets, completed counts', async () => {
    const dir = path.join(work, 'get');
    await mkdir(dir);
    const getscu = (keys: string[], extra: string[] = []) => runTool('getscu', ['-d', '-S', '+B', '-aet', 'GETSCU', '-aec', aec(), '-od', dir, ...extra,
      ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(dicom.port)], { timeoutMs: 120_000 });

    const study = await getscu(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studyUid}`]);
    assert.equal(study.code, 0, study.output);
    const sc = finalCounts(study.output);
    assert.equal(sc.status, 0x0000, study.output);
    assert.equal(sc.completed, 5, study.output);
    assert.deepEqual(await takeReceived(dir), [...synthetic[0], ...synthetic[1]].sort());

    const series = await getscu(['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${studyUid}`, `SeriesInstanceUID=${seriesUids[0]}`]);
    assert.equal(series.code, 0, series.output);
    assert.equal(finalCounts(series.output).completed, 3, series.output);
    assert.deepEqual(await takeReceived(dir), [...synthetic[0]].sort());
  });

  test('C-GET of a JPEG 2000 object by a getscu that takes only uncompressed syntaxes: a failed sub-operation, not a transcoded image', async () => {
    // getscu (DcmSCU, 3.6.7) does not read the data set of a final C-GET-RSP (the Failed SOP Instance UID List
    // Atrium rightly sends), so its release then fails; -ta bounds how long it waits. Only the response is asserted.
    const dir = path.join(work, 'get-j2k');
    await mkdir(dir);
    const j2k = corpus.get('JPEG2000.dcm')!;
    const r = await runTool('getscu', ['-d', '-S', '+B', '-ta', '5', '-aet', 'GETSCU', '-aec', aec(), '-od', dir, '-k', 'QueryRetrieveLevel=STUDY',
      '-k', `StudyInstanceUID=${j2k.studyInstanceUid}`, '127.0.0.1', String(dicom.port)], { timeoutMs: 60_000 });
    const counts = finalCounts(r.output);
    assert.equal(counts.status, 0xa702, r.output);
    assert.equal(counts.completed ?? 0, 0, r.output);
    assert.equal(counts.failed, 1, r.output);
    assert.deepEqual(await filesIn(dir), []);

    // Offered JPEG 2000 (+xw), the same getscu gets it as stored.
    const ok = await runTool('getscu', ['-d', '-S', '+B', '+xw', '-aet', 'GETSCU', '-aec', aec(), '-od', dir, '-k', 'QueryRetrieveLevel=STUDY',
      '-k', `StudyInstanceUID=${j2k.studyInstanceUid}`, '127.0.0.1', String(dicom.port)], { timeoutMs: 60_000 });
    assert.equal(ok.code, 0, ok.output);
    assert.equal(finalCounts(ok.output).completed, 1, ok.output);
    assert.deepEqual(await takeReceived(dir), [j2k.sopInstanceUid]);
  });

  test('C-CANCEL of a C-GET between sub-operations: Cancel with the counts, Remaining and the Failed SOP Instance UID List', async () => {
    // Our requestor as the C-GET SCU and storage SCP. It refuses the first object (a failed sub-operation), sends
    // the C-CANCEL on the first pending response, and answers the second C-STORE only once the C-CANCEL is on the
    // wire before that answer: Atrium reads the cancel before the second sub-operation ends, so nothing depends on timing.
    const instances = [...synthetic[0], ...synthetic[1]];
    const stored = await t.archive.index.findInstance(instances[0]);
    assert.ok(stored);
    const association = await requestAssociation({
      host: '127.0.0.1', port: dicom.port, callingAETitle: 'GETSCU', calledAETitle: aec(),
      contexts: [
        { abstractSyntax: QueryRetrieve.StudyRootGet, transferSyntaxes: [TS.ExplicitVRLittleEndian] },
        { abstractSyntax: stored.sopClassUid, transferSyntaxes: [stored.transferSyntaxUid], scuRole: false, scpRole: true },
      ],
    });
    let cancelSent!: () => void;
    const cancelled = new Promise<void>((resolve) => { cancelSent = resolve; });
    const received: string[] = [];
    association.onRequest(async (request) => {
      for await (const _ of request.dataset!);
      received.push(request.command.AffectedSOPInstanceUID!);
      if (received.length === 1) return await association.respond(request, { Status: Status.OutOfResources, AffectedSOPInstanceUID: request.command.AffectedSOPInstanceUID });
      if (received.length === 2) await cancelled;
      await association.respond(request, { Status: Status.Success, AffectedSOPInstanceUID: request.command.AffectedSOPInstanceUID });
    });
    try {
      const pc = association.findContext(QueryRetrieve.StudyRootGet)!;
      const messageId = association.nextMessageId();
      const responses: DimseResponse[] = [];
      for await (const rsp of association.request(pc.id, { CommandField: CommandField.C_GET_RQ, MessageID: messageId, AffectedSOPClassUID: QueryRetrieve.StudyRootGet, Priority: Priority.Medium },
        encodeJsonDataset({ '00080052': { vr: 'CS', Value: ['STUDY'] }, '0020000D': { vr: 'UI', Value: [studyUid] } }, pc.transferSyntax))) {
        responses.push(rsp);
        if (responses.length === 1) {
          assert.equal(rsp.command.Status, Status.Pending);
          await association.cancel(pc.id, messageId);
          cancelSent();
        }
      }
      const final = responses.at(-1)!.command;
      assert.equal(final.Status, Status.Cancel);
      assert.equal(responses.filter((r) => r.command.Status === Status.Pending).length, 1, 'no pending response after the cancel');
      const { NumberOfRemainingSuboperations: remaining, NumberOfCompletedSuboperations: completed, NumberOfFailedSuboperations: failed, NumberOfWarningSuboperations: warning } = final;
      assert.equal(failed, 1);
      assert.equal(warning, 0);
      assert.ok(remaining !== undefined && remaining > 0, `Remaining ${remaining}`);
      assert.equal(completed! + failed! + warning! + remaining, instances.length);
      assert.equal(received.length, completed! + failed!, 'no sub-operation started after the cancel was read');
      const failedList = toDicomJson(parseDataset(responses.at(-1)!.dataset!, pc.transferSyntax))['00080058']?.Value;
      assert.deepEqual(failedList, [received[0]], 'the Failed SOP Instance UID List names the refused object');
      await association.release();
    } finally {
      if (association.isOpen) association.abort();
    }
  });
});
