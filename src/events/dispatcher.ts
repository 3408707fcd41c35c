import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventDelivery, EventOutbox } from '../ports/event-outbox.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { DeliveredEvent, EventHandler } from './event-map.ts';

export interface EventDispatcherOptions {
  outbox: EventOutbox;
  handlers: readonly EventHandler[];
  log: Logger;
  metrics?: Metrics;
  /** Unique per node: host, pid and a random suffix by default. */
  owner?: string;
  /** Polling interval while idle. Default 500 ms. */
  pollIntervalMs?: number;
  /** Lease of a claimed delivery, renewed every third of it while its handler runs. Default 60 s. */
  leaseMs?: number;
  /** Deliveries claimed and run at once. Default 8. */
  batchSize?: number;
  /** Retry after a failure: base * 2^(attempt-1), capped, with jitter. Default 1 s and 15 min. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Delivered history kept before pruning. Default 7 days. */
  keepDeliveredMs?: number;
  clock?: () => Date;
  random?: () => number;
}

/**
 * Delivers outbox events to the handlers subscribed to them: routes each new event into one delivery per
 * handler, claims due deliveries under a lease, runs them, and records success or a retry with backoff.
 * At least once: a node killed mid-delivery leaves a lease that runs out, and another node (or this one
 * restarted) delivers again, so handlers are idempotent (they key on the event id). Never the same
 * handler twice at once for one study: the outbox only hands out the oldest pending event of a study per
 * handler. A handler that keeps failing is retried forever, visibly (GET /api/events/stuck, metrics),
 * rather than dropped: the later events of its study wait behind it.
 */
export class EventDispatcher {
  readonly owner: string;
  readonly #outbox: EventOutbox;
  readonly #handlers = new Map<string, EventHandler>();
  readonly #subscribers = new Map<string, string[]>();
  readonly #log: Logger;
  readonly #metrics: Metrics | undefined;
  readonly #pollIntervalMs: number;
  readonly #leaseMs: number;
  readonly #batchSize: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #keepDeliveredMs: number;
  readonly #clock: () => Date;
  readonly #random: () => number;
  #timer: NodeJS.Timeout | null = null;
  #cycle: Promise<unknown> | null = null;
  #stopping = false;
  #lastPrune = 0;

