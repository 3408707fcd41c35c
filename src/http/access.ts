/**
 * Access control and audit of the HTTP transport (admin REST, DICOMweb, UI): one `onRequest` hook
 * authenticates the caller (SecurityService.authenticateRequest) and authorizes the route's action
 * (policy.ts `authorize`), one `onResponse` hook records patient-data access in the audit trail.
 * Every route has a rule in the table of its area (declared next to its routes, e.g.
 * src/dicomweb/access-rules.ts, or by its module: AtriumModule.routeRules), composed here into one table
 * (composeRouteRules: a route declared twice throws). Deny by default: a route with no rule answers 403,
 * and the security matrix test (src/http/security-matrix.test.ts) fails when a registered route has none
 * or a rule names no registered route.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../app.ts';
import type { AuditAction, AuditStudyRef } from '../ports/audit-store.ts';
import { auditPrincipal } from '../audit/audit-service.ts';
import { interfaceOf } from '../audit/http-request-audit.ts';
import type { StudyRecord } from '../ports/index-store.ts';
import { isLocalRequest } from './client-address.ts';
import { acceptsHtml, sendNoticePage } from './page.ts';
import type { AtriumModule } from '../modules/module.ts';
import { DICOMWEB_PREFIX } from '../dicomweb/context.ts';
import {
  ACTIONS, AuthError, PERMISSIONS, authorize, studyFilter, studyMatchesFilter,
  type Action, type Principal, type RouteRule, type RouteRules, type StudyFilter,
} from '../security/index.ts';

declare module 'fastify' {
  /**
   * What a route tells the access hooks about itself (`app.get(url, { config: { ... } }, handler)`):
   * - `page`: a page a person opens in a browser. A browser's request (Accept: text/html) without a valid
   *   session goes to the sign-in page and back, a refusal is an HTML page; API clients still get 401/403.
   * - `checksOwnStudies`: the route decides an own-studies grant (a referring clinician's) itself, study by
   *   study, because the studies it concerns are not in its path (the viewer launch by patient ID).
   * - `auditsItself`: the route writes its own audit records; the response hook writes none.
   */
  interface FastifyContextConfig {
    page?: boolean;
    checksOwnStudies?: boolean;
    auditsItself?: boolean;
  }
  interface FastifyRequest {
    /** The authenticated caller; null on public routes. */
    principal: Principal | null;
    /** The study the request is about, when the route names one (resolved for checks and the audit). */
    accessStudy: { uid: string; record: StudyRecord | null } | null;
    /**
     * What a query route answered, when its handler knows (the patients and studies of a FHIR search):
     * added to the `query` record the onResponse hook writes, so the trail can be searched by patient.
     */
    auditSubject: { patientIds?: string[]; studies?: AuditStudyRef[] } | null;
  }
}

/** One area's rules, named for the error that a rule declared twice raises. */
export interface RouteRuleTable {
  /** Where the rules are declared: a file (`http/admin/routes.ts`) or `module <name>`. */
  source: string;
  rules: RouteRules;
}

const ROUTE_KEY = /^(GET|POST|PUT|PATCH|DELETE|OPTIONS) \/\S*$/;
const RULE_NAMES = new Set<string>(['public', 'authenticated', 'metrics', ...ACTIONS]);

/**
 * The one table of every route's rule, from the tables of the areas (http/server.ts lists the core ones)
 * and of the installed modules. Throws, naming the route and both sources, when two tables declare the
 * same route (neither may silently win), and on a key that is not `METHOD /path` (HEAD follows GET) or a rule that is no RouteRule.
 */
export function composeRouteRules(tables: readonly RouteRuleTable[]): RouteRules {
  const rules: Record<string, RouteRule> = {};
  const sources = new Map<string, string>();
  for (const { source, rules: table } of tables) {
    for (const [key, rule] of Object.entries(table)) {
      if (!ROUTE_KEY.test(key)) {
        throw new Error(`access rule '${key}' of ${source} is not 'METHOD /path' (GET, POST, PUT, PATCH, DELETE or OPTIONS; HEAD follows GET)`);
      }
      if (!RULE_NAMES.has(rule)) throw new Error(`access rule '${key}' of ${source} is '${rule}', neither public, authenticated, metrics nor an action`);
      const earlier = sources.get(key);
      if (earlier !== undefined) throw new Error(`access rule for route '${key}' is declared twice: by ${earlier} and by ${source}`);
      sources.set(key, source);
      rules[key] = rule;
    }
  }
  return Object.freeze(rules);
}

/** The rule tables the modules declare (AtriumModule.routeRules), one per module that has any. */
export function moduleRouteRules(modules: readonly AtriumModule[]): RouteRuleTable[] {
  return modules.flatMap((m) => m.routeRules ? [{ source: `module ${m.name}`, rules: m.routeRules }] : []);
}

/**
 * Listings filtered for principals restricted to their own studies (referring clinicians): the core's,
 * filtered in memory; the modules' (AtriumModule.ownStudiesListings) filter themselves.
 */
const FILTERED_LISTINGS: readonly string[] = ['GET /api/studies', `GET ${DICOMWEB_PREFIX}/studies`];

