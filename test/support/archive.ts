import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { MODULES, openArchive, type Archive } from '../../src/app.ts';
import { loadConfig, type AtriumConfig } from '../../src/config/config.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import type { DuplicatePolicy } from '../../src/ports/index-store.ts';
import { configSectionsOf } from '../../src/modules/module.ts';
import { createTestSchema } from './postgres.ts';
import { startS3Server } from './s3-server.ts';
import { SqlSecurityStore } from '../../src/adapters/index/sql-security-store.ts';
import { sha256Hex } from '../../src/security/secrets.ts';

/**
 * The administrator API key of every test archive. Fixed (the same in every test database) so that the
 * fetch wrapper below can authenticate requests to any test server of the process; it exists only in the
 * throw-away databases of tests.
 */
export const TEST_ADMIN_KEY = 'atr_000000000a11_TESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTES';

/** `Authorization: Bearer <test admin key>`, merged into `headers`. */
export function authHeaders(headers: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${TEST_ADMIN_KEY}`, ...headers };
}

let fetchWrapped = false;
/**
 * Tests authenticate rather than turn security off: once a test archive exists, `fetch` to a loopback
 * address (the test servers) that carries no credentials of its own (Authorization, X-Api-Key, Cookie)
 * gets the test administrator's key. A test about authentication itself sends its own credentials, or
 * `x-atrium-test-anonymous: 1` to send none (the header is removed before the request leaves), or uses
 * app.inject, which this wrapper does not touch.
 */
export function installAuthFetch(): void {
  if (fetchWrapped) return;
  fetchWrapped = true;
  const original = globalThis.fetch;
  globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) return await original(input, init);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (headers.has('x-atrium-test-anonymous')) headers.delete('x-atrium-test-anonymous');
    else if (!headers.has('authorization') && !headers.has('x-api-key') && !headers.has('cookie')) headers.set('authorization', `Bearer ${TEST_ADMIN_KEY}`);
    return await original(input, { ...init, headers });
  }) as typeof fetch;
}

/** Creates the test administrator key in the archive's database (once per database). */
export async function createTestAdminKey(archive: Archive): Promise<string> {
  const store = new SqlSecurityStore(archive.database);
  if (!(await store.getApiKeyBySecretHash(sha256Hex(TEST_ADMIN_KEY)))) {
    await store.createApiKey({
      keyId: TEST_ADMIN_KEY.slice(4, 16), name: 'test administrator', secretHash: sha256Hex(TEST_ADMIN_KEY), roles: ['administrator'],
      routePrefixes: null, createdBy: 'test/support/archive.ts', createdAt: new Date().toISOString(), expiresAt: null,
    });
  }
  return TEST_ADMIN_KEY;
}

/** The engine combinations every archive contract runs on. */
export const ENGINE_COMBINATIONS = ['sqlite+fs', 'postgres+fs', 'postgres+s3'] as const;
export type EngineCombination = (typeof ENGINE_COMBINATIONS)[number];

export interface TestArchive {
  archive: Archive;
  config: AtriumConfig;
  /** An administrator API key of this archive (send it as `Authorization: Bearer <key>`). */
  adminKey: string;
  /** Headers that authenticate as the administrator, merged with `headers`. */
  authHeaders(headers?: Record<string, string>): Record<string, string>;
  /** Opens a second archive on the same storage (another node, or the same one after a restart). */
  reopen(overrides?: { duplicatePolicy?: DuplicatePolicy }): Promise<Archive>;
  cleanup(): Promise<void>;
}

/** The ATRIUM_* environment that points a child process at the same storage as `config`. */
export function environmentFor(config: AtriumConfig): Record<string, string> {
  const env: Record<string, string> = { ATRIUM_DATA: config.dataDir, ATRIUM_INDEX_ENGINE: config.index.engine, ATRIUM_BLOB_ENGINE: config.blobs.engine };
  if (config.index.engine === 'postgres') env.ATRIUM_POSTGRES_URL = config.index.url;
  if (config.blobs.engine === 's3') {
    Object.assign(env, {
      ATRIUM_S3_ENDPOINT: config.blobs.endpoint ?? '', ATRIUM_S3_BUCKET: config.blobs.bucket, ATRIUM_S3_REGION: config.blobs.region,
      ATRIUM_S3_ACCESS_KEY_ID: config.blobs.accessKeyId ?? '', ATRIUM_S3_SECRET_ACCESS_KEY: config.blobs.secretAccessKey ?? '',
    });
  }
  return env;
}

export async function createTestArchive(combination: EngineCombination, options: { duplicatePolicy?: DuplicatePolicy; log?: Logger } = {}): Promise<TestArchive> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'atrium-test-'));
  const cleanups: (() => Promise<void>)[] = [() => rm(dataDir, { recursive: true, force: true })];
  const env: Record<string, string> = { ATRIUM_DATA: dataDir, ATRIUM_LOG_LEVEL: process.env.ATRIUM_TEST_LOG_LEVEL ?? 'silent' };
  if (combination.startsWith('postgres')) {
    const schema = await createTestSchema();
    cleanups.push(() => schema.drop());
    Object.assign(env, { ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: schema.connectionString });
  }
  if (combination.endsWith('s3')) {
    const s3 = await startS3Server();
    cleanups.push(() => s3.stop());
    Object.assign(env, {
      ATRIUM_BLOB_ENGINE: 's3', ATRIUM_S3_ENDPOINT: s3.endpoint, ATRIUM_S3_BUCKET: s3.bucket, ATRIUM_S3_REGION: s3.region,
      ATRIUM_S3_ACCESS_KEY_ID: s3.accessKeyId, ATRIUM_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      // s3rver stores parts in memory-friendly sizes; the minimum keeps multipart exercised by small tests.
      ATRIUM_S3_PART_SIZE_MIB: '5',
    });
  }
  const base = loadConfig({ env, sections: configSectionsOf(MODULES) });
  const open = async (policy?: DuplicatePolicy) => {
    const config: AtriumConfig = { ...base, ingest: { ...base.ingest, duplicatePolicy: policy ?? options.duplicatePolicy ?? 'reject' } };
    return await openArchive(config, { log: options.log ?? pino({ level: base.log.level }), metrics: new Metrics({ defaultMetrics: false }) });
  };
  const archive = await open();
  const opened: Archive[] = [archive];
  const adminKey = await createTestAdminKey(archive);
  installAuthFetch();
  return {
    archive,
    config: base,
    adminKey,
    authHeaders,
    async reopen(overrides = {}) {
      const next = await open(overrides.duplicatePolicy);
      opened.push(next);
      return next;
    },
    async cleanup() {
      for (const a of opened) await a.close().catch(() => {});
      for (const c of cleanups.reverse()) await c().catch(() => {});
    },
  };
}
