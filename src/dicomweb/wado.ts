/**
 * WADO-RS (PS3.18 10.4): instances, metadata, bulk data and frames, streamed from the blob store. The stored
 * bytes are sent as they are whenever the client takes them: an instance as its Part-10 object, a native frame
 * as a ranged read of its slice of the Pixel Data, an encapsulated frame as its fragments. Otherwise the
 * imaging service (src/imaging) transcodes: whole instances into another transfer syntax
 * (retrieve-transfer-syntax.ts), compressed frames into native pixels; Explicit VR Big Endian native pixel
 * data is byte-swapped to little endian on the fly.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DicomJsonAttribute, DicomJsonDataSet } from '../dicom/dicom-json.ts';
import type { DataElement, DataSet } from '../dicom/dataset.ts';
import { Part10Reader } from '../dicom/part10-reader.ts';
import { transferSyntaxInfo } from '../dicom/transfer-syntax.ts';
import { swapUnit } from '../dicom/vr.ts';
import { swapWords } from '../dicom/dataset-stream-writer.ts';
import type { InstanceRecord, PixelDataLayout } from '../ports/index-store.ts';
import {
  EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
  frameMediaType, ifNoneMatch, rangeCovers, requestAccept, sendText, type MediaRange,
} from './accept.ts';
import { bodyStream, multipartContentType, multipartStream, newBoundary, type BodySource, type Part } from './multipart-writer.ts';
import { HttpError, badRequest, notAcceptable, notFound } from './problem.ts';
import { nativeDicomModel } from './qido.ts';
import type { DicomwebContext } from './context.ts';
import { decodeFrame } from '../imaging/index.ts';
import type { ServedCorrection } from '../ports/served-corrections.ts';
import { chooseTransferSyntax, instanceBytes, instanceEtag, instanceLength, storedSyntaxOf, type Delivery } from './retrieve-transfer-syntax.ts';
import { serviceWarningValue } from '../io/header-value.ts';

export interface ResourceParams {
  study: string;
  series?: string;
  sop?: string;
  frames?: string;
  '*'?: string;
}
type Req = FastifyRequest<{ Params: ResourceParams }>;

const PAGE = 1000;

// ---- Resources ----

/** The instances of a study, series or instance resource, in series then instance order; 404 when absent. */
export async function instancesOf(ctx: DicomwebContext, p: ResourceParams): Promise<InstanceRecord[]> {
  const { index } = ctx.archive;
  if (p.sop) return [await instanceOf(ctx, p)];
  if (p.series) {
    const series = await index.getSeries(p.series);
    if (!series || series.studyInstanceUid !== p.study) throw notFound(`no series ${p.series} in study ${p.study}`);
    return await allInstances(ctx, p.series);
  }
  if (!(await index.getStudy(p.study))) throw notFound(`no study ${p.study}`);
  const out: InstanceRecord[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await index.listSeries(p.study, { limit: PAGE, offset });
    for (const s of page.items) out.push(...await allInstances(ctx, s.seriesInstanceUid));
    if (page.items.length < PAGE) break;
  }
  return out;
}

async function allInstances(ctx: DicomwebContext, seriesUid: string): Promise<InstanceRecord[]> {
  const out: InstanceRecord[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await ctx.archive.index.listInstances(seriesUid, { limit: PAGE, offset });
    out.push(...page.items);
    if (page.items.length < PAGE) break;
  }
  return out;
}

export async function instanceOf(ctx: DicomwebContext, p: ResourceParams): Promise<InstanceRecord> {
  const rec = await ctx.archive.index.findInstance(p.sop!);
  if (!rec || rec.studyInstanceUid !== p.study || (p.series !== undefined && rec.seriesInstanceUid !== p.series)) {
    throw notFound(`no instance ${p.sop} in series ${p.series} of study ${p.study}`);
  }
  return rec;
}

export function instanceUrl(base: string, rec: InstanceRecord): string {
  return `${base}/studies/${rec.studyInstanceUid}/series/${rec.seriesInstanceUid}/instances/${rec.sopInstanceUid}`;
}


// ---- Instances (application/dicom) ----

