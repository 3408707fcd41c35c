import type { FastifyInstance } from 'fastify';
import type { Archive } from '../../app.ts';
import { AtriumError } from '../../errors.ts';
import { redactedConfig } from '../../config/redaction.ts';
import type { Query } from './paging.ts';
import type { RouteRules } from '../../security/index.ts';

/** The access rules of these routes (the operations console's dashboard and settings), composed by http/access.ts. */
export const OPERATIONS_ROUTE_RULES: RouteRules = {
  'GET /api/dashboard': 'admin:config',
  'GET /api/settings': 'admin:config',
};

/** What the operations routes use: the transport gets these services, not the whole archive. */
export type OperationsRoutesDeps = Pick<Archive, 'dashboard' | 'config' | 'modules'>;

const MAX_DAYS = 366;

/** `days` of the dashboard: a whole number from 1 to 366, 30 when absent. */
function days(query: Query): number {
  if (query.days === undefined) return 30;
  const n = /^\d{1,3}$/.test(query.days) ? Number(query.days) : NaN;
  if (!(n >= 1 && n <= MAX_DAYS)) throw new AtriumError('invalid-input', `days must be a whole number from 1 to ${MAX_DAYS}, got "${query.days}"`);
  return n;
}

/**
 * The operations console's overview: the dashboard (activity, storage, ingest, jobs, quarantine, events,
 * health) and the configuration in force with its secrets hidden (src/config/redaction.ts).
 */
export async function operationsRoutes(app: FastifyInstance, archive: OperationsRoutesDeps): Promise<void> {
  app.get<{ Querystring: Query }>('/api/dashboard', async (req) => await archive.dashboard.dashboard(days(req.query)));
  app.get('/api/settings', async (_req, reply) =>
    // Never cached: it describes this node now, and a shared cache is no place for a configuration.
    reply.header('cache-control', 'no-store').send({ config: redactedConfig(archive.config), modules: archive.modules.map((m) => m.name) }));
}
