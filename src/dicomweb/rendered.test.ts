import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { sendProblem } from '../http/problem.ts';
import { closeImagingPool, decodeFrameWithAttributes } from '../imaging/index.ts';
import { renderedRoutes } from './rendered.ts';

const DIR = new URL('../../../shared/testdata/dicom/', import.meta.url).pathname;
/** Known bad on purpose: 4 bytes of its codestream were replaced by a sequence delimiter. */
const CORRUPT = new Set(['JPEG2000-embedded-sequence-delimiter.dcm']);

function corpus(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...corpus(path));
    else if (!/\.(txt|json|dump|gz)$/.test(name) && !name.startsWith('DICOMDIR')) out.push(path);
  }
  return out;
}

interface Stored { path: string; study: string; series: string; sop: string; frames: number }

let t: TestArchive;
let app: FastifyInstance;

before(async () => {
  t = await createTestArchive('sqlite+fs', { duplicatePolicy: 'overwrite' });
  app = Fastify();
  app.setErrorHandler((error, request, reply) => sendProblem(error as Error, request, reply));
  await renderedRoutes(app, t.archive);
  await app.ready();
});
after(async () => {
  await app.close();
  await closeImagingPool();
  await t.cleanup();
});

async function ingest(path: string): Promise<Stored | null> {
  const result = await t.archive.ingest.ingest([new Uint8Array(readFileSync(path))], { source: 'test' }) as
    { status: string; sopInstanceUid: string; studyInstanceUid: string; seriesInstanceUid: string };
  if (result.status !== 'stored' && result.status !== 'duplicate') return null;
  const metadata = await t.archive.index.instanceMetadata(result.sopInstanceUid) as Record<string, { Value?: unknown[] }>;
  if (!metadata['7FE00010']) return null;
  const instance = (await t.archive.index.findInstance(result.sopInstanceUid))!;
  return { path, study: instance.studyInstanceUid, series: instance.seriesInstanceUid, sop: instance.sopInstanceUid, frames: Number(metadata['00280008']?.Value?.[0] ?? 1) };
}

const url = (s: Stored, tail: string) => `/dicom-web/studies/${s.study}/series/${s.series}/instances/${s.sop}/${tail}`;

type Response = Awaited<ReturnType<FastifyInstance['inject']>>;

/** center,width covering the stored values of a grayscale frame that has an own window. */
async function fullRangeWindow(sop: string, frame: number): Promise<string | undefined> {
  const metadata = await t.archive.index.instanceMetadata(sop) as Record<string, { Value?: number[] }>;
  if (!metadata['00281050']) return undefined;
  const { bytes, attributes } = await decodeFrameWithAttributes(t.archive, sop, frame);
  if (attributes.samplesPerPixel !== 1 || attributes.bitsAllocated !== 16) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const slope = metadata['00281053']?.Value?.[0] ?? 1;
  const intercept = metadata['00281052']?.Value?.[0] ?? 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < bytes.length / 2; i++) {
    const v = (attributes.pixelRepresentation ? view.getInt16(i * 2, true) : view.getUint16(i * 2, true)) * slope + intercept;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return `${(min + max) / 2},${Math.max(1, max - min)},linear-exact`;
}

