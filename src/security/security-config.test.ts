/** The `security` configuration section: defaults, file, environment overrides, readable problems. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, ConfigError } from '../config/config.ts';
import { DEFAULT_SECURITY_CONFIG, securityDisabledWarning } from './types.ts';

test('security is on by default, with local users only', () => {
  const config = loadConfig({ env: {} });
  assert.deepEqual(config.security, DEFAULT_SECURITY_CONFIG);
  assert.equal(securityDisabledWarning(config.security), null);
});

test('environment overrides: ATRIUM_SECURITY_ENABLED, ATRIUM_OIDC_*', () => {
  const off = loadConfig({ env: { ATRIUM_SECURITY_ENABLED: 'false' } });
  assert.equal(off.security.enabled, false);
  assert.match(securityDisabledWarning(off.security)!, /SECURITY IS DISABLED/);
  const oidc = loadConfig({ env: { ATRIUM_OIDC_ISSUER: 'https://idp.example/realms/h', ATRIUM_OIDC_AUDIENCE: 'atrium', ATRIUM_OIDC_JWKS_URI: 'https://idp.example/certs' } });
  assert.deepEqual(oidc.security.oidc, {
    issuer: 'https://idp.example/realms/h', audience: 'atrium', jwksUri: 'https://idp.example/certs', rolesClaim: 'roles', roleMapping: {},
    usernameClaim: 'preferred_username', clockToleranceSeconds: 30,
  });
});

test('a file sets the mapping, sessions, lock-out and the referring-clinician claim', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-secconfig-'));
  try {
    await writeFile(path.join(dir, 'atrium.json'), JSON.stringify({
      security: {
        oidc: { issuer: 'http://localhost:8081/realms/h', audience: 'atrium', rolesClaim: 'groups', roleMapping: { admins: 'administrator', rad: ['radiologist', 'technologist'] } },
        sessions: { idleMinutes: 10, absoluteHours: 8, secureCookie: true },
        lockout: { maxFailures: 3, lockMinutes: 30, maxFailuresPerAddress: 50 },
        referringClinicianRule: { attribute: 'ReferringPhysicianName', personNameClaim: 'dicom_name' },
      },
    }));
    const config = loadConfig({ dataDir: dir, env: {} });
    assert.deepEqual(config.security.oidc?.roleMapping, { admins: ['administrator'], rad: ['radiologist', 'technologist'] });
    assert.deepEqual(config.security.sessions, { idleMinutes: 10, absoluteHours: 8, secureCookie: true });
    assert.deepEqual(config.security.lockout, { maxFailures: 3, lockMinutes: 30, maxFailuresPerAddress: 50 });
    assert.deepEqual(config.security.referringClinicianRule, { attribute: 'ReferringPhysicianName', personNameClaim: 'dicom_name' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('security problems are listed readably', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-secconfig-'));
  try {
    await writeFile(path.join(dir, 'atrium.json'), JSON.stringify({
      security: { enabled: 'maybe', oidc: { issuer: 'http://idp.example', roleMapping: { x: 'wizard' }, extra: 1 }, lockout: { maxFailures: 0 }, referringClinicianRule: { attribute: 'PatientName' } },
    }));
    assert.throws(() => loadConfig({ dataDir: dir, env: {} }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      const text = error.problems.join('\n');
      for (const expected of [
        /security\.enabled must be true or false/, /unknown option "security\.oidc\.extra"/, /security\.oidc\.issuer \(ATRIUM_OIDC_ISSUER\) must be an https URL/,
        /security\.oidc\.audience \(ATRIUM_OIDC_AUDIENCE\) is required/, /roleMapping\["x"\]: "wizard" not one of/, /security\.lockout\.maxFailures must be a whole number from 1/,
        /referringClinicianRule\.attribute must be ReferringPhysicianName/,
      ]) assert.match(text, expected);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
