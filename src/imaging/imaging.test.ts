import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { AtriumError } from '../errors.ts';
import { closeImagingPool, decodeFrame, decodeFrameWithAttributes, renderInstance, WorkerPool, type RenderRequest } from './index.ts';
import { decodeRle } from './rle.ts';
import { parseRenderParams, parseViewport, parseWindow } from './params.ts';
import { voiFunction } from './render.ts';

const DIR = new URL('../../../shared/testdata/dicom/', import.meta.url).pathname;
const file = (name: string) => new Uint8Array(readFileSync(DIR + name));

let t: TestArchive;
before(async () => {
  // Several corpus files share one SOP Instance UID (MR_small in every transfer syntax): each ingest replaces
  // the previous one, and each test decodes right after ingesting.
  t = await createTestArchive('sqlite+fs', { duplicatePolicy: 'overwrite' });
});
after(async () => {
  await closeImagingPool();
  await t.cleanup();
});

async function ingest(bytes: Uint8Array): Promise<string> {
  const result = await t.archive.ingest.ingest([bytes], { source: 'test' }) as { status: string; sopInstanceUid: string };
  assert.ok(result.status === 'stored' || result.status === 'duplicate', result.status);
  return result.sopInstanceUid;
}

async function decodeFile(name: string, frame = 1): Promise<Uint8Array> {
  return await decodeFrame(t.archive, await ingest(file(name)), frame);
}

/** Pixel Data value of a native Explicit VR LE file, found by its element header, independently of our reader. */
function nativePixelData(bytes: Uint8Array): Uint8Array {
  const header = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0]); // (7FE0,0010) OW
  const at = Buffer.from(bytes).lastIndexOf(header);
  assert.ok(at > 0, 'Pixel Data element header found');
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(at + 8, true);
  return bytes.subarray(at + 12, at + 12 + length);
}

/** A copy of a corpus file with another SOP Instance UID (same length) and optional byte patches. */
function variant(name: string, patch: (bytes: Buffer) => void = () => {}): Uint8Array {
  const bytes = Buffer.from(file(name));
  const text = bytes.toString('latin1');
  const uid = /1\.3\.6\.1\.4\.1\.5962\.1\.1\.1\.1\.1\.20040119072730\.12322/.exec(text)?.[0];
  assert.ok(uid, 'CT_small SOP Instance UID');
  const other = uid.slice(0, -1) + String((Number(uid.slice(-1)) + 1 + Math.floor(Math.random() * 7)) % 10);
  let i = -1;
  while ((i = bytes.indexOf(uid, i + 1, 'latin1')) >= 0) bytes.write(other, i, 'latin1');
  patch(bytes);
  return new Uint8Array(bytes);
}

