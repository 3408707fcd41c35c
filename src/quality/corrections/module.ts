import type { Archive } from '../../app.ts';
import type { AtriumModule } from '../../modules/module.ts';
import { risOf } from '../../ris/module.ts';
import { sectionOf } from '../../config/config.ts';
import { SEND_JOB, type SendPayload } from '../../exchange/dicom-jobs.ts';
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
 * retried, audited as exports in the corrector's name). Queued once the correction committed.
 */
async function tellPeers(archive: Archive, record: CorrectionRecord, actor: Actor): Promise<void> {
  const { peers } = sectionOf(archive.config, correctionsConfig);
  for (const destination of peers) {
    for (const studyInstanceUid of record.studyInstanceUids) {
      if (!(await archive.index.getStudy(studyInstanceUid))) continue;
      await archive.jobs.enqueue<SendPayload>(SEND_JOB, { destination, studyInstanceUid, requestedBy: actor.principal, requestedThrough: actor.interface });
    }
  }
}

/** The identity corrections of an archive (one per archive, like the RIS). */
export function correctionsOf(archive: Archive): CorrectionService {
  let service = built.get(archive);
  if (!service) {
    service = new CorrectionService({
      store: new CorrectionStore(archive.database.kysely<any>()), ris: risOf(archive), audit: archive.audit,
      onCommitted: (record, actor) => tellPeers(archive, record, actor),
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
