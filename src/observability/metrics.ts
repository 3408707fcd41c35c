import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The Prometheus metrics of one Atrium process, served at /metrics. One registry per process, not a global. */
export class Metrics {
  readonly registry = new Registry();
  readonly ingested = new Counter({
    name: 'atrium_ingest_total',
    help: 'Objects received for ingest, by transport source and outcome',
    labelNames: ['source', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly ingestedBytes = new Counter({
    name: 'atrium_ingest_bytes_total',
    help: 'Bytes received for ingest, by transport source',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly ingestSeconds = new Histogram({
    name: 'atrium_ingest_duration_seconds',
    help: 'Time from first byte to durable, indexed acknowledgement',
    labelNames: ['source'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
    registers: [this.registry],
  });
  readonly ingestsInFlight = new Gauge({
    name: 'atrium_ingest_in_flight',
    help: 'Ingests under way',
    registers: [this.registry],
  });
  readonly outboxPending = new Gauge({
    name: 'atrium_outbox_pending_events',
    help: 'Events written to the outbox and not yet delivered to every handler subscribed to them (queue depth)',
    registers: [this.registry],
  });
  readonly eventDeliveries = new Counter({
    name: 'atrium_event_deliveries_total',
    help: 'Event deliveries to handlers, by handler and outcome (delivered, failed: retried with backoff)',
    labelNames: ['handler', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly eventDeliverySeconds = new Histogram({
    name: 'atrium_event_delivery_duration_seconds',
    help: 'Time an event handler took on a successful delivery',
    labelNames: ['handler'] as const,
    buckets: [0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10, 60],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'atrium_' });
  }
}

/** Metric labels must stay few: "dimse:CT01" counts as "dimse". */
export function sourceLabel(source: string): string {
  return source.split(':', 1)[0];
}
