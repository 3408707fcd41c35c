/**
 * The event dispatcher over the real outbox on SQLite and PostgreSQL: delivery in order per study, a
 * throwing handler retried with backoff and listed as stuck, a node killed mid-delivery (a real process,
 * SIGKILLed) whose delivery another node takes over after the lease, and two nodes on one PostgreSQL.
 */
import { describe, test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { openTestDatabase, type TestDatabase } from '../../test/support/postgres.ts';
import { emit, SqlEventOutbox } from '../adapters/index/sql-event-outbox.ts';
import type { AtriumDatabase } from '../adapters/index/schema.ts';
import type { Database } from '../database/database.ts';
import { EventDispatcher } from './dispatcher.ts';
import { on, type ArchiveEvent, type DeliveredEvent, type EventHandler } from './event-map.ts';

const log = pino({ level: 'silent' });
const stored = (study: string, n: number): ArchiveEvent => ({
  type: 'InstanceStored',
  payload: { sopInstanceUid: `${study}.${n}`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', seriesInstanceUid: `${study}.0`, studyInstanceUid: study, patientId: 'P1', source: 'test' },
});

async function write(database: Database, events: ArchiveEvent[]): Promise<void> {
  await database.kysely<AtriumDatabase>().transaction().execute(async (tx) => {
    for (const event of events) await emit(tx, event, new Date().toISOString());
  });
}

async function clear(database: Database): Promise<void> {
  const db = database.kysely<AtriumDatabase>();
  await db.deleteFrom('event_delivery').execute();
  await db.deleteFrom('outbox').execute();
}

/** A clock the test moves: backoff and leases are crossed without waiting. */
function testClock() {
  let now = Date.parse('2031-05-01T08:00:00.000Z');
  return { now: () => new Date(now), advance(ms: number) { now += ms; } };
}

async function drain(dispatcher: EventDispatcher, rounds = 50): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    const done = await dispatcher.runOnce();
    if (done.routed + done.delivered + done.failed === 0) return;
  }
}

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`event dispatcher on ${kind}`, () => {
    let opened: TestDatabase;
    let outbox: SqlEventOutbox;
    before(async () => {
      opened = await openTestDatabase(kind);
      outbox = new SqlEventOutbox(opened.database);
    });
    after(async () => opened.cleanup());
    beforeEach(async () => clear(opened.database));

    test('every subscribed handler gets each event once, in order per study; unsubscribed events are only routed', async () => {
      const seen: Record<string, string[]> = { a: [], b: [] };
      const handlers: EventHandler[] = [
        on('InstanceStored', 'test.a', async (e) => { seen.a.push(e.payload.sopInstanceUid); }),
        on('InstanceStored', 'test.b', async (e) => { seen.b.push(e.payload.sopInstanceUid); }),
        on('StudyDeleted', 'test.deleted', async () => { throw new Error('no study was deleted'); }),
      ];
      await write(opened.database, [stored('1.1', 1), stored('1.2', 1), stored('1.1', 2), stored('1.1', 3), stored('1.2', 2)]);
      await write(opened.database, [{ type: 'InstanceQuarantined', payload: { quarantinePk: 1, reasonCode: 'truncated', sopInstanceUid: null, source: 'test' } }]);
      const dispatcher = new EventDispatcher({ outbox, handlers, log, batchSize: 2 });
      await drain(dispatcher);
      for (const name of ['a', 'b']) {
        assert.deepEqual(seen[name].filter((uid) => uid.startsWith('1.1.')), ['1.1.1', '1.1.2', '1.1.3']);
        assert.deepEqual(seen[name].filter((uid) => uid.startsWith('1.2.')), ['1.2.1', '1.2.2']);
      }
      const backlog = await outbox.backlog();
      assert.equal(backlog.unrouted, 0);
      assert.equal(backlog.pending.size, 0, 'nothing left pending');
      const deliveries = await opened.database.kysely<AtriumDatabase>().selectFrom('event_delivery').select('handler').execute();
      assert.equal(deliveries.length, 10, 'the quarantine event, which no handler wants, got no delivery');
    });

    test('a throwing handler is retried with backoff, listed as stuck, and holds back only its own study', async () => {
      const clock = testClock();
      let failing = true;
      const seen: string[] = [];
      const handler = on('InstanceStored', 'test.flaky', async (e: DeliveredEvent<'InstanceStored'>) => {
        if (failing && e.payload.sopInstanceUid === '2.1.1') throw new Error('RIS unreachable');
        seen.push(`${e.payload.sopInstanceUid}#${e.attempt}`);
      });
      await write(opened.database, [stored('2.1', 1), stored('2.1', 2), stored('2.2', 1)]);
      const dispatcher = new EventDispatcher({ outbox, handlers: [handler], log, clock: clock.now, random: () => 0.5, retryBaseMs: 1_000 });
      await drain(dispatcher);
      assert.deepEqual(seen, ['2.2.1#1'], 'the other study went on; 2.1.2 waits behind the failing 2.1.1');

      const stuck = await outbox.stuck(10, 0);
      assert.equal(stuck.total, 1);
      assert.equal(stuck.items[0].handler, 'test.flaky');
      assert.equal(stuck.items[0].lastError, 'RIS unreachable');
      assert.equal(stuck.items[0].attempts, 1);
      assert.equal(stuck.items[0].nextAttemptAt, new Date(clock.now().getTime() + 1_000).toISOString());

      await drain(dispatcher);
      assert.deepEqual(seen, ['2.2.1#1'], 'not retried before its time');
      clock.advance(1_000);
      await drain(dispatcher);
      assert.equal((await outbox.stuck(10, 0)).items[0].attempts, 2);
      assert.equal((await outbox.stuck(10, 0)).items[0].nextAttemptAt, new Date(clock.now().getTime() + 2_000).toISOString(), 'the delay doubled');

      failing = false;
      assert.equal(await outbox.retryNow(stuck.items[0].id, clock.now()), true);
      await drain(dispatcher);
      assert.deepEqual(seen, ['2.2.1#1', '2.1.1#3', '2.1.2#1']);
      assert.equal((await outbox.stuck(10, 0)).total, 0);
    });

    test('a lease that ran out hands the delivery to another node, and the first node cannot record it', async () => {
      const clock = testClock();
      let release!: () => void;
      const hung = new Promise<void>((resolve) => { release = resolve; });
      const calls: string[] = [];
      await write(opened.database, [stored('3.1', 1)]);
      const first = new EventDispatcher({
        outbox, log, clock: clock.now, leaseMs: 60_000, owner: 'node-1',
        handlers: [on('InstanceStored', 'test.slow', async (e) => { calls.push(`node-1#${e.attempt}`); await hung; })],
      });
      const firstRun = first.runOnce();
      while (calls.length === 0) await new Promise((r) => setTimeout(r, 5));
      const second = new EventDispatcher({
        outbox, log, clock: clock.now, owner: 'node-2',
        handlers: [on('InstanceStored', 'test.slow', async (e) => { calls.push(`node-2#${e.attempt}`); })],
      });
      assert.deepEqual(await second.runOnce(), { routed: 0, delivered: 0, failed: 0 }, 'leased: not delivered twice at once');
      clock.advance(60_001);
      await second.runOnce();
      assert.deepEqual(calls, ['node-1#1', 'node-2#2']);
      release();
      await firstRun;
      const rows = await opened.database.kysely<AtriumDatabase>().selectFrom('event_delivery').selectAll().execute();
      assert.deepEqual(rows.map((r) => [r.state, r.attempts]), [['done', 2]]);
    });
  });
}

