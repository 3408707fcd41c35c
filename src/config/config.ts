import { readFileSync, existsSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { isIP } from 'node:net';
import type { DuplicatePolicy, InvalidUidPolicy } from '../ports/index-store.ts';
import { DEFAULT_SECURITY_CONFIG, ROLES, isRole, type Role, type SecurityConfig } from '../security/types.ts';
import { aeTitleProblem, peerOperations, peerProblems, DICOM_OPERATIONS, type DicomOperation, type DicomPeerInput } from '../ports/peer-registry.ts';

/** Every option Atrium reads; docs/configuration.md lists them with their defaults and variables. */
export interface AtriumConfig {
  /** Folder of the embedded index, the filesystem blobs and the default config file. */
  dataDir: string;
  http: HttpConfig;
  index: { engine: 'sqlite' } | { engine: 'postgres'; url: string; poolSize: number };
  blobs:
    | { engine: 'fs' }
    | { engine: 's3'; endpoint: string | null; region: string; bucket: string; prefix: string; accessKeyId: string | null;
        secretAccessKey: string | null; forcePathStyle: boolean; partSizeMiB: number };
  ingest: { duplicatePolicy: DuplicatePolicy; importConcurrency: number; invalidUidPolicy: InvalidUidPolicy };
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
  dicom: DicomConfig;
  /** The audit trail: a syslog copy (IHE ATNA), retention. */
  audit: AuditConfig;
  /** Authentication and authorization (src/security/). */
  security: SecurityConfig;
  /** The modules' own sections (ConfigSection), by key; read them with sectionOf. */
  sections: Readonly<Record<string, unknown>>;
}

/** The HTTP service (REST, DICOMweb, UI): where it listens, HTTPS, and which web origins may call DICOMweb. */
export interface HttpConfig {
  host: string;
  port: number;
  /** HTTPS instead of plain HTTP on the same port, or null. Paths to PEM files; `ca` verifies client certificates. */
  tls: null | { cert: string; key: string; ca: string | null; requireClientCert: boolean };
  /** Origins allowed to call DICOMweb from a browser (CORS); ["*"] for any. */
  corsOrigins: string[];
  /**
   * Reverse proxies (addresses, CIDRs, or "loopback" / "linklocal" / "uniquelocal") whose X-Forwarded-For,
   * X-Forwarded-Proto/Host and Forwarded headers are believed: the client address they name is the one used for
   * the audit trail, the per-address login lock-out and the loopback rule of /metrics. None by default.
   */
  trustedProxies: string[];
}

/** The DICOM (DIMSE) service: our application entity, its limits, TLS and the known peers. */
export interface DicomConfig {
  aeTitle: string;
  host: string;
  port: number;
  maxAssociations: number;
  maxPduLength: number;
  /** Association request/release timer (ARTIM). */
  artimTimeoutMs: number;
  /** An association with no PDU for this long is aborted. 0: never. */
  idleTimeoutMs: number;
  /** What callers that are not known peers may do. */
  unknownCallers: DicomOperation[];
  acceptUnknownSopClasses: boolean;
  caseInsensitivePersonNames: boolean;
  /** A second, TLS listener (PS3.15 B.1), or null. Paths to PEM files. */
  tls: null | { port: number; cert: string; key: string; ca: string | null; requireClientCert: boolean };
  /** Known peers, synced into the peer registry (source=config) at start. */
  peers: Array<Required<Omit<DicomPeerInput, 'description'>> & { description: string | null }>;
}

/** `audit.syslog`: where a copy of every audit record goes as an RFC 5424 message (src/audit/syslog.ts). */
export interface AuditConfig {
  syslog: null | { host: string; port: number; protocol: 'udp' | 'tcp' | 'tls'; appName: string; ca: string | null; cert: string | null; key: string | null };
  /** Days audit records are meant to be kept; informational for now (nothing is deleted). null: forever. */
  retentionDays: number | null;
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
  ATRIUM_HTTP_TLS_CERT: 'http.tls.cert',
  ATRIUM_HTTP_TLS_KEY: 'http.tls.key',
  ATRIUM_HTTP_TLS_CA: 'http.tls.ca',
  ATRIUM_HTTP_CORS_ORIGINS: 'http.corsOrigins',
  ATRIUM_HTTP_TRUSTED_PROXIES: 'http.trustedProxies',
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
  ATRIUM_INVALID_UID_POLICY: 'ingest.invalidUidPolicy',
  ATRIUM_LOG_LEVEL: 'log.level',
  ATRIUM_DICOM_AE_TITLE: 'dicom.aeTitle',
  ATRIUM_DICOM_HOST: 'dicom.host',
  ATRIUM_DICOM_PORT: 'dicom.port',
  ATRIUM_DICOM_MAX_ASSOCIATIONS: 'dicom.maxAssociations',
  ATRIUM_DICOM_TLS_PORT: 'dicom.tls.port',
  ATRIUM_DICOM_TLS_CERT: 'dicom.tls.cert',
  ATRIUM_DICOM_TLS_KEY: 'dicom.tls.key',
  ATRIUM_DICOM_TLS_CA: 'dicom.tls.ca',
  ATRIUM_AUDIT_SYSLOG_HOST: 'audit.syslog.host',
  ATRIUM_AUDIT_SYSLOG_PORT: 'audit.syslog.port',
  ATRIUM_AUDIT_SYSLOG_PROTOCOL: 'audit.syslog.protocol',
  ATRIUM_SECURITY_ENABLED: 'security.enabled',
  ATRIUM_OIDC_ISSUER: 'security.oidc.issuer',
  ATRIUM_OIDC_AUDIENCE: 'security.oidc.audience',
  ATRIUM_OIDC_JWKS_URI: 'security.oidc.jwksUri',
};

type Raw = Record<string, any>;

/**
 * Loads the configuration: defaults, then the JSON file (`--config`, or `<data>/atrium.json` when it
 * exists), then ATRIUM_* environment variables, then the command line's `--data`. Validated once, here,
 * with every problem listed at once.
 */
const CORE_SECTIONS = ['dataDir', 'http', 'index', 'blobs', 'ingest', 'log', 'dicom', 'security', 'audit'];

export function loadConfig(options: { dataDir?: string; file?: string; env?: NodeJS.ProcessEnv; sections?: readonly ConfigSection[] } = {}): AtriumConfig {
  const sections = options.sections ?? [];
  const environment: Record<string, string> = { ...ENVIRONMENT };
  for (const section of sections) {
    if (CORE_SECTIONS.includes(section.key) || sections.filter((x) => x.key === section.key).length > 1) throw new Error(`configuration section "${section.key}" is defined twice`);
    for (const [name, path] of Object.entries(section.environment)) {
      if (environment[name] !== undefined) throw new Error(`configuration variable ${name} is defined twice`);
      if (!path.startsWith(`${section.key}.`)) throw new Error(`configuration variable ${name} of section "${section.key}" names ${path}, outside the section`);
      environment[name] = path;
    }
  }
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
  for (const [name, path] of Object.entries(environment)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(raw, path, value);
  }
  if (options.dataDir) raw.dataDir = options.dataDir;

  const known = new Set([...CORE_SECTIONS, ...sections.map((x) => x.key)]);
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

  const list = (path: string, fallback: string[]) => {
    const v = getPath(raw, path);
    if (v === undefined) return fallback;
    const items = typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v;
    if (!Array.isArray(items) || items.some((x) => typeof x !== 'string')) { problems.push(`${path} must be a list of strings, got ${JSON.stringify(v)}`); return fallback; }
    return items as string[];
  };
  const object = (path: string, keys: readonly string[]) => objectSection(raw, path, [...keys], problems) !== null;
  const readers: ConfigReaders = { str, optStr, int, bool, oneOf, list, object };

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
  const http = loadHttp(raw, problems, { str, optStr, int, bool });
  const config: AtriumConfig = {
    dataDir,
    http,
    index,
    blobs,
    ingest: {
      duplicatePolicy: oneOf('ingest.duplicatePolicy', ['reject', 'version', 'overwrite'] as const, 'reject'),
      importConcurrency: int('ingest.importConcurrency', 4, 1, 64),
      invalidUidPolicy: oneOf('ingest.invalidUidPolicy', ['flag', 'quarantine', 'reject'] as const, 'flag'),
    },
    log: { level: oneOf('log.level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info') },
    dicom: loadDicom(raw, problems, { str, optStr, int, bool }),
    audit: loadAudit(raw, problems, { str, optStr, int, bool }),
    security: loadSecurity(raw, problems, { str, optStr, int, bool }, { secureCookie: http.tls !== null }),
    sections: Object.fromEntries(sections.map((section) => {
      objectSection(raw, section.key, [...section.keys], problems);
      return [section.key, section.load(readers, problems)];
    })),
  };
  if (problems.length) throw new ConfigError(problems);
  return config;
}

type Readers = Pick<ConfigReaders, 'str' | 'optStr' | 'int' | 'bool'>;

/**
 * The readers of one configuration, by dotted path (`ris.hl7.port`): each reports a wrong value as a problem
 * naming its path and returns the fallback, so that one error lists every problem.
 */
export interface ConfigReaders {
  str(path: string, fallback: string): string;
  optStr(path: string): string | null;
  int(path: string, fallback: number, min: number, max: number): number;
  bool(path: string, fallback: boolean): boolean;
  oneOf<T extends string>(path: string, choices: readonly T[], fallback: T): T;
  /** A list of strings: a JSON list in the file, comma-separated in a variable. */
  list(path: string, fallback: string[]): string[];
  /** Whether the object at `path` is given; a problem when it is not an object or has keys other than `keys`. */
  object(path: string, keys: readonly string[]): boolean;
}

/**
 * A module's own part of the configuration (AtriumModule.config): the top-level `key` of atrium.json with its
 * allowed `keys`, its ATRIUM_* variables (name -> dotted path), and `load`, which reads the section into the
 * module's settings. Loaded by loadConfig with the core's sections and validated with them; a module reads
 * its settings with `sectionOf(config, section)`.
 */
export interface ConfigSection<T = unknown> {
  key: string;
  keys: readonly string[];
  environment: Readonly<Record<string, string>>;
  load(read: ConfigReaders, problems: string[]): T;
}

/** A module's settings, as loadConfig read them. */
export function sectionOf<T>(config: AtriumConfig, section: ConfigSection<T>): T {
  if (!Object.hasOwn(config.sections, section.key)) {
    throw new Error(`the configuration was loaded without the "${section.key}" section: loadConfig needs the installed modules' sections`);
  }
  return config.sections[section.key] as T;
}

/** The path of a PEM file named by `<section>.<key>`, checked to exist; null when not given. */
function pemFile(section: string, key: string, variable: string | null, required: boolean, problems: string[], optStr: Readers['optStr']): string | null {
  const value = optStr(`${section}.${key}`);
  const name = variable ? `${section}.${key} (${variable})` : `${section}.${key}`;
  if (!value) {
    if (required) problems.push(`${name} is required when ${section === 'http.tls' ? 'HTTPS' : 'DICOM TLS'} is enabled: the path of a PEM file`);
    return null;
  }
  if (!existsSync(value)) problems.push(`${name}: no file at ${value}`);
  return value;
}

/** An optional object section: problems for a wrong type and unknown keys; the section, or null when absent. */
function objectSection(raw: Raw, path: string, keys: string[], problems: string[]): Raw | null {
  const v = getPath(raw, path);
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) { problems.push(`${path} must be an object or null`); return null; }
  for (const key of Object.keys(v)) if (!keys.includes(key)) problems.push(`unknown option "${path}.${key}"`);
  return v;
}

