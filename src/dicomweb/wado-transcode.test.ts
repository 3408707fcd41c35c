/**
 * WADO-RS frames of compressed objects asked for as native pixels: decoded (lossless codecs give exactly
 * the pixels of the uncompressed twin in the corpus), never refused when a decoder exists.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { startDicomwebServer, parseMultipart } from '../../test/support/dicomweb.ts';
import { Part10Reader } from '../dicom/part10-reader.ts';

const TESTDATA = new URL('../../../shared/testdata/dicom/', import.meta.url);
// One image (MR_small) in several syntaxes; each lossless one must decode to the uncompressed pixels.
const TWINS = ['MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm'];

const archives: TestArchive[] = [];
let native: Buffer;

before(async () => {
  const mr = await readFile(new URL('MR_small.dcm', TESTDATA));
  const reader = new Part10Reader();
  reader.push(mr);
  const pixels = reader.end().dataset.elements.find((e) => e.tag === 0x7fe00010)!;
  native = mr.subarray(pixels.offset, pixels.offset + pixels.length);
});

after(async () => {
  for (const a of archives) await a.cleanup();
});

for (const name of TWINS) {
  test(`${name}: frames asked for as native pixels are decoded to exactly the uncompressed ones`, async () => {
    // The twins share a SOP Instance UID, so each goes into an archive of its own.
    const t = await createTestArchive('sqlite+fs');
    archives.push(t);
    const result = await t.archive.ingest.ingest([await readFile(new URL(name, TESTDATA))], { source: 'test' });
    assert.ok(result.status === 'stored');
    const s = await startDicomwebServer(t.archive);
    try {
      const url = `${s.base}/studies/${result.studyInstanceUid}/series/${result.seriesInstanceUid}/instances/${result.sopInstanceUid}/frames/1`;
      const multi = await fetch(url, { headers: { accept: 'multipart/related; type="application/octet-stream"' } });
      assert.equal(multi.status, 200);
      const parts = parseMultipart(multi.headers.get('content-type')!, Buffer.from(await multi.arrayBuffer()));
      assert.equal(parts.length, 1);
      assert.match(parts[0].headers['content-type'], /transfer-syntax=1\.2\.840\.10008\.1\.2\.1/);
      assert.ok(parts[0].body.equals(native), 'decoded pixels differ from the uncompressed twin');
      const single = await fetch(url, { headers: { accept: 'application/octet-stream' } });
      assert.equal(single.status, 200);
      assert.ok(Buffer.from(await single.arrayBuffer()).equals(native));
      // transfer-syntax=* still gets the stored, compressed bytes.
      const asStored = await fetch(url, { headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
      const stored = parseMultipart(asStored.headers.get('content-type')!, Buffer.from(await asStored.arrayBuffer()));
      assert.ok(!stored[0].body.equals(native));
    } finally {
      await s.close();
    }
  });
}
