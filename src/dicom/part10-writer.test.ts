import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeDataset, encodeElementHeader, encodeFileMeta, encodeItemHeader, encodeSequenceDelimiter, DicomEncodeError } from './part10-writer.ts';
import { fromDicomJson, toDicomJson } from './dicom-json.ts';
import { findElement, numberValue, stringValue } from './dataset.ts';
import * as T from './tags.ts';
import * as TS from './transfer-syntax.ts';
import { content, parse, readTestFile } from '../../test/support/codec.ts';

const KEEP_ALL = { bulkThreshold: 1 << 30 };
const ROUND_TRIP_FILES = [
  'CT_small.dcm', 'MR_small.dcm', 'MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'ExplVR_BigEnd.dcm', 'rtplan.dcm',
  'rtstruct.dcm', 'priv_SQ.dcm', 'nested_priv_SQ.dcm', 'UN_sequence.dcm', 'test-SR.dcm', 'dicomdirtests/DICOMDIR',
  'image_dfl.dcm', 'waveform_ecg.dcm', 'reportsi_with_empty_number_tags.dcm',
];
const TARGETS = [TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian, TS.ExplicitVRBigEndian];

function reencode(name: string, ts: string, definedLengthSequences = false) {
  const { header } = parse(readTestFile(name), undefined, KEEP_ALL);
  const meta = encodeFileMeta({
    mediaStorageSOPClassUID: stringValue(header.dataset, T.SOPClassUID) ?? '1.2.840.10008.1.3.10',
    mediaStorageSOPInstanceUID: stringValue(header.dataset, T.SOPInstanceUID) ?? '1.2.3',
    transferSyntaxUID: ts,
  });
  const body = encodeDataset(header.dataset, ts, { definedLengthSequences });
  const file = new Uint8Array(meta.length + body.length);
  file.set(meta);
  file.set(body, meta.length);
  return { original: header, reparsed: parse(file, 5, KEEP_ALL).header };
}

for (const name of ROUND_TRIP_FILES) {
  test(`round trip of ${name} through explicit LE, implicit LE and explicit BE`, () => {
    for (const ts of TARGETS) {
      const { original, reparsed } = reencode(name, ts);
      assert.equal(reparsed.transferSyntaxUID, ts);
      const explicit = ts !== TS.ImplicitVRLittleEndian && original.explicitVR;
      assert.deepEqual(content(reparsed.dataset, explicit), content(original.dataset, explicit), `${name} as ${ts}`);
    }
    const defined = reencode(name, TS.ExplicitVRLittleEndian, true);
    assert.deepEqual(content(defined.reparsed.dataset, false), content(defined.original.dataset, false));
  });

  test(`DICOM JSON of ${name} is stable through fromDicomJson, encoding and parsing`, () => {
    const { header } = parse(readTestFile(name), undefined, KEEP_ALL);
    const json1 = toDicomJson(header.dataset);
    const again = (json: ReturnType<typeof toDicomJson>) => {
      const meta = encodeFileMeta({ mediaStorageSOPClassUID: '1.2', mediaStorageSOPInstanceUID: '1.2', transferSyntaxUID: TS.ExplicitVRLittleEndian });
      const bytes = Buffer.concat([meta, encodeDataset(fromDicomJson(json), TS.ExplicitVRLittleEndian)]);
      return toDicomJson(parse(bytes, 3, KEEP_ALL).header.dataset);
    };
    const json2 = again(json1);
    assert.deepEqual(again(json2), json2);
    assert.deepEqual(Object.keys(json2), Object.keys(json1));
    // nested_priv_SQ.dcm holds an odd-length (non-conformant) value that the writer pads (PS3.5 7.1.1).
    if (name !== 'nested_priv_SQ.dcm') assert.deepEqual(json2, json1);
  });
}

