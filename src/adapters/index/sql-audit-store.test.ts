/**
 * The audit store on SQLite and on real PostgreSQL: every filter, ordering, paging, keyset scanning, and
 * append-only enforced by the database itself (raw UPDATE / DELETE / TRUNCATE fail).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { SqlAuditStore } from './sql-audit-store.ts';
import { openTestDatabase, type TestDatabase } from '../../../test/support/postgres.ts';
import type { AuditRecord, NewAuditRecord } from '../../ports/audit-store.ts';

function rec(minute: number, overrides: Partial<NewAuditRecord> = {}): NewAuditRecord {
  return {
    id: randomUUID(),
    time: new Date(Date.UTC(2031, 2, 1, 8, minute)).toISOString(),
    principal: { kind: 'user', id: 'alice', displayName: 'Alice', roles: ['radiologist'] },
    action: 'read',
    interface: 'dicomweb',
    origin: { address: '10.0.0.7' },
    destination: null,
    patientIds: ['P1'],
    studies: [{ studyInstanceUid: '1.2.3.1', patientId: 'P1', numberOfInstances: 3 }],
    objects: [],
    query: null,
    outcome: 'success',
    outcomeReason: null,
    detail: null,
    sourceId: 'ATRIUM',
    ...overrides,
  };
}

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`SqlAuditStore on ${kind}`, () => {
    let engine: TestDatabase;
    let audit: SqlAuditStore;
    let written: AuditRecord[];

    before(async () => {
      engine = await openTestDatabase(kind);
      audit = new SqlAuditStore(engine.database);
      // Appended out of time order on purpose: results are ordered by time, not by insertion.
      written = await audit.append([
        rec(5),
        rec(1, { action: 'store', interface: 'dimse', principal: { kind: 'dicom-ae', id: 'CT01', displayName: null, roles: [] }, origin: { address: '10.0.0.9', aeTitle: 'CT01' } }),
        rec(3, { action: 'query', patientIds: [], studies: [], query: 'PatientID=P2', principal: { kind: 'user', id: 'bob', displayName: null, roles: [] } }),
        rec(4, { patientIds: ['P2'], studies: [{ studyInstanceUid: '1.2.3.2', patientId: 'P2' }, { studyInstanceUid: '1.2.3.3', patientId: 'P2' }] }),
        rec(2, { action: 'delete', interface: 'rest', outcome: 'serious-failure', outcomeReason: 'blob store unavailable' }),
      ]);
      written.push(...await audit.append([rec(6, { action: 'login', interface: 'ui', patientIds: [], studies: [] })]));
    });
    after(async () => await engine?.cleanup());

    test('append returns the records with increasing sequence numbers, stored whole', async () => {
      assert.equal(written.length, 6);
      for (let i = 1; i < written.length; i++) assert.ok(written[i].seq > written[i - 1].seq);
      const page = await audit.search({ user: 'CT01' }, { limit: 10, offset: 0 });
      assert.deepEqual(page.items, [written[1]]);
      assert.deepEqual(await audit.append([]), []);
    });

    test('each filter finds exactly its records', async () => {
      const ids = async (filter: Parameters<SqlAuditStore['search']>[0]) =>
        (await audit.search(filter, { limit: 100, offset: 0 })).items.map((r) => r.time.slice(14, 16)).sort();
      assert.deepEqual(await ids({}), ['01', '02', '03', '04', '05', '06']);
      assert.deepEqual(await ids({ from: '2031-03-01T08:02:00.000Z', to: '2031-03-01T08:05:00.000Z' }), ['02', '03', '04']);
      assert.deepEqual(await ids({ user: 'bob' }), ['03']);
      assert.deepEqual(await ids({ patientId: 'P1' }), ['01', '02', '05']);
      assert.deepEqual(await ids({ patientId: 'P2' }), ['04']);
      assert.deepEqual(await ids({ studyInstanceUid: '1.2.3.3' }), ['04']);
      assert.deepEqual(await ids({ studyInstanceUid: '1.2.3.1', patientId: 'P1', action: 'read' }), ['05']);
      assert.deepEqual(await ids({ action: 'delete' }), ['02']);
      assert.deepEqual(await ids({ interface: 'dimse' }), ['01']);
      assert.deepEqual(await ids({ outcome: 'serious-failure' }), ['02']);
      assert.deepEqual(await ids({ user: 'nobody' }), []);
    });

    test('newest first by default, paged with the total', async () => {
      const first = await audit.search({}, { limit: 4, offset: 0 });
      assert.equal(first.total, 6);
      assert.deepEqual(first.items.map((r) => r.time.slice(14, 16)), ['06', '05', '04', '03']);
      const second = await audit.search({}, { limit: 4, offset: 4 });
      assert.deepEqual(second.items.map((r) => r.time.slice(14, 16)), ['02', '01']);
      assert.equal(second.total, 6);
      const ascending = await audit.search({ user: 'alice' }, { limit: 2, offset: 1 }, 'asc');
      assert.deepEqual(ascending.items.map((r) => r.time.slice(14, 16)), ['04', '05']);
      assert.equal(ascending.total, 4);
    });

    test('scan walks everything oldest first in batches, ties broken by sequence', async () => {
      const same = await audit.append([rec(7, { id: randomUUID() }), rec(7), rec(7)]);
      const scanned: AuditRecord[] = [];
      for await (const r of audit.scan({}, { batchSize: 2 })) scanned.push(r);
      assert.equal(scanned.length, 9);
      assert.deepEqual(scanned.map((r) => r.time.slice(14, 16)), ['01', '02', '03', '04', '05', '06', '07', '07', '07']);
      assert.deepEqual(scanned.slice(6).map((r) => r.seq), same.map((r) => r.seq));
      const filtered: string[] = [];
      for await (const r of audit.scan({ patientId: 'P1', from: '2031-03-01T08:02:00.000Z' }, { batchSize: 1 })) filtered.push(r.time.slice(14, 16));
      assert.deepEqual(filtered, ['02', '05', '07', '07', '07']);
    });

    test('the database itself refuses UPDATE and DELETE of audit rows', async () => {
      const db = engine.database.kysely<unknown>();
      const attempts = [
        sql`UPDATE audit_event SET outcome = 'success' WHERE action = 'delete'`,
        sql`DELETE FROM audit_event WHERE action = 'delete'`,
        sql`UPDATE audit_object SET value = 'P9' WHERE value = 'P1'`,
        sql`DELETE FROM audit_object`,
        ...(kind === 'postgres' ? [sql`TRUNCATE audit_event CASCADE`, sql`TRUNCATE audit_object`] : []),
      ];
      for (const attempt of attempts) {
        await assert.rejects(attempt.execute(db), /append-only/);
      }
      const still = await audit.search({ action: 'delete' }, { limit: 10, offset: 0 });
      assert.equal(still.items[0].outcome, 'serious-failure');
      assert.equal((await audit.search({ patientId: 'P1' }, { limit: 1, offset: 0 })).total, 6);
    });
  });
}
