/**
 * The query model compiled on real SQLite and PostgreSQL: every matching type of PS3.4 C.2.2.2 against a
 * small synthetic archive, and the same answers from both engines.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createTestArchive, type TestArchive } from '../../../../test/support/archive.ts';
import { syntheticInstance, type SyntheticInstanceOptions } from '../../../synthetic/synthetic-instance.ts';
import type { Archive } from '../../../app.ts';
import type { DicomJsonDataSet } from '../../../dicom/dicom-json.ts';
import { T, type IndexQuery, type QueryKey } from '../../../dicom/query/model.ts';
import { AtriumError } from '../../../errors.ts';

const ROOT = '1.2.826.0.1.3680043.10.999';
const study = (n: number) => `${ROOT}.${n}`;
const series = (n: number, s: number) => `${ROOT}.${n}.${s}`;
const sop = (n: number, s: number, i: number) => `${ROOT}.${n}.${s}.${i}`;

const MULLER = 'Müller^Jürgen';
const YAMADA = 'Yamada^Tarou=山田^太郎=やまだ^たろう';
const SMITH = 'smith^anna';

interface StudySpec {
  n: number; patientId: string; patientName: string; studyDate: string; studyTime: string; accessionNumber: string;
  referringPhysicianName?: string; studyDescription?: string;
  series: { modality: string; instances: number; imageTypes?: string[]; requestAttributes?: SyntheticInstanceOptions['requestAttributes'] }[];
}

const STUDIES: StudySpec[] = [
  { n: 1, patientId: 'PAT1', patientName: MULLER, studyDate: '20240110', studyTime: '093000', accessionNumber: 'ACC%1', referringPhysicianName: 'Smith^John',
    series: [
      { modality: 'CT', instances: 3, requestAttributes: [{ requestedProcedureId: 'RP1', scheduledProcedureStepId: 'SPS1' }, { requestedProcedureId: 'RP9' }] },
      { modality: 'MR', instances: 1 },
    ] },
  { n: 2, patientId: 'PAT1', patientName: MULLER, studyDate: '20240115', studyTime: '140000', accessionNumber: 'ACC_2', series: [{ modality: 'MR', instances: 1 }] },
  { n: 3, patientId: 'PAT2', patientName: YAMADA, studyDate: '20231231', studyTime: '235900', accessionNumber: 'X-3',
    series: [{ modality: 'CT', instances: 2, imageTypes: ['ORIGINAL\\PRIMARY\\AXIAL', 'DERIVED\\SECONDARY'] }] },
  { n: 4, patientId: 'PAT2', patientName: YAMADA, studyDate: '20240110', studyTime: '080000', accessionNumber: 'ACC1', series: [{ modality: 'US', instances: 1 }] },
  { n: 5, patientId: 'PAT3', patientName: SMITH, studyDate: '20240201', studyTime: '120000', accessionNumber: 'acc5', series: [{ modality: 'CT', instances: 1 }] },
  { n: 6, patientId: 'PAT3', patientName: SMITH, studyDate: '20240115', studyTime: '100000', accessionNumber: 'ACC6', studyDescription: 'Brain [contrast]',
    series: [{ modality: 'MR', instances: 1 }] },
];

function source(chunks: Iterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return Readable.from(Buffer.concat([...chunks]));
}

async function populate(archive: Archive): Promise<void> {
  let seed = 0;
  for (const s of STUDIES) {
    for (const [si, se] of s.series.entries()) {
      for (let i = 0; i < se.instances; i++) {
        const result = await archive.ingest.ingest(source(syntheticInstance({
          patientId: s.patientId, patientName: s.patientName, studyInstanceUid: study(s.n), seriesInstanceUid: series(s.n, si + 1),
          sopInstanceUid: sop(s.n, si + 1, i + 1), studyDate: s.studyDate, studyTime: s.studyTime, accessionNumber: s.accessionNumber,
          referringPhysicianName: s.referringPhysicianName, studyDescription: s.studyDescription, modality: se.modality,
          seriesNumber: si + 1, instanceNumber: i + 1, imageType: se.imageTypes?.[i], requestAttributes: se.requestAttributes,
          rows: 4, columns: 4, seed: seed++,
        })), { source: 'test' });
        assert.equal(result.status, 'stored');
      }
    }
  }
}

const key = (tag: number, vr: string, value = ''): QueryKey => ({ tag, vr, value });
const studyQuery = (keys: QueryKey[], extra: Partial<IndexQuery> = {}): IndexQuery => ({ level: 'STUDY', root: 'STUDY', keys, ...extra });

function first(ds: DicomJsonDataSet, tag: number): unknown {
  return ds[tag.toString(16).toUpperCase().padStart(8, '0')]?.Value?.[0];
}

/** Every engine's answers, kept to compare SQLite with PostgreSQL at the end. */
const answers = new Map<string, Map<string, unknown>>();

