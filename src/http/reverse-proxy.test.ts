// Atrium behind a real HAProxy on the same host: who the client is, for the audit trail, the per-address
// lock-out and the loopback rule of /metrics, with and without http.trustedProxies.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { startHaproxy, type Haproxy } from '../../test/support/haproxy.ts';
import { createHttpServer } from './server.ts';
import { parseForwarded } from './client-address.ts';
import type { Archive } from '../app.ts';
import { loadConfig } from '../config/config.ts';

interface Answer { status: number; body: string }

/** One request from a chosen local address (127.0.0.2 is another client of this host, for the proxy). */
function call(url: string, options: { localAddress?: string; method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.request(url, {
      method: options.method ?? 'GET', headers: options.headers, localAddress: options.localAddress, rejectUnauthorized: false, agent: false,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const login = (base: string, password: string, localAddress: string) => call(`${base}/api/login`, {
  method: 'POST', localAddress, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'radiologist1', password }),
});

function withTrustedProxies(archive: Archive, trustedProxies: string[]): Archive {
  return { ...archive, config: { ...archive.config, http: { ...archive.config.http, trustedProxies } } };
}

describe('behind HAProxy', { timeout: 120_000 }, () => {
  let t: TestArchive;
  let trusting: FastifyInstance;
  let untrusting: FastifyInstance;
  let proxy: Haproxy;
  let proxyOfUntrusting: Haproxy;
  let direct: string;
  const via = (frontend: string, scheme = 'http') => `${scheme}://127.0.0.1:${proxy.ports[frontend]}`;

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    await t.archive.security.createUser({ username: 'radiologist1', password: 'correct horse battery staple', roles: ['radiologist'] });
    trusting = await createHttpServer(withTrustedProxies(t.archive, ['127.0.0.1']));
    direct = await trusting.listen({ host: '127.0.0.1', port: 0 });
    untrusting = await createHttpServer(t.archive);
    const untrustingUrl = new URL(await untrusting.listen({ host: '127.0.0.1', port: 0 }));
    proxy = await startHaproxy(Number(new URL(direct).port), [
      // What sites configure: the client's address appended, the scheme told.
      { name: 'forwarding', lines: ['option forwardfor'] },
      { name: 'forwardingTls', tls: true, lines: ['option forwardfor', 'http-request set-header X-Forwarded-Proto https'] },
      // A client on the network, as far as Atrium can tell: the proxy names 203.0.113.9 (TEST-NET-3).
      { name: 'network', lines: ['http-request set-header X-Forwarded-For 203.0.113.9'] },
    ]);
    proxyOfUntrusting = await startHaproxy(Number(untrustingUrl.port), [{ name: 'network', lines: ['http-request set-header X-Forwarded-For 203.0.113.9'] }]);
  });
  after(async () => {
    await proxy?.stop();
    await proxyOfUntrusting?.stop();
    await trusting?.close();
    await untrusting?.close();
    await t?.cleanup();
  });

  test('/metrics: public from this host, not to a network client coming through the proxy, trusted or not', async () => {
    assert.equal((await call(`${direct}/metrics`)).status, 200, 'a local scrape needs no key');
    assert.equal((await call(`${via('network')}/metrics`)).status, 401, 'the trusted proxy names a network client');
    assert.equal((await call(`http://127.0.0.1:${proxyOfUntrusting.ports.network}/metrics`)).status, 401,
      'an untrusted proxy on this host does not make its clients local');
  });

  test('the audit trail names the client the proxy forwarded, not the proxy', async () => {
    const failed = await login(via('forwarding'), 'wrong password', '127.0.0.2');
    assert.equal(failed.status, 401);
    const records = await t.archive.audit.search({ action: 'login-failed', user: 'radiologist1' }, { limit: 10, offset: 0 });
    assert.deepEqual(records.items.map((r) => r.origin?.address), ['127.0.0.2']);
  });

  test('lock-out counts the forwarded client address: 20 failures from one client do not lock out another', async () => {
    // Other usernames, so that the per-account lock (5 failures) is not what stops them.
    for (let i = 0; i < 20; i++) {
      const r = await call(`${via('forwarding')}/api/login`, {
        method: 'POST', localAddress: '127.0.0.3', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: `nobody${i}`, password: 'x' }),
      });
      assert.equal(r.status, 401, r.body);
    }
    const locked = await login(via('forwarding'), 'correct horse battery staple', '127.0.0.3');
    assert.equal(locked.status, 429, `the attacking address is locked: ${locked.body}`);
    const other = await login(via('forwarding'), 'correct horse battery staple', '127.0.0.4');
    assert.equal(other.status, 200, `another client still signs in: ${other.body}`);
  });

  test('through the TLS-terminating frontend, DICOMweb URLs say https and the proxy host', async () => {
    const stored = await t.archive.ingest.ingest([await readFile(new URL('../../../shared/testdata/dicom/CT_small.dcm', import.meta.url))], { source: 'test' });
    assert.equal(stored.status, 'stored');
    const key = (await t.archive.security.createApiKey({ name: 'proxy qido', roles: ['administrator'] })).key;
    const r = await call(`${via('forwardingTls', 'https')}/dicom-web/studies`, { headers: { authorization: `Bearer ${key}`, accept: 'application/dicom+json' } });
    assert.equal(r.status, 200, r.body);
    const [study] = JSON.parse(r.body) as { '00081190': { Value: string[] } }[];
    assert.equal(new URL(study['00081190'].Value[0]).origin, via('forwardingTls', 'https'), 'RetrieveURL as the client reaches it');
  });

  test('a client cannot name itself: X-Forwarded-For and Forwarded from an untrusted address are ignored', async () => {
    const spoofed = await call(`${direct}/api/login`, {
      method: 'POST', localAddress: '127.0.0.5',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.7' }, body: JSON.stringify({ username: 'radiologist1', password: 'nope' }),
    });
    assert.equal(spoofed.status, 401);
    const forwarded = await call(`${direct}/api/login`, {
      method: 'POST', headers: { 'content-type': 'application/json', forwarded: 'for="198.51.100.8:4711";proto=https' },
      body: JSON.stringify({ username: 'radiologist1', password: 'nope' }),
    });
    assert.equal(forwarded.status, 401);
    const addresses = (await t.archive.audit.search({ action: 'login-failed', user: 'radiologist1' }, { limit: 10, offset: 0 })).items.map((r) => r.origin?.address);
    assert.ok(addresses.includes('127.0.0.5'), `the spoofing client is named by its socket: ${addresses}`);
    assert.ok(!addresses.includes('198.51.100.7'));
    assert.ok(addresses.includes('198.51.100.8'), `Forwarded from the trusted 127.0.0.1 is believed: ${addresses}`);
  });
});

