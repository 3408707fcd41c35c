/**
 * The syslog sender against local collectors: UDP datagrams and TCP / TLS streams with octet-counting
 * framing; each frame parses as RFC 5424 and carries the DICOM audit message. A collector that is down
 * does not block the caller, and receives the messages once it is up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AuditRecord } from '../ports/audit-store.ts';
import { SyslogSender, formatRfc5424, frameOctetCounting, type SyslogProtocol } from './syslog.ts';
import { child, parseXml } from '../../test/support/xml.ts';
import { generateCertificateSet } from '../security/certificates.ts';

const clock = () => new Date('2031-03-01T08:00:00.000Z');

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    seq: 1, id: '6f1c3d2e-0000-4000-8000-000000000001', time: '2031-03-01T07:59:59.250Z',
    principal: { kind: 'user', id: 'alice', displayName: 'Alice <admin> & co', roles: [] },
    action: 'read', interface: 'dicomweb', origin: { address: '10.0.0.7' }, destination: null,
    patientIds: ['P1'], studies: [{ studyInstanceUid: '1.2.3.4' }], objects: [], query: null, outcome: 'success', outcomeReason: null, detail: null,
    sourceId: 'ATRIUM', ...overrides,
  };
}

interface Parsed { pri: number; version: string; timestamp: string; hostname: string; appName: string; procId: string; msgId: string; sd: string; msg: Buffer }

/** RFC 5424 section 6: HEADER SP STRUCTURED-DATA [SP MSG]. */
function parseRfc5424(frame: Buffer): Parsed {
  const text = frame.toString('latin1');
  const m = /^<(\d{1,3})>(1) (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[[^\]]*\]) /.exec(text);
  assert.ok(m, `not RFC 5424: ${text.slice(0, 80)}`);
  return {
    pri: Number(m[1]), version: m[2], timestamp: m[3], hostname: m[4], appName: m[5], procId: m[6], msgId: m[7], sd: m[8],
    msg: frame.subarray(Buffer.byteLength(m[0], 'latin1')),
  };
}

/** RFC 6587 section 3.4.1 octet counting: MSG-LEN SP SYSLOG-MSG, back to back. */
function deframe(stream: Buffer): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = [];
  let at = 0;
  for (;;) {
    const space = stream.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number(stream.subarray(at, space).toString('ascii'));
    assert.ok(Number.isInteger(length) && length > 0, 'MSG-LEN must be a positive integer');
    if (stream.length < space + 1 + length) break;
    frames.push(stream.subarray(space + 1, space + 1 + length));
    at = space + 1 + length;
  }
  return { frames, rest: stream.subarray(at) };
}

