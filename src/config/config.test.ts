import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, redactedConfig, ConfigError } from './config.ts';

test('defaults run the embedded engines on localhost', () => {
  const config = loadConfig({ env: {} });
  assert.equal(config.dataDir, path.resolve('./data'));
  assert.deepEqual(config.http, { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(config.index, { engine: 'sqlite' });
  assert.deepEqual(config.blobs, { engine: 'fs' });
  assert.equal(config.ingest.duplicatePolicy, 'reject');
});

test('file, then environment, then --data: later sources win', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-config-'));
  try {
    await writeFile(path.join(dir, 'atrium.json'), JSON.stringify({ http: { port: 9000, host: '0.0.0.0' }, ingest: { duplicatePolicy: 'version' } }));
    const fromFile = loadConfig({ dataDir: dir, env: {} });
    assert.deepEqual(fromFile.http, { host: '0.0.0.0', port: 9000 });
    assert.equal(fromFile.ingest.duplicatePolicy, 'version');
    const fromEnv = loadConfig({ dataDir: dir, env: { ATRIUM_HTTP_PORT: '9100', ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: 'postgres://a:secret@h/db' } });
    assert.equal(fromEnv.http.port, 9100);
    assert.deepEqual(fromEnv.index, { engine: 'postgres', url: 'postgres://a:secret@h/db', poolSize: 10 });
    assert.equal(fromEnv.dataDir, dir);
    assert.equal((redactedConfig(fromEnv) as any).index.url, 'postgres://a:***@h/db');
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
