// Radiopharmaceutical Radiation Dose SR (TID 10021/10022): a synthetic RRDSR written by DCMTK's dump2dcm (not
// our codec) with two administrations, one coded in SNOMED CT and one in the legacy SNOMED-RT codes. Each
// administration's radiopharmaceutical, radionuclide, administered activity with its unit, route, site and start
// DateTime are extracted; the expected values are read back from the dump text here (not from our output). The
// file is then sent by storescu and extracted on ingest into the dose index, read by REST. A KOS is no dose report.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive } from '../../test/support/archive.ts';
import { runTool, killAllChildren } from '../../test/support/dcmtk.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';
import { createHttpServer } from '../http/server.ts';
import { eventDispatcher } from '../app.ts';
import { readDoseReport } from './dose/read-dose-report.ts';
import { toCanonical } from './dose/dose-units.ts';

const STUDY = '1.2.826.0.1.3680043.9.7433.77.1';
const text = (v: string) => `[${v}]`;
const code = (indent: string, tag: string, value: string, scheme: string, meaning: string) => [
  `${indent}(${tag}) SQ (Sequence with explicit length #=1)`,
  `${indent}  (fffe,e000) na (Item with explicit length #=3)`,
  `${indent}    (0008,0100) SH ${text(value)}`,
  `${indent}    (0008,0102) SH ${text(scheme)}`,
  `${indent}    (0008,0104) LO ${text(meaning)}`,
  `${indent}  (fffe,e00d) na (ItemDelimitationItem for re-encoding)`,
  `${indent}(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)`,
];
/** One content item (in an item of a Content Sequence), with its children. */
function contentItem(indent: string, relationship: string, valueType: string, concept: [string, string, string], body: string[], children: string[][] = []): string[] {
  return [
    `${indent}(fffe,e000) na (Item with undefined length)`,
    `${indent}  (0040,a010) CS ${text(relationship)}`,
    `${indent}  (0040,a040) CS ${text(valueType)}`,
    ...code(`${indent}  `, '0040,a043', ...concept),
    ...body.map((l) => `${indent}  ${l}`),
    ...(children.length ? [`${indent}  (0040,a730) SQ (Sequence with undefined length)`, ...children.flatMap((c) => c.map((l) => `${indent}    ${l}`)), `${indent}  (fffe,e0dd) na (SequenceDelimitationItem)`] : []),
    `${indent}(fffe,e00d) na (ItemDelimitationItem)`,
  ];
}
const codeItem = (concept: [string, string, string], value: [string, string, string], children: string[][] = []) =>
  contentItem('', 'CONTAINS', 'CODE', concept, code('', '0040,a168', ...value), children);
const modifier = (concept: [string, string, string], value: [string, string, string]) =>
  contentItem('', 'HAS CONCEPT MOD', 'CODE', concept, code('', '0040,a168', ...value));
const num = (concept: [string, string, string], value: string, unit: [string, string, string]) => contentItem('', 'CONTAINS', 'NUM', concept, [
  '(0040,a300) SQ (Sequence with explicit length #=1)',
  '  (fffe,e000) na (Item with explicit length #=2)',
  ...code('    ', '0040,08ea', ...unit),
  `    (0040,a30a) DS ${text(value)}`,
  '  (fffe,e00d) na (ItemDelimitationItem for re-encoding)',
  '(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)',
]);
const dateTime = (concept: [string, string, string], value: string) => contentItem('', 'CONTAINS', 'DATETIME', concept, [`(0040,a120) DT ${text(value)}`]);
const uidRef = (concept: [string, string, string], value: string) => contentItem('', 'CONTAINS', 'UIDREF', concept, [`(0040,a124) UI ${text(value)}`]);

