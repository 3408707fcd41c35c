/** The one policy: every role x every action (a table), deny by default, route scopes, the referring-clinician rule. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authorize, grantedActions, studyFilter, studyMatchesFilter, routeAllowed, normalizePersonName, matchesPersonNames } from './policy.ts';
import { ACTIONS, ROLES, type Action, type Principal, type Role } from './types.ts';

function principal(roles: Role[], extra: Partial<Principal> = {}): Principal {
  return { kind: 'user', id: '1', name: 'u', roles, authMethod: 'session', sourceAddress: '10.0.0.1', routePrefixes: null, personNames: [], ...extra };
}

// Y: allowed; -: denied; O: own studies only (referring clinician: allowed on their study, denied on another).
const MATRIX: Record<Role, Record<Action, 'Y' | '-' | 'O'>> = {
  administrator:       { 'study:read': 'Y', 'study:read-deidentified': 'Y', 'study:write': 'Y', 'study:delete': 'Y', 'study:export': 'Y', query: 'Y', 'admin:config': 'Y', 'admin:users': 'Y', 'audit:read': 'Y', 'order:read': 'Y', 'order:write': 'Y', 'dose:read': 'Y', 'dose:write': 'Y', 'integrity:read': 'Y', 'integrity:write': 'Y', 'reading:read': 'Y', 'reading:claim': 'Y', 'reading:release': 'Y', 'sla:write': 'Y', 'critical:ack': 'Y', 'prefetch:read': 'Y', 'prefetch:write': 'Y', 'corrections:write': 'Y', 'rules:read': 'Y', 'rules:write': 'Y', 'ai:read': 'Y', 'ai:write': 'Y', 'ai:review': 'Y' },
  radiologist:         { 'study:read': 'Y', 'study:read-deidentified': '-', 'study:write': 'Y', 'study:delete': '-', 'study:export': 'Y', query: 'Y', 'admin:config': '-', 'admin:users': '-', 'audit:read': '-', 'order:read': 'Y', 'order:write': '-', 'dose:read': 'Y', 'dose:write': '-', 'integrity:read': 'Y', 'integrity:write': '-', 'reading:read': 'Y', 'reading:claim': 'Y', 'reading:release': '-', 'sla:write': '-', 'critical:ack': 'Y', 'prefetch:read': 'Y', 'prefetch:write': '-', 'corrections:write': '-', 'rules:read': '-', 'rules:write': '-', 'ai:read': 'Y', 'ai:write': '-', 'ai:review': 'Y' },
  technologist:        { 'study:read': 'Y', 'study:read-deidentified': '-', 'study:write': 'Y', 'study:delete': '-', 'study:export': 'Y', query: 'Y', 'admin:config': '-', 'admin:users': '-', 'audit:read': '-', 'order:read': 'Y', 'order:write': 'Y', 'dose:read': 'Y', 'dose:write': '-', 'integrity:read': 'Y', 'integrity:write': 'Y', 'reading:read': '-', 'reading:claim': '-', 'reading:release': '-', 'sla:write': '-', 'critical:ack': '-', 'prefetch:read': 'Y', 'prefetch:write': '-', 'corrections:write': '-', 'rules:read': '-', 'rules:write': '-', 'ai:read': '-', 'ai:write': '-', 'ai:review': '-' },
  'referring-clinician': { 'study:read': 'O', 'study:read-deidentified': '-', 'study:write': '-', 'study:delete': '-', 'study:export': '-', query: 'O', 'admin:config': '-', 'admin:users': '-', 'audit:read': '-', 'order:read': '-', 'order:write': '-', 'dose:read': '-', 'dose:write': '-', 'integrity:read': '-', 'integrity:write': '-', 'reading:read': '-', 'reading:claim': '-', 'reading:release': '-', 'sla:write': '-', 'critical:ack': 'Y', 'prefetch:read': '-', 'prefetch:write': '-', 'corrections:write': '-', 'rules:read': '-', 'rules:write': '-', 'ai:read': '-', 'ai:write': '-', 'ai:review': '-' },
  researcher:          { 'study:read': '-', 'study:read-deidentified': 'Y', 'study:write': '-', 'study:delete': '-', 'study:export': '-', query: '-', 'admin:config': '-', 'admin:users': '-', 'audit:read': '-', 'order:read': '-', 'order:write': '-', 'dose:read': '-', 'dose:write': '-', 'integrity:read': '-', 'integrity:write': '-', 'reading:read': '-', 'reading:claim': '-', 'reading:release': '-', 'sla:write': '-', 'critical:ack': '-', 'prefetch:read': '-', 'prefetch:write': '-', 'corrections:write': '-', 'rules:read': '-', 'rules:write': '-', 'ai:read': '-', 'ai:write': '-', 'ai:review': '-' },
  integration:         { 'study:read': 'Y', 'study:read-deidentified': '-', 'study:write': 'Y', 'study:delete': '-', 'study:export': '-', query: 'Y', 'admin:config': '-', 'admin:users': '-', 'audit:read': '-', 'order:read': 'Y', 'order:write': 'Y', 'dose:read': '-', 'dose:write': '-', 'integrity:read': '-', 'integrity:write': '-', 'reading:read': '-', 'reading:claim': '-', 'reading:release': '-', 'sla:write': '-', 'critical:ack': '-', 'prefetch:read': '-', 'prefetch:write': '-', 'corrections:write': '-', 'rules:read': '-', 'rules:write': '-', 'ai:read': '-', 'ai:write': '-', 'ai:review': '-' },
};

const own = { study: { studyInstanceUid: '1.2.3', referringPhysicianName: 'Doe^Jane^^' } };
const other = { study: { studyInstanceUid: '1.2.4', referringPhysicianName: 'ROE^RICHARD' } };

test('every role x every action gives the expected decision (with the study as resource)', () => {
  assert.deepEqual(Object.keys(MATRIX).sort(), [...ROLES].sort());
  for (const role of ROLES) {
    const p = principal([role], { personNames: ['DOE^JANE'] });
    for (const action of ACTIONS) {
      const expected = MATRIX[role][action];
      const onOwn = authorize(p, action, own);
      const onOther = authorize(p, action, other);
      assert.equal(onOwn.allowed, expected !== '-', `${role} ${action} on own study: ${onOwn.reason}`);
      assert.equal(onOther.allowed, expected === 'Y' || (expected === 'O' && action === 'query'), `${role} ${action} on another study: ${onOther.reason}`);
      assert.ok(onOwn.reason.length > 0);
    }
  }
});

test('deny by default: unknown actions, no roles, anonymous; security disabled allows everything', () => {
  const admin = principal(['administrator']);
  assert.deepEqual(authorize(admin, 'study:frobnicate'), { allowed: false, reason: 'unknown action "study:frobnicate": denied by default' });
  assert.equal(authorize(principal([]), 'study:read').allowed, false);
  assert.match(authorize(principal([]), 'query').reason, /has no role/);
  const anon: Principal = { kind: 'anonymous', id: '', name: 'anonymous', roles: [], authMethod: 'none', sourceAddress: null, routePrefixes: null, personNames: [] };
  for (const action of ACTIONS) assert.equal(authorize(anon, action).allowed, false);
  const disabled: Principal = { ...anon, roles: ['administrator'], authMethod: 'security-disabled' };
  assert.equal(authorize(disabled, 'study:delete').allowed, true);
  assert.deepEqual(studyFilter(disabled), { kind: 'all' });
});

test('roles combine: the widest grant wins', () => {
  const both = principal(['referring-clinician', 'radiologist'], { personNames: ['DOE^JANE'] });
  assert.equal(authorize(both, 'study:read', other).allowed, true);
  assert.deepEqual(studyFilter(both), { kind: 'all' });
  assert.equal(authorize(principal(['researcher', 'technologist']), 'study:delete').allowed, false);
});

test('a referring clinician needs the study described, and a person name', () => {
  const rc = principal(['referring-clinician'], { personNames: ['Doe^Jane'] });
  assert.equal(authorize(rc, 'study:read').allowed, false);
  assert.match(authorize(rc, 'study:read').reason, /no study was given/);
  assert.equal(authorize(rc, 'study:read', { study: { referringPhysicianName: null } }).allowed, false);
  assert.equal(authorize(rc, 'study:read', { study: { referringPhysicianName: 'SMITH^A\\doe^jane' } }).allowed, true, 'multi-valued PN');
  assert.equal(authorize(rc, 'study:read', { study: { referringPhysicianName: 'Doe^Jane=ドウ^ジェーン' } }).allowed, true, 'alphabetic group');
  assert.equal(authorize(rc, 'study:read', { study: { referringPhysicianName: 'Doe^Janet' } }).allowed, false);

  const filter = studyFilter(rc);
  assert.deepEqual(filter, { kind: 'referring-physician', personNames: ['Doe^Jane'], normalizedPersonNames: ['DOE^JANE'] });
  assert.equal(studyMatchesFilter(filter, { referringPhysicianName: 'DOE^JANE^^^' }), true);
  assert.equal(studyMatchesFilter(filter, { referringPhysicianName: 'ROE^RICHARD' }), false);
  assert.equal(studyMatchesFilter(filter, { referringPhysicianName: null }), false);

  const nameless = studyFilter(principal(['referring-clinician']));
  assert.equal(nameless.kind, 'none');
  assert.equal(studyMatchesFilter(nameless, { referringPhysicianName: 'DOE^JANE' }), false);
  assert.equal(studyFilter(principal(['researcher'])).kind, 'none');
  assert.deepEqual(studyFilter(principal(['technologist'])), { kind: 'all' });
});

test('route-scoped API keys: only their prefixes, and never without a route', () => {
  const key = principal(['integration'], { kind: 'api-key', authMethod: 'api-key', routePrefixes: ['/dicomweb/studies', '/api/ai/'] });
  assert.equal(authorize(key, 'study:read', { route: '/dicomweb/studies/1.2.3/series?x=1' }).allowed, true);
  assert.equal(authorize(key, 'study:read', { route: '/dicomweb/studies' }).allowed, true);
  assert.equal(authorize(key, 'study:write', { route: '/api/ai/results' }).allowed, true);
  assert.equal(authorize(key, 'study:read', { route: '/dicomweb/studiesX' }).allowed, false);
  assert.equal(authorize(key, 'study:read', { route: '/dicomweb/studies/../../api/users' }).allowed, false);
  assert.equal(authorize(key, 'study:read', { route: '/dicomweb/studies/%2e%2e/%2e%2e/api/users' }).allowed, false);
  assert.equal(authorize(key, 'study:read').allowed, false);
  assert.equal(authorize(key, 'study:delete', { route: '/dicomweb/studies/1' }).allowed, false, 'the route does not widen the roles');
  assert.equal(routeAllowed({ routePrefixes: null }, '/anything'), true);
});

test('person names compare on the alphabetic group, case- and padding-insensitively', () => {
  assert.equal(normalizePersonName(' doe ^ jane ^^ '), 'DOE^JANE');
  assert.equal(normalizePersonName('Doe^Jane=Ideographic'), 'DOE^JANE');
  assert.equal(matchesPersonNames('', ['']), false);
});

test('grantedActions: every action a role grants, own-studies grants included; all when security is disabled', () => {
  for (const role of ROLES) {
    const expected = ACTIONS.filter((action) => MATRIX[role][action] !== '-');
    assert.deepEqual(grantedActions(principal([role])), expected, role);
  }
  assert.deepEqual(grantedActions(principal(['referring-clinician', 'researcher'])), ['study:read', 'study:read-deidentified', 'query', 'critical:ack']);
  assert.deepEqual(grantedActions(principal([])), []);
  assert.deepEqual(grantedActions(principal([], { authMethod: 'security-disabled' })), [...ACTIONS]);
});
