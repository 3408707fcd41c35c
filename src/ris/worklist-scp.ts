import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import { CommandField } from '../dimse/command.ts';
import { Status, describeStatus } from '../dimse/status.ts';
import { AtriumError } from '../errors.ts';
import { identifierKeys } from '../dicom/query/identifier.ts';
import type { AuditService } from '../audit/audit-service.ts';
import { answerCharacterSet, encodeJsonDataset, readIdentifier } from '../dimse/services/identifier.ts';
import { characterSetOf } from '../dicom/dataset.ts';
import { auditAside, uncompressedTransferSyntax, type DimseService } from '../dimse/services/dimse-service.ts';
import { worklistQuery, worklistResponse } from './worklist-query.ts';
import type { SqlWorklistStore } from './sql-worklist-store.ts';

/** Modality Worklist Information Model - FIND (PS3.4 K.6.1.2). */
export const ModalityWorklistFind = '1.2.840.10008.5.1.4.31';

export interface WorklistDeps {
  worklist: SqlWorklistStore;
  audit: AuditService;
  log: Logger;
  caseInsensitivePersonNames: boolean;
}

/**
 * The Modality Worklist SCP (PS3.4 K): C-FIND on the open scheduled procedure steps, one pending response
 * per step (with its order and patient), then the final status. A calling AE needs the `find` operation in
 * the AE registry (the operation C-FIND has); a user (User Identity) needs `order:read`. Every query is in
 * the audit trail, like the archive's C-FIND.
 */
export function worklistService(deps: WorklistDeps): DimseService {
  return {
    name: 'worklist',
    accepts: (pc) => pc.abstractSyntax === ModalityWorklistFind,
    commands: [CommandField.C_FIND_RQ],
    operation: 'find',
    action: 'order:read',
    auditAction: 'query',
    transferSyntax: uncompressedTransferSyntax,
    async handle({ request, association, audit, signal }) {
      const context = { association: association.id, callingAE: association.callingAETitle, messageId: request.command.MessageID };
      const final = (status: number, extra: Record<string, unknown> = {}) =>
        association.respond(request, { CommandField: CommandField.C_FIND_RSP, Status: status, ...extra });
      let query;
      let requestedCharacterSet: string[] | undefined;
      try {
        const identifier = await readIdentifier(request);
        requestedCharacterSet = characterSetOf(identifier);
        const keys = identifierKeys(identifier);
        query = worklistQuery(keys, { caseInsensitivePersonNames: deps.caseInsensitivePersonNames });
      } catch (error) {
        const detail = (error as Error).message;
        const tag = error instanceof AtriumError ? Number.parseInt(String(error.details?.tag ?? ''), 16) : NaN;
        deps.log.warn({ ...context, reason: detail }, `worklist C-FIND refused: ${describeStatus(Status.IdentifierDoesNotMatchSOPClass)}`);
        await final(Status.IdentifierDoesNotMatchSOPClass, { ErrorComment: detail.slice(0, 64), ...(Number.isFinite(tag) ? { OffendingElement: [tag] } : {}) });
        return;
      }
      void auditAside(deps.audit.record({
        ...audit, action: 'query', query: JSON.stringify({ model: 'worklist', keys: query.keys.filter((k) => k.value !== '' || k.items?.[0]?.length) }),
      }), deps.log);
      // Pending with a warning when a key asked for matching Atrium does not match on (PS3.4 C.4.1.1.4, Table C.4-1).
      const pending = query.unsupported.length ? Status.PendingWarning : Status.Pending;
      let matches = 0;
      let cancelled = false;
      try {
        for await (const row of deps.worklist.find(query)) {
          if (signal.aborted) { cancelled = true; break; }
          await association.respond(request, { CommandField: CommandField.C_FIND_RSP, Status: pending },
            encodeJsonDataset(answerCharacterSet(worklistResponse(row, query), requestedCharacterSet), request.presentationContext.transferSyntax));
          matches++;
          // Lets a C-CANCEL-RQ be read between matches (see handleFind in src/dimse/services/find-scp.ts).
          await nextTurn();
        }
      } catch (error) {
        if (!association.isOpen) return;
        deps.log.error({ ...context, err: error }, `worklist C-FIND failed: ${describeStatus(Status.UnableToProcess)}`);
        await final(Status.UnableToProcess, { ErrorComment: 'the worklist could not be read' });
        return;
      }
      deps.log.info({ ...context, matches, cancelled, unsupported: query.unsupported.length }, 'worklist C-FIND done');
      await final(cancelled ? Status.Cancel : Status.Success);
    },
  };
}
