// End-to-end: identity corrections against real peers, on SQLite and PostgreSQL. Images go in by DCMTK storescu;
// corrections are applied through the REST API; what the index answers is read by findscu and QIDO-RS, what is
// served by movescu (to a storescp), getscu and WADO-RS, each received file read by DCMTK's dcmdump (not our
// parser): the corrected values at the top level, the replaced ones in Original Attributes Sequence (0400,0561).
// Then the undo, the audit records and the IdentityCorrected events.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type EngineCombination, type TestArchive } from '../../../test/support/archive.ts';
import { filesIn, killAllChildren, runTool, startStorescp, type Storescp } from '../../../test/support/dcmtk.ts';
import { startDicomService, type DicomService } from '../../dimse/services/dicom-service.ts';
import { createHttpServer } from '../../http/server.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';
import { jobRunner } from '../../app.ts';
import { sectionOf } from '../../config/config.ts';
import { correctionsConfig } from './config.ts';

/** The top-level values and those inside Original Attributes Sequence items, as dcmdump prints them. */
async function dump(file: string): Promise<{ top: Record<string, string>; original: Record<string, string>[]; items: number; text: string }> {
  const r = await runTool('dcmdump', ['-q', '+L', file], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.output);
  const top: Record<string, string> = {};
  const original: Record<string, string>[] = [];
  let depth = 0;
  let inOriginal = false;
  let items = 0;
  for (const line of r.stdout.split('\n')) {
    const m = /^(\s*)\(([0-9a-f]{4},[0-9a-f]{4})\) (\w\w) (.*?)\s+#\s*(?:\d+|u\/l),\s*\d+\s+(\w+)\s*$/i.exec(line);
    if (!m) continue;
    const [, indent, tag, , raw, keyword] = m;
    depth = indent.length / 2;
    const value = raw.startsWith('[') ? raw.slice(1, raw.lastIndexOf(']')) : raw.startsWith('(no value') ? '' : raw;
    if (depth === 0) {
      inOriginal = tag === '0400,0561';
      if (!(keyword in top)) top[keyword] = value;
      continue;
    }
    if (!inOriginal) continue;
    if (tag === 'fffe,e000' && depth === 1) { original.push({}); items++; continue; }
    if (original.length && !(keyword in original[original.length - 1])) original[original.length - 1][keyword] = value;
  }
  return { top, original, items, text: r.stdout };
}

/** Every element dcmdump prints, with its nesting depth (items count as a level). */
async function elements(file: string): Promise<{ depth: number; tag: string; value: string; keyword: string }[]> {
  const r = await runTool('dcmdump', ['-q', '+L', '-Un', file], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.output);
  const out: { depth: number; tag: string; value: string; keyword: string }[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^(\s*)\(([0-9a-f]{4},[0-9a-f]{4})\) (\w\w) (.*?)\s+#\s*(?:\d+|u\/l),\s*\d+\s+(\w+)\s*$/i.exec(line);
    if (!m) continue;
    const raw = m[4];
    out.push({ depth: m[1].length / 2, tag: m[2].toLowerCase(), keyword: m[5], value: raw.startsWith('[') ? raw.slice(1, raw.lastIndexOf(']')) : raw.startsWith('(no value') ? '' : raw });
  }
  return out;
}

/** The elements inside the top-level sequence `tag` (until the next top-level element). */
function inside(all: { depth: number; tag: string; value: string; keyword: string }[], tag: string) {
  const start = all.findIndex((e) => e.depth === 0 && e.tag === tag);
  if (start < 0) return [];
  const end = all.findIndex((e, i) => i > start && e.depth === 0);
  return all.slice(start + 1, end < 0 ? undefined : end);
}

