import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Association, IncomingRequest } from '../association.ts';
import { CommandField } from '../command.ts';
import { Status, describeStatus } from '../status.ts';
import { AtriumError } from '../../errors.ts';
import { queryFromIdentifier } from '../../dicom/query/identifier.ts';
import type { IndexStore } from '../../ports/index-store.ts';
import { readIdentifier, encodeJsonDataset, answerCharacterSet } from './identifier.ts';
import { characterSetOf } from '../../dicom/dataset.ts';
import { QueryRetrieve, queryRetrieveExtendedNegotiation, queryRoot } from './sop-classes.ts';
import type { IndexQuery } from '../../dicom/query/model.ts';
import type { AuditService } from '../../audit/audit-service.ts';
import { auditAside, uncompressedTransferSyntax, type DimseService } from './dimse-service.ts';

export interface FindDeps {
  index: IndexStore;
  log: Logger;
  aeTitle: string;
  caseInsensitivePersonNames: boolean;
  /** Told the query once the identifier is understood (the audit record of the search). */
  onQuery?: (query: IndexQuery) => void;
}

/** The Query/Retrieve C-FIND SCP, Patient Root and Study Root; every query is in the audit trail. */
export function queryService(deps: Omit<FindDeps, 'onQuery'> & { audit: AuditService }): DimseService {
  const FIND = new Set<string>([QueryRetrieve.PatientRootFind, QueryRetrieve.StudyRootFind]);
  return {
    name: 'query',
    accepts: (pc) => FIND.has(pc.abstractSyntax),
    commands: [CommandField.C_FIND_RQ],
    operation: 'find',
    action: 'query',
    auditAction: 'query',
    transferSyntax: uncompressedTransferSyntax,
    extendedNegotiation: queryRetrieveExtendedNegotiation,
    async handle({ request, association, audit, signal }) {
      const onQuery = (query: IndexQuery) => { void auditAside(deps.audit.record({ ...audit, action: 'query', query: JSON.stringify(query) }), deps.log); };
      await handleFind(request, association, { ...deps, onQuery }, signal);
    },
  };
}

/**
 * C-FIND SCP (PS3.4 C.4.1): the identifier becomes one IndexQuery (the model QIDO-RS shares), answered
 * from the index alone; one pending response per match, then the final one. A C-CANCEL received while
 * matches are still being sent stops them: the final status is then Cancel (0xFE00, C.4.1.3.1).
 */
export async function handleFind(request: IncomingRequest, association: Association, deps: FindDeps, signal: AbortSignal): Promise<void> {
  const sopClass = request.presentationContext.abstractSyntax;
  const context = { association: association.id, callingAE: association.callingAETitle, messageId: request.command.MessageID };
  const final = (status: number, extra: Record<string, unknown> = {}) =>
    association.respond(request, { CommandField: CommandField.C_FIND_RSP, Status: status, ...extra });
  let query;
  let requestedCharacterSet: string[] | undefined;
  try {
    const identifier = await readIdentifier(request);
    requestedCharacterSet = characterSetOf(identifier);
    const relational = (association.acceptedExtendedNegotiation.get(sopClass)?.[0] ?? 0) === 1;
    query = queryFromIdentifier(identifier, undefined, {
      root: queryRoot(sopClass) ?? 'STUDY', relational, caseInsensitivePersonNames: deps.caseInsensitivePersonNames,
    });
  } catch (error) {
    const detail = (error as Error).message;
    const tag = error instanceof AtriumError ? Number.parseInt(String(error.details?.tag ?? ''), 16) : NaN;
    deps.log.warn({ ...context, reason: detail }, `C-FIND refused: ${describeStatus(Status.IdentifierDoesNotMatchSOPClass)}`);
    await final(Status.IdentifierDoesNotMatchSOPClass, { ErrorComment: detail.slice(0, 64), ...(Number.isFinite(tag) ? { OffendingElement: [tag] } : {}) });
    return;
  }
  deps.onQuery?.(query);
  let matches = 0;
  let cancelled = false;
  try {
    for await (const match of deps.index.find(query)) {
      // A match is in hand and not sent: stopping here is a real cancel, not one that came after the last match.
      if (signal.aborted) { cancelled = true; break; }
      // Where the matches can be retrieved from (PS3.4 C.4.1.1.3.2): this AE.
      match['00080054'] = { vr: 'AE', Value: [deps.aeTitle] };
      await association.respond(request, { CommandField: CommandField.C_FIND_RSP, Status: Status.Pending },
        encodeJsonDataset(answerCharacterSet(match, requestedCharacterSet), request.presentationContext.transferSyntax));
      matches++;
      // The index hands over a batch of matches without a turn of the event loop (SQLite answers synchronously)
      // and a socket write completes at once while the kernel takes it: without this yield no C-CANCEL-RQ would
      // be read before the last match was sent.
      await nextTurn();
    }
  } catch (error) {
    if (!association.isOpen) return;
    deps.log.error({ ...context, err: error }, `C-FIND failed: ${describeStatus(Status.UnableToProcess)}`);
    await final(Status.UnableToProcess, { ErrorComment: 'the archive could not answer the query' });
    return;
  }
  deps.log.info({ ...context, level: query.level, keys: query.keys.filter((k) => k.value !== '').length, matches, cancelled }, 'C-FIND done');
  await final(cancelled ? Status.Cancel : Status.Success);
}
