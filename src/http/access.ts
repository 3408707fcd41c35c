/**
 * Access control and audit of the HTTP transport (admin REST, DICOMweb, UI): one `onRequest` hook
 * authenticates the caller (SecurityService.authenticateRequest) and authorizes the route's action
 * (policy.ts `authorize`), one `onResponse` hook records patient-data access in the audit trail.
 * Every route is in ROUTE_RULES (deny by default: a route missing from it answers 403), and the
 * security matrix test (src/http/security-matrix.test.ts) fails when a registered route is not.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../app.ts';
import type { AuditAction, AuditStudyRef } from '../ports/audit-store.ts';
import { auditPrincipal } from '../audit/audit-service.ts';
import { interfaceOf } from '../audit/http-request-audit.ts';
import type { StudyRecord } from '../ports/index-store.ts';
import {
  AuthError, PERMISSIONS, authorize, studyFilter, studyMatchesFilter, type Action, type Principal, type StudyFilter,
} from '../security/index.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; null on public routes. */
    principal: Principal | null;
    /** The study the request is about, when the route names one (resolved for checks and the audit). */
    accessStudy: { uid: string; record: StudyRecord | null } | null;
  }
}

/**
 * What a route needs: `public` (no credentials), `authenticated` (any principal), `metrics` (public from
 * the loopback interface, else admin:config), or an action of the policy.
 */
export type RouteRule = 'public' | 'authenticated' | 'metrics' | Action;

const DW = '/dicom-web';
const DW_STUDY = `${DW}/studies/:study`;
const DW_INSTANCE = `${DW_STUDY}/series/:series/instances/:sop`;
const DW_RENDERED_INSTANCE = `${DW_STUDY}/series/:series/instances/:instance`;

/** `METHOD url-pattern` -> rule. HEAD follows GET. */
export const ROUTE_RULES: Readonly<Record<string, RouteRule>> = {
  // Public: health, login, first-run setup, and the static pages of the viewer and /admin (not their data).
  'GET /api/health': 'public',
  'POST /api/login': 'public',
  'POST /api/setup': 'public',
  'GET /api/setup': 'public',
  'GET /login': 'public',
  'GET /': 'public',
  'GET /*': 'public',
  'GET /app-config.js': 'public',
  'GET /admin': 'public',
  'GET /ui/app.js': 'public',
  'GET /ui/login.js': 'public',
  'GET /ui/style.css': 'public',
  'OPTIONS /dicom-web/*': 'public',
  'GET /metrics': 'metrics',
  // The caller's own session.
  'POST /api/logout': 'authenticated',
  'GET /api/me': 'authenticated',
  // Users and API keys.
  'GET /api/users': 'admin:users',
  'POST /api/users': 'admin:users',
  'GET /api/users/:id': 'admin:users',
  'PATCH /api/users/:id': 'admin:users',
  'DELETE /api/users/:id': 'admin:users',
  'PUT /api/users/:id/password': 'admin:users',
  'GET /api/api-keys': 'admin:users',
  'POST /api/api-keys': 'admin:users',
  'DELETE /api/api-keys/:id': 'admin:users',
  // Audit trail.
  'GET /api/audit': 'audit:read',
  'GET /api/audit/export': 'audit:read',
  // Archive content over the admin REST.
  'GET /api/statistics': 'query',
  'GET /api/patients': 'query',
  'GET /api/studies': 'query',
  'GET /api/studies/:study': 'study:read',
  'GET /api/studies/:study/series': 'query',
  'GET /api/series/:series': 'study:read',
  'GET /api/series/:series/instances': 'query',
  'GET /api/instances/:sop': 'study:read',
  'GET /api/instances/:sop/file': 'study:read',
  'POST /api/instances': 'study:write',
  'DELETE /api/studies/:uid': 'study:delete',
  'DELETE /api/series/:uid': 'study:delete',
  'DELETE /api/instances/:uid': 'study:delete',
  'GET /api/quarantine': 'admin:config',
  'GET /api/quality/findings': 'admin:config',
  'GET /api/quarantine/:id': 'admin:config',
  'GET /api/quarantine/:id/file': 'admin:config',
  // DICOM configuration, peers, and operations on peers.
  'GET /api/dicom': 'admin:config',
  'GET /api/dicom/peers': 'admin:config',
  'GET /api/dicom/peers/:ae': 'admin:config',
  'PUT /api/dicom/peers/:ae': 'admin:config',
  'DELETE /api/dicom/peers/:ae': 'admin:config',
  'POST /api/dicom/peers/:ae/echo': 'admin:config',
  'POST /api/dicom/peers/:ae/find': 'query',
  'POST /api/dicom/peers/:ae/send': 'study:export',
  'POST /api/dicom/peers/:ae/retrieve': 'study:export',
  'GET /api/jobs': 'admin:config',
  'GET /api/jobs/:id': 'admin:config',
  'POST /api/jobs/:id/cancel': 'admin:config',
  'POST /api/jobs/:id/retry': 'admin:config',
  'GET /api/events/stuck': 'admin:config',
  'GET /api/events/backlog': 'admin:config',
  'POST /api/events/deliveries/:id/retry': 'admin:config',
  // DICOMweb: QIDO-RS.
  [`GET ${DW}/studies`]: 'query',
  [`GET ${DW}/series`]: 'query',
  [`GET ${DW}/instances`]: 'query',
  [`GET ${DW_STUDY}/series`]: 'query',
  [`GET ${DW_STUDY}/instances`]: 'query',
  [`GET ${DW_STUDY}/series/:series/instances`]: 'query',
  // WADO-RS, WADO-URI, rendered.
  [`GET ${DW_STUDY}`]: 'study:read',
  [`GET ${DW_STUDY}/series/:series`]: 'study:read',
  [`GET ${DW_INSTANCE}`]: 'study:read',
  [`GET ${DW_STUDY}/metadata`]: 'study:read',
  [`GET ${DW_STUDY}/series/:series/metadata`]: 'study:read',
  [`GET ${DW_INSTANCE}/metadata`]: 'study:read',
  [`GET ${DW_INSTANCE}/frames/:frames`]: 'study:read',
  [`GET ${DW_INSTANCE}/bulkdata/*`]: 'study:read',
  [`GET ${DW}/wado`]: 'study:read',
  'GET /wado': 'study:read',
  [`GET ${DW_RENDERED_INSTANCE}/rendered`]: 'study:read',
  [`GET ${DW_RENDERED_INSTANCE}/frames/:frames/rendered`]: 'study:read',
  [`GET ${DW_RENDERED_INSTANCE}/thumbnail`]: 'study:read',
  [`GET ${DW_RENDERED_INSTANCE}/frames/:frames/thumbnail`]: 'study:read',
  [`GET ${DW_STUDY}/series/:series/rendered`]: 'study:read',
  [`GET ${DW_STUDY}/rendered`]: 'study:read',
  [`GET ${DW_STUDY}/series/:series/thumbnail`]: 'study:read',
  [`GET ${DW_STUDY}/thumbnail`]: 'study:read',
  // STOW-RS.
  [`POST ${DW}/studies`]: 'study:write',
  [`POST ${DW_STUDY}`]: 'study:write',
};

