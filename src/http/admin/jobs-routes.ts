import type { FastifyInstance } from 'fastify';
import type { Archive } from '../../app.ts';
import { AtriumError } from '../../errors.ts';
import { JOB_STATES, type JobState } from '../../ports/job-queue.ts';
import { found, page, type Params, type Query } from './paging.ts';
import type { RouteRules } from '../../security/index.ts';

/** The access rules of these routes (the durable jobs), composed by http/access.ts. */
export const JOB_ROUTE_RULES: RouteRules = {
  'GET /api/jobs': 'admin:config',
  'GET /api/jobs/:id': 'admin:config',
  'POST /api/jobs/:id/cancel': 'admin:config',
  'POST /api/jobs/:id/retry': 'admin:config',
};

/** What the job routes use: the transport gets these services, not the whole archive. */
export type JobRoutesDeps = Pick<Archive, 'jobs'>;

/** Durable jobs (sends, retrieves...): visible with their state, cancellable, retryable. */
export async function jobRoutes(app: FastifyInstance, archive: JobRoutesDeps): Promise<void> {
  const { jobs } = archive;
  app.get<{ Querystring: Query }>('/api/jobs', async (req) => {
    const state = req.query.state as JobState | undefined;
    if (state && !JOB_STATES.includes(state)) throw new AtriumError('invalid-input', `state must be one of ${JOB_STATES.join(', ')}`);
    const { items, total } = await jobs.list({ state, type: req.query.type }, page(req.query));
    return { items, total, ...page(req.query) };
  });
  app.get<{ Params: Params }>('/api/jobs/:id', async (req) => found(await jobs.get(Number(req.params.id)), `job ${req.params.id}`));
  app.post<{ Params: Params }>('/api/jobs/:id/cancel', async (req) => found(await jobs.cancel(Number(req.params.id)), `job ${req.params.id}`));
  app.post<{ Params: Params }>('/api/jobs/:id/retry', async (req) => found(await jobs.retry(Number(req.params.id)), `job ${req.params.id}`));
}