for (const combination of ['sqlite+fs', 'postgres+fs'] as const) {
  describe(`query model on ${combination}`, () => {
    let t: TestArchive;
    let archive: Archive;
    const seen = new Map<string, unknown>();
    answers.set(combination, seen);
    before(async () => {
      t = await createTestArchive(combination);
      archive = t.archive;
      await populate(archive);
    });
    after(async () => await t?.cleanup());

    async function run(name: string, query: IndexQuery): Promise<DicomJsonDataSet[]> {
      const out: DicomJsonDataSet[] = [];
      for await (const ds of archive.index.find(query)) out.push(ds);
      seen.set(name, out);
      return out;
    }
    /** The study numbers matched, in the order returned. */
    async function studies(name: string, keys: QueryKey[], extra: Partial<IndexQuery> = {}): Promise<number[]> {
      return (await run(name, studyQuery(keys, extra))).map((ds) => Number(String(first(ds, T.StudyInstanceUID)).split('.').pop()));
    }

    test('universal matching returns every study, newest first (StudyDate, StudyTime descending)', async () => {
      assert.deepEqual(await studies('all', [key(T.PatientName, 'PN')]), [5, 2, 6, 1, 4, 3]);
    });

    test('single value matching, case-sensitive; list of UID matching', async () => {
      assert.deepEqual(await studies('pid', [key(T.PatientID, 'LO', 'PAT1')]), [2, 1]);
      assert.deepEqual(await studies('pid-case', [key(T.PatientID, 'LO', 'pat1')]), []);
      assert.deepEqual(await studies('pid-trailing', [key(T.PatientID, 'LO', 'PAT1  ')]), [2, 1]);
      assert.deepEqual(await studies('uids', [key(T.StudyInstanceUID, 'UI', `${study(1)}\\${study(3)}`)]), [1, 3]);
      assert.deepEqual(await studies('acc-literal-percent', [key(T.AccessionNumber, 'SH', 'ACC%1')]), [1]);
    });

    test('wild cards * and ?, case-sensitive, % and _ literal', async () => {
      assert.deepEqual(await studies('acc*', [key(T.AccessionNumber, 'SH', 'ACC*')]), [2, 6, 1, 4]);
      assert.deepEqual(await studies('acc?1', [key(T.AccessionNumber, 'SH', 'ACC?1')]), [1]);
      assert.deepEqual(await studies('acc_?', [key(T.AccessionNumber, 'SH', 'ACC_?')]), [2]);
      assert.deepEqual(await studies('acc%*', [key(T.AccessionNumber, 'SH', 'ACC%*')]), [1]);
      assert.deepEqual(await studies('acc-lower', [key(T.AccessionNumber, 'SH', 'acc*')]), [5]);
      assert.deepEqual(await studies('bracket', [key(T.StudyDescription, 'LO', 'Brain [c*')]), [6]);
      assert.deepEqual(await studies('star', [key(T.AccessionNumber, 'SH', '*')]), [5, 2, 6, 1, 4, 3]);
    });

    test('date ranges of every form, single dates, times by meaning', async () => {
      assert.deepEqual(await studies('closed', [key(T.StudyDate, 'DA', '20240110-20240115')]), [2, 6, 1, 4]);
      assert.deepEqual(await studies('from', [key(T.StudyDate, 'DA', '20240115-')]), [5, 2, 6]);
      assert.deepEqual(await studies('to', [key(T.StudyDate, 'DA', '-20231231')]), [3]);
      assert.deepEqual(await studies('single-date', [key(T.StudyDate, 'DA', '20240110')]), [1, 4]);
      assert.deepEqual(await studies('single-time', [key(T.StudyTime, 'TM', '0930')]), [1]);
      assert.deepEqual(await studies('time-to', [key(T.StudyTime, 'TM', '-0930')]), [1, 4]);
    });

    test('combined date-time range only when asked (C.2.2.2.5.4)', async () => {
      const keys = [key(T.StudyDate, 'DA', '20240110-20240115'), key(T.StudyTime, 'TM', '120000-150000')];
      assert.deepEqual(await studies('combined', keys, { combinedDateTime: true }), [2, 6]);
      assert.deepEqual(await studies('separate', keys), [2]);
    });

    test('person names: literal, component groups, case-insensitive, fuzzy', async () => {
      assert.deepEqual(await studies('pn-exact', [key(T.PatientName, 'PN', MULLER)]), [2, 1]);
      assert.deepEqual(await studies('pn-exact-case', [key(T.PatientName, 'PN', 'müller^jürgen')]), []);
      assert.deepEqual(await studies('pn-group', [key(T.PatientName, 'PN', 'Yamada^Tarou')]), [4, 3]);
      assert.deepEqual(await studies('pn-ideographic', [key(T.PatientName, 'PN', '山田^太郎')]), [4, 3]);
      assert.deepEqual(await studies('pn-wild', [key(T.PatientName, 'PN', 'Yama*')]), [4, 3]);
      assert.deepEqual(await studies('pn-wild-case', [key(T.PatientName, 'PN', 'yama*')]), []);
      assert.deepEqual(await studies('pn-ci', [key(T.PatientName, 'PN', 'MULLER^JURGEN')], { caseInsensitivePersonNames: true }), [2, 1]);
      assert.deepEqual(await studies('pn-ci-partial', [key(T.PatientName, 'PN', 'MULLER')], { caseInsensitivePersonNames: true }), []);
      assert.deepEqual(await studies('pn-ci-wild', [key(T.PatientName, 'PN', 'yama*')], { caseInsensitivePersonNames: true }), [4, 3]);
      assert.deepEqual(await studies('pn-fuzzy', [key(T.PatientName, 'PN', 'mull')], { fuzzy: true }), [2, 1]);
      assert.deepEqual(await studies('pn-fuzzy-given', [key(T.PatientName, 'PN', 'jur')], { fuzzy: true }), [2, 1]);
      assert.deepEqual(await studies('pn-fuzzy-2words', [key(T.PatientName, 'PN', 'an sm')], { fuzzy: true }), [5, 6]);
      assert.deepEqual(await studies('pn-fuzzy-mid', [key(T.PatientName, 'PN', 'ller')], { fuzzy: true }), []);
      assert.deepEqual(await studies('pn-fuzzy-kana', [key(T.PatientName, 'PN', 'やまだ')], { fuzzy: true }), [4, 3]);
      assert.deepEqual(await studies('referring-ci', [key(T.ReferringPhysicianName, 'PN', 'smith^john')], { caseInsensitivePersonNames: true }), [1]);
    });

    test('keys of lower levels: ModalitiesInStudy and series keys in a relational study query', async () => {
      assert.deepEqual(await studies('mod-mr', [key(T.ModalitiesInStudy, 'CS', 'MR')]), [2, 6, 1]);
      assert.deepEqual(await studies('mod-list', [key(T.ModalitiesInStudy, 'CS', 'US\\MR')]), [2, 6, 1, 4]);
      assert.deepEqual(await studies('series-key', [key(T.Modality, 'CS', 'US')], { relational: true }), [4]);
    });

    test('derived attributes and fixed return attributes', async () => {
      const [s1] = await run('derived', studyQuery([key(T.StudyInstanceUID, 'UI', study(1)), key(T.PatientName, 'PN'), key(T.PatientBirthDate, 'DA')]));
      assert.equal(first(s1, T.NumberOfStudyRelatedSeries), 2);
      assert.equal(first(s1, T.NumberOfStudyRelatedInstances), 4);
      assert.deepEqual(s1['00080061'].Value, ['CT', 'MR']);
      assert.deepEqual(s1['00080062'].Value, ['1.2.840.10008.5.1.4.1.1.2']);
      assert.equal(first(s1, T.QueryRetrieveLevel), 'STUDY');
      assert.equal(first(s1, T.SpecificCharacterSet), 'ISO_IR 192');
      assert.equal(first(s1, T.InstanceAvailability), 'ONLINE');
      assert.deepEqual(s1['00100010'], { vr: 'PN', Value: [{ Alphabetic: MULLER }] });
      assert.equal(first(s1, T.PatientBirthDate), '19700101');
      const [s3] = await run('yamada', studyQuery([key(T.StudyInstanceUID, 'UI', study(3)), key(T.PatientName, 'PN')]));
      assert.deepEqual(s3['00100010'].Value, [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }]);
    });

    test('attributes without a column are returned from a representative instance, never matched above IMAGE', async () => {
      const rows = await run('representative', studyQuery([key(0x00080008, 'CS', 'DERIVED*'), key(0x00280004, 'CS'), key(0x00181030, 'LO')]));
      assert.equal(rows.length, 6, 'a non-column key is a return key at STUDY level');
      const s3 = rows.find((ds) => first(ds, T.StudyInstanceUID) === study(3))!;
      assert.deepEqual(s3['00080008'].Value, ['ORIGINAL', 'PRIMARY', 'AXIAL'], 'from the lowest-pk instance of the study');
      assert.deepEqual(s3['00280004'].Value, ['MONOCHROME2']);
      assert.deepEqual(s3['00181030'], { vr: 'LO' }, 'unknown value: returned empty');
    });

    test('patient level: counts over the patient', async () => {
      const rows = await run('patients', { level: 'PATIENT', root: 'PATIENT', keys: [key(T.PatientID, 'LO'), key(T.PatientName, 'PN')] });
      assert.deepEqual(rows.map((r) => first(r, T.PatientID)), ['PAT1', 'PAT2', 'PAT3']);
      assert.deepEqual(rows.map((r) => [first(r, T.NumberOfPatientRelatedStudies), first(r, T.NumberOfPatientRelatedSeries), first(r, T.NumberOfPatientRelatedInstances)]),
        [[2, 3, 5], [2, 2, 3], [2, 2, 2]]);
    });

    test('patient root: studies of a patient; hierarchical query without Patient ID is rejected', async () => {
      const rows = await run('proot-study', { level: 'STUDY', root: 'PATIENT', keys: [key(T.PatientID, 'LO', 'PAT2'), key(T.StudyInstanceUID, 'UI')] });
      assert.deepEqual(rows.map((r) => first(r, T.StudyInstanceUID)), [study(4), study(3)]);
      assert.throws(() => archive.index.find({ level: 'STUDY', root: 'PATIENT', keys: [key(T.StudyDate, 'DA', '20240110')] }),
        (e: unknown) => e instanceof AtriumError && e.code === 'invalid-input' && e.details?.tag === '00100020');
      const relational = await run('proot-relational', { level: 'STUDY', root: 'PATIENT', relational: true, keys: [key(T.StudyDate, 'DA', '20240110')] });
      assert.equal(relational.length, 2);
    });

    test('series level: hierarchical needs the study, relational does not; ordered by SeriesNumber', async () => {
      const rows = await run('series', { level: 'SERIES', root: 'STUDY', keys: [key(T.StudyInstanceUID, 'UI', study(1)), key(T.SeriesInstanceUID, 'UI'), key(T.Modality, 'CS')] });
      assert.deepEqual(rows.map((r) => [first(r, T.SeriesInstanceUID), first(r, T.Modality), first(r, T.NumberOfSeriesRelatedInstances)]),
        [[series(1, 1), 'CT', 3], [series(1, 2), 'MR', 1]]);
      assert.throws(() => archive.index.find({ level: 'SERIES', root: 'STUDY', keys: [key(T.Modality, 'CS', 'CT')] }),
        (e: unknown) => e instanceof AtriumError && e.details?.tag === '0020000D');
      assert.throws(() => archive.index.find({ level: 'SERIES', root: 'STUDY', keys: [key(T.StudyInstanceUID, 'UI', `${study(1)}\\${study(2)}`)] }),
        (e: unknown) => e instanceof AtriumError && e.details?.tag === '0020000D', 'a list is not a single value');
      const ct = await run('series-relational', { level: 'SERIES', root: 'STUDY', relational: true, keys: [key(T.Modality, 'CS', 'CT')] });
      assert.deepEqual(ct.map((r) => first(r, T.SeriesInstanceUID)), [series(1, 1), series(3, 1), series(5, 1)]);
      // Patient Root at SERIES level needs Patient ID and Study Instance UID.
      assert.throws(() => archive.index.find({ level: 'SERIES', root: 'PATIENT', keys: [key(T.StudyInstanceUID, 'UI', study(1))] }),
        (e: unknown) => e instanceof AtriumError && e.details?.tag === '00100020');
    });

    test('sequence matching on Request Attributes Sequence (series columns; IMAGE level every item)', async () => {
      const seq = (id: string): QueryKey => ({ tag: T.RequestAttributesSequence, vr: 'SQ', value: '', items: [[key(T.RequestedProcedureID, 'SH', id)]] });
      const rows = await run('seq-series', { level: 'SERIES', root: 'STUDY', relational: true, keys: [seq('RP1')] });
      assert.deepEqual(rows.map((r) => first(r, T.SeriesInstanceUID)), [series(1, 1)]);
      const returned = rows[0]['00400275'].Value as DicomJsonDataSet[];
      assert.deepEqual(returned.map((item) => Object.keys(item)), [['00401001'], ['00401001']], 'items hold the requested item keys only');
      const images = await run('seq-image', { level: 'IMAGE', root: 'STUDY', relational: true, keys: [seq('RP9'), key(T.SOPInstanceUID, 'UI')] });
      assert.deepEqual(images.map((r) => first(r, T.SOPInstanceUID)), [sop(1, 1, 1), sop(1, 1, 2), sop(1, 1, 3)]);
      assert.equal((await run('seq-none', { level: 'IMAGE', root: 'STUDY', relational: true, keys: [seq('RP7')] })).length, 0);
    });

    test('IMAGE level: hierarchical keys, InstanceNumber order, matching on metadata without a column', async () => {
      const rows = await run('images', { level: 'IMAGE', root: 'STUDY', keys: [key(T.StudyInstanceUID, 'UI', study(1)), key(T.SeriesInstanceUID, 'UI', series(1, 1)), key(T.InstanceNumber, 'IS')] });
      assert.deepEqual(rows.map((r) => first(r, T.InstanceNumber)), [1, 2, 3]);
      assert.throws(() => archive.index.find({ level: 'IMAGE', root: 'STUDY', keys: [key(T.StudyInstanceUID, 'UI', study(1))] }),
        (e: unknown) => e instanceof AtriumError && e.details?.tag === '0020000E');
      const derived = await run('imagetype', { level: 'IMAGE', root: 'STUDY', relational: true, keys: [key(0x00080008, 'CS', 'DERIVED')] });
      assert.deepEqual(derived.map((r) => first(r, T.SOPInstanceUID)), [sop(3, 1, 2)]);
      assert.deepEqual(derived[0]['00080008'].Value, ['DERIVED', 'SECONDARY']);
      const wild = await run('imagetype-wild', { level: 'IMAGE', root: 'STUDY', relational: true, keys: [key(0x00080008, 'CS', 'DER*')] });
      assert.equal(wild.length, 1);
      const all = await run('image-all', { level: 'IMAGE', root: 'STUDY', relational: true, include: 'all', keys: [key(T.SOPInstanceUID, 'UI', sop(3, 1, 2))] });
      assert.equal(all.length, 1);
      assert.equal(first(all[0], T.Rows), 4);
      assert.equal(first(all[0], 0x00280100), 16, 'BitsAllocated from the metadata');
      assert.equal(all[0]['7FE00010'], undefined, 'no bulk data');
      assert.equal(first(all[0], T.StudyDate), '20231231');
    });

    test('paging with limit/offset, total; in-memory matching pages the same way', async () => {
      assert.deepEqual(await studies('page', [key(T.PatientName, 'PN')], { limit: 2, offset: 1 }), [2, 6]);
      assert.equal(await archive.index.find(studyQuery([], { limit: 2, offset: 1 })).total(), 6);
      const q: IndexQuery = { level: 'IMAGE', root: 'STUDY', relational: true, keys: [key(0x00080008, 'CS', 'ORIGINAL*')], limit: 2, offset: 3 };
      const page = await run('image-page', q);
      assert.equal(page.length, 2);
      assert.equal(await archive.index.find(q).total(), 9);
    });

    test('series attributes asked for at study level come from the representative (first) instance', async () => {
      // OHIF's study list asks for Modality (0008,0060) at study level; study 1 has a CT series, then an MR one.
      const found = await run('study-modality', studyQuery([key(T.PatientID, 'LO', 'PAT1')], { include: [T.Modality, T.SeriesDescription, T.StudyDescription] }));
      assert.deepEqual(found.map((ds) => [Number(String(first(ds, T.StudyInstanceUID)).split('.').pop()), first(ds, T.Modality)]), [[2, 'MR'], [1, 'CT']]);
      for (const ds of found) assert.ok('0008103E' in ds && '00081030' in ds, 'asked attributes are returned, empty when unknown');
    });

    // Last: it adds a study the tests above do not expect.
    test('a study without a date comes after the dated ones, with or without a person name filter', async () => {
      const result = await archive.ingest.ingest(source(syntheticInstance({
        patientId: 'PAT4', patientName: 'Smithers^Wayland', studyInstanceUid: study(7), seriesInstanceUid: series(7, 1), sopInstanceUid: sop(7, 1, 1),
        studyDate: '', studyTime: '', rows: 4, columns: 4, seed: 99,
      })), { source: 'test' });
      assert.equal(result.status, 'stored');
      assert.deepEqual(await studies('undated-all', [key(T.StudyDate, 'DA')]), [5, 2, 6, 1, 4, 3, 7]);
      assert.deepEqual(await studies('undated-pid', [key(T.PatientID, 'LO', 'PAT3\\PAT4')]), [5, 6, 7]);
      // A person name wild card (SQLite then sorts the matches rather than walk the list's index): same order.
      assert.deepEqual(await studies('undated-name', [key(T.PatientName, 'PN', 'smith*')], { caseInsensitivePersonNames: true }), [5, 6, 7]);
      assert.deepEqual(await studies('undated-name-page', [key(T.PatientName, 'PN', 'smith*')], { caseInsensitivePersonNames: true, limit: 2, offset: 1 }), [6, 7]);
    });
  });
}

describe('SQLite and PostgreSQL', () => {
  test('give identical answers to every query', () => {
    const sqlite = answers.get('sqlite+fs')!;
    const postgres = answers.get('postgres+fs')!;
    assert.ok(sqlite.size > 40);
    assert.deepEqual([...postgres.keys()].sort(), [...sqlite.keys()].sort());
    for (const [name, value] of sqlite) assert.deepEqual(postgres.get(name), value, name);
  });
});
