import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Part10Reader, DicomParseError } from './part10-reader.ts';
import { findElement, numberValue, stringValue } from './dataset.ts';
import type { DataSet } from './dataset.ts';
import * as T from './tags.ts';
import { parse, readTestFile, snapshot, testFiles } from '../../test/support/codec.ts';

// Files that must be rejected, with the reason. no_meta.dcm here starts with a stray 0x20 byte (DCMTK rejects
// it too); SC_rgb_jpeg.dcm has an invalid VR (bytes 18 00) in its data set.
const EXPECTED_ERRORS: Record<string, string> = {
  'MR_truncated.dcm': 'TRUNCATED',
  'rtplan_truncated.dcm': 'TRUNCATED',
  'meta_missing_tsyntax.dcm': 'MISSING_TRANSFER_SYNTAX',
  'no_meta.dcm': 'NOT_DICOM',
  'SC_rgb_jpeg.dcm': 'INVALID_VR',
  'dicomdirtests/TINY_ALPHA/README': 'NOT_DICOM',
};

function outcome(bytes: Uint8Array, chunk?: number): { ok: unknown } | { code: string; message: string } {
  try {
    const { header, reader } = parse(bytes, chunk);
    return { ok: { ...header, dataset: snapshot(header.dataset), fileMeta: header.fileMeta && snapshot(header.fileMeta), pixel: reader.pixelData?.offset, seen: reader.bytesSeen } };
  } catch (e) {
    if (!(e instanceof DicomParseError)) throw e;
    return { code: e.code, message: e.message };
  }
}

for (const name of testFiles()) {
  test(`parses or rejects ${name} identically in 1-, 7-byte and whole chunks`, () => {
    const bytes = readTestFile(name);
    const whole = outcome(bytes);
    assert.deepEqual(outcome(bytes, 7), whole);
    assert.deepEqual(outcome(bytes, 1), whole);
    if ('code' in whole) {
      assert.equal(whole.code, EXPECTED_ERRORS[name] ?? 'parsed', whole.message);
      assert.match(whole.message, /offset \d+/);
      return;
    }
    assert.equal(EXPECTED_ERRORS[name], undefined, `${name} should have been rejected`);
    const { header } = parse(bytes);
    assert.match(header.transferSyntaxUID, /^1\.2\.840\.10008\.1\.2/);
    const sop = stringValue(header.dataset, T.SOPInstanceUID) ??
      (header.fileMeta ? stringValue(header.fileMeta, T.MediaStorageSOPInstanceUID) : undefined);
    const exempt = /DICOMDIR|UN_sequence|priv_SQ|empty_charset|meta_group_length|ExplVR_.*NoMeta/.test(name);
    if (!exempt) assert.match(sop ?? '', /^[0-9.]+$/, 'SOP Instance UID');
  });
}

test('CT_small.dcm values and pixel data position', () => {
  const bytes = readTestFile('CT_small.dcm');
  const { header, reader } = parse(bytes);
  assert.equal(header.hasPreamble, true);
  assert.equal(header.transferSyntaxUID, '1.2.840.10008.1.2.1');
  assert.equal(stringValue(header.dataset, T.PatientName), 'CompressedSamples^CT1');
  assert.equal(numberValue(header.dataset, T.Rows), 128);
  assert.equal(numberValue(header.dataset, T.Columns), 128);
  assert.equal(stringValue(header.dataset, T.SOPInstanceUID), '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322');
  const pd = reader.pixelData!;
  assert.equal(pd.tag, T.PixelData);
  assert.equal(pd.length, 128 * 128 * 2);
  // Pixel Data is followed only by Data Set Trailing Padding (FFFC,FFFC), which ends the file.
  const padding = header.dataset.elements.at(-1)!;
  assert.equal(padding.tag, T.DataSetTrailingPadding);
  assert.equal(padding.offset, pd.offset + pd.length + 12);
  assert.equal(padding.offset + padding.length, bytes.length);
  const mr = readTestFile('rtdose.dcm'); // Implicit VR LE, Pixel Data last
  const mrPixels = parse(mr).reader.pixelData!;
  assert.equal(mrPixels.offset + mrPixels.length, mr.length);
});

