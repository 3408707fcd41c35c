/** Corrections of top-level text attributes: spliced into the object, recorded in Original Attributes Sequence, nothing else changed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attributeChanges, AttributeCorrectionError, correctAttributes, OriginalAttributesSequence } from './attribute-correction.ts';
import { findElement, stringValue, type DataSet } from './dataset.ts';
import { parse, readTestFile } from '../../test/support/codec.ts';
import { encodeDataset, encodeFileMeta } from './part10-writer.ts';
import { ExplicitVRLittleEndian } from './transfer-syntax.ts';

const AT = new Date('2024-05-06T07:08:09.123Z');
const options = { modifyingSystem: 'ATRIUM TEST', at: AT };
const PatientID = 0x00100020;
const InstitutionAddress = 0x00080081;
const SOPInstanceUID = 0x00080018;

/** Raw value bytes of every top-level element but `except`, by tag: what must not change. */
function untouched(bytes: Uint8Array, ds: DataSet, except: number[]): Map<number, string> {
  return new Map(ds.elements.filter((e) => !except.includes(e.tag) && !e.items && !e.encapsulated)
    .map((e) => [e.tag, Buffer.from(bytes.subarray(e.offset, e.offset + e.length)).toString('hex')]));
}

for (const name of ['CT_small.dcm', 'MR_small_bigendian.dcm', 'MR_small_implicit.dcm', 'ExplVR_LitEndNoMeta.dcm']) {
  test(`${name}: values set, previous ones kept in a new Original Attributes Sequence item, every other value unchanged`, () => {
    const bytes = readTestFile(name);
    const { header } = parse(bytes);
    const before = stringValue(header.dataset, PatientID) ?? null;
    const changes = attributeChanges({ PatientID: 'NEW-42', InstitutionAddress: 'Main Street 1', SOPInstanceUID: '1.2.826.0.1.3680043.99.42' });
    const { bytes: corrected, applied } = correctAttributes(bytes, header, changes, options);
    assert.deepEqual(applied.map((a) => [a.keyword, a.previous, a.value]), [
      ['SOPInstanceUID', stringValue(header.dataset, SOPInstanceUID), '1.2.826.0.1.3680043.99.42'],
      ['InstitutionAddress', null, 'Main Street 1'],
      ['PatientID', before, 'NEW-42'],
    ]);
    const after = parse(corrected).header;
    assert.equal(stringValue(after.dataset, PatientID), 'NEW-42');
    assert.equal(stringValue(after.dataset, InstitutionAddress), 'Main Street 1');
    if (after.fileMeta) assert.equal(stringValue(after.fileMeta, 0x00020003), '1.2.826.0.1.3680043.99.42', 'the File Meta follows the SOP Instance UID');
    const tags = after.dataset.elements.map((e) => e.tag);
    assert.deepEqual(tags, [...tags].sort((a, b) => a - b), 'ascending tags');

    const [item] = findElement(after.dataset, OriginalAttributesSequence)!.items!;
    const modified = findElement(item, 0x04000550)!.items![0];
    assert.deepEqual(modified.elements.map((e) => e.tag), [SOPInstanceUID, InstitutionAddress, PatientID]);
    assert.equal(stringValue(modified, SOPInstanceUID), stringValue(header.dataset, SOPInstanceUID));
    assert.equal(findElement(modified, InstitutionAddress)!.length, 0, 'an absent attribute is listed empty');
    assert.equal(stringValue(modified, PatientID) ?? null, before);
    assert.equal(stringValue(item, 0x04000562), '20240506070809.123000+0000');
    assert.equal(stringValue(item, 0x04000563), 'ATRIUM TEST');
    assert.equal(findElement(item, 0x04000564)!.length, 0);
    assert.equal(stringValue(item, 0x04000565), 'CORRECT');

    const keep = [PatientID, InstitutionAddress, SOPInstanceUID, OriginalAttributesSequence];
    const a = untouched(bytes, header.dataset, keep);
    const b = untouched(corrected, after.dataset, keep);
    assert.deepEqual([...b.entries()], [...a.entries()]);

    // Corrected again: a second item, the first kept.
    const again = correctAttributes(corrected, after, attributeChanges({ PatientID: 'NEW-43' }), options);
    const twice = parse(again.bytes).header;
    const items = findElement(twice.dataset, OriginalAttributesSequence)!.items!;
    assert.equal(items.length, 2);
    assert.equal(stringValue(findElement(items[1], 0x04000550)!.items![0], PatientID), 'NEW-42');
    assert.equal(stringValue(twice.dataset, PatientID), 'NEW-43');
  });
}

