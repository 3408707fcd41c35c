/**
 * Storage of the security core (src/security/): local users, their sessions, API keys, login failure
 * counters and a few settings (the first-run setup token). Secrets are never stored: passwords as
 * scrypt hashes, session ids, API key secrets and setup tokens as SHA-256 digests. Times are ISO-8601
 * UTC text; the service passes them in (injected clock), the store never reads the wall clock.
 */

export interface UserRecord {
  id: number;
  /** Lower-cased, trimmed; unique. */
  username: string;
  displayName: string | null;
  passwordHash: string;
  /** Role names (validated by the service). */
  roles: string[];
  /** DICOM person name (PN) for the referring-clinician rule, e.g. `DOE^JANE`. */
  dicomPersonName: string | null;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
  lastLoginAt: string | null;
}

export interface NewUserRecord {
  username: string;
  displayName: string | null;
  passwordHash: string;
  roles: string[];
  dicomPersonName: string | null;
}

export type UserPatch = Partial<Pick<UserRecord, 'displayName' | 'passwordHash' | 'roles' | 'dicomPersonName' | 'disabled'>>;

export interface SessionRecord {
  /** SHA-256 (hex) of the session id the client holds. */
  idHash: string;
  userId: number;
  createdAt: string;
  lastSeenAt: string;
  /** Absolute expiry. Idle expiry is lastSeenAt + the configured idle time. */
  expiresAt: string;
  sourceAddress: string | null;
}

export interface ApiKeyRecord {
  id: number;
  /** Public identifier (shown in lists and logs, part of the key). Unique. */
  keyId: string;
  name: string;
  /** SHA-256 (hex) of the whole key. Unique. */
  secretHash: string;
  roles: string[];
  /** null: any route. */
  routePrefixes: string[] | null;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export type NewApiKeyRecord = Omit<ApiKeyRecord, 'id' | 'revokedAt' | 'lastUsedAt'>;

/** Failed logins under one key (`user:<name>` or `addr:<ip>`) within the current window. */
export interface ThrottleState {
  failures: number;
  windowStartedAt: string;
  lockedUntil: string | null;
}

export type FirstUserOutcome =
  | { kind: 'created'; user: UserRecord }
  | { kind: 'users-exist' }
  | { kind: 'bad-setup-token' };

export interface SecurityStore {
  countUsers(): Promise<number>;
  /** AtriumError('conflict') when the username is taken. */
  createUser(user: NewUserRecord, now: string): Promise<UserRecord>;
  /**
   * Creates the first user, atomically: only while no user exists (two concurrent calls: one wins), and
   * when `setupTokenHash` is a string only if it equals the stored setup token's digest (which is then
   * consumed). `null`: no token check (a trusted local caller such as the CLI).
   */
  createFirstUser(user: NewUserRecord, now: string, setupTokenHash: string | null): Promise<FirstUserOutcome>;
  getUser(id: number): Promise<UserRecord | null>;
  getUserByUsername(username: string): Promise<UserRecord | null>;
  listUsers(): Promise<UserRecord[]>;
  updateUser(id: number, patch: UserPatch, now: string): Promise<UserRecord | null>;
  /** Deletes the user and their sessions. */
  deleteUser(id: number): Promise<boolean>;
  recordLogin(id: number, now: string): Promise<void>;

  createSession(session: SessionRecord): Promise<void>;
  getSession(idHash: string): Promise<SessionRecord | null>;
  touchSession(idHash: string, now: string): Promise<void>;
  deleteSession(idHash: string): Promise<boolean>;
  deleteUserSessions(userId: number): Promise<number>;
  /** Deletes sessions past `now` (absolute) or last seen before `idleCutoff`. */
  purgeSessions(now: string, idleCutoff: string): Promise<number>;

  /** AtriumError('conflict') when the key id is taken. */
  createApiKey(key: NewApiKeyRecord): Promise<ApiKeyRecord>;
  getApiKeyBySecretHash(secretHash: string): Promise<ApiKeyRecord | null>;
  getApiKey(keyId: string): Promise<ApiKeyRecord | null>;
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** Sets revoked_at (once); false when there is no such key. */
  revokeApiKey(keyId: string, now: string): Promise<boolean>;
  touchApiKey(keyId: string, now: string): Promise<void>;

  getThrottle(key: string): Promise<ThrottleState | null>;
  /**
   * Counts one failure under `key`, atomically: a window older than `windowMs` or a lock that has run
   * out starts afresh; reaching `maxFailures` sets `lockedUntil = now + lockMs`.
   */
  recordFailure(key: string, now: string, options: { windowMs: number; maxFailures: number; lockMs: number }): Promise<ThrottleState>;
  clearThrottle(key: string): Promise<void>;

  getSetting(key: string): Promise<string | null>;
  putSetting(key: string, value: string, now: string): Promise<void>;
  deleteSetting(key: string): Promise<void>;
}

/**
 * Where a first-run setup token's digest is kept: one key per token, so that several nodes starting on one
 * empty database (docs/scale-out.md) each print a token that works, rather than the last to start
 * overwriting the others'. All are removed when the first administrator is created.
 */
export function setupTokenKey(digest: string): string {
  return `setup_token.${digest.slice(0, 16)}`;
}
