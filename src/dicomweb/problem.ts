/**
 * DICOMweb errors: thrown from handlers and turned into RFC 9457 problem+json by the app's error handler
 * (src/http/problem.ts), which maps any error carrying a 4xx `statusCode` to that status.
 */
import { AtriumError } from '../errors.ts';

export class HttpError extends Error {
  readonly statusCode: number;
  readonly code: string;
  constructor(statusCode: number, title: string, detail: string) {
    super(detail);
    this.name = 'HttpError';
    this.statusCode = statusCode;
    this.code = title;
  }
}

export const notAcceptable = (detail: string) => new AtriumError('not-acceptable', detail);
export const badRequest = (detail: string) => new AtriumError('invalid-input', detail);
export const notFound = (detail: string) => new AtriumError('not-found', detail);