  constructor(options: EventDispatcherOptions) {
    this.#outbox = options.outbox;
    this.#log = options.log.child({ component: 'events' });
    this.#metrics = options.metrics;
    this.owner = options.owner ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.#pollIntervalMs = options.pollIntervalMs ?? 500;
    this.#leaseMs = options.leaseMs ?? 60_000;
    this.#batchSize = options.batchSize ?? 8;
    this.#retryBaseMs = options.retryBaseMs ?? 1_000;
    this.#retryMaxMs = options.retryMaxMs ?? 15 * 60_000;
    this.#keepDeliveredMs = options.keepDeliveredMs ?? 7 * 24 * 60 * 60_000;
    this.#clock = options.clock ?? (() => new Date());
    this.#random = options.random ?? Math.random;
    for (const handler of options.handlers) {
      if (this.#handlers.has(handler.name)) throw new Error(`two event handlers are named "${handler.name}"`);
      this.#handlers.set(handler.name, handler);
      const names = this.#subscribers.get(handler.event) ?? [];
      names.push(handler.name);
      this.#subscribers.set(handler.event, names);
    }
  }

  start(): void {
    this.#stopping = false;
    this.#schedule(0);
  }

  /** Waits for the deliveries under way; what is not delivered stays pending for the next start. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#cycle?.catch(() => {});
  }

  /** Polls at once (after a write this node knows of) instead of waiting for the next interval. */
  wake(): void {
    if (!this.#stopping && this.#timer && !this.#cycle) this.#schedule(0);
  }

  /**
   * One pass: route new events, then claim and run one batch. Returns what it did; `start()` repeats it
   * while there is work, and tests call it directly.
   */
  async runOnce(): Promise<{ routed: number; delivered: number; failed: number }> {
    const now = this.#clock();
    const routed = await this.#outbox.fanOut(this.#subscribers, 500, now);
    const claimed = await this.#outbox.claim(this.owner, [...this.#handlers.keys()], this.#batchSize, now, new Date(now.getTime() + this.#leaseMs));
    // The batch's leases are renewed together while any of its deliveries is not recorded yet (a slow
    // handler keeps its lease, and so do the fast ones waiting for the batch's completion below).
    const held = new Set(claimed.map((d) => d.id));
    const renewal = claimed.length === 0 ? null : setInterval(() => {
      void this.#outbox.renew([...held], this.owner, new Date(this.#clock().getTime() + this.#leaseMs))
        .then((lost) => { for (const id of lost) this.#log.warn({ delivery: id }, 'event delivery lease lost while its handler ran'); })
        .catch((error) => this.#log.warn({ err: error }, 'event delivery lease renewal failed'));
    }, Math.max(10, Math.floor(this.#leaseMs / 3)));
    let outcomes: boolean[];
    try {
      outcomes = await Promise.all(claimed.map(async (delivery) => {
        const ok = await this.#deliver(delivery);
        if (!ok) held.delete(delivery.id);
        return ok;
      }));
      // The successes of the batch recorded in one statement: one commit (one WAL flush on SQLite) per
      // batch instead of one per delivery, which was a third of the commits under an HL7 load (bench:ris).
      const succeeded = claimed.filter((_, i) => outcomes[i]);
      if (succeeded.length > 0) {
        const lost = new Set(await this.#outbox.complete(succeeded.map((d) => d.id), this.owner, this.#clock()));
        for (const d of succeeded) {
          if (lost.has(d.id)) this.#log.warn({ handler: d.handler, eventId: d.eventId }, 'event delivered after its lease was lost: it may be delivered again');
          else this.#metrics?.eventDeliveries.inc({ handler: d.handler, outcome: 'delivered' });
        }
      }
    } finally {
      if (renewal) clearInterval(renewal);
    }
    if (now.getTime() - this.#lastPrune > 60 * 60_000) {
      this.#lastPrune = now.getTime();
      const pruned = await this.#outbox.prune(new Date(now.getTime() - this.#keepDeliveredMs));
      if (pruned > 0) this.#log.debug({ pruned }, 'delivered events pruned');
    }
    return { routed, delivered: outcomes.filter(Boolean).length, failed: outcomes.filter((o) => !o).length };
  }

  /** Runs one delivery; a failure is recorded here (its retry), a success by the caller with the batch's others. */
  async #deliver(delivery: EventDelivery): Promise<boolean> {
    const handler = this.#handlers.get(delivery.handler)!;
    const event: DeliveredEvent = {
      id: delivery.eventId, type: delivery.eventType as DeliveredEvent['type'], payload: delivery.payload as DeliveredEvent['payload'],
      createdAt: delivery.createdAt, attempt: delivery.attempts,
    };
    const started = performance.now();
    try {
      await handler.handle(event);
      this.#metrics?.eventDeliverySeconds.observe({ handler: handler.name }, (performance.now() - started) / 1000);
      return true;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const delay = Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** Math.min(30, delivery.attempts - 1)) * (0.75 + this.#random() / 2);
      const retryAt = new Date(this.#clock().getTime() + delay);
      await this.#outbox.fail(delivery.id, this.owner, message, retryAt, this.#clock());
      this.#metrics?.eventDeliveries.inc({ handler: handler.name, outcome: 'failed' });
      this.#log.warn({ err: error, handler: handler.name, event: event.type, eventId: event.id, attempt: event.attempt, retryAt: retryAt.toISOString() },
        'event handler %s failed on %s %d (attempt %d); retried at %s', handler.name, event.type, event.id, event.attempt, retryAt.toISOString());
      return false;
    }
  }

  #schedule(delayMs: number): void {
    if (this.#stopping) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const cycle = this.runOnce();
      this.#cycle = cycle;
      cycle
        .then((done) => this.#schedule(done.routed + done.delivered + done.failed > 0 ? 0 : this.#pollIntervalMs))
        .catch((error) => {
          this.#log.error({ err: error }, 'event dispatch failed; retrying');
          this.#schedule(this.#pollIntervalMs * 4);
        })
        .finally(() => { if (this.#cycle === cycle) this.#cycle = null; });
    }, delayMs);
    this.#timer.unref();
  }
}