/** Listings filtered in memory for principals restricted to their own studies (referring clinicians). */
const FILTERED_LISTINGS = new Set(['GET /api/studies', `GET ${DW}/studies`]);

/** The rule of a request's route, or undefined when the route is not in the table. */
export function ruleOf(method: string, url: string | undefined): RouteRule | undefined {
  if (url === undefined) return undefined;
  const m = method === 'HEAD' ? 'GET' : method;
  return ROUTE_RULES[`${m} ${url}`];
}

function routeKey(request: FastifyRequest): string {
  return `${request.method === 'HEAD' ? 'GET' : request.method} ${request.routeOptions.url ?? ''}`;
}

const AUDIT_ACTION: Partial<Record<Action, AuditAction>> = {
  'study:read': 'read', query: 'query', 'study:write': 'store', 'study:delete': 'delete', 'study:export': 'export',
};

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

function problem(reply: FastifyReply, status: number, title: string, detail: string) {
  return reply.status(status).type('application/problem+json').send({ type: 'about:blank', title, status, detail });
}

/** Whether `principal` reaches `action` only through an own-studies grant (a referring clinician). */
function ownStudiesOnly(principal: Principal, action: Action): boolean {
  if (principal.authMethod === 'security-disabled') return false;
  const grants = principal.roles.map((r) => PERMISSIONS[r]?.[action]);
  return !grants.includes('full') && grants.includes('own-studies');
}

