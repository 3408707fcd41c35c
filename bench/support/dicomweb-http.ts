/**
 * HTTP for the DICOMweb benchmark, on node:http (no fetch, no pooling surprises): a STOW-RS request whose
 * multipart/related body is streamed from Part-10 files or buffers, a GET that reads a (large) multipart
 * body to its end while counting bytes and parts, and a GET of a small text body (QIDO-RS).
 */
import http from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';

/** STOW and WADO: one connection per request, closed after it (the connection set-up is noise next to 100+ MB). */
const agent = new http.Agent({ keepAlive: false });
/** QIDO: one kept-alive connection, as a viewer's browser would reuse it (a query's time is then the query's). */
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });

export interface HttpResult {
  status: number;
  seconds: number;
  /** Body bytes read. */
  bytes: number;
  headers: http.IncomingHttpHeaders;
}

/** A STOW-RS part source: a file path (read when its turn comes) or the bytes themselves. */
export type PartSource = string | Uint8Array;

/**
 * POST `url` with a `multipart/related; type="application/dicom"` body made of `parts`, streamed: each file
 * is read only when the request is ready for it (backpressure), so memory stays at about one file. The
 * Content-Length is computed up front (sizes from stat), so the body is not chunked. The time runs from
 * the request's start to the end of the response body.
 */
export async function stow(url: string, parts: PartSource[], timeoutMs = 600_000): Promise<HttpResult & { text: string }> {
  const boundary = `atrium-bench-${randomUUID()}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
  const crlf = Buffer.from('\r\n');
  const tail = Buffer.from(`--${boundary}--\r\n`);
  let length = tail.length;
  for (const p of parts) length += head.length + (typeof p === 'string' ? (await stat(p)).size : p.byteLength) + crlf.length;

  const start = performance.now();
  return await new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST', agent,
      headers: {
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
        'content-length': String(length),
        accept: 'application/dicom+json',
      },
      timeout: timeoutMs,
    }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => { bytes += c.length; if (bytes < 16 << 20) chunks.push(c); });
      res.on('end', () => resolve({
        status: res.statusCode ?? 0, seconds: (performance.now() - start) / 1000, bytes, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'),
      }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${url}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    const write = (b: Uint8Array) => new Promise<void>((ok) => { if (req.write(b)) ok(); else req.once('drain', () => ok()); });
    void (async () => {
      try {
        for (const p of parts) {
          await write(head);
          await write(typeof p === 'string' ? await readFile(p) : p);
          await write(crlf);
        }
        req.end(tail);
      } catch (error) {
        req.destroy(error as Error);
      }
    })();
  });
}

/**
 * GET `url` and read the body to its end, counting bytes and, for a multipart answer, the parts (the
 * boundary delimiters seen, minus the closing one). The time runs from the request's start to the last byte.
 */
export async function getMultipart(url: string, accept: string, timeoutMs = 600_000): Promise<HttpResult & { parts: number | null; text?: string }> {
  const start = performance.now();
  return await new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: { accept }, timeout: timeoutMs }, (res) => {
      const type = String(res.headers['content-type'] ?? '');
      const m = /boundary="?([^";]+)"?/i.exec(type);
      const delimiter = m ? Buffer.from(`\r\n--${m[1]}`) : null;
      let bytes = 0;
      let delimiters = 0;
      let carry = Buffer.alloc(0);
      let first = true;
      const errorChunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if ((res.statusCode ?? 0) >= 300 && bytes < 65536) errorChunks.push(chunk);
        if (!delimiter) return;
        // The first delimiter may come without its leading CRLF (PS3.18 / RFC 2046 allow either).
        let buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
        if (first) {
          first = false;
          if (buf.subarray(0, delimiter.length - 2).equals(delimiter.subarray(2))) { delimiters++; buf = buf.subarray(delimiter.length - 2); }
        }
        let at = 0;
        for (;;) {
          const i = buf.indexOf(delimiter, at);
          if (i < 0) break;
          delimiters++;
          at = i + delimiter.length;
        }
        const keep = Math.max(at, buf.length - (delimiter.length - 1));
        carry = Buffer.from(buf.subarray(keep));
      });
      res.on('end', () => resolve({
        status: res.statusCode ?? 0, seconds: (performance.now() - start) / 1000, bytes, headers: res.headers,
        parts: delimiter ? Math.max(0, delimiters - 1) : null,
        ...(errorChunks.length ? { text: Buffer.concat(errorChunks).toString('utf8').slice(0, 2000) } : {}),
      }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
  });
}

/** GET `url` on a kept-alive connection, the whole body as text (QIDO-RS answers). */
export async function getText(url: string, accept: string, timeoutMs = 60_000): Promise<HttpResult & { text: string }> {
  const start = performance.now();
  return await new Promise((resolve, reject) => {
    const req = http.get(url, { agent: keepAlive, headers: { accept }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => { bytes += c.length; chunks.push(c); });
      res.on('end', () => resolve({
        status: res.statusCode ?? 0, seconds: (performance.now() - start) / 1000, bytes, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'),
      }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
  });
}

/** Closes the kept-alive QIDO connections (before a server is stopped). */
export function closeIdleConnections(): void {
  keepAlive.destroy();
}