describe('event dispatcher: nodes on one PostgreSQL', () => {
  let opened: TestDatabase;
  before(async () => { opened = await openTestDatabase('postgres'); });
  after(async () => opened.cleanup());

  test('two nodes deliver every event once, in order per study, never two of one study at once', async () => {
    const studies = Array.from({ length: 8 }, (_, i) => `4.${i}`);
    const events = Array.from({ length: 240 }, (_, n) => stored(studies[n % studies.length], n));
    for (let i = 0; i < events.length; i += 40) await write(opened.database, events.slice(i, i + 40));
    const delivered: { node: string; uid: string }[] = [];
    const busy = new Set<string>();
    const overlaps: string[] = [];
    const handler = (node: string) => on('InstanceStored', 'test.count', async (e) => {
      const study = e.payload.studyInstanceUid;
      if (busy.has(study)) overlaps.push(study);
      busy.add(study);
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      busy.delete(study);
      delivered.push({ node, uid: e.payload.sopInstanceUid });
    });
    const nodes = [
      new EventDispatcher({ outbox: new SqlEventOutbox(opened.database), handlers: [handler('n1')], log, batchSize: 4 }),
      new EventDispatcher({ outbox: new SqlEventOutbox(await opened.reopen()), handlers: [handler('n2')], log, batchSize: 4 }),
    ];
    const outbox = new SqlEventOutbox(opened.database);
    const settled = async () => { const b = await outbox.backlog(); return b.unrouted === 0 && b.pending.size === 0; };
    // Each node polls until nothing is left anywhere (a pass of one node may find all heads leased by the other).
    await Promise.all(nodes.map(async (node) => { while (!(await settled())) await node.runOnce(); }));
    assert.equal(delivered.length, events.length, 'each event once');
    assert.equal(new Set(delivered.map((d) => d.uid)).size, events.length);
    assert.deepEqual(overlaps, []);
    for (const study of studies) {
      const order = delivered.filter((d) => d.uid.startsWith(`${study}.`)).map((d) => Number(d.uid.slice(study.length + 1)));
      assert.deepEqual(order, [...order].sort((a, b) => a - b), `study ${study} in order`);
    }
    assert.ok(new Set(delivered.map((d) => d.node)).size === 2, 'both nodes delivered');
  });

  test('a node killed (SIGKILL) while delivering loses no event: another node delivers it after the lease', async () => {
    await clear(opened.database);
    await write(opened.database, [stored('5.1', 1), stored('5.1', 2)]);
    const script = fileURLToPath(new URL('../../test/support/event-node.ts', import.meta.url));
    const child = spawn(process.execPath, [script], { env: { ...process.env, ATRIUM_TEST_DB: opened.config.engine === 'postgres' ? opened.config.connectionString : '' }, stdio: ['ignore', 'pipe', 'inherit'] });
    const exit = await new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
    assert.equal(exit, 'SIGKILL');
    const db = opened.database.kysely<AtriumDatabase>();
    const left = await db.selectFrom('event_delivery').select(['state', 'attempts', 'locked_by']).orderBy('event_pk').execute();
    assert.deepEqual(left.map((r) => [r.state, r.attempts, r.locked_by]), [['pending', 1, 'killed-node'], ['pending', 0, null]]);

    const seen: string[] = [];
    const survivor = new EventDispatcher({
      outbox: new SqlEventOutbox(opened.database), log, owner: 'survivor', clock: () => new Date(Date.now() + 120_000),
      handlers: [on('InstanceStored', 'test.crash', async (e) => { seen.push(`${e.payload.sopInstanceUid}#${e.attempt}`); })],
    });
    await drain(survivor);
    assert.deepEqual(seen, ['5.1.1#2', '5.1.2#1']);
  });
});