/** The study a request names (path parameter, or WADO-URI's studyUID). */
async function studyOf(archive: Archive, request: FastifyRequest): Promise<string | null> {
  const params = (request.params ?? {}) as Record<string, string | undefined>;
  if (params.study) return params.study;
  const query = (request.query ?? {}) as Record<string, string | undefined>;
  if (request.routeOptions.url?.endsWith('/wado') && query.studyUID) return query.studyUID;
  const url = request.routeOptions.url ?? '';
  if (params.series || (params.uid && url.startsWith('/api/series/'))) {
    return (await archive.index.getSeries((params.series ?? params.uid)!))?.studyInstanceUid ?? null;
  }
  const sop = params.sop ?? params.instance ?? (url.startsWith('/api/instances/') ? params.uid : undefined);
  if (sop) return (await archive.index.findInstance(sop))?.studyInstanceUid ?? null;
  if (params.uid && url.startsWith('/api/studies/')) return params.uid;
  return null;
}

const REGISTERED = new WeakMap<FastifyInstance, string[]>();

/** `METHOD url` of every route registered after registerAccessControl (for the security matrix test). */
export function registeredRoutes(app: FastifyInstance): string[] {
  return [...(REGISTERED.get(app) ?? [])];
}

/** Pages a person navigates to (the viewer's routes and /admin), as opposed to their scripts and data. */
function isPage(url: string): boolean {
  const path = url.split('?', 1)[0];
  if (path === '/' || path === '/admin') return true;
  if (/^\/(api|dicom-web|wado|metrics|ui|login)(\/|$)/.test(path)) return false;
  return !/\.[a-z0-9]+$/i.test(path); // client-side routes such as /viewer have no file extension
}

