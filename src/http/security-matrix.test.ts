/**
 * The route-by-role matrix: every route the HTTP server registers has a rule in the composed access table
 * (the areas' tables of http/server.ts CORE_ROUTE_RULES and the modules' routeRules, composed by
 * src/http/access.ts), every rule names a registered route, and each route is called without
 * credentials, with a revoked key, and with an API key of each role; the status must be exactly what the
 * policy says: 401 without (valid) credentials, 403 when the role does not grant the route's action,
 * anything but 401/403 otherwise. A module's rules are composed and enforced with the core tables.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { createHttpServer } from './server.ts';
import { ownStudiesListings, registeredRoutes, routeRulesOf, ruleOf } from './access.ts';
import { MODULES } from '../app.ts';
import { FHIR_ROUTE_RULES } from '../fhir/routes.ts';
import type { AtriumModule } from '../modules/module.ts';
import { PERMISSIONS, ROLES, type Action, type Role } from '../security/index.ts';

let t: TestArchive;
let app: FastifyInstance;
const keys = new Map<Role, string>();
let revoked: string;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  app = await createHttpServer(t.archive);
  await app.ready();
  for (const role of ROLES) keys.set(role, (await t.archive.security.createApiKey({ name: `matrix ${role}`, roles: [role] })).key);
  const r = await t.archive.security.createApiKey({ name: 'revoked', roles: ['administrator'] });
  await t.archive.security.revokeApiKey(r.apiKey.keyId);
  revoked = r.key;
});

after(async () => {
  await app?.close();
  await t?.cleanup();
});

// The core's study listings and the modules' own-studies listings (FHIR searches): a referring clinician
// may call them, and gets only their own studies' data.
const LISTINGS_FILTERED = ownStudiesListings(MODULES);
/** Routes that decide own-studies grants themselves, study by study (config.checksOwnStudies): the viewer launch. */
const OWN_STUDIES_CHECKED_BY_ROUTE = new Set(['GET /launch']);

function concrete(url: string): string {
  return url
    .replace(/:(study|series|sop|instance|uid)\b/g, '1.2.826.0.1.3680043.99.1')
    .replace(/:frames\b/g, '1').replace(/:ae\b/g, 'NOPE').replace(/:id\b/g, '999999').replace(/\*$/, 'x');
}

/** What a role may get on a route: 'ok' (not 401/403) or 403. */
function expectedFor(role: Role, key: string, rule: string): 'ok' | 403 {
  if (rule === 'public' || rule === 'authenticated') return 'ok';
  const action = (rule === 'metrics' ? 'admin:config' : rule) as Action;
  const grant = PERMISSIONS[role][action];
  if (grant === 'full') return 'ok';
  if (grant === 'own-studies' && action === 'query' && LISTINGS_FILTERED.has(key)) return 'ok';
  if (grant === 'own-studies' && OWN_STUDIES_CHECKED_BY_ROUTE.has(key)) return 'ok'; // its own refusals are tested with it (launch.test.ts)
  return 403; // own-studies on a study that is not theirs (it does not exist), or no grant
}

test('every registered route has an access rule, and every rule a route', () => {
  const routes = registeredRoutes(app);
  const rules = routeRulesOf(app);
  assert.ok(routes.length > 50, `only ${routes.length} routes seen`);
  const missing = routes.filter((r) => { const [m, u] = r.split(' '); return ruleOf(rules, m, u) === undefined; });
  assert.deepEqual(missing, [], 'routes without an access rule (add it to the table of their area, or their module\'s routeRules)');
  const unused = Object.keys(rules).filter((k) => !routes.includes(k));
  assert.deepEqual(unused, [], 'rules without a route');
  // The FHIR server's routes (src/fhir/routes.ts) are all here, so the matrix below calls each of them.
  assert.deepEqual(Object.keys(FHIR_ROUTE_RULES).filter((k) => !routes.includes(k)), []);
});

