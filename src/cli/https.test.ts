/**
 * TLS on every interface, from a shell: `atrium certs` makes a certificate set, `atrium user add` and
 * `atrium api-key add` make credentials, and `atrium serve` then answers HTTPS (TLS 1.2+, HSTS, Secure
 * session cookies) and DICOM TLS (echoscu with a client certificate) with those files. Client
 * certificates over HTTPS are checked in-process with requireClientCert.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import https from 'node:https';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openArchive, MODULES } from '../app.ts';
import { loadConfig } from '../config/config.ts';
import { createHttpServer } from '../http/server.ts';
import { runTool } from '../../test/support/dcmtk.ts';
import { configSectionsOf } from '../modules/module.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

let dir: string;
let certs: string;
let env: NodeJS.ProcessEnv;

/** Runs `atrium <args>` to its end: exit code and output. */
async function atrium(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  child.stdin.end(input ?? '');
  const [code] = await once(child, 'exit');
  return { code: code as number, stdout, stderr };
}

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** An HTTPS request trusting only `ca` (Node's fetch has no per-request CA). */
function request(url: string, options: { ca?: Buffer; cert?: Buffer; key?: Buffer; method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: options.method ?? 'GET', headers: options.headers, ca: options.ca, cert: options.cert, key: options.key }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-https-'));
  certs = path.join(dir, 'certs');
  env = { ...process.env, ATRIUM_DATA: path.join(dir, 'data'), ATRIUM_LOG_LEVEL: 'info' };
});

after(async () => await rm(dir, { recursive: true, force: true }));

test('atrium certs writes a CA, a server and a client certificate; keys are private to the owner', async () => {
  const made = await atrium(['certs', certs, '--host', 'localhost', '--host', '127.0.0.1', '--client-name', 'HTTPSCU', '--days', '2']);
  assert.equal(made.code, 0, made.stderr);
  for (const file of ['ca.pem', 'server.pem', 'server.key', 'client.pem', 'client.key']) assert.ok(existsSync(path.join(certs, file)), file);
  assert.equal((await stat(path.join(certs, 'server.key'))).mode & 0o077, 0, 'the server key is readable by its owner only');
  assert.match(made.stdout, /ATRIUM_HTTP_TLS_CERT=/);
  const server = new X509Certificate(await readFile(path.join(certs, 'server.pem')));
  assert.match(server.subjectAltName ?? '', /DNS:localhost.*IP Address:127\.0\.0\.1/);
  assert.ok(server.verify(new X509Certificate(await readFile(path.join(certs, 'ca.pem'))).publicKey));

  const refused = await atrium(['certs', path.join(dir, 'bad'), '--host', 'bad host/name']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /not a host name or IP address/);
});

