/**
 * The security core's one service: local users (scrypt) and their sessions, API keys, the first-run
 * administrator, login lock-out, OIDC bearer tokens, DIMSE user identities, and the HTTP-agnostic
 * `authenticateRequest` every HTTP transport calls. Authorization is policy.ts (`authorize`,
 * `studyFilter`), re-exported here. Time comes from the injected clock only.
 */
import { randomBytes } from 'node:crypto';
import { AtriumError } from '../errors.ts';
import { setupTokenKey, type ApiKeyRecord, type SecurityStore, type UserRecord } from '../ports/security-store.ts';
import { OidcVerifier } from './oidc.ts';
import { DEFAULT_SCRYPT, dummyPasswordHash, hashPassword, randomSecret, sha256Hex, verifyPassword, type ScryptParams } from './secrets.ts';
import { AuthError, isRole, type AuthMethod, type Principal, type Role, type SecurityConfig } from './types.ts';

export { authorize, studyFilter, studyMatchesFilter, routeAllowed } from './policy.ts';

/** Name of the session cookie. */
export const SESSION_COOKIE = 'atrium_session';
/** API keys look like `atr_<12 hex key id>_<43 base64url characters>`. */
const API_KEY_PATTERN = /^atr_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$/;
/** last_seen_at / last_used_at are written at most this often per session or key. */
const TOUCH_INTERVAL_MS = 60_000;
const PASSWORD_MIN = 12;
const PASSWORD_MAX = 1024;

type Headers = Record<string, string | string[] | undefined>;

/** A user as shown (never the password hash). */
export interface UserView {
  id: number;
  username: string;
  displayName: string | null;
  roles: Role[];
  dicomPersonName: string | null;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
  lastLoginAt: string | null;
}

/** An API key as shown (never the secret nor its hash). */
export interface ApiKeyView {
  keyId: string;
  name: string;
  roles: Role[];
  routePrefixes: string[] | null;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export interface NewUser {
  username: string;
  password: string;
  roles: Role[];
  displayName?: string | null;
  dicomPersonName?: string | null;
}

export interface NewApiKey {
  name: string;
  roles: Role[];
  /** Limit the key to these path prefixes (`/dicomweb/`); null or absent: any route. */
  routePrefixes?: string[] | null;
  /** Absent: one year from now; null: never expires. */
  expiresAt?: Date | null;
  /** Who created it (a principal's name), for the record. */
  createdBy?: string | null;
}

export interface LoginResult {
  /** The session id for the cookie: shown this once, stored only as a digest. */
  sessionId: string;
  expiresAt: string;
  principal: Principal;
}

/** DIMSE User Identity Negotiation (PS3.7 D.3.3.7): 1 username, 2 username+passcode, 3 Kerberos, 4 SAML, 5 JWT. */
export interface DicomUserIdentity {
  type: number;
  primary: string | Uint8Array;
  secondary?: string | Uint8Array | null;
}

export interface SecurityServiceOptions {
  store: SecurityStore;
  config: SecurityConfig;
  clock?: () => Date;
  /** scrypt cost for new password hashes (tests lower it). */
  scrypt?: ScryptParams;
  /** Replaces the OIDC verifier built from config.oidc (tests). */
  oidc?: OidcVerifier | null;
}

export class SecurityService {
  readonly #store: SecurityStore;
  readonly #config: SecurityConfig;
  readonly #now: () => Date;
  readonly #scrypt: ScryptParams;
  readonly #oidc: OidcVerifier | null;

