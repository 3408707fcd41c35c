import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { AuditOutcome, AuditRecord } from '../ports/audit-store.ts';
import { toDicomAuditMessage } from './dicom-audit-message.ts';

export type SyslogProtocol = 'udp' | 'tcp' | 'tls';

/** `audit.syslog` in the configuration. */
export interface SyslogConfig {
  host: string;
  port: number;
  protocol: SyslogProtocol;
  /** RFC 5424 APP-NAME (1 to 48 printable ASCII characters). */
  appName: string;
  /** TLS: PEM paths of the CA to check the server against and of our client certificate (IHE ATNA: mutual TLS). */
  ca?: string | null;
  cert?: string | null;
  key?: string | null;
}

export interface SyslogSenderOptions {
  /** RFC 5424 TIMESTAMP source. */
  clock?: () => Date;
  hostname?: string;
  /** Messages waiting beyond this are dropped, oldest first (and counted). Default 10000. */
  maxQueue?: number;
  /** First retry delay after a failure; doubles up to retryMaxMs. Defaults 500 ms and 30 s. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Extra TLS options (tests: a self-signed CA given as a string). */
  tls?: tls.ConnectionOptions;
  onError?: (error: Error) => void;
}

/** RFC 5424 severities used here. */
export type Severity = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** Facility 10, security/authorization (authpriv), as IHE ATNA audit repositories expect. */
export const AUDIT_FACILITY = 10;
/** IHE ATNA's MSGID for audit messages in the DICOM (ex RFC 3881) schema. */
export const AUDIT_MSGID = 'IHE+RFC-3881';

const SEVERITY_OF: Record<AuditOutcome, Severity> = { success: 5, 'minor-failure': 4, 'serious-failure': 3, 'major-failure': 3 };
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const UDP_MAX = 65_507;

/**
 * One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM MSG`, with no structured
 * data and the message as UTF-8 (hence the BOM, RFC 5424 section 6.4).
 */
export function formatRfc5424(fields: {
  facility?: number; severity: Severity; timestamp: Date; hostname: string; appName: string; procId?: string; msgId?: string; message: string;
}): Buffer {
  const pri = (fields.facility ?? AUDIT_FACILITY) * 8 + fields.severity;
  const header = `<${pri}>1 ${fields.timestamp.toISOString()} ${headerField(fields.hostname, 255)} ${headerField(fields.appName, 48)} `
    + `${headerField(fields.procId ?? String(process.pid), 128)} ${headerField(fields.msgId ?? AUDIT_MSGID, 32)} - `;
  return Buffer.concat([Buffer.from(header, 'ascii'), BOM, Buffer.from(fields.message, 'utf8')]);
}