/** The RRDSR: two administrations. */
function rrdsrDump(): string {
  const administration = (o: { scheme: 'SCT' | 'SRT'; uid: string; agent: [string, string, string]; nuclide: [string, string, string]; activity: string; unit: string; start: string; route: [string, string, string]; site: [string, string, string] }) =>
    contentItem('', 'CONTAINS', 'CONTAINER', ['113502', 'DCM', 'Radiopharmaceutical Administration'], ['(0040,a050) CS [SEPARATE]'], [
      codeItem(o.scheme === 'SCT' ? ['349358000', 'SCT', 'Radiopharmaceutical agent'] : ['F-61FDB', 'SRT', 'Radiopharmaceutical agent'], o.agent),
      codeItem(o.scheme === 'SCT' ? ['89457008', 'SCT', 'Radionuclide'] : ['C-10072', 'SRT', 'Radionuclide'], o.nuclide),
      uidRef(['113503', 'DCM', 'Radiopharmaceutical Administration Event UID'], o.uid),
      dateTime(['123003', 'DCM', 'Radiopharmaceutical Start DateTime'], o.start),
      num(['113507', 'DCM', 'Administered activity'], o.activity, [o.unit, 'UCUM', o.unit]),
      codeItem(o.scheme === 'SCT' ? ['410675002', 'SCT', 'Route of administration'] : ['G-C340', 'SRT', 'Route of administration'], o.route, [
        modifier(o.scheme === 'SCT' ? ['272737002', 'SCT', 'Site of'] : ['G-C581', 'SRT', 'Site of'], o.site),
      ]),
    ]);
  return [
    '(0008,0005) CS [ISO_IR 192]',
    '(0008,0016) UI [1.2.840.10008.5.1.4.1.1.88.68]',
    '(0008,0018) UI [1.2.826.0.1.3680043.9.7433.77.3.1]',
    '(0008,0020) DA [20240305]',
    '(0008,0023) DA [20240305]',
    '(0008,0033) TM [120000]',
    '(0008,0050) SH [ACC-NM-1]',
    '(0008,0060) CS [SR]',
    '(0008,0070) LO [Synthetic Radiopharmacy]',
    '(0010,0010) PN [NUCLEAR^PATIENT]',
    '(0010,0020) LO [NM0001]',
    '(0010,0030) DA [19600101]',
    '(0010,0040) CS [F]',
    `(0020,000d) UI [${STUDY}]`,
    '(0020,000e) UI [1.2.826.0.1.3680043.9.7433.77.2]',
    '(0020,0011) IS [1]',
    '(0020,0013) IS [1]',
    '(0040,a040) CS [CONTAINER]',
    ...code('', '0040,a043', '113500', 'DCM', 'Radiopharmaceutical Radiation Dose Report'),
    '(0040,a050) CS [SEPARATE]',
    '(0040,a491) CS [COMPLETE]',
    '(0040,a493) CS [VERIFIED]',
    '(0040,a504) SQ (Sequence with explicit length #=1)',
    '  (fffe,e000) na (Item with explicit length #=2)',
    '    (0008,0105) CS [DCMR]',
    '    (0040,db00) CS [10021]',
    '  (fffe,e00d) na (ItemDelimitationItem for re-encoding)',
    '(fffe,e0dd) na (SequenceDelimitationItem for re-encoding)',
    '(0040,a730) SQ (Sequence with undefined length)',
    ...[
      contentItem('', 'HAS CONCEPT MOD', 'CODE', ['121058', 'DCM', 'Procedure reported'], code('', '0040,a168', '113502', 'DCM', 'Radiopharmaceutical Administration')),
      administration({ scheme: 'SCT', uid: '1.2.826.0.1.3680043.9.7433.77.4.1', agent: ['35321007', 'SCT', 'Fluorodeoxyglucose F^18^'], nuclide: ['77004003', 'SCT', '^18^Fluorine'],
        activity: '352.5', unit: 'MBq', start: '20240305101500', route: ['47625008', 'SCT', 'Intravenous route'], site: ['368208006', 'SCT', 'Left upper arm structure'] }),
      administration({ scheme: 'SRT', uid: '1.2.826.0.1.3680043.9.7433.77.4.2', agent: ['C-B1031', 'SRT', 'Fluorodeoxyglucose F^18^'], nuclide: ['C-111A1', 'SRT', '^18^Fluorine'],
        activity: '4.5', unit: 'mCi', start: '20240305113000', route: ['G-D101', 'SRT', 'Intravenous route'], site: ['T-D8200', 'SRT', 'Arm'] }),
    ].flat().map((l) => `  ${l}`),
    '(fffe,e0dd) na (SequenceDelimitationItem)',
    '',
  ].join('\n');
}

/** What the dump text says of each administration: read from the text, item by item. */
function expectedFromDump(dump: string) {
  const blocks = dump.split('[113502]').slice(2); // the first is Procedure reported's value, then one per administration container
  return blocks.map((b) => {
    // The first `tag` value after the concept name `concept`.
    const valueAfter = (concept: string, tag: string) =>
      new RegExp(`\\(${tag}\\) \\w\\w \\[([^\\]]*)\\]`).exec(b.slice(b.indexOf(`[${concept}]`)))?.[1] ?? null;
    // The meaning of a CODE item's value: Concept Code Sequence's Code Meaning after the concept name.
    const valueMeaning = (concept: string) => {
      const rest = b.slice(b.indexOf(`[${concept}]`));
      const seq = rest.slice(rest.indexOf('(0040,a168)'));
      return /\(0008,0104\) LO \[([^\]]*)\]/.exec(seq)![1];
    };
    const rest = b.slice(b.indexOf('[113507]'));
    const measured = rest.slice(rest.indexOf('(0040,a300)'));
    return {
      agent: valueMeaning(b.includes('[349358000]') ? '349358000' : 'F-61FDB'),
      nuclide: valueMeaning(b.includes('[89457008]') ? '89457008' : 'C-10072'),
      route: valueMeaning(b.includes('[410675002]') ? '410675002' : 'G-C340'),
      site: valueMeaning(b.includes('[272737002]') ? '272737002' : 'G-C581'),
      start: valueAfter('123003', '0040,a120'),
      uid: valueAfter('113503', '0040,a124'),
      activity: Number(/\(0040,a30a\) DS \[([^\]]*)\]/.exec(measured)![1]),
      unit: /\(0008,0100\) SH \[([^\]]*)\]/.exec(measured)![1],
    };
  });
}

