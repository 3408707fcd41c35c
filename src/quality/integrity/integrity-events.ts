/**
 * The integrity monitor's event handlers (at least once, in order per study: each re-runs checks, which is
 * idempotent). Names are stored with pending deliveries: keep them stable.
 * - InstanceStored: the study-level checks once per study (on its first instance; its attributes are those of
 *   the first instance), and the UID-conflict checks whenever the instance came with another Patient ID than
 *   its study's, or into a series of another study.
 * - InstanceQuarantined: the SOP Instance conflicts.
 * - OrderStatusChanged: the order and its studies (an order placed resolves an orphan, images arriving an order
 *   without images; a changed patient may make or clear an identity mismatch).
 * - StudyStable (emitted by src/workflow/): every check of the study.
 * - StudyDeleted: every check of the study (what it found is resolved as no longer detected).
 * - PatientMerged (src/ris/patient-service.ts): every check of both patients' studies.
 * - IdentityCorrected (src/quality/corrections/): every check of the studies concerned; what no longer holds is
 *   resolved "by correction #N".
 */
import { on, type EventHandler } from '../../events/event-map.ts';
import type { Database } from '../../database/database.ts';
import type { IntegrityKind } from '../config.ts';
import { IntegrityService } from './integrity-service.ts';

const FIRST_SIGHT: readonly IntegrityKind[] = ['identity-mismatch', 'key-attributes', 'duplicate-study', 'orphan-study'];
const ORDER_KINDS: readonly IntegrityKind[] = ['identity-mismatch', 'orphan-study', 'order-without-images', 'duplicate-study'];
const ALL_BUT_QUARANTINE: readonly IntegrityKind[] = [...IntegrityService.STUDY_KINDS, 'order-without-images'];

export function integrityEventHandlers(service: IntegrityService, database: Database): EventHandler[] {
  const db = database.kysely<any>();
  return [
    on('InstanceStored', 'quality.integrity-instance', async (event) => {
      const p = event.payload;
      const series = await db.selectFrom('series as se').innerJoin('study as s', 's.pk', 'se.study_pk').innerJoin('patient as pt', 'pt.pk', 's.patient_pk')
        .select(['s.pk as study_pk', 's.study_instance_uid', 'pt.patient_id']).where('se.series_instance_uid', '=', p.seriesInstanceUid).executeTakeFirst();
      if (!series) return; // deleted meanwhile
      const kinds = new Set<IntegrityKind>();
      if (series.study_instance_uid !== p.studyInstanceUid) kinds.add('series-uid-conflict');
      if ((series.patient_id ?? '') !== (p.patientId ?? '')) kinds.add('study-uid-conflict');
      const first = await db.selectFrom('instance as i').innerJoin('series as se', 'se.pk', 'i.series_pk').select('i.sop_instance_uid')
        .where('se.study_pk', '=', series.study_pk).orderBy('i.pk').limit(1).executeTakeFirst();
      if (first?.sop_instance_uid === p.sopInstanceUid) for (const k of FIRST_SIGHT) kinds.add(k);
      if (kinds.size === 0) return;
      await service.check({ studies: [series.study_instance_uid], accessions: [] }, 'event:InstanceStored', { kinds: [...kinds] });
    }),
    on('InstanceQuarantined', 'quality.integrity-quarantine', async (event) => {
      if (event.payload.reasonCode !== 'duplicate-conflict') return;
      await service.check({ studies: [], accessions: [] }, 'event:InstanceQuarantined', { kinds: ['sop-instance-conflict'] });
    }),
    on('OrderStatusChanged', 'quality.integrity-order', async (event) => {
      await service.check({ studies: [event.payload.studyInstanceUid], accessions: [event.payload.accessionNumber] }, 'event:OrderStatusChanged', { kinds: ORDER_KINDS });
    }),
    on('StudyStable', 'quality.integrity-study-stable', async (event) => {
      await service.check({ studies: [event.payload.studyInstanceUid], accessions: event.payload.accessionNumber ? [event.payload.accessionNumber] : [] }, 'event:StudyStable', { kinds: ALL_BUT_QUARANTINE });
    }),
    on('StudyDeleted', 'quality.integrity-study-deleted', async (event) => {
      await service.check({ studies: [event.payload.studyInstanceUid], accessions: [] }, 'event:StudyDeleted', { kinds: ALL_BUT_QUARANTINE });
    }),
    on('PatientMerged', 'quality.integrity-patient-merged', async (event) => {
      const studies = await service.studiesOfPatients([event.payload.survivorPatientId, event.payload.mergedPatientId]);
      await service.check({ studies, accessions: [] }, 'event:PatientMerged', { kinds: ALL_BUT_QUARANTINE });
    }),
    on('IdentityCorrected', 'quality.integrity-corrected', async (event) => {
      const e = event.payload;
      const studies = [...new Set([...e.studyInstanceUids, ...(await service.studiesOfPatients(e.patientIds))])];
      await service.check({ studies, accessions: [] }, 'event:IdentityCorrected', {
        kinds: ALL_BUT_QUARANTINE,
        resolution: e.undone ? { text: `no longer detected (correction #${e.correctionId} undone)`, correctionId: null } : { text: `resolved by correction #${e.correctionId}`, correctionId: e.correctionId },
      });
    }),
  ];
}
