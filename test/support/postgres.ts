/**
 * Per-test PostgreSQL schemas in the `test` database at 127.0.0.1:5432 (trust auth; user from PGUSER,
 * default 'postgres'; PGHOST / PGPORT / PGDATABASE override the defaults). Tests fail, never skip,
 * when PostgreSQL is missing: CI has it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase } from '../../src/app.ts';
import type { Database, DatabaseConfig } from '../../src/database/database.ts';
import { SqlIndexStore } from '../../src/adapters/index/sql-index-store.ts';
import type { PoolConfig } from 'pg';

export interface TestSchema {
  /** Connection string whose sessions use only `schema` (search_path set via `options`). */
  connectionString: string;
  schema: string;
  /** The same as a pg config object, for `new pg.Pool(pgOptions)` or Kysely's PostgresDialect. */
  pgOptions: PoolConfig;
  /** Drops the schema and everything in it. Safe to call twice. */
  drop(): Promise<void>;
}

function baseConfig(): { host: string; port: number; user: string; database: string } {
  return {
    host: process.env.PGHOST || '127.0.0.1',
    port: Number(process.env.PGPORT || 5432),
    user: process.env.PGUSER || 'postgres',
    database: process.env.PGDATABASE || 'test',
  };
}

function describeTarget(): string {
  const c = baseConfig();
  return `postgresql://${c.user}@${c.host}:${c.port}/${c.database}`;
}

async function withAdminClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ ...baseConfig(), connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${describeTarget()} (${(err as Error).message}). ` +
        'Tests need a running PostgreSQL with a database "test" (trust auth); set PGUSER/PGHOST/PGPORT if needed.',
      { cause: err },
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Resolves when PostgreSQL answers; rejects with a clear message otherwise (use in `before()`). */
export async function postgresAvailable(): Promise<void> {
  await withAdminClient(async (client) => {
    await client.query('SELECT 1');
  });
}

export async function createTestSchema(): Promise<TestSchema> {
  const schema = `atrium_test_${process.pid}_${randomBytes(5).toString('hex')}`;
  await withAdminClient(async (client) => {
    await client.query(`CREATE SCHEMA "${schema}"`);
  });
  const c = baseConfig();
  const options = `-c search_path=${schema}`;
  const connectionString =
    `postgresql://${encodeURIComponent(c.user)}@${c.host}:${c.port}/${encodeURIComponent(c.database)}` +
    `?options=${encodeURIComponent(options)}`;
  let dropped = false;
  return {
    connectionString,
    schema,
    pgOptions: { ...c, options },
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdminClient(async (client) => {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      });
    },
  };
}

/**
 * The database of the given engine in a throwaway place (a temp folder for SQLite, a schema for
 * PostgreSQL), migrated with every module's migrations, with the index store over it: for the tests of
 * the stores that live in it. `reopen()` opens another connection (pool) to the same database, as a
 * second node would.
 */
export async function openTestDatabase(kind: 'sqlite' | 'postgres'): Promise<TestDatabase> {
  let config: DatabaseConfig;
  let remove: () => Promise<void>;
  if (kind === 'sqlite') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-index-'));
    config = { engine: 'sqlite', path: path.join(dir, 'index.sqlite') };
    remove = () => rm(dir, { recursive: true, force: true });
  } else {
    const schema = await createTestSchema();
    config = { engine: 'postgres', connectionString: schema.connectionString };
    remove = () => schema.drop();
  }
  const database = await openDatabase(config);
  const others: Database[] = [];
  return {
    database, config, store: new SqlIndexStore(database),
    async reopen() {
      const other = await openDatabase(config);
      others.push(other);
      return other;
    },
    async cleanup() {
      for (const other of others) await other.close();
      await database.close();
      await remove();
    },
  };
}

export interface TestDatabase {
  database: Database;
  config: DatabaseConfig;
  store: SqlIndexStore;
  reopen(): Promise<Database>;
  cleanup(): Promise<void>;
}
