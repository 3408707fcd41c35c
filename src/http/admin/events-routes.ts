import type { FastifyInstance } from 'fastify';
import type { Archive } from '../../app.ts';
import { AtriumError } from '../../errors.ts';
import { page, type Params, type Query } from './paging.ts';
import type { RouteRules } from '../../security/index.ts';

/** The access rules of these routes (stuck deliveries, backlog, retry), composed by http/access.ts. */
export const EVENT_ROUTE_RULES: RouteRules = {
  'GET /api/events/stuck': 'admin:config',
  'GET /api/events/backlog': 'admin:config',
  'POST /api/events/deliveries/:id/retry': 'admin:config',
};

/** What the event routes use: the transport gets these services, not the whole archive. */
export type EventRoutesDeps = Pick<Archive, 'events' | 'eventHandlers'>;

/**
 * The event deliveries an administrator must see: the ones that failed and wait for their next attempt
 * (with the handler's error), the backlog per handler, and a retry-now once the cause is fixed.
 */
export async function eventRoutes(app: FastifyInstance, archive: EventRoutesDeps): Promise<void> {
  const { events } = archive;
  app.get<{ Querystring: Query }>('/api/events/stuck', async (req) => {
    const { limit, offset } = page(req.query);
    const { items, total } = await events.stuck(limit, offset);
    return { items, total, limit, offset };
  });
  app.get('/api/events/backlog', async () => {
    const { unrouted, pending } = await events.backlog();
    return { unrouted, pending: Object.fromEntries(pending), handlers: archive.eventHandlers.map((h) => ({ name: h.name, event: h.event })) };
  });
  app.post<{ Params: Params }>('/api/events/deliveries/:id/retry', async (req) => {
    const id = Number(req.params.id);
    if (!(await events.retryNow(id, new Date()))) throw new AtriumError('not-found', `no pending event delivery ${req.params.id}`);
    return { id, retry: 'now' };
  });
}
