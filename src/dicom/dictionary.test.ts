import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keywordOf, lookupTag, tagOfKeyword, vrOf } from './dictionary.ts';
import * as T from './tags.ts';
import * as TS from './transfer-syntax.ts';
import { generateUid, isValidUid, ATRIUM_IMPLEMENTATION_CLASS_UID } from './uid.ts';

test('standard, repeating-group, private and unknown tags', () => {
  assert.deepEqual(lookupTag(T.PatientName), { vr: 'PN', keyword: 'PatientName', vm: '1' });
  assert.equal(vrOf(T.PixelData), 'OW');
  assert.equal(vrOf(T.Rows), 'US');
  assert.equal(keywordOf(0x60023000), 'OverlayData');
  assert.equal(vrOf(0x60020010), 'US');
  assert.equal(vrOf(0x00291010), 'UN');
  assert.equal(vrOf(0x00290010), 'LO');
  assert.equal(keywordOf(0x00290011), 'PrivateCreator');
  assert.equal(vrOf(0x00091000), 'UN');
  assert.equal(vrOf(0x00280000), 'UL');
  assert.equal(tagOfKeyword('StudyInstanceUID'), T.StudyInstanceUID);
  assert.equal(tagOfKeyword('NotAKeyword'), undefined);
  assert.equal(T.formatTag(T.PixelData), '(7FE0,0010)');
});

test('tag constants agree with the dictionary', () => {
  for (const [name, value] of Object.entries(T)) {
    if (typeof value !== 'number' || name === 'FileMetaInformationGroupLength') continue;
    assert.equal(keywordOf(value), name, name);
  }
});

test('transfer syntax properties', () => {
  assert.deepEqual(TS.transferSyntaxInfo(TS.ImplicitVRLittleEndian), { explicitVR: false, littleEndian: true, deflated: false, encapsulated: false, known: true });
  assert.equal(TS.transferSyntaxInfo(TS.ExplicitVRBigEndian).littleEndian, false);
  assert.equal(TS.transferSyntaxInfo(TS.DeflatedExplicitVRLittleEndian).deflated, true);
  assert.equal(TS.transferSyntaxInfo(TS.JPEGBaseline8Bit).encapsulated, true);
  assert.equal(TS.transferSyntaxInfo(TS.HTJ2K).known, true);
  assert.equal(TS.transferSyntaxInfo('1.2.3.4').known, false);
});

test('UIDs', () => {
  const a = generateUid();
  assert.match(a, /^2\.25\.[1-9][0-9]*$/);
  assert.notEqual(a, generateUid());
  assert.ok(isValidUid(a));
  assert.ok(isValidUid(ATRIUM_IMPLEMENTATION_CLASS_UID));
  assert.ok(!isValidUid('1.02.3'));
});
