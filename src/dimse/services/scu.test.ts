/**
 * Atrium as SCU against DCMTK: sending a study to storescp (durable job), querying and retrieving (C-MOVE to
 * ourselves, C-GET) from dcmqrscp. What arrives is compared byte for byte with what was stored.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { startStorescp, runTool, freePort, waitForPort, filesIn, readPart10, parsePart10, collect, killAllChildren } from '../../../test/support/dcmtk.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { DicomClient } from './scu.ts';
import { dicomJobHandlers, SEND_JOB } from '../../exchange/dicom-jobs.ts';
import { JobRunner } from '../../jobs/job-runner.ts';
import type { Job } from '../../ports/job-queue.ts';
import { syntheticSeries } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';

const CORPUS = new URL('../../../../shared/testdata/dicom/', import.meta.url);

let t: TestArchive;
let dicom: DicomService;
let client: DicomClient;
let dir: string;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  dicom = await startDicomService(t.archive, { port: 0 });
  client = new DicomClient(t.archive);
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-scu-'));
});

after(async () => {
  killAllChildren();
  await dicom?.close();
  await t?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

test('a study is sent to DCMTK storescp as a durable job, data sets byte-identical', async () => {
  const studyInstanceUid = generateUid();
  const sent = new Map<string, Buffer>();
  for (const instance of syntheticSeries(5, { rows: 32, columns: 32, studyInstanceUid, seed: 11 })) {
    const bytes = Buffer.concat([...instance]);
    const result = await t.archive.ingest.ingest([bytes], { source: 'test' });
    assert.ok(result.status === 'stored');
    sent.set(result.sopInstanceUid, (await readPart10Bytes(bytes)).dataset);
  }
  const received = path.join(dir, 'storescp');
  await mkdir(received);
  const scp = await startStorescp(received);
  await t.archive.peers.upsert({ aeTitle: scp.aeTitle, host: '127.0.0.1', port: scp.port, operations: ['echo'] });
  assert.equal((await client.echo(scp.aeTitle)).status, 0);

  const runner = new JobRunner({ queue: t.archive.jobs, log: t.archive.log, pollIntervalMs: 50 });
  runner.registerAll(dicomJobHandlers(t.archive, client));
  const requestedBy = { kind: 'user' as const, id: 'tech1', displayName: 'tech1', roles: ['technologist'] };
  const job = await t.archive.jobs.enqueue(SEND_JOB, { destination: scp.aeTitle, studyInstanceUid, requestedBy, requestedThrough: 'rest' });
  runner.start();
  let state = job.state;
  while (state === 'queued' || state === 'running') {
    await new Promise((r) => setTimeout(r, 50));
    state = (await t.archive.jobs.get(job.id))!.state;
  }
  await runner.stop();
  await scp.stop();
  const done = await t.archive.jobs.get(job.id);
  assert.equal(done?.state, 'succeeded', done?.lastError ?? '');
  assert.deepEqual(done?.result, { completed: 5, warning: 0 });
  const files = await filesIn(received);
  assert.equal(files.length, 5);
  for (const file of files) {
    const parsed = await readPart10(file);
    const uid = parsed.header.fileMeta!.elements.find((e) => e.tag === 0x00020003)!;
    const sopInstanceUid = new TextDecoder().decode(uid.value).replace(/\0+$/, '');
    assert.ok(parsed.dataset.equals(sent.get(sopInstanceUid)!), `${sopInstanceUid} differs`);
  }
  // The transfer is audited when it happens, in the name of who asked for it.
  await t.archive.audit.drain();
  const [record] = (await t.archive.audit.search({ studyInstanceUid, action: 'export' }, { limit: 10, offset: 0 })).items;
  assert.deepEqual([record?.principal.id, record?.interface, record?.destination?.aeTitle, record?.outcome], ['tech1', 'rest', scp.aeTitle, 'success']);
  assert.match(record.detail ?? '', new RegExp(`job ${job.id}: 5 of 5 instances sent to ${scp.aeTitle}`));
});

test('a send to an unreachable peer is retried, not lost', async () => {
  const port = await freePort();
  await t.archive.peers.upsert({ aeTitle: 'NOWHERE', host: '127.0.0.1', port, operations: [] });
  const runner = new JobRunner({ queue: t.archive.jobs, log: t.archive.log, pollIntervalMs: 50 });
  runner.registerAll(dicomJobHandlers(t.archive, client));
  const study = (await t.archive.index.listStudies({}, { limit: 1, offset: 0 })).items[0];
  const job = await t.archive.jobs.enqueue(SEND_JOB, { destination: 'NOWHERE', studyInstanceUid: study.studyInstanceUid });
  runner.start();
  let current: Job = job;
  while (current.attempts === 0 || current.state === 'running') {
    await new Promise((r) => setTimeout(r, 50));
    current = (await t.archive.jobs.get(job.id))!;
  }
  await runner.stop();
  assert.equal(current.state, 'queued');
  assert.match(current.lastError ?? '', /ECONNREFUSED|cannot connect/);
  assert.ok(new Date(current.runAt).getTime() > Date.now(), 'the retry is scheduled later (backoff)');
  await t.archive.jobs.cancel(job.id);
  await t.archive.audit.drain();
  const [failed] = (await t.archive.audit.search({ studyInstanceUid: study.studyInstanceUid, action: 'export', outcome: 'serious-failure' }, { limit: 10, offset: 0 })).items;
  assert.equal(failed?.destination?.aeTitle, 'NOWHERE', 'the failed attempt is in the trail');
  assert.match(failed.outcomeReason ?? '', /ECONNREFUSED|cannot connect/);
});

/** DCMTK's query/retrieve SCP with its own storage area, knowing Atrium as a move destination. */
async function startDcmqrscp(): Promise<{ port: number; stop(): void }> {
  const port = await freePort();
  const storage = path.join(dir, 'dcmqrscp-db');
  await mkdir(storage, { recursive: true });
  const cfg = path.join(dir, 'dcmqrscp.cfg');
  await writeFile(cfg, [
    `NetworkTCPPort = ${port}`, 'MaxPDUSize = 16384', 'MaxAssociations = 16',
    'HostTable BEGIN', `atrium = (ATRIUM, 127.0.0.1, ${dicom.port})`, 'HostTable END',
    'VendorTable BEGIN', 'VendorTable END',
    'AETable BEGIN', `DCMQRSCP ${storage} RW (100, 200mb) ANY`, 'AETable END', '',
  ].join('\n'));
  const child: ChildProcess = spawn('dcmqrscp', ['-c', cfg, '--disable-host-lookup'], { detached: true, stdio: 'ignore' });
  await waitForPort(port, child);
  return { port, stop: () => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } } };
}

