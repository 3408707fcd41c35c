import type { CreateTableBuilder, Kysely } from 'kysely';

export type SqlEngine = 'sqlite' | 'postgres';

/**
 * One schema change of one module, in a file of its own named `NNNN_<module>_<what>.ts` under the module's
 * `migrations/` folder. `name` is what the database records as applied: NNNN orders every module's
 * migrations in one sequence, so a module's tables may reference the core's. The first five (the core
 * before modules existed) keep the names existing data folders have recorded (`0001_initial_schema` ...).
 * A migration is never edited once released: a change is a new file.
 */
export interface SchemaMigration {
  name: string;
  module: string;
  up(db: Kysely<any>, engine: SqlEngine): Promise<void>;
}

/**
 * The surrogate key, the one difference between the engines' DDL: SQLite's INTEGER PRIMARY KEY is the rowid,
 * PostgreSQL wants an identity column. Sizes are BIGINT elsewhere (a whole-slide study passes 2^31 bytes).
 */
export function withPk<T extends string>(engine: SqlEngine, table: CreateTableBuilder<T, never>): CreateTableBuilder<T, never> {
  return engine === 'sqlite'
    ? table.addColumn('pk', 'integer', (c) => c.primaryKey().autoIncrement())
    : table.addColumn('pk', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity());
}
