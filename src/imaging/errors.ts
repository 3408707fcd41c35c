/**
 * 406 Not Acceptable: the object cannot be given in the form asked (a transfer syntax this server cannot
 * decode, a rendered media type it does not produce, a rendering of something that is not an image). Not an
 * AtriumError because its code set has no such status; the HTTP problem mapping (src/http/problem.ts) turns
 * any error carrying a 4xx `statusCode` into that status, and other transports can test `instanceof`.
 */
export class NotAcceptableError extends Error {
  readonly statusCode = 406;
  readonly code = 'Not Acceptable';
  readonly details?: Record<string, unknown>;
  constructor(message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'NotAcceptableError';
    this.details = details;
  }
}
