// Query parameters of rendered resources: DICOMweb (PS3.18 8.3.5.1: window, viewport, quality) and WADO-URI
// (PS3.18 9.1.2.2: windowCenter/windowWidth, rows/columns, region, imageQuality, contentType).
import { AtriumError } from '../errors.ts';
import type { RenderedMediaType, ViewportParam, WindowParam } from './render.ts';

export interface RenderRequest {
  mediaType: RenderedMediaType;
  window?: WindowParam;
  viewport?: ViewportParam;
  /** WADO-URI region: xmin, ymin, xmax, ymax as fractions of the image (0..1). */
  region?: [number, number, number, number];
  /** WADO-URI rows / columns: the largest output size, aspect ratio kept. */
  maxRows?: number;
  maxColumns?: number;
  quality?: number;
}

export const RENDERED_MEDIA_TYPES: RenderedMediaType[] = ['image/jpeg', 'image/png'];
const MAX_VIEWPORT = 8192;

const bad = (name: string, value: string, why: string) => new AtriumError('invalid-input', `query parameter ${name}: "${value}" ${why}`);

function integer(name: string, raw: string, text: string, min: number, max: number): number {
  if (!/^[+-]?\d+$/.test(text.trim())) throw bad(name, raw, 'is not a list of integers');
  const n = Number(text);
  if (n < min || n > max) throw bad(name, raw, `has a value outside ${min}..${max}`);
  return n;
}

function decimal(name: string, raw: string, text: string): number {
  const n = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(n)) throw bad(name, raw, 'is not a list of numbers');
  return n;
}

/** `window=center,width[,function]` (PS3.18 8.3.5.1.3). */
export function parseWindow(raw: string): WindowParam {
  const parts = raw.split(',');
  if (parts.length < 2 || parts.length > 3) throw bad('window', raw, 'must be center,width[,function]');
  const center = decimal('window', raw, parts[0]);
  const width = decimal('window', raw, parts[1]);
  const fn = (parts[2] ?? 'linear').trim().toUpperCase().replace(/-/g, '_');
  if (fn !== 'LINEAR' && fn !== 'LINEAR_EXACT' && fn !== 'SIGMOID') throw bad('window', raw, 'has a function other than linear, linear-exact or sigmoid');
  if (width <= 0 || fn === 'LINEAR' && width < 1) throw bad('window', raw, 'has a width that is not positive (at least 1 for linear)');
  return { center, width, function: fn };
}

/** `viewport=vw,vh[,sx,sy,sw,sh]` (PS3.18 8.3.5.1.2). */
export function parseViewport(raw: string): ViewportParam {
  const parts = raw.split(',');
  if (parts.length !== 2 && parts.length !== 6) throw bad('viewport', raw, 'must be vw,vh or vw,vh,sx,sy,sw,sh');
  const viewport: ViewportParam = {
    width: integer('viewport', raw, parts[0], 1, MAX_VIEWPORT),
    height: integer('viewport', raw, parts[1], 1, MAX_VIEWPORT),
  };
  if (parts.length === 6) {
    viewport.sx = integer('viewport', raw, parts[2], 0, 1 << 20);
    viewport.sy = integer('viewport', raw, parts[3], 0, 1 << 20);
    viewport.sw = integer('viewport', raw, parts[4], -(1 << 20), 1 << 20);
    viewport.sh = integer('viewport', raw, parts[5], -(1 << 20), 1 << 20);
    if (viewport.sw === 0 || viewport.sh === 0) throw bad('viewport', raw, 'has an empty source region');
  }
  return viewport;
}

/** The first of `types` (media ranges, best first) that is rendered here; 406 when none. */
export function chooseMediaType(types: string[]): RenderedMediaType {
  for (const t of types) {
    const type = t.split(';')[0].trim().toLowerCase();
    if (type === 'image/jpeg' || type === 'image/jpg') return 'image/jpeg';
    if (type === 'image/png') return 'image/png';
    if (type === 'image/*' || type === '*/*' || type === '*') return 'image/jpeg';
  }
  throw new AtriumError('not-acceptable', `rendered media types available are ${RENDERED_MEDIA_TYPES.join(' and ')}; asked for ${types.join(', ') || 'nothing'}`, { reason: 'media-type' });
}

/**
 * Reads the rendering parameters of either service from a query. `mediaType` is the type chosen by the
 * caller from the Accept header; absent, the WADO-URI contentType parameter decides (default image/jpeg).
 */
export function parseRenderParams(query: Record<string, string | undefined>, mediaType?: RenderedMediaType): RenderRequest {
  const request: RenderRequest = {
    mediaType: mediaType ?? chooseMediaType((query.contentType ?? 'image/jpeg').split(',').map((s) => s.trim()).filter(Boolean)),
  };
  if (query.window !== undefined) request.window = parseWindow(query.window);
  if (query.viewport !== undefined) request.viewport = parseViewport(query.viewport);
  const quality = query.quality ?? query.imageQuality;
  if (quality !== undefined) request.quality = integer(query.quality !== undefined ? 'quality' : 'imageQuality', quality, quality, 1, 100);

  // WADO-URI.
  if (query.windowCenter !== undefined || query.windowWidth !== undefined) {
    if (query.windowCenter === undefined || query.windowWidth === undefined) throw new AtriumError('invalid-input', 'query parameters windowCenter and windowWidth go together');
    request.window = parseWindow(`${query.windowCenter},${query.windowWidth}`);
  }
  if (query.rows !== undefined) request.maxRows = integer('rows', query.rows, query.rows, 1, MAX_VIEWPORT);
  if (query.columns !== undefined) request.maxColumns = integer('columns', query.columns, query.columns, 1, MAX_VIEWPORT);
  if (query.region !== undefined) {
    const parts = query.region.split(',').map((p) => decimal('region', query.region!, p));
    if (parts.length !== 4) throw bad('region', query.region, 'must be xmin,ymin,xmax,ymax');
    const [x0, y0, x1, y1] = parts;
    if ([x0, y0, x1, y1].some((v) => v < 0 || v > 1) || x0 >= x1 || y0 >= y1) throw bad('region', query.region, 'must be fractions 0..1 with xmin < xmax and ymin < ymax');
    request.region = [x0, y0, x1, y1];
  }
  return request;
}

/** The viewport of a request for an image of `columns` x `rows` (WADO-URI region/rows/columns made concrete). */
export function resolveViewport(request: RenderRequest, columns: number, rows: number): ViewportParam | undefined {
  if (request.viewport) return request.viewport;
  let source: ViewportParam | undefined;
  let width = columns;
  let height = rows;
  if (request.region) {
    const [x0, y0, x1, y1] = request.region;
    const sx = Math.floor(x0 * columns);
    const sy = Math.floor(y0 * rows);
    const sw = Math.max(1, Math.round(x1 * columns) - sx);
    const sh = Math.max(1, Math.round(y1 * rows) - sy);
    source = { width: sw, height: sh, sx, sy, sw, sh };
    width = sw;
    height = sh;
  }
  if (request.maxRows === undefined && request.maxColumns === undefined) return source;
  // rows/columns bound the output; the other dimension follows the aspect ratio.
  const scale = Math.min(request.maxColumns !== undefined ? request.maxColumns / width : Infinity, request.maxRows !== undefined ? request.maxRows / height : Infinity);
  return { ...(source ?? {}), width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}
