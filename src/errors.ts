/**
 * The one error type services raise. Each transport maps `code` once to its wire form: an HTTP problem+json
 * status, a DICOM status, an HL7 ACK error or a FHIR OperationOutcome.
 */
export type AtriumErrorCode =
  | 'invalid-input'
  | 'not-found'
  | 'conflict'
  | 'unavailable'
  | 'forbidden'
  /** The thing exists but cannot be given in the form asked (media type, transfer syntax, rendering). */
  | 'not-acceptable'
  /** Well-formed and understood, and still not done: the object it names cannot be processed (a quarantined object that fails ingest again). */
  | 'unprocessable'
  | 'internal';

export class AtriumError extends Error {
  readonly code: AtriumErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: AtriumErrorCode, message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AtriumError';
    this.code = code;
    this.details = details;
  }
}
