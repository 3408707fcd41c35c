import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DataElement } from './dataset.ts';
import { encodeDatasetStream, swapWords, type StreamedElementValue } from './dataset-stream-writer.ts';
import { encodeDataset, DicomEncodeError } from './part10-writer.ts';
import { parseDataset } from './parse-dataset.ts';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless } from './transfer-syntax.ts';

const text = (tag: number, vr: string, value: string): DataElement => ({ tag, vr, length: value.length, offset: 0, value: new TextEncoder().encode(value) });

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of source) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

test('kept values and sequences encode as encodeDataset does, in explicit and implicit VR', async () => {
  const elements: DataElement[] = [
    text(0x00080060, 'CS', 'CT'),
    { tag: 0x00081140, vr: 'SQ', length: 0, offset: 0, items: [{ elements: [text(0x00081150, 'UI', '1.2.3'), text(0x00081155, 'UI', '1.2.3.4')] }] },
    text(0x00100010, 'PN', 'DOE^JANE'),
  ];
  for (const ts of [ExplicitVRLittleEndian, ImplicitVRLittleEndian]) {
    const streamed = await collect(encodeDatasetStream(elements, ts));
    assert.ok(streamed.equals(Buffer.from(encodeDataset(elements, ts))), ts);
  }
});

test('streamed values: odd lengths padded, chunks of any size, the announced length enforced', async () => {
  const value = new Uint8Array([1, 2, 3, 4, 5]);
  const el: DataElement = { tag: 0x00091010, vr: 'OB', length: 5, offset: 0, bulk: true };
  const out = await collect(encodeDatasetStream([el], ExplicitVRLittleEndian, { bulkValue: () => ({ length: 5, bytes: () => chunked(value, 2) }) }));
  const parsed = parseDataset(out, ExplicitVRLittleEndian);
  assert.deepEqual([...parsed.elements[0].value!], [1, 2, 3, 4, 5, 0]);

  const short = encodeDatasetStream([el], ExplicitVRLittleEndian, { bulkValue: () => ({ length: 6, bytes: () => chunked(value, 2) }) });
  await assert.rejects(collect(short), (e: unknown) => e instanceof DicomEncodeError && /gave 5 of the 6 bytes/.test(e.message));
  const long = encodeDatasetStream([el], ExplicitVRLittleEndian, { bulkValue: () => ({ length: 4, bytes: () => chunked(value, 2) }) });
  await assert.rejects(collect(long), (e: unknown) => e instanceof DicomEncodeError && /more than the 4 bytes/.test(e.message));
  await assert.rejects(collect(encodeDatasetStream([el], ExplicitVRLittleEndian)), /neither kept nor given/);
});

test('a value too long for its 16-bit length in explicit VR is written as UN (PS3.5 6.2.2)', async () => {
  const long = 'A'.repeat(70000);
  const out = await collect(encodeDatasetStream([text(0x00204000, 'LT', long)], ExplicitVRLittleEndian));
  assert.equal(String.fromCharCode(out[4], out[5]), 'UN');
  // A reader knowing the tag reads it with the dictionary VR again.
  const parsed = parseDataset(out, ExplicitVRLittleEndian, 1 << 20);
  assert.equal(parsed.elements[0].vr, 'LT');
  assert.equal(parsed.elements[0].value!.length, 70000);
});

test('encapsulated fragments: empty offset table, one even-length item each, delimiter', async () => {
  const fragments: StreamedElementValue = { fragments: [{ length: 3, bytes: () => [new Uint8Array([9, 8, 7])] }, { length: 2, bytes: () => [new Uint8Array([6, 5])] }] };
  const el: DataElement = { tag: 0x7fe00010, vr: 'OB', length: 0, offset: 0, bulk: true };
  const out = await collect(encodeDatasetStream([el], RLELossless, { bulkValue: () => fragments }));
  const pixel = parseDataset(out, RLELossless).elements[0];
  assert.equal(pixel.encapsulated!.basicOffsetTable.length, 0);
  assert.deepEqual(pixel.encapsulated!.fragments.map((f) => f.length), [4, 2]);
  assert.deepEqual([...out.subarray(pixel.encapsulated!.fragments[0].offset, pixel.encapsulated!.fragments[0].offset + 4)], [9, 8, 7, 0]);
});

test('swapWords reverses words across chunk boundaries', async () => {
  const bytes = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...await collect(swapWords(chunked(bytes, 3), 2))], [2, 1, 4, 3, 6, 5, 8, 7]);
  assert.deepEqual([...await collect(swapWords(chunked(bytes, 5), 4))], [4, 3, 2, 1, 8, 7, 6, 5]);
  assert.deepEqual([...await collect(swapWords(chunked(bytes, 5), 1))], [...bytes]);
});
