/**
 * The prior prefetch REST API (docs/prefetch.md): rules CRUD, the status per order, and a search run on
 * demand. Rule changes are audited as updates of the rule; status reads as queries naming the patient.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type {} from '../http/access.ts';
import { auditPrincipal, type AuditService } from '../audit/audit-service.ts';
import { AtriumError } from '../errors.ts';
import type { RouteRules } from '../security/route-rule.ts';
import { parseRuleInput } from './rules.ts';
import { prefetchStatus, queueSearch, type PrefetchDeps } from './prefetch-service.ts';

export const PREFETCH_ROUTE_RULES: RouteRules = {
  'GET /api/prefetch/rules': 'prefetch:read',
  'POST /api/prefetch/rules': 'prefetch:write',
  'GET /api/prefetch/rules/:rule': 'prefetch:read',
  'PUT /api/prefetch/rules/:rule': 'prefetch:write',
  'DELETE /api/prefetch/rules/:rule': 'prefetch:write',
  'GET /api/prefetch/orders': 'prefetch:read',
  'GET /api/prefetch/orders/:accession': 'prefetch:read',
  'POST /api/prefetch/orders/:accession/run': 'prefetch:write',
};

function ruleId(req: FastifyRequest): number {
  const n = Number((req.params as { rule: string }).rule);
  if (!Number.isInteger(n) || n < 1) throw new AtriumError('invalid-input', 'rule must be a positive whole number');
  return n;
}

function page(q: Record<string, string | undefined>): { limit: number; offset: number } {
  const limit = q.limit === undefined ? 100 : Number(q.limit);
  const offset = q.offset === undefined ? 0 : Number(q.offset);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new AtriumError('invalid-input', 'limit must be a whole number from 1 to 1000');
  if (!Number.isInteger(offset) || offset < 0) throw new AtriumError('invalid-input', 'offset must be a whole number from 0');
  return { limit, offset };
}

export async function prefetchRoutes(app: FastifyInstance, deps: PrefetchDeps, audit: AuditService): Promise<void> {
  const { store } = deps;
  const now = () => deps.clock?.() ?? new Date();
  const changed = async (req: FastifyRequest, id: number, change: 'create' | 'update' | 'delete', detail: string) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'update', interface: 'rest', origin: { address: req.ip },
      objects: [{ type: 'prefetch-rule', id: String(id), change }], detail });
  };
  const queried = async (req: FastifyRequest, patientIds: string[]) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'query', interface: 'rest', origin: { address: req.ip }, query: req.url,
      patientIds: [...new Set(patientIds)] });
  };
  const by = (req: FastifyRequest) => req.principal?.name ?? null;

  app.get('/api/prefetch/rules', async () => ({ items: await store.listRules() }));
  app.get('/api/prefetch/rules/:rule', async (req) => {
    const rule = await store.getRule(ruleId(req));
    if (!rule) throw new AtriumError('not-found', 'no such prefetch rule');
    return rule;
  });
  app.post('/api/prefetch/rules', async (req, reply) => {
    const rule = await store.createRule(parseRuleInput(req.body), by(req), now());
    await changed(req, rule.id, 'create', `prefetch rule "${rule.name}" created: ${JSON.stringify(req.body)}`);
    return reply.code(201).send(rule);
  });
  app.put('/api/prefetch/rules/:rule', async (req) => {
    const id = ruleId(req);
    const before = await store.getRule(id);
    const rule = before ? await store.updateRule(id, parseRuleInput(req.body), by(req), now()) : null;
    if (!rule || !before) throw new AtriumError('not-found', 'no such prefetch rule');
    const { id: _a, createdAt: _b, updatedAt: _c, updatedBy: _d, ...was } = before;
    await changed(req, id, 'update', `prefetch rule "${rule.name}" changed; it was ${JSON.stringify(was)}`);
    return rule;
  });
  app.delete('/api/prefetch/rules/:rule', async (req) => {
    const rule = await store.deleteRule(ruleId(req));
    if (!rule) throw new AtriumError('not-found', 'no such prefetch rule');
    const { id: _a, createdAt: _b, updatedAt: _c, updatedBy: _d, ...was } = rule;
    await changed(req, rule.id, 'delete', `prefetch rule "${rule.name}" deleted; it was ${JSON.stringify(was)}`);
    return rule;
  });

  app.get('/api/prefetch/orders', async (req) => {
    const result = await store.listOrders(page(req.query as Record<string, string | undefined>));
    await queried(req, result.items.map((o) => o.patientId));
    const items = [];
    for (const o of result.items) {
      const s = await prefetchStatus(deps, o.accessionNumber);
      items.push({ ...o, status: s?.status ?? 'searching', counts: s?.counts ?? null, searchReason: s?.search.reason ?? null });
    }
    return { items, total: result.total };
  });
  app.get('/api/prefetch/orders/:accession', async (req) => {
    const accession = (req.params as { accession: string }).accession;
    const status = await prefetchStatus(deps, accession);
    if (!status) throw new AtriumError('not-found', `no prior prefetch for order ${accession} (not scheduled yet, or not searched: POST /api/prefetch/orders/${accession}/run)`);
    const row = (await store.getOrder(accession))!;
    await queried(req, [row.patientId]);
    return status;
  });
  app.post('/api/prefetch/orders/:accession/run', async (req, reply) => {
    const accession = (req.params as { accession: string }).accession;
    const order = await deps.ris.orders.find({ accessionNumber: accession });
    if (!order) throw new AtriumError('not-found', `no order ${accession}`);
    const row = await queueSearch(deps, order, 'on-demand', { requestedBy: auditPrincipal(req.principal), requestedThrough: 'rest' });
    await audit.record({ principal: auditPrincipal(req.principal), action: 'job-control', interface: 'rest', origin: { address: req.ip },
      patientIds: [order.patient.patientId], detail: `prior prefetch search for order ${accession} queued (job ${row.searchJobId})` });
    return reply.code(202).send(await prefetchStatus(deps, accession));
  });
}
