/**
 * OIDC bearer tokens against a test issuer: an HTTP server in the test serves discovery and a JWKS made
 * with jose; tokens signed with its key, with another key, expired, not yet valid, for another
 * audience or from another issuer get exact outcomes. Time is the injected clock.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { OidcVerifier, mapRoles } from './oidc.ts';
import { AuthError, type OidcConfig, type Principal } from './types.ts';

const NOW = Date.parse('2031-03-01T08:00:00.000Z');
const clock = () => new Date(NOW);
const s = (ms: number) => Math.floor(ms / 1000);

let server: http.Server;
let issuer: string;
let jwksRequests = 0;
let key: CryptoKey;
let otherKey: CryptoKey;

before(async () => {
  ({ privateKey: otherKey } = await generateKeyPair('ES256'));
  const pair = await generateKeyPair('RS256', { extractable: true });
  key = pair.privateKey;
  const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  server = http.createServer((req, res) => {
    if (req.url === '/realms/test/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    } else if (req.url === '/realms/test/jwks') {
      jwksRequests++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}/realms/test`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function config(overrides: Partial<OidcConfig> = {}): OidcConfig {
  return {
    issuer, audience: 'atrium', jwksUri: null, rolesClaim: 'realm_access.roles', usernameClaim: 'preferred_username', clockToleranceSeconds: 30,
    roleMapping: { 'pacs-admins': ['administrator'], radiology: ['radiologist'], 'ai-nodes': ['integration'], referrers: ['referring-clinician'] },
    ...overrides,
  };
}

async function token(claims: Record<string, unknown> = {}, options: { signWith?: CryptoKey; kid?: string; iat?: number; nbf?: number; exp?: number; iss?: string; aud?: string; alg?: string } = {}): Promise<string> {
  const jwt = new SignJWT({ preferred_username: 'jdoe', realm_access: { roles: ['radiology', 'offline_access'] }, ...claims })
    .setProtectedHeader({ alg: options.alg ?? 'RS256', kid: options.kid ?? 'k1' })
    .setSubject('user-123')
    .setIssuer(options.iss ?? issuer)
    .setAudience(options.aud ?? 'atrium')
    .setIssuedAt(options.iat ?? s(NOW - 60_000))
    .setExpirationTime(options.exp ?? s(NOW + 300_000));
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
  return await jwt.sign(options.signWith ?? key);
}

async function outcome(verifier: OidcVerifier, jwt: string): Promise<string> {
  const result = await verifier.verify(jwt, '10.1.2.3');
  return result instanceof AuthError ? result.code : 'ok';
}

test('a good token from the issuer (keys found by discovery) becomes an oidc principal with mapped roles', async () => {
  const verifier = new OidcVerifier(config(), { clock, personNameClaim: 'dicom_name' });
  const result = await verifier.verify(await token({ dicom_name: 'DOE^JOHN' }), '10.1.2.3');
  assert.ok(!(result instanceof AuthError), String(result));
  assert.deepEqual(result, {
    kind: 'oidc', id: 'user-123', name: 'jdoe', roles: ['radiologist'], authMethod: 'oidc-jwt', sourceAddress: '10.1.2.3',
    routePrefixes: null, personNames: ['DOE^JOHN'],
  } satisfies Principal);
  // The JWKS is cached: a second token needs no second fetch.
  const before = jwksRequests;
  assert.equal(await outcome(verifier, await token()), 'ok');
  assert.equal(jwksRequests, before);
});

test('expired, not yet valid, wrongly signed, wrong audience, wrong issuer: exact outcomes', async () => {
  const verifier = new OidcVerifier(config({ jwksUri: `${issuer}/jwks` }), { clock });
  assert.equal(await outcome(verifier, await token({}, { exp: s(NOW - 31_000), iat: s(NOW - 600_000) })), 'token-expired');
  assert.equal(await outcome(verifier, await token({}, { exp: s(NOW - 10_000), iat: s(NOW - 600_000) })), 'ok', 'within the 30 s clock tolerance');
  assert.equal(await outcome(verifier, await token({}, { nbf: s(NOW + 120_000) })), 'token-not-yet-valid');
  const otherRsa = (await generateKeyPair('RS256')).privateKey;
  assert.equal(await outcome(verifier, await token({}, { signWith: otherRsa })), 'invalid-signature', 'same kid, other key');
  assert.equal(await outcome(verifier, await token({}, { signWith: otherRsa, kid: 'k2' })), 'invalid-signature', 'unknown kid');
  assert.equal(await outcome(verifier, await token({}, { signWith: otherKey, alg: 'ES256' })), 'invalid-signature', 'other algorithm and key');
  assert.equal(await outcome(verifier, await token({}, { aud: 'another-app' })), 'wrong-audience');
  assert.equal(await outcome(verifier, await token({}, { iss: 'https://evil.example/realms/test' })), 'wrong-issuer');
  assert.equal(await outcome(verifier, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'), 'invalid-token');
  assert.equal(await outcome(verifier, 'not.a.jwt'), 'invalid-token');
  // The clock decides, not the wall clock: the same token is expired an hour later.
  const later = new OidcVerifier(config({ jwksUri: `${issuer}/jwks` }), { clock: () => new Date(NOW + 3_600_000) });
  assert.equal(await outcome(later, await token()), 'token-expired');
});

test('claim-to-role mapping: lists, space-separated strings, nested paths, unknown values give nothing', async () => {
  const mapping = { 'pacs-admins': ['administrator' as const], radiology: ['radiologist' as const, 'technologist' as const], x: ['not-a-role' as never] };
  assert.deepEqual(mapRoles(['radiology', 'pacs-admins', 'other'], mapping), ['radiologist', 'technologist', 'administrator']);
  assert.deepEqual(mapRoles('radiology other', mapping), ['radiologist', 'technologist']);
  assert.deepEqual(mapRoles(['x', 'constructor', '__proto__'], mapping), []);
  assert.deepEqual(mapRoles(undefined, mapping), []);
  assert.deepEqual(mapRoles(42, mapping), []);

  const groups = new OidcVerifier(config({ jwksUri: `${issuer}/jwks`, rolesClaim: 'groups' }), { clock });
  const admin = await groups.verify(await token({ groups: ['pacs-admins', 'ai-nodes'] }), null);
  assert.ok(!(admin instanceof AuthError));
  assert.deepEqual(admin.roles, ['administrator', 'integration']);
  const none = await groups.verify(await token({ groups: ['staff'] }), null);
  assert.ok(!(none instanceof AuthError));
  assert.deepEqual(none.roles, [], 'a valid token with no mapped value is authenticated with no role: every check denies');
});

test('an unreachable issuer is "oidc-unavailable" (503)', async () => {
  const dead = new OidcVerifier(config({ issuer: 'http://127.0.0.1:1/realms/none' }), { clock });
  const result = await dead.verify(await token(), null);
  assert.ok(result instanceof AuthError);
  assert.equal(result.code, 'oidc-unavailable');
  assert.equal(result.httpStatus, 503);
});
