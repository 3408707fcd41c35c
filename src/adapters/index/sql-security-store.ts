import type { Kysely, Selectable, Transaction } from 'kysely';
import { AtriumError } from '../../errors.ts';
import type {
  ApiKeyRecord, FirstUserOutcome, NewApiKeyRecord, NewUserRecord, SecurityStore, SessionRecord, ThrottleState, UserPatch, UserRecord,
} from '../../ports/security-store.ts';
import { setupTokenKey } from '../../ports/security-store.ts';
import type { AtriumDatabase, SecurityApiKeyTable, SecuritySessionTable, SecurityUserTable } from './schema.ts';
import type { Database } from '../../database/database.ts';
import type { SqlEngine } from '../../database/migration.ts';

type Db = Kysely<AtriumDatabase>;
type Tx = Transaction<AtriumDatabase>;

const SETUP_TOKEN = 'setup_token';
const FIRST_USER_LOCK = 'first_user_lock';


/**
 * SecurityStore over the index database (tables `security_*`, migration 0003). Row locks on PostgreSQL
 * (`FOR UPDATE`) and BEGIN IMMEDIATE on SQLite make the failure counters and the first-user creation
 * safe under concurrent logins on any number of nodes.
 */
export class SqlSecurityStore implements SecurityStore {
  readonly #db: Db;
  readonly #engine: SqlEngine;

  constructor(database: Database) {
    const db = database.kysely<AtriumDatabase>();
    const engine = database.engine;
    this.#db = db;
    this.#engine = engine;
  }

  async countUsers(): Promise<number> {
    const row = await this.#db.selectFrom('security_user').select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async createUser(user: NewUserRecord, now: string): Promise<UserRecord> {
    try {
      return toUser(await insertUser(this.#db, user, now));
    } catch (error) {
      if (isUniqueViolation(error)) throw new AtriumError('conflict', `a user named ${user.username} exists`, { username: user.username }, { cause: error });
      throw error;
    }
  }

  async createFirstUser(user: NewUserRecord, now: string, setupTokenHash: string | null): Promise<FirstUserOutcome> {
    try {
      return await this.#db.transaction().execute(async (tx) => {
        // The lock row serializes concurrent first-user creations (the second insert waits for the first
        // transaction; once it commits the row is gone again and the user count answers).
        await tx.insertInto('security_setting').values({ setting_key: FIRST_USER_LOCK, value: '1', updated_at: now }).execute();
        const count = await tx.selectFrom('security_user').select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow();
        if (Number(count.n) > 0) throw new Rollback({ kind: 'users-exist' });
        if (setupTokenHash !== null) {
          // Each node that started without a user stored its own token (setupTokenKey): any printed one is good.
          const token = await tx.selectFrom('security_setting').select('value')
            .where('setting_key', 'in', [SETUP_TOKEN, setupTokenKey(setupTokenHash)]).where('value', '=', setupTokenHash).executeTakeFirst();
          if (!token) throw new Rollback({ kind: 'bad-setup-token' });
        }
        const row = await insertUser(tx, user, now);
        await tx.deleteFrom('security_setting')
          .where((eb) => eb.or([eb('setting_key', 'in', [FIRST_USER_LOCK, SETUP_TOKEN]), eb('setting_key', 'like', `${SETUP_TOKEN}.%`)])).execute();
        return { kind: 'created', user: toUser(row) } as FirstUserOutcome;
      });
    } catch (error) {
      if (error instanceof Rollback) return error.outcome;
      if (isUniqueViolation(error)) return { kind: 'users-exist' };
      throw error;
    }
  }

  async getUser(id: number): Promise<UserRecord | null> {
    if (!Number.isSafeInteger(id)) return null;
    const row = await this.#db.selectFrom('security_user').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? toUser(row) : null;
  }

  async getUserByUsername(username: string): Promise<UserRecord | null> {
    const row = await this.#db.selectFrom('security_user').selectAll().where('username', '=', username).executeTakeFirst();
    return row ? toUser(row) : null;
  }

  async listUsers(): Promise<UserRecord[]> {
    const rows = await this.#db.selectFrom('security_user').selectAll().orderBy('username').execute();
    return rows.map(toUser);
  }