test('big endian, implicit and deflated files give the same values as explicit LE', () => {
  for (const name of ['MR_small.dcm', 'MR_small_bigendian.dcm', 'MR_small_implicit.dcm', 'MR_small_expb.dcm']) {
    const { header, reader } = parse(readTestFile(name));
    assert.equal(stringValue(header.dataset, T.PatientName), 'CompressedSamples^MR1', name);
    assert.equal(numberValue(header.dataset, T.Rows), 64, name);
    assert.equal(reader.pixelData!.length, 64 * 64 * 2, name);
  }
  const be = parse(readTestFile('ExplVR_BigEnd.dcm')).header;
  assert.equal(be.littleEndian, false);
  assert.equal(numberValue(be.dataset, T.Columns), 80);
  const dfl = parse(readTestFile('image_dfl.dcm'));
  assert.equal(dfl.header.transferSyntaxUID, '1.2.840.10008.1.2.1.99');
  assert.equal(numberValue(dfl.header.dataset, T.Rows), 512);
  // Offsets in a deflated data set count inflated bytes from datasetOffset (see part10-reader.ts).
  assert.equal(dfl.reader.pixelData!.length, 512 * 512);
});

test('files without file meta: encoding detected from the first element', () => {
  const le = parse(readTestFile('ExplVR_LitEndNoMeta.dcm')).header;
  assert.equal(le.fileMeta, null);
  assert.equal(le.transferSyntaxUID, '1.2.840.10008.1.2.1');
  const be = parse(readTestFile('ExplVR_BigEndNoMeta.dcm')).header;
  assert.equal(be.transferSyntaxUID, '1.2.840.10008.1.2.2');
  assert.equal(stringValue(be.dataset, T.SOPInstanceUID), '1.2.333.4444.5.6.7.8');
  const implicit = parse(readTestFile('no_meta.dcm').subarray(1)).header; // without its stray first byte
  assert.equal(implicit.transferSyntaxUID, '1.2.840.10008.1.2.1');
  assert.equal(stringValue(implicit.dataset, T.PatientName), 'CompressedSamples^CT1');
});

test('meta without group length, and DICOMDIR files', () => {
  const h = parse(readTestFile('no_meta_group_length.dcm')).header;
  assert.equal(findElement(h.fileMeta!, T.FileMetaInformationGroupLength), undefined);
  assert.equal(h.transferSyntaxUID, '1.2.840.10008.1.2');
  assert.equal(stringValue(h.dataset, T.SOPInstanceUID) !== undefined || h.dataset.elements.length > 0, true);
  const dir = parse(readTestFile('dicomdirtests/DICOMDIR')).header;
  assert.equal(stringValue(dir.fileMeta!, T.MediaStorageSOPClassUID), '1.2.840.10008.1.3.10');
  const records = findElement(dir.dataset, 0x00041220)!;
  assert.ok(records.items!.length > 10);
  const empty = parse(readTestFile('dicomdirtests/DICOMDIR-empty.dcm')).header;
  assert.deepEqual(findElement(empty.dataset, 0x00041220)!.items, []);
  const nooffset = parse(readTestFile('dicomdirtests/DICOMDIR-nooffset')).header;
  assert.ok(nooffset.warnings.some((w) => w.includes('overruns its sequence')));
});

test('bulk values are skipped but located; kept when under the threshold', () => {
  const bytes = readTestFile('CT_small.dcm');
  const { reader } = parse(bytes, 4096, { bulkThreshold: 1024 });
  const pd = reader.pixelData!;
  assert.equal(pd.value, undefined);
  assert.equal(pd.bulk, true);
  const kept = parse(bytes, 4096, { bulkThreshold: 1 << 30 }).reader.pixelData!;
  assert.equal(kept.bulk, undefined);
  assert.ok(Buffer.from(kept.value!).equals(bytes.subarray(pd.offset, pd.offset + pd.length)));
  const small = parse(bytes, undefined, { bulkThreshold: 16 }).header;
  const name = findElement(small.dataset, T.PatientName)!;
  assert.equal(name.bulk, true);
  assert.equal(Buffer.from(bytes.subarray(name.offset, name.offset + name.length)).toString('latin1'), 'CompressedSamples^CT1 ');
});

