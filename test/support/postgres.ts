/**
 * Per-test PostgreSQL schemas in the `test` database at 127.0.0.1:5432 (trust auth; user from PGUSER,
 * default 'postgres'; PGHOST / PGPORT / PGDATABASE override the defaults). Tests fail, never skip,
 * when PostgreSQL is missing: CI has it.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
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