interface DicomChoice {
  multipart: boolean;
  /** The transfer syntax asked: '*', a UID, or undefined (the media type's default, Explicit VR Little Endian). */
  ts: string | undefined;
}

/** The application/dicom ranges of the Accept header, most preferred first. */
function dicomChoices(accept: MediaRange[], singlePartAllowed: boolean): DicomChoice[] {
  const out: DicomChoice[] = [];
  for (const m of accept) {
    if (m.type === 'multipart/related') {
      const type = m.params.type ?? 'application/dicom';
      if (type === 'application/dicom' || type === '*/*') out.push({ multipart: true, ts: m.params['transfer-syntax'] });
    } else if (m.type === 'application/dicom') {
      out.push({ multipart: !singlePartAllowed, ts: m.params['transfer-syntax'] });
    } else if (m.type === '*/*' || m.type === 'application/*') {
      out.push({ multipart: true, ts: '*' });
    }
  }
  return out;
}

export function retrieveHandler(ctx: DicomwebContext) {
  return async (request: Req, reply: FastifyReply) => {
    const p = request.params;
    const accept = requestAccept(request.headers, request.query as Record<string, unknown>, 'multipart/related; type="application/dicom"; transfer-syntax=*');
    const choices = dicomChoices(accept, p.sop !== undefined);
    if (choices.length === 0) throw notAcceptable('instances are sent as multipart/related; type="application/dicom" (or application/dicom for one instance)');
    const instances = await instancesOf(ctx, p);
    const base = ctx.baseUrl(request);
    const asked = choices.map((c) => c.ts);
    const selected: { rec: InstanceRecord; delivery: Delivery }[] = [];
    const refusals = new Set<string>();
    for (const rec of instances) {
      const delivery = await chooseTransferSyntax(ctx, rec, asked);
      if ('refusal' in delivery) refusals.add(delivery.refusal);
      else selected.push({ rec, delivery });
    }
    if (selected.length === 0) {
      const stored = [...new Set(instances.map(storedSyntaxOf))].join(', ');
      throw notAcceptable(`the instances are stored in ${stored} and cannot be sent in the transfer syntaxes asked: ${[...refusals].join('; ')}. transfer-syntax=* takes them as stored`);
    }
    if (selected.length < instances.length) {
      reply.header('warning', serviceWarningValue(base, `${instances.length - selected.length} of ${instances.length} instances are not available in an acceptable transfer syntax and were left out`));
    }
    const multipart = instances.length > 1 || choices[selected[0].delivery.asked].multipart;
    if (!multipart) {
      const { rec, delivery } = selected[0];
      const etag = instanceEtag(rec, delivery);
      reply.header('etag', etag);
      if (ifNoneMatch(request, etag.replace(/^W\//, ''))) return reply.status(304).send();
      reply.type(`application/dicom; transfer-syntax=${delivery.transferSyntaxUid}`);
      const bytes = bodyStream(await instanceBytes(ctx, rec, delivery));
      const length = instanceLength(rec, delivery);
      if (length !== undefined) return reply.header('content-length', length).send(bytes);
      return reply.send(bytes);
    }
    const boundary = newBoundary();
    // Parts are produced as the client reads: each transcoding starts when its part is reached.
    const parts = (async function* (): AsyncGenerator<Part> {
      for (const { rec, delivery } of selected) {
        yield {
          contentType: `application/dicom; transfer-syntax=${delivery.transferSyntaxUid}`,
          length: instanceLength(rec, delivery),
          location: instanceUrl(base, rec),
          body: async () => await instanceBytes(ctx, rec, delivery),
        };
      }
    })();
    if (p.sop) reply.header('etag', instanceEtag(selected[0].rec, selected[0].delivery));
    return reply.type(multipartContentType('application/dicom', boundary)).send(multipartStream(parts, boundary));
  };
}

// ---- Metadata (application/dicom+json) ----

/** Stored relative BulkDataURIs (`bulkdata/<tag path>`) made absolute against the instance's URL. */
export function absoluteBulkDataUris(ds: DicomJsonDataSet, instance: string): DicomJsonDataSet {
  for (const attr of Object.values(ds) as DicomJsonAttribute[]) {
    if (attr.BulkDataURI !== undefined && !/^[a-z][a-z0-9+.-]*:/i.test(attr.BulkDataURI)) {
      attr.BulkDataURI = `${instance}/${attr.BulkDataURI.replace(/^\/+/, '')}`;
    }
    if (attr.vr === 'SQ' && attr.Value) {
      for (const item of attr.Value) if (item && typeof item === 'object') absoluteBulkDataUris(item as DicomJsonDataSet, instance);
    }
  }
  return ds;
}

export function metadataHandler(ctx: DicomwebContext) {
  return async (request: Req, reply: FastifyReply) => {
    let format: 'json' | 'xml' | undefined;
    for (const m of requestAccept(request.headers, request.query as Record<string, unknown>, 'application/dicom+json')) {
      if (m.type === 'application/dicom+json' || m.type === 'application/json' || rangeCovers(m.type, 'application/dicom+json')) { format = 'json'; break; }
      if ((m.type === 'multipart/related' && (m.params.type ?? '') === 'application/dicom+xml') || m.type === 'application/dicom+xml') { format = 'xml'; break; }
    }
    if (!format) throw notAcceptable('metadata is sent as application/dicom+json or multipart/related; type="application/dicom+xml"');
    const instances = await instancesOf(ctx, request.params);
    const base = ctx.baseUrl(request);
    // The ETag is known from the index before any metadata is read: the stored objects and the base URL.
    const hash = createHash('sha256').update(`${format}|${base}`);
    // Corrected instances are described as they are served (docs/corrections.md): the correction is part of the tag.
    const corrections = await Promise.all(instances.map((rec) => ctx.archive.retrieve.correctionOf(rec)));
    for (const [i, rec] of instances.entries()) hash.update(`|${rec.sopInstanceUid}:${rec.sha256}:${corrections[i]?.correctionId ?? ''}`);
    const etag = `"${hash.digest('base64url').slice(0, 32)}"`;
    reply.header('etag', etag);
    if (ifNoneMatch(request, etag)) return reply.status(304).send();

    const datasets: DicomJsonDataSet[] = [];
    for (const [i, rec] of instances.entries()) {
      const ds = await ctx.archive.index.instanceMetadata(rec.sopInstanceUid) as DicomJsonDataSet | null;
      if (!ds) continue; // deleted meanwhile
      const correction = corrections[i];
      if (correction) correctMetadata(ds, correction);
      absoluteBulkDataUris(ds, instanceUrl(base, rec));
      // Available Transfer Syntax UID (0008,3002): what the frames and the instance are stored in.
      if (!ds['00083002']) ds['00083002'] = { vr: 'UI', Value: [storedSyntaxOf(rec)] };
      datasets.push(ds);
    }
    if (format === 'json') {
      return await sendText(request, reply, 'application/dicom+json', JSON.stringify(datasets.map(sortedKeys)));
    }
    const boundary = newBoundary();
    return reply.type(multipartContentType('application/dicom+xml', boundary))
      .send(multipartStream(datasets.map((ds) => ({ contentType: 'application/dicom+xml; charset=utf-8', body: Buffer.from(nativeDicomModel(sortedKeys(ds)), 'utf8') })), boundary));
  };
}

/**
 * The metadata of a corrected instance as the instance is served (src/archive/retrieve.ts): the corrected values,
 * and the replaced ones in a new Original Attributes Sequence (0400,0561) item.
 */
function correctMetadata(ds: DicomJsonDataSet, correction: ServedCorrection): void {
  const modified: DicomJsonDataSet = {};
  const json = (vr: string, value: string) => (value === '' ? { vr } : { vr, Value: vr === 'PN' ? [{ Alphabetic: value }] : [value] });
  for (const a of correction.attributes) {
    const before = ds[a.tag];
    const same = JSON.stringify(before ?? { vr: a.vr }) === JSON.stringify(json(a.vr, a.value));
    if (same) continue;
    modified[a.tag] = before ?? { vr: a.vr };
    ds[a.tag] = json(a.vr, a.value) as DicomJsonDataSet[string];
  }
  if (Object.keys(modified).length === 0) return;
  const at = correction.correctedAt.replace(/[-:T]/g, '').replace(/Z$/, '').replace(/\.(\d{3})$/, '.$1000') + '+0000';
  const item = {
    '04000550': { vr: 'SQ', Value: [sortedKeys(modified)] },
    '04000562': { vr: 'DT', Value: [at] },
    '04000563': { vr: 'LO', Value: ['ATRIUM'] },
    '04000565': { vr: 'CS', Value: ['CORRECT'] },
  };
  const original = ds['04000561'] as { vr: string; Value?: unknown[] } | undefined;
  ds['04000561'] = { vr: 'SQ', Value: [...(original?.Value ?? []), item] } as DicomJsonDataSet[string];
}

function sortedKeys(ds: DicomJsonDataSet): DicomJsonDataSet {
  const out: DicomJsonDataSet = {};
  for (const k of Object.keys(ds).sort()) out[k] = ds[k];
  return out;
}

// ---- Pixel data: frames ----

interface PixelGeometry {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  numberOfFrames: number;
  photometric: string;
}

function firstNumber(ds: DicomJsonDataSet, tag: string): number | undefined {
  const v = ds[tag]?.Value?.[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

function geometryOf(ds: DicomJsonDataSet): PixelGeometry {
  const photometric = String(ds['00280004']?.Value?.[0] ?? '').trim();
  return {
    rows: firstNumber(ds, '00280010') ?? 0,
    columns: firstNumber(ds, '00280011') ?? 0,
    samplesPerPixel: firstNumber(ds, '00280002') ?? 1,
    bitsAllocated: firstNumber(ds, '00280100') ?? 16,
    numberOfFrames: Math.max(1, Math.trunc(firstNumber(ds, '00280008') ?? 1)),
    photometric,
  };
}

/** Bytes of one native frame (PS3.5 8.1.1; YBR_FULL_422 stores two samples per pixel on average, PS3.3 C.7.6.3.1.2). */
function nativeFrameBytes(g: PixelGeometry, vrTag: number): number {
  const bits = vrTag === 0x7fe00008 ? 32 : vrTag === 0x7fe00009 ? 64 : g.bitsAllocated;
  const samples = g.photometric === 'YBR_FULL_422' ? 2 : g.samplesPerPixel;
  const frameBits = g.rows * g.columns * samples * bits;
  if (frameBits % 8 !== 0 && g.numberOfFrames > 1) {
    throw notAcceptable('bit-packed frames that do not start on a byte boundary cannot be cut from the stored pixel data; retrieve the bulk data or the instance');
  }
  return Math.ceil(frameBits / 8);
}

/** Parses "1,3,5" (frame numbers are 1-based, PS3.18 10.4.1.1.1). */
export function parseFrameList(text: string, numberOfFrames: number): number[] {
  const items = decodeURIComponent(text).split(',').map((s) => s.trim());
  const frames: number[] = [];
  for (const item of items) {
    if (!/^\d+$/.test(item)) throw badRequest(`frame list "${text}": "${item}" is not a frame number (frame numbers are positive integers, separated by commas)`);
    const n = Number(item);
    if (n < 1) throw badRequest(`frame list "${text}": frame numbers start at 1, not ${n}`);
    if (n > numberOfFrames) throw notFound(`frame ${n} does not exist: the instance has ${numberOfFrames} frame${numberOfFrames === 1 ? '' : 's'}`);
    frames.push(n);
  }
  return frames;
}

/** [offset, length] pieces of the stored object that make up frame `n` of encapsulated pixel data (PS3.5 A.4). */
async function encapsulatedFrame(ctx: DicomwebContext, rec: InstanceRecord, layout: PixelDataLayout, frames: number, n: number): Promise<[number, number][]> {
  const fragments = layout.fragments ?? [];
  if (fragments.length === 0) return [];
  if (frames === 1) return fragments;
  if (fragments.length === frames) return [fragments[n - 1]];
  const bot = layout.basicOffsetTable;
  // Offsets of the Basic Offset Table count from the first byte of the first fragment's item header.
  const first = fragments[0][0] - 8;
  if (bot && bot.length === frames) {
    const from = bot[n - 1];
    const to = n < frames ? bot[n] : Infinity;
    return fragments.filter(([offset]) => offset - 8 - first >= from && offset - 8 - first < to);
  }
  // No table: a frame starts at a fragment that starts a codestream (JPEG SOI, JPEG 2000 SOC, JP2 box).
  const starts: number[] = [];
  for (let i = 0; i < fragments.length; i++) {
    const [offset, length] = fragments[i];
    if (length < 4) continue;
    const head = await readAll(await ctx.archive.retrieve.readInstance(rec, { start: offset, end: offset + 4 }));
    const isStart = (head[0] === 0xff && head[1] === 0xd8) || (head[0] === 0xff && head[1] === 0x4f && head[2] === 0xff && head[3] === 0x51)
      || (head[0] === 0 && head[1] === 0 && head[2] === 0 && head[3] === 0x0c);
    if (isStart) starts.push(i);
  }
  if (starts.length !== frames || starts[0] !== 0) {
    throw notAcceptable(`the ${fragments.length} fragments of this instance cannot be assigned to its ${frames} frames (no Basic Offset Table); retrieve the instance`);
  }
  return fragments.slice(starts[n - 1], n < frames ? starts[n] : fragments.length);
}

async function readAll(stream: Readable): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}


interface FrameSelection {
  multipart: boolean;
  /** Part (or body) Content-Type. */
  contentType: string;
  /** Root type of the multipart response. */
  rootType: string;
  /** Swap big endian words to little endian, by this unit (1 = none). */
  swapUnit: number;
}

/**
 * Chooses how frames (or pixel bulk data) are sent. Native pixel data: application/octet-stream, in the stored
 * byte order for transfer-syntax=*, else Explicit VR Little Endian (big endian words swapped). Encapsulated:
 * the compressed frame as stored, under application/octet-stream with transfer-syntax=* (part type carries the
 * transfer syntax, as cornerstone expects) or under its own image media type (image/jpeg, image/jls, image/jp2,
 * image/jphc, image/dicom-rle...).
 */
function selectFrameEncoding(accept: MediaRange[], stored: string, encapsulated: boolean, singleAllowed: boolean, wordSize: number): FrameSelection {
  const info = transferSyntaxInfo(stored);
  const littleStored = stored === IMPLICIT_VR_LITTLE_ENDIAN || stored === EXPLICIT_VR_LITTLE_ENDIAN || (!encapsulated && info.littleEndian);
  const nativeAs = (ts: string | undefined) => {
    // Native pixel data is the same bytes in Implicit and Explicit VR Little Endian.
    if (ts === '*') return { label: littleStored ? EXPLICIT_VR_LITTLE_ENDIAN : stored, swap: 1 };
    if (ts === undefined || ts === EXPLICIT_VR_LITTLE_ENDIAN || ts === IMPLICIT_VR_LITTLE_ENDIAN) {
      return { label: EXPLICIT_VR_LITTLE_ENDIAN, swap: stored === EXPLICIT_VR_BIG_ENDIAN ? wordSize : 1 };
    }
    if (ts === stored) return { label: stored, swap: 1 };
    return undefined;
  };
  const mediaType = encapsulated ? frameMediaType(stored) : undefined;
  for (const m of accept) {
    const multipart = m.type === 'multipart/related';
    const type = multipart ? (m.params.type ?? 'application/octet-stream') : m.type;
    if (!multipart && !singleAllowed) {
      if (m.type !== '*/*') continue;
    }
    const useMultipart = multipart || m.type === '*/*' || !singleAllowed;
    const ts = m.params['transfer-syntax'] ?? (type === '*/*' ? '*' : undefined);
    if (!encapsulated) {
      if (!rangeCovers(type, 'application/octet-stream')) continue;
      const as = nativeAs(ts);
      if (!as) continue;
      return { multipart: useMultipart, rootType: 'application/octet-stream', contentType: `application/octet-stream; transfer-syntax=${as.label}`, swapUnit: as.swap };
    }
    if (type === 'application/octet-stream') {
      // Compressed bytes under octet-stream only when the client said any transfer syntax will do.
      if (ts === '*' || ts === stored || (stored === '1.2.840.10008.1.2.1.98' && ts === undefined)) {
        return { multipart: useMultipart, rootType: 'application/octet-stream', contentType: `application/octet-stream; transfer-syntax=${stored}`, swapUnit: 1 };
      }
      continue;
    }
    if (type === '*/*' && ts === '*') {
      const ct = mediaType ?? 'application/octet-stream';
      return { multipart: useMultipart, rootType: ct, contentType: `${ct}; transfer-syntax=${stored}`, swapUnit: 1 };
    }
    if (mediaType && rangeCovers(type, mediaType)) {
      const wanted = ts === undefined || ts === '*' ? undefined : ts;
      if (wanted !== undefined && wanted !== stored) continue;
      // image/jpeg without transfer-syntax defaults to baseline (PS3.18 Table 8.7.3-5); other JPEG processes are
      // returned too, labelled with their transfer syntax, rather than refused.
      return { multipart: useMultipart, rootType: mediaType, contentType: `${mediaType}; transfer-syntax=${stored}`, swapUnit: 1 };
    }
  }
  const what = encapsulated
    ? `the pixel data is stored compressed (${stored}${mediaType ? `, ${mediaType}` : ''}); ask for multipart/related; type="application/octet-stream"; transfer-syntax=* or type="${mediaType ?? 'application/octet-stream'}"`
    : `the pixel data is stored uncompressed (${stored}); ask for multipart/related; type="application/octet-stream"`;
  throw notAcceptable(what);
}

async function pixelContext(ctx: DicomwebContext, p: ResourceParams) {
  const rec = await instanceOf(ctx, p);
  const meta = await ctx.archive.index.instanceMetadata(rec.sopInstanceUid) as DicomJsonDataSet | null;
  if (!meta) throw notFound(`no instance ${p.sop}`);
  const layout = await ctx.archive.index.pixelDataLayout(rec.sopInstanceUid);
  const stored = storedSyntaxOf(rec);
  if (!layout) {
    if (transferSyntaxInfo(stored).deflated && (meta['7FE00010'] || meta['7FE00008'] || meta['7FE00009'])) {
      throw notAcceptable(`the instance is stored deflated (${stored}): its frames cannot be read by range; retrieve the instance`);
    }
    throw notFound(`instance ${p.sop} has no pixel data`);
  }
  return { rec, meta, layout, stored, geometry: geometryOf(meta), encapsulated: layout.fragments !== undefined };
}

export function framesHandler(ctx: DicomwebContext) {
  return async (request: Req, reply: FastifyReply) => {
    const { rec, layout, stored, geometry, encapsulated } = await pixelContext(ctx, request.params);
    const frames = parseFrameList(request.params.frames ?? '', geometry.numberOfFrames);
    const wordSize = layout.vr === 'OW' || geometry.bitsAllocated > 8 ? Math.max(1, Math.min(8, (layout.tag === 0x7fe00008 ? 32 : layout.tag === 0x7fe00009 ? 64 : geometry.bitsAllocated) / 8)) : 1;
    const accept = requestAccept(request.headers, request.query as Record<string, unknown>, 'multipart/related; type="application/octet-stream"; transfer-syntax=*');
    let sel: FrameSelection;
    try {
      sel = selectFrameEncoding(accept, stored, encapsulated, frames.length === 1, wordSize);
    } catch (error) {
      // Compressed frames asked for as native pixels (Explicit VR Little Endian): decoded in the imaging pool.
      const native = encapsulated ? nativeRequest(accept, frames.length === 1) : undefined;
      if (!native) throw error;
      return await sendDecoded(ctx, reply, rec, frames, native.multipart, `${instanceUrl(ctx.baseUrl(request), rec)}/frames/`);
    }
    return await sendPixels(ctx, request, reply, rec, sel, await Promise.all(frames.map(async (n) => {
      if (encapsulated) return await encapsulatedFrame(ctx, rec, layout, geometry.numberOfFrames, n);
      const size = nativeFrameBytes(geometry, layout.tag);
      const start = layout.offset + (n - 1) * size;
      if (start + size > layout.offset + layout.length) {
        throw new HttpError(409, 'Conflict', `frame ${n} (${size} bytes from Rows, Columns, Samples per Pixel and Bits Allocated) lies beyond the stored pixel data (${layout.length} bytes)`);
      }
      return [[start, size]] as [number, number][];
    })), `${instanceUrl(ctx.baseUrl(request), rec)}/frames/`, frames);
  };
}

/** Whether Accept asks for native (uncompressed, little endian) frames, and in a multipart or a single part. */
function nativeRequest(accept: MediaRange[], singleAllowed: boolean): { multipart: boolean } | undefined {
  for (const m of accept) {
    const multipart = m.type === 'multipart/related';
    const type = multipart ? (m.params.type ?? 'application/octet-stream') : m.type;
    if (type !== 'application/octet-stream') continue;
    const ts = m.params['transfer-syntax'];
    if (ts !== undefined && ts !== EXPLICIT_VR_LITTLE_ENDIAN && ts !== IMPLICIT_VR_LITTLE_ENDIAN) continue;
    if (!multipart && !singleAllowed) continue;
    return { multipart };
  }
  return undefined;
}

async function sendDecoded(ctx: DicomwebContext, reply: FastifyReply, rec: InstanceRecord, frames: number[], multipart: boolean, locationPrefix: string) {
  const contentType = `application/octet-stream; transfer-syntax=${EXPLICIT_VR_LITTLE_ENDIAN}`;
  const decoded = await Promise.all(frames.map((n) => decodeFrame(ctx.archive, rec.sopInstanceUid, n)));
  if (!multipart) return reply.type(contentType).header('content-length', decoded[0].length).send(Buffer.from(decoded[0].buffer, decoded[0].byteOffset, decoded[0].byteLength));
  const boundary = newBoundary();
  const parts: Part[] = decoded.map((bytes, i) => ({ contentType, length: bytes.length, location: `${locationPrefix}${frames[i]}`, body: bytes }));
  return reply.type(multipartContentType('application/octet-stream', boundary)).send(multipartStream(parts, boundary));
}

async function sendPixels(ctx: DicomwebContext, _request: Req, reply: FastifyReply, rec: InstanceRecord, sel: FrameSelection, pieces: [number, number][][], locationPrefix?: string, frames?: number[]) {
  // Big endian words are swapped on their way (rare); other pixels are copied as stored.
  const { retrieve } = ctx.archive;
  const body = async (p: [number, number][]) => (sel.swapUnit > 1 ? swapWords(retrieve.readInstancePieces(rec, p), sel.swapUnit) : await retrieve.openInstanceBytes(rec, p));
  const lengthOf = (p: [number, number][]) => p.reduce((a, [, l]) => a + l, 0);
  if (!sel.multipart) {
    return reply.type(sel.contentType).header('content-length', lengthOf(pieces[0])).send(bodyStream(await body(pieces[0])));
  }
  const boundary = newBoundary();
  const parts: Part[] = pieces.map((p, i) => ({
    contentType: sel.contentType,
    length: lengthOf(p),
    location: locationPrefix && frames ? `${locationPrefix}${frames[i]}` : undefined,
    body: () => body(p),
  }));
  return reply.type(multipartContentType(sel.rootType, boundary)).send(multipartStream(parts, boundary));
}


// ---- Bulk data ----

const PIXEL_TAGS = new Set([0x7fe00010, 0x7fe00008, 0x7fe00009]);

/** "7FE00010" or "00081140/0/00091010": tags and item indexes alternating. */
function parseTagPath(text: string): number[] {
  const parts = text.split('/').filter((s) => s !== '');
  if (parts.length === 0 || parts.length % 2 === 0) throw badRequest(`bulk data path "${text}": expected tag[/item/tag...]`);
  return parts.map((s, i) => {
    if (i % 2 === 0) {
      if (!/^[0-9A-Fa-f]{8}$/.test(s)) throw badRequest(`bulk data path "${text}": "${s}" is not a tag (8 hex digits)`);
      return parseInt(s, 16) >>> 0;
    }
    if (!/^\d+$/.test(s)) throw badRequest(`bulk data path "${text}": "${s}" is not an item index`);
    return Number(s);
  });
}

function findByPath(ds: DataSet, path: number[]): DataElement | undefined {
  const el = ds.elements.find((e) => e.tag >>> 0 === path[0]);
  if (!el || path.length === 1) return el;
  const item = el.items?.[path[1]];
  return item ? findByPath(item, path.slice(2)) : undefined;
}

export function bulkdataHandler(ctx: DicomwebContext) {
  return async (request: Req, reply: FastifyReply) => {
    const path = parseTagPath(request.params['*'] ?? '');
    const accept = requestAccept(request.headers, request.query as Record<string, unknown>, 'multipart/related; type="application/octet-stream"; transfer-syntax=*');
    if (path.length === 1 && PIXEL_TAGS.has(path[0])) {
      const { rec, layout, stored, geometry, encapsulated } = await pixelContext(ctx, request.params);
      if (layout.tag !== path[0]) throw notFound(`instance ${rec.sopInstanceUid} has no element ${request.params['*']}`);
      const wordSize = layout.vr === 'OW' && geometry.bitsAllocated > 8 ? geometry.bitsAllocated / 8 : swapUnit(layout.vr);
      if (!encapsulated) {
        const sel = selectFrameEncoding(accept, stored, false, true, wordSize);
        return await sendPixels(ctx, request, reply, rec, sel, [[[layout.offset, layout.length]]]);
      }
      // Encapsulated pixel data as bulk data: one part per frame (PS3.18 8.7.3.3.2).
      const sel = selectFrameEncoding(accept, stored, true, geometry.numberOfFrames === 1, 1);
      const frames = Array.from({ length: geometry.numberOfFrames }, (_, i) => i + 1);
      const pieces = [];
      for (const n of frames) pieces.push(await encapsulatedFrame(ctx, rec, layout, geometry.numberOfFrames, n));
      return await sendPixels(ctx, request, reply, rec, sel, pieces);
    }
    const rec = await instanceOf(ctx, request.params);
    const stored = storedSyntaxOf(rec);
    const info = transferSyntaxInfo(stored);
    const layout = await ctx.archive.index.pixelDataLayout(rec.sopInstanceUid);
    // Only the header is parsed: up to the Pixel Data element when the element sought comes before it.
    const end = layout && path[0] < layout.tag ? layout.offset - (info.explicitVR ? 12 : 8) : undefined;
    const reader = new Part10Reader();
    for await (const chunk of await ctx.archive.retrieve.readInstance(rec, { start: 0, end })) reader.push(chunk as Uint8Array);
    const header = reader.end();
    const el = findByPath(header.dataset, path);
    if (!el || el.items) throw notFound(`instance ${rec.sopInstanceUid} has no bulk data at ${request.params['*']}`);
    let ok = false;
    for (const m of accept) {
      const t = m.type === 'multipart/related' ? (m.params.type ?? 'application/octet-stream') : m.type;
      if (rangeCovers(t, 'application/octet-stream') || rangeCovers(m.type, 'application/octet-stream')) { ok = true; break; }
    }
    if (!ok) throw notAcceptable('bulk data is sent as multipart/related; type="application/octet-stream" or application/octet-stream');
    const single = accept.some((m) => m.type === 'application/octet-stream') && !accept.some((m) => m.type === 'multipart/related');
    const unit = header.littleEndian ? 1 : swapUnit(el.vr);
    let source: BodySource;
    let length: number;
    if (el.value) {
      source = unit > 1 ? swapWords((async function* () { yield el.value!; })(), unit) : el.value;
      length = el.value.length;
    } else {
      if (info.deflated) throw notAcceptable(`the instance is stored deflated (${stored}): its bulk data cannot be read by range; retrieve the instance`);
      const piece: [number, number][] = [[el.offset, el.length]];
      source = unit > 1 ? swapWords(ctx.archive.retrieve.readInstancePieces(rec, piece), unit) : await ctx.archive.retrieve.openInstanceBytes(rec, piece);
      length = el.length;
    }
    const contentType = `application/octet-stream; transfer-syntax=${EXPLICIT_VR_LITTLE_ENDIAN}`;
    if (single) return reply.type(contentType).header('content-length', length).send(bodyStream(source));
    const boundary = newBoundary();
    return reply.type(multipartContentType('application/octet-stream', boundary))
      .send(multipartStream([{ contentType, length, body: source }], boundary));
  };
}
