import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyBaseLogger } from 'fastify';
import type { Archive } from '../app.ts';
import { sendProblem } from './problem.ts';
import { ADMIN_ROUTE_RULES, adminRoutes } from './admin/routes.ts';
import { JOB_ROUTE_RULES, jobRoutes } from './admin/jobs-routes.ts';
import { EVENT_ROUTE_RULES, eventRoutes } from './admin/events-routes.ts';
import { DICOM_ROUTE_RULES, dicomRoutes, type DicomRouteOptions } from './admin/dicom-routes.ts';
import { UI_ROUTE_RULES, uiRoutes } from './ui/routes.ts';
import { VIEWER_ROUTE_RULES, viewerRoutes } from './viewer/routes.ts';
import { LAUNCH_ROUTE_RULES, launchRoutes } from './viewer/launch.ts';
import { stowRoutes } from '../dicomweb/stow.ts';
import { dicomwebRoutes } from '../dicomweb/routes.ts';
import type { DicomwebOptions } from '../dicomweb/context.ts';
import { renderedRoutes } from '../dicomweb/rendered.ts';
import { DICOMWEB_ROUTE_RULES } from '../dicomweb/access-rules.ts';
import { renderInstance } from '../imaging/index.ts';
import { registerAccessControl, type RouteRuleTable } from './access.ts';
import { registerForwardedHeader, trustProxyOption } from './client-address.ts';
import { registerSecurityHeaders } from './security-headers.ts';
import { SECURITY_ROUTE_RULES, securityRoutes } from './admin/security-routes.ts';
import { AUDIT_ROUTE_RULES, auditRoutes } from './admin/audit-routes.ts';
import { OPERATIONS_ROUTE_RULES, operationsRoutes } from './admin/operations-routes.ts';

/**
 * The access rules of the routes registered below, one table per area (next to its routes); access.ts
 * composes them with the installed modules' (archive.modules, AtriumModule.routeRules).
 */
export const CORE_ROUTE_RULES: readonly RouteRuleTable[] = [
  { source: 'http/server.ts', rules: { 'GET /metrics': 'metrics' } },
  { source: 'http/admin/routes.ts', rules: ADMIN_ROUTE_RULES },
  { source: 'http/admin/security-routes.ts', rules: SECURITY_ROUTE_RULES },
  { source: 'http/admin/audit-routes.ts', rules: AUDIT_ROUTE_RULES },
  { source: 'http/admin/jobs-routes.ts', rules: JOB_ROUTE_RULES },
  { source: 'http/admin/events-routes.ts', rules: EVENT_ROUTE_RULES },
  { source: 'http/admin/dicom-routes.ts', rules: DICOM_ROUTE_RULES },
  { source: 'http/admin/operations-routes.ts', rules: OPERATIONS_ROUTE_RULES },
  { source: 'dicomweb/access-rules.ts', rules: DICOMWEB_ROUTE_RULES },
  { source: 'http/ui/routes.ts', rules: UI_ROUTE_RULES },
  { source: 'http/viewer/routes.ts', rules: VIEWER_ROUTE_RULES },
  { source: 'http/viewer/launch.ts', rules: LAUNCH_ROUTE_RULES },
];

/** The HTTP transport: admin REST, metrics and the UI over one archive. */
export async function createHttpServer(archive: Archive, options: DicomRouteOptions = {}): Promise<FastifyInstance> {
  const tls = archive.config.http.tls;
  const app = Fastify({
    // HTTPS with the configured certificate; TLS 1.2 or later (BCP 195). With a CA, client certificates
    // are asked for (and required when configured); who the caller is still comes from their credentials.
    ...(tls ? {
      https: {
        cert: readFileSync(tls.cert), key: readFileSync(tls.key), minVersion: 'TLSv1.2' as const,
        ...(tls.ca ? { ca: readFileSync(tls.ca), requestCert: true, rejectUnauthorized: tls.requireClientCert } : {}),
      },
    } : {}),
    loggerInstance: archive.log.child({ transport: 'http' }) as FastifyBaseLogger,
    // Part-10 uploads are streamed from the raw request, never buffered by a body parser.
    bodyLimit: 1024 * 1024,
    // Behind a reverse proxy, the client it names (client-address.ts).
    trustProxy: trustProxyOption(archive.config.http.trustedProxies),
  });
  registerForwardedHeader(app, archive.config.http.trustedProxies);
  app.addContentTypeParser(['application/dicom', 'application/octet-stream'], (_req, _payload, done) => done(null));
  app.setErrorHandler((error, request, reply) => sendProblem(error as Error, request, reply));
  app.setNotFoundHandler((request, reply) => reply.status(404).type('application/problem+json')
    .send({ type: 'about:blank', title: 'Not Found', status: 404, detail: `no route ${request.method} ${request.url}` }));
  registerSecurityHeaders(app, { https: !!tls });

  // Authentication, authorization (every route has a rule: CORE_ROUTE_RULES and the modules') and the
  // audit of patient data. Throws here when two tables declare the same route.
  registerAccessControl(app, archive, CORE_ROUTE_RULES);

  // Scraped every few seconds: logged only at warn and above, like the health probes.
  app.get('/metrics', { logLevel: 'warn' }, async (_req, reply) => {
    archive.metrics.outboxPending.set((await archive.index.statistics()).pendingEvents);
    return reply.type(archive.metrics.registry.contentType).send(await archive.metrics.registry.metrics());
  });
  await adminRoutes(app, archive);
  await securityRoutes(app, archive);
  // audit:read is enforced by the onRequest hook (access.ts).
  await auditRoutes(app, archive);
  await jobRoutes(app, archive);
  await eventRoutes(app, archive);
  await dicomRoutes(app, archive, options);
  await operationsRoutes(app, archive);
  const dicomweb: DicomwebOptions = {
    corsOrigins: archive.config.http.corsOrigins,
    render: (sopInstanceUid, frame, params) => renderInstance(archive, sopInstanceUid, frame, params),
  };
  await dicomwebRoutes(app, archive, dicomweb);
  await stowRoutes(app, archive, dicomweb);
  await renderedRoutes(app, archive, dicomweb);
  await uiRoutes(app);
  await viewerRoutes(app);
  await launchRoutes(app, archive);
  // The modules' own routes (their rules were composed above, with the core's).
  for (const module of archive.modules) await module.httpRoutes?.(app, archive);
  return app;
}
