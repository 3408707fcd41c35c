/**
 * OIDC bearer tokens: JWTs verified against the issuer's JWKS (jose), issuer and audience checked,
 * the roles claim mapped to Atrium roles through the configured table (values not in it give nothing).
 */
import { createRemoteJWKSet, jwtVerify, errors, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { AuthError, isRole, type AuthMethod, type OidcConfig, type Principal, type Role } from './types.ts';

/** Asymmetric algorithms only: a JWKS holds public keys; HMAC and `none` are never accepted. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export interface OidcVerifierOptions {
  clock?: () => Date;
  /** OIDC claim with the caller's DICOM person name(s), for the referring-clinician rule. */
  personNameClaim?: string | null;
  /** Used for discovery only (jose fetches the JWKS itself). */
  fetch?: typeof fetch;
}

export class OidcVerifier {
  readonly #config: OidcConfig;
  readonly #now: () => Date;
  readonly #personNameClaim: string | null;
  readonly #fetch: typeof fetch;
  #keys: Promise<JWTVerifyGetKey> | null = null;

  constructor(config: OidcConfig, options: OidcVerifierOptions = {}) {
    this.#config = config;
    this.#now = options.clock ?? (() => new Date());
    this.#personNameClaim = options.personNameClaim ?? null;
    this.#fetch = options.fetch ?? fetch;
  }

  /** A verified token's principal (roles possibly empty), or why it is refused. */
  async verify(token: string, sourceAddress: string | null, authMethod: AuthMethod = 'oidc-jwt'): Promise<Principal | AuthError> {
    let keys: JWTVerifyGetKey;
    try {
      keys = await this.#jwks();
    } catch (error) {
      return new AuthError('oidc-unavailable', `the keys of OIDC issuer ${this.#config.issuer} are not available: ${(error as Error).message}`, { cause: error });
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: this.#config.issuer,
        audience: this.#config.audience,
        algorithms: ALGORITHMS,
        clockTolerance: this.#config.clockToleranceSeconds,
        currentDate: this.#now(),
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (error) {
      return toAuthError(error, this.#config);
    }
    const sub = String(payload.sub);
    const username = claimAt(payload, this.#config.usernameClaim);
    return {
      kind: 'oidc',
      id: sub,
      name: typeof username === 'string' && username !== '' ? username : sub,
      roles: mapRoles(claimAt(payload, this.#config.rolesClaim), this.#config.roleMapping),
      authMethod,
      sourceAddress,
      routePrefixes: null,
      personNames: this.#personNameClaim === null ? [] : stringValues(claimAt(payload, this.#personNameClaim)),
    };
  }

  #jwks(): Promise<JWTVerifyGetKey> {
    this.#keys ??= this.#resolveJwks().catch((error) => {
      this.#keys = null; // try discovery again next time
      throw error;
    });
    return this.#keys;
  }

  async #resolveJwks(): Promise<JWTVerifyGetKey> {
    let uri = this.#config.jwksUri;
    if (uri === null) {
      const url = `${this.#config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      const response = await this.#fetch(url, { signal: AbortSignal.timeout(5000) });
      if (!response.ok) throw new Error(`discovery at ${url} answered ${response.status}`);
      const document = await response.json() as { issuer?: unknown; jwks_uri?: unknown };
      if (document.issuer !== this.#config.issuer) throw new Error(`discovery at ${url} names issuer ${String(document.issuer)}, not ${this.#config.issuer}`);
      if (typeof document.jwks_uri !== 'string') throw new Error(`discovery at ${url} has no jwks_uri`);
      uri = document.jwks_uri;
    }
    return createRemoteJWKSet(new URL(uri));
  }
}

/** The Atrium roles that a roles/groups claim value (string, list, or space-separated string) maps to. */
export function mapRoles(claim: unknown, mapping: Record<string, Role[]>): Role[] {
  const roles = new Set<Role>();
  for (const value of stringValues(claim, true)) {
    if (!Object.hasOwn(mapping, value)) continue;
    for (const role of mapping[value]) if (isRole(role)) roles.add(role);
  }
  return [...roles];
}

function stringValues(claim: unknown, splitSpaces = false): string[] {
  if (typeof claim === 'string') return splitSpaces ? claim.split(/\s+/).filter(Boolean) : [claim];
  if (Array.isArray(claim)) return claim.filter((v): v is string => typeof v === 'string');
  return [];
}

/** A claim by name, or a dotted path into nested objects (`realm_access.roles`) when no claim has that exact name. */
function claimAt(payload: JWTPayload, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  return name.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' && Object.hasOwn(o, k) ? (o as Record<string, unknown>)[k] : undefined), payload);
}

function toAuthError(error: unknown, config: OidcConfig): AuthError {
  if (error instanceof errors.JWTExpired) return new AuthError('token-expired', 'the token has expired', { cause: error });
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'nbf': return new AuthError('token-not-yet-valid', 'the token is not valid yet (nbf)', { cause: error });
      case 'iat': return new AuthError('token-not-yet-valid', 'the token was issued in the future (iat)', { cause: error });
      case 'iss': return new AuthError('wrong-issuer', `the token was not issued by ${config.issuer}`, { cause: error });
      case 'aud': return new AuthError('wrong-audience', `the token is not meant for ${config.audience}`, { cause: error });
      default: return new AuthError('invalid-token', `the token's ${error.claim} claim is invalid: ${error.message}`, { cause: error });
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) {
    return new AuthError('invalid-signature', 'the token is not signed by a key of the issuer', { cause: error });
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return new AuthError('oidc-unavailable', `the keys of OIDC issuer ${config.issuer} did not arrive in time`, { cause: error });
  if (error instanceof errors.JOSEError) {
    // JOSEAlgNotAllowed, JWSInvalid, JWTInvalid, malformed tokens...
    return new AuthError('invalid-token', `the token is invalid: ${(error as Error).message}`, { cause: error });
  }
  return new AuthError('oidc-unavailable', `the token could not be checked: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}