  async updateUser(id: number, patch: UserPatch, now: string): Promise<UserRecord | null> {
    if (!Number.isSafeInteger(id)) return null;
    const set: Record<string, unknown> = { updated_at: now };
    if (patch.displayName !== undefined) set.display_name = patch.displayName;
    if (patch.passwordHash !== undefined) set.password_hash = patch.passwordHash;
    if (patch.roles !== undefined) set.roles = JSON.stringify(patch.roles);
    if (patch.dicomPersonName !== undefined) set.dicom_person_name = patch.dicomPersonName;
    if (patch.disabled !== undefined) set.disabled = patch.disabled ? 1 : 0;
    await this.#db.updateTable('security_user').set(set).where('pk', '=', id).execute();
    return await this.getUser(id);
  }

  async deleteUser(id: number): Promise<boolean> {
    if (!Number.isSafeInteger(id)) return false;
    return await this.#db.transaction().execute(async (tx) => {
      await tx.deleteFrom('security_session').where('user_pk', '=', id).execute();
      const result = await tx.deleteFrom('security_user').where('pk', '=', id).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }

  async recordLogin(id: number, now: string): Promise<void> {
    await this.#db.updateTable('security_user').set({ last_login_at: now }).where('pk', '=', id).execute();
  }

  async createSession(s: SessionRecord): Promise<void> {
    await this.#db.insertInto('security_session').values({
      id_hash: s.idHash, user_pk: s.userId, created_at: s.createdAt, last_seen_at: s.lastSeenAt, expires_at: s.expiresAt, source_address: s.sourceAddress,
    }).execute();
  }

  async getSession(idHash: string): Promise<SessionRecord | null> {
    const row = await this.#db.selectFrom('security_session').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    return row ? toSession(row) : null;
  }

  async touchSession(idHash: string, now: string): Promise<void> {
    await this.#db.updateTable('security_session').set({ last_seen_at: now }).where('id_hash', '=', idHash).where('last_seen_at', '<', now).execute();
  }

  async deleteSession(idHash: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('security_session').where('id_hash', '=', idHash).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async deleteUserSessions(userId: number): Promise<number> {
    const result = await this.#db.deleteFrom('security_session').where('user_pk', '=', userId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async purgeSessions(now: string, idleCutoff: string): Promise<number> {
    const result = await this.#db.deleteFrom('security_session')
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<', idleCutoff)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async createApiKey(key: NewApiKeyRecord): Promise<ApiKeyRecord> {
    try {
      const row = await this.#db.insertInto('security_api_key').values({
        key_id: key.keyId, name: key.name, secret_hash: key.secretHash, roles: JSON.stringify(key.roles),
        route_prefixes: key.routePrefixes === null ? null : JSON.stringify(key.routePrefixes), created_by: key.createdBy,
        created_at: key.createdAt, expires_at: key.expiresAt, revoked_at: null, last_used_at: null,
      }).returningAll().executeTakeFirstOrThrow();
      return toApiKey(row);
    } catch (error) {
      if (isUniqueViolation(error)) throw new AtriumError('conflict', `API key ${key.keyId} exists`, { keyId: key.keyId }, { cause: error });
      throw error;
    }
  }

  async getApiKeyBySecretHash(secretHash: string): Promise<ApiKeyRecord | null> {
    const row = await this.#db.selectFrom('security_api_key').selectAll().where('secret_hash', '=', secretHash).executeTakeFirst();
    return row ? toApiKey(row) : null;
  }

  async getApiKey(keyId: string): Promise<ApiKeyRecord | null> {
    const row = await this.#db.selectFrom('security_api_key').selectAll().where('key_id', '=', keyId).executeTakeFirst();
    return row ? toApiKey(row) : null;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    const rows = await this.#db.selectFrom('security_api_key').selectAll().orderBy('created_at').orderBy('pk').execute();
    return rows.map(toApiKey);
  }

  async revokeApiKey(keyId: string, now: string): Promise<boolean> {
    const existing = await this.getApiKey(keyId);
    if (!existing) return false;
    await this.#db.updateTable('security_api_key').set({ revoked_at: now }).where('key_id', '=', keyId).where('revoked_at', 'is', null).execute();
    return true;
  }

  async touchApiKey(keyId: string, now: string): Promise<void> {
    await this.#db.updateTable('security_api_key').set({ last_used_at: now }).where('key_id', '=', keyId).execute();
  }

  async getThrottle(key: string): Promise<ThrottleState | null> {
    const row = await this.#db.selectFrom('security_login_throttle').selectAll().where('throttle_key', '=', key).executeTakeFirst();
    return row ? { failures: Number(row.failures), windowStartedAt: row.window_started_at, lockedUntil: row.locked_until } : null;
  }

  async recordFailure(key: string, now: string, options: { windowMs: number; maxFailures: number; lockMs: number }): Promise<ThrottleState> {
    return await this.#db.transaction().execute(async (tx) => {
      await tx.insertInto('security_login_throttle').values({ throttle_key: key, failures: 0, window_started_at: now, locked_until: null })
        .onConflict((oc) => oc.column('throttle_key').doNothing()).execute();
      let query = tx.selectFrom('security_login_throttle').selectAll().where('throttle_key', '=', key);
      if (this.#engine === 'postgres') query = query.forUpdate();
      const row = await query.executeTakeFirstOrThrow();
      const nowMs = Date.parse(now);
      const lockOver = row.locked_until !== null && Date.parse(row.locked_until) <= nowMs;
      const windowOver = Date.parse(row.window_started_at) + options.windowMs <= nowMs;
      const fresh = lockOver || (row.locked_until === null && windowOver);
      const state: ThrottleState = fresh
        ? { failures: 1, windowStartedAt: now, lockedUntil: null }
        : { failures: Number(row.failures) + 1, windowStartedAt: row.window_started_at, lockedUntil: row.locked_until };
      if (state.lockedUntil === null && state.failures >= options.maxFailures) state.lockedUntil = new Date(nowMs + options.lockMs).toISOString();
      await tx.updateTable('security_login_throttle')
        .set({ failures: state.failures, window_started_at: state.windowStartedAt, locked_until: state.lockedUntil })
        .where('throttle_key', '=', key).execute();
      return state;
    });
  }

  async clearThrottle(key: string): Promise<void> {
    await this.#db.deleteFrom('security_login_throttle').where('throttle_key', '=', key).execute();
  }

  async getSetting(key: string): Promise<string | null> {
    const row = await this.#db.selectFrom('security_setting').select('value').where('setting_key', '=', key).executeTakeFirst();
    return row ? row.value : null;
  }

  async putSetting(key: string, value: string, now: string): Promise<void> {
    await this.#db.insertInto('security_setting').values({ setting_key: key, value, updated_at: now })
      .onConflict((oc) => oc.column('setting_key').doUpdateSet({ value, updated_at: now })).execute();
  }

  async deleteSetting(key: string): Promise<void> {
    await this.#db.deleteFrom('security_setting').where('setting_key', '=', key).execute();
  }
}