const HTTP_KEYS = ['host', 'port', 'tls', 'corsOrigins', 'trustedProxies'];
/** The names proxy-addr (Fastify's trustProxy) gives to address ranges. */
const PROXY_RANGE_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

function isProxyAddress(entry: string): boolean {
  if (PROXY_RANGE_NAMES.includes(entry)) return true;
  const [address, bits, extra] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}
const HTTP_TLS_KEYS = ['cert', 'key', 'ca', 'requireClientCert'];

function loadHttp(raw: Raw, problems: string[], { str, optStr, int, bool }: Readers): HttpConfig {
  objectSection(raw, 'http', HTTP_KEYS, problems);
  let tls: HttpConfig['tls'] = null;
  if (objectSection(raw, 'http.tls', HTTP_TLS_KEYS, problems)) {
    const requireClientCert = bool('http.tls.requireClientCert', false);
    tls = {
      cert: pemFile('http.tls', 'cert', 'ATRIUM_HTTP_TLS_CERT', true, problems, optStr) ?? '',
      key: pemFile('http.tls', 'key', 'ATRIUM_HTTP_TLS_KEY', true, problems, optStr) ?? '',
      ca: pemFile('http.tls', 'ca', 'ATRIUM_HTTP_TLS_CA', requireClientCert, problems, optStr),
      requireClientCert,
    };
  }
  // A list in the file, a comma-separated list in ATRIUM_HTTP_CORS_ORIGINS.
  const rawOrigins = getPath(raw, 'http.corsOrigins') ?? ['*'];
  const origins = typeof rawOrigins === 'string' ? rawOrigins.split(',').map((o) => o.trim()).filter(Boolean) : rawOrigins;
  let corsOrigins = ['*'];
  if (!Array.isArray(origins) || origins.some((o) => typeof o !== 'string' || !(o === '*' || /^https?:\/\/[^/\s]+$/.test(o)))) {
    problems.push(`http.corsOrigins (ATRIUM_HTTP_CORS_ORIGINS) must list origins such as https://viewer.example.org (scheme, host, optional port; no path) or "*", got ${JSON.stringify(rawOrigins)}`);
  } else corsOrigins = origins;
  const rawProxies = getPath(raw, 'http.trustedProxies') ?? [];
  const proxies = typeof rawProxies === 'string' ? rawProxies.split(',').map((p) => p.trim()).filter(Boolean) : rawProxies;
  let trustedProxies: string[] = [];
  if (!Array.isArray(proxies) || proxies.some((p) => typeof p !== 'string' || !isProxyAddress(p))) {
    problems.push(`http.trustedProxies (ATRIUM_HTTP_TRUSTED_PROXIES) must list addresses or CIDRs such as 127.0.0.1 or 10.0.0.0/8 (or loopback, linklocal, uniquelocal), got ${JSON.stringify(rawProxies)}`);
  } else trustedProxies = proxies;
  return { host: str('http.host', '127.0.0.1'), port: int('http.port', 8080, 0, 65535), tls, corsOrigins, trustedProxies };
}

