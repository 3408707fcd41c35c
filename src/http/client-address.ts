import type { FastifyInstance, FastifyRequest } from 'fastify';

/**
 * Who the client is when Atrium runs behind a reverse proxy (nginx, HAProxy: the usual deployment). Fastify's
 * `trustProxy` (proxy-addr) resolves `request.ip`, `request.protocol` and `request.host` from X-Forwarded-For,
 * -Proto and -Host, believing only the proxies configured in `http.trustedProxies`; everything that names the
 * client (the audit trail, the per-address lock-out, the loopback rule of /metrics) reads `request.ip`.
 */
export function trustProxyOption(trustedProxies: readonly string[]): false | string[] {
  return trustedProxies.length > 0 ? [...trustedProxies] : false;
}

/**
 * RFC 7239 `Forwarded` restated as X-Forwarded-For/-Proto/-Host for a request that carries only it, so that
 * Fastify's one trust rule applies to both spellings (it reads the X- headers only). Restating believes
 * nothing: proxy-addr still takes only what the trusted hops say. The first forwarded request while no proxy
 * is trusted is logged: the administrator most likely forgot `http.trustedProxies`.
 */
export function registerForwardedHeader(app: FastifyInstance, trustedProxies: readonly string[]): void {
  let warned = trustedProxies.length > 0;
  app.addHook('onRequest', async (request) => {
    const headers = request.raw.headers;
    const forwarded = headers.forwarded;
    if (!warned && (forwarded !== undefined || headers['x-forwarded-for'] !== undefined)) {
      warned = true;
      request.log.warn({ from: request.socket.remoteAddress }, 'a request names a forwarding proxy (X-Forwarded-For or Forwarded) but http.trustedProxies is empty: '
        + 'clients are seen as the proxy\'s address (audit, lock-out) and forwarded requests are never local; list the proxy in http.trustedProxies');
    }
    if (typeof forwarded !== 'string' || headers['x-forwarded-for'] !== undefined) return;
    const hops = parseForwarded(forwarded);
    const fors = hops.map((h) => h.for).filter((v): v is string => v !== undefined);
    if (fors.length > 0) headers['x-forwarded-for'] = fors.join(', ');
    const last = hops.at(-1);
    if (last?.proto && headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = last.proto;
    if (last?.host && headers['x-forwarded-host'] === undefined) headers['x-forwarded-host'] = last.host;
  });
}

/** The hops of a Forwarded header (RFC 7239 section 4), first (the client's) first; node names unquoted, ports dropped. */
export function parseForwarded(value: string): { for?: string; proto?: string; host?: string }[] {
  return value.split(',').map((element) => {
    const hop: { for?: string; proto?: string; host?: string } = {};
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0) continue;
      const name = pair.slice(0, eq).trim().toLowerCase();
      const raw = pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
      if (name === 'for') hop.for = nodeAddress(raw);
      else if (name === 'proto') hop.proto = raw.toLowerCase();
      else if (name === 'host') hop.host = raw;
    }
    return hop;
  });
}

/** `192.0.2.1:4711` -> `192.0.2.1`, `[2001:db8::1]:80` -> `2001:db8::1`; obfuscated and "unknown" nodes as they are. */
function nodeAddress(node: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(node);
  if (v6) return v6[1];
  return /^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(node) ? node.slice(0, node.lastIndexOf(':')) : node;
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/**
 * Whether a request comes from this host itself. A request that names a forwarding chain Atrium did not
 * resolve (a proxy on this host that is not in `http.trustedProxies`) came through that proxy from anywhere:
 * it is not local, whatever address the socket shows.
 */
export function isLocalRequest(request: FastifyRequest): boolean {
  if (!LOOPBACK.test(request.ip)) return false;
  const forwarded = request.headers['x-forwarded-for'] !== undefined || request.headers.forwarded !== undefined;
  return !(forwarded && request.ip === request.socket.remoteAddress);
}
