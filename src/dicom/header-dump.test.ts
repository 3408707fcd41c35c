/** The lenient header dump of quarantined objects: every broken shape read as far as it goes, chunked as it arrives. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeaderDumper, type HeaderDump } from './header-dump.ts';
import { parse, readTestFile, testFiles } from '../../test/support/codec.ts';

function dump(bytes: Uint8Array, chunk = 997, options = {}): HeaderDump {
  const dumper = new HeaderDumper(options);
  for (let i = 0; i < bytes.length; i += chunk) if (!dumper.push(bytes.subarray(i, i + chunk))) break;
  return dumper.end();
}

test('a well-formed object: File Meta then data set, every element once, nothing stopped, whatever the chunks', () => {
  const bytes = readTestFile('CT_small.dcm');
  const whole = dump(bytes, bytes.length);
  assert.equal(whole.stoppedAt, undefined);
  assert.equal(whole.transferSyntaxUid, '1.2.840.10008.1.2.1');
  assert.deepEqual(dump(bytes, 1), whole);
  const { header } = parse(bytes);
  const count = (ds: { elements: { items?: { elements: unknown[] }[] }[] }): number =>
    ds.elements.reduce((n, el) => n + 1 + (el.items ?? []).reduce((m, item) => m + count(item as never), 0), 0);
  assert.equal(whole.elements.length, count(header.fileMeta!) + count(header.dataset));
  assert.deepEqual(whole.elements.find((e) => e.keyword === 'PatientName'), { tag: '(0010,0010)', vr: 'PN', keyword: 'PatientName', length: 22, value: 'CompressedSamples^CT1', depth: 0, offset: whole.elements.find((e) => e.keyword === 'PatientName')!.offset });
  assert.equal(whole.elements.find((e) => e.keyword === 'FileMetaInformationVersion')!.value, '00\\01');
  assert.equal(whole.elements.find((e) => e.keyword === 'PixelData')!.value, '<32768 bytes>');
  assert.equal(whole.elements.find((e) => e.keyword === 'Rows')!.value, '128');
});

test('sequences nest with their depth and item; encapsulated pixel data and private elements are summarized', () => {
  const sr = dump(readTestFile('nested_priv_SQ.dcm'));
  assert.ok(sr.elements.some((e) => e.depth >= 2 && e.item === 1));
  for (const [i, e] of sr.elements.entries()) {
    if (e.depth > 0) assert.ok(sr.elements.slice(0, i).some((p) => p.depth === e.depth - 1 && /items?>$/.test(p.value)), `${e.tag} follows its sequence`);
  }
  const jpeg = dump(readTestFile('SC_rgb_jpeg_dcmtk.dcm'));
  assert.match(jpeg.elements.find((e) => e.keyword === 'PixelData')!.value, /^<encapsulated: 1 fragment, \d+ bytes>$/);
  assert.equal(jpeg.elements.find((e) => e.keyword === 'PixelData')!.length, 0xffffffff);
});

test('broken objects: truncated, invalid VR, a damaged or missing "DICM", a bare data set, not DICOM at all', () => {
  const truncated = dump(readTestFile('rtplan_truncated.dcm'));
  assert.match(truncated.stoppedAt!, /^TRUNCATED at offset 2100: truncated value of \(300A,012C\) IsocenterPosition/);
  assert.equal(truncated.elements.at(-1)!.value, '<not read>');

  const ct = readTestFile('CT_small.dcm');
  const bad = Buffer.from(ct);
  const patientId = parse(ct).header.dataset.elements.find((e) => e.tag === 0x00100020)!;
  bad.write('ZZ', patientId.offset - 4, 'latin1'); // the VR of Patient ID
  const invalid = dump(bad);
  assert.match(invalid.stoppedAt!, /^INVALID_VR at offset \d+: invalid VR .* \(0010,0020\) PatientID/);
  assert.equal(invalid.elements.at(-1)!.keyword, 'PatientName', 'everything before it is shown');

  const damaged = Buffer.from(ct);
  damaged.write('XXXX', 128);
  const stepped = dump(damaged);
  assert.equal(stepped.stoppedAt, undefined);
  assert.match(stepped.warnings[0], /no "DICM" at offset 128 \("XXXX" instead\): read from offset 132/);
  assert.deepEqual(stepped.elements.map((e) => e.tag), dump(ct).elements.map((e) => e.tag));
  assert.deepEqual(stepped.elements.map((e) => e.offset), dump(ct).elements.map((e) => e.offset), 'offsets are positions in the object as stored');

  const bareAfterPreamble = Buffer.concat([Buffer.alloc(128, 0x41), readTestFile('ExplVR_LitEndNoMeta.dcm')]);
  const preamble = dump(bareAfterPreamble);
  assert.equal(preamble.stoppedAt, undefined);
  assert.match(preamble.warnings[0], /read from offset 128 as a data set/);
  assert.equal(preamble.elements[0].offset, 128 + 8);

  const bare = dump(readTestFile('ExplVR_LitEndNoMeta.dcm'));
  assert.equal(bare.stoppedAt, undefined);
  assert.equal(bare.elements[0].keyword, 'SpecificCharacterSet');

  for (const junk of [new TextEncoder().encode('hello, this is not DICOM at all, not even a tiny bit of it'.repeat(5)), new Uint8Array(3)]) {
    const d = dump(junk);
    assert.deepEqual(d.elements, []);
    assert.match(d.stoppedAt!, /^NOT_DICOM at offset 0/);
  }
});

test('limits: values cut to length, at most so many elements, reading stops inside large pixel data', () => {
  const bytes = readTestFile('CT_small.dcm');
  const short = dump(bytes, 4096, { maxValueLength: 5 });
  assert.equal(short.elements.find((e) => e.keyword === 'PatientName')!.value, 'Compr… (21 characters)');
  const few = dump(bytes, 4096, { maxElements: 10 });
  assert.equal(few.elements.length, 10);
  assert.match(few.stoppedAt!, /more than 10 elements/);
  const stopped = dump(bytes, 1024, { maxPixelDataBytes: 2048 });
  assert.match(stopped.stoppedAt!, /^stopped reading inside \(7FE0,0010\) PixelData \(32768 bytes, from offset \d+\)/);
  assert.equal(stopped.elements.at(-1)!.keyword, 'PixelData');
});

test('every file of the corpus is dumped without throwing, in small chunks as on the wire', () => {
  for (const name of testFiles()) {
    const d = dump(readTestFile(name), 509);
    assert.ok(Array.isArray(d.elements), name);
    for (const e of d.elements) assert.ok(e.value.length <= 240, `${name} ${e.tag}: ${e.value.length} characters`);
  }
});
