import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Archive } from '../../app.ts';
import { auditStored, interfaceOf } from '../../audit/http-request-audit.ts';
import { auditPrincipal } from '../../audit/audit-service.ts';
import type { AuditEventInput } from '../../ports/audit-store.ts';
import { AtriumError } from '../../errors.ts';
import { ReleaseRefused } from '../../archive/quarantine.ts';
import { studyKeyImages } from '../../archive/key-images.ts';
import { found, page, type Params, type Query } from './paging.ts';
import { attachmentDisposition } from '../../io/header-value.ts';
import type { RouteRules } from '../../security/index.ts';

/**
 * The access rules of these routes, composed by http/access.ts: health is public; the archive content
 * (patients, studies, series, instances) needs query or study:*, the quarantine admin:config.
 */
export const ADMIN_ROUTE_RULES: RouteRules = {
  'GET /api/health': 'public',
  'GET /api/health/ready': 'public',
  'GET /api/statistics': 'query',
  'GET /api/patients': 'query',
  'GET /api/studies': 'query',
  'GET /api/studies/:study': 'study:read',
  'GET /api/studies/:study/series': 'query',
  'GET /api/studies/:study/key-images': 'study:read',
  'GET /api/series/:series': 'study:read',
  'GET /api/series/:series/instances': 'query',
  'GET /api/instances/:sop': 'study:read',
  'GET /api/instances/:sop/file': 'study:read',
  'POST /api/instances': 'study:write',
  'DELETE /api/studies/:uid': 'study:delete',
  'DELETE /api/series/:uid': 'study:delete',
  'DELETE /api/instances/:uid': 'study:delete',
  'GET /api/quarantine': 'admin:config',
  'GET /api/quality/findings': 'admin:config',
  'GET /api/quarantine/:id': 'admin:config',
  'GET /api/quarantine/:id/file': 'admin:config',
  'GET /api/quarantine/:id/dump': 'admin:config',
  'POST /api/quarantine/:id/release': 'admin:config',
  'DELETE /api/quarantine/:id': 'admin:config',
};

/** What the archive admin routes use: the transport gets these services, not the whole archive. */
export type AdminRoutesDeps = Pick<Archive, 'index' | 'blobs' | 'ingest' | 'retrieve' | 'deletion' | 'quarantine' | 'audit'>;

