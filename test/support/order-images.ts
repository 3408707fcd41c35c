// Images for an order, as the RIS sees them arrive: one synthetic CT instance stored through the ingest
// pipeline, then its InstanceStored delivered to the RIS's matching handler as the outbox dispatcher would.
import assert from 'node:assert/strict';
import type { Archive } from '../../src/app.ts';
import { syntheticInstance } from '../../src/synthetic/synthetic-instance.ts';

export interface ArrivingInstance {
  patientId: string;
  issuerOfPatientId?: string;
  patientName?: string;
  accessionNumber: string;
  studyInstanceUid: string;
  /** Default `<study>.1`. */
  seriesInstanceUid?: string;
  /** Default `<series>.1`. */
  sopInstanceUid?: string;
}

/** Stores one synthetic CT instance and delivers its InstanceStored to the RIS handler (ris.match-order). */
export async function arrive(archive: Archive, o: ArrivingInstance): Promise<void> {
  const { seriesInstanceUid = `${o.studyInstanceUid}.1`, sopInstanceUid = `${seriesInstanceUid}.1`, ...patientAndStudy } = o;
  const result = await archive.ingest.ingest(syntheticInstance({ ...patientAndStudy, seriesInstanceUid, sopInstanceUid, modality: 'CT', rows: 8, columns: 8 }), { source: 'test' });
  assert.equal(result.status, 'stored');
  const handler = archive.eventHandlers.find((h) => h.name === 'ris.match-order')!;
  await handler.handle({ id: 1, type: 'InstanceStored', attempt: 1, createdAt: new Date().toISOString(),
    payload: { studyInstanceUid: o.studyInstanceUid, seriesInstanceUid, sopInstanceUid, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', patientId: o.patientId, source: 'test' } } as any);
}
