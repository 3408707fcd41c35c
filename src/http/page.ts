/**
 * A page of Atrium's own that tells a person something went wrong, in their browser (the viewer launch's
 * "no such study", "not allowed"), rather than a problem+json they would have to read: the sign-in page's
 * look (/ui/style.css), no script, served under the pages' strict Content-Security-Policy.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Whether the request is a browser's navigation (it accepts HTML), as opposed to an API client's call. */
export function acceptsHtml(request: FastifyRequest): boolean {
  return /\btext\/html\b/i.test(request.headers.accept ?? '');
}

export interface NoticePage {
  status: number;
  /** The heading: what happened, in a few words ("Study not found"). */
  title: string;
  /** The explanation, as text (escaped here). */
  message: string;
  /** More lines (the identifiers asked for, the reason), each as text. */
  details?: string[];
}

/** Sends the notice page with its status; not cached (whether a study exists or may be seen changes). */
export function sendNoticePage(reply: FastifyReply, page: NoticePage): FastifyReply {
  const details = page.details?.length ? `\n    <ul>${page.details.map((d) => `<li>${escapeHtml(d)}</li>`).join('')}</ul>` : '';
  const html = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Atrium: ${escapeHtml(page.title)}</title>
  <link rel="stylesheet" href="/ui/style.css">
</head>
<body class="notice">
  <header><h1>Atrium</h1></header>
  <main>
    <h2>${escapeHtml(page.title)}</h2>
    <p>${escapeHtml(page.message)}</p>${details}
    <p class="muted">HTTP ${page.status}</p>
  </main>
</body>
</html>
`;
  return reply.status(page.status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html);
}
