// End-to-end: Atrium's C-FIND SCP against DCMTK's findscu, over a small synthetic archive.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { dumpValues, filesIn, killAllChildren, runTool } from '../../../test/support/dcmtk.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { syntheticSeries } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';

interface Study { key: string; patient: Patient; uid: string; date: string; accession: string; modality: string; series: { uid: string; instances: string[] }[] }
interface Patient { id: string; name: string }

const P1: Patient = { id: 'PID001', name: 'DOE^JOHN' };
const P2: Patient = { id: 'PID002', name: 'DOE^JANE' };
const P3: Patient = { id: 'PID003', name: 'SMITH^ANNA' };
const P4: Patient = { id: 'PID004', name: 'DOE^JOAN' };
const PATIENTS = [P1, P2, P3, P4];

/** Studies: [key, patient, date, accession, modality, instances per series]. */
const LAYOUT: [string, Patient, string, string, string, number[]][] = [
  ['S1', P1, '20240105', 'ACC100', 'CT', [3, 2]],
  ['S2', P1, '20240220', 'ACC101', 'MR', [2]],
  ['S3', P2, '20240131', 'ACC102', 'CT', [1]],
  ['S4', P3, '20231231', 'ACC103', 'MR', [2, 3]],
  ['S5', P4, '20240101', 'ACC104', 'US', [1]],
];

