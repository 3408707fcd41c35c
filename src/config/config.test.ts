import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, ConfigError } from './config.ts';
import { redactedConfig } from './redaction.ts';

test('defaults run the embedded engines on localhost', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.dataDir, path.resolve('./data'));
  assert.deepEqual(config.http, { host: '127.0.0.1', port: 8080, tls: null, corsOrigins: ['*'], trustedProxies: [] });
  assert.equal(config.security.sessions.secureCookie, false);
  assert.deepEqual(config.index, { engine: 'sqlite' });
  assert.deepEqual(config.blobs, { engine: 'fs' });
  assert.equal(config.ingest.duplicatePolicy, 'reject');
});

test('file, then environment, then --data: later sources win', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-config-'));
  try {
    await writeFile(path.join(dir, 'atrium.json'), JSON.stringify({ http: { port: 9000, host: '0.0.0.0' }, ingest: { duplicatePolicy: 'version' } }));
    const fromFile = loadConfig({ dataDir: dir, env: {} });
    assert.deepEqual(fromFile.http, { host: '0.0.0.0', port: 9000, tls: null, corsOrigins: ['*'], trustedProxies: [] });
    assert.equal(fromFile.ingest.duplicatePolicy, 'version');
    const fromEnv = loadConfig({ dataDir: dir, env: { ATRIUM_HTTP_PORT: '9100', ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: 'postgres://a:secret@h/db' } });
    assert.equal(fromEnv.http.port, 9100);
    assert.deepEqual(fromEnv.index, { engine: 'postgres', url: 'postgres://a:secret@h/db', poolSize: 10 });
    assert.equal(fromEnv.dataDir, dir);
    assert.equal((redactedConfig(fromEnv) as any).index.url, 'postgres://a:[hidden]@h/db');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('every problem is reported at once, readably', () => {
  assert.throws(
    () => loadConfig({ env: { ATRIUM_HTTP_PORT: 'eighty', ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_BLOB_ENGINE: 's3', ATRIUM_DUPLICATE_POLICY: 'keep' } }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 4, error.message);
      assert.match(error.message, /http\.port must be a whole number from 0 to 65535, got "eighty"/);
      assert.match(error.message, /ATRIUM_POSTGRES_URL\) is required/);
      assert.match(error.message, /ATRIUM_S3_BUCKET\) is required/);
      assert.match(error.message, /ingest\.duplicatePolicy must be one of reject, version, overwrite/);
      return true;
    },
  );
});