function checkAuditFrame(frame: Buffer, expected: { pri: number; appName: string; eventId: string }): void {
  const parsed = parseRfc5424(frame);
  assert.equal(parsed.pri, expected.pri);
  assert.equal(parsed.version, '1');
  assert.equal(parsed.timestamp, '2031-03-01T08:00:00.000Z');
  assert.equal(parsed.hostname, 'pacs-1.example');
  assert.equal(parsed.appName, expected.appName);
  assert.match(parsed.procId, /^\d+$/);
  assert.equal(parsed.msgId, 'IHE+RFC-3881');
  assert.equal(parsed.sd, '-');
  assert.deepEqual([...parsed.msg.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'UTF-8 MSG starts with a BOM');
  const xml = parseXml(parsed.msg.subarray(3).toString('utf8'));
  assert.equal(xml.name, 'AuditMessage');
  assert.equal(child(child(xml, 'EventIdentification'), 'EventID').attributes['csd-code'], expected.eventId);
}

/** A TCP or TLS collector that hands over each frame. */
async function streamCollector(protocol: 'tcp' | 'tls', port = 0, options: tls.TlsOptions = {}): Promise<{ port: number; frames: Buffer[]; next(n: number): Promise<Buffer[]>; close(): Promise<void> }> {
  const frames: Buffer[] = [];
  const waiters: Array<() => void> = [];
  const sockets = new Set<net.Socket>();
  const onSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      const { frames: got, rest } = deframe(Buffer.concat([buffer, chunk]));
      buffer = Buffer.from(rest);
      frames.push(...got.map((f) => Buffer.from(f)));
      for (const w of waiters.splice(0)) w();
    });
  };
  const server = protocol === 'tls' ? tls.createServer(options, onSocket) : net.createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    frames,
    async next(n) {
      while (frames.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
      return frames.slice(0, n);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('RFC 5424 formatting and octet-counting framing', () => {
  const message = formatRfc5424({ severity: 4, timestamp: clock(), hostname: 'host with space', appName: 'atrium', procId: '42', message: 'é' });
  assert.equal(message.subarray(0, message.length - 5).toString('latin1'), '<84>1 2031-03-01T08:00:00.000Z hostwithspace atrium 42 IHE+RFC-3881 - ');
  assert.deepEqual([...message.subarray(-5)], [0xef, 0xbb, 0xbf, 0xc3, 0xa9]);
  const framed = frameOctetCounting(message);
  assert.equal(framed.toString('latin1').split(' ')[0], String(message.length));
  assert.deepEqual(deframe(Buffer.concat([framed, framed])).frames, [message, message]);
});

test('UDP: one datagram per audit message', async () => {
  const server = dgram.createSocket('udp4');
  const received: Buffer[] = [];
  const arrived = new Promise<void>((resolve) => server.on('message', (msg) => { received.push(msg); if (received.length === 2) resolve(); }));
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  const sender = new SyslogSender({ host: '127.0.0.1', port: server.address().port, protocol: 'udp', appName: 'atrium-udp' }, { clock, hostname: 'pacs-1.example' });
  try {
    sender.sendAudit(record());
    sender.sendAudit(record({ action: 'delete', outcome: 'serious-failure', outcomeReason: 'refused' }));
    await sender.flush();
    await arrived;
    checkAuditFrame(received[0], { pri: 85, appName: 'atrium-udp', eventId: '110103' });
    checkAuditFrame(received[1], { pri: 83, appName: 'atrium-udp', eventId: '110105' });
    assert.equal(sender.stats.sent, 2);
  } finally {
    await sender.close();
    server.close();
  }
});

test('TCP: octet-counted frames in order; a collector that is down is retried without blocking the caller', async () => {
  // A port with nobody listening yet.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  const errors: Error[] = [];
  const sender = new SyslogSender({ host: '127.0.0.1', port, protocol: 'tcp', appName: 'atrium' },
    { clock, hostname: 'pacs-1.example', retryBaseMs: 10, retryMaxMs: 50, onError: (e) => errors.push(e) });
  let collector: Awaited<ReturnType<typeof streamCollector>> | undefined;
  try {
    for (let i = 0; i < 5; i++) sender.sendAudit(record({ action: i % 2 ? 'query' : 'store', query: i % 2 ? `PatientID=${i}` : null }));
    // send() returned at once; the pump is failing to connect meanwhile.
    assert.ok(sender.queued > 0);
    while (errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.match(String((errors[0] as NodeJS.ErrnoException).code), /ECONNREFUSED/);

    collector = await streamCollector('tcp', port);
    const frames = await collector.next(5);
    frames.forEach((frame, i) => checkAuditFrame(frame, { pri: 85, appName: 'atrium', eventId: i % 2 ? '110112' : '110104' }));
    await sender.flush();
    assert.equal(sender.stats.sent, 5);
    assert.ok(sender.stats.failures >= 1);

    // The connection is reused for what follows.
    sender.sendAudit(record({ action: 'logout' }));
    checkAuditFrame((await collector.next(6))[5], { pri: 85, appName: 'atrium', eventId: '110114' });
  } finally {
    await sender.close();
    await collector?.close();
  }
});

test('TLS (RFC 5425): the same frames over a verified TLS connection', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-syslog-tls-'));
  try {
    const certs = await generateCertificateSet(dir, { hosts: ['127.0.0.1'], days: 2 });
    const [key, cert] = await Promise.all([readFile(certs.serverKey), readFile(certs.serverCert)]);
    const collector = await streamCollector('tls', 0, { key, cert });
    const sender = new SyslogSender({ host: '127.0.0.1', port: collector.port, protocol: 'tls' as SyslogProtocol, appName: 'atrium', ca: certs.ca },
      { clock, hostname: 'pacs-1.example' });
    try {
      sender.sendAudit(record({ action: 'login' }));
      checkAuditFrame((await collector.next(1))[0], { pri: 85, appName: 'atrium', eventId: '110114' });
    } finally {
      await sender.close();
      await collector.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a full queue drops the oldest messages and counts them; close drops the rest', async () => {
  const sender = new SyslogSender({ host: '127.0.0.1', port: 9, protocol: 'tcp', appName: 'atrium' },
    { clock, hostname: 'h', maxQueue: 3, retryBaseMs: 60_000 });
  for (let i = 0; i < 5; i++) sender.send(`m${i}`);
  assert.ok(sender.queued <= 3);
  assert.ok(sender.stats.dropped >= 2);
  await sender.close();
  assert.equal(sender.queued, 0);
  assert.equal(sender.stats.sent, 0);
});