const DICOM_KEYS = ['aeTitle', 'host', 'port', 'maxAssociations', 'maxPduLength', 'artimTimeoutMs', 'idleTimeoutMs', 'unknownCallers',
  'acceptUnknownSopClasses', 'caseInsensitivePersonNames', 'tls', 'peers'];
const TLS_KEYS = ['port', 'cert', 'key', 'ca', 'requireClientCert'];
const PEER_KEYS = ['aeTitle', 'host', 'port', 'tls', 'operations', 'description'];

function loadDicom(raw: Raw, problems: string[], { str, optStr, int, bool }: Readers): DicomConfig {
  const section = getPath(raw, 'dicom');
  if (section !== undefined && (section === null || typeof section !== 'object' || Array.isArray(section))) {
    problems.push('dicom must be an object');
  } else if (section) {
    for (const key of Object.keys(section)) if (!DICOM_KEYS.includes(key)) problems.push(`unknown option "dicom.${key}"`);
  }

  const aeTitle = getPath(raw, 'dicom.aeTitle') ?? 'ATRIUM';
  const aeProblem = aeTitleProblem(aeTitle);
  if (aeProblem) problems.push(`dicom.aeTitle (ATRIUM_DICOM_AE_TITLE) ${aeProblem}`);

  const operations = (path: string, fallback: DicomOperation[]): DicomOperation[] => {
    const v = getPath(raw, path);
    if (v === undefined) return fallback;
    if (!Array.isArray(v)) { problems.push(`${path} must be a list of ${DICOM_OPERATIONS.join(', ')}`); return fallback; }
    const bad = v.filter((op) => !DICOM_OPERATIONS.includes(op));
    if (bad.length) { problems.push(`${path}: ${bad.map((b) => `"${b}"`).join(', ')} not one of ${DICOM_OPERATIONS.join(', ')}`); return fallback; }
    return DICOM_OPERATIONS.filter((op) => v.includes(op));
  };

  let tls: DicomConfig['tls'] = null;
  if (objectSection(raw, 'dicom.tls', TLS_KEYS, problems)) {
    const requireClientCert = bool('dicom.tls.requireClientCert', true);
    tls = {
      port: int('dicom.tls.port', 2762, 0, 65535),
      cert: pemFile('dicom.tls', 'cert', 'ATRIUM_DICOM_TLS_CERT', true, problems, optStr) ?? '',
      key: pemFile('dicom.tls', 'key', 'ATRIUM_DICOM_TLS_KEY', true, problems, optStr) ?? '',
      ca: pemFile('dicom.tls', 'ca', 'ATRIUM_DICOM_TLS_CA', requireClientCert, problems, optStr),
      requireClientCert,
    };
  }

  const peers: DicomConfig['peers'] = [];
  const rawPeers = getPath(raw, 'dicom.peers');
  if (rawPeers !== undefined && !Array.isArray(rawPeers)) problems.push('dicom.peers must be a list');
  else for (const [i, p] of (rawPeers ?? []).entries()) {
    const where = `dicom.peers[${i}]`;
    if (p && typeof p === 'object') {
      for (const key of Object.keys(p)) if (!PEER_KEYS.includes(key)) problems.push(`unknown option "${where}.${key}"`);
    }
    // A configured peer without operations is trusted with all of them (peerOperations, as for the API).
    const peer = p;
    const peerProblemList = peerProblems(peer, where);
    problems.push(...peerProblemList);
    if (peerProblemList.length) continue;
    const aeTitle = String(peer.aeTitle).trim();
    if (peers.some((q) => q.aeTitle === aeTitle)) { problems.push(`${where}.aeTitle "${aeTitle}" is listed twice`); continue; }
    peers.push({
      aeTitle, host: String(peer.host).trim(), port: peer.port, tls: peer.tls ?? false,
      operations: peerOperations(peer), description: peer.description ?? null,
    });
  }

  return {
    aeTitle: typeof aeTitle === 'string' ? aeTitle.trim() : 'ATRIUM',
    host: str('dicom.host', '127.0.0.1'),
    port: int('dicom.port', 11112, 0, 65535),
    maxAssociations: int('dicom.maxAssociations', 50, 1, 10_000),
    maxPduLength: int('dicom.maxPduLength', 262_144, 4_096, 16_777_216),
    artimTimeoutMs: int('dicom.artimTimeoutMs', 30_000, 1_000, 600_000),
    idleTimeoutMs: int('dicom.idleTimeoutMs', 300_000, 0, 86_400_000),
    unknownCallers: operations('dicom.unknownCallers', ['echo', 'store']),
    acceptUnknownSopClasses: bool('dicom.acceptUnknownSopClasses', false),
    caseInsensitivePersonNames: bool('dicom.caseInsensitivePersonNames', true),
    tls,
    peers,
  };
}

