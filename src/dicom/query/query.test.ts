import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromDicomJson, type DicomJsonDataSet } from '../dicom-json.ts';
import { AtriumError } from '../../errors.ts';
import { searchableName } from '../../adapters/index/matching.ts';
import { queryFromIdentifier } from './identifier.ts';
import { queryFromQidoParams } from './qido.ts';
import { datasetMatchesKey, foldName, matcherOf, valueMatches } from './matching.ts';
import { T, type QueryKey } from './model.ts';
import { validateQuery } from './validate.ts';

const identifier = (json: DicomJsonDataSet) => ({ elements: fromDicomJson(json), littleEndian: true });
const isInvalid = (tag: string) => (e: unknown) => e instanceof AtriumError && e.code === 'invalid-input' && e.details?.tag === tag;

describe('queryFromIdentifier (C-FIND)', () => {
  test('level, keys, return keys and sequence keys from a parsed identifier', () => {
    const q = queryFromIdentifier(identifier({
      '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
      '00080052': { vr: 'CS', Value: ['STUDY'] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Müller*' }] },
      '0020000D': { vr: 'UI' },
      '00080020': { vr: 'DA', Value: ['20240101-20240131'] },
      '00400275': { vr: 'SQ', Value: [{ '00401001': { vr: 'SH', Value: ['RP1'] } }] },
    }), undefined, { root: 'STUDY' });
    assert.equal(q.level, 'STUDY');
    assert.equal(q.relational, false);
    assert.deepEqual(q.keys.map((k) => [k.tag, k.vr, k.value]), [
      [T.StudyDate, 'DA', '20240101-20240131'],
      [T.PatientName, 'PN', 'Müller*'],
      [T.StudyInstanceUID, 'UI', ''],
      [T.RequestAttributesSequence, 'SQ', ''],
    ]);
    assert.deepEqual(q.keys[3].items, [[{ tag: T.RequestedProcedureID, vr: 'SH', value: 'RP1' }]]);
    assert.deepEqual(matcherOf(q.keys[0]), { kind: 'range', from: '20240101', to: '20240131', form: 'closed' });
  });

  test('missing or unknown level, wild cards in UIDs and dates, bad ranges, hierarchy', () => {
    assert.throws(() => queryFromIdentifier(identifier({ '00100010': { vr: 'PN' } }), undefined, { root: 'STUDY' }), isInvalid('00080052'));
    assert.throws(() => queryFromIdentifier(identifier({ '00080052': { vr: 'CS', Value: ['FOO'] } }), undefined, { root: 'STUDY' }), isInvalid('00080052'));
    assert.throws(() => queryFromIdentifier(identifier({ '00080052': { vr: 'CS', Value: ['PATIENT'] } }), undefined, { root: 'STUDY' }), isInvalid('00080052'));
    const study = (extra: DicomJsonDataSet) => identifier({ '00080052': { vr: 'CS', Value: ['STUDY'] }, ...extra });
    assert.throws(() => queryFromIdentifier(study({ '0020000D': { vr: 'UI', Value: ['1.2.*'] } }), undefined, { root: 'STUDY' }), isInvalid('0020000D'));
    assert.throws(() => queryFromIdentifier(study({ '00080020': { vr: 'DA', Value: ['2024*'] } }), undefined, { root: 'STUDY' }), isInvalid('00080020'));
    assert.throws(() => queryFromIdentifier(study({ '00080020': { vr: 'DA', Value: ['20240131-20240101'] } }), undefined, { root: 'STUDY' }), isInvalid('00080020'));
    assert.throws(() => queryFromIdentifier(study({ '00080020': { vr: 'DA', Value: ['20240230'] } }), undefined, { root: 'STUDY' }), isInvalid('00080020'));
    assert.throws(() => queryFromIdentifier(study({ '00080030': { vr: 'TM', Value: ['25-'] } }), undefined, { root: 'STUDY' }), isInvalid('00080030'));
    assert.throws(() => queryFromIdentifier(study({ '00080020': { vr: 'DA', Value: ['-'] } }), undefined, { root: 'STUDY' }), isInvalid('00080020'));
    assert.throws(() => queryFromIdentifier(study({ '00200011': { vr: 'IS', Value: ['x'] } }), undefined, { root: 'STUDY' }), /IS/);
    // Patient Root STUDY level: Patient ID required unless relational.
    assert.throws(() => queryFromIdentifier(study({}), undefined, { root: 'PATIENT' }), isInvalid('00100020'));
    assert.throws(() => queryFromIdentifier(study({ '00100020': { vr: 'LO', Value: ['P*'] } }), undefined, { root: 'PATIENT' }), isInvalid('00100020'));
    assert.equal(queryFromIdentifier(study({}), undefined, { root: 'PATIENT', relational: true }).relational, true);
    const series = identifier({ '00080052': { vr: 'CS', Value: ['SERIES'] }, '00080060': { vr: 'CS', Value: ['CT'] } });
    assert.throws(() => queryFromIdentifier(series, undefined, { root: 'STUDY' }), isInvalid('0020000D'));
  });

  test('sequence keys take a single item (C.2.2.2.6)', () => {
    const seq: QueryKey = { tag: T.RequestAttributesSequence, vr: 'SQ', value: '', items: [[], []] };
    assert.throws(() => validateQuery({ level: 'SERIES', root: 'STUDY', relational: true, keys: [seq] }), isInvalid('00400275'));
  });
});

describe('queryFromQidoParams (QIDO-RS)', () => {
  test('keywords, tags, UID lists, includefield, fuzzymatching, limit, offset', () => {
    const q = queryFromQidoParams('SERIES', new URLSearchParams(
      'StudyInstanceUID=1.2.3,1.2.4&00080060=CT&PatientName=doe&includefield=00081030,StationName&fuzzymatching=true&limit=10&offset=5' +
      '&RequestAttributesSequence.RequestedProcedureID=RP1'));
    assert.equal(q.level, 'SERIES');
    assert.equal(q.relational, true);
    assert.equal(q.fuzzy, true);
    assert.equal(q.limit, 10);
    assert.equal(q.offset, 5);
    assert.deepEqual(q.keys.find((k) => k.tag === T.StudyInstanceUID), { tag: T.StudyInstanceUID, vr: 'UI', value: '1.2.3\\1.2.4' });
    assert.deepEqual(q.keys.find((k) => k.tag === T.Modality), { tag: T.Modality, vr: 'CS', value: 'CT' });
    assert.deepEqual(q.keys.find((k) => k.tag === T.RequestAttributesSequence)?.items, [[{ tag: T.RequestedProcedureID, vr: 'SH', value: 'RP1' }]]);
    assert.ok(Array.isArray(q.include) && q.include.includes(0x00081030) && q.include.includes(0x00081010));
    assert.ok(Array.isArray(q.include) && q.include.includes(T.NumberOfSeriesRelatedInstances) && q.include.includes(T.StudyDate), 'PS3.18 defaults');
    assert.equal(queryFromQidoParams('STUDY', { includefield: 'all' }).include, 'all');
    assert.equal(queryFromQidoParams('STUDY', { limit: '5000' }, { maxLimit: 1000 }).limit, 1000);
  });

  test('errors name the parameter or the element', () => {
    assert.throws(() => queryFromQidoParams('STUDY', { NoSuchKeyword: 'x' }), (e: unknown) => e instanceof AtriumError && e.details?.parameter === 'NoSuchKeyword');
    assert.throws(() => queryFromQidoParams('STUDY', { limit: '-1' }), (e: unknown) => e instanceof AtriumError && e.details?.parameter === 'limit');
    assert.throws(() => queryFromQidoParams('STUDY', { fuzzymatching: 'yes' }), (e: unknown) => e instanceof AtriumError);
    assert.throws(() => queryFromQidoParams('STUDY', { StudyInstanceUID: '1.2.*' }), isInvalid('0020000D'));
    assert.throws(() => queryFromQidoParams('STUDY', { StudyDate: '20240101-2023' }), isInvalid('00080020'));
  });
});

describe('in-memory matching', () => {
  test('folded names are the index\'s searchable names', () => {
    for (const n of ['Müller^Jürgen', 'Yamada^Tarou=山田^太郎=やまだ^たろう', "O'Brien^Seán", 'ÅSTRÖM^Ève  ']) assert.equal(foldName(n), searchableName(n));
  });

  test('times and datetimes by meaning, multi-valued attributes, sequences', () => {
    assert.ok(valueMatches(matcherOf({ tag: T.StudyTime, vr: 'TM', value: '2230' }), 'TM', '223000'));
    assert.ok(valueMatches(matcherOf({ tag: T.StudyTime, vr: 'TM', value: '2230' }), 'TM', '223059.5'));
    assert.ok(!valueMatches(matcherOf({ tag: T.StudyTime, vr: 'TM', value: '2230' }), 'TM', '223100'));
    const dt = matcherOf({ tag: 0x0008002a, vr: 'DT', value: '20240101-202401011200' });
    assert.ok(valueMatches(dt, 'DT', '20240101115959'));
    assert.ok(valueMatches(dt, 'DT', '20240101120059.9'));
    assert.ok(!valueMatches(dt, 'DT', '20240101120100'));
    const md: DicomJsonDataSet = {
      '00080008': { vr: 'CS', Value: ['DERIVED', 'SECONDARY'] },
      '00400275': { vr: 'SQ', Value: [{ '00401001': { vr: 'SH', Value: ['RP1'] } }, { '00401001': { vr: 'SH', Value: ['RP9'] }, '00400009': { vr: 'SH', Value: ['S9'] } }] },
    };
    assert.ok(datasetMatchesKey(md, { tag: 0x00080008, vr: 'CS', value: 'SECONDARY' }));
    assert.ok(!datasetMatchesKey(md, { tag: 0x00080008, vr: 'CS', value: 'secondary' }));
    const item = (rp: string, sps: string): QueryKey => ({ tag: T.RequestAttributesSequence, vr: 'SQ', value: '', items: [[
      { tag: T.RequestedProcedureID, vr: 'SH', value: rp }, { tag: T.ScheduledProcedureStepID, vr: 'SH', value: sps }]] });
    assert.ok(datasetMatchesKey(md, item('RP9', 'S9')));
    assert.ok(!datasetMatchesKey(md, item('RP1', 'S9')), 'all item keys must match in the same item');
    assert.ok(!datasetMatchesKey(md, { tag: 0x00181030, vr: 'LO', value: 'x' }), 'absent attribute matches only universal matching');
  });
});