test('encapsulated fragments point at the compressed frames', () => {
  const check = (name: string, frames: number, magic: number[]) => {
    const bytes = readTestFile(name);
    const pd = parse(bytes, 333).reader.pixelData!;
    const enc = pd.encapsulated!;
    assert.equal(pd.length, 0xffffffff);
    assert.equal(enc.fragments.length, frames, name);
    for (const f of enc.fragments) {
      assert.deepEqual([...bytes.subarray(f.offset, f.offset + magic.length)], magic, name);
      assert.ok(f.offset + f.length <= bytes.length);
    }
    const last = enc.fragments[enc.fragments.length - 1];
    const end = last.offset + last.length;
    assert.equal(Buffer.from(bytes.subarray(end, end + 4)).toString('hex'), 'feffdde0', `${name}: sequence delimiter follows`);
  };
  check('JPEG-lossy.dcm', 1, [0xff, 0xd8]);
  check('SC_rgb_jpeg_dcmtk.dcm', 1, [0xff, 0xd8]);
  check('MR_small_jp2klossless.dcm', 1, [0xff, 0x4f]);
  check('JPEG2000-embedded-sequence-delimiter.dcm', 1, [0xff, 0x4f]);
  check('SC_rgb_rle_2frame.dcm', 2, [0x03, 0x00, 0x00, 0x00]); // RLE header: 3 segments (PS3.5 G.3.1)
  const rle = parse(readTestFile('rtdose_rle.dcm')).reader.pixelData!.encapsulated!;
  assert.equal(rle.fragments.length, 15);
});

test('private and UN sequences are parsed into items', () => {
  const un = parse(readTestFile('UN_sequence.dcm')).header.dataset;
  const seq = un.elements[0];
  assert.equal(seq.vr, 'UN');
  const inner = findElement(seq.items![0], 0x00081115)!;
  assert.equal(inner.vr, 'SQ'); // implicit VR inside UN: from the dictionary
  const refs = findElement(inner.items![0], 0x00081199)!;
  assert.equal(stringValue(refs.items![0], 0x00081150), '1.2.840.10008.5.1.4.1.1.2');
  const priv = parse(readTestFile('nested_priv_SQ.dcm')).header.dataset;
  const outer = priv.elements.find((e) => e.items)!;
  assert.ok(outer.items!.length >= 1);
  assert.ok(outer.items![0].elements.some((e) => e.items && e.items.length > 0));
});

test('errors: codes, tags and offsets', () => {
  const fail = (bytes: Uint8Array, code: string, chunk?: number): DicomParseError => {
    try {
      parse(bytes, chunk);
    } catch (e) {
      assert.ok(e instanceof DicomParseError, String(e));
      assert.equal(e.code, code, e.message);
      return e;
    }
    assert.fail(`expected ${code}`);
  };
  const mr = fail(readTestFile('MR_truncated.dcm'), 'TRUNCATED', 100);
  assert.equal(mr.tag, T.PixelData);
  assert.match(mr.message, /\(7FE0,0010\) PixelData .* at offset \d+: 8192 bytes declared, \d+ present/);
  fail(new TextEncoder().encode('hello, this is not a DICOM file at all'), 'NOT_DICOM');
  fail(new Uint8Array(0), 'NOT_DICOM');
  const ds = (hexBytes: string) => new Uint8Array(Buffer.from(hexBytes.replace(/\s/g, ''), 'hex'));
  // (0010,0010) with VR "zz" in an otherwise explicit LE data set without meta.
  fail(ds('08000500 4353 0a00 49534f5f495220313030 10001000 7a7a 0400 41424344'), 'INVALID_VR');
  // Item delimiter at top level.
  fail(ds('08000500 4353 0200 4142 feff0de0 00000000'), 'DELIMITER_MISMATCH');
  // LO declaring 0x7ffffff0 bytes then ending: not a truncated value but garbage.
  fail(ds('08000500 4353 0200 4142 10001000 4c4f ffff 41'), 'TRUNCATED');
  fail(ds('08000500 4353 0200 4142 10000000 554c 0400 0100 0000 10001000 4c54 ffff 41'), 'TRUNCATED');
  fail(ds('08000500 4353 0200 4142 09001010 554e 0000 f0ffff7f 4142'), 'TRUNCATED'); // UN of a private tag stays UN
  fail(ds('08000500 4353 0200 4142 10001000 5554 0000 f0ffff7f 41'), 'TRUNCATED');
  fail(ds('08000500 4353 0200 4142 10001000 5351 0000 f0ffff7f 41'), 'TRUNCATED');
  fail(ds('08000500 4353 0200 4142 10001000 4445 0000 f0ffff7f'), 'INVALID_VR');
  // Implicit VR: (0010,0010) claiming 0x7ffffff0 bytes.
  fail(ds('08000500 02000000 4142 10001000 f0ffff7f 4142'), 'ABSURD_LENGTH');
  // A value running past its defined-length item.
  fail(ds('08000500 4353 0200 4142 08001511 5351 0000 10000000 feff00e0 08000000 08005011 5549 1000 3132'), 'LENGTH_OVERFLOW');
  const reader = new Part10Reader();
  reader.push(readTestFile('CT_small.dcm'));
  reader.end();
  assert.throws(() => reader.push(new Uint8Array(1)), (e: unknown) => e instanceof DicomParseError && e.code === 'ENDED');
});

