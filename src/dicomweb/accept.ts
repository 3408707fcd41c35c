/**
 * Accept header parsing and the media types of DICOMweb (PS3.18 8.7.3 and 8.7.4): media ranges with their
 * parameters, quoted or not (`type="application/dicom"` and `type=application/dicom` are the same, PS3.18 6.1.1),
 * ordered by q-value, and the media type of each encapsulated transfer syntax.
 */
import { gzip as gzipCallback } from 'node:zlib';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export interface MediaRange {
  /** "multipart/related", "application/dicom", "*\/*"... lower case. */
  type: string;
  /** Parameters with lower-case names and unquoted values ("type", "transfer-syntax", "q", "charset"...). */
  params: Record<string, string>;
  q: number;
}

/** Splits on `sep` outside quoted strings. */
function splitOutsideQuotes(text: string, sep: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"' && text[i - 1] !== '\\') quoted = !quoted;
    if (ch === sep && !quoted) {
      out.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  out.push(current);
  return out;
}

function unquote(v: string): string {
  const t = v.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/\\(.)/g, '$1');
  // Some clients send the quotes escaped (type=\"application/octet-stream\"): taken as quotes.
  if (t.length >= 4 && t.startsWith('\\"') && t.endsWith('\\"')) return t.slice(2, -2);
  return t;
}

/** One media type with parameters ("multipart/related; type=\"application/dicom\"; transfer-syntax=*"). */
export function parseMediaType(text: string): MediaRange {
  const [head, ...rest] = splitOutsideQuotes(text, ';');
  const params: Record<string, string> = {};
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    params[p.slice(0, eq).trim().toLowerCase()] = unquote(p.slice(eq + 1));
  }
  const q = params.q !== undefined ? Number(params.q) : 1;
  return { type: head.trim().toLowerCase(), params, q: Number.isFinite(q) ? q : 1 };
}

/**
 * The media ranges of an Accept header, most preferred first (stable for equal q); ranges with q=0 are
 * dropped. An absent or empty header yields `fallback`.
 */
