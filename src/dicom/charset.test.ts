import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeText, parseSpecificCharacterSet, splitPersonName } from './charset.ts';
import { toDicomJson } from './dicom-json.ts';
import type { DataSet } from './dataset.ts';
import { stringValue } from './dataset.ts';
import { PatientName, SpecificCharacterSet } from './tags.ts';

const bytes = (hex: string) => new Uint8Array(Buffer.from(hex.replace(/\s/g, ''), 'hex'));
const ascii = (s: string) => new TextEncoder().encode(s);

// PS3.5 H.3.1: Japanese with ISO 2022 IR 87 code extension, escape sequences around the kanji/kana groups.
const JAPANESE = bytes(
  '59616d6164615e5461726f753d 1b2442 3b334544 1b2842 5e 1b2442 42404f3a 1b2842 3d ' +
  '1b2442 2464245e2440 1b2842 5e 1b2442 243f246d2426 1b2842');
// PS3.5 J.3: the same Chinese name in GB18030 and in UTF-8.
const CHINESE_GB18030 = bytes('57616e675e5869616f446f6e673d cdf5 5e d0a1 b6ab 3d');
const CHINESE = 'Wang^XiaoDong=王^小东=';

test('ISO_IR 100 (Latin-1)', () => {
  assert.equal(decodeText(bytes('4275635e4a e9 72 f4 6d65'), 'PN', ['ISO_IR 100']), 'Buc^Jérôme');
});

test('ISO 2022 IR 87 Japanese person name (PS3.5 H.3.1)', () => {
  const terms = parseSpecificCharacterSet('\\ISO 2022 IR 87');
  assert.deepEqual(terms, ['', 'ISO 2022 IR 87']);
  const text = decodeText(JAPANESE, 'PN', terms);
  assert.equal(text, 'Yamada^Tarou=山田^太郎=やまだ^たろう');
  assert.deepEqual(splitPersonName(text), { Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' });
});

test('ISO_IR 192 (UTF-8) and GB18030 (PS3.5 J.3)', () => {
  assert.equal(decodeText(ascii(CHINESE), 'PN', ['ISO_IR 192']), CHINESE);
  assert.equal(decodeText(CHINESE_GB18030, 'PN', ['GB18030']), CHINESE);
});

test('default repertoire, and VRs outside the Specific Character Set rules', () => {
  assert.equal(decodeText(ascii('ABC^DEF'), 'PN', undefined), 'ABC^DEF');
  assert.equal(parseSpecificCharacterSet(''), undefined);
  // UI / CS are always default repertoire, whatever (0008,0005) says (PS3.5 6.1.2.3).
  assert.equal(decodeText(ascii('1.2.3'), 'UI', ['ISO_IR 192']), '1.2.3');
});

test('data set accessors and DICOM JSON use (0008,0005) of the data set', () => {
  const ds: DataSet = {
    littleEndian: true,
    elements: [
      { tag: SpecificCharacterSet, vr: 'CS', length: 16, offset: 0, value: ascii('\\ISO 2022 IR 87 ') },
      { tag: PatientName, vr: 'PN', length: JAPANESE.length, offset: 0, value: JAPANESE },
    ],
  };
  assert.equal(stringValue(ds, PatientName), 'Yamada^Tarou=山田^太郎=やまだ^たろう');
  const json = toDicomJson(ds);
  assert.deepEqual(json['00100010'], {
    vr: 'PN', Value: [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }],
  });
  assert.deepEqual(json['00080005'], { vr: 'CS', Value: [null, 'ISO 2022 IR 87'] });
});
