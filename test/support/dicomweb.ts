/**
 * Test support for DICOMweb: a DICOMweb server over a test archive, an XMLHttpRequest built on fetch so
 * that the `dicomweb-client` library (which only speaks XMLHttpRequest) runs in Node as a real client, and
 * a multipart/related parser independent of the server's writer.
 */
import type { FastifyInstance } from 'fastify';
import { api } from 'dicomweb-client';
import type { Archive } from '../../src/app.ts';
import { createHttpServer } from '../../src/http/server.ts';
import { dicomwebRoutes } from '../../src/dicomweb/routes.ts';
import type { DicomwebOptions } from '../../src/dicomweb/context.ts';

export interface DicomwebServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:40123 */
  origin: string;
  /** e.g. http://127.0.0.1:40123/dicom-web */
  base: string;
  close(): Promise<void>;
}

/** The archive's HTTP server with the DICOMweb routes (registered here unless server.ts already does). */
export async function startDicomwebServer(archive: Archive, options: DicomwebOptions = {}): Promise<DicomwebServer> {
  const app = await createHttpServer(archive);
  if (!app.hasRoute({ method: 'GET', url: '/dicom-web/studies' })) await dicomwebRoutes(app, archive, options);
  const origin = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, origin, base: `${origin}/dicom-web`, close: async () => { await app.close(); } };
}

export interface MultipartPart {
  headers: Record<string, string>;
  body: Buffer;
}

/** Splits a multipart/related body by the boundary of its Content-Type (RFC 2046 5.1.1). */
export function parseMultipart(contentType: string, body: Buffer): MultipartPart[] {
  const m = /boundary=(?:"([^"]+)"|([^;,\s]+))/i.exec(contentType);
  if (!m) throw new Error(`no boundary in ${contentType}`);
  const delimiter = Buffer.from(`--${m[1] ?? m[2]}`);
  const parts: MultipartPart[] = [];
  let pos = body.indexOf(delimiter);
  while (pos >= 0) {
    let start = pos + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    start += 2; // CRLF after the delimiter
    const headerEnd = body.indexOf('\r\n\r\n', start);
    const headers: Record<string, string> = {};
    for (const line of body.subarray(start, headerEnd).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd + 4);
    if (next < 0) throw new Error('unterminated part');
    parts.push({ headers, body: body.subarray(headerEnd + 4, next) });
    pos = next + 2;
  }
  return parts;
}

/** GET with fetch; the whole body as a Buffer. */
export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer; json: () => any }> {
  const res = await fetch(url, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) };
}

type Listener = (ev: unknown) => void;

/**
 * The part of XMLHttpRequest that dicomweb-client uses (open, setRequestHeader, responseType, send,
 * readyState, status, response, getResponseHeader, getAllResponseHeaders, on* handlers), over fetch.
 */
export class FetchXMLHttpRequest {
  static readonly UNSENT = 0;
  static readonly OPENED = 1;
  static readonly HEADERS_RECEIVED = 2;
  static readonly LOADING = 3;
  static readonly DONE = 4;
  readyState = 0;
  status = 0;
  statusText = '';
  response: unknown = null;
  responseText = '';
  responseType: '' | 'arraybuffer' | 'json' | 'text' | 'blob' = '';
  withCredentials = false;
  onreadystatechange: Listener | null = null;
  onload: Listener | null = null;
  onerror: Listener | null = null;
  onloadstart: Listener | null = null;
  onloadend: Listener | null = null;
  onprogress: Listener | null = null;
  upload = {};
  #method = 'GET';
  #url = '';
  #headers: Record<string, string> = {};
  #responseHeaders: Headers | undefined;

  open(method: string, url: string): void {
    this.#method = method;
    this.#url = url;
    this.readyState = 1;
  }

  setRequestHeader(name: string, value: string): void {
    this.#headers[name] = value;
  }