  constructor(options: SecurityServiceOptions) {
    this.#store = options.store;
    this.#config = options.config;
    this.#now = options.clock ?? (() => new Date());
    this.#scrypt = options.scrypt ?? DEFAULT_SCRYPT;
    this.#oidc = options.oidc !== undefined
      ? options.oidc
      : options.config.oidc
        ? new OidcVerifier(options.config.oidc, { clock: this.#now, personNameClaim: options.config.referringClinicianRule.personNameClaim })
        : null;
  }

  get enabled(): boolean {
    return this.#config.enabled;
  }

  // ---------------------------------------------------------------- first run

  /**
   * Call once at start. While no user exists (and security is on), issues a fresh one-time setup token
   * (the previous one stops working) and returns it for the log (`setupMessage`); otherwise null.
   */
  async start(): Promise<{ setupToken: string | null }> {
    if (!this.#config.enabled) return { setupToken: null };
    if (await this.#store.countUsers() > 0) {
      await this.#store.deleteSetting('setup_token');
      return { setupToken: null };
    }
    const token = randomSecret(24);
    const digest = sha256Hex(token);
    await this.#store.putSetting(setupTokenKey(digest), digest, this.#iso());
    return { setupToken: token };
  }

  /** Whether the first administrator is still to be created. */
  async needsSetup(): Promise<boolean> {
    return this.#config.enabled && (await this.#store.countUsers()) === 0;
  }

  /**
   * The first administrator, only while no user exists (concurrent calls: one wins). A remote caller must
   * give the setup token from the log (`setupToken`); a trusted local caller (the CLI, which has the data
   * folder anyway) passes `trustedLocal: true` instead. Throws AtriumError: 'conflict' once a user
   * exists, 'forbidden' for a wrong or missing token, 'invalid-input' for a weak password or bad name.
   */
  async createFirstAdmin(input: { username: string; password: string; displayName?: string | null; setupToken?: string; trustedLocal?: boolean }): Promise<UserView> {
    if (!input.trustedLocal && !input.setupToken) throw new AtriumError('forbidden', 'the setup token printed in the log at start is required');
    const record = await this.#newUserRecord({ username: input.username, password: input.password, roles: ['administrator'], displayName: input.displayName });
    const outcome = await this.#store.createFirstUser(record, this.#iso(), input.trustedLocal ? null : sha256Hex(input.setupToken!));
    if (outcome.kind === 'users-exist') throw new AtriumError('conflict', 'the first administrator exists already; ask an administrator for an account');
    if (outcome.kind === 'bad-setup-token') throw new AtriumError('forbidden', 'the setup token is wrong or was used already (a restart prints a new one)');
    return toUserView(outcome.user);
  }

  /** What to log at start when `start()` returned a token. */
  setupMessage(setupToken: string): string {
    return `No user exists yet. Create the first administrator with the one-time setup token ${setupToken} `
      + '(it works once, until the first administrator exists; every start, on every node, prints another that works too). Atrium ships no default password.';
  }

  // ---------------------------------------------------------------- users

  async createUser(input: NewUser): Promise<UserView> {
    return toUserView(await this.#store.createUser(await this.#newUserRecord(input), this.#iso()));
  }

  async listUsers(): Promise<UserView[]> {
    return (await this.#store.listUsers()).map(toUserView);
  }

  async getUser(id: number): Promise<UserView | null> {
    const user = await this.#store.getUser(id);
    return user ? toUserView(user) : null;
  }

  /** Disabling a user also ends their sessions. */
  async updateUser(id: number, patch: { roles?: Role[]; displayName?: string | null; dicomPersonName?: string | null; disabled?: boolean }): Promise<UserView | null> {
    if (patch.roles !== undefined) validateRoles(patch.roles);
    const user = await this.#store.updateUser(id, patch, this.#iso());
    if (user && patch.disabled) await this.#store.deleteUserSessions(id);
    return user ? toUserView(user) : null;
  }

  /** Sets a new password and ends the user's sessions. */
  async setPassword(id: number, password: string): Promise<boolean> {
    validatePassword(password);
    const user = await this.#store.updateUser(id, { passwordHash: await hashPassword(password, this.#scrypt) }, this.#iso());
    if (user) await this.#store.deleteUserSessions(id);
    return user !== null;
  }

  async deleteUser(id: number): Promise<boolean> {
    return await this.#store.deleteUser(id);
  }

  // ---------------------------------------------------------------- login, sessions

  /** Username and password -> a new session, or why not (with lock-out per user and per address). */
  async login(username: string, password: string, sourceAddress: string | null): Promise<LoginResult | AuthError> {
    const checked = await this.#checkPassword(username, password, sourceAddress);
    if (checked instanceof AuthError) return checked;
    const now = this.#now();
    const sessionId = randomSecret(32);
    const expiresAt = new Date(now.getTime() + this.#config.sessions.absoluteHours * 3_600_000).toISOString();
    await this.#store.createSession({
      idHash: sha256Hex(sessionId), userId: checked.id, createdAt: now.toISOString(), lastSeenAt: now.toISOString(), expiresAt, sourceAddress,
    });
    return { sessionId, expiresAt, principal: userPrincipal(checked, 'password', sourceAddress) };
  }

  /** Ends a session; false when there was none. */
  async logout(sessionId: string): Promise<boolean> {
    return await this.#store.deleteSession(sha256Hex(sessionId));
  }

  /** The Set-Cookie value for a new session. */
  sessionCookie(login: Pick<LoginResult, 'sessionId' | 'expiresAt'>): string {
    const secure = this.#config.sessions.secureCookie ? '; Secure' : '';
    return `${SESSION_COOKIE}=${login.sessionId}; Path=/; HttpOnly; SameSite=Lax; Expires=${new Date(login.expiresAt).toUTCString()}${secure}`;
  }

  /** The Set-Cookie value that removes the session cookie (logout). */
  clearSessionCookie(): string {
    const secure = this.#config.sessions.secureCookie ? '; Secure' : '';
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${secure}`;
  }

  /** Deletes expired sessions (call now and then, e.g. hourly). */
  async purgeExpiredSessions(): Promise<number> {
    const now = this.#now();
    return await this.#store.purgeSessions(now.toISOString(), new Date(now.getTime() - this.#idleMs()).toISOString());
  }

  // ---------------------------------------------------------------- API keys

  /** A new API key: `key` is shown this once; only its SHA-256 is stored. */
  async createApiKey(input: NewApiKey): Promise<{ key: string; apiKey: ApiKeyView }> {
    if (typeof input.name !== 'string' || input.name.trim() === '') throw new AtriumError('invalid-input', 'an API key needs a name');
    validateRoles(input.roles);
    const routePrefixes = input.routePrefixes ?? null;
    if (routePrefixes !== null) {
      if (!Array.isArray(routePrefixes) || routePrefixes.length === 0) throw new AtriumError('invalid-input', 'routePrefixes must be a non-empty list of paths, or null');
      for (const p of routePrefixes) if (typeof p !== 'string' || !p.startsWith('/')) throw new AtriumError('invalid-input', `route prefix "${p}" must start with /`);
    }
    const now = this.#now();
    const expiresAt = input.expiresAt === undefined ? new Date(now.getTime() + 365 * 86_400_000) : input.expiresAt;
    if (expiresAt !== null && expiresAt.getTime() <= now.getTime()) throw new AtriumError('invalid-input', 'expiresAt must be in the future');
    const keyId = randomBytes(6).toString('hex');
    const key = `atr_${keyId}_${randomSecret(32)}`;
    const record = await this.#store.createApiKey({
      keyId, name: input.name.trim(), secretHash: sha256Hex(key), roles: [...new Set(input.roles)], routePrefixes,
      createdBy: input.createdBy ?? null, createdAt: now.toISOString(), expiresAt: expiresAt === null ? null : expiresAt.toISOString(),
    });
    return { key, apiKey: toApiKeyView(record) };
  }

  async listApiKeys(): Promise<ApiKeyView[]> {
    return (await this.#store.listApiKeys()).map(toApiKeyView);
  }

  async revokeApiKey(keyId: string): Promise<boolean> {
    return await this.#store.revokeApiKey(keyId, this.#iso());
  }

  // ---------------------------------------------------------------- authentication

  /**
   * Who is making an HTTP request: `Authorization: Bearer <API key or JWT>`, else `X-Api-Key`, else the
   * `atrium_session` cookie. `method` (the HTTP method) enables the cross-site check of cookie-authenticated
   * unsafe requests (an Origin that is not the Host is refused). No credentials: AuthError('no-credentials').
   * With security disabled: an anonymous principal that every check allows.
   */
  async authenticateRequest(headers: Headers, remoteAddress: string | null, options: { method?: string } = {}): Promise<Principal | AuthError> {
    if (!this.#config.enabled) return disabledPrincipal(remoteAddress);
    const authorization = header(headers, 'authorization');
    if (authorization !== undefined) {
      const match = /^Bearer[ ]+([^ ]+)\s*$/i.exec(authorization);
      if (!match) return new AuthError('malformed-credentials', 'the Authorization header must be "Bearer <token>"');
      return await this.#bearer(match[1], remoteAddress, 'oidc-jwt');
    }
    const apiKey = header(headers, 'x-api-key');
    if (apiKey !== undefined) return await this.#apiKey(apiKey.trim(), remoteAddress);
    const sessionId = cookie(header(headers, 'cookie'), SESSION_COOKIE);
    if (sessionId !== undefined) {
      const method = (options.method ?? 'GET').toUpperCase();
      if (!['GET', 'HEAD', 'OPTIONS'].includes(method) && isCrossSite(headers)) {
        return new AuthError('cross-site', 'a request from another site may not use the session cookie');
      }
      return await this.#session(sessionId, remoteAddress);
    }
    return new AuthError('no-credentials', 'authentication is required');
  }

  /**
   * DIMSE user identity (A-ASSOCIATE-RQ User Identity sub-item) -> the same users and roles as HTTP:
   * type 2 (username + passcode) is a local user's password (same lock-out as logins), type 5 a JWT of
   * the OIDC issuer. Types 1 (username alone, no proof), 3 (Kerberos) and 4 (SAML) are refused.
   */
  async authenticateDicomUser(identity: DicomUserIdentity, sourceAddress: string | null): Promise<Principal | AuthError> {
    if (!this.#config.enabled) return disabledPrincipal(sourceAddress);
    const primary = text(identity.primary);
    switch (identity.type) {
      case 2: {
        const checked = await this.#checkPassword(primary, text(identity.secondary ?? ''), sourceAddress);
        return checked instanceof AuthError ? checked : userPrincipal(checked, 'dicom-password', sourceAddress);
      }
      case 5:
        return await this.#bearer(primary.trim(), sourceAddress, 'dicom-jwt');
      case 1:
        return new AuthError('unsupported-identity', 'a username without a passcode proves nothing; use username and passcode (type 2) or a JWT (type 5)');
      default:
        return new AuthError('unsupported-identity', `user identity type ${identity.type} is not supported (2: username and passcode, 5: JWT)`);
    }
  }

  /** A principal for a DIMSE caller known only by its AE title (roles decided by the caller, e.g. from the peer registry). */
  dicomAePrincipal(aeTitle: string, sourceAddress: string | null, roles: Role[]): Principal {
    if (!this.#config.enabled) return disabledPrincipal(sourceAddress);
    return { kind: 'dicom-ae', id: aeTitle.trim(), name: aeTitle.trim(), roles: roles.filter(isRole), authMethod: 'dicom-ae', sourceAddress, routePrefixes: null, personNames: [] };
  }

  async #bearer(token: string, sourceAddress: string | null, jwtMethod: AuthMethod): Promise<Principal | AuthError> {
    if (token.startsWith('atr_')) return await this.#apiKey(token, sourceAddress);
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) return new AuthError('malformed-credentials', 'the bearer token is neither an API key nor a JWT');
    if (!this.#oidc) return new AuthError('oidc-not-configured', 'JWT bearer tokens are not accepted: no OIDC issuer is configured (security.oidc)');
    return await this.#oidc.verify(token, sourceAddress, jwtMethod);
  }

  async #apiKey(key: string, sourceAddress: string | null): Promise<Principal | AuthError> {
    if (!API_KEY_PATTERN.test(key)) return new AuthError('malformed-credentials', 'not an Atrium API key');
    const record = await this.#store.getApiKeyBySecretHash(sha256Hex(key));
    if (!record) return new AuthError('bad-credentials', 'unknown API key');
    const now = this.#now();
    if (record.revokedAt !== null) return new AuthError('api-key-revoked', `API key ${record.keyId} was revoked`);
    if (record.expiresAt !== null && Date.parse(record.expiresAt) <= now.getTime()) return new AuthError('api-key-expired', `API key ${record.keyId} has expired`);
    if (record.lastUsedAt === null || Date.parse(record.lastUsedAt) + TOUCH_INTERVAL_MS <= now.getTime()) {
      await this.#store.touchApiKey(record.keyId, now.toISOString());
    }
    return {
      kind: 'api-key', id: record.keyId, name: record.name, roles: record.roles.filter(isRole), authMethod: 'api-key', sourceAddress,
      routePrefixes: record.routePrefixes, personNames: [],
    };
  }

  async #session(sessionId: string, sourceAddress: string | null): Promise<Principal | AuthError> {
    const idHash = sha256Hex(sessionId);
    const session = await this.#store.getSession(idHash);
    if (!session) return new AuthError('bad-credentials', 'unknown session (logged out or expired)');
    const now = this.#now();
    if (Date.parse(session.expiresAt) <= now.getTime() || Date.parse(session.lastSeenAt) + this.#idleMs() <= now.getTime()) {
      await this.#store.deleteSession(idHash);
      return new AuthError('session-expired', 'the session has expired; log in again');
    }
    const user = await this.#store.getUser(session.userId);
    if (!user) return new AuthError('bad-credentials', 'unknown session (the user was deleted)');
    if (user.disabled) return new AuthError('account-disabled', 'the account is disabled');
    if (Date.parse(session.lastSeenAt) + TOUCH_INTERVAL_MS <= now.getTime()) await this.#store.touchSession(idHash, now.toISOString());
    return userPrincipal(user, 'session', sourceAddress);
  }

  /** The password check shared by login and DIMSE: lock-out first, then scrypt (also for unknown users). */
  async #checkPassword(username: string, password: string, sourceAddress: string | null): Promise<UserRecord | AuthError> {
    const name = normalizeUsername(username);
    const keys = [`user:${name}`, ...(sourceAddress ? [`addr:${sourceAddress}`] : [])];
    const now = this.#now();
    for (const key of keys) {
      const state = await this.#store.getThrottle(key);
      if (state?.lockedUntil && Date.parse(state.lockedUntil) > now.getTime()) {
        const seconds = Math.ceil((Date.parse(state.lockedUntil) - now.getTime()) / 1000);
        const who = key.startsWith('user:') ? 'this account' : 'this address';
        return new AuthError('locked', `too many failed logins: ${who} is locked for ${seconds} s`, { retryAfterSeconds: seconds });
      }
    }
    const user = name === '' ? null : await this.#store.getUserByUsername(name);
    const ok = await verifyPassword(password, user?.passwordHash ?? await dummyPasswordHash(this.#scrypt));
    if (!user || !ok) {
      const { maxFailures, lockMinutes, maxFailuresPerAddress } = this.#config.lockout;
      const lockMs = lockMinutes * 60_000;
      await this.#store.recordFailure(keys[0], now.toISOString(), { windowMs: lockMs, maxFailures, lockMs });
      if (keys[1]) await this.#store.recordFailure(keys[1], now.toISOString(), { windowMs: lockMs, maxFailures: maxFailuresPerAddress, lockMs });
      return new AuthError('bad-credentials', 'wrong username or password');
    }
    if (user.disabled) return new AuthError('account-disabled', 'the account is disabled');
    await this.#store.clearThrottle(keys[0]);
    await this.#store.recordLogin(user.id, now.toISOString());
    return user;
  }

  async #newUserRecord(input: NewUser) {
    const username = normalizeUsername(input.username ?? '');
    if (!/^[a-z0-9][a-z0-9._@-]{0,63}$/.test(username)) {
      throw new AtriumError('invalid-input', 'a username is 1 to 64 characters: letters, digits, and . _ @ - (not first)');
    }
    validatePassword(input.password);
    validateRoles(input.roles);
    return {
      username, displayName: input.displayName ?? null, passwordHash: await hashPassword(input.password, this.#scrypt),
      roles: [...new Set(input.roles)], dicomPersonName: input.dicomPersonName ?? null,
    };
  }

  #idleMs(): number {
    return this.#config.sessions.idleMinutes * 60_000;
  }

  #iso(): string {
    return this.#now().toISOString();
  }
}

export function normalizeUsername(username: string): string {
  return username.normalize('NFC').trim().toLowerCase();
}

function validatePassword(password: unknown): void {
  if (typeof password !== 'string' || [...password].length < PASSWORD_MIN) throw new AtriumError('invalid-input', `a password has at least ${PASSWORD_MIN} characters`);
  if (password.length > PASSWORD_MAX) throw new AtriumError('invalid-input', `a password has at most ${PASSWORD_MAX} characters`);
}

function validateRoles(roles: unknown): asserts roles is Role[] {
  if (!Array.isArray(roles)) throw new AtriumError('invalid-input', 'roles must be a list');
  const bad = roles.filter((r) => !isRole(r));
  if (bad.length) throw new AtriumError('invalid-input', `unknown role(s) ${bad.map((r) => `"${r}"`).join(', ')}`);
}

function userPrincipal(user: UserRecord, authMethod: AuthMethod, sourceAddress: string | null): Principal {
  return {
    kind: 'user', id: String(user.id), name: user.username, roles: user.roles.filter(isRole), authMethod, sourceAddress, routePrefixes: null,
    personNames: user.dicomPersonName ? [user.dicomPersonName] : [],
  };
}

function disabledPrincipal(sourceAddress: string | null): Principal {
  return { kind: 'anonymous', id: '', name: 'anonymous', roles: ['administrator'], authMethod: 'security-disabled', sourceAddress, routePrefixes: null, personNames: [] };
}

/** The principal of a caller who gave no credentials (for public routes): no roles, so every check denies. */
export function anonymousPrincipal(sourceAddress: string | null): Principal {
  return { kind: 'anonymous', id: '', name: 'anonymous', roles: [], authMethod: 'none', sourceAddress, routePrefixes: null, personNames: [] };
}

function toUserView(u: UserRecord): UserView {
  return {
    id: u.id, username: u.username, displayName: u.displayName, roles: u.roles.filter(isRole), dicomPersonName: u.dicomPersonName,
    disabled: u.disabled, createdAt: u.createdAt, updatedAt: u.updatedAt, lastLoginAt: u.lastLoginAt,
  };
}

function toApiKeyView(k: ApiKeyRecord): ApiKeyView {
  return {
    keyId: k.keyId, name: k.name, roles: k.roles.filter(isRole), routePrefixes: k.routePrefixes, createdBy: k.createdBy,
    createdAt: k.createdAt, expiresAt: k.expiresAt, revokedAt: k.revokedAt, lastUsedAt: k.lastUsedAt,
  };
}

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name] ?? headers[name.toLowerCase()];
  if (Array.isArray(value)) return value[0];
  return value;
}

function cookie(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return value === '' ? undefined : value;
    }
  }
  return undefined;
}

function isCrossSite(headers: Headers): boolean {
  if (header(headers, 'sec-fetch-site') === 'cross-site') return true;
  const origin = header(headers, 'origin');
  if (origin === undefined) return false;
  if (origin === 'null') return true;
  try {
    const host = new URL(origin).host;
    return host !== header(headers, 'host') && host !== header(headers, 'x-forwarded-host');
  } catch {
    return true;
  }
}

function text(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
}
