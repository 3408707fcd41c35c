/**
 * The Store Instances Response entries of STOW-RS (PS3.18 Annex I) for what happened to each instance, the same
 * for both forms of the request (stow.ts, stow-bulkdata.ts).
 */
import type { IngestResult } from '../archive/ingest.ts';
import type { DicomwebServices } from './context.ts';

/** Failure Reason (0008,1197) values; stow.ts says when each is used. */
export const FailureReason = {
  ProcessingFailure: 0x0110,
  DuplicateSopInstance: 0x0111,
  SopClassNotSupported: 0x0122,
  OutOfResources: 0xa700,
  DataSetDoesNotMatchSopClass: 0xa900,
  CannotUnderstand: 0xc000,
  StudyInstanceUidMismatch: 0xc409,
  MissingBulkData: 0xa922,
} as const;

/** The outcome of one part of the request. */
export interface StowOutcome {
  part: number;
  /** How the Warning header names it, when not "part <n>" (a data set of the metadata form). */
  label?: string;
  stored: boolean;
  sopClassUid: string | null;
  sopInstanceUid: string | null;
  studyInstanceUid: string | null;
  seriesInstanceUid: string | null;
  /** Set on failure. */
  failureReason?: number;
  /** The whole reason, which may quote the object or the request: sent in the response body. */
  reason?: string;
  /**
   * What the `Warning` header field says of the failure: Atrium's own words (reason codes, tags, offsets), never
   * text taken from the object or the request, which is in `reason`.
   */
  warning?: string;
  /** What ingest said, when it got that far. */
  ingest?: IngestResult['status'];
  quarantineId?: number;
}

/** The UIDs the Store Instances Response names an instance by, as far as they are known. */
export interface InstanceIds {
  sopClassUid: string | null;
  sopInstanceUid: string | null;
  studyInstanceUid: string | null;
  seriesInstanceUid: string | null;
}

/** An error thrown by ingest (the disk, the index): out of resources or a processing failure, logged. */
export function ingestFailure(archive: DicomwebServices, error: unknown, index: number, ids: InstanceIds): StowOutcome {
  const code = (error as NodeJS.ErrnoException).code;
  archive.log.error({ err: error, part: index }, 'STOW-RS instance failed in ingest');
  const outOfResources = code === 'ENOSPC' || code === 'EDQUOT' || code === 'EMFILE';
  const reason = outOfResources ? `out of resources (${code})` : 'processing failure; see the server log';
  return failure(index, ids, outOfResources ? FailureReason.OutOfResources : FailureReason.ProcessingFailure, reason, reason);
}

/** What ingest said of an instance, as its Store Instances Response entry (the same for both forms of the request). */
export async function outcomeOf(archive: DicomwebServices, result: IngestResult, index: number, ids: InstanceIds): Promise<StowOutcome> {
  switch (result.status) {
    case 'stored':
      return { part: index, stored: true, sopClassUid: result.sopClassUid, sopInstanceUid: result.sopInstanceUid, studyInstanceUid: result.studyInstanceUid,
        seriesInstanceUid: result.seriesInstanceUid, ingest: 'stored' };
    case 'duplicate': {
      const series = ids.seriesInstanceUid ?? (await archive.index.findInstance(result.sopInstanceUid))?.seriesInstanceUid ?? null;
      return { part: index, stored: true, sopClassUid: result.sopClassUid, sopInstanceUid: result.sopInstanceUid, studyInstanceUid: result.studyInstanceUid,
        seriesInstanceUid: series, ingest: 'duplicate' };
    }
    case 'quarantined':
      return {
        ...failure(index, ids, failureReasonOf(result.reasonCode), `${result.reason} (quarantined as #${result.quarantineId})`,
          `${result.reasonCode}${result.element ? ` at ${result.element}` : ''}${result.byteOffset !== null ? `, offset ${result.byteOffset}` : ''}; quarantined as #${result.quarantineId}`),
        sopClassUid: result.sopClassUid ?? ids.sopClassUid,
        sopInstanceUid: result.sopInstanceUid ?? ids.sopInstanceUid,
        ingest: 'quarantined', quarantineId: result.quarantineId,
      };
    case 'rejected':
      return { ...failure(index, ids, failureReasonOf(result.reasonCode), `${result.reason} (refused, not kept)`, `${result.reasonCode}; refused, not kept`), ingest: 'rejected' };
    case 'skipped':
      return { ...failure(index, ids, FailureReason.CannotUnderstand, result.reason, 'not DICOM'), ingest: 'skipped' };
  }
}

/**
 * A failed part. `warning` is what the Warning header says: Atrium's words only (when `reason` quotes the object
 * or the request, a summary without the quote); the header helper makes it safe in any case.
 */
export function failure(part: number, ids: InstanceIds, failureReason: number, reason: string, warning: string): StowOutcome {
  return { part, stored: false, failureReason, reason, warning, ...ids };
}

/** Quarantine reason codes of the ingest pipeline to Failure Reason (0008,1197) values. */
export function failureReasonOf(reasonCode: string): number {
  switch (reasonCode) {
    case 'duplicate-conflict':
      return FailureReason.DuplicateSopInstance;
    case 'not-storable':
      return FailureReason.SopClassNotSupported;
    case 'missing-uid':
    case 'invalid-uid':
    case 'inconsistent-file-meta':
    case 'missing-file-meta':
      return FailureReason.DataSetDoesNotMatchSopClass;
    default:
      // Parse errors: not-dicom, truncated, invalid-vr, absurd-length, delimiter-mismatch, deflate-error...
      return FailureReason.CannotUnderstand;
  }
}