/** Registers the access-control and audit hooks on the whole app (before any route). */
export function registerAccessControl(app: FastifyInstance, archive: Archive): void {
  const { security, audit } = archive;
  const routes: string[] = [];
  REGISTERED.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push(`${method} ${route.url}`);
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('accessStudy', null);

  app.addHook('onRequest', async (request, reply) => {
    const rule = ruleOf(request.method, request.routeOptions.url);
    // Unknown paths: 404 for anyone (the not-found handler); never a route without a rule.
    if (request.routeOptions.url === undefined) return;
    if (rule === 'public') {
      // A person opening the viewer or /admin without a session goes to the sign-in page first, rather
      // than into pages whose every data request would fail.
      if (request.method === 'GET' && isPage(request.url)) {
        const who = await security.authenticateRequest(request.headers, request.ip, { method: request.method });
        if (who instanceof AuthError && who.httpStatus === 401) return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`);
      }
      return;
    }
    if (rule === 'metrics' && LOOPBACK.test(request.ip)) return;

    const principal = await security.authenticateRequest(request.headers, request.ip, { method: request.method });
    if (principal instanceof AuthError) {
      // Credentials that were presented and refused (a wrong, expired or revoked key or token, a dead
      // session, a locked account) are a failed authentication for the trail; a request with none is not.
      if (principal.code !== 'no-credentials') {
        await audit.record({
          principal: { kind: 'anonymous', id: null }, action: 'login-failed', interface: interfaceOf(request), origin: { address: request.ip },
          outcome: 'minor-failure', outcomeReason: principal.code, detail: `${request.method} ${request.url}`,
        }).catch((error) => request.log.error({ err: error }, 'audit record failed'));
      }
      if (principal.retryAfterSeconds !== null) reply.header('retry-after', String(principal.retryAfterSeconds));
      if (principal.httpStatus === 401) reply.header('www-authenticate', 'Bearer realm="atrium"');
      const title = principal.httpStatus === 401 ? 'Unauthorized' : principal.httpStatus === 403 ? 'Forbidden'
        : principal.httpStatus === 429 ? 'Too Many Requests' : 'Service Unavailable';
      return problem(reply, principal.httpStatus, title, `${principal.message} (${principal.code})`);
    }
    request.principal = principal;
    if (rule === undefined) return problem(reply, 403, 'Forbidden', `no access rule for ${routeKey(request)}: denied by default`);
    if (rule === 'authenticated') return;
    const action: Action = rule === 'metrics' ? 'admin:config' : rule;

    let decision = authorize(principal, action, { route: request.url });
    const studyAction = action.startsWith('study:') || action === 'query';
    if (studyAction && ownStudiesOnly(principal, action) && (decision.allowed || /own studies|no study was given/.test(decision.reason))) {
      // Own-studies grants: the study named by the request must be the principal's; unnamed only for filtered listings.
      const uid = await studyOf(archive, request);
      if (uid !== null) {
        const record = await archive.index.getStudy(uid);
        request.accessStudy = { uid, record };
        const study = { studyInstanceUid: uid, referringPhysicianName: record?.referringPhysicianName ?? null };
        decision = authorize(principal, action, { route: request.url, study });
        // The policy allows own-studies queries unconditionally (results are to be filtered): a query
        // inside one study (its series, its instances) is allowed only when the study is theirs.
        if (decision.allowed && action === 'query' && !studyMatchesFilter(studyFilter(principal), study)) {
          decision = { allowed: false, reason: `${principal.name} is not the referring physician of study ${uid}` };
        }
      } else if (!(action === 'query' && FILTERED_LISTINGS.has(routeKey(request)))) {
        decision = { allowed: false, reason: `${principal.name} may ${action} only studies of their own, and this request names no study` };
      }
    }
    if (!decision.allowed) {
      const auditAction = AUDIT_ACTION[action];
      if (auditAction) {
        await audit.record({
          principal: auditPrincipal(principal), action: auditAction, interface: interfaceOf(request), origin: { address: request.ip },
          query: request.url, outcome: 'minor-failure', outcomeReason: `denied: ${decision.reason}`,
        }).catch((error) => request.log.error({ err: error }, 'audit record failed'));
      }
      return problem(reply, 403, 'Forbidden', decision.reason);
    }
    // Deletions: the study is resolved before it is gone, for the audit record.
    if (action === 'study:delete' && !request.accessStudy) {
      const uid = await studyOf(archive, request);
      if (uid) request.accessStudy = { uid, record: await archive.index.getStudy(uid) };
    }
  });

  // Listings restricted to the principal's own studies: filtered in memory after the query (the page may
  // hold fewer items than asked; `total` is the filtered page's count).
  app.addHook('preSerialization', async (request, _reply, payload: unknown) => {
    const p = request.principal;
    if (!p || routeKey(request) !== 'GET /api/studies') return payload;
    const filter = studyFilter(p);
    if (filter.kind === 'all') return payload;
    const paged = payload as { items?: { referringPhysicianName: string | null }[]; total?: number };
    if (!Array.isArray(paged.items)) return payload;
    const items = paged.items.filter((s) => studyMatchesFilter(filter, s));
    return { ...paged, items, total: items.length };
  });

  app.addHook('onResponse', async (request, reply) => {
    const principal = request.principal;
    const rule = ruleOf(request.method, request.routeOptions.url);
    if (!principal || rule === undefined || rule === 'public' || rule === 'authenticated' || rule === 'metrics') return;
    const action = AUDIT_ACTION[rule];
    if (!action || reply.statusCode === 401 || reply.statusCode === 403) return; // denials were recorded by onRequest
    // STOW-RS and POST /api/instances record what they stored themselves (they know the studies).
    if (action === 'store') return;
    try {
      const outcome = reply.statusCode < 400 ? 'success' as const : reply.statusCode < 500 ? 'minor-failure' as const : 'serious-failure' as const;
      const base = {
        principal: auditPrincipal(principal), interface: interfaceOf(request), origin: { address: request.ip }, outcome,
        ...(outcome === 'success' ? {} : { outcomeReason: `HTTP ${reply.statusCode}` }),
      };
      if (action === 'query') {
        await audit.record({ ...base, action, query: request.url });
        return;
      }
      const body = (request.body ?? {}) as { studyInstanceUid?: unknown };
      const uid = request.accessStudy?.uid ?? (action === 'read' ? await studyOf(archive, request)
        : action === 'export' && typeof body.studyInstanceUid === 'string' ? body.studyInstanceUid : null);
      if (action === 'read' && uid) {
        const record = request.accessStudy?.record ?? await archive.index.getStudy(uid);
        await audit.auditOncePerStudy(base.principal, 'read', uid, undefined, {
          ...base, study: { patientId: record?.patient.patientId ?? null, accessionNumber: record?.accessionNumber ?? null },
        });
        return;
      }
      const studies: AuditStudyRef[] = uid
        ? [{ studyInstanceUid: uid, patientId: request.accessStudy?.record?.patient.patientId ?? null, accessionNumber: request.accessStudy?.record?.accessionNumber ?? null }]
        : [];
      const params = (request.params ?? {}) as Record<string, string>;
      await audit.record({
        ...base, action, studies, detail: `${request.method} ${request.url}`,
        ...(action === 'export' && params.ae ? { destination: { aeTitle: params.ae } } : {}),
        ...(action === 'export' && !uid && request.body ? { query: JSON.stringify(request.body) } : {}),
      });
    } catch (error) {
      request.log.error({ err: error }, 'audit record failed');
    }
  });
}

export type { StudyFilter };