for (const combination of ['sqlite+fs', 'postgres+fs'] as EngineCombination[]) {
  describe(`identity corrections with DCMTK peers (${combination})`, { timeout: 300_000 }, () => {
    let t: TestArchive;
    let dicom: DicomService;
    let app: FastifyInstance;
    let base: string;
    let work: string;
    let storescp: Storescp;
    let destDir: string;
    const studyA = generateUid();
    const seriesA = generateUid();
    const sopA = [generateUid(), generateUid()];
    const studyB = generateUid();
    const aec = () => t.archive.config.dicom.aeTitle;
    const api = async (method: string, url: string, body?: unknown) => {
      const res = await fetch(`${base}${url}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, json: await res.json() as any };
    };

    before(async () => {
      t = await createTestArchive(combination);
      dicom = await startDicomService(t.archive, { port: 0 });
      app = await createHttpServer(t.archive);
      base = await app.listen({ host: '127.0.0.1', port: 0 });
      work = await mkdtemp(path.join(os.tmpdir(), 'atrium-corrections-'));
      destDir = path.join(work, 'dest');
      await mkdir(destDir);
      storescp = await startStorescp(destDir, { aeTitle: 'DEST', extraArgs: ['+B'] });
      await t.archive.peers.upsert({ aeTitle: 'DEST', host: '127.0.0.1', port: storescp.port, operations: ['echo', 'store'] });
      await t.archive.peers.upsert({ aeTitle: 'STORESCU', host: '127.0.0.1', port: 104, operations: ['echo', 'store'] });
      await t.archive.peers.upsert({ aeTitle: 'QRSCU', host: '127.0.0.1', port: 104, operations: ['echo', 'find', 'move', 'get'] });
      const files: string[] = [];
      const write = async (name: string, options: Parameters<typeof syntheticInstance>[0]) => {
        const file = path.join(work, name);
        await writeFile(file, Buffer.concat([...syntheticInstance(options)]));
        files.push(file);
      };
      for (const [i, sop] of sopA.entries()) {
        await write(`a${i}.dcm`, { patientId: 'WRONG01', patientName: 'WRONG^PATIENT', studyInstanceUid: studyA, seriesInstanceUid: seriesA, sopInstanceUid: sop, accessionNumber: 'ACC-A', studyDescription: 'CT HEAD', rows: 16, columns: 16, seed: i });
      }
      await write('b.dcm', { patientId: 'RIGHT01', patientName: 'RIGHT^PATIENT', studyInstanceUid: studyB, rows: 16, columns: 16, seed: 9 });
      const r = await runTool('storescu', ['-aet', 'STORESCU', '-aec', aec(), '127.0.0.1', String(dicom.port), ...files], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.output);
      assert.equal((await t.archive.index.getStudy(studyA))?.patient.patientId, 'WRONG01');
    });
    after(async () => {
      await storescp?.stop();
      await app?.close();
      await dicom?.close();
      await t?.cleanup();
      killAllChildren();
      if (work) await rm(work, { recursive: true, force: true });
    });

    async function findStudy(uid: string): Promise<Record<string, string>> {
      const out = path.join(work, `find-${Date.now()}-${Math.random()}`);
      await mkdir(out);
      const r = await runTool('findscu', ['-S', '-aet', 'QRSCU', '-aec', aec(), '-X', '-od', out, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${uid}`,
        '-k', 'PatientID', '-k', 'PatientName', '-k', 'StudyDescription', '127.0.0.1', String(dicom.port)], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.output);
      const [file] = await filesIn(out);
      assert.ok(file, r.output);
      return (await dump(file)).top;
    }

    async function moveStudy(uid: string): Promise<string[]> {
      const r = await runTool('movescu', ['-S', '-aet', 'QRSCU', '-aec', aec(), '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${uid}`, '127.0.0.1', String(dicom.port)], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.output);
      return (await filesIn(destDir)).sort();
    }

    async function getStudy(uid: string): Promise<string[]> {
      const dir = path.join(work, `get-${Date.now()}`);
      await mkdir(dir);
      const r = await runTool('getscu', ['-S', '-aet', 'QRSCU', '-aec', aec(), '-od', dir, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${uid}`, '127.0.0.1', String(dicom.port)], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.output);
      return (await filesIn(dir)).sort();
    }

    async function wado(sop: string): Promise<{ file: string; etag: string | null }> {
      const res = await fetch(`${base}/dicom-web/studies/${studyA}/series/${seriesA}/instances/${sop}`, { headers: { accept: 'application/dicom; transfer-syntax=*' } });
      assert.equal(res.status, 200);
      const file = path.join(work, `wado-${sop}.dcm`);
      await writeFile(file, Buffer.from(await res.arrayBuffer()));
      return { file, etag: res.headers.get('etag') };
    }

    let moveId = 0;
    let storedEtag: string | null = null;

    test('move a study to another patient: C-FIND and QIDO-RS show the new patient; C-MOVE, C-GET and WADO-RS serve it with the old values in Original Attributes Sequence', async () => {
      storedEtag = (await wado(sopA[0])).etag;
      const refused = await api('POST', '/api/quality/corrections/move-study', { studyInstanceUid: studyA, to: { patientId: 'RIGHT01' } });
      assert.equal(refused.status, 400, 'a reason is required');
      const moved = await api('POST', '/api/quality/corrections/move-study', { studyInstanceUid: studyA, to: { patientId: 'RIGHT01' }, reason: 'images of RIGHT01 sent under WRONG01 (ticket 42)' });
      assert.equal(moved.status, 201, JSON.stringify(moved.json));
      moveId = moved.json.id;
      assert.equal(moved.json.kind, 'move-study');
      assert.deepEqual(moved.json.studyInstanceUids, [studyA]);

      const found = await findStudy(studyA);
      assert.equal(found.PatientID, 'RIGHT01');
      assert.equal(found.PatientName, 'RIGHT^PATIENT');
      const qido = await (await fetch(`${base}/dicom-web/studies?StudyInstanceUID=${studyA}`)).json() as any[];
      assert.equal(qido[0]['00100020'].Value[0], 'RIGHT01');

      const received = await moveStudy(studyA);
      assert.equal(received.length, 2);
      const served = [...received, ...await getStudy(studyA), (await wado(sopA[0])).file];
      for (const file of served) {
        const d = await dump(file);
        assert.equal(d.top.PatientID, 'RIGHT01', file);
        assert.equal(d.top.PatientName, 'RIGHT^PATIENT', file);
        assert.equal(d.top.StudyInstanceUID, studyA);
        assert.equal(d.items, 1, d.text);
        assert.equal(d.original[0].PatientID, 'WRONG01', d.text);
        assert.equal(d.original[0].PatientName, 'WRONG^PATIENT', d.text);
        assert.equal(d.original[0].ReasonForTheAttributeModification, 'CORRECT');
        assert.match(d.original[0].ModifyingSystem, /^ATRIUM /);
        assert.match(d.original[0].AttributeModificationDateTime, /^\d{14}/);
        assert.ok(d.top.PixelData !== undefined, 'pixel data passed through');
      }
      for (const file of received) await rm(file);
      // WADO-RS metadata describes the instances as served.
      const metadata = await (await fetch(`${base}/dicom-web/studies/${studyA}/metadata`, { headers: { accept: 'application/dicom+json' } })).json() as any[];
      assert.equal(metadata.length, 2);
      for (const ds of metadata) {
        assert.equal(ds['00100020'].Value[0], 'RIGHT01');
        assert.equal(ds['00100010'].Value[0].Alphabetic, 'RIGHT^PATIENT');
        const item = ds['04000561'].Value.at(-1);
        assert.equal(item['04000550'].Value[0]['00100020'].Value[0], 'WRONG01');
        assert.equal(item['04000565'].Value[0], 'CORRECT');
      }
      const { etag } = await wado(sopA[0]);
      assert.notEqual(etag, storedEtag, 'a corrected object has another entity tag');
      // Frames are the stored pixel data, unchanged.
      const frame = await fetch(`${base}/dicom-web/studies/${studyA}/series/${seriesA}/instances/${sopA[0]}/frames/1`, { headers: { accept: 'application/octet-stream; transfer-syntax=*' } });
      assert.equal(frame.status, 200);
      assert.equal((await frame.arrayBuffer()).byteLength, 16 * 16 * 2);
    });

    test('edit study attributes: served with both corrections in one Original Attributes item, listed and audited', async () => {
      const edited = await api('POST', '/api/quality/corrections/edit-study', { studyInstanceUid: studyA, attributes: { StudyDescription: 'CT HEAD W/O CONTRAST' }, reason: 'protocol name' });
      assert.equal(edited.status, 201, JSON.stringify(edited.json));
      assert.equal((await findStudy(studyA)).StudyDescription, 'CT HEAD W/O CONTRAST');
      const d = await dump((await wado(sopA[1])).file);
      assert.equal(d.top.StudyDescription, 'CT HEAD W/O CONTRAST');
      assert.equal(d.top.PatientID, 'RIGHT01');
      assert.equal(d.original[0].StudyDescription, 'CT HEAD');
      assert.equal(d.original[0].PatientID, 'WRONG01');
      const undoFirst = await api('POST', `/api/quality/corrections/${moveId}/undo`, { reason: 'wrong' });
      assert.equal(undoFirst.status, 409, 'a later correction on the study is undone first');
      const undone = await api('POST', `/api/quality/corrections/${edited.json.id}/undo`, { reason: 'description was right' });
      assert.equal(undone.status, 200, JSON.stringify(undone.json));
      assert.ok(undone.json.undoneAt);
      assert.equal((await findStudy(studyA)).StudyDescription, 'CT HEAD');
      const list = await api('GET', `/api/quality/corrections?study=${studyA}`);
      assert.equal(list.json.total, 2);
    });

    test('undo of the move: C-FIND shows the first patient again, served objects are the stored bytes; audit records and events exist', async () => {
      const undone = await api('POST', `/api/quality/corrections/${moveId}/undo`, { reason: 'the move was a mistake' });
      assert.equal(undone.status, 200, JSON.stringify(undone.json));
      const found = await findStudy(studyA);
      assert.equal(found.PatientID, 'WRONG01');
      assert.equal(found.PatientName, 'WRONG^PATIENT');
      const received = await moveStudy(studyA);
      for (const file of received) {
        const d = await dump(file);
        assert.equal(d.top.PatientID, 'WRONG01');
        assert.equal(d.items, 0, 'no Original Attributes Sequence once undone');
        await rm(file);
      }
      assert.equal((await wado(sopA[0])).etag, storedEtag);

      const audit = await t.archive.audit.search({ studyInstanceUid: studyA, action: 'update' }, { limit: 100, offset: 0 });
      const details = audit.items.map((r) => r.detail ?? '');
      assert.ok(details.some((d) => d.startsWith(`identity correction ${moveId} (move-study): images of RIGHT01`)), details.join('\n'));
      assert.ok(details.some((d) => d.startsWith(`identity correction ${moveId} (move-study) undone: the move was a mistake`)), details.join('\n'));
      const events = await t.archive.database.kysely<any>().selectFrom('outbox').select(['payload']).where('event_type', '=', 'IdentityCorrected').execute();
      const payloads = events.map((e) => JSON.parse(e.payload));
      assert.equal(payloads.filter((p) => p.correctionId === moveId).length, 2);
      assert.ok(payloads.some((p) => p.correctionId === moveId && p.undone === true && p.studyInstanceUid === studyA));
    });

    test('edit patient attributes, then merge two patients from REST: every study of the patient is served corrected; undo puts them back', async () => {
      const edited = await api('POST', '/api/quality/corrections/edit-patient', { patient: { patientId: 'RIGHT01' }, attributes: { PatientName: 'RIGHT^PATIENT^M', PatientBirthDate: '19700101' }, reason: 'ADT correction' });
      assert.equal(edited.status, 201, JSON.stringify(edited.json));
      assert.equal((await findStudy(studyB)).PatientName, 'RIGHT^PATIENT^M');
      const merged = await api('POST', '/api/quality/corrections/merge', { survivor: { patientId: 'RIGHT01' }, prior: { patientId: 'WRONG01' }, reason: 'duplicate registration' });
      assert.equal(merged.status, 201, JSON.stringify(merged.json));
      const found = await findStudy(studyA);
      assert.equal(found.PatientID, 'RIGHT01');
      assert.equal(found.PatientName, 'RIGHT^PATIENT^M');
      const d = await dump((await wado(sopA[0])).file);
      assert.equal(d.top.PatientID, 'RIGHT01');
      assert.equal(d.top.PatientBirthDate, '19700101');
      assert.equal(d.original[0].PatientID, 'WRONG01');
      assert.equal((await api('POST', `/api/quality/corrections/${merged.json.id}/undo`, { reason: 'not the same person' })).status, 200);
      assert.equal((await findStudy(studyA)).PatientID, 'WRONG01');
      assert.equal((await api('POST', `/api/quality/corrections/${edited.json.id}/undo`, { reason: 'back' })).status, 200);
      assert.equal((await findStudy(studyB)).PatientName, 'RIGHT^PATIENT');
      assert.equal((await dump((await wado(sopA[0])).file)).items, 0);
    });

    test('split a wrongly merged patient, link an orphan study to its order, move a series: through REST, each undone', async () => {
      const db = t.archive.database.kysely<any>();
      for (const [patientId, accessionNumber] of [['SPLIT1', 'ORD-1'], ['SPLIT2', 'ORD-2'], ['SPLIT1', 'ORD-9']]) {
        const res = await fetch(`${base}/api/ris/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ patient: { patientId, issuerOfPatientId: '' }, accessionNumber, steps: [] }) });
        assert.equal(res.status, 201, await res.text());
      }
      const [s1, s2, orphan] = [generateUid(), generateUid(), generateUid()];
      for (const [uid, patientId, accessionNumber] of [[s1, 'SPLIT1', 'ORD-1'], [s2, 'SPLIT2', 'ORD-2'], [orphan, 'SPLIT1', undefined]] as const) {
        assert.equal((await t.archive.ingest.ingest(syntheticInstance({ studyInstanceUid: uid, patientId, patientName: `${patientId}^X`, accessionNumber, rows: 8, columns: 8 }), { source: 'test' })).status, 'stored');
      }
      const merged = await api('POST', '/api/quality/corrections/merge', { survivor: { patientId: 'SPLIT1' }, prior: { patientId: 'SPLIT2' }, reason: 'ADT merge by mistake' });
      assert.equal(merged.status, 201, JSON.stringify(merged.json));
      const orderPatient = async (accession: string) => (await db.selectFrom('ris_order').innerJoin('ris_patient', 'ris_patient.pk', 'ris_order.patient_pk').select('ris_patient.patient_id')
        .where('ris_order.accession_number', '=', accession).executeTakeFirstOrThrow()).patient_id;
      assert.equal(await orderPatient('ORD-2'), 'SPLIT1', 'the RIS merge moved the order');
      assert.equal((await findStudy(s2)).PatientID, 'SPLIT1');

      const split = await api('POST', '/api/quality/corrections/split', { from: { patientId: 'SPLIT1' }, to: { patientId: 'SPLIT2' }, studies: [s2], orders: ['ORD-2'], reason: 'two people' });
      assert.equal(split.status, 201, JSON.stringify(split.json));
      assert.equal((await findStudy(s2)).PatientID, 'SPLIT2');
      assert.equal(await orderPatient('ORD-2'), 'SPLIT2');
      assert.equal((await db.selectFrom('ris_patient').select('status').where('patient_id', '=', 'SPLIT2').executeTakeFirstOrThrow()).status, 'active');
      assert.equal((await findStudy(s1)).PatientID, 'SPLIT1', 'the study not named stays');
      assert.equal((await api('POST', `/api/quality/corrections/${merged.json.id}/undo`, { reason: 'x' })).status, 409, 'the split came after');
      assert.equal((await api('POST', `/api/quality/corrections/${split.json.id}/undo`, { reason: 'undo split' })).status, 200);
      assert.equal((await findStudy(s2)).PatientID, 'SPLIT1');
      assert.equal(await orderPatient('ORD-2'), 'SPLIT1');
      assert.equal((await api('POST', `/api/quality/corrections/${merged.json.id}/undo`, { reason: 'undo merge' })).status, 200);
      assert.equal((await findStudy(s2)).PatientID, 'SPLIT2');
      assert.equal(await orderPatient('ORD-2'), 'SPLIT2');

      const linked = await api('POST', '/api/quality/corrections/link-order', { studyInstanceUid: orphan, accessionNumber: 'ORD-9', reason: 'accession missing on the modality' });
      assert.equal(linked.status, 201, JSON.stringify(linked.json));
      const links = async () => (await db.selectFrom('ris_order_study').innerJoin('ris_order', 'ris_order.pk', 'ris_order_study.order_pk').select('ris_order.accession_number')
        .where('ris_order_study.study_instance_uid', '=', orphan).execute()).map((r) => r.accession_number);
      assert.deepEqual(await links(), ['ORD-9']);
      const qido = await (await fetch(`${base}/dicom-web/studies?StudyInstanceUID=${orphan}`)).json() as any[];
      assert.equal(qido[0]['00080050'].Value[0], 'ORD-9');
      assert.equal((await api('POST', `/api/quality/corrections/${linked.json.id}/undo`, { reason: 'wrong order' })).status, 200);
      assert.deepEqual(await links(), []);

      const movedSeries = await api('POST', '/api/quality/corrections/move-series', { seriesInstanceUid: seriesA, toStudyInstanceUid: studyB, reason: 'series sent in the wrong study' });
      assert.equal(movedSeries.status, 201, JSON.stringify(movedSeries.json));
      const res = await fetch(`${base}/dicom-web/studies/${studyB}/series/${seriesA}/instances/${sopA[0]}`, { headers: { accept: 'application/dicom; transfer-syntax=*' } });
      assert.equal(res.status, 200);
      const file = path.join(work, 'moved-series.dcm');
      await writeFile(file, Buffer.from(await res.arrayBuffer()));
      const d = await dump(file);
      assert.equal(d.top.StudyInstanceUID, studyB);
      assert.equal(d.top.PatientID, 'RIGHT01');
      assert.equal(d.original[0].StudyInstanceUID, studyA);
      assert.equal(d.original[0].PatientID, 'WRONG01');
      assert.equal((await t.archive.index.getStudy(studyB))?.numberOfStudyRelatedSeries, 2);
      assert.equal((await api('POST', `/api/quality/corrections/${movedSeries.json.id}/undo`, { reason: 'back' })).status, 200);
      assert.equal((await t.archive.index.getStudy(studyB))?.numberOfStudyRelatedSeries, 1);
      assert.equal((await dump((await wado(sopA[0])).file)).items, 0);
    });

    test('peers are told: a configured peer receives the corrected study by a durable send job, and the stored one after the undo', async () => {
      const settings = sectionOf(t.archive.config, correctionsConfig);
      settings.peers = ['DEST'];
      const runner = jobRunner(t.archive, { pollIntervalMs: 20 });
      await runner.start();
      try {
        const drain = async () => {
          for (let i = 0; i < 500; i++) {
            const pending = await t.archive.database.kysely<any>().selectFrom('job').select('state').where('state', 'not in', ['succeeded', 'failed']).execute();
            if (pending.length === 0) return;
            await new Promise((r) => setTimeout(r, 20));
          }
          assert.fail('send jobs did not finish');
        };
        const moved = await api('POST', '/api/quality/corrections/move-study', { studyInstanceUid: studyA, to: { patientId: 'RIGHT01' }, reason: 'peers test' });
        assert.equal(moved.status, 201);
        await drain();
        const received = await filesIn(destDir);
        assert.equal(received.length, 2);
        for (const file of received) {
          const d = await dump(file);
          assert.equal(d.top.PatientID, 'RIGHT01');
          assert.equal(d.original[0].PatientID, 'WRONG01');
          await rm(file);
        }
        assert.equal((await api('POST', `/api/quality/corrections/${moved.json.id}/undo`, { reason: 'peers test undo' })).status, 200);
        await drain();
        const again = await filesIn(destDir);
        assert.equal(again.length, 2);
        for (const file of again) {
          assert.equal((await dump(file)).top.PatientID, 'WRONG01');
          await rm(file);
        }
      } finally {
        await runner.stop();
        settings.peers = [];
      }
    });
    test('peers with rejectionNotes receive a KOS "Rejected for Patient Safety Reasons" for the replaced instances with the corrected objects', async () => {
      const settings = sectionOf(t.archive.config, correctionsConfig);
      settings.peers = ['DEST'];
      settings.rejectionNotes = ['DEST'];
      const runner = jobRunner(t.archive, { pollIntervalMs: 20 });
      await runner.start();
      try {
        const drain = async () => {
          for (let i = 0; i < 500; i++) {
            const pending = await t.archive.database.kysely<any>().selectFrom('job').select('state').where('state', 'not in', ['succeeded', 'failed']).execute();
            if (pending.length === 0) return;
            await new Promise((r) => setTimeout(r, 20));
          }
          assert.fail('send jobs did not finish');
        };
        // Read by DCMTK: which received file is the note, what it rejects, under which identity.
        const received = async () => {
          const files = await filesIn(destDir);
          const notes: { file: string; all: Awaited<ReturnType<typeof elements>> }[] = [];
          const images: string[] = [];
          for (const file of files) {
            const all = await elements(file);
            const sopClass = all.find((e) => e.depth === 0 && e.keyword === 'SOPClassUID')?.value;
            if (sopClass === '1.2.840.10008.5.1.4.1.1.88.59') notes.push({ file, all });
            else images.push(file);
          }
          return { notes, images, files };
        };
        const checkNote = async (note: { file: string; all: Awaited<ReturnType<typeof elements>> }, patientId: string) => {
          const top = (k: string) => note.all.find((e) => e.depth === 0 && e.keyword === k)?.value;
          assert.equal(top('Modality'), 'KO');
          assert.equal(top('PatientID'), patientId);
          assert.equal(top('StudyInstanceUID'), studyA);
          assert.equal(top('ValueType'), 'CONTAINER');
          const title = inside(note.all, '0040,a043');
          assert.equal(title.find((e) => e.keyword === 'CodeValue')?.value, '113037');
          assert.equal(title.find((e) => e.keyword === 'CodingSchemeDesignator')?.value, 'DCM');
          assert.equal(title.find((e) => e.keyword === 'CodeMeaning')?.value, 'Rejected for Patient Safety Reasons');
          const evidence = inside(note.all, '0040,a375');
          assert.equal(evidence.find((e) => e.keyword === 'StudyInstanceUID')?.value, studyA);
          assert.equal(evidence.find((e) => e.keyword === 'SeriesInstanceUID')?.value, seriesA);
          assert.deepEqual(evidence.filter((e) => e.keyword === 'ReferencedSOPInstanceUID').map((e) => e.value).sort(), [...sopA].sort());
          const content = inside(note.all, '0040,a730');
          assert.deepEqual(content.filter((e) => e.keyword === 'ReferencedSOPInstanceUID').map((e) => e.value).sort(), [...sopA].sort());
          assert.deepEqual(content.filter((e) => e.keyword === 'ValueType').map((e) => e.value), ['TEXT', 'IMAGE', 'IMAGE']);
          // DCMTK's SR reader takes it as a Key Object Selection Document.
          const sr = await runTool('dsrdump', ['-q', note.file], { timeoutMs: 30_000 });
          assert.equal(sr.code, 0, sr.output);
          assert.match(sr.stdout, /Key Object Selection Document/);
          assert.match(sr.stdout, /Rejected for Patient Safety Reasons/);
        };
        const moved = await api('POST', '/api/quality/corrections/move-study', { studyInstanceUid: studyA, to: { patientId: 'RIGHT01' }, reason: 'rejection notes test' });
        assert.equal(moved.status, 201);
        await drain();
        let r = await received();
        assert.equal(r.files.length, 3, r.files.join(', '));
        assert.equal(r.notes.length, 1);
        // The note rejects the identity the peer had (WRONG01); the corrected objects come with RIGHT01.
        await checkNote(r.notes[0], 'WRONG01');
        for (const file of r.images) assert.equal((await dump(file)).top.PatientID, 'RIGHT01');
        for (const file of r.files) await rm(file);
        // The undo: the corrected objects are rejected in turn (under RIGHT01), the stored ones sent again.
        assert.equal((await api('POST', `/api/quality/corrections/${moved.json.id}/undo`, { reason: 'rejection notes undo' })).status, 200);
        await drain();
        r = await received();
        assert.equal(r.notes.length, 1);
        await checkNote(r.notes[0], 'RIGHT01');
        for (const file of r.images) assert.equal((await dump(file)).top.PatientID, 'WRONG01');
        for (const file of r.files) await rm(file);
        // A peer not listed in rejectionNotes gets the objects only.
        settings.rejectionNotes = [];
        const again = await api('POST', '/api/quality/corrections/move-study', { studyInstanceUid: studyA, to: { patientId: 'RIGHT01' }, reason: 'no notes' });
        await drain();
        r = await received();
        assert.equal(r.notes.length, 0);
        assert.equal(r.images.length, 2);
        for (const file of r.files) await rm(file);
        await api('POST', `/api/quality/corrections/${again.json.id}/undo`, { reason: 'no notes undo' });
        await drain();
        for (const file of await filesIn(destDir)) await rm(file);
      } finally {
        await runner.stop();
        settings.peers = [];
        settings.rejectionNotes = [];
      }
    });
  });
}
