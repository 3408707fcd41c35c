import type { IndexStore } from '../ports/index-store.ts';
import type { DeliveredEvent } from '../events/event-map.ts';
import type { OrderService } from './order-service.ts';
import type { RisCore } from './ris-context.ts';

/**
 * Post-verification: an archived study is linked to its order by Accession Number, else by the Study
 * Instance UID the order was given (the worklist handed it to the modality). A study neither finds stays
 * unmatched and listed (GET /api/ris/unmatched-studies); it is never attached by patient name. A study whose
 * Patient ID (or issuer) is not the order's patient's is linked with a wrong-patient flag (OrderService.linkStudy),
 * never silently "fixed".
 * Idempotent (at-least-once delivery, every instance of a study): a study linked or listed once is skipped.
 */
export async function matchStudyToOrder(deps: { core: RisCore; orders: OrderService; index: IndexStore }, event: DeliveredEvent<'InstanceStored'>): Promise<void> {
  const uid = event.payload.studyInstanceUid;
  if (await deps.core.store.isStudyKnown(uid) === 'linked') return;
  const study = await deps.index.getStudy(uid);
  if (!study) return;
  await deps.core.change({ source: { kind: 'image', ref: uid }, principal: { kind: 'anonymous', id: null, displayName: 'ris.match-order' }, interface: 'dimse' }, async (unit) => {
    const byAccession = study.accessionNumber ? await unit.store.findOrder({ accessionNumber: study.accessionNumber }) : null;
    const byUid = byAccession ? null : await unit.store.findOrder({ studyInstanceUid: uid });
    const order = byAccession ?? byUid;
    if (!order) {
      await unit.store.recordUnmatched({ studyInstanceUid: uid, accessionNumber: study.accessionNumber, patientId: study.patient.patientId }, unit.now);
      return;
    }
    await deps.orders.linkStudy(unit, order, uid, byAccession ? 'accession' : 'study-uid');
  });
}
