/**
 * Orthanc (Debian's 1.10) as a DICOM peer of Atrium, both ways, through Atrium's REST API and Orthanc's:
 * C-ECHO both ways; an Atrium send job to Orthanc; Orthanc's C-FIND and C-MOVE against Atrium; Atrium's C-FIND,
 * C-MOVE and C-GET retrieve jobs from Orthanc. Each on three studies: uncompressed (synthetic CT), compressed
 * (JPEG 2000 lossless MR and JPEG 2000 SC from the shared test files, with new UIDs), and one of several series.
 * What arrives is compared with the sender's copy (Orthanc's GET /instances/{id}/file, Atrium's stored object):
 * same transfer syntax and pixel data, and the whole data set's SHA-256 where the path keeps it byte for byte.
 * Also: a retrieve the peer refuses fails at once (permanent), one from a closed port is retried (transient).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { collect, freePort, parsePart10, runTool, killAllChildren, type ParsedFile } from '../../test/support/dcmtk.ts';
import { killAllOrthancs, orthancInstalled, startOrthanc, type Orthanc } from '../../test/support/orthanc.ts';
import { startDicomService, type DicomService } from '../dimse/services/dicom-service.ts';
import { DicomClient } from '../dimse/services/scu.ts';
import { JobRunner } from '../jobs/job-runner.ts';
import { createHttpServer } from '../http/server.ts';
import { dicomJobHandlers } from './dicom-jobs.ts';
import { syntheticSeries } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import type { Job } from '../ports/job-queue.ts';

const CORPUS = new URL('../../../shared/testdata/dicom/', import.meta.url);
const skip = orthancInstalled() ? false : 'Orthanc is not installed (/usr/sbin/Orthanc)';

let t: TestArchive;
let dicom: DicomService;
let http: FastifyInstance;
let base: string;
let runner: JobRunner;
let orthanc: Orthanc;
let dir: string;

before(async () => {
  if (skip) return;
  t = await createTestArchive('sqlite+fs');
  dicom = await startDicomService(t.archive, { port: 0 });
  const client = new DicomClient(t.archive);
  runner = new JobRunner({ queue: t.archive.jobs, log: t.archive.log, pollIntervalMs: 50 });
  runner.registerAll(dicomJobHandlers(t.archive, client));
  await runner.start();
  http = await createHttpServer(t.archive, { client, onJobQueued: () => runner.wake() });
  base = await http.listen({ host: '127.0.0.1', port: 0 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-orthanc-interop-'));
  orthanc = await startOrthanc({ modalities: { atrium: { aeTitle: t.archive.config.dicom.aeTitle, host: '127.0.0.1', port: dicom.port } } });
  // As an administrator adds it: host and port only, every operation by default (as in dicom.peers).
  const put = await api('PUT', `/api/dicom/peers/${orthanc.aeTitle}`, { host: '127.0.0.1', port: orthanc.dicomPort });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assert.deepEqual(put.body.operations, ['echo', 'store', 'find', 'move', 'get', 'commit']);
});

after(async () => {
  if (skip) return;
  await runner?.stop();
  await http?.close();
  await dicom?.close();
  await orthanc?.stop();
  killAllOrthancs();
  killAllChildren();
  await t?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function api(method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${route}`, {
    method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function waitForJob(id: number, until: (job: Job) => boolean = (j) => j.state !== 'queued' && j.state !== 'running', limitMs = 60_000): Promise<Job> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const job = (await t.archive.jobs.get(id))!;
    if (until(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.state} after ${limitMs} ms (${job.lastError ?? ''})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Study {
  label: string;
  studyInstanceUid: string;
  /** Part-10 files, by SOP Instance UID. */
  files: Map<string, Buffer>;
  series: number;
}

