/**
 * What an HTTP route needs before its handler runs, declared by the area that owns the route (its rules
 * table next to its routes, or an AtriumModule's `routeRules`) and enforced by src/http/access.ts. Here,
 * below every transport, so that dicomweb/ and the modules can declare rules without importing http/.
 */
import type { Action } from './types.ts';

/**
 * `public` (no credentials), `authenticated` (any principal), `metrics` (public from the loopback
 * interface, else admin:config), or an action of the policy.
 */
export type RouteRule = 'public' | 'authenticated' | 'metrics' | Action;

/**
 * `METHOD url-pattern` -> rule, the URL pattern exactly as the route is registered with Fastify
 * (e.g. `GET /api/studies/:study`). HEAD follows GET. A route with no rule in any table is denied (403).
 */
export type RouteRules = Readonly<Record<string, RouteRule>>;