async function rawPixels(image: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(image).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

const PNG: RenderRequest = { mediaType: 'image/png' };

describe('decoding to native pixels', () => {
  test('an uncompressed CT decodes to exactly the pixels of the file (first values 175, 180, 166, 143)', async () => {
    const bytes = file('CT_small.dcm');
    const decoded = await decodeFile('CT_small.dcm');
    assert.deepEqual(Buffer.from(decoded), Buffer.from(nativePixelData(bytes)));
    const view = new DataView(decoded.buffer, decoded.byteOffset, decoded.byteLength);
    assert.deepEqual([0, 1, 2, 3].map((i) => view.getInt16(i * 2, true)), [175, 180, 166, 143]);
  });

  test('MR_small in every lossless and native transfer syntax decodes to the same pixels', async () => {
    const reference = Buffer.from(await decodeFile('MR_small.dcm'));
    assert.deepEqual(reference, Buffer.from(nativePixelData(file('MR_small.dcm'))));
    for (const twin of ['MR_small_bigendian.dcm', 'MR_small_expb.dcm', 'MR_small_implicit.dcm', 'MR_small_padded.dcm',
      'MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm']) {
      assert.deepEqual(Buffer.from(await decodeFile(twin)), reference, twin);
    }
  });

  test('RGB: RLE (8, 16, 32-bit, multi-frame) and JPEG lossless agree', async () => {
    const rle8 = Buffer.from(await decodeFile('SC_rgb_rle.dcm'));
    assert.equal(rle8.length, 100 * 100 * 3);
    assert.deepEqual(Buffer.from(await decodeFile('SC_rgb_jpeg_gdcm.dcm')), rle8, 'JPEG lossless process 14 SV1');
    assert.deepEqual(Buffer.from(await decodeFile('SC_rgb_rle_2frame.dcm', 1)), rle8, 'frame 1 of 2');
    const frame2 = Buffer.from(await decodeFile('SC_rgb_rle_2frame.dcm', 2));
    assert.notDeepEqual(frame2, rle8, 'frame 2 differs from frame 1');
    const rle16 = await decodeFile('SC_rgb_rle_16bit.dcm');
    const v16 = new DataView(rle16.buffer, rle16.byteOffset, rle16.byteLength);
    const rle32 = await decodeFile('SC_rgb_rle_32bit.dcm');
    const v32 = new DataView(rle32.buffer, rle32.byteOffset, rle32.byteLength);
    for (let i = 0; i < rle8.length; i++) {
      assert.equal(v16.getUint16(i * 2, true), rle8[i] * 257);
      assert.equal(v32.getUint32(i * 4, true), rle8[i] * 0x01010101);
    }
    assert.deepEqual(Buffer.from(await decodeFile('SC_rgb_rle_16bit_2frame.dcm', 1)), Buffer.from(rle16));
  });

  test('1-bit segmentation, deflated object, 4:2:2 YBR: sizes and content', async () => {
    const liver = await decodeFile('liver_1frame.dcm');
    assert.equal(liver.length, 512 * 512);
    assert.ok(liver.every((v) => v === 0 || v === 1) && liver.some((v) => v === 1));
    assert.deepEqual(Buffer.from(await decodeFile('liver_expb_1frame.dcm')), Buffer.from(liver));
    const deflated = await decodeFile('image_dfl.dcm');
    assert.equal(deflated.length, 512 * 512);
    assert.ok(new Set(deflated).size > 10);
    const ybr = await decodeFrameWithAttributes(t.archive, await ingest(file('SC_ybr_full_422_uncompressed.dcm')), 1);
    assert.equal(ybr.bytes.length, 100 * 100 * 2, 'native 4:2:2 keeps two bytes per pixel');
    assert.equal(ybr.attributes.photometricInterpretation, 'YBR_FULL_422');
  });

  test('JPEG baseline YBR comes out as RGB close to the lossless original', async () => {
    const lossless = await decodeFile('SC_rgb_rle.dcm');
    const { bytes, attributes } = await decodeFrameWithAttributes(t.archive, await ingest(file('SC_rgb_dcmtk_+eb+cy+n1.dcm')), 1);
    assert.equal(attributes.photometricInterpretation, 'RGB');
    let error = 0;
    for (let i = 0; i < bytes.length; i++) error += Math.abs(bytes[i] - lossless[i]);
    assert.ok(error / bytes.length < 8, `mean absolute error ${error / bytes.length}`);
  });

  test('12-bit JPEG extended decodes to 12-bit values', async () => {
    const bytes = await decodeFile('JPGExtended.dcm');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let max = 0;
    for (let i = 0; i < bytes.length / 2; i++) max = Math.max(max, view.getUint16(i * 2, true));
    assert.ok(max > 255 && max < 4096, `max ${max}`);
  });

  test('unknown instance, frame out of range, non-image', async () => {
    await assert.rejects(decodeFrame(t.archive, '1.2.3.4.5', 1), (e: unknown) => e instanceof AtriumError && e.code === 'not-found');
    const sop = await ingest(file('CT_small.dcm'));
    await assert.rejects(decodeFrame(t.archive, sop, 2), (e: unknown) => e instanceof AtriumError && e.code === 'not-found');
    const sr = await ingest(file('test-SR.dcm'));
    await assert.rejects(decodeFrame(t.archive, sr, 1), (e: unknown) => e instanceof AtriumError && e.code === 'not-acceptable');
  });

  test('RLE decoder rejects a header that does not match the image', () => {
    const frame = new Uint8Array(64 + 4);
    new DataView(frame.buffer).setUint32(0, 2, true);
    assert.throws(() => decodeRle(frame, 2, 2, 1, 1), /2 segments, the image needs 1/);
    new DataView(frame.buffer).setUint32(0, 1, true);
    new DataView(frame.buffer).setUint32(4, 64, true);
    frame.set([0x03 >>> 0, 1, 2], 64); // literal run of 4 but only 3 bytes: short segment
    assert.throws(() => decodeRle(frame.subarray(0, 67), 2, 2, 1, 1), /decodes to/);
    frame.set([0xfd, 7], 64); // repeat 7 four times
    assert.deepEqual([...decodeRle(frame.subarray(0, 66), 2, 2, 1, 1)], [7, 7, 7, 7]);
  });
});

describe('rendering', () => {
  test('a narrow window saturates more pixels than a wide one', async () => {
    const sop = await ingest(file('CT_small.dcm'));
    const saturated = async (window: string) => {
      const { data } = await rawPixels((await renderInstance(t.archive, sop, 1, { ...PNG, window: parseWindow(window) })).body);
      return data.filter((v) => v === 0 || v === 255).length;
    };
    const narrow = await saturated('150,10');
    const wide = await saturated('150,4000');
    assert.ok(narrow > wide * 2, `narrow ${narrow} vs wide ${wide}`);
  });

  test('the object\'s own window is used by default; the window parameter overrides it', async () => {
    const sop = await ingest(file('MR_small.dcm'));
    const metadata = await t.archive.index.instanceMetadata(sop) as Record<string, { Value: number[] }>;
    const [center, width] = [metadata['00281050'].Value[0], metadata['00281051'].Value[0]];
    const byDefault = (await rawPixels((await renderInstance(t.archive, sop, 1, PNG)).body)).data;
    const own = (await rawPixels((await renderInstance(t.archive, sop, 1, { ...PNG, window: parseWindow(`${center},${width}`) })).body)).data;
    const other = (await rawPixels((await renderInstance(t.archive, sop, 1, { ...PNG, window: parseWindow(`${center / 2},${width / 4}`) })).body)).data;
    assert.deepEqual(byDefault, own);
    assert.notDeepEqual(byDefault, other);
  });

  test('viewport scales to the asked size, keeps the aspect ratio, and flips with a negative source size', async () => {
    const sop = await ingest(file('CT_small.dcm'));
    const size = async (vp: string) => {
      const p = await rawPixels((await renderInstance(t.archive, sop, 1, { ...PNG, viewport: parseViewport(vp) })).body);
      return [p.width, p.height];
    };
    assert.deepEqual(await size('64,64'), [64, 64]);
    assert.deepEqual(await size('300,300'), [300, 300]);
    assert.deepEqual(await size('100,50'), [50, 50]);
    assert.deepEqual(await size('32,32,0,0,64,32'), [32, 16]);
    const plain = await rawPixels((await renderInstance(t.archive, sop, 1, { ...PNG, window: parseWindow('100,500') })).body);
    const flipped = await rawPixels((await renderInstance(t.archive, sop, 1, { ...PNG, window: parseWindow('100,500'), viewport: parseViewport('128,128,128,0,-128,128') })).body);
    const px = (p: typeof plain, x: number, y: number) => p.data[(y * p.width + x) * p.channels];
    for (const [x, y] of [[0, 0], [10, 20], [64, 64], [127, 5]]) assert.equal(px(flipped, x, y), px(plain, 127 - x, y));
    await assert.rejects(renderInstance(t.archive, sop, 1, { ...PNG, viewport: parseViewport('64,64,100,100,64,64') }), (e: unknown) => e instanceof AtriumError && e.code === 'invalid-input');
  });

  test('MONOCHROME1 is inverted', async () => {
    const window = parseWindow('100,500');
    const m2 = await rawPixels((await renderInstance(t.archive, await ingest(file('CT_small.dcm')), 1, { ...PNG, window })).body);
    const m1bytes = variant('CT_small.dcm', (b) => {
      const at = b.indexOf('MONOCHROME2', 0, 'latin1');
      b.write('MONOCHROME1', at, 'latin1');
    });
    const m1 = await rawPixels((await renderInstance(t.archive, await ingest(m1bytes), 1, { ...PNG, window })).body);
    assert.equal(m1.data.length, m2.data.length);
    let checked = 0;
    for (let i = 0; i < m2.data.length; i += 97) {
      assert.equal(m1.data[i], 255 - m2.data[i]);
      checked++;
    }
    assert.ok(checked > 100);
  });

  test('JPEG quality changes the size', async () => {
    const sop = await ingest(file('CT_small.dcm'));
    const low = (await renderInstance(t.archive, sop, 1, { mediaType: 'image/jpeg', quality: 10 })).body;
    const high = (await renderInstance(t.archive, sop, 1, { mediaType: 'image/jpeg', quality: 100 })).body;
    assert.equal(low[0], 0xff);
    assert.equal(low[1], 0xd8);
    assert.ok(high.length > low.length * 1.5, `${high.length} vs ${low.length}`);
  });

  test('WADO-URI parameters: contentType, windowCenter/windowWidth, rows/columns, region', async () => {
    const sop = await ingest(file('CT_small.dcm'));
    const png = await renderInstance(t.archive, sop, undefined, { contentType: 'image/png', windowCenter: '100', windowWidth: '500', rows: '64', region: '0,0,0.5,1' });
    assert.equal(png.contentType, 'image/png');
    const p = await rawPixels(png.body);
    assert.deepEqual([p.width, p.height], [32, 64]);
    await assert.rejects(renderInstance(t.archive, sop, 1, { contentType: 'image/gif' }), (e: unknown) => e instanceof AtriumError && e.code === 'not-acceptable');
  });

  test('parameter validation', () => {
    assert.throws(() => parseWindow('40'), /center,width/);
    assert.throws(() => parseWindow('40,0'), /width/);
    assert.throws(() => parseWindow('40,400,cubic'), /function/);
    assert.deepEqual(parseWindow('40,400,sigmoid'), { center: 40, width: 400, function: 'SIGMOID' });
    assert.throws(() => parseViewport('0,10'), /outside/);
    assert.throws(() => parseViewport('10,10,1'), /vw,vh/);
    assert.throws(() => parseRenderParams({ quality: '101' }), /quality/);
    assert.throws(() => parseRenderParams({ windowCenter: '1' }), /together/);
  });

  test('VOI LUT functions follow PS3.3 C.11.2.1.2', () => {
    const linear = voiFunction({ center: 100, width: 200, function: 'LINEAR' });
    assert.equal(linear(-1000), 0);
    assert.equal(linear(1000), 255);
    assert.equal(linear(100), 128);
    const exact = voiFunction({ center: 100, width: 200, function: 'LINEAR_EXACT' });
    assert.equal(exact(0), 0);
    assert.equal(exact(200), 255);
    const sigmoid = voiFunction({ center: 100, width: 200, function: 'SIGMOID' });
    assert.equal(sigmoid(100), 128);
    assert.ok(sigmoid(0) > 0 && sigmoid(0) < 128);
  });
});

describe('worker pool', () => {
  test('many concurrent renders complete', async () => {
    const sops = [await ingest(file('CT_small.dcm')), await ingest(file('JPEG2000.dcm')), await ingest(file('SC_rgb_rle_2frame.dcm')), await ingest(file('JPGExtended.dcm'))];
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => renderInstance(t.archive, sops[i % sops.length], 1, { mediaType: i % 2 ? 'image/png' : 'image/jpeg' })));
    assert.equal(results.length, 60);
    for (const r of results) assert.ok(r.body.length > 100);
  });

  test('a corrupt JPEG fragment or J2K codestream is a clear error, and the pool goes on', async () => {
    const jpeg = Buffer.from(file('JPGExtended.dcm'));
    const soi = jpeg.indexOf(Buffer.from([0xff, 0xd8, 0xff]));
    assert.ok(soi > 0);
    jpeg[soi + 1] = 0x00; // no longer a JPEG start of image
    const sop = await ingest(new Uint8Array(jpeg));
    await assert.rejects(renderInstance(t.archive, sop, 1, PNG), (e: unknown) => e instanceof AtriumError && e.code === 'internal' && /JPEG frame could not be decoded/.test(e.message));
    await assert.rejects(decodeFrame(t.archive, sop, 1), /corrupt/);
    const j2k = await ingest(file('JPEG2000-embedded-sequence-delimiter.dcm'));
    await assert.rejects(renderInstance(t.archive, j2k, 1, PNG), /JPEG 2000 frame could not be decoded/);
    const ok = await renderInstance(t.archive, await ingest(file('JPEG2000.dcm')), 1, PNG);
    assert.ok((await rawPixels(ok.body)).data.length > 0);
  });

  test('a crashed thread fails its task and is replaced; a full queue is refused', async () => {
    const pool = new WorkerPool({ size: 1, maxQueue: 2 });
    try {
      await assert.rejects(pool.run({ op: 'crash' }), (e: unknown) => e instanceof AtriumError && e.code === 'internal');
      const sop = await ingest(file('CT_small.dcm'));
      const rendered = await renderInstance(t.archive, sop, 1, PNG, { pool });
      assert.ok(rendered.body.length > 0);
      assert.equal(pool.stats.restarts, 1);
      const pending = [1, 2, 3].map(() => renderInstance(t.archive, sop, 1, PNG, { pool }).then(() => 'done', (e: AtriumError) => e.code));
      // All three are queued before any runs (loading the frame is asynchronous, so they reach the pool together).
      const outcomes = await Promise.all(pending);
      assert.ok(outcomes.every((o) => o === 'done'), outcomes.join());
      const flood = Array.from({ length: 10 }, () => pool.run({ op: 'crash' }).then(() => 'done', (e: AtriumError) => e.code));
      const results = await Promise.all(flood);
      assert.ok(results.includes('unavailable'), 'queue bound refuses work');
    } finally {
      await pool.close();
    }
  });
});