/** Uncompressed: three synthetic CT slices. */
function uncompressedStudy(): Study {
  const studyInstanceUid = generateUid();
  const files = new Map<string, Buffer>();
  for (const instance of syntheticSeries(3, { rows: 64, columns: 64, studyInstanceUid, seed: Math.floor(Math.random() * 1e6), patientId: 'INTEROP-1', patientName: 'INTEROP^UNCOMPRESSED' })) {
    const bytes = Buffer.concat([...instance]);
    files.set(uidOf(parsePart10(bytes)), bytes);
  }
  return { label: 'uncompressed', studyInstanceUid, files, series: 1 };
}

/** Several series: three of two synthetic slices each. */
function multiSeriesStudy(): Study {
  const studyInstanceUid = generateUid();
  const files = new Map<string, Buffer>();
  for (let s = 1; s <= 3; s++) {
    for (const instance of syntheticSeries(2, { rows: 32, columns: 32, studyInstanceUid, seriesNumber: s, seed: s * 100 + Math.floor(Math.random() * 1e6), patientId: 'INTEROP-3', patientName: 'INTEROP^SERIES' })) {
      const bytes = Buffer.concat([...instance]);
      files.set(uidOf(parsePart10(bytes)), bytes);
    }
  }
  return { label: 'several series', studyInstanceUid, files, series: 3 };
}

/** Compressed: JPEG 2000 lossless MR and JPEG 2000 (lossy) SC, new UIDs, one patient and study (dcmodify). */
async function compressedStudy(): Promise<Study> {
  const studyInstanceUid = generateUid();
  const files = new Map<string, Buffer>();
  for (const name of ['MR_small_jp2klossless.dcm', 'JPEG2000.dcm']) {
    const file = path.join(dir, `${generateUid()}.dcm`);
    await copyFile(new URL(name, CORPUS), file);
    const r = await runTool('dcmodify', ['-nb', '-gse', '-gin', '-m', `StudyInstanceUID=${studyInstanceUid}`,
      '-m', 'PatientID=INTEROP-2', '-m', 'PatientName=INTEROP^COMPRESSED', file]);
    assert.equal(r.code, 0, r.output);
    const bytes = await readFile(file);
    files.set(uidOf(parsePart10(bytes)), bytes);
    await rm(file);
  }
  return { label: 'compressed (JPEG 2000)', studyInstanceUid, files, series: 2 };
}

async function studies(): Promise<Study[]> {
  return [uncompressedStudy(), await compressedStudy(), multiSeriesStudy()];
}

function uidOf(p: ParsedFile): string {
  const el = p.header.dataset.elements.find((e) => e.tag === 0x00080018)!;
  return new TextDecoder().decode(p.bytes.subarray(el.offset, el.offset + el.length)).replace(/[\0 ]+$/, '');
}

