import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { SqliteDialect, type SqliteDatabase, type SqliteStatement } from 'kysely';

/**
 * Kysely's SqliteDialect expects a better-sqlite3-shaped database. Node 24 ships SQLite built in
 * (node:sqlite), which spares us a native addon compiled at install time; this adapts its API.
 */
class NodeSqliteStatement implements SqliteStatement {
  readonly reader: boolean;
  readonly #statement: StatementSync;

  constructor(statement: StatementSync) {
    this.#statement = statement;
    this.reader = statement.columns().length > 0;
  }

  all(parameters: ReadonlyArray<unknown>): unknown[] {
    return this.#statement.all(...(parameters as never[]));
  }

  run(parameters: ReadonlyArray<unknown>): { changes: number | bigint; lastInsertRowid: number | bigint } {
    return this.#statement.run(...(parameters as never[]));
  }

  iterate(parameters: ReadonlyArray<unknown>): IterableIterator<unknown> {
    return this.#statement.iterate(...(parameters as never[])) as IterableIterator<unknown>;
  }
}

class NodeSqliteDatabase implements SqliteDatabase {
  readonly #db: DatabaseSync;
  // Kysely prepares every statement on every execution; the ingest path runs the same dozen statements
  // per instance, and preparing them was 7% of ingest CPU (bench/ingest.ts profile).
  readonly #statements = new Map<string, NodeSqliteStatement>();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  close(): void {
    this.#db.close();
  }

  prepare(sql: string): SqliteStatement {
    // Kysely opens transactions with a deferred BEGIN. Under WAL with a second process (an `atrium import`
    // beside `atrium serve`), a deferred transaction that later writes fails with SQLITE_BUSY without
    // waiting; BEGIN IMMEDIATE takes the write lock up front and honours busy_timeout instead.
    const text = /^\s*begin\s*$/i.test(sql) ? 'begin immediate' : sql;
    let statement = this.#statements.get(text);
    if (!statement) {
      statement = new NodeSqliteStatement(this.#db.prepare(text));
      // Queries with IN-lists of varying length would grow the cache without bound: keep it small.
      if (this.#statements.size >= 500) this.#statements.delete(this.#statements.keys().next().value!);
      this.#statements.set(text, statement);
    }
    return statement;
  }
}

export function openSqlite(path: string): { dialect: SqliteDialect; database: DatabaseSync } {
  const database = new DatabaseSync(path);
  database.exec('PRAGMA journal_mode = WAL');
  // FULL makes each commit durable across power loss in WAL mode; NORMAL only across process crashes.
  database.exec('PRAGMA synchronous = FULL');
  database.exec('PRAGMA busy_timeout = 10000');
  database.exec('PRAGMA foreign_keys = ON');
  return { dialect: new SqliteDialect({ database: new NodeSqliteDatabase(database) }), database };
}
