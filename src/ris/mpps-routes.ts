import type { FastifyInstance } from 'fastify';
import type {} from '../http/access.ts';
import { auditPrincipal, type AuditService } from '../audit/audit-service.ts';
import { AtriumError } from '../errors.ts';
import type { RouteRules } from '../security/route-rule.ts';
import { performedSeries } from './mpps-scp.ts';
import { MPPS_STATUSES, type MppsStatus, type SqlMppsStore } from './sql-mpps-store.ts';
import type { PerformedSeriesCheck } from './model.ts';

/** The MPPS REST API (docs/mwl-mpps.md "REST"), and the rule of each route. */
export const MPPS_ROUTE_RULES: RouteRules = {
  'GET /api/ris/mpps': 'order:read',
  'GET /api/ris/mpps/:uid': 'order:read',
};

type Query = Record<string, string | undefined>;

export async function mppsRoutes(app: FastifyInstance, store: SqlMppsStore, audit: AuditService, check: (uid: string) => Promise<PerformedSeriesCheck | null>): Promise<void> {
  const audited = async (req: import('fastify').FastifyRequest, patientIds: (string | null)[]) => {
    await audit.record({
      principal: auditPrincipal(req.principal), action: 'query', interface: 'rest', origin: { address: req.ip }, query: req.url,
      patientIds: [...new Set(patientIds.filter((p): p is string => !!p))],
    });
  };

  app.get('/api/ris/mpps', async (req) => {
    const q = req.query as Query;
    if (q.status && !MPPS_STATUSES.includes(q.status as MppsStatus)) throw new AtriumError('invalid-input', `status must be one of ${MPPS_STATUSES.join(', ')}`);
    if (q.matched !== undefined && q.matched !== 'true' && q.matched !== 'false') throw new AtriumError('invalid-input', 'matched must be true or false');
    const limit = q.limit === undefined ? 50 : Number(q.limit);
    const offset = q.offset === undefined ? 0 : Number(q.offset);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new AtriumError('invalid-input', 'limit must be a whole number from 1 to 1000');
    if (!Number.isInteger(offset) || offset < 0) throw new AtriumError('invalid-input', 'offset must be a whole number from 0');
    const result = await store.list({
      status: q.status as MppsStatus | undefined, accessionNumber: q.accessionNumber, studyInstanceUid: q.studyInstanceUid,
      ...(q.matched !== undefined ? { matched: q.matched === 'true' } : {}),
    }, { limit, offset });
    await audited(req, result.items.map((m) => m.patientId));
    return result;
  });

  app.get('/api/ris/mpps/:uid', async (req) => {
    const m = await store.get((req.params as { uid: string }).uid);
    if (!m) throw new AtriumError('not-found', 'no such MPPS');
    await audited(req, [m.patientId]);
    return { ...m, performedSeries: performedSeries(m.dataset), performedSeriesCheck: await check(m.sopInstanceUid) };
  });
}