test('Radiopharmaceutical Radiation Dose SR written by dump2dcm: each administration extracted, then indexed on ingest', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-rrdsr-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const dump = rrdsrDump();
  await writeFile(path.join(dir, 'rrdsr.dump'), dump);
  const made = await runTool('dump2dcm', ['-q', '+te', path.join(dir, 'rrdsr.dump'), path.join(dir, 'rrdsr.dcm')], { timeoutMs: 30_000 });
  assert.equal(made.code, 0, made.output);
  // DCMTK's SR reader takes it as a Radiopharmaceutical Radiation Dose SR.
  const sr = await runTool('dsrdump', ['-q', path.join(dir, 'rrdsr.dcm')], { timeoutMs: 30_000 });
  assert.equal(sr.code, 0, sr.output);
  assert.match(sr.stdout, /Radiopharmaceutical Radiation Dose/);
  const expected = expectedFromDump(dump);
  assert.equal(expected.length, 2);
  assert.deepEqual(expected.map((e) => e.unit), ['MBq', 'mCi']);

  await t.test('extraction: radiopharmaceutical, radionuclide, activity with its unit (and in MBq), route, site, start, event UID', async () => {
    const read = await readDoseReport([await readFile(path.join(dir, 'rrdsr.dcm'))]);
    if (!read.dose) assert.fail(read.reason);
    const x = read;
    assert.equal(x.kind, 'radiopharmaceutical');
    assert.equal(x.template, '10021');
    assert.equal(x.header.studyInstanceUid, STUDY);
    assert.equal(x.events.length, 2);
    for (const [i, e] of expected.entries()) {
      const event = x.events[i]!;
      assert.equal(event.radiopharmaceutical, `${e.agent} / ${e.nuclide}`, `administration ${i + 1}`);
      assert.equal(event.route, e.route);
      assert.equal(event.anatomy?.meaning, e.site);
      assert.equal(event.startedAt, e.start);
      assert.equal(event.irradiationEventUid, e.uid);
      const activity = event.measurements.find((m) => m.concept === '113507^DCM');
      assert.deepEqual([activity?.value, activity?.unit], [e.activity, e.unit], 'the value with the unit the SR gave');
      // 1 mCi = 37 MBq, written out here.
      assert.equal(event.administeredActivity, e.unit === 'mCi' ? Number((e.activity * 37).toPrecision(12)) : e.activity);
    }
    assert.equal(toCanonical('activity', 4.5, 'mCi'), 166.5);
  });

  await t.test('ingest: storescu to Atrium, extracted into the dose index, read by REST', async () => {
    const ta = await createTestArchive('sqlite+fs');
    after(() => ta.cleanup());
    const archive = ta.archive;
    const dicom = await startDicomService(archive, { port: 0 });
    after(async () => { await dicom.close(); killAllChildren(); });
    const app = await createHttpServer(archive);
    after(() => app.close());
    const r = await runTool('storescu', ['-R', '-aet', 'MODALITY', '-aec', archive.config.dicom.aeTitle, '127.0.0.1', String(dicom.port), path.join(dir, 'rrdsr.dcm')], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.output);
    const dispatcher = eventDispatcher(archive);
    for (let i = 0; i < 100; i++) { const d = await dispatcher.runOnce(); if (d.routed + d.delivered + d.failed === 0) break; }
    const get = async (url: string) => (await app.inject({ method: 'GET', url, headers: ta.authHeaders() })).json();
    const study = await get(`/api/quality/dose/studies/${STUDY}`);
    assert.equal(study.reports.length, 1);
    assert.equal(study.reports[0].modality, 'NM');
    assert.deepEqual(study.events.map((e: any) => e.radiopharmaceutical), expected.map((e) => `${e.agent} / ${e.nuclide}`));
    assert.deepEqual(study.events.map((e: any) => e.administeredActivity), expected.map((e) => (e.unit === 'mCi' ? e.activity * 37 : e.activity)));
    assert.deepEqual(study.events.map((e: any) => e.startedAt), expected.map((e) => e.start));
    assert.deepEqual(study.events.map((e: any) => e.anatomy), expected.map((e) => e.site));
    const events = await get('/api/quality/dose/events?modality=NM');
    assert.equal(events.total, 2);
  });
});

test('a Key Object Selection document is no dose report, and does not throw', async () => {
  const { keyObjectSelection } = await import('../../test/support/key-object-selection.ts');
  const kos = keyObjectSelection({ study: STUDY, series: '1.2.3.9', sop: '1.2.3.9.1', title: ['113037', 'Rejected for Patient Safety Reasons'], refs: [{ series: '1.2.3.8', sop: '1.2.3.8.1' }], contentTime: '120000', patientId: 'X' });
  const x = await readDoseReport([kos]);
  assert.equal(x.dose, false);
});