test('query and retrieve from DCMTK dcmqrscp by C-MOVE and by C-GET', async () => {
  const qr = await startDcmqrscp();
  try {
    const ct = new URL('CT_small.dcm', CORPUS);
    const mr = new URL('MR_small.dcm', CORPUS);
    const stored = await runTool('storescu', ['-aec', 'DCMQRSCP', '127.0.0.1', String(qr.port), ct.pathname, mr.pathname]);
    assert.equal(stored.code, 0, stored.output);
    await t.archive.peers.upsert({ aeTitle: 'DCMQRSCP', host: '127.0.0.1', port: qr.port, operations: ['echo', 'store'] });

    const studies = await client.find('DCMQRSCP', 'STUDY', { PatientName: '*', StudyInstanceUID: '', PatientID: '' });
    const names = studies.map((s) => (s['00100010']?.Value?.[0] as { Alphabetic: string }).Alphabetic).sort();
    assert.deepEqual(names, ['CompressedSamples^CT1', 'CompressedSamples^MR1']);
    const ctStudy = studies.find((s) => (s['00100010']?.Value?.[0] as { Alphabetic: string }).Alphabetic === 'CompressedSamples^CT1')!;
    const ctStudyUid = ctStudy['0020000D'].Value![0] as string;
    const mrStudyUid = studies.find((s) => s !== ctStudy)!['0020000D'].Value![0] as string;

    const moved = await client.retrieve('DCMQRSCP', 'STUDY', { StudyInstanceUID: ctStudyUid }, 'move');
    assert.equal(moved.status, 0);
    assert.equal(moved.completed, 1);
    // The retrieve is the peer's last contact (GET /api/dicom/peers shows it).
    let contact = (await t.archive.peers.get('DCMQRSCP'))!;
    assert.deepEqual([contact.lastContactOutcome, contact.lastContactDetail], ['ok', 'C-MOVE: 0x0000 Success (1 completed, 0 failed, 0 warning)']);
    const ctUid = '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322';
    const movedCt = await t.archive.index.findInstance(ctUid);
    assert.ok(movedCt, 'C-MOVE: CT not archived');
    assert.match(movedCt.source, /^dimse:/);
    // dcmqrscp rewrites what it stores and may re-encode on sending (its own transfer syntax proposals;
    // CT_small's trailing padding does not survive it), so compare what any lossless path keeps: the pixels.
    const ctFile = await readPart10(ct.pathname);
    const archived = parsePart10(await collect((await t.archive.retrieve.openInstance(ctUid)).bytes));
    const pixels = (p: typeof ctFile) => {
      const el = p.header.dataset.elements.find((e) => e.tag === 0x7fe00010)!;
      return p.bytes.subarray(el.offset, el.offset + el.length);
    };
    assert.ok(pixels(archived).equals(pixels(ctFile)), `C-MOVE: pixel data differs (${archived.transferSyntaxUID})`);

    const got = await client.retrieve('DCMQRSCP', 'STUDY', { StudyInstanceUID: mrStudyUid }, 'get');
    assert.equal(got.status, 0);
    assert.equal(got.completed, 1);
    contact = (await t.archive.peers.get('DCMQRSCP'))!;
    assert.deepEqual([contact.lastContactOutcome, contact.lastContactDetail], ['ok', 'C-GET: 0x0000 Success (1 completed, 0 failed, 0 warning)']);
    const mrUid = '1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457';
    const stored2 = await t.archive.index.findInstance(mrUid);
    assert.ok(stored2, 'C-GET: MR not archived');
    assert.equal(stored2.source, 'dimse:DCMQRSCP');
  } finally {
    qr.stop();
  }
});

async function readPart10Bytes(bytes: Buffer) {
  const file = path.join(dir, `tmp-${generateUid()}.dcm`);
  await writeFile(file, bytes);
  const parsed = await readPart10(file);
  await rm(file);
  return parsed;
}
