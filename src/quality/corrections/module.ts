import type { Archive } from '../../app.ts';
import type { AtriumModule } from '../../modules/module.ts';
import { risOf } from '../../ris/module.ts';
import { sectionOf } from '../../config/config.ts';
import { SEND_JOB, type BuiltObject, type SendPayload } from '../../exchange/dicom-jobs.ts';
import { rejectionNotesFor } from './rejection-notes.ts';
import { correctionsConfig } from './config.ts';
import type { Actor } from './correction-service.ts';
import type { CorrectionRecord } from './correction-store.ts';
import { migration as identityCorrections } from './migrations/0026_corrections_records.ts';
import { CorrectionService } from './correction-service.ts';
import { CorrectionStore } from './correction-store.ts';
import { CORRECTION_ROUTE_RULES, correctionRoutes } from './correction-routes.ts';

const built = new WeakMap<Archive, CorrectionService>();

/**
 * Peers are told: each configured peer is sent every study the correction touched, as served now (corrected, or
 * as stored again after an undo), by one durable send job per peer and study (src/exchange/dicom-jobs.ts:
 * retried, audited as exports in the corrector's name). Peers listed in `rejectionNotes` get, first in the same
 * job, a Rejection Note (KOS "Rejected for Patient Safety Reasons") for the instances of the study the
 * correction replaced (src/quality/corrections/rejection-notes.ts). Queued once the correction committed.
 */
async function tellPeers(archive: Archive, store: CorrectionStore, record: CorrectionRecord, actor: Actor): Promise<void> {
  const { peers, rejectionNotes } = sectionOf(archive.config, correctionsConfig);
  const notes = new Map<string, BuiltObject[]>();
  const at = new Date();
  for (const destination of peers) {
    for (const studyInstanceUid of record.studyInstanceUids) {
      if (!(await archive.index.getStudy(studyInstanceUid))) continue;
      let objects: BuiltObject[] = [];
      if (rejectionNotes.includes(destination)) {
        // One note per study, the same for every peer (its SOP Instance UID too).
        if (!notes.has(studyInstanceUid)) notes.set(studyInstanceUid, await rejectionNotesFor(record, studyInstanceUid, { store, index: archive.index, at }));
        objects = notes.get(studyInstanceUid)!;
      }
      await archive.jobs.enqueue<SendPayload>(SEND_JOB, {
        destination, studyInstanceUid, requestedBy: actor.principal, requestedThrough: actor.interface, ...(objects.length ? { objects } : {}),
      });
    }
  }
}

/** The identity corrections of an archive (one per archive, like the RIS). */
export function correctionsOf(archive: Archive): CorrectionService {
  let service = built.get(archive);
  if (!service) {
    const store = new CorrectionStore(archive.database.kysely<any>());
    service = new CorrectionService({
      store, ris: risOf(archive), audit: archive.audit,
      onCommitted: (record, actor) => tellPeers(archive, store, record, actor),
    });
    built.set(archive, service);
  }
  return service;
}

/**
 * Identity corrections (issue 11, docs/corrections.md): move a study or series, edit patient or study
 * attributes, merge, split, link an order; each recorded, audited, undoable, served with the corrected values
 * and the replaced ones in an Original Attributes Sequence (src/archive/retrieve.ts).
 */
export const correctionsModule: AtriumModule = {
  name: 'corrections',
  migrations: [identityCorrections],
  config: correctionsConfig,
  routeRules: CORRECTION_ROUTE_RULES,
  httpRoutes: async (app, archive) => {
    await correctionRoutes(app, correctionsOf(archive), archive.audit);
  },
};