/** The core's filtered listings and those the modules declare. */
export function ownStudiesListings(modules: readonly AtriumModule[]): Set<string> {
  return new Set([...FILTERED_LISTINGS, ...modules.flatMap((m) => m.ownStudiesListings ?? [])]);
}

/** The rule of a request's route in `rules`, or undefined when the route is not in the table. */
export function ruleOf(rules: RouteRules, method: string, url: string | undefined): RouteRule | undefined {
  if (url === undefined) return undefined;
  const m = method === 'HEAD' ? 'GET' : method;
  return Object.hasOwn(rules, `${m} ${url}`) ? rules[`${m} ${url}`] : undefined;
}

function routeKey(request: FastifyRequest): string {
  return `${request.method === 'HEAD' ? 'GET' : request.method} ${request.routeOptions.url ?? ''}`;
}

const AUDIT_ACTION: Partial<Record<Action, AuditAction>> = {
  'study:read': 'read', query: 'query', 'study:write': 'store', 'study:delete': 'delete', 'study:export': 'export',
};

function problem(reply: FastifyReply, status: number, title: string, detail: string) {
  return reply.status(status).type('application/problem+json').send({ type: 'about:blank', title, status, detail });
}

/** A page route opened by a browser: its refusals are pages too. */
function browserPage(request: FastifyRequest): boolean {
  return request.method === 'GET' && request.routeOptions.config?.page === true && acceptsHtml(request);
}

function signInRedirect(request: FastifyRequest, reply: FastifyReply) {
  return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`);
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
const RULES = new WeakMap<FastifyInstance, RouteRules>();

/** `METHOD url` of every route registered after registerAccessControl (for the security matrix test). */
export function registeredRoutes(app: FastifyInstance): string[] {
  return [...(REGISTERED.get(app) ?? [])];
}

/** The composed rules `app` enforces (core tables and the modules'), for the security matrix test. */
export function routeRulesOf(app: FastifyInstance): RouteRules {
  const rules = RULES.get(app);
  if (!rules) throw new Error('registerAccessControl was not called on this app');
  return rules;
}

/** Pages a person navigates to (the viewer's routes and /admin), as opposed to their scripts and data. */
function isPage(url: string): boolean {
  const path = url.split('?', 1)[0];
  if (path === '/' || path === '/admin') return true;
  if (/^\/(api|dicom-web|wado|metrics|ui|login|fhir)(\/|$)/.test(path)) return false;
  return !/\.[a-z0-9]+$/i.test(path); // client-side routes such as /viewer have no file extension
}

/**
 * Registers the access-control and audit hooks on the whole app (before any route). The rules are the
 * `core` tables (the areas http/server.ts registers) plus those of the archive's modules
 * (`archive.modules`), composed once here: a route declared twice fails the server's start.
 */
export function registerAccessControl(app: FastifyInstance, archive: Archive, core: readonly RouteRuleTable[]): RouteRules {
  const { security, audit } = archive;
  const rules = composeRouteRules([...core, ...moduleRouteRules(archive.modules)]);
  const filteredListings = ownStudiesListings(archive.modules);
  for (const key of filteredListings) if (!Object.hasOwn(rules, key)) throw new Error(`own-studies listing '${key}' has no access rule`);
  RULES.set(app, rules);
  const routes: string[] = [];
  REGISTERED.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push(`${method} ${route.url}`);
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('accessStudy', null);
  app.decorateRequest('auditSubject', null);

  app.addHook('onRequest', async (request, reply) => {
    const rule = ruleOf(rules, request.method, request.routeOptions.url);
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
    if (rule === 'metrics' && isLocalRequest(request)) return;

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
      // A person opening a page (the viewer launch) signs in first, then lands where they were going.
      if (principal.httpStatus === 401 && browserPage(request)) return signInRedirect(request, reply);
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
    const checkedByRoute = request.routeOptions.config?.checksOwnStudies === true;
    if (studyAction && checkedByRoute && ownStudiesOnly(principal, action) && /no study was given/.test(decision.reason)) {
      // The route resolves its studies and authorizes each (the viewer launch by patient ID).
      decision = { allowed: true, reason: `${decision.reason}: the route checks each study` };
    } else if (studyAction && !checkedByRoute && ownStudiesOnly(principal, action) && (decision.allowed || /own studies|no study was given/.test(decision.reason))) {
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
      } else if (!(action === 'query' && filteredListings.has(routeKey(request)))) {
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
      if (browserPage(request)) {
        return sendNoticePage(reply, { status: 403, title: 'Not allowed', message: 'Your account is not allowed to open this page. Ask an administrator for a role that grants it.', details: [decision.reason] });
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
    const rule = ruleOf(rules, request.method, request.routeOptions.url);
    if (!principal || rule === undefined || rule === 'public' || rule === 'authenticated' || rule === 'metrics') return;
    if (request.routeOptions.config?.auditsItself) return;
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
        await audit.record({ ...base, action, query: request.url, ...(request.auditSubject ?? {}) });
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
  return rules;
}

export type { RouteRule, RouteRules, StudyFilter };
