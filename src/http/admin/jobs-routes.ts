import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Archive } from '../../app.ts';
import { AtriumError } from '../../errors.ts';
import { JOB_STATES, type JobState } from '../../ports/job-queue.ts';
import { found, page, type Params, type Query } from './paging.ts';
import type { RouteRules } from '../../security/index.ts';
import { auditPrincipal } from '../../audit/audit-service.ts';
import { JobAdministration } from '../../audit/administration.ts';
import { interfaceOf } from '../../audit/http-request-audit.ts';

/** The access rules of these routes (the durable jobs), composed by http/access.ts. */
export const JOB_ROUTE_RULES: RouteRules = {
  'GET /api/jobs': 'admin:config',
  'GET /api/jobs/:id': 'admin:config',
  'POST /api/jobs/:id/cancel': 'admin:config',
  'POST /api/jobs/:id/retry': 'admin:config',
};

/** What the job routes use: the transport gets these services, not the whole archive. */
export type JobRoutesDeps = Pick<Archive, 'jobs' | 'audit'>;

/** Durable jobs (sends, retrieves...): visible with their state, cancellable, retryable. */
export async function jobRoutes(app: FastifyInstance, archive: JobRoutesDeps): Promise<void> {
  const { jobs } = archive;
  // Cancelling and retrying are recorded (job-control).
  const admin = new JobAdministration({ jobs, audit: archive.audit });
  const actor = (req: FastifyRequest) => ({ principal: auditPrincipal(req.principal), interface: interfaceOf(req), origin: { address: req.ip } });
  app.get<{ Querystring: Query }>('/api/jobs', async (req) => {
    const state = req.query.state as JobState | undefined;
    if (state && !JOB_STATES.includes(state)) throw new AtriumError('invalid-input', `state must be one of ${JOB_STATES.join(', ')}`);
    const { items, total } = await jobs.list({ state, type: req.query.type }, page(req.query));
    return { items, total, ...page(req.query) };
  });
  app.get<{ Params: Params }>('/api/jobs/:id', async (req) => found(await jobs.get(Number(req.params.id)), `job ${req.params.id}`));
  app.post<{ Params: Params }>('/api/jobs/:id/cancel', async (req) => found(await admin.cancel(actor(req), req.params.id), `job ${req.params.id}`));
  app.post<{ Params: Params }>('/api/jobs/:id/retry', async (req) => found(await admin.retry(actor(req), req.params.id), `job ${req.params.id}`));
}
