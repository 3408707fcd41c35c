import { existsSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { RouteRules } from '../../security/index.ts';
import { CONSOLE_DIST } from './build.ts';

const asset = (name: string) => readFileSync(new URL(`./assets/${name}`, import.meta.url));

/**
 * The access rules of these routes, composed by http/access.ts: the console's pages and files and the
 * sign-in page are public (a page without a session is redirected to /login), their data is not.
 */
export const UI_ROUTE_RULES: RouteRules = {
  'GET /admin': 'public',
  'GET /admin/*': 'public',
  'GET /login': 'public',
  'GET /ui/:file': 'public',
};

const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', map: 'application/json; charset=utf-8', html: 'text/html; charset=utf-8' };

/**
 * The operations console at /admin (src/http/ui/console, built into dist/ui by src/http/ui/build.ts)
 * and the sign-in page; the OHIF viewer is at /. Every /admin path is the console's page: it routes in
 * the browser.
 */
export async function uiRoutes(app: FastifyInstance): Promise<void> {
  const files = new Map<string, [string, Buffer]>([
    ['login.js', [TYPES.js, asset('login.js')]],
    ['style.css', [TYPES.css, asset('style.css')]],
  ]);
  const built = ['console.js', 'console.css', 'console.js.map', 'console.css.map'];
  if (built.every((name) => existsSync(`${CONSOLE_DIST}${name}`))) {
    for (const name of built) files.set(name, [TYPES[name.split('.').pop()!], readFileSync(`${CONSOLE_DIST}${name}`)]);
  }
  const page = files.has('console.js') ? asset('console.html') : notBuilt();
  const sendPage = async (_req: unknown, reply: import('fastify').FastifyReply) =>
    reply.type(TYPES.html).header('cache-control', 'no-cache').status(files.has('console.js') ? 200 : 503).send(page);
  app.get('/admin', sendPage);
  app.get('/admin/*', sendPage);
  app.get('/login', async (_req, reply) => reply.type(TYPES.html).header('cache-control', 'no-cache').send(asset('login.html')));
  app.get<{ Params: { file: string } }>('/ui/:file', async (req, reply) => {
    const file = files.get(req.params.file);
    if (!file) return reply.status(404).type('application/problem+json').send({ type: 'about:blank', title: 'Not Found', status: 404, detail: `no file /ui/${req.params.file}` });
    return reply.type(file[0]).header('cache-control', 'no-cache').send(file[1]);
  });
}

function notBuilt(): Buffer {
  return Buffer.from('<!doctype html><html lang="en"><meta charset="utf-8"><title>Atrium</title>'
    + '<p>The operations console is not built: run <code>npm run build:ui</code> (npm install and npm start do it).</p></html>');
}
