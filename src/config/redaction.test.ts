/** What GET /api/settings and `atrium config` show: the configuration in force with every kind of secret hidden. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type AtriumConfig } from './config.ts';
import { HIDDEN, redactedConfig, redactText } from './redaction.ts';

test('no secret of any kind is left anywhere in the redacted configuration; what is not secret is shown', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-redaction-'));
  try {
    // TLS files must exist; their content is irrelevant here (only the paths are in the configuration).
    for (const name of ['cert.pem', 'http-secret-key.pem', 'ca.pem', 'dicom-secret-key.pem', 'syslog-secret-key.pem']) await writeFile(path.join(dir, name), 'x');
    await writeFile(path.join(dir, 'atrium.json'), JSON.stringify({
      http: { tls: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'http-secret-key.pem') } },
      dicom: { aeTitle: 'ARCHIVE_1', tls: { port: 2762, cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'dicom-secret-key.pem'), ca: path.join(dir, 'ca.pem') } },
      audit: { syslog: { host: 'syslog.example.org', protocol: 'tls', cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'syslog-secret-key.pem') } },
      security: { oidc: { issuer: 'https://login.example.org/realms/h', audience: 'atrium', roleMapping: { 'imaging-admins': 'administrator' } } },
    }));
    const loaded = loadConfig({
      dataDir: dir,
      env: {
        ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: 'postgres://atrium:pg-Secret-1@db.example.org:5432/atrium?sslpassword=pg-Secret-2&sslmode=require',
        ATRIUM_BLOB_ENGINE: 's3', ATRIUM_S3_BUCKET: 'images', ATRIUM_S3_ENDPOINT: 'https://s3user:s3-Secret-3@s3.example.org',
        ATRIUM_S3_ACCESS_KEY_ID: 'AKIA-Secret-4', ATRIUM_S3_SECRET_ACCESS_KEY: 's3-Secret-5',
      },
    });
    // A module's own section (AtriumModule.config) with the secrets a module may hold: shown through the same function.
    const config: AtriumConfig = {
      ...loaded,
      sections: {
        ris: {
          hl7: { port: 2575, password: 'hl7-Secret-6' },
          oidcClient: { clientId: 'atrium-console', clientSecret: 'oidc-Secret-7' },
          setupToken: 'setup-Secret-8', apiToken: 'token-Secret-9', apiKey: 'key-Secret-10', passcode: 'code-Secret-11',
          signing: { privateKey: '-----BEGIN PRIVATE KEY-----\nMIIsecret12\n-----END PRIVATE KEY-----' },
          inlineKey: { pem: '-----BEGIN EC PRIVATE KEY-----\nMIIsecret13\n-----END EC PRIVATE KEY-----' },
          upstream: 'amqp://broker:amqp-Secret-14@mq.example.org/vhost',
          legacyDsn: 'host=db user=atrium password=dsn-Secret-15 dbname=atrium',
          credentials: ['cred-Secret-16'],
          unsetSecret: null,
        },
      },
    };
    const shown = JSON.stringify(redactedConfig(config));
    for (const secret of [/Secret-\d+/g, /secret1[23]/g, /-secret-key\.pem/g]) {
      assert.deepEqual(shown.match(secret), null, `${secret} is visible in ${shown}`);
    }
    const r = redactedConfig(config) as any;
    assert.equal(r.index.url, `postgres://atrium:${HIDDEN}@db.example.org:5432/atrium?sslpassword=${HIDDEN}&sslmode=require`);
    assert.equal(r.blobs.secretAccessKey, HIDDEN);
    assert.equal(r.blobs.accessKeyId, HIDDEN);
    assert.equal(r.blobs.endpoint, `https://s3user:${HIDDEN}@s3.example.org`);
    assert.equal(r.http.tls.key, HIDDEN);
    assert.equal(r.sections.ris.oidcClient.clientSecret, HIDDEN);
    assert.equal(r.sections.ris.legacyDsn, `host=db user=atrium password=${HIDDEN} dbname=atrium`);
    // Not secret: still shown as configured, so the page is useful.
    assert.equal(r.dicom.aeTitle, 'ARCHIVE_1');
    assert.equal(r.http.tls.cert, path.join(dir, 'cert.pem'));
    assert.equal(r.blobs.bucket, 'images');
    assert.equal(r.sections.ris.hl7.port, 2575);
    assert.equal(r.sections.ris.oidcClient.clientId, 'atrium-console');
    assert.equal(r.sections.ris.unsetSecret, null, 'a secret that is not set is shown as not set');
    assert.deepEqual(r.security.oidc.roleMapping, { 'imaging-admins': ['administrator'] });
    assert.equal(r.ingest.invalidUidPolicy, 'flag');
    // The configuration itself is untouched.
    assert.equal(config.blobs.engine === 's3' && config.blobs.secretAccessKey, 's3-Secret-5');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('passwords in URLs are hidden, the rest of the URL kept; URLs without one are unchanged', () => {
  assert.equal(redactText('postgres://u:p@h/db'), `postgres://u:${HIDDEN}@h/db`);
  assert.equal(redactText('postgres://:only-password@h/db'), `postgres://:${HIDDEN}@h/db`);
  assert.equal(redactText('postgres://u@h:5432/db'), 'postgres://u@h:5432/db');
  assert.equal(redactText('https://login.example.org:8443/realms/x'), 'https://login.example.org:8443/realms/x');
  assert.equal(redactText('https://h/x?token=abc&page=2'), `https://h/x?token=${HIDDEN}&page=2`);
});