describe('C-FIND SCP with DCMTK findscu', { timeout: 300_000 }, () => {
  let t: TestArchive;
  let dicom: DicomService;
  let work: string;
  const studies: Study[] = [];
  const study = (key: string) => studies.find((s) => s.key === key)!;

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    dicom = await startDicomService(t.archive, { port: 0 });
    work = await mkdtemp(path.join(os.tmpdir(), 'atrium-findscu-'));
    await t.archive.peers.upsert({ aeTitle: 'FINDSCU', host: '127.0.0.1', port: 104, operations: ['echo', 'find'] });
    let seed = 0;
    for (const [key, patient, date, accession, modality, seriesSizes] of LAYOUT) {
      const s: Study = { key, patient, uid: generateUid(), date, accession, modality, series: [] };
      for (const [i, n] of seriesSizes.entries()) {
        const seriesUid = generateUid();
        const instances: string[] = [];
        for (const chunks of syntheticSeries(n, {
          patientId: patient.id, patientName: patient.name, studyInstanceUid: s.uid, seriesInstanceUid: seriesUid, studyDate: date,
          accessionNumber: accession, modality, seriesNumber: i + 1, rows: 8, columns: 8, seed: seed += 10,
        })) {
          const result = await t.archive.ingest.ingest(chunks, { source: 'test' });
          assert.equal(result.status, 'stored');
          instances.push((result as { sopInstanceUid: string }).sopInstanceUid);
        }
        s.series.push({ uid: seriesUid, instances });
      }
      studies.push(s);
    }
  });
  after(async () => {
    await dicom?.close();
    await t?.cleanup();
    killAllChildren();
    if (work) await rm(work, { recursive: true, force: true });
  });

  let runs = 0;
  /** Runs findscu -X; returns its result and the response identifiers (dcmdump'ed values of `read`). */
  async function find(model: '-S' | '-P', keys: string[], read: string[], options: { aet?: string } = {}) {
    const dir = path.join(work, `q${++runs}`);
    await runTool('mkdir', ['-p', dir]);
    const r = await runTool('findscu', [
      '-v', model, '-X', '-od', dir, '-aet', options.aet ?? 'FINDSCU', '-aec', t.archive.config.dicom.aeTitle,
      ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(dicom.port),
    ], { timeoutMs: 60_000 });
    const responses = [];
    for (const f of await filesIn(dir)) responses.push(await dumpValues(f, read));
    return { ...r, responses };
  }
  const sorted = (xs: (string | undefined)[]) => [...xs].map((x) => x ?? '').sort();
  const uidsOf = (keys: string[]) => sorted(keys.map((k) => study(k).uid));

  test('STUDY level, study root: wildcards, date ranges, UID lists, universal matching', async () => {
    const q = async (keys: string[]) => {
      const r = await find('-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID', ...keys], ['StudyInstanceUID', 'PatientName']);
      assert.equal(r.code, 0, r.output);
      return sorted(r.responses.map((x) => x.StudyInstanceUID));
    };
    assert.deepEqual(await q(['PatientName=DOE*']), uidsOf(['S1', 'S2', 'S3', 'S5']));
    assert.deepEqual(await q(['PatientName=DOE^JO?N']), uidsOf(['S1', 'S2', 'S5']));
    assert.deepEqual(await q(['PatientName=SMITH^ANNA']), uidsOf(['S4']));
    assert.deepEqual(await q(['PatientName=NOBODY*']), []);
    assert.deepEqual(await q(['StudyDate=20240101-20240131']), uidsOf(['S1', 'S3', 'S5']), 'closed range, both ends inclusive');
    assert.deepEqual(await q(['StudyDate=20240201-']), uidsOf(['S2']), 'open end');
    assert.deepEqual(await q(['StudyDate=-20231231']), uidsOf(['S4']), 'open start');
    assert.deepEqual(await q(['StudyDate=20240131']), uidsOf(['S3']), 'single date');
    assert.deepEqual(await q([`StudyInstanceUID=${study('S1').uid}\\${study('S3').uid}`]).then((x) => x), uidsOf(['S1', 'S3']));
    assert.deepEqual(await q(['AccessionNumber=ACC10?', 'ModalitiesInStudy=MR']), uidsOf(['S2', 'S4']));
    assert.deepEqual(await q(['PatientName=DOE*', 'StudyDate=20240101-20240131']), uidsOf(['S1', 'S3', 'S5']), 'keys combine with AND');
  });

  test('STUDY level: universal matching returns every study with its return keys filled in', async () => {
    const r = await find('-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID', 'PatientName', 'PatientID', 'StudyDate', 'AccessionNumber',
      'ModalitiesInStudy', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances', 'RetrieveAETitle'],
    ['StudyInstanceUID', 'PatientName', 'PatientID', 'StudyDate', 'AccessionNumber', 'ModalitiesInStudy', 'NumberOfStudyRelatedSeries',
      'NumberOfStudyRelatedInstances', 'RetrieveAETitle', 'QueryRetrieveLevel']);
    assert.equal(r.code, 0, r.output);
    assert.equal(r.responses.length, studies.length);
    for (const s of studies) {
      const m = r.responses.find((x) => x.StudyInstanceUID === s.uid);
      assert.ok(m, `study ${s.key} not returned`);
      assert.deepEqual(
        [m.PatientName, m.PatientID, m.StudyDate, m.AccessionNumber, m.ModalitiesInStudy, m.NumberOfStudyRelatedSeries, m.NumberOfStudyRelatedInstances, m.RetrieveAETitle, m.QueryRetrieveLevel],
        [s.patient.name, s.patient.id, s.date, s.accession, s.modality, String(s.series.length), String(s.series.reduce((n, x) => n + x.instances.length, 0)), 'ATRIUM', 'STUDY'],
        s.key);
    }
  });

  test('PATIENT level, patient root', async () => {
    const r = await find('-P', ['QueryRetrieveLevel=PATIENT', 'PatientID', 'PatientName=DOE*'], ['PatientID', 'PatientName']);
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(sorted(r.responses.map((x) => x.PatientID)), ['PID001', 'PID002', 'PID004']);
    assert.equal(r.responses.find((x) => x.PatientID === 'PID002')?.PatientName, 'DOE^JANE');
    const all = await find('-P', ['QueryRetrieveLevel=PATIENT', 'PatientID', 'PatientName'], ['PatientID']);
    assert.deepEqual(sorted(all.responses.map((x) => x.PatientID)), PATIENTS.map((p) => p.id).sort());
    const one = await find('-P', ['QueryRetrieveLevel=PATIENT', 'PatientID=PID00?', 'PatientName=*ANNA'], ['PatientID']);
    assert.deepEqual(one.responses.map((x) => x.PatientID), ['PID003']);
  });

  test('STUDY level, patient root: the studies of one patient', async () => {
    const r = await find('-P', ['QueryRetrieveLevel=STUDY', 'PatientID=PID001', 'StudyInstanceUID'], ['StudyInstanceUID']);
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(sorted(r.responses.map((x) => x.StudyInstanceUID)), uidsOf(['S1', 'S2']));
  });

  test('SERIES and IMAGE level, both roots', async () => {
    const s1 = study('S1');
    const series = await find('-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${s1.uid}`, 'SeriesInstanceUID', 'Modality', 'SeriesNumber'],
      ['SeriesInstanceUID', 'Modality', 'SeriesNumber']);
    assert.equal(series.code, 0, series.output);
    assert.deepEqual(sorted(series.responses.map((x) => x.SeriesInstanceUID)), sorted(s1.series.map((x) => x.uid)));
    assert.deepEqual(series.responses.map((x) => x.Modality), ['CT', 'CT']);

    const byNumber = await find('-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${s1.uid}`, 'SeriesInstanceUID', 'SeriesNumber=2'], ['SeriesInstanceUID']);
    assert.deepEqual(byNumber.responses.map((x) => x.SeriesInstanceUID), [s1.series[1].uid]);

    const images = await find('-S', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${s1.uid}`, `SeriesInstanceUID=${s1.series[0].uid}`, 'SOPInstanceUID', 'InstanceNumber'],
      ['SOPInstanceUID', 'InstanceNumber']);
    assert.equal(images.code, 0, images.output);
    assert.deepEqual(sorted(images.responses.map((x) => x.SOPInstanceUID)), sorted(s1.series[0].instances));
    assert.deepEqual(sorted(images.responses.map((x) => x.InstanceNumber)), ['1', '2', '3']);

    const two = s1.series[0].instances.slice(0, 2);
    const list = await find('-P', ['QueryRetrieveLevel=IMAGE', `PatientID=${P1.id}`, `StudyInstanceUID=${s1.uid}`, `SeriesInstanceUID=${s1.series[0].uid}`,
      `SOPInstanceUID=${two.join('\\')}`], ['SOPInstanceUID']);
    assert.equal(list.code, 0, list.output);
    assert.deepEqual(sorted(list.responses.map((x) => x.SOPInstanceUID)), sorted(two));
  });

  test('an unknown calling AE may not query: the association is rejected', async () => {
    const r = await find('-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID'], ['StudyInstanceUID'], { aet: 'STRANGER' });
    assert.notEqual(r.code, 0);
    assert.match(r.output, /Association Rejected/i);
    assert.equal(r.responses.length, 0);
  });

  test('a malformed identifier gets a failure status, and the association still works', async () => {
    const r = await find('-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID=1.2.*'], ['StudyInstanceUID']);
    assert.equal(r.responses.length, 0);
    assert.match(r.output, /Received Final Find Response \(.*(A900|DataSetDoesNotMatchSOPClass|Identifier does not match SOP Class)/i, r.output);
    const noLevel = await find('-S', ['StudyInstanceUID'], ['StudyInstanceUID']);
    assert.equal(noLevel.responses.length, 0);
    assert.match(noLevel.output, /Received Final Find Response \(.*(A900|DataSetDoesNotMatchSOPClass|Identifier does not match SOP Class)/i, noLevel.output);
    const ok = await find('-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID'], ['StudyInstanceUID']);
    assert.equal(ok.responses.length, studies.length);
  });
});

describe('C-CANCEL of a C-FIND with DCMTK findscu', { timeout: 300_000 }, () => {
  /** Enough matches that sending them all takes far longer than a C-CANCEL-RQ needs to arrive. */
  const MATCHES = 600;
  let t: TestArchive;
  let dicom: DicomService;
  let work: string;
  const studyUid = generateUid();
  const seriesUid = generateUid();

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    dicom = await startDicomService(t.archive, { port: 0 });
    work = await mkdtemp(path.join(os.tmpdir(), 'atrium-findcancel-'));
    await t.archive.peers.upsert({ aeTitle: 'FINDSCU', host: '127.0.0.1', port: 104, operations: ['find'] });
    const instances = [...syntheticSeries(MATCHES, { patientId: 'BULK1', patientName: 'BULK^CANCEL', studyInstanceUid: studyUid, seriesInstanceUid: seriesUid, rows: 2, columns: 2 })];
    let next = 0;
    // Several ingests at once: one at a time, the fsyncs of 600 objects would dominate the test.
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < instances.length) assert.equal((await t.archive.ingest.ingest(instances[next++], { source: 'test' })).status, 'stored');
    }));
  });
  after(async () => {
    await dicom?.close();
    await t?.cleanup();
    killAllChildren();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const findscu = (dir: string, extra: string[]) => runTool('findscu', ['-v', '-S', '-X', '-od', dir, '-aet', 'FINDSCU', '-aec', t.archive.config.dicom.aeTitle,
    '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${studyUid}`, '-k', `SeriesInstanceUID=${seriesUid}`, '-k', 'SOPInstanceUID',
    ...extra, '127.0.0.1', String(dicom.port)], { timeoutMs: 120_000 });
  const finalStatus = (output: string) => /Received Final Find Response \(([^)]*)\)/.exec(output)?.[1];

  test('findscu --cancel 1: the final status is Cancel and far fewer matches than exist were sent', async (tc) => {
    const dir = path.join(work, 'cancelled');
    await mkdir(dir);
    const r = await findscu(dir, ['--cancel', '1']);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /Sending Cancel Request/);
    assert.match(finalStatus(r.output) ?? '', /Cancel/, r.output.slice(-2000));
    const received = (await filesIn(dir)).length;
    tc.diagnostic(`${received} of ${MATCHES} matches sent before the C-CANCEL took effect`);
    assert.ok(received >= 1, 'the match before the cancel was received');
    assert.ok(received < MATCHES / 2, `${received} of ${MATCHES} matches were sent: the C-CANCEL did not stop the stream`);
  });

  test('the same query without a cancel: Success and every match (the cancel above is what stopped it)', async () => {
    const dir = path.join(work, 'complete');
    await mkdir(dir);
    const r = await findscu(dir, []);
    assert.equal(r.code, 0, r.output);
    assert.match(finalStatus(r.output) ?? '', /Success/, r.output.slice(-2000));
    assert.equal((await filesIn(dir)).length, MATCHES);
  });
});