const SECURITY_KEYS = ['enabled', 'oidc', 'sessions', 'lockout', 'referringClinicianRule'];
const OIDC_KEYS = ['issuer', 'audience', 'jwksUri', 'rolesClaim', 'roleMapping', 'usernameClaim', 'clockToleranceSeconds'];
const SESSION_KEYS = ['idleMinutes', 'absoluteHours', 'secureCookie'];
const LOCKOUT_KEYS = ['maxFailures', 'lockMinutes', 'maxFailuresPerAddress'];
const RULE_KEYS = ['attribute', 'personNameClaim'];

function loadSecurity(raw: Raw, problems: string[], { str, optStr, int, bool }: Readers, derived: { secureCookie: boolean }): SecurityConfig {
  const defaults = DEFAULT_SECURITY_CONFIG;
  const object = (path: string, keys: string[], nullable = false): Raw | null | undefined => {
    const v = getPath(raw, path);
    if (v === undefined || (nullable && v === null)) return v;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) { problems.push(`${path} must be an object${nullable ? ' or null' : ''}`); return undefined; }
    for (const key of Object.keys(v)) if (!keys.includes(key)) problems.push(`unknown option "${path}.${key}"`);
    return v;
  };
  object('security', SECURITY_KEYS);
  object('security.sessions', SESSION_KEYS);
  object('security.lockout', LOCKOUT_KEYS);
  object('security.referringClinicianRule', RULE_KEYS);
  const url = (path: string, variable: string, value: string | null): string | null => {
    if (value === null) return null;
    let parsed: URL;
    try { parsed = new URL(value); } catch { problems.push(`${path} (${variable}) must be a URL, got "${value}"`); return value; }
    const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(parsed.hostname);
    if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) problems.push(`${path} (${variable}) must be an https URL (http only on localhost), got "${value}"`);
    return value;
  };

  let oidc: SecurityConfig['oidc'] = null;
  const rawOidc = object('security.oidc', OIDC_KEYS, true);
  if (rawOidc) {
    const issuer = url('security.oidc.issuer', 'ATRIUM_OIDC_ISSUER', optStr('security.oidc.issuer'));
    const audience = optStr('security.oidc.audience');
    if (!issuer) problems.push('security.oidc.issuer (ATRIUM_OIDC_ISSUER) is required with OIDC, e.g. https://login.example.org/realms/hospital');
    if (!audience) problems.push('security.oidc.audience (ATRIUM_OIDC_AUDIENCE) is required with OIDC: the audience (client id) tokens for Atrium carry');
    const roleMapping: Record<string, Role[]> = {};
    const rawMapping = getPath(raw, 'security.oidc.roleMapping');
    if (rawMapping !== undefined && (rawMapping === null || typeof rawMapping !== 'object' || Array.isArray(rawMapping))) {
      problems.push('security.oidc.roleMapping must be an object: claim value -> Atrium role or list of roles');
    } else for (const [value, target] of Object.entries(rawMapping ?? {})) {
      const roles = Array.isArray(target) ? target : [target];
      const bad = roles.filter((r) => !isRole(r));
      if (bad.length) problems.push(`security.oidc.roleMapping["${value}"]: ${bad.map((b) => `"${b}"`).join(', ')} not one of ${ROLES.join(', ')}`);
      else roleMapping[value] = [...new Set(roles as Role[])];
    }
    oidc = {
      issuer: issuer ?? '', audience: audience ?? '',
      jwksUri: url('security.oidc.jwksUri', 'ATRIUM_OIDC_JWKS_URI', optStr('security.oidc.jwksUri')),
      rolesClaim: str('security.oidc.rolesClaim', 'roles'),
      roleMapping,
      usernameClaim: str('security.oidc.usernameClaim', 'preferred_username'),
      clockToleranceSeconds: int('security.oidc.clockToleranceSeconds', 30, 0, 600),
    };
  }

  const attribute = getPath(raw, 'security.referringClinicianRule.attribute') ?? 'ReferringPhysicianName';
  if (attribute !== 'ReferringPhysicianName') problems.push(`security.referringClinicianRule.attribute must be ReferringPhysicianName (the only one supported), got "${attribute}"`);
  return {
    enabled: bool('security.enabled', defaults.enabled),
    oidc,
    sessions: {
      idleMinutes: int('security.sessions.idleMinutes', defaults.sessions.idleMinutes, 1, 10_080),
      absoluteHours: int('security.sessions.absoluteHours', defaults.sessions.absoluteHours, 1, 720),
      // Over HTTPS the session cookie is marked Secure unless the administrator says otherwise.
      secureCookie: bool('security.sessions.secureCookie', derived.secureCookie || defaults.sessions.secureCookie),
    },
    lockout: {
      maxFailures: int('security.lockout.maxFailures', defaults.lockout.maxFailures, 1, 1000),
      lockMinutes: int('security.lockout.lockMinutes', defaults.lockout.lockMinutes, 1, 1440),
      maxFailuresPerAddress: int('security.lockout.maxFailuresPerAddress', defaults.lockout.maxFailuresPerAddress, 1, 100_000),
    },
    referringClinicianRule: { attribute: 'ReferringPhysicianName', personNameClaim: optStr('security.referringClinicianRule.personNameClaim') },
  };
}

