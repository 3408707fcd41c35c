// Group commit on SQLite: a write is reported only after a WAL flush that started after its COMMIT; one flush
// serves the commits made while another ran; reads wait for none.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fdatasync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Kysely, sql, type Generated } from 'kysely';
import { openSqlite } from './node-sqlite-dialect.ts';

interface Db { entry: { id: Generated<number>; label: string } }

let dir: string;
let db: Kysely<Db>;
/** For each WAL flush: the rows committed when it started, and whether it has finished. */
const flushes: { rowsCovered: number; done: boolean }[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-group-commit-'));
  const { dialect, database } = openSqlite(path.join(dir, 'index.sqlite'), {
    syncWal: async (fd) => {
      const flush = { rowsCovered: Number((database.prepare('select count(*) as n from entry').get() as { n: number }).n), done: false };
      flushes.push(flush);
      await new Promise<void>((resolve, reject) => fdatasync(fd, (error) => error ? reject(error) : resolve()));
      await new Promise((resolve) => setTimeout(resolve, 5)); // a slow disk: commits pile up meanwhile
      flush.done = true;
    },
  });
  db = new Kysely<Db>({ dialect });
  await sql`create table entry (id integer primary key, label text not null)`.execute(db);
});

after(async () => {
  await db?.destroy();
  await rm(dir, { recursive: true, force: true });
});

test('every transaction is reported after a flush that covers it; concurrent ones share flushes', async () => {
  flushes.length = 0;
  const n = 40;
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const id = await db.transaction().execute(async (tx) => {
      const row = await tx.insertInto('entry').values({ label: `t${i}` }).returning('id').executeTakeFirstOrThrow();
      return row.id;
    });
    // Row ids grow in commit order: a finished flush that had seen `id` rows committed covers this one.
    assert.ok(flushes.some((f) => f.done && f.rowsCovered >= id), `transaction ${id} reported before a flush covered it`);
  }));
  assert.ok(flushes.length >= 1);
  assert.ok(flushes.length < n, `${flushes.length} flushes for ${n} concurrent commits: none was shared`);
});

test('a write outside a transaction waits for its flush too; a read waits for none', async () => {
  const before = flushes.length;
  const { id } = await db.insertInto('entry').values({ label: 'alone' }).returning('id').executeTakeFirstOrThrow();
  assert.equal(flushes.length, before + 1);
  assert.ok(flushes.at(-1)!.done && flushes.at(-1)!.rowsCovered >= id);
  await db.selectFrom('entry').selectAll().execute();
  await db.transaction().execute(async (tx) => await tx.selectFrom('entry').select('id').execute());
  assert.equal(flushes.length, before + 1, 'a read-only use of the connection flushed the WAL');
});

test('a rolled-back transaction is not reported as written, and the next commit is still flushed', async () => {
  const before = flushes.length;
  await assert.rejects(db.transaction().execute(async (tx) => {
    await tx.insertInto('entry').values({ label: 'rolled back' }).execute();
    throw new Error('abandoned');
  }), /abandoned/);
  const rows = await db.selectFrom('entry').select('id').where('label', '=', 'rolled back').execute();
  assert.equal(rows.length, 0);
  const { id } = await db.insertInto('entry').values({ label: 'after' }).returning('id').executeTakeFirstOrThrow();
  assert.ok(flushes.length > before && flushes.at(-1)!.done && flushes.at(-1)!.rowsCovered >= id);
});
