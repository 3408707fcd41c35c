/**
 * `atrium certs`, `atrium user add` and `atrium api-key add`: what an administrator needs at a shell before
 * (or instead of) the web pages: a certificate set to try TLS with, accounts and machine keys.
 */
import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import type { AtriumConfig } from '../config/config.ts';
import { openArchive } from '../app.ts';
import { generateCertificateSet } from '../security/certificates.ts';
import { isRole, ROLES, type Role } from '../security/index.ts';
import { SecurityAdministration, type AuditActor } from '../audit/administration.ts';

/**
 * Who changes users and keys from a shell, for the audit trail: the operating-system account on this
 * host (not an Atrium principal: whoever can run the CLI has the data folder), through the CLI.
 */
export function cliActor(): AuditActor {
  return { principal: { kind: 'anonymous', id: null, displayName: `${userInfo().username}@${hostname()} (atrium CLI)` }, interface: 'cli', origin: { address: hostname() } };
}

export async function certsCommand(dir: string, options: { hosts: string[]; clientName?: string; days?: number }): Promise<number> {
  const set = await generateCertificateSet(dir, { hosts: options.hosts, clientName: options.clientName, days: options.days });
  console.log(`certificate set written to ${dir} (for testing: its CA is self-signed)
  CA                  ${set.ca}
  server certificate  ${set.serverCert}   key ${set.serverKey}
  client certificate  ${set.clientCert}   key ${set.clientKey}
HTTPS:      ATRIUM_HTTP_TLS_CERT=${set.serverCert} ATRIUM_HTTP_TLS_KEY=${set.serverKey}
DICOM TLS:  ATRIUM_DICOM_TLS_PORT=2762 ATRIUM_DICOM_TLS_CERT=${set.serverCert} ATRIUM_DICOM_TLS_KEY=${set.serverKey} ATRIUM_DICOM_TLS_CA=${set.ca}
DCMTK:      echoscu +tls ${set.clientKey} ${set.clientCert} +cf ${set.ca} -aec ATRIUM localhost 2762`);
  return 0;
}

function roles(names: string[]): Role[] {
  const bad = names.filter((r) => !isRole(r));
  if (bad.length || names.length === 0) throw new Error(`--role must be one or more of ${ROLES.join(', ')}${bad.length ? `, got ${bad.join(', ')}` : ''}`);
  return names as Role[];
}

/** The first line of standard input (a password piped in, never on the command line where `ps` shows it). */
async function firstLineOfStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += chunk;
    if (text.includes('\n')) break;
  }
  return text.split(/\r?\n/, 1)[0];
}

export async function userAddCommand(config: AtriumConfig, username: string,
  options: { role: string[]; displayName?: string; passwordStdin: boolean }): Promise<number> {
  const wanted = roles(options.role);
  // Without --password-stdin a strong password is made and shown once, as the setup token is.
  const password = options.passwordStdin ? await firstLineOfStdin() : randomBytes(18).toString('base64url');
  const archive = await openArchive({ ...config, log: { level: 'warn' } });
  try {
    const user = await new SecurityAdministration(archive).createUser(cliActor(), { username, password, roles: wanted, displayName: options.displayName ?? null });
    console.log(`user ${user.username} (${user.roles.join(', ')}) created${options.passwordStdin ? '' : `; password: ${password}`}`);
    return 0;
  } finally {
    await archive.close();
  }
}

export async function apiKeyAddCommand(config: AtriumConfig, name: string,
  options: { role: string[]; route?: string[]; expiresDays?: number }): Promise<number> {
  const wanted = roles(options.role);
  const archive = await openArchive({ ...config, log: { level: 'warn' } });
  try {
    const expiresAt = options.expiresDays === undefined ? undefined : options.expiresDays === 0 ? null : new Date(Date.now() + options.expiresDays * 86_400_000);
    const { key, apiKey } = await new SecurityAdministration(archive).createApiKey(cliActor(), { name, roles: wanted, routePrefixes: options.route ?? null, expiresAt, createdBy: 'atrium api-key add' });
    console.log(`API key ${apiKey.keyId} "${apiKey.name}" (${apiKey.roles.join(', ')}), expires ${apiKey.expiresAt ?? 'never'}:`);
    console.log(key);
    return 0;
  } finally {
    await archive.close();
  }
}
