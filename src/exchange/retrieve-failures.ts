/**
 * Which retrieve failures a retry can fix. Transient: the peer or the network is down or busy (connection
 * refused, timeout, association lost or rejected-transient, out of resources on either side); the job is
 * retried with backoff. Permanent: the peer refuses or cannot do what is asked (association rejected-permanent,
 * the C-MOVE/C-GET context not accepted, not authorized, SOP class not supported, move destination unknown,
 * identifier not understood, sub-operations it could not even attempt in the transfer syntaxes negotiated, i.e.
 * it cannot transcode) or Atrium cannot store what came (malformed or conflicting objects); asking again gives
 * the same answer, so the job fails at once with the reason.
 */
import { AssociationRejectedError } from '../dimse/association.ts';
import { DimseError } from '../dimse/message-streams.ts';
import { OperationNotAcceptedError, type RetrieveResult } from '../dimse/services/scu.ts';
import { describeStatus, statusCategory, Status } from '../dimse/status.ts';
import { AtriumError } from '../errors.ts';

export type FailureKind = 'permanent' | 'transient';

export interface RetrieveFailure {
  kind: FailureKind;
  reason: string;
}

/** Final statuses that say the request itself is refused or not understood (PS3.4 C.4.2.1.5, C.4.3.1.4; PS3.7 C). */
const PERMANENT_STATUSES = new Set<number>([
  Status.SOPClassNotSupported, // 0122
  Status.NotAuthorized, // 0124
  Status.UnrecognizedOperation, // 0211
  Status.MistypedArgument, // 0212
  Status.MoveDestinationUnknown, // A801
  Status.IdentifierDoesNotMatchSOPClass, // A900
]);

/** The failure of a completed C-MOVE/C-GET, or null when it succeeded (every sub-operation completed or with a warning). */
export function classifyRetrieveResult(method: 'move' | 'get', source: string, result: RetrieveResult): RetrieveFailure | null {
  const op = `C-${method.toUpperCase()} from ${source}`;
  const category = statusCategory(result.status);
  if (category !== 'failure' && result.failed === 0) return null;
  const counts = `${result.completed} completed, ${result.failed} failed, ${result.warning} warning`;
  const said = `${describeStatus(result.status)}${result.errorComment ? ` (${result.errorComment})` : ''}`;
  const failedList = result.failedSopInstanceUids?.length
    ? `; failed: ${result.failedSopInstanceUids.slice(0, 5).join(', ')}${result.failedSopInstanceUids.length > 5 ? ` and ${result.failedSopInstanceUids.length - 5} more` : ''}`
    : '';
  if (PERMANENT_STATUSES.has(result.status)) {
    return { kind: 'permanent', reason: `${op} refused: ${said}, ${counts}${failedList}` };
  }
  if (result.status === Status.OutOfResources || (result.status & 0xff00) === 0xa700) {
    return { kind: 'transient', reason: `${op}: ${said}, ${counts}${failedList}` };
  }
  if (method === 'get' && result.stores && result.failed > 0) {
    const { received, failedTransient, failedPermanent } = result.stores;
    // Sub-operations the peer counts as failed without having sent them: it has the objects but cannot send them
    // in any presentation context we accepted (it would have to transcode and cannot). No retry changes contexts.
    const neverSent = Math.max(0, result.failed - failedTransient - failedPermanent);
    if (failedTransient > 0) {
      return { kind: 'transient', reason: `${op}: ${failedTransient} of the objects received could not be stored (out of resources), ${counts}${failedList}` };
    }
    if (neverSent > 0) {
      return {
        kind: 'permanent',
        reason: `${op}: ${said}; ${neverSent} sub-operation(s) failed without the object reaching Atrium (${received} received): ` +
          `the peer cannot send it in a transfer syntax negotiated for its class (it cannot transcode it), ${counts}${failedList}`,
      };
    }
    return { kind: 'permanent', reason: `${op}: ${failedPermanent} object(s) received could not be stored (malformed or conflicting; see the quarantine), ${counts}${failedList}` };
  }
  // C-MOVE sub-operations go to our SCP on other associations: why they failed is not known here.
  return { kind: 'transient', reason: `${op}: ${said}, ${counts}${failedList}` };
}

/** An error thrown while retrieving: permanent or transient, with the reason. */
export function classifyRetrieveError(error: unknown): RetrieveFailure {
  const message = (error as Error)?.message ?? String(error);
  if (error instanceof AssociationRejectedError) {
    // PS3.8 9.3.4: result 1 rejected-permanent, 2 rejected-transient.
    return { kind: error.result === 1 ? 'permanent' : 'transient', reason: message };
  }
  if (error instanceof OperationNotAcceptedError) return { kind: 'permanent', reason: message };
  if (error instanceof AtriumError && (error.code === 'not-found' || error.code === 'invalid-input' || error.code === 'forbidden')) {
    return { kind: 'permanent', reason: message };
  }
  if (error instanceof DimseError) {
    // Timeouts, lost connections, aborts: the network or the peer's state; a protocol error may be a peer's glitch too.
    return { kind: 'transient', reason: message };
  }
  // Connection refused, host unreachable, DNS, anything unknown: worth another try.
  return { kind: 'transient', reason: message };
}

/** An Error for the job runner: `retryable` false for a permanent failure (the job fails at once). */
export function retrieveFailureError(failure: RetrieveFailure): Error & { retryable: boolean; kind: FailureKind } {
  const text = failure.kind === 'permanent' ? `permanent failure, not retried: ${failure.reason}` : failure.reason;
  return Object.assign(new Error(text), { retryable: failure.kind === 'transient', kind: failure.kind });
}
