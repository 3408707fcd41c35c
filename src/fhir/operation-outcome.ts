/**
 * The FHIR transport's one mapping of errors to the wire: an AtriumError (or what Fastify and the access
 * hook answer) becomes an OperationOutcome with the HTTP status of its code (R4 http.html "Error
 * handling", the issue-type value set http://hl7.org/fhir/R4/valueset-issue-type.html).
 */
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { AtriumError, type AtriumErrorCode } from '../errors.ts';

type IssueType = OperationOutcomeIssue['code'];

/** AtriumError code -> HTTP status and issue type: the same statuses as src/http/problem.ts. */
const BY_CODE: Readonly<Record<AtriumErrorCode, { status: number; issue: IssueType }>> = {
  'invalid-input': { status: 400, issue: 'invalid' },
  forbidden: { status: 403, issue: 'forbidden' },
  'not-found': { status: 404, issue: 'not-found' },
  'not-acceptable': { status: 406, issue: 'not-supported' },
  conflict: { status: 409, issue: 'conflict' },
  unprocessable: { status: 422, issue: 'processing' },
  unavailable: { status: 503, issue: 'transient' },
  internal: { status: 500, issue: 'exception' },
};

/** HTTP status -> issue type, for answers not made from an AtriumError (the access hook's, Fastify's). */
function issueOfStatus(status: number): IssueType {
  switch (status) {
    case 401: return 'login';
    case 403: return 'forbidden';
    case 404: return 'not-found';
    case 405: return 'not-supported';
    case 406: case 415: return 'not-supported';
    case 409: return 'conflict';
    case 412: return 'conflict';
    case 413: return 'too-costly';
    case 422: return 'processing';
    case 429: return 'throttled';
    case 503: return 'transient';
    default: return status >= 500 ? 'exception' : 'invalid';
  }
}

/** One issue; `expression` names the element or parameter concerned (FHIRPath, or the search parameter). */
export function outcome(issue: IssueType, diagnostics: string, options: { severity?: OperationOutcomeIssue['severity']; expression?: string[] } = {}): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: options.severity ?? 'error', code: issue, diagnostics, ...(options.expression?.length ? { expression: options.expression } : {}) }],
  };
}

/** An informational outcome (a successful write answered with `Prefer: return=OperationOutcome`). */
export function informational(diagnostics: string): OperationOutcome {
  return outcome('informational', diagnostics, { severity: 'information' });
}

/** The status and OperationOutcome of an error thrown by a FHIR route. */
export function outcomeOfError(error: unknown): { status: number; body: OperationOutcome; logged: boolean } {
  if (error instanceof AtriumError) {
    const { status, issue } = BY_CODE[error.code];
    const expression = typeof error.details?.expression === 'string' ? [error.details.expression] : undefined;
    return { status, body: outcome(issue, error.message, { expression }), logged: status >= 500 };
  }
  const fastify = error as { statusCode?: number; code?: string; message?: string };
  if (fastify?.statusCode && fastify.statusCode < 500) {
    // Fastify's own refusals: a body that is not JSON, a media type no parser takes, a body over the limit.
    const diagnostics = fastify.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? `${fastify.message}: send application/fhir+json`
      : fastify.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'the request body is empty: send a FHIR resource as application/fhir+json'
      : fastify.message ?? 'bad request';
    return { status: fastify.statusCode, body: outcome(issueOfStatus(fastify.statusCode), diagnostics), logged: false };
  }
  return { status: 500, body: outcome('exception', 'an unexpected error occurred; see the server log'), logged: true };
}

/**
 * The OperationOutcome of an RFC 9457 problem (what src/http/access.ts answers a refused request with,
 * before any FHIR handler runs): the same status, the problem's detail as the diagnostics.
 */
export function outcomeOfProblem(status: number, problem: { title?: string; detail?: string }): OperationOutcome {
  return outcome(issueOfStatus(status), problem.detail ?? problem.title ?? `HTTP ${status}`);
}

/** An AtriumError naming the search parameter or element at fault (put in OperationOutcome.issue.expression). */
export function invalid(message: string, expression?: string): AtriumError {
  return new AtriumError('invalid-input', message, expression ? { expression } : undefined);
}
