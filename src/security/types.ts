/**
 * The vocabulary of Atrium's security core, shared by every transport: who is calling (`Principal`),
 * what they may be (`Role`), what they ask to do (`Action`), and why a request was not authenticated
 * (`AuthError`). Pure types and constants: no I/O, imported by the configuration too.
 */

/** Atrium's roles. Permissions per role are in policy.ts (one table for every transport). */
export type Role = 'administrator' | 'radiologist' | 'technologist' | 'referring-clinician' | 'researcher' | 'integration';

export const ROLES: readonly Role[] = ['administrator', 'radiologist', 'technologist', 'referring-clinician', 'researcher', 'integration'];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/**
 * Actions on resources. `study:*` is patient data: read (WADO, C-GET to the caller, viewer), write
 * (C-STORE, STOW, import), delete, export (C-MOVE/C-GET/send to another node, download); `query` is
 * C-FIND/QIDO; `study:read-deidentified` is reserved for the de-identified access researchers will get;
 * `order:read` / `order:write` are the RIS's orders, patients (as the RIS knows them) and reports (src/ris/);
 * `dose:read` / `dose:write` are radiation dose reports and alerts, and the dose reference levels (src/quality/);
 * `reading:read` the reading worklist, turnaround times, SLA breaches and critical results, `reading:claim` claiming a
 * study to read (and reporting it), `reading:release` taking another's claim off, `sla:write` the SLA table,
 * `critical:ack` acknowledging a critical result (src/reading/).
 * `integrity:read` / `integrity:write` are the study integrity monitor's findings, sweeps and samples (acknowledge,
 * false positive, resolve; src/quality/integrity/).
 * `prefetch:read` / `prefetch:write` are the prior prefetch rules and the prefetch status of orders (src/prefetch/).
 * `corrections:write` applies and undoes identity corrections (src/quality/corrections/; reading them is `query`).
 * `rules:read` / `rules:write` are the routing rules and their dry-run (src/workflow/).
 * `ai:read` the AI node registry, requests, results and metrics, `ai:write` editing the registry, `ai:review` the
 * radiologist's agreement with an AI result (src/ai/).
 */
export type Action =
  | 'study:read'
  | 'study:read-deidentified'
  | 'study:write'
  | 'study:delete'
  | 'study:export'
  | 'query'
  | 'admin:config'
  | 'admin:users'
  | 'audit:read'
  | 'order:read'
  | 'order:write'
  | 'dose:read'
  | 'dose:write'
  | 'reading:read'
  | 'reading:claim'
  | 'reading:release'
  | 'sla:write'
  | 'critical:ack'
  | 'integrity:read'
  | 'integrity:write'
  | 'prefetch:read'
  | 'prefetch:write'
  | 'corrections:write'
  | 'rules:read'
  | 'rules:write'
  | 'ai:read'
  | 'ai:write'
  | 'ai:review';

export const ACTIONS: readonly Action[] = [
  'study:read', 'study:read-deidentified', 'study:write', 'study:delete', 'study:export', 'query', 'admin:config', 'admin:users', 'audit:read', 'order:read', 'order:write', 'dose:read', 'dose:write', 'integrity:read', 'integrity:write',
  'reading:read', 'reading:claim', 'reading:release', 'sla:write', 'critical:ack', 'prefetch:read', 'prefetch:write', 'corrections:write', 'rules:read', 'rules:write',
  'ai:read', 'ai:write', 'ai:review',
];

export type PrincipalKind = 'user' | 'api-key' | 'oidc' | 'dicom-ae' | 'anonymous';

export type AuthMethod =
  | 'password'          // local user, username + password (a login)
  | 'session'           // local user, session cookie
  | 'api-key'
  | 'oidc-jwt'          // bearer JWT from the configured issuer
  | 'dicom-password'    // DIMSE user identity type 2 (username + passcode)
  | 'dicom-jwt'         // DIMSE user identity type 5 (JWT)
  | 'dicom-ae'          // DIMSE calling AE title only (no user identity)
  | 'none'              // anonymous
  | 'security-disabled';

/** Who is calling, however they came in. Audit records take `kind`, `id`, `name`, `authMethod`, `sourceAddress`. */
export interface Principal {
  kind: PrincipalKind;
  /** Stable identifier: local user id, API key id, OIDC `sub`, AE title, or '' for anonymous. */
  id: string;
  /** Readable name: username, API key name, OIDC preferred_username (or sub), AE title. */
  name: string;
  roles: Role[];
  authMethod: AuthMethod;
  /** Remote address (IP) the request came from, when known. */
  sourceAddress: string | null;
  /** API keys limited to route prefixes (`/dicomweb/`, ...): null means not limited by route. */
  routePrefixes: string[] | null;
  /**
   * DICOM person names (PN, e.g. `DOE^JANE`) this principal is known as: the referring-clinician rule
   * matches studies' ReferringPhysicianName against them.
   */
  personNames: string[];
}

