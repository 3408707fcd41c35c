/**
 * A self-signed certificate set for testing TLS on every interface (HTTPS, DICOM TLS, syslog over TLS):
 * a CA, a server certificate for the given host names and addresses, and a client certificate for mutual
 * authentication, all signed by the CA. `atrium certs <dir>` writes it.
 *
 * Made with the openssl command rather than a JavaScript X.509 library: Node can create keys but not
 * certificates, the libraries that can (@peculiar/x509, node-forge) bring a DI container and a global
 * reflect polyfill or a slow pure-JS RSA, while openssl is on every machine that runs TLS and is what an
 * administrator would use by hand. RSA 2048 keys: DCMTK's BCP 195 profile negotiates ECDHE-RSA suites.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface CertificateSetOptions {
  /** DNS names and IP addresses the server certificate is valid for. Default: localhost and 127.0.0.1. */
  hosts?: string[];
  /** Common name of the client certificate (a DICOM peer often puts its AE title there). Default ATRIUM-CLIENT. */
  clientName?: string;
  /** Validity in days. Default 365. */
  days?: number;
}

/** Paths of the PEM files written (keys unencrypted, readable by the owner only). */
export interface CertificateSet {
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export async function generateCertificateSet(dir: string, options: CertificateSetOptions = {}): Promise<CertificateSet> {
  const hosts = options.hosts?.length ? options.hosts : ['localhost', '127.0.0.1'];
  const days = String(options.days ?? 365);
  const clientName = options.clientName ?? 'ATRIUM-CLIENT';
  for (const host of hosts) {
    if (!/^[A-Za-z0-9.:*-]+$/.test(host)) throw new Error(`not a host name or IP address: "${host}"`);
  }
  if (!/^[\x20-\x7e]{1,64}$/.test(clientName) || /[/=,+\\]/.test(clientName)) throw new Error(`client name must be 1 to 64 printable characters without / = , + \\: "${clientName}"`);
  await mkdir(dir, { recursive: true });
  const set: CertificateSet = {
    ca: join(dir, 'ca.pem'), caKey: join(dir, 'ca.key'), serverCert: join(dir, 'server.pem'), serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'), clientKey: join(dir, 'client.key'),
  };
  const scratch = join(dir, `.certs-${process.pid}`);
  await mkdir(scratch, { recursive: true });
  try {
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', days, '-subj', '/CN=Atrium Test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout', set.caKey, '-out', set.ca]);
    const altNames = hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    const leaves = [
      { cert: set.serverCert, key: set.serverKey, cn: hosts[0], usage: 'serverAuth', altNames },
      { cert: set.clientCert, key: set.clientKey, cn: clientName, usage: 'clientAuth', altNames: null },
    ];
    for (const [i, leaf] of leaves.entries()) {
      const csr = join(scratch, `${i}.csr`);
      const ext = join(scratch, `${i}.ext`);
      await writeFile(ext, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' +
        `extendedKeyUsage=${leaf.usage}\n${leaf.altNames ? `subjectAltName=${leaf.altNames}\n` : ''}`);
      await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${leaf.cn}`, '-keyout', leaf.key, '-out', csr]);
      await openssl(['x509', '-req', '-sha256', '-in', csr, '-CA', set.ca, '-CAkey', set.caKey, '-set_serial', `0x${randomSerial()}`,
        '-days', days, '-extfile', ext, '-out', leaf.cert]);
    }
    for (const key of [set.caKey, set.serverKey, set.clientKey]) await chmod(key, 0o600);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return set;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await promisify(execFile)('openssl', args, { timeout: 60_000 });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('the openssl command is needed to make certificates (Debian: apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

function randomSerial(): string {
  // A positive 63-bit serial, random so that a fresh set never repeats one a browser or DCMTK has already seen from this CA name.
  const bytes = randomBytes(8);
  bytes[0] = (bytes[0] & 0x7f) | 0x40;
  return bytes.toString('hex');
}