test('file meta: preamble, DICM, correct group length', () => {
  const meta = encodeFileMeta({ mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.7', mediaStorageSOPInstanceUID: '1.2.3.4.5', transferSyntaxUID: TS.ExplicitVRLittleEndian, sourceApplicationEntityTitle: 'ATRIUM' });
  assert.equal(Buffer.from(meta.subarray(128, 132)).toString(), 'DICM');
  const { header } = parse(meta);
  const gl = numberValue(header.fileMeta!, T.FileMetaInformationGroupLength);
  assert.equal(gl, meta.length - 132 - 12);
  assert.equal(stringValue(header.fileMeta!, T.MediaStorageSOPInstanceUID), '1.2.3.4.5');
  assert.equal(findElement(header.fileMeta!, T.MediaStorageSOPInstanceUID)!.length, 10); // padded with NUL
  assert.equal(header.fileMeta!.elements.length, 8);
});

test('streaming a large Pixel Data value after its header, and encapsulated fragments', () => {
  const ts = TS.ExplicitVRLittleEndian;
  const meta = encodeFileMeta({ mediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.1.7', mediaStorageSOPInstanceUID: '1.2.3', transferSyntaxUID: ts });
  const rows = encodeDataset([{ tag: T.Rows, vr: 'US', length: 2, offset: 0, value: new Uint8Array([0, 4]) }], ts);
  const head = encodeElementHeader(T.PixelData, 'OW', 1 << 20, ts);
  const chunks = [meta, rows, head, ...Array.from({ length: 16 }, () => new Uint8Array(65536).fill(7))];
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const file = Buffer.concat(chunks);
  const { header, reader: r } = parse(file, 100_000);
  assert.equal(numberValue(header.dataset, T.Rows), 1024);
  assert.equal(r.pixelData!.offset + (1 << 20), total);
  assert.equal(r.pixelData!.value, undefined);

  const jpeg = TS.JPEGBaseline8Bit;
  const frag = new Uint8Array([0xff, 0xd8, 1, 2, 0xff, 0xd9]);
  const enc = Buffer.concat([encodeElementHeader(T.PixelData, 'OB', 0xffffffff, jpeg), encodeItemHeader(0, jpeg), encodeItemHeader(frag.length, jpeg), frag, encodeSequenceDelimiter(jpeg)]);
  const pd = parse(Buffer.concat([encodeFileMeta({ mediaStorageSOPClassUID: '1.2', mediaStorageSOPInstanceUID: '1.3', transferSyntaxUID: jpeg }), enc])).reader.pixelData!;
  assert.equal(pd.encapsulated!.fragments.length, 1);
  assert.equal(pd.encapsulated!.fragments[0].length, 6);
});

test('values not kept cannot be encoded silently', () => {
  const { header } = parse(readTestFile('CT_small.dcm'), undefined, { bulkThreshold: 1024 });
  assert.throws(() => encodeDataset(header.dataset, TS.ExplicitVRLittleEndian), DicomEncodeError);
});

test('odd values are padded per VR', () => {
  const ts = TS.ExplicitVRLittleEndian;
  const bytes = encodeDataset([
    { tag: T.PatientID, vr: 'LO', length: 3, offset: 0, value: new TextEncoder().encode('ABC') },
    { tag: T.SOPInstanceUID, vr: 'UI', length: 3, offset: 0, value: new TextEncoder().encode('1.2') },
  ].sort((a, b) => a.tag - b.tag), ts);
  assert.equal(Buffer.from(bytes).toString('latin1'), '\x08\x00\x18\x00UI\x04\x001.2\x00\x10\x00\x20\x00LO\x04\x00ABC ');
});

test('private tags and private creators survive to DICOM JSON', () => {
  const json = toDicomJson(parse(readTestFile('nested_priv_SQ.dcm')).header.dataset);
  const keys = Object.keys(json);
  assert.ok(keys.some((k) => /^0001|^[0-9A-F]{3}[13579BDF]/.test(k)), keys.join());
  const sq = Object.values(json).find((a) => a.vr === 'SQ')!;
  assert.ok(Array.isArray(sq.Value) && sq.Value.length > 0);
  const ct = toDicomJson(parse(readTestFile('CT_small.dcm'), undefined, { bulkThreshold: 1024 }).header.dataset, {
    bulkDataUri: (path) => `bulk/${path.map((t) => t.toString(16)).join('/')}`,
  });
  assert.deepEqual(ct['7FE00010'], { vr: 'OW', BulkDataURI: 'bulk/7fe00010' });
  assert.deepEqual(ct['00280010'], { vr: 'US', Value: [128] });
  assert.equal(ct['00431028'].vr, 'OB');
  assert.equal(typeof ct['00431028'].InlineBinary, 'string');
  assert.deepEqual(ct['00080050'], { vr: 'SH' });
});
