/**
 * The security store on SQLite and real PostgreSQL: users, sessions, API keys, settings, and the
 * login failure counter under concurrent failures (no lost count on any engine).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SqlSecurityStore } from './sql-security-store.ts';
import { openTestDatabase, type TestDatabase } from '../../../test/support/postgres.ts';
import { AtriumError } from '../../errors.ts';

const T0 = '2031-03-01T08:00:00.000Z';
const at = (ms: number) => new Date(Date.parse(T0) + ms).toISOString();
const user = (username: string) => ({ username, displayName: null, passwordHash: 'scrypt$1$1$1$x$y', roles: ['radiologist'], dicomPersonName: null });

for (const engine of ['sqlite', 'postgres'] as const) {
  describe(`security store on ${engine}`, () => {
    let opened: TestDatabase;
    before(async () => { opened = await openTestDatabase(engine); });
    after(async () => opened.cleanup());

    test('users: create, unique names, update, sessions go with their user', async () => {
      const store = new SqlSecurityStore(opened.database);
      const u = await store.createUser(user('alice'), T0);
      assert.equal(u.username, 'alice');
      assert.deepEqual(u.roles, ['radiologist']);
      assert.equal(u.disabled, false);
      await assert.rejects(store.createUser(user('alice'), T0), (e: unknown) => e instanceof AtriumError && e.code === 'conflict');
      const updated = await store.updateUser(u.id, { roles: ['technologist', 'radiologist'], disabled: true, dicomPersonName: 'A^B' }, at(1000));
      assert.deepEqual([updated?.roles, updated?.disabled, updated?.dicomPersonName, updated?.updatedAt], [['technologist', 'radiologist'], true, 'A^B', at(1000)]);
      assert.equal(await store.updateUser(999_999, { disabled: true }, T0), null);
      await store.createSession({ idHash: 'h1', userId: u.id, createdAt: T0, lastSeenAt: T0, expiresAt: at(3_600_000), sourceAddress: '::1' });
      await store.touchSession('h1', at(60_000));
      assert.equal((await store.getSession('h1'))?.lastSeenAt, at(60_000));
      await store.touchSession('h1', at(30_000));
      assert.equal((await store.getSession('h1'))?.lastSeenAt, at(60_000), 'last_seen never goes back');
      assert.equal(await store.purgeSessions(at(120_000), at(0)), 0);
      assert.equal(await store.purgeSessions(at(120_000), at(61_000)), 1);
      await store.createSession({ idHash: 'h2', userId: u.id, createdAt: T0, lastSeenAt: T0, expiresAt: at(3_600_000), sourceAddress: null });
      assert.equal(await store.deleteUser(u.id), true);
      assert.equal(await store.getSession('h2'), null);
      assert.equal(await store.countUsers(), 0);
    });

    test('first user: token checked and consumed, only while no user exists', async () => {
      const store = new SqlSecurityStore(opened.database);
      await store.putSetting('setup_token', 'digest-1', T0);
      assert.deepEqual(await store.createFirstUser(user('root'), T0, 'digest-2'), { kind: 'bad-setup-token' });
      const created = await store.createFirstUser(user('root'), T0, 'digest-1');
      assert.equal(created.kind, 'created');
      assert.equal(await store.getSetting('setup_token'), null);
      assert.deepEqual(await store.createFirstUser(user('root2'), T0, null), { kind: 'users-exist' });
      for (const u of await store.listUsers()) await store.deleteUser(u.id);
    });

    test('API keys: lookup by digest, revoke once, touch', async () => {
      const store = new SqlSecurityStore(opened.database);
      const key = await store.createApiKey({ keyId: 'abc123abc123', name: 'k', secretHash: 'd1', roles: ['integration'], routePrefixes: ['/dicomweb/'], createdBy: null, createdAt: T0, expiresAt: null });
      assert.deepEqual(key.routePrefixes, ['/dicomweb/']);
      assert.equal((await store.getApiKeyBySecretHash('d1'))?.keyId, 'abc123abc123');
      await assert.rejects(store.createApiKey({ ...key, secretHash: 'd2' }), (e: unknown) => e instanceof AtriumError && e.code === 'conflict');
      assert.equal(await store.revokeApiKey('abc123abc123', at(1000)), true);
      assert.equal(await store.revokeApiKey('abc123abc123', at(2000)), true);
      assert.equal((await store.getApiKey('abc123abc123'))?.revokedAt, at(1000), 'the first revocation time stays');
      await store.touchApiKey('abc123abc123', at(3000));
      assert.equal((await store.listApiKeys())[0].lastUsedAt, at(3000));
    });

    test('failure counter: window, lock, release, and no lost count under concurrent failures', async () => {
      const store = new SqlSecurityStore(opened.database);
      const opts = { windowMs: 900_000, maxFailures: 5, lockMs: 900_000 };
      for (let i = 1; i <= 4; i++) assert.deepEqual(await store.recordFailure('user:x', at(i * 1000), opts), { failures: i, windowStartedAt: at(1000), lockedUntil: null });
      assert.deepEqual(await store.recordFailure('user:x', at(5000), opts), { failures: 5, windowStartedAt: at(1000), lockedUntil: at(905_000) });
      assert.equal((await store.recordFailure('user:x', at(6000), opts)).lockedUntil, at(905_000), 'failures while locked do not extend the lock');
      assert.deepEqual(await store.recordFailure('user:x', at(905_000), opts), { failures: 1, windowStartedAt: at(905_000), lockedUntil: null }, 'after the lock: a fresh count');
      await store.clearThrottle('user:x');
      assert.equal(await store.getThrottle('user:x'), null);

      const stores = await Promise.all([0, 1, 2].map(async () => new SqlSecurityStore(engine === 'sqlite' ? opened.database : await opened.reopen())));
      await Promise.all(Array.from({ length: 30 }, (_, i) => stores[i % 3].recordFailure('addr:10.0.0.1', at(10_000), { windowMs: 900_000, maxFailures: 1000, lockMs: 1 })));
      assert.equal((await store.getThrottle('addr:10.0.0.1'))?.failures, 30);
    });
  });
}