test('pixelData is available as soon as its header is read', () => {
  const bytes = readTestFile('CT_small.dcm');
  const reader = new Part10Reader();
  let cut = 0;
  for (; cut < bytes.length && !reader.pixelData; cut += 64) reader.push(bytes.subarray(cut, cut + 64));
  const pd = reader.pixelData!;
  assert.ok(cut < pd.offset + 64 + 12 && cut >= pd.offset, `seen ${cut}, value at ${pd.offset}`);
  assert.equal(reader.bytesSeen, cut);
  reader.push(bytes.subarray(cut));
  const header = reader.end();
  assert.ok((header.dataset as DataSet).elements.includes(pd));
});

test('VR UN of dictionary tags is read with the dictionary VR (PS3.5 6.2.2): values, sequences, encapsulated Pixel Data', async () => {
  const { allVrsToUn } = await import('../../test/support/codec.ts');
  for (const name of ['CT_small.dcm', 'MR_small_jp2klossless.dcm', 'test-SR.dcm', 'reportsi.dcm', 'JPEG2000.dcm']) {
    const original = parse(readTestFile(name)).header;
    const un = parse(allVrsToUn(readTestFile(name)), 7).header;
    assert.match(un.warnings.join('\n'), /VR UN read as/, name);
    const publicOnly = (ds: DataSet): unknown => ds.elements.filter((e) => ((e.tag >>> 16) & 1) === 0).map((e) => ({
      tag: e.tag, vr: e.encapsulated ? 'OB' : e.items ? 'SQ' : e.vr, value: e.value && Buffer.from(e.value).toString('hex'),
      items: e.items?.map(publicOnly), fragments: e.encapsulated?.fragments.length,
    }));
    // "US or SS" is resolved to US as Implicit VR does (PS3.5 A.1); the original may say SS.
    const ambiguous = (x: unknown) => JSON.parse(JSON.stringify(x).replace(/"vr":"SS"/g, '"vr":"US"'));
    assert.deepEqual(ambiguous(publicOnly(un.dataset)), ambiguous(publicOnly(original.dataset)), name);
  }
  // In a Big Endian data set a UN value stays Little Endian (PS3.5 6.2.2): read as US it is swapped.
  const be = new Uint8Array([0x00, 0x28, 0x00, 0x10, 0x55, 0x4e, 0, 0, 0, 0, 0, 2, 0x40, 0x00]);
  const { header } = parse(new Uint8Array([...be]));
  assert.equal(header.transferSyntaxUID, '1.2.840.10008.1.2.2');
  assert.equal(findElement(header.dataset, T.Rows)?.vr, 'US');
  assert.equal(numberValue(header.dataset, T.Rows), 64);
});
