/** Composition of the access rules tables (src/http/access.ts): every area's and module's rules, one table, no route declared twice. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { composeRouteRules, moduleRouteRules, ruleOf } from './access.ts';
import { CORE_ROUTE_RULES } from './server.ts';
import type { RouteRules } from '../security/index.ts';

test('composing tables joins their rules; HEAD follows GET; an unknown route has no rule', () => {
  const rules = composeRouteRules([
    { source: 'a.ts', rules: { 'GET /a': 'public', 'POST /a': 'study:write' } },
    { source: 'b.ts', rules: { 'GET /b/:id': 'query' } },
  ]);
  assert.deepEqual(rules, { 'GET /a': 'public', 'POST /a': 'study:write', 'GET /b/:id': 'query' });
  assert.equal(ruleOf(rules, 'HEAD', '/b/:id'), 'query');
  assert.equal(ruleOf(rules, 'DELETE', '/a'), undefined);
  assert.equal(ruleOf(rules, 'GET', undefined), undefined);
  assert.equal(ruleOf(rules, 'GET', '/toString'), undefined);
  assert.ok(Object.isFrozen(rules));
});

test('two tables with the same route throw, naming the route and both tables', () => {
  assert.throws(() => composeRouteRules([
    { source: 'dicomweb/access-rules.ts', rules: { 'GET /dicom-web/studies': 'query' } },
    { source: 'module ris', rules: { 'GET /api/ris/orders': 'query', 'GET /dicom-web/studies': 'public' } },
  ]), { message: "access rule for route 'GET /dicom-web/studies' is declared twice: by dicomweb/access-rules.ts and by module ris" });
  // The same rule twice is a duplicate too: no table silently owns another area's route.
  assert.throws(() => composeRouteRules([
    { source: 'a.ts', rules: { 'GET /a': 'public' } }, { source: 'b.ts', rules: { 'GET /a': 'public' } },
  ]), /'GET \/a' is declared twice/);
});

test('a key that is not METHOD /path, or a rule that is no RouteRule, throws', () => {
  assert.throws(() => composeRouteRules([{ source: 'a.ts', rules: { 'HEAD /a': 'public' } }]), /'HEAD \/a' of a\.ts is not 'METHOD \/path'/);
  assert.throws(() => composeRouteRules([{ source: 'a.ts', rules: { 'GET a': 'public' } }]), /not 'METHOD \/path'/);
  assert.throws(() => composeRouteRules([{ source: 'a.ts', rules: { 'GET /a': 'everyone' } as unknown as RouteRules }]), /'GET \/a' of a\.ts is 'everyone'/);
});

test('modules contribute one table each, named after the module', () => {
  const tables = moduleRouteRules([
    { name: 'ris', routeRules: { 'GET /api/ris/orders': 'query' } }, { name: 'quiet' },
  ]);
  assert.deepEqual(tables, [{ source: 'module ris', rules: { 'GET /api/ris/orders': 'query' } }]);
});

test('the core tables compose without a duplicate and keep deny-by-default for what they omit', () => {
  const rules = composeRouteRules(CORE_ROUTE_RULES);
  assert.equal(ruleOf(rules, 'GET', '/metrics'), 'metrics');
  assert.equal(ruleOf(rules, 'OPTIONS', '/dicom-web/*'), 'public');
  assert.equal(ruleOf(rules, 'GET', '/api/audit'), 'audit:read');
  assert.equal(ruleOf(rules, 'DELETE', '/api/health'), undefined);
});
