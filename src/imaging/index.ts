// The imaging service: frames decoded to native pixels (WADO-RS transcoding) and rendered to JPEG/PNG
// (DICOMweb rendered resources, thumbnails, WADO-URI). Blob and index I/O happen here on the event loop;
// decoding and encoding in the worker pool.
import type { DecodedFrame } from './decode.ts';
import { loadFrame, type ImagingLimits, type ImagingStores, DEFAULT_LIMITS } from './frame-source.ts';
import { parseRenderParams, resolveViewport, type RenderRequest } from './params.ts';
import type { RenderParams } from './render.ts';
import { transcodeInstance as transcode } from './transcode.ts';
import type { InstanceRecord } from '../ports/index-store.ts';
import { transferable, WorkerPool, type WorkerPoolOptions } from './worker-pool.ts';
import { comparePixels as compare, type PixelComparison, type PixelCopy } from './compare.ts';
import type { BlobStore } from '../ports/blob-store.ts';

export { WorkerPool } from './worker-pool.ts';
export type { WorkerPoolOptions, WorkerPoolStats } from './worker-pool.ts';
export { parseRenderParams, chooseMediaType, parseViewport, parseWindow, RENDERED_MEDIA_TYPES } from './params.ts';
export type { RenderRequest } from './params.ts';
export type { ImagingStores, ImagingLimits } from './frame-source.ts';
export { describeImage } from './frame-source.ts';
export type { PixelCopy, PixelComparison } from './compare.ts';
export { instanceTranscodeRefusal, transcodeRefusal, NATIVE_TARGETS, TRANSCODE_TARGETS } from './transcode.ts';

let shared: WorkerPool | undefined;

/** The process-wide imaging pool, created on first use (one thread per CPU). */
export function imagingPool(): WorkerPool {
  shared ??= new WorkerPool();
  return shared;
}

/** Replaces the process-wide pool (tests, or a server configuring its size); the old one is closed. */
export async function configureImagingPool(options: WorkerPoolOptions): Promise<WorkerPool> {
  const old = shared;
  shared = new WorkerPool(options);
  await old?.close();
  return shared;
}

export async function closeImagingPool(): Promise<void> {
  const old = shared;
  shared = undefined;
  await old?.close();
}

export interface ImagingOptions {
  pool?: WorkerPool;
  limits?: ImagingLimits;
}

export type DecodedFrameAttributes = Omit<DecodedFrame, 'bytes'>;

/**
 * Frame `frame` (1-based) of a stored instance as native pixel bytes, Little Endian, whatever its transfer
 * syntax: what WADO-RS returns as application/octet-stream for a compressed object. The bytes follow the
 * instance's Image Pixel attributes, except that frames decoded from a compressed syntax are color-by-pixel
 * (Planar Configuration 0), JPEG and JPEG 2000 color comes out as RGB, and 1-bit frames come out one byte per
 * pixel. `decodeFrameWithAttributes` tells exactly what the bytes are.
 * Rejects with AtriumError not-found (no such instance or frame), AtriumError not-acceptable (not an image, or a
 * transfer syntax that cannot be decoded), AtriumError internal (corrupt pixel data), unavailable (pool busy).
 */
export async function decodeFrame(stores: ImagingStores, sopInstanceUid: string, frame: number, options: ImagingOptions = {}): Promise<Uint8Array> {
  return (await decodeFrameWithAttributes(stores, sopInstanceUid, frame, options)).bytes;
}

export async function decodeFrameWithAttributes(stores: ImagingStores, sopInstanceUid: string, frame: number, options: ImagingOptions = {}): Promise<{ bytes: Uint8Array; attributes: DecodedFrameAttributes }> {
  const input = await loadFrame(stores, sopInstanceUid, frame, options.limits ?? DEFAULT_LIMITS);
  const pool = options.pool ?? imagingPool();
  const result = await pool.run({ op: 'decode', info: input.info, bytes: input.bytes, bitOffset: input.bitOffset }, transferable(input.bytes));
  return { bytes: result.bytes, attributes: result.frame! };
}

/**
 * The stored object as a Part-10 stream in another transfer syntax (WADO-RS and WADO-URI retrieves): re-encoded
 * element by element, frames decoded (and encoded for a compressed syntax) one at a time in the pool. Rejects
 * with AtriumError not-acceptable when this object cannot be given in `transferSyntaxUid` (see transcodeRefusal for
 * what is never possible), before anything is streamed.
 */
export async function transcodeInstance(stores: ImagingStores, instance: InstanceRecord, transferSyntaxUid: string, options: ImagingOptions = {}): Promise<AsyncIterable<Uint8Array>> {
  return await transcode(stores, instance, transferSyntaxUid, { pool: options.pool ?? imagingPool(), limits: options.limits });
}

/**
 * Renders frame `frame` (default 1) of an instance. `params` are query parameters of either DICOMweb
 * (window, viewport, quality) or WADO-URI (contentType, windowCenter, windowWidth, rows, columns, region,
 * imageQuality), or an already parsed RenderRequest. Invalid parameters reject with AtriumError invalid-input.
 */
export async function renderInstance(stores: ImagingStores, sopInstanceUid: string, frame: number | undefined,
  params: Record<string, string | undefined> | RenderRequest = {}, options: ImagingOptions = {}): Promise<{ contentType: string; body: Buffer }> {
  const request = isRenderRequest(params) ? params : parseRenderParams(params);
  const input = await loadFrame(stores, sopInstanceUid, frame ?? 1, options.limits ?? DEFAULT_LIMITS);
  const renderParams: RenderParams = {
    mediaType: request.mediaType,
    window: request.window,
    viewport: resolveViewport(request, input.info.columns, input.info.rows),
    quality: request.quality,
  };
  const pool = options.pool ?? imagingPool();
  const result = await pool.run({ op: 'render', info: input.info, bytes: input.bytes, bitOffset: input.bitOffset, params: renderParams }, transferable(input.bytes));
  return { contentType: request.mediaType, body: Buffer.from(result.bytes.buffer, result.bytes.byteOffset, result.bytes.byteLength) };
}

function isRenderRequest(params: Record<string, string | undefined> | RenderRequest): params is RenderRequest {
  return params.mediaType === 'image/jpeg' || params.mediaType === 'image/png';
}

/**
 * Whether two copies of one instance (say, as received and as stored, in two transfer syntaxes) have the same
 * pixels after decoding: every frame of both is decoded in the pool and compared byte for byte.
 */
export async function comparePixels(blobs: BlobStore, a: PixelCopy, b: PixelCopy, options: ImagingOptions = {}): Promise<PixelComparison> {
  return await compare(blobs, a, b, options.pool ?? imagingPool(), options.limits);
}