async function pixels(body: Buffer) {
  const { data, info } = await sharp(body).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('rendered resources over HTTP', () => {
  test('every image of the corpus the archive stores renders to a non-blank PNG and to a JPEG, every frame', async () => {
    let rendered = 0;
    let frames = 0;
    const files = corpus(DIR);
    for (const path of files) {
      const name = path.slice(DIR.length);
      const stored = await ingest(path);
      if (!stored) continue;
      if (CORRUPT.has(name)) {
        const res = await app.inject({ url: url(stored, 'rendered'), headers: { accept: 'image/png' } });
        assert.equal(res.statusCode, 500, name);
        assert.match(res.json().detail, /could not be decoded/);
        continue;
      }
      for (let frame = 1; frame <= stored.frames; frame++) {
        const tail = stored.frames > 1 ? `frames/${frame}/rendered` : 'rendered';
        const png: Response = await app.inject({ url: url(stored, tail), headers: { accept: 'image/png' } });
        assert.equal(png.statusCode, 200, `${name} frame ${frame}: ${png.body.slice(0, 300)}`);
        assert.equal(png.headers['content-type'], 'image/png');
        let { data } = await pixels(png.rawPayload);
        if (data.every((v) => v === data[0])) {
          // Some downsized corpus images lie wholly outside their own window: then their full range must show.
          const window = await fullRangeWindow(stored.sop, frame);
          assert.ok(window, `${name} frame ${frame} is blank`);
          data = (await pixels((await app.inject({ url: url(stored, `${tail}?window=${window}`), headers: { accept: 'image/png' } })).rawPayload)).data;
        }
        assert.ok(data.some((v) => v !== data[0]), `${name} frame ${frame} is blank`);
        const jpeg: Response = await app.inject({ url: url(stored, tail), headers: { accept: 'image/jpeg' } });
        assert.equal(jpeg.statusCode, 200, name);
        assert.equal(jpeg.headers['content-type'], 'image/jpeg');
        assert.deepEqual([...jpeg.rawPayload.subarray(0, 2)], [0xff, 0xd8]);
        frames++;
      }
      rendered++;
    }
    // The corpus has some 40 images (several share a UID and are stored over one another) plus the DICOMDIR set.
    assert.ok(rendered >= 60, `rendered ${rendered} instances`);
    assert.ok(frames > rendered, 'multi-frame objects rendered frame by frame');
  });

  test('default media type is JPEG; window, viewport and quality parameters apply', async () => {
    const ct = (await ingest(join(DIR, 'CT_small.dcm')))!;
    const plain = await app.inject({ url: url(ct, 'rendered') });
    assert.equal(plain.statusCode, 200);
    assert.equal(plain.headers['content-type'], 'image/jpeg');
    const small = await app.inject({ url: url(ct, 'rendered?viewport=40,40'), headers: { accept: 'image/png' } });
    const p = await pixels(small.rawPayload);
    assert.deepEqual([p.width, p.height], [40, 40]);
    const narrow = await pixels((await app.inject({ url: url(ct, 'rendered?window=150,10'), headers: { accept: 'image/png' } })).rawPayload);
    const wide = await pixels((await app.inject({ url: url(ct, 'rendered?window=150,4000,linear'), headers: { accept: 'image/png' } })).rawPayload);
    const sat = (d: Buffer) => d.filter((v) => v === 0 || v === 255).length;
    assert.ok(sat(narrow.data) > 2 * sat(wide.data));
    const q10 = await app.inject({ url: url(ct, 'rendered?quality=10') });
    const q100 = await app.inject({ url: url(ct, 'rendered?quality=100') });
    assert.ok(q100.rawPayload.length > q10.rawPayload.length);
    const accept = await app.inject({ url: url(ct, 'rendered'), headers: { accept: 'image/gif;q=1, image/png;q=0.5' } });
    assert.equal(accept.headers['content-type'], 'image/png');
  });

  test('errors: 404 unknown, 406 unsupported Accept or not an image, 400 bad parameters', async () => {
    const ct = (await ingest(join(DIR, 'CT_small.dcm')))!;
    const check = async (path: string, status: number, accept?: string) => {
      const res = await app.inject({ url: path, headers: accept ? { accept } : {} });
      assert.equal(res.statusCode, status, `${path}: ${res.body}`);
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      return res.json();
    };
    await check(url({ ...ct, sop: '1.2.3' }, 'rendered'), 404);
    await check(url({ ...ct, series: '1.2.3' }, 'rendered'), 404);
    await check(url(ct, 'frames/2/rendered'), 404);
    await check(url(ct, 'rendered'), 406, 'image/gif');
    await check(url(ct, 'rendered'), 406, 'application/dicom');
    await check(url(ct, 'rendered?window=1'), 400);
    await check(url(ct, 'rendered?viewport=a,b'), 400);
    await check(url(ct, 'rendered?quality=0'), 400);
    await check(url(ct, 'frames/1,2/rendered'), 400);
    await check(url(ct, 'rendered?viewport=10,10,500,500,10,10'), 400);
    const sr = (await t.archive.ingest.ingest([new Uint8Array(readFileSync(join(DIR, 'test-SR.dcm')))], { source: 'test' })) as { sopInstanceUid: string };
    const srRecord = (await t.archive.index.findInstance(sr.sopInstanceUid))!;
    const body = await check(url({ path: '', study: srRecord.studyInstanceUid, series: srRecord.seriesInstanceUid, sop: srRecord.sopInstanceUid, frames: 1 }, 'rendered'), 406);
    assert.match(body.detail, /no pixel data/);
  });

  test('thumbnails at instance, series and study level; series and study rendered as multipart', async () => {
    // The CT5N series of the DICOMDIR set: five instances of one series.
    const dir = join(DIR, 'dicomdirtests/98892001/CT5N');
    const stored = [];
    for (const name of readdirSync(dir).sort()) stored.push((await ingest(join(dir, name)))!);
    const s = stored[0];
    for (const path of [url(s, 'thumbnail'), `/dicom-web/studies/${s.study}/series/${s.series}/thumbnail`, `/dicom-web/studies/${s.study}/thumbnail`]) {
      const res = await app.inject({ url: path });
      assert.equal(res.statusCode, 200, `${path}: ${res.body}`);
      assert.equal(res.headers['content-type'], 'image/jpeg');
      const p = await pixels(res.rawPayload);
      assert.ok(p.width <= 128 && p.height <= 128 && Math.max(p.width, p.height) === 128, `${p.width}x${p.height}`);
    }
    const series = await app.inject({ url: `/dicom-web/studies/${s.study}/series/${s.series}/rendered`, headers: { accept: 'image/png' } });
    assert.equal(series.statusCode, 200);
    const type = String(series.headers['content-type']);
    assert.match(type, /^multipart\/related; type="image\/png"; boundary=/);
    const boundary = type.split('boundary=')[1];
    const parts = series.rawPayload.toString('latin1').split(`--${boundary}`).filter((p) => p.includes('Content-Type: image/png'));
    assert.equal(parts.length, stored.length);
    const study = await app.inject({ url: `/dicom-web/studies/${s.study}/rendered` });
    assert.equal(study.statusCode, 200);
    assert.ok(study.rawPayload.toString('latin1').split('Content-Type: image/jpeg').length - 1 >= stored.length);
    assert.equal((await app.inject({ url: `/dicom-web/studies/1.2.3/thumbnail` })).statusCode, 404);
  });
});
