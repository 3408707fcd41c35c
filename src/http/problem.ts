import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AtriumError, type AtriumErrorCode } from '../errors.ts';
import { BlobNotFoundError } from '../ports/blob-store.ts';

const STATUS: Record<AtriumErrorCode, number> = {
  'invalid-input': 400,
  forbidden: 403,
  'not-found': 404,
  'not-acceptable': 406,
  conflict: 409,
  unprocessable: 422,
  unavailable: 503,
  internal: 500,
};

/** Every HTTP error leaves as RFC 9457 problem+json: one mapping for all routes. */
export function sendProblem(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  let status = 500;
  let title = 'Internal Server Error';
  let detail = 'an unexpected error occurred; see the server log';
  let extra: Record<string, unknown> = {};
  if (error instanceof AtriumError) {
    status = STATUS[error.code];
    title = error.code;
    detail = error.message;
    extra = error.details ?? {};
  } else if (error instanceof BlobNotFoundError) {
    status = 500;
    title = 'stored object missing';
    detail = 'the index points at an object the blob store does not have; run `atrium verify`';
  } else if ((error as FastifyError).statusCode && (error as FastifyError).statusCode! < 500) {
    status = (error as FastifyError).statusCode!;
    title = (error as FastifyError).code ?? 'Bad Request';
    detail = error.message;
  }
  if (status >= 500) request.log.error({ err: error }, 'request failed');
  return reply.status(status).type('application/problem+json').send({ type: 'about:blank', title, status, detail, instance: request.url, ...extra });
}