test('atrium serve over HTTPS and DICOM TLS with the generated set; users and keys from the CLI', { timeout: 120_000 }, async () => {
  const user = await atrium(['user', 'add', 'rita', '--role', 'radiologist', '--password-stdin'], 'a long enough password\n');
  assert.equal(user.code, 0, user.stderr);
  assert.match(user.stdout, /user rita \(radiologist\) created/);
  assert.doesNotMatch(user.stdout, /a long enough password/, 'a password given on stdin is not echoed');
  const badRole = await atrium(['user', 'add', 'x', '--role', 'wizard']);
  assert.notEqual(badRole.code, 0);
  assert.match(badRole.stderr, /--role must be one or more of administrator/);
  const keyed = await atrium(['api-key', 'add', 'integration test', '--role', 'administrator', '--expires-days', '1']);
  assert.equal(keyed.code, 0, keyed.stderr);
  const apiKey = keyed.stdout.trim().split('\n').at(-1)!;
  assert.match(apiKey, /^atr_/);

  const [ca, clientCert, clientKey] = await Promise.all(['ca.pem', 'client.pem', 'client.key'].map((f) => readFile(path.join(certs, f))));
  const server = spawn(process.execPath, [MAIN, 'serve'], {
    env: {
      ...env, ATRIUM_HTTP_PORT: '0', ATRIUM_DICOM_PORT: '0', ATRIUM_DICOM_TLS_PORT: '0',
      ATRIUM_HTTP_TLS_CERT: path.join(certs, 'server.pem'), ATRIUM_HTTP_TLS_KEY: path.join(certs, 'server.key'),
      ATRIUM_DICOM_TLS_CERT: path.join(certs, 'server.pem'), ATRIUM_DICOM_TLS_KEY: path.join(certs, 'server.key'), ATRIUM_DICOM_TLS_CA: path.join(certs, 'ca.pem'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess;
  // Everything the server logs, to check that no secret is in it.
  let logged = '';
  server.stderr!.on('data', (c) => (logged += c));
  server.stdout!.on('data', (c) => (logged += c));
  try {
    let ready: { address: string; dicomTlsPort: number } | null = null;
    for await (const line of createInterface({ input: server.stdout! })) {
      if (line.includes('Atrium is ready')) { ready = JSON.parse(line); break; }
    }
    assert.ok(ready, 'the server did not start');
    server.stdout!.resume(); // leaving the loop closed readline, which pauses the stream; the log keeps flowing
    assert.match(ready.address, /^https:\/\/127\.0\.0\.1:\d+$/);
    const base = ready.address.replace('127.0.0.1', 'localhost');

    const health = await request(`${base}/api/health`, { ca });
    assert.equal(health.status, 200);
    assert.equal(health.headers['strict-transport-security'], 'max-age=31536000');
    assert.equal(health.headers['x-content-type-options'], 'nosniff');
    assert.match(String(health.headers['content-security-policy']), /default-src 'none'/);
    const page = await request(`${base}/login`, { ca });
    assert.match(String(page.headers['content-security-policy']), /script-src 'self'(;|$)/, 'Atrium\'s pages allow no inline script');

    // Not trusted without the CA; no plain HTTP on the HTTPS port; nothing older than TLS 1.2.
    await assert.rejects(request(`${base}/api/health`), /self[- ]signed|unable to (get|verify)/i);
    await assert.rejects(fetch(base.replace('https:', 'http:') + '/api/health', { headers: { 'x-atrium-test-anonymous': '1' } }));
    await assert.rejects(new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: Number(new URL(base).port), ca, servername: 'localhost', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => resolve(socket));
      socket.on('error', reject);
    }));

    // The CLI's credentials: the key reaches the admin REST, the user signs in and gets a Secure cookie.
    const studies = await request(`${base}/api/studies`, { ca, headers: { authorization: `Bearer ${apiKey}` } });
    assert.equal(studies.status, 200, studies.body);
    const login = await request(`${base}/api/login`, {
      ca, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'rita', password: 'a long enough password' }),
    });
    assert.equal(login.status, 200, login.body);
    const cookie = String(login.headers['set-cookie']);
    assert.match(cookie, /; Secure/);
    assert.match(cookie, /; HttpOnly/);

    // DICOM TLS on the same certificate set: DCMTK with the client certificate.
    const echo = await runTool('echoscu', ['+tls', path.join(certs, 'client.key'), path.join(certs, 'client.pem'), '+cf', path.join(certs, 'ca.pem'),
      '-aet', 'HTTPSCU', '-aec', 'ATRIUM', 'localhost', String(ready.dicomTlsPort)], { timeoutMs: 60_000 });
    assert.equal(echo.code, 0, echo.output);

    // requireClientCert: an in-process server on the same data asks every client for a certificate from the CA.
    const config = loadConfig({ sections: configSectionsOf(MODULES),  env: {
      ATRIUM_DATA: path.join(dir, 'data'), ATRIUM_LOG_LEVEL: 'silent', ATRIUM_HTTP_TLS_CERT: path.join(certs, 'server.pem'),
      ATRIUM_HTTP_TLS_KEY: path.join(certs, 'server.key'), ATRIUM_HTTP_TLS_CA: path.join(certs, 'ca.pem'),
    } });
    config.http.tls!.requireClientCert = true;
    const archive = await openArchive(config);
    const mtls = await createHttpServer(archive);
    try {
      const address = (await mtls.listen({ host: '127.0.0.1', port: 0 })).replace('127.0.0.1', 'localhost');
      assert.equal((await request(`${address}/api/health`, { ca, cert: clientCert, key: clientKey })).status, 200);
      await assert.rejects(request(`${address}/api/health`, { ca }), /certificate|socket hang up|ECONNRESET/i);
    } finally {
      await mtls.close();
      await archive.close();
    }
    for (const secret of [apiKey, apiKey.slice(17), 'a long enough password', cookie.split(';', 1)[0].split('=')[1]]) {
      assert.ok(!logged.includes(secret), `a secret was logged: ${secret.slice(0, 8)}...`);
    }
    assert.match(logged, /"url":"\/api\/login"/, 'the requests themselves are logged');
  } finally {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }
});