const AUDIT_KEYS = ['syslog', 'retentionDays'];
const SYSLOG_KEYS = ['host', 'port', 'protocol', 'appName', 'ca', 'cert', 'key'];

/** The audit trail (src/audit/): an optional syslog copy of every record, and the retention (informational for now). */
function loadAudit(raw: Raw, problems: string[], { str, optStr, int }: Readers): AuditConfig {
  const section = getPath(raw, 'audit');
  if (section !== undefined && (section === null || typeof section !== 'object' || Array.isArray(section))) problems.push('audit must be an object');
  else if (section) for (const key of Object.keys(section)) if (!AUDIT_KEYS.includes(key)) problems.push(`unknown option "audit.${key}"`);

  let syslog: AuditConfig['syslog'] = null;
  const rawSyslog = getPath(raw, 'audit.syslog');
  if (rawSyslog !== undefined && rawSyslog !== null) {
    if (typeof rawSyslog !== 'object' || Array.isArray(rawSyslog)) {
      problems.push('audit.syslog must be an object or null');
    } else {
      for (const key of Object.keys(rawSyslog)) if (!SYSLOG_KEYS.includes(key)) problems.push(`unknown option "audit.syslog.${key}"`);
      const protocol = getPath(raw, 'audit.syslog.protocol') ?? 'udp';
      if (!['udp', 'tcp', 'tls'].includes(protocol)) problems.push(`audit.syslog.protocol (ATRIUM_AUDIT_SYSLOG_PROTOCOL) must be one of udp, tcp, tls, got "${protocol}"`);
      const host = optStr('audit.syslog.host');
      if (!host) problems.push('audit.syslog.host (ATRIUM_AUDIT_SYSLOG_HOST) is required to send audit messages to syslog');
      const file = (key: string): string | null => {
        const value = optStr(`audit.syslog.${key}`);
        if (value && !existsSync(value)) problems.push(`audit.syslog.${key}: no file at ${value}`);
        return value;
      };
      const appName = str('audit.syslog.appName', 'atrium');
      if (!/^[\x21-\x7e]{1,48}$/.test(appName)) problems.push(`audit.syslog.appName must be 1 to 48 printable ASCII characters without spaces, got "${appName}"`);
      const valid = ['udp', 'tcp', 'tls'].includes(protocol) ? (protocol as 'udp' | 'tcp' | 'tls') : 'udp';
      syslog = {
        host: host ?? '', port: int('audit.syslog.port', valid === 'tls' ? 6514 : 514, 1, 65535), protocol: valid, appName,
        ca: file('ca'), cert: file('cert'), key: file('key'),
      };
    }
  }
  const rawRetention = getPath(raw, 'audit.retentionDays');
  return { syslog, retentionDays: rawRetention === undefined || rawRetention === null ? null : int('audit.retentionDays', 0, 1, 36_500) };
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