class Rollback extends Error {
  readonly outcome: FirstUserOutcome;
  constructor(outcome: FirstUserOutcome) {
    super(outcome.kind);
    this.outcome = outcome;
  }
}

async function insertUser(db: Db | Tx, user: NewUserRecord, now: string): Promise<Selectable<SecurityUserTable>> {
  return await db.insertInto('security_user').values({
    username: user.username, display_name: user.displayName, password_hash: user.passwordHash, roles: JSON.stringify(user.roles),
    dicom_person_name: user.dicomPersonName, disabled: 0, created_at: now, updated_at: now, last_login_at: null,
  }).returningAll().executeTakeFirstOrThrow();
}

function toUser(r: Selectable<SecurityUserTable>): UserRecord {
  return {
    id: Number(r.pk), username: r.username, displayName: r.display_name, passwordHash: r.password_hash, roles: JSON.parse(r.roles),
    dicomPersonName: r.dicom_person_name, disabled: Number(r.disabled) !== 0, createdAt: r.created_at, updatedAt: r.updated_at, lastLoginAt: r.last_login_at,
  };
}

function toSession(r: Selectable<SecuritySessionTable>): SessionRecord {
  return {
    idHash: r.id_hash, userId: Number(r.user_pk), createdAt: r.created_at, lastSeenAt: r.last_seen_at, expiresAt: r.expires_at, sourceAddress: r.source_address,
  };
}

function toApiKey(r: Selectable<SecurityApiKeyTable>): ApiKeyRecord {
  return {
    id: Number(r.pk), keyId: r.key_id, name: r.name, secretHash: r.secret_hash, roles: JSON.parse(r.roles),
    routePrefixes: r.route_prefixes === null ? null : JSON.parse(r.route_prefixes), createdBy: r.created_by, createdAt: r.created_at,
    expiresAt: r.expires_at, revokedAt: r.revoked_at, lastUsedAt: r.last_used_at,
  };
}

function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e?.code === '23505' || /UNIQUE constraint failed/.test(e?.message ?? '');
}
