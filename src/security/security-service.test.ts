/**
 * The security service on SQLite and on real PostgreSQL: API keys, local users and sessions, lock-out
 * and per-address rate limiting, the first administrator, authenticateRequest and DIMSE identities.
 * Every time is the injected clock's.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import type { AtriumDatabase } from '../adapters/index/schema.ts';
import { SqlSecurityStore } from '../adapters/index/sql-security-store.ts';
import { openTestDatabase } from '../../test/support/postgres.ts';
import { AtriumError } from '../errors.ts';
import { SecurityService } from './security-service.ts';
import { AuthError, DEFAULT_SECURITY_CONFIG, securityDisabledWarning, type Principal, type SecurityConfig } from './types.ts';
import { authorize, studyFilter } from './policy.ts';
import { hashPassword, verifyPassword } from './secrets.ts';

const FAST = { N: 1024, r: 8, p: 1 };
const PASSWORD = 'correct horse battery';

class TestClock {
  #t = Date.parse('2031-03-01T08:00:00.000Z');
  now = (): Date => new Date(this.#t);
  advance(ms: number): void {
    this.#t += ms;
  }
}
const MIN = 60_000;

function principalOf(result: Principal | AuthError): Principal {
  if (result instanceof AuthError) assert.fail(`expected a principal, got ${result.code}: ${result.message}`);
  return result;
}
function codeOf(result: unknown): string {
  return result instanceof AuthError ? result.code : 'ok';
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`security service on ${engine}`, () => {
    let opened: Awaited<ReturnType<typeof openTestDatabase>>;
    let db: ReturnType<typeof opened.database.kysely<AtriumDatabase>>;

    before(async () => {
      opened = await openTestDatabase(engine);
      db = opened.database.kysely<AtriumDatabase>();
    });
    after(async () => opened.cleanup());

    /** A fresh service over emptied security tables. */
    async function fresh(config: Partial<SecurityConfig> = {}, clock = new TestClock()) {
      for (const table of ['security_session', 'security_user', 'security_api_key', 'security_login_throttle', 'security_setting'] as const) {
        await db.deleteFrom(table).execute();
      }
      const security = new SecurityService({ store: new SqlSecurityStore(opened.database), config: { ...DEFAULT_SECURITY_CONFIG, ...config }, clock: clock.now, scrypt: FAST });
      return { security, clock };
    }

    test('first run: a setup token is issued while no user exists; the first admin is created once', async () => {
      const { security } = await fresh();
      assert.equal(await security.needsSetup(), true);
      const { setupToken } = await security.start();
      assert.ok(setupToken && setupToken.length >= 32);
      assert.match(security.setupMessage(setupToken), /no default password/);
      const stored = await db.selectFrom('security_setting').selectAll().execute();
      assert.ok(stored.every((r) => !r.value.includes(setupToken)), 'the token is stored only as a digest');

      await assert.rejects(security.createFirstAdmin({ username: 'admin', password: PASSWORD }), (e: unknown) => e instanceof AtriumError && e.code === 'forbidden');
      await assert.rejects(security.createFirstAdmin({ username: 'admin', password: PASSWORD, setupToken: 'wrong' }), (e: unknown) => e instanceof AtriumError && e.code === 'forbidden');
      await assert.rejects(security.createFirstAdmin({ username: 'admin', password: 'short', setupToken }), (e: unknown) => e instanceof AtriumError && e.code === 'invalid-input');
      const admin = await security.createFirstAdmin({ username: 'Admin', password: PASSWORD, setupToken });
      assert.equal(admin.username, 'admin');
      assert.deepEqual(admin.roles, ['administrator']);
      assert.equal(await security.needsSetup(), false);
      // Only once: neither the used token, nor the trusted local path, nor a restart's token.
      await assert.rejects(security.createFirstAdmin({ username: 'second', password: PASSWORD, setupToken }), (e: unknown) => e instanceof AtriumError && e.code === 'conflict');
      await assert.rejects(security.createFirstAdmin({ username: 'second', password: PASSWORD, trustedLocal: true }), (e: unknown) => e instanceof AtriumError && e.code === 'conflict');
      assert.deepEqual(await security.start(), { setupToken: null });
      assert.equal((await security.listUsers()).length, 1);
    });

    test('first run on several nodes: each node\'s printed token works, and all are gone once the admin exists', async () => {
      const { security: node1 } = await fresh();
      const node2 = new SecurityService({ store: new SqlSecurityStore(await opened.reopen()), config: DEFAULT_SECURITY_CONFIG, scrypt: FAST });
      const { setupToken: first } = await node1.start();
      const { setupToken: second } = await node2.start();
      assert.ok(first && second && first !== second);
      // The node that started first printed its token before the other started: it still works.
      const admin = await node2.createFirstAdmin({ username: 'admin', password: PASSWORD, setupToken: first });
      assert.equal(admin.username, 'admin');
      const left = await db.selectFrom('security_setting').select('setting_key').where('setting_key', 'like', 'setup_token%').execute();
      assert.deepEqual(left, [], 'no setup token outlives the first administrator');
      await assert.rejects(node1.createFirstAdmin({ username: 'second', password: PASSWORD, setupToken: second }), (e: unknown) => e instanceof AtriumError && e.code === 'conflict');
    });

    test('first run: concurrent first-admin creations, one wins', async () => {
      const { security } = await fresh();
      const results = await Promise.allSettled(['a1', 'a2', 'a3', 'a4'].map((username) => security.createFirstAdmin({ username, password: PASSWORD, trustedLocal: true })));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results.map((r) => r.status === 'rejected' ? String(r.reason) : 'ok')));
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as AtriumError).code, 'conflict', String(r.reason));
      assert.equal((await security.listUsers()).length, 1);
    });

    test('scrypt hashes are salted, the table holds no password', async () => {
      const [a, b] = [await hashPassword(PASSWORD, FAST), await hashPassword(PASSWORD, FAST)];
      assert.notEqual(a, b);
      assert.equal(await verifyPassword(PASSWORD, a), true);
      assert.equal(await verifyPassword(`${PASSWORD}!`, a), false);
      assert.equal(await verifyPassword(PASSWORD, 'garbage'), false);
      const { security } = await fresh();
      await security.createUser({ username: 'u1', password: PASSWORD, roles: ['radiologist'] });
      await security.createUser({ username: 'u2', password: PASSWORD, roles: ['radiologist'] });
      const rows = await db.selectFrom('security_user').select(['password_hash']).execute();
      assert.notEqual(rows[0].password_hash, rows[1].password_hash);
      assert.ok(rows.every((r) => r.password_hash.startsWith('scrypt$') && !r.password_hash.includes(PASSWORD)));
      await assert.rejects(security.createUser({ username: 'U1', password: PASSWORD, roles: [] }), (e: unknown) => e instanceof AtriumError && e.code === 'conflict');
      await assert.rejects(security.createUser({ username: 'u3', password: PASSWORD, roles: ['wizard' as never] }), (e: unknown) => e instanceof AtriumError && e.code === 'invalid-input');
    });

    test('login, session cookie, idle and absolute expiry, logout', async () => {
      const { security, clock } = await fresh({ sessions: { idleMinutes: 30, absoluteHours: 2, secureCookie: true } });
      await security.createUser({ username: 'rad', password: PASSWORD, roles: ['radiologist'], dicomPersonName: 'DOE^JANE' });
      assert.equal(codeOf(await security.login('rad', 'wrong password!!', '10.0.0.1')), 'bad-credentials');
      assert.equal(codeOf(await security.login('nobody', PASSWORD, '10.0.0.1')), 'bad-credentials');
      const login = await security.login(' RAD ', PASSWORD, '10.0.0.1');
      assert.ok(!(login instanceof AuthError));
      assert.equal(login.principal.authMethod, 'password');
      assert.match(security.sessionCookie(login), /^atrium_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Expires=.+; Secure$/);
      const sessions = await db.selectFrom('security_session').selectAll().execute();
      assert.equal(sessions.length, 1);
      assert.notEqual(sessions[0].id_hash, login.sessionId, 'only a digest of the session id is stored');

      const cookie = { cookie: `theme=dark; atrium_session=${login.sessionId}` };
      const p = principalOf(await security.authenticateRequest(cookie, '10.0.0.1'));
      assert.deepEqual(p, { kind: 'user', id: login.principal.id, name: 'rad', roles: ['radiologist'], authMethod: 'session', sourceAddress: '10.0.0.1', routePrefixes: null, personNames: ['DOE^JANE'] });
      // Idle: used every 29 minutes it lives on, up to the absolute limit (2 h).
      for (let i = 0; i < 4; i++) {
        clock.advance(29 * MIN);
        assert.equal(codeOf(await security.authenticateRequest(cookie, '10.0.0.1')), 'ok', `use ${i}`);
      }
      clock.advance(5 * MIN); // 121 minutes after login
      assert.equal(codeOf(await security.authenticateRequest(cookie, '10.0.0.1')), 'session-expired');
      assert.equal(codeOf(await security.authenticateRequest(cookie, '10.0.0.1')), 'bad-credentials', 'an expired session is deleted');

      const second = await security.login('rad', PASSWORD, '10.0.0.1');
      assert.ok(!(second instanceof AuthError));
      const cookie2 = { cookie: `atrium_session=${second.sessionId}` };
      clock.advance(31 * MIN);
      assert.equal(codeOf(await security.authenticateRequest(cookie2, '10.0.0.1')), 'session-expired', 'idle for 31 minutes');

      const third = await security.login('rad', PASSWORD, '10.0.0.1');
      assert.ok(!(third instanceof AuthError));
      assert.equal(await security.logout(third.sessionId), true);
      assert.equal(await security.logout(third.sessionId), false);
      assert.equal(codeOf(await security.authenticateRequest({ cookie: `atrium_session=${third.sessionId}` }, '10.0.0.1')), 'bad-credentials');
      assert.match(security.clearSessionCookie(), /Max-Age=0/);

      // Disabling a user ends their sessions; a new password too.
      const fourth = await security.login('rad', PASSWORD, '10.0.0.1');
      assert.ok(!(fourth instanceof AuthError));
      await security.updateUser(Number(fourth.principal.id), { disabled: true });
      assert.equal(codeOf(await security.authenticateRequest({ cookie: `atrium_session=${fourth.sessionId}` }, '10.0.0.1')), 'bad-credentials');
      assert.equal(codeOf(await security.login('rad', PASSWORD, '10.0.0.1')), 'account-disabled');
    });

    test('purging expired sessions', async () => {
      const { security, clock } = await fresh();
      await security.createUser({ username: 'tech', password: PASSWORD, roles: ['technologist'] });
      await security.login('tech', PASSWORD, null);
      assert.equal(await security.purgeExpiredSessions(), 0);
      clock.advance(31 * MIN);
      assert.equal(await security.purgeExpiredSessions(), 1);
    });

    test('lock-out after 5 failures for 15 minutes, per user; success resets the count', async () => {
      const { security, clock } = await fresh();
      await security.createUser({ username: 'tech', password: PASSWORD, roles: ['technologist'] });
      for (let i = 0; i < 4; i++) assert.equal(codeOf(await security.login('tech', `wrong ${i} password`, `10.0.1.${i}`)), 'bad-credentials');
      assert.equal(codeOf(await security.login('tech', PASSWORD, '10.0.1.9')), 'ok', 'four failures: not locked, and the success resets');
      for (let i = 0; i < 5; i++) assert.equal(codeOf(await security.login('tech', `wrong ${i} password`, `10.0.2.${i}`)), 'bad-credentials');
      const locked = await security.login('tech', PASSWORD, '10.0.3.1');
      assert.ok(locked instanceof AuthError);
      assert.equal(locked.code, 'locked');
      assert.equal(locked.httpStatus, 429);
      assert.equal(locked.retryAfterSeconds, 15 * 60);
      // DIMSE logins count against the same lock.
      assert.equal(codeOf(await security.authenticateDicomUser({ type: 2, primary: 'tech', secondary: PASSWORD }, '10.0.3.2')), 'locked');
      clock.advance(14 * MIN);
      assert.equal((await security.login('tech', PASSWORD, '10.0.3.1') as AuthError).retryAfterSeconds, 60);
      clock.advance(1 * MIN);
      assert.equal(codeOf(await security.login('tech', PASSWORD, '10.0.3.1')), 'ok', 'released after the lock time');
      // Unknown users are locked the same way (the lock does not tell who exists).
      for (let i = 0; i < 5; i++) await security.login('ghost', `wrong ${i} password`, `10.0.4.${i}`);
      assert.equal(codeOf(await security.login('ghost', PASSWORD, '10.0.4.9')), 'locked');
      // Failures spread over more than the window do not add up.
      for (let i = 0; i < 4; i++) await security.login('tech', `wrong ${i} password`, '10.0.5.1');
      clock.advance(16 * MIN);
      for (let i = 0; i < 4; i++) await security.login('tech', `wrong ${i} password`, '10.0.5.1');
      assert.equal(codeOf(await security.login('tech', PASSWORD, '10.0.5.1')), 'ok');
    });

    test('rate limit per source address across usernames', async () => {
      const { security, clock } = await fresh({ lockout: { maxFailures: 5, lockMinutes: 15, maxFailuresPerAddress: 8 } });
      await security.createUser({ username: 'tech', password: PASSWORD, roles: ['technologist'] });
      for (let i = 0; i < 8; i++) assert.equal(codeOf(await security.login(`user${i}`, 'guess guess guess', '192.0.2.7')), 'bad-credentials');
      const blocked = await security.login('tech', PASSWORD, '192.0.2.7');
      assert.equal(codeOf(blocked), 'locked', 'even the right password, from that address');
      assert.match((blocked as AuthError).message, /this address/);
      assert.equal(codeOf(await security.login('tech', PASSWORD, '192.0.2.8')), 'ok', 'another address is not affected');
      clock.advance(15 * MIN);
      assert.equal(codeOf(await security.login('tech', PASSWORD, '192.0.2.7')), 'ok');
    });

    test('API keys: secret shown once and stored hashed, authenticate, scopes, expiry, revocation, last use', async () => {
      const { security, clock } = await fresh();
      const { key, apiKey } = await security.createApiKey({ name: 'AI node', roles: ['integration'], routePrefixes: ['/dicomweb/'], expiresAt: new Date(clock.now().getTime() + 60 * MIN), createdBy: 'admin' });
      assert.match(key, /^atr_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
      assert.ok(key.includes(apiKey.keyId));
      assert.equal(JSON.stringify(apiKey).includes(key.slice(17)), false);
      const rows = await db.selectFrom('security_api_key').selectAll().execute();
      assert.equal(rows.length, 1);
      const secret = key.slice(17);
      for (const value of Object.values(rows[0])) assert.ok(!String(value).includes(secret), 'the table never contains the secret');
      assert.equal((await security.listApiKeys())[0].lastUsedAt, null);

      for (const headers of [{ authorization: `Bearer ${key}` }, { 'x-api-key': key }]) {
        const p = principalOf(await security.authenticateRequest(headers, '10.9.9.9'));
        assert.deepEqual(p, { kind: 'api-key', id: apiKey.keyId, name: 'AI node', roles: ['integration'], authMethod: 'api-key', sourceAddress: '10.9.9.9', routePrefixes: ['/dicomweb/'], personNames: [] });
        assert.equal(authorize(p, 'study:read', { route: '/dicomweb/studies/1.2.3' }).allowed, true);
        assert.equal(authorize(p, 'study:read', { route: '/api/studies/1.2.3' }).allowed, false);
        assert.equal(authorize(p, 'admin:users', { route: '/dicomweb/studies' }).allowed, false);
      }
      assert.equal((await security.listApiKeys())[0].lastUsedAt, clock.now().toISOString());
      const tampered = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;
      assert.equal(codeOf(await security.authenticateRequest({ 'x-api-key': tampered }, null)), 'bad-credentials');
      assert.equal(codeOf(await security.authenticateRequest({ 'x-api-key': 'atr_nope' }, null)), 'malformed-credentials');

      clock.advance(60 * MIN);
      assert.equal(codeOf(await security.authenticateRequest({ 'x-api-key': key }, null)), 'api-key-expired');

      const other = await security.createApiKey({ name: 'never expires', roles: ['radiologist'], expiresAt: null });
      clock.advance(10 * 365 * 24 * 60 * MIN);
      assert.equal(principalOf(await security.authenticateRequest({ 'x-api-key': other.key }, null)).routePrefixes, null);
      assert.equal(await security.revokeApiKey(other.apiKey.keyId), true);
      assert.equal(await security.revokeApiKey('000000000000'), false);
      assert.equal(codeOf(await security.authenticateRequest({ authorization: `Bearer ${other.key}` }, null)), 'api-key-revoked');
      assert.ok((await security.listApiKeys()).find((k) => k.keyId === other.apiKey.keyId)?.revokedAt);

      const defaults = await security.createApiKey({ name: 'default expiry', roles: [] });
      assert.equal(Date.parse(defaults.apiKey.expiresAt!) - clock.now().getTime(), 365 * 24 * 60 * MIN);
      await assert.rejects(security.createApiKey({ name: 'x', roles: ['integration'], routePrefixes: ['dicomweb'] }), (e: unknown) => e instanceof AtriumError && e.code === 'invalid-input');
      await assert.rejects(security.createApiKey({ name: 'x', roles: ['integration'], expiresAt: new Date(0) }), (e: unknown) => e instanceof AtriumError && e.code === 'invalid-input');
    });

    test('authenticateRequest: precedence, malformed headers, no credentials, cross-site cookies, JWT without OIDC', async () => {
      const { security } = await fresh();
      await security.createUser({ username: 'rad', password: PASSWORD, roles: ['radiologist'] });
      const login = await security.login('rad', PASSWORD, null);
      assert.ok(!(login instanceof AuthError));
      const cookie = `atrium_session=${login.sessionId}`;
      assert.equal(codeOf(await security.authenticateRequest({}, '10.0.0.1')), 'no-credentials');
      assert.equal(codeOf(await security.authenticateRequest({ authorization: 'Basic cmFkOng=' }, null)), 'malformed-credentials');
      assert.equal(codeOf(await security.authenticateRequest({ authorization: 'Bearer a.b.c', cookie }, null)), 'oidc-not-configured', 'Authorization wins over the cookie');
      assert.equal(codeOf(await security.authenticateRequest({ authorization: 'Bearer garbage' }, null)), 'malformed-credentials');
      assert.equal(codeOf(await security.authenticateRequest({ cookie, host: 'pacs:8080' }, null, { method: 'POST' })), 'ok', 'no Origin: not a browser cross-site request');
      assert.equal(codeOf(await security.authenticateRequest({ cookie, host: 'pacs:8080', origin: 'http://pacs:8080' }, null, { method: 'DELETE' })), 'ok');
      const cross = await security.authenticateRequest({ cookie, host: 'pacs:8080', origin: 'https://evil.example' }, null, { method: 'POST' });
      assert.equal(codeOf(cross), 'cross-site');
      assert.equal((cross as AuthError).httpStatus, 403);
      assert.equal(codeOf(await security.authenticateRequest({ cookie, host: 'pacs:8080', origin: 'https://evil.example' }, null, { method: 'GET' })), 'ok');
      assert.equal(codeOf(await security.authenticateRequest({ cookie, 'sec-fetch-site': 'cross-site' }, null, { method: 'PUT' })), 'cross-site');
    });

    test('DICOM user identity: username+passcode and JWT map to the same users and roles; other types are refused', async () => {
      const { security } = await fresh();
      await security.createUser({ username: 'modality1', password: PASSWORD, roles: ['technologist'] });
      const p = principalOf(await security.authenticateDicomUser({ type: 2, primary: Buffer.from('modality1'), secondary: Buffer.from(PASSWORD) }, '10.2.0.1'));
      assert.equal(p.kind, 'user');
      assert.equal(p.authMethod, 'dicom-password');
      assert.deepEqual(p.roles, ['technologist']);
      assert.equal(codeOf(await security.authenticateDicomUser({ type: 2, primary: 'modality1', secondary: 'nope nope nope' }, '10.2.0.1')), 'bad-credentials');
      assert.equal(codeOf(await security.authenticateDicomUser({ type: 1, primary: 'modality1' }, null)), 'unsupported-identity');
      assert.equal(codeOf(await security.authenticateDicomUser({ type: 3, primary: 'ticket' }, null)), 'unsupported-identity');
      assert.equal(codeOf(await security.authenticateDicomUser({ type: 5, primary: 'a.b.c' }, null)), 'oidc-not-configured');
      const ae = security.dicomAePrincipal(' CT01 ', '10.2.0.2', ['technologist']);
      assert.deepEqual(ae, { kind: 'dicom-ae', id: 'CT01', name: 'CT01', roles: ['technologist'], authMethod: 'dicom-ae', sourceAddress: '10.2.0.2', routePrefixes: null, personNames: [] });
    });

    test('security disabled: explicit, loud, and everyone is an allowed anonymous caller', async () => {
      const { security } = await fresh({ enabled: false });
      assert.match(securityDisabledWarning({ enabled: false })!, /SECURITY IS DISABLED/);
      assert.equal(securityDisabledWarning({ enabled: true }), null);
      assert.deepEqual(await security.start(), { setupToken: null });
      const p = principalOf(await security.authenticateRequest({}, '10.0.0.1'));
      assert.equal(p.authMethod, 'security-disabled');
      assert.equal(authorize(p, 'admin:users').allowed, true);
      assert.equal(principalOf(await security.authenticateDicomUser({ type: 1, primary: 'x' }, null)).authMethod, 'security-disabled');
    });

    test('OIDC through authenticateRequest and DIMSE JWT identities; referring clinicians by claim', async () => {
      const { privateKey, publicKey } = await generateKeyPair('ES256');
      const jwk = { ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' };
      const server = http.createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk] })); });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const issuer = 'https://idp.example/realms/h';
        const clock = new TestClock();
        const { security } = await fresh({
          oidc: {
            issuer, audience: 'atrium', jwksUri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, rolesClaim: 'groups',
            roleMapping: { referrers: ['referring-clinician'] }, usernameClaim: 'preferred_username', clockToleranceSeconds: 0,
          },
          referringClinicianRule: { attribute: 'ReferringPhysicianName', personNameClaim: 'dicom_name' },
        }, clock);
        const sign = (key: CryptoKey) => new SignJWT({ groups: ['referrers'], dicom_name: 'Who^Doctor', preferred_username: 'drwho' })
          .setProtectedHeader({ alg: 'ES256', kid: 'k' }).setSubject('s-1').setIssuer(issuer).setAudience('atrium')
          .setIssuedAt(Math.floor(clock.now().getTime() / 1000)).setExpirationTime(Math.floor(clock.now().getTime() / 1000) + 300).sign(key);
        const jwt = await sign(privateKey);
        const p = principalOf(await security.authenticateRequest({ authorization: `Bearer ${jwt}` }, '10.3.0.1'));
        assert.equal(p.kind, 'oidc');
        assert.equal(p.name, 'drwho');
        assert.deepEqual(studyFilter(p), { kind: 'referring-physician', personNames: ['Who^Doctor'], normalizedPersonNames: ['WHO^DOCTOR'] });
        assert.equal(authorize(p, 'study:read', { study: { referringPhysicianName: 'WHO^DOCTOR' } }).allowed, true);
        assert.equal(authorize(p, 'study:read', { study: { referringPhysicianName: 'NO^ONE' } }).allowed, false);
        const d = principalOf(await security.authenticateDicomUser({ type: 5, primary: jwt }, '10.3.0.2'));
        assert.equal(d.authMethod, 'dicom-jwt');
        assert.deepEqual(d.roles, ['referring-clinician']);
        assert.equal(codeOf(await security.authenticateRequest({ authorization: `Bearer ${await sign((await generateKeyPair('ES256')).privateKey)}` }, null)), 'invalid-signature');
        clock.advance(301_000);
        assert.equal(codeOf(await security.authenticateRequest({ authorization: `Bearer ${jwt}` }, null)), 'token-expired');
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });
}
