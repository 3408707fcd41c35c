import { openSync, closeSync, fdatasync } from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { SqliteDialect, SqliteDriver, type Driver, type SqliteDatabase, type SqliteDialectConfig, type SqliteStatement } from 'kysely';

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

/**
 * Group commit for SQLite. With `synchronous = FULL` every COMMIT fsyncs the WAL inside the statement, on
 * the event loop: 0.3 to 0.5 ms per transaction during which nothing else of the process runs (22% of the
 * main thread in a C-STORE profile). Here commits run with `synchronous = NORMAL` (WAL frames written, not
 * flushed) and the WAL is then flushed by fdatasync on the thread pool, after the connection is released,
 * before the transaction's caller goes on: the same guarantee as FULL (a transaction is reported only once
 * its frames are on disk), but the event loop keeps working meanwhile and one flush covers every commit made
 * before it started. Checkpoints still sync the WAL and the database themselves (NORMAL does that).
 */
export class WalFlusher {
  readonly #walPath: string;
  readonly #sync: (fd: number) => Promise<void>;
  #fd: number | undefined;
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  constructor(databasePath: string, sync: (fd: number) => Promise<void> = fdatasyncOnPool) {
    this.#walPath = `${databasePath}-wal`;
    this.#sync = sync;
  }

  /** Resolves once everything committed before the call is durable. */
  flush(): Promise<void> {
    // A flush already running may have started before the caller's commit: the caller needs the next one,
    // which every caller arriving meanwhile shares.
    if (this.#queued) return this.#queued;
    if (!this.#running) return this.#start();
    this.#queued = this.#running.catch(() => {}).then(() => {
      this.#queued = undefined;
      return this.#start();
    });
    return this.#queued;
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #start(): Promise<void> {
    // The WAL exists from the first write on, and SQLite keeps the same file while a connection is open.
    this.#fd ??= openSync(this.#walPath, 'r');
    const running = this.#sync(this.#fd);
    this.#running = running;
    void running.catch(() => {}).finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
    return running;
  }
}

function fdatasyncOnPool(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => error ? reject(error) : resolve()));
}

/** Kysely's SQLite driver, with the WAL flushed after any acquisition of the connection that wrote. */
class GroupCommitDriver extends SqliteDriver {
  readonly #database: DatabaseSync;
  readonly #totalChanges: StatementSync;
  readonly #flusher: WalFlusher;
  #flushedChanges = 0;

  constructor(config: SqliteDialectConfig, database: DatabaseSync, flusher: WalFlusher) {
    super(config);
    this.#database = database;
    this.#totalChanges = database.prepare('select total_changes() as n');
    this.#flusher = flusher;
  }

  override async releaseConnection(): Promise<void> {
    // total_changes() grows with every row written on this connection; an acquisition that wrote nothing
    // (a query) waits for no flush. Read before the release, while no other transaction can run.
    const changes = Number((this.#totalChanges.get() as { n: number | bigint }).n);
    const wrote = changes !== this.#flushedChanges && !this.#database.isTransaction;
    if (wrote) this.#flushedChanges = changes;
    await super.releaseConnection();
    if (wrote) await this.#flusher.flush();
  }

  override async destroy(): Promise<void> {
    await super.destroy();
    this.#flusher.close();
  }
}

class GroupCommitDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  readonly #database: DatabaseSync;
  readonly #flusher: WalFlusher;

  constructor(database: DatabaseSync, flusher: WalFlusher) {
    const config = { database: new NodeSqliteDatabase(database) };
    super(config);
    this.#config = config;
    this.#database = database;
    this.#flusher = flusher;
  }

  override createDriver(): Driver {
    return new GroupCommitDriver(this.#config, this.#database, this.#flusher);
  }
}

/** `syncWal` replaces the WAL's fdatasync (tests count and order the flushes with it). */
export function openSqlite(path: string, options: { syncWal?: (fd: number) => Promise<void> } = {}): { dialect: SqliteDialect; database: DatabaseSync } {
  const database = new DatabaseSync(path);
  database.exec('PRAGMA journal_mode = WAL');
  // NORMAL: a COMMIT writes the WAL without flushing it; GroupCommitDriver flushes it before the
  // transaction is reported, so each reported commit is durable across power loss, as with FULL.
  database.exec('PRAGMA synchronous = NORMAL');
  database.exec('PRAGMA busy_timeout = 10000');
  database.exec('PRAGMA foreign_keys = ON');
  return { dialect: new GroupCommitDialect(database, new WalFlusher(path, options.syncWal)), database };
}
