import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { AtriumDatabase } from './schema.ts';
import { SqlIndexStore } from './sql-index-store.ts';
import { openSqlite } from './node-sqlite-dialect.ts';

// BIGINT sizes come back from pg as strings by default; Atrium's sizes stay far below 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));

export type IndexConfig =
  | { engine: 'sqlite'; path: string }
  | { engine: 'postgres'; connectionString: string; poolSize?: number };

export async function openIndexStore(config: IndexConfig): Promise<SqlIndexStore> {
  let store: SqlIndexStore;
  if (config.engine === 'sqlite') {
    const { dialect } = openSqlite(config.path);
    store = new SqlIndexStore(new Kysely<AtriumDatabase>({ dialect }), 'sqlite');
  } else {
    const pool = new pg.Pool({ connectionString: config.connectionString, max: config.poolSize ?? 10 });
    store = new SqlIndexStore(new Kysely<AtriumDatabase>({ dialect: new PostgresDialect({ pool }) }), 'postgres');
  }
  await store.migrate();
  return store;
}
