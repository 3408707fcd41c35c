import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { RouteRules } from '../../security/index.ts';

const asset = (name: string) => readFileSync(new URL(`./assets/${name}`, import.meta.url));

/**
 * The access rules of these routes, composed by http/access.ts: the pages of /admin and the sign-in page
 * are public, their data is not.
 */
export const UI_ROUTE_RULES: RouteRules = {
  'GET /admin': 'public',
  'GET /login': 'public',
  'GET /ui/app.js': 'public',
  'GET /ui/login.js': 'public',
  'GET /ui/style.css': 'public',
};

/** Atrium's own pages at /admin: static pages over the admin REST (the OHIF viewer is at /). */
export async function uiRoutes(app: FastifyInstance): Promise<void> {
  const files: Record<string, [string, Buffer]> = {
    '/admin': ['text/html; charset=utf-8', asset('index.html')],
    '/login': ['text/html; charset=utf-8', asset('login.html')],
    '/ui/app.js': ['text/javascript; charset=utf-8', asset('app.js')],
    '/ui/login.js': ['text/javascript; charset=utf-8', asset('login.js')],
    '/ui/style.css': ['text/css; charset=utf-8', asset('style.css')],
  };
  for (const [path, [type, body]] of Object.entries(files)) {
    app.get(path, async (_req, reply) => reply.type(type).header('cache-control', 'no-cache').send(body));
  }
}
