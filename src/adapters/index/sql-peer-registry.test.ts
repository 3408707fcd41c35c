/** The DICOM peer registry on SQLite and real PostgreSQL: CRUD, validation, syncFromConfig semantics. */
import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { SqlPeerRegistry } from './sql-peer-registry.ts';
import { openTestDatabase } from '../../../test/support/postgres.ts';
import { AtriumError } from '../../errors.ts';
import type { AtriumDatabase } from './schema.ts';

const openStore = openTestDatabase;

const isCode = (code: string) => (e: unknown) => e instanceof AtriumError && e.code === code;

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`peer registry on ${kind}`, () => {
    let opened: Awaited<ReturnType<typeof openStore>>;
    let t: number;
    let peers: SqlPeerRegistry;
    before(async () => {
      opened = await openStore(kind);
    });
    after(async () => await opened?.cleanup());
    beforeEach(async () => {
      await opened.database.kysely<AtriumDatabase>().deleteFrom('ae_peer').execute();
      t = Date.parse('2031-01-01T00:00:00.000Z');
      peers = new SqlPeerRegistry(opened.database, () => new Date(t));
    });

    test('the last contact: recorded on a known peer, nothing for an unknown AE, kept when the peer is redefined', async () => {
      await peers.upsert({ aeTitle: 'CT1', host: 'ct1', port: 104 });
      await peers.recordContact('CT1 ', { at: new Date('2031-02-03T04:05:06.000Z'), outcome: 'failed', detail: 'C-ECHO: connection refused' });
      await peers.recordContact('NOBODY', { at: new Date(), outcome: 'ok', detail: 'inbound association accepted' });
      assert.deepEqual((await peers.list()).map((p) => p.aeTitle), ['CT1']);
      let ct1 = (await peers.get('CT1'))!;
      assert.deepEqual([ct1.lastContactAt, ct1.lastContactOutcome, ct1.lastContactDetail], ['2031-02-03T04:05:06.000Z', 'failed', 'C-ECHO: connection refused']);
      assert.equal(ct1.updatedAt, '2031-01-01T00:00:00.000Z', 'a contact is not a change of the peer');
      await peers.recordContact('CT1', { at: new Date('2031-02-03T04:05:07.000Z'), outcome: 'ok', detail: 'x'.repeat(2000) });
      t += 5000;
      await peers.upsert({ aeTitle: 'CT1', host: 'ct1.local', port: 104 });
      await peers.syncFromConfig([{ aeTitle: 'CT1', host: 'ct1.local', port: 11112 }]);
      ct1 = (await peers.get('CT1'))!;
      assert.deepEqual([ct1.lastContactAt, ct1.lastContactOutcome, ct1.lastContactDetail?.length], ['2031-02-03T04:05:07.000Z', 'ok', 500]);
      assert.equal(ct1.port, 11112);
    });

    test('create, read, update, delete an API peer', async () => {
      const created = await peers.upsert({ aeTitle: ' WORKSTATION1 ', host: '10.1.1.20', port: 11112, operations: ['find', 'move', 'echo', 'find'] });
      assert.deepEqual(created, {
        aeTitle: 'WORKSTATION1', host: '10.1.1.20', port: 11112, tls: false, operations: ['echo', 'find', 'move'], description: null,
        source: 'api', createdAt: '2031-01-01T00:00:00.000Z', updatedAt: '2031-01-01T00:00:00.000Z',
        lastContactAt: null, lastContactOutcome: null, lastContactDetail: null,
      });
      assert.deepEqual(await peers.get('WORKSTATION1'), created);
      assert.deepEqual(await peers.get('WORKSTATION1  '), created, 'trailing spaces do not count');
      assert.equal(await peers.get('workstation1'), null, 'AE titles are case-sensitive');

      t += 1000;
      const updated = await peers.upsert({ aeTitle: 'WORKSTATION1', host: 'ws1.local', port: 104, tls: true, operations: ['echo'], description: 'reading room' });
      assert.equal(updated.host, 'ws1.local');
      assert.equal(updated.tls, true);
      assert.deepEqual(updated.operations, ['echo']);
      assert.equal(updated.description, 'reading room');
      assert.equal(updated.createdAt, '2031-01-01T00:00:00.000Z');
      assert.equal(updated.updatedAt, '2031-01-01T00:00:01.000Z');

      await peers.upsert({ aeTitle: 'AI_NODE', host: 'ai', port: 4242, operations: ['store'] });
      assert.deepEqual((await peers.list()).map((p) => p.aeTitle), ['AI_NODE', 'WORKSTATION1']);
      assert.equal(await peers.delete('WORKSTATION1'), true);
      assert.equal(await peers.delete('WORKSTATION1'), false);
      assert.deepEqual((await peers.list()).map((p) => p.aeTitle), ['AI_NODE']);
    });

    test('a peer put without operations may do all of them, as a configured one does; an empty list restricts it to none', async () => {
      const all = await peers.upsert({ aeTitle: 'ORTHANC', host: '127.0.0.1', port: 4242 });
      assert.deepEqual(all.operations, ['echo', 'store', 'find', 'move', 'get', 'commit']);
      const none = await peers.upsert({ aeTitle: 'ORTHANC', host: '127.0.0.1', port: 4242, operations: [] });
      assert.deepEqual(none.operations, []);
      await assert.rejects(peers.upsert({ aeTitle: 'ORTHANC', host: 'h', port: 1, operations: 'echo' as never }),
        (e: unknown) => isCode('invalid-input')(e) && /operations must be a list .* \(or left out for all of them\)/.test((e as Error).message));
    });

    test('invalid peers are refused with every problem named', async () => {
      await assert.rejects(
        peers.upsert({ aeTitle: 'WAY_TOO_LONG_AE_TITLE', host: '', port: 70000, operations: ['echo', 'teleport' as never] }),
        (e: unknown) => {
          assert.ok(isCode('invalid-input')(e));
          const message = (e as Error).message;
          assert.match(message, /aeTitle must be at most 16 characters/);
          assert.match(message, /host must be a non-empty/);
          assert.match(message, /port must be a whole number from 1 to 65535/);
          assert.match(message, /"teleport" is not one of/);
          return true;
        },
      );
      await assert.rejects(peers.upsert({ aeTitle: 'A\\B', host: 'h', port: 1, operations: [] }), isCode('invalid-input'));
      assert.deepEqual(await peers.list(), []);
    });

    test('syncFromConfig: creates and updates configured peers, deletes removed ones, leaves API peers alone', async () => {
      await peers.upsert({ aeTitle: 'API_PEER', host: 'api', port: 104, operations: ['echo'] });
      await peers.upsert({ aeTitle: 'TAKEN_OVER', host: 'old', port: 104, operations: ['echo'] });

      let outcome = await peers.syncFromConfig([
        { aeTitle: 'CT1', host: '10.0.0.1', port: 104, operations: ['store', 'echo'] },
        { aeTitle: 'MR1', host: '10.0.0.2', port: 104, operations: ['store'], description: 'MR' },
        { aeTitle: 'TAKEN_OVER', host: 'new', port: 105, operations: ['find'] },
      ]);
      assert.deepEqual(outcome, { created: 2, updated: 1, deleted: 0 });
      const all = await peers.list();
      assert.deepEqual(all.map((p) => [p.aeTitle, p.source]), [['API_PEER', 'api'], ['CT1', 'config'], ['MR1', 'config'], ['TAKEN_OVER', 'config']]);
      assert.equal((await peers.get('TAKEN_OVER'))!.host, 'new');

      // Configured peers belong to the configuration.
      await assert.rejects(peers.upsert({ aeTitle: 'CT1', host: 'x', port: 1, operations: [] }), isCode('conflict'));
      await assert.rejects(peers.delete('CT1'), isCode('conflict'));

      // The same configuration again: nothing to do.
      t += 1000;
      outcome = await peers.syncFromConfig([
        { aeTitle: 'CT1', host: '10.0.0.1', port: 104, operations: ['echo', 'store'] },
        { aeTitle: 'MR1', host: '10.0.0.2', port: 104, operations: ['store'], description: 'MR' },
        { aeTitle: 'TAKEN_OVER', host: 'new', port: 105, operations: ['find'] },
      ]);
      assert.deepEqual(outcome, { created: 0, updated: 0, deleted: 0 });
      assert.equal((await peers.get('CT1'))!.updatedAt, '2031-01-01T00:00:00.000Z');

      // MR1 changed, TAKEN_OVER and CT1 removed from the configuration.
      outcome = await peers.syncFromConfig([{ aeTitle: 'MR1', host: '10.0.0.3', port: 104, operations: ['store'], tls: true }]);
      assert.deepEqual(outcome, { created: 0, updated: 1, deleted: 2 });
      const mr = (await peers.get('MR1'))!;
      assert.equal(mr.host, '10.0.0.3');
      assert.equal(mr.tls, true);
      assert.equal(mr.description, null);
      assert.equal(mr.updatedAt, '2031-01-01T00:00:01.000Z');
      assert.deepEqual((await peers.list()).map((p) => [p.aeTitle, p.source]), [['API_PEER', 'api'], ['MR1', 'config']]);

      // An empty configuration removes every configured peer and only those.
      assert.deepEqual(await peers.syncFromConfig([]), { created: 0, updated: 0, deleted: 1 });
      assert.deepEqual((await peers.list()).map((p) => p.aeTitle), ['API_PEER']);

      await assert.rejects(peers.syncFromConfig([
        { aeTitle: 'X', host: 'a', port: 1, operations: [] }, { aeTitle: 'X ', host: 'b', port: 2, operations: [] },
      ]), isCode('invalid-input'));
      assert.deepEqual((await peers.list()).map((p) => p.aeTitle), ['API_PEER'], 'a refused sync changes nothing');
    });
  });
}
