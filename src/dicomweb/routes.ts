/**
 * The DICOMweb transport under /dicom-web: QIDO-RS, WADO-RS and WADO-URI here, STOW-RS (stow.ts) and the
 * rendered resources (rendered.ts) beside them with the same options. Thin: each handler decodes the
 * request, calls the archive's index and blob store, and encodes the answer. Registered as an encapsulated
 * Fastify scope so that its hooks (CORS, access) apply to DICOMweb only; errors go through the app's
 * problem+json handler. Preflights (OPTIONS) of every /dicom-web path are answered here.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { searchHandler } from './qido.ts';
import { bulkdataHandler, framesHandler, metadataHandler, retrieveHandler } from './wado.ts';
import { wadoUriHandler } from './wado-uri.ts';
import { DEFAULT_CORS_ORIGINS, registerCors, registerPreflight } from './cors.ts';
import { DICOMWEB_PREFIX, type DicomwebContext, type DicomwebOptions, type DicomwebServices } from './context.ts';

export async function dicomwebRoutes(app: FastifyInstance, archive: DicomwebServices, options: DicomwebOptions = {}): Promise<void> {
  const ctx: DicomwebContext = {
    archive,
    options,
    baseUrl(request) {
      if (options.baseUrl) return options.baseUrl.replace(/\/+$/, '');
      return `${request.protocol}://${request.host}${DICOMWEB_PREFIX}`;
    },
  };
  const origins = options.corsOrigins ?? DEFAULT_CORS_ORIGINS;

  await app.register(async (scope) => {
    registerCors(scope, origins);
    registerPreflight(scope, origins);

    // Access control: the one place where authentication and authorization will plug in.
    scope.addHook('preHandler', async (request: FastifyRequest) => {
      if (request.method === 'OPTIONS') return;
      await options.authorize?.(request);
    });

    // QIDO-RS
    scope.get('/studies', searchHandler(ctx, 'STUDY'));
    scope.get('/series', searchHandler(ctx, 'SERIES'));
    scope.get('/instances', searchHandler(ctx, 'IMAGE'));
    scope.get('/studies/:study/series', searchHandler(ctx, 'SERIES'));
    scope.get('/studies/:study/instances', searchHandler(ctx, 'IMAGE'));
    scope.get('/studies/:study/series/:series/instances', searchHandler(ctx, 'IMAGE'));

    // WADO-RS
    scope.get('/studies/:study', retrieveHandler(ctx));
    scope.get('/studies/:study/series/:series', retrieveHandler(ctx));
    scope.get('/studies/:study/series/:series/instances/:sop', retrieveHandler(ctx));
    scope.get('/studies/:study/metadata', metadataHandler(ctx));
    scope.get('/studies/:study/series/:series/metadata', metadataHandler(ctx));
    scope.get('/studies/:study/series/:series/instances/:sop/metadata', metadataHandler(ctx));
    scope.get('/studies/:study/series/:series/instances/:sop/frames/:frames', framesHandler(ctx));
    scope.get('/studies/:study/series/:series/instances/:sop/bulkdata/*', bulkdataHandler(ctx));

    // WADO-URI
    scope.get('/wado', wadoUriHandler(ctx));
  }, { prefix: DICOMWEB_PREFIX });
  // WADO-URI is also at /wado, where most of its clients look for it (PS3.18 leaves the path to the origin server).
  await app.register(async (scope) => {
    registerCors(scope, origins);
    scope.get('/wado', wadoUriHandler(ctx));
  });
}
