/**
 * Security headers on every HTTP response. The Content-Security-Policy is the strict one of Atrium's own
 * pages (no inline code at all) unless a route sets its own (the OHIF viewer's, with the hashes of its
 * inline scripts); data responses (JSON, DICOM, images) get `default-src 'none'`, so that a stored
 * object opened in a browser tab can run nothing.
 */
import type { FastifyInstance } from 'fastify';

/** Atrium's pages (/admin, /login): scripts, styles and images from this origin only, never framed elsewhere. */
export const PAGE_CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'",
  "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'self'",
].join('; ');

/** Anything that is not a page. */
export const DATA_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

export function registerSecurityHeaders(app: FastifyInstance, options: { https: boolean }): void {
  app.addHook('onSend', async (_req, reply) => {
    // No MIME sniffing, no framing by other sites (clickjacking), no URLs with UIDs leaking to other
    // origins through Referer; over HTTPS, browsers are told to use nothing else for a year.
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'SAMEORIGIN');
    reply.header('referrer-policy', 'same-origin');
    if (options.https) reply.header('strict-transport-security', 'max-age=31536000');
    if (!reply.hasHeader('content-security-policy')) {
      const type = String(reply.getHeader('content-type') ?? '');
      reply.header('content-security-policy', type.startsWith('text/html') ? PAGE_CSP : DATA_CSP);
    }
  });
}