/** Encapsulated or native pixel data, as bytes (fragments and all): what no lossless path may change. */
function pixelData(p: ParsedFile): Buffer {
  const el = p.header.dataset.elements.find((e) => e.tag === 0x7fe00010)!;
  if (!el.encapsulated) return p.bytes.subarray(el.offset, el.offset + el.length);
  return Buffer.concat(el.encapsulated.fragments.map((f) => p.bytes.subarray(f.offset, f.offset + f.length)));
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function orthancCopy(sopInstanceUid: string): Promise<ParsedFile> {
  const found = await orthanc.post<Array<{ ID: string; Type: string }>>('/tools/lookup', Buffer.from(sopInstanceUid));
  const instance = found.find((f) => f.Type === 'Instance');
  assert.ok(instance, `Orthanc has no instance ${sopInstanceUid}`);
  return parsePart10(await orthanc.bytes(`/instances/${instance.ID}/file`));
}

async function atriumCopy(sopInstanceUid: string): Promise<ParsedFile> {
  return parsePart10(await collect((await t.archive.retrieve.openInstance(sopInstanceUid)).bytes));
}

/**
 * Same transfer syntax, same pixel data (checked first, for a clearer message), and the same data set: SHA-256
 * of everything after the File Meta Information. Neither Atrium nor Orthanc 1.10 re-encodes on any of these paths.
 */
function compare(what: string, sent: ParsedFile, arrived: ParsedFile, diagnostics: string[]): void {
  assert.equal(arrived.transferSyntaxUID, sent.transferSyntaxUID, `${what}: transfer syntax`);
  assert.equal(uidOf(arrived), uidOf(sent));
  assert.ok(pixelData(arrived).equals(pixelData(sent)), `${what}: pixel data differs`);
  assert.equal(sha(arrived.dataset), sha(sent.dataset), `${what}: the data set differs (${sent.dataset.length} -> ${arrived.dataset.length} bytes)`);
  diagnostics.push(`${what}: ${sent.transferSyntaxUID}, data set SHA-256 identical`);
}

test('C-ECHO both ways', { skip }, async () => {
  const echo = await api('POST', `/api/dicom/peers/${orthanc.aeTitle}/echo`);
  assert.equal(echo.status, 200);
  assert.equal(echo.body.status, 0);
  assert.deepEqual(await orthanc.post('/modalities/atrium/echo', {}), {});
});

test('an Atrium send job brings each study to Orthanc byte for byte', { skip }, async (c) => {
  const diagnostics: string[] = [];
  for (const study of await studies()) {
    for (const bytes of study.files.values()) assert.equal((await t.archive.ingest.ingest([bytes], { source: 'test' })).status, 'stored');
    const queued = await api('POST', `/api/dicom/peers/${orthanc.aeTitle}/send`, { studyInstanceUid: study.studyInstanceUid });
    assert.equal(queued.status, 202, JSON.stringify(queued.body));
    const job = await waitForJob(queued.body.id);
    assert.equal(job.state, 'succeeded', `${study.label}: ${job.lastError}`);
    assert.deepEqual(job.result, { completed: study.files.size, warning: 0 });
    const [o] = await orthanc.post<Array<{ ID: string }>>('/tools/lookup', Buffer.from(study.studyInstanceUid));
    const stats = await orthanc.get(`/studies/${o.ID}/statistics`);
    assert.equal(Number(stats.CountInstances), study.files.size);
    assert.equal(Number(stats.CountSeries), study.series);
    for (const uid of study.files.keys()) {
      compare(`send ${study.label}`, await atriumCopy(uid), await orthancCopy(uid), diagnostics);
    }
  }
  for (const d of new Set(diagnostics)) c.diagnostic(d);
});

test('Orthanc queries Atrium (C-FIND) and moves each study from it to itself (C-MOVE)', { skip }, async (c) => {
  const diagnostics: string[] = [];
  for (const study of await studies()) {
    for (const bytes of study.files.values()) assert.equal((await t.archive.ingest.ingest([bytes], { source: 'test' })).status, 'stored');
    const query = await orthanc.post<{ ID: string }>('/modalities/atrium/query', { Level: 'Study', Query: { StudyInstanceUID: study.studyInstanceUid, PatientName: '', NumberOfStudyRelatedInstances: '' } });
    const answers = await orthanc.get<Array<Record<string, { Value: string }>>>(`/queries/${query.ID}/answers?expand&simplify`);
    assert.equal(answers.length, 1, `${study.label}: C-FIND answers`);
    assert.equal((answers[0] as unknown as Record<string, string>).StudyInstanceUID, study.studyInstanceUid);
    assert.equal(Number((answers[0] as unknown as Record<string, string>).NumberOfStudyRelatedInstances), study.files.size);

    await orthanc.post('/modalities/atrium/move', { Level: 'Study', Resources: [{ StudyInstanceUID: study.studyInstanceUid }], TargetAet: orthanc.aeTitle, Synchronous: true });
    for (const uid of study.files.keys()) {
      compare(`Orthanc C-MOVE ${study.label}`, await atriumCopy(uid), await orthancCopy(uid), diagnostics);
    }
  }
  for (const d of new Set(diagnostics)) c.diagnostic(d);
});

for (const method of ['move', 'get'] as const) {
  test(`Atrium finds each study on Orthanc (C-FIND) and retrieves it by C-${method.toUpperCase()} job, as Orthanc stores it`, { skip }, async (c) => {
    const diagnostics: string[] = [];
    for (const study of await studies()) {
      await orthanc.upload([...study.files.values()]);
      const found = await api('POST', `/api/dicom/peers/${orthanc.aeTitle}/find`, { level: 'STUDY', keys: { StudyInstanceUID: study.studyInstanceUid, NumberOfStudyRelatedInstances: '', PatientName: '' } });
      assert.equal(found.status, 200, JSON.stringify(found.body));
      assert.equal(found.body.items.length, 1);
      assert.equal(Number(found.body.items[0]['00201208'].Value[0]), study.files.size);
      const series = await api('POST', `/api/dicom/peers/${orthanc.aeTitle}/find`, { level: 'SERIES', keys: { StudyInstanceUID: study.studyInstanceUid, SeriesInstanceUID: '' } });
      assert.equal(series.body.items.length, study.series, `${study.label}: series found`);

      const queued = await api('POST', `/api/dicom/peers/${orthanc.aeTitle}/retrieve`, { level: 'STUDY', keys: { StudyInstanceUID: study.studyInstanceUid }, method });
      assert.equal(queued.status, 202, JSON.stringify(queued.body));
      const job = await waitForJob(queued.body.id);
      assert.equal(job.state, 'succeeded', `${study.label}: ${job.lastError}`);
      assert.equal(job.attempts, 1);
      assert.equal((job.result as { completed: number }).completed, study.files.size);
      for (const uid of study.files.keys()) {
        const orthancFile = await orthancCopy(uid);
        compare(`Atrium C-${method.toUpperCase()} ${study.label}`, orthancFile, await atriumCopy(uid), diagnostics);
        // And Orthanc's copy is the upload as it was.
        compare(`Atrium C-${method.toUpperCase()} ${study.label} (vs upload)`, parsePart10(study.files.get(uid)!), await atriumCopy(uid), diagnostics);
      }
    }
    for (const d of new Set(diagnostics)) c.diagnostic(d);
  });
}

test('C-GET of each series with the default storage contexts (Orthanc answers no C-FIND) brings JPEG 2000 back as stored', { skip }, async (c) => {
  const study = await compressedStudy();
  await orthanc.upload([...study.files.values()]);
  const series = await api('POST', `/api/dicom/peers/${orthanc.aeTitle}/find`, { level: 'IMAGE', keys: { StudyInstanceUID: study.studyInstanceUid, SeriesInstanceUID: '', SOPInstanceUID: '' } });
  const seriesOf = new Map<string, string>(series.body.items.map((i: any) => [i['00080018'].Value[0], i['0020000E'].Value[0]]));
  assert.equal(seriesOf.size, study.files.size);
  // SOP Classes in Study cannot be asked: the 127 default contexts are proposed.
  await orthanc.addModality('atrium', { aeTitle: t.archive.config.dicom.aeTitle, host: '127.0.0.1', port: dicom.port, allow: { Find: false } });
  const diagnostics: string[] = [];
  try {
    for (const [uid, seriesUid] of seriesOf) {
      const queued = await api('POST', `/api/dicom/peers/${orthanc.aeTitle}/retrieve`, { level: 'SERIES', keys: { StudyInstanceUID: study.studyInstanceUid, SeriesInstanceUID: seriesUid }, method: 'get' });
      const job = await waitForJob(queued.body.id);
      assert.equal(job.state, 'succeeded', job.lastError ?? '');
      compare('Atrium C-GET series (default contexts)', parsePart10(study.files.get(uid)!), await atriumCopy(uid), diagnostics);
    }
  } finally {
    await orthanc.addModality('atrium', { aeTitle: t.archive.config.dicom.aeTitle, host: '127.0.0.1', port: dicom.port });
  }
  assert.match(await orthanc.log(), /Rejected Find request from remote DICOM modality with AET "ATRIUM"/, 'the C-FIND for SOP Classes in Study was refused');
  for (const d of new Set(diagnostics)) c.diagnostic(d);
});

test('a retrieve Orthanc refuses or cannot serve fails at once with the reason (permanent); one from a closed port is retried (transient)', { skip }, async () => {
  // Orthanc checks the called AE title (DicomCheckCalledAet): a peer entry with the wrong one is rejected-permanent.
  assert.equal((await api('PUT', '/api/dicom/peers/NOT_ORTHANC', { host: '127.0.0.1', port: orthanc.dicomPort })).status, 200);
  const refused = await api('POST', '/api/dicom/peers/NOT_ORTHANC/retrieve', { level: 'STUDY', keys: { StudyInstanceUID: generateUid() }, method: 'get' });
  const failed = await waitForJob(refused.body.id);
  assert.equal(failed.state, 'failed', `not failed at once: ${failed.state}, ${failed.lastError}`);
  assert.equal(failed.attempts, 1);
  assert.match(failed.lastError ?? '', /^permanent failure, not retried: association with NOT_ORTHANC rejected: rejected-permanent/);

  // An object Orthanc cannot send in any context proposed and cannot transcode (JPEG 2000 of a class that gets no JPEG 2000
  // context among the 127 defaults: PET here): the C-GET sub-operation fails without reaching us, and no retry changes that.
  const pet = path.join(dir, 'pet-j2k.dcm');
  await copyFile(new URL('JPEG2000.dcm', CORPUS), pet);
  const petStudy = generateUid();
  const r = await runTool('dcmodify', ['-nb', '-gse', '-gin', '-m', `StudyInstanceUID=${petStudy}`, '-m', 'SOPClassUID=1.2.840.10008.5.1.4.1.1.128',
    '-m', 'PatientID=INTEROP-4', pet]); // dcmodify updates the meta header's UIDs to match
  assert.equal(r.code, 0, r.output);
  await orthanc.upload([pet]);
  await orthanc.addModality('atrium', { aeTitle: t.archive.config.dicom.aeTitle, host: '127.0.0.1', port: dicom.port, allow: { Find: false } });
  try {
    const get = await api('POST', `/api/dicom/peers/${orthanc.aeTitle}/retrieve`, { level: 'STUDY', keys: { StudyInstanceUID: petStudy }, method: 'get' });
    const job = await waitForJob(get.body.id);
    assert.equal(job.state, 'failed', `not failed at once: ${job.state}, ${job.lastError}`);
    assert.equal(job.attempts, 1);
    assert.match(job.lastError ?? '', /^permanent failure, not retried: C-GET from ORTHANC: .*1 sub-operation\(s\) failed without the object reaching Atrium.*cannot transcode.*failed: [0-9.]+$/);
    assert.match(await orthanc.log(), /Cannot transcode 1\.2\.840\.10008\.5\.1\.4\.1\.1\.128 from transfer syntax 1\.2\.840\.10008\.1\.2\.4\.91/);
  } finally {
    await orthanc.addModality('atrium', { aeTitle: t.archive.config.dicom.aeTitle, host: '127.0.0.1', port: dicom.port });
  }

  const closed = await freePort();
  assert.equal((await api('PUT', '/api/dicom/peers/GONE', { host: '127.0.0.1', port: closed })).status, 200);
  const queued = await api('POST', '/api/dicom/peers/GONE/retrieve', { level: 'STUDY', keys: { StudyInstanceUID: generateUid() }, method: 'move' });
  const job = await waitForJob(queued.body.id, (j) => j.attempts >= 1 && j.state !== 'running');
  assert.equal(job.state, 'queued', 'retried later');
  assert.match(job.lastError ?? '', /cannot connect|ECONNREFUSED/);
  await t.archive.jobs.cancel(job.id);
});
