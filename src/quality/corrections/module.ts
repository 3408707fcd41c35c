import type { Archive } from '../../app.ts';
import type { AtriumModule } from '../../modules/module.ts';
import { risOf } from '../../ris/module.ts';
import { migration as identityCorrections } from './migrations/0026_corrections_records.ts';
import { CorrectionService } from './correction-service.ts';
import { CorrectionStore } from './correction-store.ts';
import { CORRECTION_ROUTE_RULES, correctionRoutes } from './correction-routes.ts';

const built = new WeakMap<Archive, CorrectionService>();

/** The identity corrections of an archive (one per archive, like the RIS). */
export function correctionsOf(archive: Archive): CorrectionService {
  let service = built.get(archive);
  if (!service) {
    service = new CorrectionService({ store: new CorrectionStore(archive.database.kysely<any>()), ris: risOf(archive), audit: archive.audit });
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
  routeRules: CORRECTION_ROUTE_RULES,
  httpRoutes: async (app, archive) => {
    await correctionRoutes(app, correctionsOf(archive), archive.audit);
  },
};
