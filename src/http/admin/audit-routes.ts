import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest, preHandlerHookHandler } from 'fastify';
import { AtriumError } from '../../errors.ts';
import type { AuditFilter } from '../../ports/audit-store.ts';
import {
  AUDIT_EXPORT_FORMATS, EXPORT_CONTENT_TYPES, auditPrincipal, normalizeFilter, type AuditActor, type AuditExportFormat, type AuditService,
} from '../../audit/audit-service.ts';
import { page, type Query } from './paging.ts';
import { attachmentDisposition } from '../../io/header-value.ts';
import type { RouteRules } from '../../security/index.ts';

export interface AuditRouteOptions {
  /** Authorization: runs before every audit route (the trail is for auditors, not every user). */
  preHandler?: preHandlerHookHandler | preHandlerHookHandler[];
}

const EXTENSIONS: Record<AuditExportFormat, string> = { json: 'json', ndjson: 'ndjson', fhir: 'fhir.json', 'fhir-ndjson': 'fhir.ndjson', 'dicom-xml': 'xml' };

/** The access rules of these routes (the audit trail, for auditors), composed by http/access.ts. */
export const AUDIT_ROUTE_RULES: RouteRules = {
  'GET /api/audit': 'audit:read',
  'GET /api/audit/export': 'audit:read',
};

/**
 * The audit trail over the admin REST API:
 * GET /api/audit?from&to&user&patientId&studyInstanceUid&action&interface&outcome&limit&offset (newest first);
 * GET /api/audit/export?format=json|ndjson|fhir|fhir-ndjson|dicom-xml&<same filters> (oldest first, streamed).
 */
export async function auditRoutes(app: FastifyInstance, deps: { audit: AuditService }, options: AuditRouteOptions = {}): Promise<void> {
  const { audit } = deps;
  const preHandler = options.preHandler ? { preHandler: options.preHandler } : {};

  // Reading the trail is itself recorded (audit-log-used, the filter as the query) when the caller is known.
  const actorOf = (req: FastifyRequest): AuditActor | null => req.principal
    ? { principal: auditPrincipal(req.principal), interface: 'rest', origin: { address: req.ip } }
    : null; // a server without the access hook (test fixtures)

  app.get<{ Querystring: Query }>('/api/audit', preHandler, async (req) => {
    const paging = page(req.query);
    const actor = actorOf(req);
    const { items, total } = actor ? await audit.searchAs(actor, filterOf(req.query), paging) : await audit.search(normalizeFilter(filterOf(req.query)), paging);
    return { items, total, ...paging };
  });

  app.get<{ Querystring: Query }>('/api/audit/export', preHandler, async (req, reply) => {
    const format = (req.query.format ?? 'ndjson') as AuditExportFormat;
    const actor = actorOf(req);
    // Validated before the first byte: a bad filter is a 400, not a broken stream.
    let chunks: AsyncIterable<string>;
    if (actor) chunks = await audit.exportAs(actor, filterOf(req.query), format);
    else {
      if (!AUDIT_EXPORT_FORMATS.includes(format)) throw new AtriumError('invalid-input', `format must be one of ${AUDIT_EXPORT_FORMATS.join(', ')}`);
      chunks = audit.export(normalizeFilter(filterOf(req.query)), format);
    }
    return reply
      .type(`${EXPORT_CONTENT_TYPES[format]}; charset=utf-8`)
      .header('content-disposition', attachmentDisposition(`audit.${EXTENSIONS[format]}`))
      .header('cache-control', 'no-store')
      .send(Readable.from(chunks));
  });
}

/** The filter as asked (validated by the service, so that a refused one is recorded too). */
function filterOf(query: Query): AuditFilter {
  const filter: Record<string, string> = {};
  for (const key of ['from', 'to', 'user', 'patientId', 'studyInstanceUid', 'action', 'interface', 'outcome'] as const) {
    const value = query[key];
    if (value !== undefined && value !== '') filter[key] = value;
  }
  return filter as AuditFilter;
}
