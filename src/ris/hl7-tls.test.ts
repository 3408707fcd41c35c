// MLLP over TLS, configured as `atrium serve` reads it (ris.hl7.tls in atrium.json, loaded by loadConfig,
// listeners started by the module's `listeners` hook) with a CA, server and client certificates made by
// openssl in the test. `openssl s_client` (an independent TLS peer, not Node) with the client certificate
// sends an ADT A04 and gets AA; a Node TLS client sends two messages on one persistent connection; with
// requireClientCert a client without a certificate, and one whose certificate another CA signed, are refused
// at the handshake and nothing they sent is applied or logged; a plain-TCP client on the TLS port gets no
// ACK and applies nothing; the plain port works beside it; without requireClientCert a client without a
// certificate is served.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive } from '../../test/support/archive.ts';
import { hl7 } from '../../test/support/hl7.ts';
import { ConfigError, loadConfig, sectionOf } from '../config/config.ts';
import { generateCertificateSet, type CertificateSet } from '../security/certificates.ts';
import { MllpFramer, mllpFrame } from '../hl7/mllp.ts';
import { risConfig } from './config.ts';
import { risModule, risOf, startHl7Listeners } from './module.ts';
import type { Archive } from '../app.ts';

const pid = (id: string) => `PID|1||${id}^^^HOSP^MR||TLS^TESSA||19900101|F`;

/** MSA-1 and MSA-2 of each ACK frame in `bytes`. */
function acksIn(bytes: Buffer): string[][] {
  const framer = new MllpFramer(1 << 20);
  return framer.push(bytes).map((f) => f.toString('utf8').split('\r').find((s) => s.startsWith('MSA|'))!.split('|').slice(1, 3));
}

/**
 * `openssl s_client` as the HL7 sender: the MLLP frame on its stdin (kept open: s_client would otherwise
 * close before the answer), its stdout read until an ACK frame ends or the connection is closed.
 */
async function sClient(port: number, frame: Buffer, args: string[], cwd: string): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-quiet', '-verify_return_error', '-CAfile', 'ca.pem', ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  const timer = setTimeout(() => child.kill('SIGTERM'), 15_000);
  child.stdout.on('data', (chunk: Buffer) => {
    out.push(chunk);
    if (Buffer.concat(out).includes(0x1c)) child.kill('SIGTERM');
  });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  child.stdin.on('error', () => {});
  child.stdin.write(frame);
  const [code] = await once(child, 'exit') as [number | null];
  clearTimeout(timer);
  return { code, stdout: Buffer.concat(out), stderr };
}

