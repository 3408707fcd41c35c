import { readFileSync, existsSync } from 'node:fs';
import { resolve, join } from 'node:path';
import type { DuplicatePolicy } from '../ports/index-store.ts';

/** Every option Atrium reads; docs/configuration.md lists them with their defaults and variables. */
export interface AtriumConfig {
  /** Folder of the embedded index, the filesystem blobs and the default config file. */
  dataDir: string;
  http: { host: string; port: number };
  index: { engine: 'sqlite' } | { engine: 'postgres'; url: string; poolSize: number };
  blobs:
    | { engine: 'fs' }
    | { engine: 's3'; endpoint: string | null; region: string; bucket: string; prefix: string; accessKeyId: string | null;
        secretAccessKey: string | null; forcePathStyle: boolean; partSizeMiB: number };
  ingest: { duplicatePolicy: DuplicatePolicy; importConcurrency: number };
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
}

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Environment variables and the option each overrides (dotted path into the config file). */
export const ENVIRONMENT: Record<string, string> = {
  ATRIUM_DATA: 'dataDir',
  ATRIUM_HTTP_HOST: 'http.host',
  ATRIUM_HTTP_PORT: 'http.port',
  ATRIUM_INDEX_ENGINE: 'index.engine',
  ATRIUM_POSTGRES_URL: 'index.url',
  ATRIUM_POSTGRES_POOL_SIZE: 'index.poolSize',
  ATRIUM_BLOB_ENGINE: 'blobs.engine',
  ATRIUM_S3_ENDPOINT: 'blobs.endpoint',
  ATRIUM_S3_REGION: 'blobs.region',
  ATRIUM_S3_BUCKET: 'blobs.bucket',
  ATRIUM_S3_PREFIX: 'blobs.prefix',
  ATRIUM_S3_ACCESS_KEY_ID: 'blobs.accessKeyId',
  ATRIUM_S3_SECRET_ACCESS_KEY: 'blobs.secretAccessKey',
  ATRIUM_S3_FORCE_PATH_STYLE: 'blobs.forcePathStyle',
  ATRIUM_S3_PART_SIZE_MIB: 'blobs.partSizeMiB',
  ATRIUM_DUPLICATE_POLICY: 'ingest.duplicatePolicy',
  ATRIUM_IMPORT_CONCURRENCY: 'ingest.importConcurrency',
  ATRIUM_LOG_LEVEL: 'log.level',
};

type Raw = Record<string, any>;

/**
 * Loads the configuration: defaults, then the JSON file (`--config`, or `<data>/atrium.json` when it
 * exists), then ATRIUM_* environment variables, then the command line's `--data`. Validated once, here,
 * with every problem listed at once.
 */
export function loadConfig(options: { dataDir?: string; file?: string; env?: NodeJS.ProcessEnv } = {}): AtriumConfig {
  const env = options.env ?? process.env;
  const raw: Raw = {};
  const dataDirHint = options.dataDir ?? env.ATRIUM_DATA ?? './data';
  const file = options.file ?? (existsSync(join(dataDirHint, 'atrium.json')) ? join(dataDirHint, 'atrium.json') : undefined);
  const problems: string[] = [];
  if (file) {
    try {
      Object.assign(raw, JSON.parse(readFileSync(file, 'utf8')));
    } catch (error) {
      throw new ConfigError([`cannot read config file ${file}: ${(error as Error).message}`]);
    }
  }
  for (const [name, path] of Object.entries(ENVIRONMENT)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(raw, path, value);
  }
  if (options.dataDir) raw.dataDir = options.dataDir;

  const known = new Set(['dataDir', 'http', 'index', 'blobs', 'ingest', 'log']);
  for (const key of Object.keys(raw)) if (!known.has(key)) problems.push(`unknown option "${key}"`);

  const str = (path: string, fallback: string) => {
    const v = getPath(raw, path);
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v === '') { problems.push(`${path} must be a non-empty string`); return fallback; }
    return v;
  };
  const optStr = (path: string) => {
    const v = getPath(raw, path);
    return typeof v === 'string' && v !== '' ? v : null;
  };
  const int = (path: string, fallback: number, min: number, max: number) => {
    const v = getPath(raw, path);
    if (v === undefined) return fallback;
    const n = typeof v === 'number' ? v : Number(v);
    if (!Number.isInteger(n) || n < min || n > max) { problems.push(`${path} must be a whole number from ${min} to ${max}, got "${v}"`); return fallback; }
    return n;
  };
  const oneOf = <T extends string>(path: string, choices: readonly T[], fallback: T): T => {
    const v = getPath(raw, path) ?? fallback;
    if (!choices.includes(v)) { problems.push(`${path} must be one of ${choices.join(', ')}, got "${v}"`); return fallback; }
    return v as T;
  };
  const bool = (path: string, fallback: boolean) => {
    const v = getPath(raw, path);
    if (v === undefined) return fallback;
    if (v === true || v === 'true' || v === '1') return true;
    if (v === false || v === 'false' || v === '0') return false;
    problems.push(`${path} must be true or false, got "${v}"`);
    return fallback;
  };

  const dataDir = resolve(str('dataDir', './data'));
  const indexEngine = oneOf('index.engine', ['sqlite', 'postgres'] as const, 'sqlite');
  let index: AtriumConfig['index'] = { engine: 'sqlite' };
  if (indexEngine === 'postgres') {
    const url = optStr('index.url');
    if (!url) problems.push('index.url (ATRIUM_POSTGRES_URL) is required when index.engine is postgres, e.g. postgres://user@127.0.0.1:5432/atrium');
    index = { engine: 'postgres', url: url ?? '', poolSize: int('index.poolSize', 10, 1, 200) };
  }
  const blobEngine = oneOf('blobs.engine', ['fs', 's3'] as const, 'fs');
  let blobs: AtriumConfig['blobs'] = { engine: 'fs' };
  if (blobEngine === 's3') {
    const bucket = optStr('blobs.bucket');
    if (!bucket) problems.push('blobs.bucket (ATRIUM_S3_BUCKET) is required when blobs.engine is s3');
    blobs = {
      engine: 's3', endpoint: optStr('blobs.endpoint'), region: str('blobs.region', 'us-east-1'), bucket: bucket ?? '',
      prefix: getPath(raw, 'blobs.prefix') ?? '', accessKeyId: optStr('blobs.accessKeyId'), secretAccessKey: optStr('blobs.secretAccessKey'),
      forcePathStyle: bool('blobs.forcePathStyle', true), partSizeMiB: int('blobs.partSizeMiB', 8, 5, 5120),
    };
  }
  const config: AtriumConfig = {
    dataDir,
    http: { host: str('http.host', '127.0.0.1'), port: int('http.port', 8080, 0, 65535) },
    index,
    blobs,
    ingest: {
      duplicatePolicy: oneOf('ingest.duplicatePolicy', ['reject', 'version', 'overwrite'] as const, 'reject'),
      importConcurrency: int('ingest.importConcurrency', 4, 1, 64),
    },
    log: { level: oneOf('log.level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info') },
  };
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/** The configuration as it is safe to show: secrets masked. */
export function redactedConfig(config: AtriumConfig): unknown {
  const copy = structuredClone(config) as any;
  if (copy.blobs.secretAccessKey) copy.blobs.secretAccessKey = '***';
  if (copy.index.url) copy.index.url = String(copy.index.url).replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  return copy;
}

function getPath(obj: Raw, path: string): any {
  return path.split('.').reduce<any>((o, k) => (o && typeof o === 'object' ? o[k] : undefined), obj);
}

function setPath(obj: Raw, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys[keys.length - 1]] = value;
}