test('unknown options and unreadable files are refused', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-config-'));
  try {
    await writeFile(path.join(dir, 'bad.json'), '{ "htp": {} }');
    assert.throws(() => loadConfig({ file: path.join(dir, 'bad.json'), env: {} }), /unknown option "htp"/);
    await writeFile(path.join(dir, 'broken.json'), '{ not json');
    assert.throws(() => loadConfig({ file: path.join(dir, 'broken.json'), env: {} }), /cannot read config file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('S3 secrets are masked when the configuration is shown', () => {
  const config = loadConfig({ env: { ATRIUM_BLOB_ENGINE: 's3', ATRIUM_S3_BUCKET: 'b', ATRIUM_S3_SECRET_ACCESS_KEY: 'topsecret' } });
  assert.equal((config.blobs as any).secretAccessKey, 'topsecret');
  assert.doesNotMatch(JSON.stringify(redactedConfig(config)), /topsecret/);
});

test('the dicom section: defaults, environment, peers', async () => {
  const config = loadConfig({ env: {} });
  assert.deepEqual(config.dicom, {
    aeTitle: 'ATRIUM', host: '127.0.0.1', port: 11112, maxAssociations: 50, maxPduLength: 262144, artimTimeoutMs: 30000,
    idleTimeoutMs: 300000, unknownCallers: ['echo', 'store'], acceptUnknownSopClasses: false, caseInsensitivePersonNames: true,
    tls: null, peers: [],
  });

  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-config-'));
  try {
    for (const name of ['cert.pem', 'key.pem', 'ca.pem']) await writeFile(path.join(dir, name), '-----BEGIN-----\n');
    await writeFile(path.join(dir, 'atrium.json'), JSON.stringify({
      dicom: {
        aeTitle: 'HOSPITAL_VNA', unknownCallers: ['find', 'echo'], tls: { cert: 'replaced', key: path.join(dir, 'key.pem'), requireClientCert: false },
        peers: [
          { aeTitle: 'CT_SCANNER_1 ', host: '10.0.0.5', port: 104, operations: ['store', 'echo', 'commit'], description: 'CT room 1' },
          { aeTitle: 'OHIF', host: 'viewer.local', port: 11113, tls: true },
        ],
      },
    }));
    const config = loadConfig({ dataDir: dir, env: { ATRIUM_DICOM_PORT: '4242', ATRIUM_DICOM_AE_TITLE: 'VNA', ATRIUM_DICOM_MAX_ASSOCIATIONS: '200', ATRIUM_DICOM_HOST: '0.0.0.0',
      ATRIUM_DICOM_TLS_CERT: path.join(dir, 'cert.pem'), ATRIUM_DICOM_TLS_PORT: '2763' } });
    assert.equal(config.dicom.aeTitle, 'VNA');
    assert.equal(config.dicom.port, 4242);
    assert.equal(config.dicom.host, '0.0.0.0');
    assert.equal(config.dicom.maxAssociations, 200);
    assert.deepEqual(config.dicom.unknownCallers, ['echo', 'find']);
    assert.deepEqual(config.dicom.tls, { port: 2763, cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem'), ca: null, requireClientCert: false });
    assert.deepEqual(config.dicom.peers, [
      { aeTitle: 'CT_SCANNER_1', host: '10.0.0.5', port: 104, tls: false, operations: ['echo', 'store', 'commit'], description: 'CT room 1' },
      { aeTitle: 'OHIF', host: 'viewer.local', port: 11113, tls: true, operations: ['echo', 'store', 'find', 'move', 'get', 'commit'], description: null },
    ], 'AE titles trimmed, operations in a stable order, all operations when none are listed');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the dicom section: AE titles and peers are validated, every problem listed', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-config-'));
  const problems = async (dicom: unknown, env: Record<string, string> = {}): Promise<string[]> => {
    const file = path.join(dir, 'atrium.json');
    await writeFile(file, JSON.stringify({ dicom }));
    try {
      loadConfig({ file, env });
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.problems;
    }
    return [];
  };
  try {
    assert.deepEqual(await problems({ aeTitle: 'AN_AE_TITLE_LONGER_THAN_16' }),
      ['dicom.aeTitle (ATRIUM_DICOM_AE_TITLE) must be at most 16 characters, "AN_AE_TITLE_LONGER_THAN_16" has 26']);
    assert.deepEqual(await problems({}, { ATRIUM_DICOM_AE_TITLE: '    ' }), ['dicom.aeTitle (ATRIUM_DICOM_AE_TITLE) must not be only spaces']);
    assert.match((await problems({ aeTitle: 'A\\B' }))[0], /must not contain a backslash/);
    assert.match((await problems({ aeTitle: 'A\u0007B' }))[0], /must not contain control characters/);
    assert.match((await problems({ aeTitle: 'ÉCHO' }))[0], /only printable ASCII/);
    assert.match((await problems({ aeTitle: '' }))[0], /must not be empty/);

    const many = await problems(
      { port: 70000, unknownCallers: ['echo', 'delete'], maxPduLength: 10, colour: 'blue',
        peers: [
          { aeTitle: 'GOOD', host: 'h', port: 104, operations: ['echo'] },
          { aeTitle: 'GOOD', host: 'h2', port: 105, operations: ['echo'] },
          { aeTitle: 'BAD\\AE', host: '', port: 0, operations: ['echo', 'fly'], extra: 1 },
        ] },
      { ATRIUM_DICOM_MAX_ASSOCIATIONS: 'lots', ATRIUM_DICOM_TLS_PORT: '2762' },
    );
    const expected = [
      /unknown option "dicom\.colour"/,
      /dicom\.port must be a whole number from 0 to 65535, got "70000"/,
      /dicom\.maxAssociations must be a whole number from 1 to 10000, got "lots"/,
      /dicom\.maxPduLength must be a whole number from 4096 to 16777216/,
      /dicom\.unknownCallers: "delete" not one of echo, store, find, move, get, commit/,
      /dicom\.tls\.cert \(ATRIUM_DICOM_TLS_CERT\) is required when DICOM TLS is enabled/,
      /dicom\.tls\.key \(ATRIUM_DICOM_TLS_KEY\) is required/,
      /dicom\.tls\.ca \(ATRIUM_DICOM_TLS_CA\) is required/,
      /dicom\.peers\[1\]\.aeTitle "GOOD" is listed twice/,
      /unknown option "dicom\.peers\[2\]\.extra"/,
      /dicom\.peers\[2\]\.aeTitle must not contain a backslash/,
      /dicom\.peers\[2\]\.host must be a non-empty host name or address/,
      /dicom\.peers\[2\]\.port must be a whole number from 1 to 65535/,
      /dicom\.peers\[2\]\.operations: "fly" is not one of/,
    ];
    for (const pattern of expected) assert.ok(many.some((p) => pattern.test(p)), `${pattern} in:\n${many.join('\n')}`);
    assert.equal(many.length, expected.length, many.join('\n'));

    assert.deepEqual(await problems({ tls: { cert: path.join(dir, 'missing.pem'), key: path.join(dir, 'atrium.json'), requireClientCert: false } }),
      [`dicom.tls.cert (ATRIUM_DICOM_TLS_CERT): no file at ${path.join(dir, 'missing.pem')}`]);
    assert.deepEqual(await problems({ tls: null, peers: [] }), []);
    assert.match((await problems({ peers: {} }))[0], /dicom\.peers must be a list/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('HTTPS: PEM files checked, client certificates optional, Secure cookies by default; CORS origins as a list', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-config-https-'));
  try {
    await writeFile(path.join(dir, 'cert.pem'), 'x');
    await writeFile(path.join(dir, 'key.pem'), 'x');
    const config = loadConfig({ env: {
      ATRIUM_DATA: dir, ATRIUM_HTTP_TLS_CERT: path.join(dir, 'cert.pem'), ATRIUM_HTTP_TLS_KEY: path.join(dir, 'key.pem'),
      ATRIUM_HTTP_CORS_ORIGINS: 'https://viewer.example.org, http://localhost:3000',
    } });
    assert.deepEqual(config.http.tls, { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem'), ca: null, requireClientCert: false });
    assert.deepEqual(config.http.corsOrigins, ['https://viewer.example.org', 'http://localhost:3000']);
    assert.equal(config.security.sessions.secureCookie, true, 'a session cookie sent over HTTPS is Secure');

    const problemsOf = async (http: unknown): Promise<string[]> => {
      await writeFile(path.join(dir, 'atrium.json'), JSON.stringify({ http }));
      try { loadConfig({ dataDir: dir, env: {} }); return []; } catch (error) { return (error as ConfigError).problems; }
    };
    assert.deepEqual(await problemsOf({ tls: { cert: path.join(dir, 'missing.pem'), requireClientCert: true } }), [
      `http.tls.cert (ATRIUM_HTTP_TLS_CERT): no file at ${path.join(dir, 'missing.pem')}`,
      'http.tls.key (ATRIUM_HTTP_TLS_KEY) is required when HTTPS is enabled: the path of a PEM file',
      'http.tls.ca (ATRIUM_HTTP_TLS_CA) is required when HTTPS is enabled: the path of a PEM file',
    ]);
    assert.match((await problemsOf({ corsOrigins: ['https://ok.example', 'viewer.example.org/path'] }))[0], /http\.corsOrigins .* must list origins/);
    assert.deepEqual(await problemsOf({ tls: { cert: 'x', colour: 1 }, proxy: true }).then((p) => p.filter((l) => l.startsWith('unknown'))),
      ['unknown option "http.proxy"', 'unknown option "http.tls.colour"']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
