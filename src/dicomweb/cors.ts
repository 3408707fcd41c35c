/**
 * CORS (the Fetch standard's CORS protocol) for every DICOMweb route: QIDO-RS, WADO-RS, WADO-URI, rendered
 * resources, thumbnails and STOW-RS all register this one hook with the one list of allowed origins,
 * DicomwebOptions.corsOrigins, since viewers such as OHIF are often served from another origin.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { addVary } from './accept.ts';
import { headerText } from '../io/header-value.ts';

/** Any origin, the default: the data is behind credentials anyway, and viewers live elsewhere. */
export const DEFAULT_CORS_ORIGINS: readonly string[] = ['*'];

const EXPOSED_HEADERS = 'Content-Type, Content-Length, Content-Location, Content-Encoding, ETag, Warning, Location';
const ALLOWED_METHODS = 'GET, HEAD, POST, OPTIONS';

/** The Access-Control-Allow-Origin value for a request from `origin`, or undefined when it is not allowed. */
export function allowedOrigin(origins: readonly string[], origin: string | undefined): string | undefined {
  if (!origin) return undefined;
  if (origins.includes('*')) return '*';
  return origins.includes(origin) ? origin : undefined;
}

/**
 * Adds the CORS response header fields to every response of `scope` to an allowed origin. On send rather than
 * on request, so that answers made before the handler (401 and 403 of access control, errors) carry them too:
 * without them a browser hides the status from the viewer, which then cannot tell "sign in" from "offline".
 */
export function registerCors(scope: FastifyInstance, origins: readonly string[] = DEFAULT_CORS_ORIGINS): void {
  scope.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const allowed = allowedOrigin(origins, request.headers.origin);
    if (allowed === undefined) return payload;
    reply.header('access-control-allow-origin', allowed);
    if (allowed !== '*') addVary(reply, 'Origin');
    reply.header('access-control-expose-headers', EXPOSED_HEADERS);
    return payload;
  });
}

/** Answers preflight requests (OPTIONS) for every path under `scope`; the hook above adds the origin. */
export function registerPreflight(scope: FastifyInstance, origins: readonly string[] = DEFAULT_CORS_ORIGINS): void {
  scope.options('/*', async (request, reply) => {
    if (allowedOrigin(origins, request.headers.origin) !== undefined) {
      reply.header('access-control-allow-methods', ALLOWED_METHODS)
        .header('access-control-allow-headers', headerText(String(request.headers['access-control-request-headers'] ?? 'Accept, Authorization, Content-Type'), 1000))
        .header('access-control-max-age', '600');
    }
    return reply.status(204).send();
  });
}
