/**
 * The AI REST API under /api/ai (docs/ai.md "REST"): the node registry (changes audited as updates of the
 * object `ai-node`), requests, results, a study's AI outcome, the radiologist's agreement and the metrics.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type {} from '../http/access.ts';
import { auditPrincipal, type AuditService } from '../audit/audit-service.ts';
import { AtriumError } from '../errors.ts';
import type { RouteRules } from '../security/route-rule.ts';
import type { IndexStore } from '../ports/index-store.ts';
import type { AiService } from './ai-service.ts';
import { validateNode } from './node.ts';
import type { Agreement } from './sql-ai-store.ts';

export const AI_ROUTE_RULES: RouteRules = {
  'GET /api/ai/nodes': 'ai:read',
  'POST /api/ai/nodes': 'ai:write',
  'POST /api/ai/nodes/validate': 'ai:read',
  'GET /api/ai/nodes/:id': 'ai:read',
  'PUT /api/ai/nodes/:id': 'ai:write',
  'DELETE /api/ai/nodes/:id': 'ai:write',
  'GET /api/ai/nodes/:id/metrics': 'ai:read',
  'GET /api/ai/metrics': 'ai:read',
  'GET /api/ai/requests': 'ai:read',
  'GET /api/ai/results': 'ai:read',
  'GET /api/ai/studies/:study': 'ai:read',
  'POST /api/ai/studies/:study/agreement': 'ai:review',
};

type Query = Record<string, string | undefined>;

function idOf(req: FastifyRequest): number {
  const n = Number((req.params as { id: string }).id);
  if (!Number.isInteger(n) || n < 1) throw new AtriumError('invalid-input', 'id must be a positive whole number');
  return n;
}

function page(q: Query): { limit: number; offset: number } {
  const limit = q.limit === undefined ? 100 : Number(q.limit);
  const offset = q.offset === undefined ? 0 : Number(q.offset);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new AtriumError('invalid-input', 'limit must be a whole number from 1 to 1000');
  if (!Number.isInteger(offset) || offset < 0) throw new AtriumError('invalid-input', 'offset must be a whole number from 0');
  return { limit, offset };
}

function definitionOf(body: unknown) {
  const checked = validateNode(body);
  if (!checked.node) throw new AtriumError('invalid-input', `the AI node is not valid: ${checked.problems.map((p) => `${p.path || '(body)'}: ${p.message}`).join('; ')}`, { problems: checked.problems });
  return checked.node;
}

export async function aiRoutes(app: FastifyInstance, ai: AiService, audit: AuditService, index: Pick<IndexStore, 'getStudy'>): Promise<void> {
  const { store } = ai;
  const by = (req: FastifyRequest) => req.principal?.name ?? null;
  const changed = async (req: FastifyRequest, id: number, name: string, change: 'create' | 'update' | 'delete', detail: string) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'update', interface: 'rest', origin: { address: req.ip },
      objects: [{ type: 'ai-node', id: String(id), name, change }], detail });
  };
  const node = async (req: FastifyRequest) => {
    const found = await store.getNode(idOf(req));
    if (!found) throw new AtriumError('not-found', 'no such AI node');
    return found;
  };
  const studyRef = async (uid: string) => {
    const s = await index.getStudy(uid);
    return { studyInstanceUid: uid, patientId: s?.patient.patientId ?? null, accessionNumber: s?.accessionNumber ?? null };
  };

  app.get('/api/ai/nodes', async () => ({ items: await store.listNodes() }));
  app.post('/api/ai/nodes/validate', async (req) => {
    const checked = validateNode(req.body);
    return { valid: checked.node !== null, problems: checked.problems, node: checked.node };
  });
  app.post('/api/ai/nodes', async (req, reply) => {
    const created = await store.createNode(definitionOf(req.body), by(req), ai.now());
    await changed(req, created.id, created.name, 'create', `AI node "${created.name}" registered (${created.mode}): ${JSON.stringify(req.body)}`);
    return reply.code(201).send(created);
  });
  app.get('/api/ai/nodes/:id', async (req) => await node(req));
  app.put('/api/ai/nodes/:id', async (req) => {
    const before = await node(req);
    const updated = (await store.updateNode(before.id, definitionOf(req.body), by(req), ai.now()))!;
    const { id: _a, createdAt: _b, updatedAt: _c, updatedBy: _d, ...was } = before;
    await changed(req, updated.id, updated.name, 'update', `AI node "${updated.name}" changed (${updated.mode}, ${updated.enabled ? 'enabled' : 'disabled'}); it was ${JSON.stringify(was)}`);
    return updated;
  });
  app.delete('/api/ai/nodes/:id', async (req) => {
    const deleted = await store.deleteNode(idOf(req));
    if (!deleted) throw new AtriumError('not-found', 'no such AI node');
    await changed(req, deleted.id, deleted.name, 'delete', `AI node "${deleted.name}" deleted`);
    return deleted;
  });
  app.get('/api/ai/nodes/:id/metrics', async (req) => await ai.metrics(await node(req)));
  app.get('/api/ai/metrics', async () => {
    const items = [];
    for (const n of await store.listNodes()) items.push({ id: n.id, enabled: n.enabled, mode: n.mode, ...(await ai.metrics(n)) });
    return { now: ai.now().toISOString(), items, unmatchedWithoutNode: await store.unmatchedWithoutNode() };
  });

  app.get('/api/ai/requests', async (req) => {
    const q = req.query as Query;
    if (q.state && !['queued', 'sent', 'failed', 'resulted'].includes(q.state)) throw new AtriumError('invalid-input', 'state must be queued, sent, failed or resulted');
    return await store.listRequests({ ...page(q), ...(q.node ? { nodeId: Number(q.node) } : {}), ...(q.state ? { state: q.state } : {}) });
  });
  app.get('/api/ai/results', async (req) => {
    const q = req.query as Query;
    if (q.state && !['linked', 'unmatched'].includes(q.state)) throw new AtriumError('invalid-input', 'state must be linked or unmatched');
    return await store.listResults({ ...page(q), ...(q.node ? { nodeId: Number(q.node) } : {}), ...(q.state ? { state: q.state } : {}) });
  });

  app.get('/api/ai/studies/:study', async (req) => {
    const uid = (req.params as { study: string }).study;
    const outcome = await ai.study(uid);
    const ref = await studyRef(uid);
    await audit.record({ principal: auditPrincipal(req.principal), action: 'read', interface: 'rest', origin: { address: req.ip }, detail: 'AI requests and results of the study',
      patientIds: ref.patientId ? [ref.patientId] : [], studies: [ref] });
    return { studyInstanceUid: uid, ...outcome };
  });
  // One click on the reading worklist: the report confirms or overrides the AI result.
  app.post('/api/ai/studies/:study/agreement', async (req) => {
    const uid = (req.params as { study: string }).study;
    const body = (req.body ?? {}) as { agreement?: string; node?: string };
    const user = req.principal ? `${req.principal.name}` : 'anonymous';
    const result = await ai.recordAgreement(uid, body.agreement as Agreement, user, typeof body.node === 'string' ? body.node : undefined);
    const ref = await studyRef(uid);
    await audit.record({ principal: auditPrincipal(req.principal), action: 'update', interface: 'rest', origin: { address: req.ip },
      detail: `AI result ${body.agreement === 'confirms' ? 'confirmed' : 'overridden'} by the report (${result.reportStatus})${body.node ? ` for node ${body.node}` : ''}`,
      patientIds: ref.patientId ? [ref.patientId] : [], studies: [ref] });
    return { studyInstanceUid: uid, ...result };
  });
}