export type AuthErrorCode =
  | 'no-credentials'
  | 'malformed-credentials'
  | 'bad-credentials'       // unknown user, wrong password, unknown API key (never says which)
  | 'locked'                // too many failures: this user or this address is locked for a while
  | 'account-disabled'
  | 'session-expired'
  | 'api-key-expired'
  | 'api-key-revoked'
  | 'token-expired'
  | 'token-not-yet-valid'
  | 'invalid-signature'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'invalid-token'
  | 'oidc-not-configured'
  | 'oidc-unavailable'      // the issuer's keys could not be fetched
  | 'unsupported-identity'  // DIMSE user identity types Atrium does not accept (username only, Kerberos, SAML)
  | 'cross-site';           // a cookie-authenticated unsafe request from another origin

/**
 * Why a request is not authenticated. Returned, not thrown: `authenticateRequest` and
 * `authenticateDicomUser` answer `Principal | AuthError`. `httpStatus` is 401 except `locked` (429)
 * and `oidc-unavailable` (503); `retryAfterSeconds` is set with `locked`.
 */
export class AuthError extends Error {
  readonly code: AuthErrorCode;
  readonly httpStatus: 401 | 403 | 429 | 503;
  readonly retryAfterSeconds: number | null;

  constructor(code: AuthErrorCode, message: string, options: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AuthError';
    this.code = code;
    this.httpStatus = code === 'locked' ? 429 : code === 'oidc-unavailable' ? 503 : code === 'cross-site' ? 403 : 401;
    this.retryAfterSeconds = options.retryAfterSeconds ?? null;
  }
}

export function isAuthError(value: unknown): value is AuthError {
  return value instanceof AuthError;
}

/** The `security` configuration section (src/config/config.ts reads and validates it). */
export interface SecurityConfig {
  /** Default true. Off only when set explicitly; whoever composes logs `securityDisabledWarning()`. */
  enabled: boolean;
  oidc: OidcConfig | null;
  sessions: { idleMinutes: number; absoluteHours: number; secureCookie: boolean };
  lockout: { maxFailures: number; lockMinutes: number; maxFailuresPerAddress: number };
  referringClinicianRule: ReferringClinicianRule;
}

export interface OidcConfig {
  issuer: string;
  audience: string;
  /** Default: discovered from `<issuer>/.well-known/openid-configuration`. */
  jwksUri: string | null;
  /** Claim holding the caller's roles or groups; a dotted path (`realm_access.roles`) reaches nested claims. */
  rolesClaim: string;
  /** Claim value -> Atrium roles. Values not listed give no role (deny by default). */
  roleMapping: Record<string, Role[]>;
  /** Claim naming the user (default `preferred_username`, else `sub`). */
  usernameClaim: string;
  /** Leeway for exp/nbf, in seconds (default 30). */
  clockToleranceSeconds: number;
}

/**
 * How a referring clinician's studies are recognized: the study's ReferringPhysicianName matches one of
 * the principal's person names (a local user's `dicomPersonName`; for OIDC callers the claim
 * `personNameClaim`). Compared on the alphabetic group, component by component, ignoring case, trailing
 * empty components and surrounding spaces.
 */
export interface ReferringClinicianRule {
  attribute: 'ReferringPhysicianName';
  /** OIDC claim with the caller's DICOM person name(s); null: OIDC referring clinicians see nothing. */
  personNameClaim: string | null;
}

export const DEFAULT_SECURITY_CONFIG: SecurityConfig = {
  enabled: true,
  oidc: null,
  sessions: { idleMinutes: 30, absoluteHours: 12, secureCookie: false },
  lockout: { maxFailures: 5, lockMinutes: 15, maxFailuresPerAddress: 20 },
  referringClinicianRule: { attribute: 'ReferringPhysicianName', personNameClaim: null },
};

/** The text to log (at warn or error) when security is off; null when it is on. */
export function securityDisabledWarning(config: Pick<SecurityConfig, 'enabled'>): string | null {
  if (config.enabled) return null;
  return 'SECURITY IS DISABLED (security.enabled=false / ATRIUM_SECURITY_ENABLED=false): every caller on every transport '
    + 'is treated as an administrator, with no authentication and no access control. Patient data is open to anyone who can '
    + 'reach this node. Use this only on an isolated test system.';
}