test('each route x (no credentials, revoked key, each role) answers as the policy says', async () => {
  const failures: string[] = [];
  const routes = registeredRoutes(app).filter((r) => !r.startsWith('HEAD '));
  const rules = routeRulesOf(app);
  for (const route of routes) {
    const [method, url] = route.split(' ');
    const rule = ruleOf(rules, method, url)!;
    const path = concrete(url);
    const call = async (authorization?: string) => (await app.inject({
      method: method as 'GET', url: path, headers: authorization ? { authorization: `Bearer ${authorization}` } : {},
      ...(method === 'POST' || method === 'PUT' || method === 'PATCH' ? { payload: {} } : {}),
    })).statusCode;
    const anonymous = await call();
    const publicRule = rule === 'public' || rule === 'metrics'; // metrics: public from the loopback (inject is 127.0.0.1)
    if (publicRule ? anonymous === 401 : anonymous !== 401) failures.push(`${route} anonymous: ${anonymous}`);
    if (!publicRule) {
      const r = await call(revoked);
      if (r !== 401) failures.push(`${route} revoked key: ${r}`);
    }
    if (rule === 'public') continue;
    for (const role of ROLES) {
      const status = await call(keys.get(role));
      const expected = rule === 'metrics' ? 'ok' : expectedFor(role, route, rule);
      const ok = expected === 'ok' ? status !== 401 && status !== 403 : status === expected;
      if (!ok) failures.push(`${route} ${role}: ${status}, expected ${expected === 'ok' ? 'not 401/403' : expected}`);
    }
  }
  assert.deepEqual(failures, []);
});

test('401 is problem+json with WWW-Authenticate; 403 says why', async () => {
  const anonymous = await app.inject({ method: 'GET', url: '/api/studies' });
  assert.equal(anonymous.statusCode, 401);
  assert.match(String(anonymous.headers['www-authenticate']), /^Bearer/);
  assert.match(String(anonymous.headers['content-type']), /application\/problem\+json/);
  const researcher = await app.inject({ method: 'GET', url: '/api/studies', headers: { authorization: `Bearer ${keys.get('researcher')}` } });
  assert.equal(researcher.statusCode, 403);
  assert.match(researcher.json().detail, /grants query/);
});

test('denied and allowed patient-data requests are in the audit trail', async () => {
  await app.inject({ method: 'GET', url: '/dicom-web/studies?PatientID=X', headers: { authorization: `Bearer ${keys.get('radiologist')}` } });
  await t.archive.audit.drain();
  const { items } = await t.archive.audit.search({ action: 'query' }, { limit: 100, offset: 0 });
  assert.ok(items.some((r) => r.query?.includes('PatientID=X') && r.outcome === 'success' && r.interface === 'dicomweb'));
  assert.ok(items.some((r) => r.outcome === 'minor-failure' && r.outcomeReason?.startsWith('denied')));
});

test('a module\'s routes and routeRules are installed with the core\'s; a route it declares twice fails the start', async () => {
  const reports: AtriumModule = {
    name: 'reports',
    routeRules: { 'GET /api/reports': 'study:read', 'POST /api/reports': 'admin:config' },
    async httpRoutes(app) {
      app.get('/api/reports', async () => ({ items: [] }));
      app.post('/api/reports', async () => ({ ok: true }));
      app.get('/api/reports/unruled', async () => ({ leaked: true }));
    },
  };
  const server = await createHttpServer({ ...t.archive, modules: [...MODULES, reports] });
  try {
    await server.ready();
    assert.ok(registeredRoutes(server).includes('GET /api/reports'), 'the module registered its routes through the contract');
    assert.equal(ruleOf(routeRulesOf(server), 'GET', '/api/reports'), 'study:read');
    assert.equal(ruleOf(routeRulesOf(server), 'GET', '/api/studies'), 'query', 'the core rules are still there');
    const as = async (role: Role, method: 'GET' | 'POST', url: string) => (await server.inject({
      method, url, headers: { authorization: `Bearer ${keys.get(role)}` }, ...(method === 'POST' ? { payload: {} } : {}),
    })).statusCode;
    assert.equal((await server.inject({ method: 'GET', url: '/api/reports' })).statusCode, 401);
    assert.equal(await as('radiologist', 'GET', '/api/reports'), 200);
    assert.equal(await as('researcher', 'GET', '/api/reports'), 403);
    assert.equal(await as('radiologist', 'POST', '/api/reports'), 403);
    assert.equal(await as('administrator', 'POST', '/api/reports'), 200);
    // Deny by default still holds for a route the module registered without a rule.
    assert.equal(await as('administrator', 'GET', '/api/reports/unruled'), 403);
  } finally {
    await server.close();
  }

  const greedy: AtriumModule = { name: 'greedy', routeRules: { 'GET /api/studies': 'public' } };
  await assert.rejects(createHttpServer({ ...t.archive, modules: [...MODULES, greedy] }),
    /'GET \/api\/studies' is declared twice: by http\/admin\/routes\.ts and by module greedy/);
});
