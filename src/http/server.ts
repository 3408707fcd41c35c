import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyBaseLogger } from 'fastify';
import type { Archive } from '../app.ts';
import { sendProblem } from './problem.ts';
import { adminRoutes } from './admin/routes.ts';
import { jobRoutes } from './admin/jobs-routes.ts';
import { eventRoutes } from './admin/events-routes.ts';
import { dicomRoutes, type DicomRouteOptions } from './admin/dicom-routes.ts';
import { uiRoutes } from './ui/routes.ts';
import { viewerRoutes } from './viewer/routes.ts';
import { stowRoutes } from '../dicomweb/stow.ts';
import { dicomwebRoutes } from '../dicomweb/routes.ts';
import type { DicomwebOptions } from '../dicomweb/context.ts';
import { renderedRoutes } from '../dicomweb/rendered.ts';
import { renderInstance } from '../imaging/index.ts';
import { registerAccessControl } from './access.ts';
import { registerForwardedHeader, trustProxyOption } from './client-address.ts';
import { registerSecurityHeaders } from './security-headers.ts';
import { securityRoutes } from './admin/security-routes.ts';
import { auditRoutes } from './admin/audit-routes.ts';

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

  // Authentication, authorization (every route is in access.ts ROUTE_RULES) and the audit of patient data.
  registerAccessControl(app, archive);

  app.get('/metrics', async (_req, reply) => {
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
  const dicomweb: DicomwebOptions = {
    corsOrigins: archive.config.http.corsOrigins,
    render: (sopInstanceUid, frame, params) => renderInstance(archive, sopInstanceUid, frame, params),
  };
  await dicomwebRoutes(app, archive, dicomweb);
  await stowRoutes(app, archive, dicomweb);
  await renderedRoutes(app, archive, dicomweb);
  await uiRoutes(app);
  await viewerRoutes(app);
  return app;
}
