/**
 * The configuration as it is safe to show (GET /api/settings, `atrium config`): every secret replaced by
 * HIDDEN. Secrets are told by the name of their option, wherever it is (the core's sections and every
 * module's), and by their shape in any text (a password in a URL or a connection string, a PEM private key),
 * so that a module adding `clientSecret` or a URL with credentials is covered without being listed here.
 */
import type { AtriumConfig } from './config.ts';

export const HIDDEN = '[hidden]';

/**
 * Option names whose value is a secret: passwords and passcodes, secrets (S3 secretAccessKey, OIDC
 * clientSecret), tokens (the setup token, API tokens), API keys, credentials, the S3 access key id (half of
 * the credential pair) and keys (private keys, and `key`: the private key file of http.tls, dicom.tls and
 * audit.syslog: where the key lives is not shown either).
 */
const SECRET_NAME = /pass(word|wd|code|phrase)|secret|token|credential|accesskeyid|(^|[a-z_])key$/i;

/** Query or keyword parameters of connection strings that carry a secret (`?password=`, libpq's `password=`). */
const SECRET_PARAMETER = /((?:^|[?&;\s])(?:[a-z_]*pass(?:word|wd)?|[a-z_]*secret|[a-z_]*token|sslkey|api[_-]?key)=)([^&;\s]*)/gi;

/** The configuration with its secrets hidden; a deep copy, the configuration itself is not changed. */
export function redactedConfig(config: AtriumConfig): unknown {
  return redactSecrets(config);
}

/** Any JSON-like value with its secrets hidden: by option name, and by shape in every text. */
export function redactSecrets(value: unknown, name?: string): unknown {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') {
    // A secret that is not set (null, '') is shown as not set: that tells nothing of its value.
    if (name !== undefined && SECRET_NAME.test(name) && value !== '') return HIDDEN;
    return typeof value === 'string' ? redactText(value) : value;
  }
  // A list under a secret's name (credentials: [...]) is a list of secrets.
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, name));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactSecrets(item, key)]));
  }
  return value;
}

/** Secrets inside a text: the password of a URL (`postgres://u:p@h/db` -> `postgres://u:[hidden]@h/db`), secret parameters, PEM private keys. */
export function redactText(text: string): string {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) return HIDDEN;
  return text
    // user:password@ after a scheme; the user name stays, as it helps to tell which account is used.
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^:@/\s]*):[^@/\s]*@/gi, `$1:${HIDDEN}@`)
    .replace(SECRET_PARAMETER, `$1${HIDDEN}`);
}