export function parseAccept(header: string | string[] | undefined, fallback = '*/*'): MediaRange[] {
  const text = Array.isArray(header) ? header.join(',') : header;
  const source = text && text.trim() !== '' ? text : fallback;
  return splitOutsideQuotes(source, ',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(parseMediaType)
    .map((m, i) => ({ m, i }))
    .filter(({ m }) => m.q > 0)
    .sort((a, b) => b.m.q - a.m.q || a.i - b.i)
    .map(({ m }) => m);
}

/** Whether `range` ("image/*", "*\/*", "application/dicom") covers the concrete type `type`. */
export function rangeCovers(range: string, type: string): boolean {
  if (range === '*/*' || range === '*') return true;
  const [rt, rs] = range.split('/');
  const [t, s] = type.split('/');
  return rt === t && (rs === '*' || rs === s);
}

/**
 * The Accept of a request: the `accept` query parameter (PS3.18 8.3.3.1) wins over the header field.
 */
export function requestAccept(headers: Record<string, string | string[] | undefined>, query: Record<string, unknown>, fallback?: string): MediaRange[] {
  const q = query.accept;
  if (typeof q === 'string' && q.trim() !== '') return parseAccept(q, fallback);
  if (Array.isArray(q) && q.length > 0) return parseAccept(q.map(String).join(','), fallback);
  return parseAccept(headers.accept as string | undefined, fallback);
}

export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_VR_BIG_ENDIAN = '1.2.840.10008.1.2.2';

/**
 * Media type of the frames of an encapsulated transfer syntax (PS3.18 Table 8.7.3-5), or undefined for
 * syntaxes whose compressed frames have no registered image/video type here.
 */
export function frameMediaType(transferSyntaxUid: string): string | undefined {
  const ts = transferSyntaxUid;
  if (/^1\.2\.840\.10008\.1\.2\.4\.(5\d|6\d|70)$/.test(ts)) return 'image/jpeg';
  if (ts === '1.2.840.10008.1.2.4.80' || ts === '1.2.840.10008.1.2.4.81') return 'image/jls';
  if (ts === '1.2.840.10008.1.2.4.90' || ts === '1.2.840.10008.1.2.4.91') return 'image/jp2';
  if (ts === '1.2.840.10008.1.2.4.92' || ts === '1.2.840.10008.1.2.4.93') return 'image/jpx';
  if (ts === '1.2.840.10008.1.2.4.201' || ts === '1.2.840.10008.1.2.4.202' || ts === '1.2.840.10008.1.2.4.203') return 'image/jphc';
  if (ts === '1.2.840.10008.1.2.4.110' || ts === '1.2.840.10008.1.2.4.111' || ts === '1.2.840.10008.1.2.4.112') return 'image/jxl';
  if (ts === '1.2.840.10008.1.2.5') return 'image/dicom-rle';
  if (/^1\.2\.840\.10008\.1\.2\.4\.100(\.1)?$/.test(ts) || /^1\.2\.840\.10008\.1\.2\.4\.101(\.1)?$/.test(ts)) return 'video/mpeg2';
  if (/^1\.2\.840\.10008\.1\.2\.4\.10[2-6](\.1)?$/.test(ts)) return 'video/mp4';
  if (ts === '1.2.840.10008.1.2.4.107' || ts === '1.2.840.10008.1.2.4.108') return 'video/H265';
  if (ts === '1.2.840.10008.1.2.1.98') return 'application/octet-stream';
  return undefined;
}

/** Default transfer syntax of an image media type when the request names none (PS3.18 Table 8.7.3-5). */
export const DEFAULT_TRANSFER_SYNTAX_OF: Record<string, string> = {
  'image/jpeg': '1.2.840.10008.1.2.4.50',
  'image/jls': '1.2.840.10008.1.2.4.80',
  'image/jp2': '1.2.840.10008.1.2.4.90',
  'image/jpx': '1.2.840.10008.1.2.4.92',
  'image/jphc': '1.2.840.10008.1.2.4.201',
  'image/jxl': '1.2.840.10008.1.2.4.110',
  'image/dicom-rle': '1.2.840.10008.1.2.5',
  'application/octet-stream': EXPLICIT_VR_LITTLE_ENDIAN,
};

/**
 * Lossy transfer syntaxes: PS3.18 8.7.3.4 lets the origin server return them when asked for the default
 * (Explicit VR Little Endian), since it has only the lossy form.
 */
export function isLossy(transferSyntaxUid: string): boolean {
  return /^1\.2\.840\.10008\.1\.2\.4\.(50|51|52|53|54|55|56|59|60|61|62|63|64|81|91|93|100|100\.1|101|101\.1|10[2-8]|10[2-6]\.1|111|112|203)$/.test(transferSyntaxUid);
}

// ---- Response encoding shared by the DICOMweb handlers ----


const gzip = promisify(gzipCallback);
const GZIP_MIN = 1024;

/**
 * Sends a text body (DICOM JSON or XML), gzip-compressed when the client accepts it and the body is not
 * tiny, with a strong ETag over the uncompressed text; answers 304 to a matching If-None-Match.
 */
export async function sendText(request: FastifyRequest, reply: FastifyReply, contentType: string, text: string, options: { etag?: boolean } = {}): Promise<FastifyReply> {
  addVary(reply, 'Accept, Accept-Encoding');
  if (options.etag) {
    const etag = `"${createHash('sha256').update(text).digest('base64url').slice(0, 32)}"`;
    reply.header('etag', etag);
    if (ifNoneMatch(request, etag)) return reply.status(304).send();
  }
  reply.type(contentType);
  const accepts = String(request.headers['accept-encoding'] ?? '');
  if (text.length >= GZIP_MIN && /\bgzip\b/i.test(accepts) && !/\bgzip\s*;\s*q=0(\.0*)?\b/i.test(accepts)) {
    const body = await gzip(Buffer.from(text, 'utf8'));
    return reply.header('content-encoding', 'gzip').header('content-length', body.length).send(body);
  }
  return reply.send(text);
}

/** Whether If-None-Match names `etag` (or is "*"). */
export function ifNoneMatch(request: FastifyRequest, etag: string): boolean {
  const header = request.headers['if-none-match'];
  if (!header) return false;
  return header.split(',').map((s) => s.trim().replace(/^W\//, '')).some((t) => t === '*' || t === etag);
}

/** Adds to the Vary header rather than replacing what another hook (CORS: Origin) put there. */
export function addVary(reply: FastifyReply, value: string): void {
  const current = reply.getHeader('vary');
  reply.header('vary', current ? `${String(current)}, ${value}` : value);
}