/** The admin REST API under /api: thin, each route decodes, calls one service, encodes. */
export async function adminRoutes(app: FastifyInstance, archive: AdminRoutesDeps): Promise<void> {
  const { index } = archive;

  // Probes poll these every few seconds: their request lines would drown the info log, so only warnings
  // and errors of theirs are logged.
  const probe = { logLevel: 'warn' as const };
  app.get('/api/health', probe, async () => ({ status: 'ok', index: index.kind, blobs: archive.blobs.kind }));
  // For a load balancer's health check (deploy/haproxy.cfg, docs/scale-out.md): 200 only while this node
  // can reach the shared index, so a node cut off from PostgreSQL leaves the rotation (DIMSE and web) at once
  // instead of failing every association it is given. Bounded: a hung database answers 503, not never.
  app.get('/api/health/ready', probe, async (_req, reply) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('the index did not answer within 2 s')), 2000); });
    try {
      await Promise.race([index.ping(), timeout]);
      return { status: 'ready', index: index.kind, blobs: archive.blobs.kind };
    } catch (error) {
      return reply.status(503).send({ status: 'unavailable', reason: (error as Error).message });
    } finally {
      clearTimeout(timer);
    }
  });
  app.get('/api/statistics', async () => await index.statistics());

  app.get<{ Querystring: Query }>('/api/patients', async (req) =>
    await index.listPatients({ patientId: req.query.patientId, patientName: req.query.patientName }, page(req.query)));

  app.get<{ Querystring: Query }>('/api/studies', async (req) => {
    const q = req.query;
    return await index.listStudies({
      patientId: q.patientId, patientName: q.patientName, accessionNumber: q.accessionNumber, studyDate: q.studyDate,
      modality: q.modality, studyInstanceUid: q.studyInstanceUid,
    }, page(q));
  });
  app.get<{ Params: Params }>('/api/studies/:study', async (req) => found(await index.getStudy(req.params.study), `study ${req.params.study}`));
  app.get<{ Params: Params; Querystring: Query }>('/api/studies/:study/series', async (req) => {
    found(await index.getStudy(req.params.study), `study ${req.params.study}`);
    return await index.listSeries(req.params.study, page(req.query));
  });
  // The instances the study's Key Object Selection documents select, with their rendered URLs (docs/ehr.md).
  app.get<{ Params: Params }>('/api/studies/:study/key-images', async (req) => await studyKeyImages(archive, req.params.study));
  app.get<{ Params: Params }>('/api/series/:series', async (req) => found(await index.getSeries(req.params.series), `series ${req.params.series}`));
  app.get<{ Params: Params; Querystring: Query }>('/api/series/:series/instances', async (req) => {
    found(await index.getSeries(req.params.series), `series ${req.params.series}`);
    return await index.listInstances(req.params.series, page(req.query));
  });
  app.get<{ Params: Params }>('/api/instances/:sop', async (req) => {
    const instance = found(await index.findInstance(req.params.sop), `instance ${req.params.sop}`);
    return { ...instance, metadata: await index.instanceMetadata(req.params.sop) };
  });
  app.get<{ Params: Params }>('/api/instances/:sop/file', async (req, reply) => {
    const { instance, bytes } = await archive.retrieve.openInstance(req.params.sop);
    // A corrected instance is served with its corrections (docs/corrections.md): another length, another tag.
    const correction = await archive.retrieve.correctionOf(instance);
    if (!correction) reply.header('content-length', instance.sizeBytes);
    return reply
      .type('application/dicom')
      .header('content-disposition', attachmentDisposition(`${instance.sopInstanceUid}.dcm`))
      .header('etag', correction ? `"${instance.sha256}.c${correction.correctionId}"` : `"${instance.sha256}"`)
      .send(bytes);
  });

  // Upload one Part-10 file as the raw body (application/dicom): the simplest way in for scripts.
  app.post('/api/instances', async (req, reply) => {
    const result = await archive.ingest.ingest(req.raw, { source: 'rest', originalName: req.headers['x-file-name'] as string | undefined });
    await auditStored(archive, req, [{
      studyInstanceUid: 'studyInstanceUid' in result ? result.studyInstanceUid : null, sopClassUid: 'sopClassUid' in result ? result.sopClassUid : null,
      seriesInstanceUid: 'seriesInstanceUid' in result ? result.seriesInstanceUid : null, stored: result.status === 'stored' || result.status === 'duplicate',
    }]);
    const status = result.status === 'stored' ? 201 : result.status === 'duplicate' ? 200 : 422;
    return reply.status(status).send(result);
  });

  for (const level of ['study', 'series', 'instance'] as const) {
    const path = level === 'study' ? '/api/studies/:uid' : level === 'series' ? '/api/series/:uid' : '/api/instances/:uid';
    app.delete<{ Params: Params }>(path, async (req) => await archive.deletion.delete(level, req.params.uid));
  }

  // Quality findings: what was odd about objects accepted anyway (ingest.invalidUidPolicy "flag", generated File Meta...).
  app.get<{ Querystring: Query }>('/api/quality/findings', async (req) =>
    await index.listFindings({ studyInstanceUid: req.query.studyInstanceUid, code: req.query.code }, page(req.query)));
  app.get<{ Querystring: Query }>('/api/quarantine', async (req) => await index.listQuarantine(page(req.query)));
  app.get<{ Params: Params }>('/api/quarantine/:id', async (req) => found(await index.getQuarantined(Number(req.params.id)), `quarantined object ${req.params.id}`));
  app.get<{ Params: Params }>('/api/quarantine/:id/file', async (req, reply) => {
    const entry = found(await index.getQuarantined(Number(req.params.id)), `quarantined object ${req.params.id}`);
    return reply.type('application/octet-stream').header('content-length', entry.sizeBytes).send(await archive.retrieve.openQuarantined(entry.id));
  });
  app.get<{ Params: Params }>('/api/quarantine/:id/dump', async (req) => await archive.quarantine.dump(req.params.id));

  // A release is a store (audited as POST /api/instances is), and a correction of the attributes set on the way
  // (audited as an update, beside the Original Attributes Sequence the object itself now carries).
  app.post<{ Params: Params; Body: { attributes?: unknown } | undefined }>('/api/quarantine/:id/release', async (req) => {
    const attributes = req.body?.attributes ?? {};
    if (typeof attributes !== 'object' || attributes === null || Array.isArray(attributes)) {
      throw new AtriumError('invalid-input', 'attributes must be an object of attribute keyword to string value');
    }
    let released;
    try {
      released = await archive.quarantine.release(req.params.id, attributes as Record<string, unknown>);
    } catch (error) {
      if (error instanceof ReleaseRefused) {
        await audit(archive, req, { action: 'store', outcome: 'minor-failure', outcomeReason: error.message.slice(0, 500),
          objects: [{ type: 'quarantined-object', id: String(error.entry.id), name: error.entry.originalName ?? null, change: 'release-refused' }],
          detail: `${req.method} ${req.url}: quarantined object ${error.entry.id} (${error.entry.reasonCode}) not released` });
      }
      throw error;
    }
    const { result, corrections, entry } = released;
    await auditStored(archive, req, [{
      studyInstanceUid: result.studyInstanceUid, seriesInstanceUid: 'seriesInstanceUid' in result ? result.seriesInstanceUid : null,
      sopClassUid: result.sopClassUid, stored: true,
    }]);
    if (corrections.length > 0) {
      await audit(archive, req, {
        action: 'update', studies: [{ studyInstanceUid: result.studyInstanceUid }],
        objects: [{ type: 'quarantined-object', id: String(entry.id), name: entry.originalName ?? null, change: 'released', attributes: corrections.map((c) => c.keyword) }],
        detail: `quarantined object ${entry.id} released with attributes corrected: ${corrections.map((c) => `${c.keyword} ${c.previous === null ? '(absent)' : JSON.stringify(c.previous)} -> ${JSON.stringify(c.value)}`).join(', ')}`.slice(0, 2000),
      });
    }
    return { ...result, corrections };
  });
  // Deleting a quarantined object destroys DICOM data that never entered the archive: a delete naming the
  // quarantine entry (not a study of the archive), recorded with its outcome, a refusal (404) included.
  app.delete<{ Params: Params }>('/api/quarantine/:id', async (req, reply) => {
    let entry;
    try {
      entry = await archive.quarantine.delete(req.params.id);
    } catch (error) {
      await audit(archive, req, {
        action: 'delete', objects: [{ type: 'quarantined-object', id: req.params.id, change: 'deleted' }],
        outcome: error instanceof AtriumError && error.code !== 'internal' ? 'minor-failure' : 'serious-failure',
        outcomeReason: (error instanceof Error ? error.message : String(error)).slice(0, 500), detail: `${req.method} ${req.url}`,
      });
      throw error;
    }
    await audit(archive, req, { action: 'delete',
      objects: [{ type: 'quarantined-object', id: String(entry.id), name: entry.originalName ?? null, change: 'deleted' }],
      detail: `quarantined object ${entry.id} deleted (${entry.reasonCode}${entry.sopInstanceUid ? `, SOP Instance UID ${entry.sopInstanceUid}` : ''}${entry.originalName ? `, ${entry.originalName}` : ''})` });
    return reply.status(204).send();
  });
}

/** An audit record of a request the access hook does not record (admin:config routes that change patient data). */
async function audit(archive: Pick<Archive, 'audit'>, req: FastifyRequest, event: Omit<AuditEventInput, 'principal' | 'interface' | 'origin'>): Promise<void> {
  if (!req.principal) return; // a server without the access hook (test fixtures)
  try {
    await archive.audit.record({ principal: auditPrincipal(req.principal), interface: interfaceOf(req), origin: { address: req.ip }, ...event });
  } catch (error) {
    req.log.error({ err: error }, 'audit record failed');
  }
}