/** A raw client (TLS or plain TCP): writes the frames, collects every byte until the server closes or `ms` pass. */
async function exchange(socket: net.Socket, frames: Buffer[], readyEvent: 'connect' | 'secureConnect', ms = 5000): Promise<{ bytes: Buffer; error: string | null; closedByServer: boolean }> {
  const chunks: Buffer[] = [];
  let error: string | null = null;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (e) => { error = (e as NodeJS.ErrnoException).code ?? e.message; });
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  await Promise.race([new Promise((resolve) => socket.once(readyEvent, resolve)), closed]);
  if (!socket.destroyed) for (const f of frames) socket.write(f);
  const closedByServer = await Promise.race([closed, new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  socket.destroy();
  return { bytes: Buffer.concat(chunks), error, closedByServer };
}

test('HL7 over MLLP with TLS', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-hl7-tls-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const certs: CertificateSet = await generateCertificateSet(dir, { clientName: 'RIS-CLIENT', days: 2 });
  // A second CA and its client certificate: a certificate the listener must not accept.
  const strangers = await generateCertificateSet(path.join(dir, 'other'), { clientName: 'STRANGER', days: 2 });

  // ris.hl7 as an administrator writes it in atrium.json, read by the same loader `atrium serve` uses.
  const file = path.join(dir, 'atrium.json');
  const hl7Config = (tlsSettings: Record<string, unknown>) => ({ ris: { hl7: { enabled: true, host: '127.0.0.1', port: 0, idleTimeoutSeconds: 5, tls: { port: 0, ...tlsSettings } } } });
  await writeFile(file, JSON.stringify(hl7Config({ cert: certs.serverCert, key: certs.serverKey, requireClientCert: true })));
  assert.throws(() => loadConfig({ file, env: {}, sections: [risConfig] }), (e: unknown) => e instanceof ConfigError && /ris\.hl7\.tls\.ca is required/.test(e.message),
    'requireClientCert without a CA to check client certificates against is a configuration error');
  await writeFile(file, JSON.stringify(hl7Config({ cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requireClientCert: true })));
  const settings = sectionOf(loadConfig({ file, env: {}, sections: [risConfig] }), risConfig);
  assert.deepEqual(settings.hl7.tls, { port: 0, cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requireClientCert: true });

  const ta = await createTestArchive('sqlite+fs');
  after(() => ta.cleanup());
  const archive: Archive = ta.archive;
  (archive.config.sections as Record<string, unknown>).ris = settings;
  const listeners = await risModule.listeners!(archive);
  after(async () => { for (const l of listeners) await l.close(); });
  assert.deepEqual(listeners.map((l) => l.name), ['hl7', 'hl7-tls']);
  const plainPort = listeners[0]!.port;
  const tlsPort = listeners[1]!.port;
  const ris = risOf(archive);
  const logged = async (controlId: string) => await ris.core.store.findMessage('RIS^HOSP', controlId);
  const patient = async (id: string) => await ris.patients.get({ patientId: id, issuerOfPatientId: 'HOSP' });

  await t.test('openssl s_client with the client certificate: ADT A04 over TLS, AA, applied', async () => {
    const result = await sClient(tlsPort, mllpFrame(hl7([pid('TLS1')], { controlId: 'TLS-1' })), ['-cert', 'client.pem', '-key', 'client.key'], dir);
    assert.deepEqual(acksIn(result.stdout), [['AA', 'TLS-1']], result.stderr);
    assert.equal((await patient('TLS1'))?.patientName, 'TLS^TESSA');
    assert.equal((await logged('TLS-1'))?.ackCode, 'AA');
  });

  await t.test('a Node TLS client with the client certificate: two messages on one connection, ACKs in order', async () => {
    const [ca, cert, key] = await Promise.all([readFile(certs.ca), readFile(certs.clientCert), readFile(certs.clientKey)]);
    const socket = tls.connect({ host: '127.0.0.1', port: tlsPort, ca, cert, key, servername: 'localhost', minVersion: 'TLSv1.2' });
    const framer = new MllpFramer(1 << 20);
    const acks: string[][] = [];
    socket.on('data', (c: Buffer) => { for (const f of framer.push(c)) acks.push(f.toString('utf8').split('\r').find((s) => s.startsWith('MSA|'))!.split('|').slice(1, 3)); });
    await once(socket, 'secureConnect');
    assert.equal(socket.authorized, true, 'the server certificate verifies against the test CA');
    socket.write(Buffer.concat([mllpFrame(hl7([pid('TLS2')], { controlId: 'TLS-2' })), mllpFrame(hl7([pid('TLS3')], { controlId: 'TLS-3' }))]));
    for (let i = 0; i < 100 && acks.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    socket.destroy();
    assert.deepEqual(acks, [['AA', 'TLS-2'], ['AA', 'TLS-3']]);
    assert.ok(await patient('TLS3'));
  });

  await t.test('requireClientCert: no client certificate is refused at the handshake, nothing applied or logged', async () => {
    const viaOpenssl = await sClient(tlsPort, mllpFrame(hl7([pid('NOCERT1')], { controlId: 'NOCERT-1' })), [], dir);
    assert.deepEqual(acksIn(viaOpenssl.stdout), []);
    assert.match(viaOpenssl.stderr, /alert|certificate required|handshake failure|errno=104|unexpected eof/i);
    const socket = tls.connect({ host: '127.0.0.1', port: tlsPort, ca: await readFile(certs.ca), servername: 'localhost', minVersion: 'TLSv1.2' });
    const viaNode = await exchange(socket, [mllpFrame(hl7([pid('NOCERT2')], { controlId: 'NOCERT-2' }))], 'secureConnect');
    assert.equal(viaNode.bytes.length, 0);
    assert.ok(viaNode.closedByServer, 'the server closes the connection');
    assert.match(viaNode.error ?? '', /CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|ECONNRESET/);
    for (const id of ['NOCERT1', 'NOCERT2']) assert.equal(await patient(id), null);
    for (const id of ['NOCERT-1', 'NOCERT-2']) assert.equal(await logged(id), null);
  });

  await t.test('requireClientCert: a client certificate another CA signed is refused too', async () => {
    const result = await sClient(tlsPort, mllpFrame(hl7([pid('STRANGER1')], { controlId: 'STRANGER-1' })), ['-cert', strangers.clientCert, '-key', strangers.clientKey], dir);
    assert.deepEqual(acksIn(result.stdout), []);
    // The server ends the handshake (TLS 1.3: after the client's Finished) with an alert, a reset or a
    // plain close, depending on timing; never with data.
    assert.match(result.stderr, /alert|errno=104|unexpected eof|certificate/i);
    assert.equal(await patient('STRANGER1'), null);
    assert.equal(await logged('STRANGER-1'), null);
  });

  await t.test('plain TCP on the TLS port: no ACK, the connection closed, nothing applied; the plain port answers', async () => {
    const onTls = await exchange(net.connect(tlsPort, '127.0.0.1'), [mllpFrame(hl7([pid('PLAIN1')], { controlId: 'PLAIN-1' }))], 'connect');
    assert.ok(onTls.closedByServer, 'the TLS listener closes a connection that does not speak TLS');
    assert.equal(onTls.bytes.includes(0x0b), false, 'no MLLP frame came back');
    assert.equal(onTls.bytes.toString('latin1').includes('MSA|'), false);
    assert.equal(await patient('PLAIN1'), null);
    assert.equal(await logged('PLAIN-1'), null);
    const onPlain = await exchange(net.connect(plainPort, '127.0.0.1'), [mllpFrame(hl7([pid('PLAIN2')], { controlId: 'PLAIN-2' }))], 'connect', 1000);
    assert.deepEqual(acksIn(onPlain.bytes), [['AA', 'PLAIN-2']]);
  });

  await t.test('without requireClientCert: a client without a certificate is served (server authentication only)', async () => {
    const started = await startHl7Listeners(archive, { port: 0, host: '127.0.0.1', tls: { ...settings.hl7.tls!, port: 0, requireClientCert: false } });
    try {
      const result = await sClient(started[1]!.port, mllpFrame(hl7([pid('ANON1')], { controlId: 'ANON-1' })), [], dir);
      assert.deepEqual(acksIn(result.stdout), [['AA', 'ANON-1']], result.stderr);
    } finally {
      for (const l of started) await l.close();
    }
  });
});
