/**
 * The identity corrections REST API (docs/corrections.md): list and read corrections (`query`, audited as
 * queries naming the patients), apply one per kind and undo one (`corrections:write`, audited as updates by
 * the service). Every apply and undo takes a `reason`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type {} from '../../http/access.ts';
import { auditPrincipal, type AuditService } from '../../audit/audit-service.ts';
import { AtriumError } from '../../errors.ts';
import type { RouteRules } from '../../security/route-rule.ts';
import { CORRECTION_KINDS, type Actor, type CorrectionRequest, type CorrectionService } from './correction-service.ts';

export const CORRECTION_ROUTE_RULES: RouteRules = {
  'GET /api/quality/corrections': 'query',
  'GET /api/quality/corrections/:correction': 'query',
  'POST /api/quality/corrections/:correction/undo': 'corrections:write',
  ...Object.fromEntries(CORRECTION_KINDS.map((kind) => [`POST /api/quality/corrections/${kind}`, 'corrections:write'])),
};

type Query = Record<string, string | undefined>;

function id(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new AtriumError('invalid-input', 'the correction id must be a positive whole number');
  return n;
}

function actorOf(req: FastifyRequest): Actor {
  return { principal: auditPrincipal(req.principal), interface: 'rest', origin: { address: req.ip } };
}

function body(req: FastifyRequest): Record<string, unknown> {
  if (!req.body || typeof req.body !== 'object' || Array.isArray(req.body)) throw new AtriumError('invalid-input', 'the body is a JSON object with the correction and its reason');
  return req.body as Record<string, unknown>;
}

export async function correctionRoutes(app: FastifyInstance, corrections: CorrectionService, audit: AuditService): Promise<void> {
  app.get<{ Querystring: Query }>('/api/quality/corrections', async (req) => {
    const q = req.query;
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    const offset = q.offset === undefined ? 0 : Number(q.offset);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new AtriumError('invalid-input', 'limit must be a whole number from 1 to 1000');
    if (!Number.isInteger(offset) || offset < 0) throw new AtriumError('invalid-input', 'offset must be a whole number from 0');
    const result = await corrections.list({ study: q.study, patientId: q.patientId, kind: q.kind }, { limit, offset });
    await audit.record({ ...actorOf(req), action: 'query', query: req.url, patientIds: [...new Set(result.items.flatMap((r) => r.patientIds))] });
    return { ...result, limit, offset };
  });
  app.get<{ Params: { correction: string } }>('/api/quality/corrections/:correction', async (req) => {
    const record = await corrections.get(id(req.params.correction));
    await audit.record({ ...actorOf(req), action: 'query', query: req.url, patientIds: record.patientIds });
    return record;
  });
  for (const kind of CORRECTION_KINDS) {
    app.post(`/api/quality/corrections/${kind}`, async (req, reply) => {
      const { reason, ...rest } = body(req);
      const record = await corrections.apply({ ...rest, kind } as CorrectionRequest, reason as string, actorOf(req));
      return reply.status(201).send(record);
    });
  }
  app.post<{ Params: { correction: string } }>('/api/quality/corrections/:correction/undo', async (req) => {
    return await corrections.undo(id(req.params.correction), body(req).reason as string, actorOf(req));
  });
}
