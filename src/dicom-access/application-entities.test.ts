/** Who may do what: known peers by their operations, unknown callers by config; C-MOVE destinations. */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SqlPeerRegistry } from '../adapters/index/sql-peer-registry.ts';
import { openTestDatabase } from '../../test/support/postgres.ts';
import { loadConfig } from '../config/config.ts';
import { ApplicationEntities } from './application-entities.ts';

const openStore = openTestDatabase;

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`application entities on ${kind}`, () => {
    let opened: Awaited<ReturnType<typeof openStore>>;
    let aes: ApplicationEntities;
    let registry: SqlPeerRegistry;
    before(async () => {
      opened = await openStore(kind);
      registry = new SqlPeerRegistry(opened.database);
      const config = loadConfig({ env: { ATRIUM_DATA: '/nonexistent-atrium-data', ATRIUM_DICOM_AE_TITLE: 'VNA' } });
      await registry.syncFromConfig([
        { aeTitle: 'CT1', host: '10.0.0.1', port: 104, operations: ['echo', 'store', 'commit'] },
        { aeTitle: 'VIEWER', host: 'viewer.local', port: 11113, operations: ['echo', 'find', 'move'] },
      ]);
      await registry.upsert({ aeTitle: 'LOCKED_OUT', host: 'x', port: 104, operations: [] });
      aes = new ApplicationEntities({ peers: registry, config: config.dicom });
    });
    after(async () => await opened?.cleanup());

    test('our AE title', () => {
      assert.equal(aes.aeTitle, 'VNA');
      assert.equal(aes.isCalled('VNA  '), true);
      assert.equal(aes.isCalled('vna'), false);
    });

    test('a known peer may do its operations and nothing else', async () => {
      assert.deepEqual(await aes.permits('CT1', 'store'), { allowed: true, reason: 'known peer CT1 may store' });
      assert.deepEqual(await aes.permits('CT1 ', 'commit'), { allowed: true, reason: 'known peer CT1 may commit' });
      assert.deepEqual(await aes.permits('CT1', 'find'), { allowed: false, reason: 'known peer CT1 may not find (allowed: echo, store, commit)' });
      assert.equal((await aes.permits('VIEWER', 'move')).allowed, true);
      assert.equal((await aes.permits('VIEWER', 'store')).allowed, false, 'a known peer does not fall back to the unknown-caller rights');
      assert.deepEqual(await aes.permits('LOCKED_OUT', 'echo'), { allowed: false, reason: 'known peer LOCKED_OUT may not echo (allowed: nothing)' });
    });

    test('an unknown caller gets dicom.unknownCallers (echo and store by default)', async () => {
      assert.deepEqual(await aes.permits('STRANGER', 'echo'), { allowed: true, reason: 'unknown calling AE STRANGER: unknown callers may echo' });
      assert.equal((await aes.permits('STRANGER', 'store')).allowed, true);
      assert.deepEqual(await aes.permits('STRANGER', 'move'), { allowed: false, reason: 'unknown calling AE STRANGER may not move (unknown callers may: echo, store)' });
      assert.equal((await aes.permits('ct1', 'find')).allowed, false, 'case matters');
      assert.equal((await aes.permits('', 'get')).allowed, false);

      const closed = new ApplicationEntities({ peers: registry, config: { aeTitle: 'VNA', unknownCallers: [] } });
      assert.deepEqual(await closed.permits('STRANGER', 'echo'), { allowed: false, reason: 'unknown calling AE STRANGER may not echo (unknown callers may: nothing)' });
      assert.equal((await closed.permits('CT1', 'echo')).allowed, true);
    });

    test('C-MOVE destinations are known peers only', async () => {
      const viewer = await aes.destination('VIEWER');
      assert.deepEqual(viewer && { aeTitle: viewer.aeTitle, host: viewer.host, port: viewer.port, tls: viewer.tls }, { aeTitle: 'VIEWER', host: 'viewer.local', port: 11113, tls: false });
      assert.equal(await aes.destination('STRANGER'), null);
      assert.equal(await aes.destination(''), null);
      assert.equal((await aes.findPeer('CT1'))?.source, 'config');
      assert.equal(await aes.findPeer('NOBODY'), null);
    });
  });
}

test('recording a contact never rejects: a registry that fails is told to onContactError; our own AE title is not a peer', async () => {
  const calls: string[] = [];
  const errors: string[] = [];
  const peers = {
    recordContact: async (aeTitle: string) => {
      calls.push(aeTitle);
      throw new Error('database is locked');
    },
  } as never;
  const aes = new ApplicationEntities({ peers, config: { aeTitle: 'VNA', unknownCallers: [] }, onContactError: (error, aeTitle) => errors.push(`${aeTitle}: ${(error as Error).message}`) });
  await aes.recordContact(' CT1 ', 'ok', 'inbound association accepted');
  await aes.recordContact('VNA', 'ok', 'ourselves');
  await aes.recordContact('  ', 'ok', 'nobody');
  assert.deepEqual(calls, ['CT1']);
  assert.deepEqual(errors, ['CT1: database is locked']);
  const silent = new ApplicationEntities({ peers, config: { aeTitle: 'VNA', unknownCallers: [] }, onContactError: () => { throw new Error('a logger that throws'); } });
  await silent.recordContact('CT1', 'failed', 'x');
});
