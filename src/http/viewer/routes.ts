import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { RouteRules } from '../../security/index.ts';

/** Where `npm install` puts OHIF's published build (scripts/install-viewer.ts). */
export const VIEWER_DIR = fileURLToPath(new URL('../../../vendor/ohif/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.map': 'application/json', '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.gif': 'image/gif', '.jpg': 'image/jpeg',
  '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf', '.txt': 'text/plain; charset=utf-8', '.webmanifest': 'application/manifest+json',
};

/**
 * The name of a second OHIF data source, the same DICOMweb service without wildcard matching: OHIF's study
 * list wraps its filters in `*...*` when the data source supports wildcards, so a Patient ID filter would
 * also list the patients whose IDs contain it. The viewer launch (launch.ts) opens the study list of one
 * patient through this one (`/?mrn=<Patient ID>&datasources=atrium-exact`).
 */
export const OHIF_EXACT_DATA_SOURCE = 'atrium-exact';

const dataSource = (name: string, friendlyName: string, wildcards: boolean) => `{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: '${name}',
    configuration: {
      friendlyName: '${friendlyName}',
      name: '${name}',
      wadoUriRoot: window.location.origin + '/dicom-web/wado',
      qidoRoot: window.location.origin + '/dicom-web',
      wadoRoot: window.location.origin + '/dicom-web',
      qidoSupportsIncludeField: true,
      supportsReject: false,
      imageRendering: 'wadors',
      thumbnailRendering: 'wadors',
      enableStudyLazyLoad: true,
      supportsFuzzyMatching: ${wildcards},
      supportsWildcard: ${wildcards},
      staticWado: false,
      singlepart: 'bulkdata,video',
      bulkDataURI: { enabled: true, relativeResolution: 'studies' },
      omitQuotationForMultipartRequest: true,
    },
  }`;

/**
 * OHIF's configuration, made at request time so the data source is this very server, whatever name or
 * port the browser used: QIDO, WADO-RS and WADO-URI on /dicom-web and /wado.
 */
const APP_CONFIG = `window.config = {
  routerBasename: null,
  extensions: [],
  modes: [],
  customizationService: {},
  showStudyList: true,
  maxNumberOfWebWorkers: 3,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  defaultDataSourceName: 'atrium',
  dataSources: [${dataSource('atrium', 'Atrium', true)}, ${dataSource(OHIF_EXACT_DATA_SOURCE, 'Atrium (exact match)', false)}],
};
`;

/**
 * OHIF's Content-Security-Policy: its own inline scripts by hash (they are part of the installed build),
 * WebAssembly for its image codecs, web workers from blob: URLs, and the inline styles its UI library
 * injects; data from this origin only. Also sent with its scripts, since a worker takes the policy of its
 * own script's response.
 */
export function viewerContentSecurityPolicy(indexHtml: string): string {
  const hashes = [...indexHtml.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)]
    .filter((m) => m[1].length > 0)
    .map((m) => `'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`);
  return [
    "default-src 'self'", ["script-src 'self'", ...hashes, "'wasm-unsafe-eval'"].join(' '), "worker-src 'self' blob:",
    "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob:", "font-src 'self' data:", "connect-src 'self' data: blob:",
    "object-src 'none'", "base-uri 'self'", "form-action 'self'", "frame-ancestors 'self'",
  ].join('; ');
}

/**
 * The access rules of these routes, composed by http/access.ts: the viewer's files are public, its data
 * (DICOMweb) is not.
 */
export const VIEWER_ROUTE_RULES: RouteRules = {
  'GET /': 'public',
  'GET /*': 'public',
  'GET /app-config.js': 'public',
};

/**
 * The OHIF viewer at `/`: its build uses absolute asset paths, so it is served from the root, with
 * index.html for every other path (its client-side routes, e.g. /viewer?StudyInstanceUIDs=...). Atrium's
 * own pages are at /admin. Without the viewer installed, `/` leads to /admin.
 */
export async function viewerRoutes(app: FastifyInstance): Promise<void> {
  const installed = existsSync(join(VIEWER_DIR, 'index.html'));
  const csp = installed ? viewerContentSecurityPolicy(readFileSync(join(VIEWER_DIR, 'index.html'), 'utf8')) : null;
  app.get('/app-config.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(APP_CONFIG));
  const serve = (path: string, reply: FastifyReply) => {
    if (!installed) return reply.redirect('/admin');
    const file = normalize(join(VIEWER_DIR, path));
    const inside = file.startsWith(VIEWER_DIR.endsWith(sep) ? VIEWER_DIR : VIEWER_DIR + sep);
    const target = inside && existsSync(file) && statSync(file).isFile() ? file : join(VIEWER_DIR, 'index.html');
    const type = TYPES[extname(target)] ?? 'application/octet-stream';
    // Bundles carry a content hash in their names: cache them; index.html must always be fresh.
    const cache = target.endsWith('index.html') ? 'no-cache' : 'public, max-age=86400';
    return reply.type(type).header('cache-control', cache).header('content-security-policy', csp).send(createReadStream(target));
  };
  app.get('/', async (_req, reply) => serve('index.html', reply));
  // The APIs' unknown paths stay 404 problems rather than turning into the viewer's page.
  const apis = /^(api|dicom-web|wado|metrics|admin|ui)(\/|$)/;
  app.get('/*', async (req, reply) => {
    const path = decodeURIComponent((req.params as { '*': string })['*']);
    return apis.test(path) ? reply.callNotFound() : serve(path, reply);
  });
}