/** RFC 6587 / RFC 5425 octet counting: `MSG-LEN SP SYSLOG-MSG`. */
export function frameOctetCounting(message: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${message.length} `, 'ascii'), message]);
}

function headerField(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

/**
 * Sends audit messages to a syslog collector (an IHE ATNA audit record repository) without ever
 * blocking the caller: `send` queues and returns; one pump delivers in order and, on failure, reconnects
 * and retries the same message with exponential backoff. The database is the durable trail; syslog is a
 * copy, so a queue overflow drops the oldest messages (counted in `stats.dropped`).
 */
export class SyslogSender {
  readonly #config: SyslogConfig;
  readonly #clock: () => Date;
  readonly #hostname: string;
  readonly #maxQueue: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #tlsOptions: tls.ConnectionOptions;
  readonly #onError: (error: Error) => void;
  readonly #queue: Buffer[] = [];
  #pumping = false;
  #closed = false;
  #socket: net.Socket | null = null;
  #udp: dgram.Socket | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #wakeRetry: (() => void) | null = null;
  #idleWaiters: Array<() => void> = [];
  readonly stats = { sent: 0, dropped: 0, failures: 0 };

  constructor(config: SyslogConfig, options: SyslogSenderOptions = {}) {
    this.#config = config;
    this.#clock = options.clock ?? (() => new Date());
    this.#hostname = options.hostname ?? os.hostname();
    this.#maxQueue = options.maxQueue ?? 10_000;
    this.#retryBaseMs = options.retryBaseMs ?? 500;
    this.#retryMaxMs = options.retryMaxMs ?? 30_000;
    this.#onError = options.onError ?? (() => {});
    this.#tlsOptions = {
      ...(config.ca ? { ca: readFileSync(config.ca) } : {}),
      ...(config.cert ? { cert: readFileSync(config.cert) } : {}),
      ...(config.key ? { key: readFileSync(config.key) } : {}),
      ...options.tls,
    };
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Queues one audit record as a DICOM audit message. */
  sendAudit(record: AuditRecord): void {
    this.send(toDicomAuditMessage(record, { declaration: false }), SEVERITY_OF[record.outcome]);
  }

  /** Queues one message; never throws, never waits. */
  send(message: string, severity: Severity = 5): void {
    if (this.#closed) return;
    const formatted = formatRfc5424({ severity, timestamp: this.#clock(), hostname: this.#hostname, appName: this.#config.appName, message });
    if (this.#config.protocol === 'udp' && formatted.length > UDP_MAX) {
      this.stats.dropped++;
      this.#onError(new Error(`audit message of ${formatted.length} bytes is too large for UDP syslog; dropped`));
      return;
    }
    this.#queue.push(formatted);
    while (this.#queue.length > this.#maxQueue) {
      this.#queue.shift();
      this.stats.dropped++;
    }
    void this.#pump();
  }

  /** Resolves when everything queued so far was handed to the network (or dropped). */
  async flush(): Promise<void> {
    if (this.#queue.length === 0 && !this.#pumping) return;
    await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops sending; what is still queued is dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    this.stats.dropped += this.#queue.length;
    this.#queue.length = 0;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#wakeRetry?.();
    this.#socket?.destroy();
    this.#socket = null;
    if (this.#udp) await new Promise<void>((resolve) => this.#udp!.close(() => resolve()));
    this.#udp = null;
    this.#notifyIdle();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    let attempt = 0;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const message = this.#queue[0];
        try {
          await this.#deliver(message);
          if (this.#queue[0] === message) this.#queue.shift();
          this.stats.sent++;
          attempt = 0;
        } catch (error) {
          this.stats.failures++;
          this.#onError(error as Error);
          this.#socket?.destroy();
          this.#socket = null;
          await this.#sleep(Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** Math.min(attempt++, 20)));
        }
      }
    } finally {
      this.#pumping = false;
      this.#notifyIdle();
    }
  }

  #notifyIdle(): void {
    if (this.#queue.length > 0 && !this.#closed) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  async #sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#wakeRetry = resolve;
      this.#retryTimer = setTimeout(resolve, ms);
      this.#retryTimer.unref();
    });
    this.#retryTimer = null;
    this.#wakeRetry = null;
  }

  async #deliver(message: Buffer): Promise<void> {
    const { host, port, protocol } = this.#config;
    if (protocol === 'udp') {
      if (!this.#udp) {
        this.#udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
        this.#udp.unref();
        this.#udp.on('error', (error) => this.#onError(error));
      }
      await new Promise<void>((resolve, reject) => this.#udp!.send(message, port, host, (error) => (error ? reject(error) : resolve())));
      return;
    }
    const socket = this.#socket ?? await this.#connect();
    await new Promise<void>((resolve, reject) => {
      socket.write(frameOctetCounting(message), (error) => (error ? reject(error) : resolve()));
    });
  }

  async #connect(): Promise<net.Socket> {
    const { host, port, protocol } = this.#config;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = protocol === 'tls'
        ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ...this.#tlsOptions }, () => resolve(s))
        : net.connect({ host, port }, () => resolve(s));
      s.once('error', reject);
    });
    socket.setKeepAlive(true);
    socket.unref();
    // The collector says nothing back; reading keeps a close from going unnoticed.
    socket.on('data', () => {});
    socket.on('error', (error) => this.#onError(error));
    socket.on('close', () => {
      if (this.#socket === socket) this.#socket = null;
    });
    this.#socket = socket;
    return socket;
  }
}