test('an Original Attributes Sequence of defined length gets the new item and its length', () => {
  const text = (tag: number, vr: string, value: string) => ({ tag, vr, length: value.length, offset: 0, value: new TextEncoder().encode(value) });
  const elements = [
    text(0x00080016, 'UI', '1.2.840.10008.5.1.4.1.1.7'), text(SOPInstanceUID, 'UI', '1.2.3.4'), text(PatientID, 'LO', 'OLD1'),
    text(0x0020000d, 'UI', '1.2.3.5'), text(0x0020000e, 'UI', '1.2.3.6'),
    { tag: OriginalAttributesSequence, vr: 'SQ', length: 0, offset: 0, items: [{ elements: [text(0x04000563, 'LO', 'EARLIER SYSTEM')] }] },
  ];
  const bytes = new Uint8Array(Buffer.concat([
    encodeFileMeta({ mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.7', mediaStorageSOPInstanceUID: '1.2.3.4', transferSyntaxUID: ExplicitVRLittleEndian }),
    encodeDataset(elements, ExplicitVRLittleEndian, { definedLengthSequences: true }),
  ]));
  const parsed = parse(bytes).header;
  assert.notEqual(findElement(parsed.dataset, OriginalAttributesSequence)!.length, 0xffffffff);
  const { bytes: corrected } = correctAttributes(bytes, parsed, attributeChanges({ PatientID: 'NEW1' }), options);
  const items = findElement(parse(corrected).header.dataset, OriginalAttributesSequence)!.items!;
  assert.deepEqual(items.map((i) => stringValue(i, 0x04000563)), ['EARLIER SYSTEM', 'ATRIUM TEST']);
});

test('a change to the value already there changes nothing; text beyond ASCII only where the character set holds it', () => {
  const bytes = readTestFile('CT_small.dcm');
  const { header } = parse(bytes);
  const same = correctAttributes(bytes, header, attributeChanges({ PatientID: stringValue(header.dataset, PatientID)! }), options);
  assert.deepEqual(same.applied, []);
  assert.equal(same.bytes, bytes);
  // CT_small declares ISO_IR 100 (Latin-1).
  const latin = correctAttributes(bytes, header, attributeChanges({ PatientName: 'Müller^Jürgen' }), options);
  assert.equal(stringValue(parse(latin.bytes).header.dataset, 0x00100010), 'Müller^Jürgen');
  assert.throws(() => correctAttributes(bytes, header, attributeChanges({ PatientName: '山田^太郎' }), options),
    (e: unknown) => e instanceof AttributeCorrectionError && e.kind === 'invalid' && /ISO_IR 100.*cannot hold/.test(e.message));
  const implicit = readTestFile('MR_small_implicit.dcm');
  assert.throws(() => correctAttributes(implicit, parse(implicit).header, attributeChanges({ PatientName: 'Müller' }), options), /default repertoire/);
});

test('what cannot be asked, and what an object cannot take', () => {
  assert.throws(() => attributeChanges({ PatientID: 1, Nonsense: 'x', TransferSyntaxUID: '1.2', SpecificCharacterSet: 'ISO_IR 192', Rows: '2', ReferencedSeriesSequence: '' }),
    (e: unknown) => {
      assert.ok(e instanceof AttributeCorrectionError && e.kind === 'invalid');
      for (const what of [/PatientID.*must be a string/, /Nonsense: not an attribute/, /TransferSyntaxUID.*File Meta/, /SpecificCharacterSet.*not changed here/, /Rows.*VR US/, /ReferencedSeriesSequence.*VR SQ/]) {
        assert.match(e.message, what);
      }
      return true;
    });
  for (const [keyword, value, why] of [['StudyDate', '2024-1-1', /YYYYMMDD/], ['PatientID', 'X'.repeat(65), /longer than the 64/], ['Modality', 'ct', /upper-case/],
    ['StudyInstanceUID', '1.2.03', /not a valid UID/], ['PatientName', 'A\nB', /control characters/], ['AccessionNumber', 'A'.repeat(17), /16 characters/]] as const) {
    assert.throws(() => attributeChanges({ [keyword]: value }), why, keyword);
  }
  assert.deepEqual(attributeChanges({ '00100020': 'X', StudyDate: '' }).map((c) => c.keyword), ['StudyDate', 'PatientID'], 'hex tags too; ascending');
  const deflated = readTestFile('image_dfl.dcm');
  assert.throws(() => correctAttributes(deflated, parse(deflated).header, attributeChanges({ PatientID: 'X' }), options),
    (e: unknown) => e instanceof AttributeCorrectionError && e.kind === 'impossible' && /deflated/.test(e.message));
});
