import { Kysely, Migrator, PostgresDialect, sql, type DatabaseIntrospector, type Migration, type MigrationProvider, type DatabaseMetadata, type TableMetadata } from 'kysely';
import pg from 'pg';
import { openSqlite } from './node-sqlite-dialect.ts';
import type { SchemaMigration, SqlEngine } from './migration.ts';

// BIGINT sizes come back from pg as strings by default; Atrium's sizes stay far below 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));

export type DatabaseConfig =
  | { engine: 'sqlite'; path: string }
  | { engine: 'postgres'; connectionString: string; poolSize?: number };

/**
 * The one SQL database of a node (the index, the job queue, the outbox, security, audit and every module's
 * tables): opened once by the composition root and handed to every SQL store, so that they share one
 * connection pool (one writer on SQLite) and a change and its outbox event can share one transaction.
 */
export class Database {
  readonly engine: SqlEngine;
  readonly #kysely: Kysely<any>;

  private constructor(kysely: Kysely<any>, engine: SqlEngine) {
    this.#kysely = kysely;
    this.engine = engine;
  }

  static open(config: DatabaseConfig): Database {
    if (config.engine === 'sqlite') return new Database(new Kysely({ dialect: openSqlite(config.path).dialect }), 'sqlite');
    const pool = new pg.Pool({ connectionString: config.connectionString, max: config.poolSize ?? 10 });
    return new Database(new Kysely({ dialect: new PostgresDialect({ pool }) }), 'postgres');
  }

  /**
   * The query builder, typed with the tables the caller knows: each store names its own (the archive's in
   * adapters/index/schema.ts, a module's beside its store); the database holds them all.
   */
  kysely<Tables>(): Kysely<Tables> {
    return this.#kysely as Kysely<Tables>;
  }

  /**
   * Runs, in name order, the migrations not yet applied; returns the names it applied. Names are unique
   * across modules and start with the 4-digit order (see migration.ts). An applied migration the code no
   * longer has (a data folder from a newer release) stops the start instead of guessing.
   */
  async migrate(migrations: readonly SchemaMigration[]): Promise<string[]> {
    checkMigrationNames(migrations);
    const engine = this.engine;
    const provider: MigrationProvider = {
      async getMigrations() {
        return Object.fromEntries(migrations.map((m): [string, Migration] => [m.name, { up: (db) => m.up(db, engine) }]));
      },
    };
    // Kysely looks for its bookkeeping tables across every schema it can see; with several Atrium
    // databases as schemas of one PostgreSQL database it would find another's. Pin it to ours.
    const migrationTableSchema = engine === 'postgres'
      ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(this.#kysely)).rows[0]?.schema
      : undefined;
    const db = migrationTableSchema === undefined ? this.#kysely : withSchemaIntrospector(this.#kysely, migrationTableSchema);
    const migrator = new Migrator({ db, provider, migrationTableSchema });
    const { error, results } = await migrator.migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
      throw new Error(`database migration ${failed} failed: ${(error as Error).message ?? error}`, { cause: error });
    }
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  }

  async close(): Promise<void> {
    await this.#kysely.destroy();
  }
}

/**
 * The Migrator asks whether its tables exist through the introspector, whose PostgreSQL query reads every
 * table of every schema (with pg_get_serial_sequence on each): a table dropped in another schema meanwhile
 * (another Atrium database of the same PostgreSQL database, the test suite's parallel files) fails it with
 * "relation ... does not exist". Ours asks information_schema about one schema, which no drop elsewhere breaks.
 */
function withSchemaIntrospector(kysely: Kysely<any>, schema: string): Kysely<any> {
  const introspector: DatabaseIntrospector = {
    async getSchemas() {
      const rows = await sql<{ name: string }>`select schema_name as name from information_schema.schemata where schema_name = ${schema}`.execute(kysely);
      return rows.rows;
    },
    async getTables(): Promise<TableMetadata[]> {
      const rows = await sql<{ name: string; type: string }>`select table_name as name, table_type as type from information_schema.tables where table_schema = ${schema}`.execute(kysely);
      return rows.rows.map((r) => ({ name: r.name, schema, isView: r.type === 'VIEW', columns: [] }));
    },
    async getMetadata(): Promise<DatabaseMetadata> {
      return { tables: await this.getTables() };
    },
  };
  return new Proxy(kysely, {
    get(target, prop) {
      if (prop === 'introspection') return introspector;
      // Kysely's getters read private fields: they run on the instance itself, not on the proxy.
      const value = Reflect.get(target, prop);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

function checkMigrationNames(migrations: readonly SchemaMigration[]): void {
  const byOrder = new Map<string, string>();
  for (const { name } of migrations) {
    const order = /^(\d{4})_[a-z0-9_]+$/.exec(name)?.[1];
    if (!order) throw new Error(`migration name "${name}" must be NNNN_<what> in lower case`);
    const other = byOrder.get(order);
    if (other) throw new Error(`migrations "${other}" and "${name}" share the order ${order}`);
    byOrder.set(order, name);
  }
}