test('Forwarded (RFC 7239) hops: quoted, with ports, IPv6, several elements', () => {
  assert.deepEqual(parseForwarded('for=192.0.2.60;proto=http;by=203.0.113.43'), [{ for: '192.0.2.60', proto: 'http' }]);
  assert.deepEqual(parseForwarded('For="[2001:db8:cafe::17]:4711", for=198.51.100.17:80;host=pacs.example.org'),
    [{ for: '2001:db8:cafe::17' }, { for: '198.51.100.17', host: 'pacs.example.org' }]);
  assert.deepEqual(parseForwarded('for=unknown, for=_hidden'), [{ for: 'unknown' }, { for: '_hidden' }]);
});

test('http.trustedProxies: addresses, CIDRs and range names; anything else is a configuration error', () => {
  const config = loadConfig({ env: { ATRIUM_DATA: '/tmp/x', ATRIUM_HTTP_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8,::1,fd00::/8,loopback' } });
  assert.deepEqual(config.http.trustedProxies, ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', 'loopback']);
  assert.deepEqual(loadConfig({ env: { ATRIUM_DATA: '/tmp/x' } }).http.trustedProxies, []);
  for (const bad of ['proxy.example.org', '10.0.0.0/33', '300.1.1.1', '10.0.0.1/8/1']) {
    assert.throws(() => loadConfig({ env: { ATRIUM_DATA: '/tmp/x', ATRIUM_HTTP_TRUSTED_PROXIES: bad } }), /http\.trustedProxies/);
  }
});