  getResponseHeader(name: string): string | null {
    return this.#responseHeaders?.get(name) ?? null;
  }

  getAllResponseHeaders(): string {
    if (!this.#responseHeaders) return '';
    return [...this.#responseHeaders.entries()].map(([k, v]) => `${k}: ${v}`).join('\r\n');
  }

  abort(): void {}

  send(body?: Parameters<typeof fetch>[1] extends infer I ? (I extends { body?: infer B } ? B : never) : never): void {
    this.onloadstart?.({});
    fetch(this.#url, { method: this.#method, headers: this.#headers, body: body ?? undefined }).then(async (res) => {
      this.status = res.status;
      this.statusText = res.statusText;
      this.#responseHeaders = res.headers;
      const bytes = await res.arrayBuffer();
      if (this.responseType === 'arraybuffer') this.response = bytes;
      else {
        this.responseText = Buffer.from(bytes).toString('utf8');
        this.response = this.responseType === 'json' ? (this.responseText === '' ? null : JSON.parse(this.responseText)) : this.responseText;
      }
      this.readyState = 4;
      this.onreadystatechange?.({});
      this.onload?.({});
      this.onloadend?.({});
    }, (error) => {
      this.readyState = 4;
      this.status = 0;
      this.onreadystatechange?.({});
      this.onerror?.(error);
    });
  }
}

/** Makes `XMLHttpRequest` global for dicomweb-client (tests only). */
export function installXMLHttpRequest(): void {
  (globalThis as any).XMLHttpRequest ??= FetchXMLHttpRequest;
}

/**
 * The calls of dicomweb-client the tests make; its generated typings mark every option as required
 * (request, mediaTypes...), which the library itself does not.
 */
export type DicomwebClientCall = (options: Record<string, unknown>) => Promise<unknown>;
export interface DicomwebClientLike {
  searchForStudies: DicomwebClientCall;
  searchForSeries: DicomwebClientCall;
  searchForInstances: DicomwebClientCall;
  retrieveStudyMetadata: DicomwebClientCall;
  retrieveSeriesMetadata: DicomwebClientCall;
  retrieveInstanceMetadata: DicomwebClientCall;
  retrieveInstance: DicomwebClientCall;
  retrieveSeries: DicomwebClientCall;
  retrieveStudy: DicomwebClientCall;
  retrieveInstanceFrames: DicomwebClientCall;
  retrieveBulkData: DicomwebClientCall;
}

/** A dicomweb-client DICOMwebClient on `url` (XMLHttpRequest installed first). */
export function dicomwebClient(url: string): DicomwebClientLike {
  installXMLHttpRequest();
  return new api.DICOMwebClient({ url, verbose: false, singlepart: false }) as unknown as DicomwebClientLike;
}

/**
 * Run as a script (`node test/support/dicomweb.ts`): opens the archive of the ATRIUM_* environment and serves
 * it with the DICOMweb routes on 127.0.0.1 (ATRIUM_HTTP_PORT, default any free port), printing
 * "DICOMweb is ready: <origin>". For tests that measure a server process (src/dicomweb/wado-large.test.ts)
 * until `atrium serve` registers the DICOMweb routes itself.
 */
if (import.meta.main) {
  const { loadConfig } = await import('../../src/config/config.ts');
  const { openArchive, MODULES } = await import('../../src/app.ts');
  const { configSectionsOf } = await import('../../src/modules/module.ts');
  const archive = await openArchive(loadConfig({ sections: configSectionsOf(MODULES) }));
  const app = await createHttpServer(archive);
  if (!app.hasRoute({ method: 'GET', url: '/dicom-web/studies' })) await dicomwebRoutes(app, archive);
  const origin = await app.listen({ host: '127.0.0.1', port: Number(process.env.ATRIUM_HTTP_PORT ?? 0) });
  process.stdout.write(`DICOMweb is ready: ${origin}\n`);
  const stop = async () => {
    await app.close();
    await archive.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}
