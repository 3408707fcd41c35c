/**
 * Dose extraction on ingest: the `quality.dose-extract` handler of InstanceStored. A stored object of a
 * SOP class that can carry a dose report is read through the archive's one read path (RetrieveService),
 * parsed by the codec and extracted (dose-extraction.ts); the report, its events and the alerts it raises
 * are stored in one transaction, then each alert is handed to the quality notifier (src/quality/notifier.ts).
 *
 * At least once: the report is keyed on its SOP Instance UID, so a redelivered event (or a second node)
 * extracts nothing more, and the queueing step, which runs again, finds its notification rows. Reports do
 * not depend on the images: a dose SR that arrives before, with or after them is extracted the same, and is
 * linked to its study by the Study Instance UID.
 */
import type { Logger } from 'pino';
import { AtriumError } from '../../errors.ts';
import { DicomParseError } from '../../dicom/errors.ts';
import type { DeliveredEvent } from '../../events/event-map.ts';
import type { DoseSettings } from '../config.ts';
import { DOSE_CARRYING_SOP_CLASSES } from './dose-codes.ts';
import type { DoseExtraction } from './dose-extraction.ts';
import { readDoseReport } from './read-dose-report.ts';
import type { SqlDoseStore } from './sql-dose-store.ts';

export interface DoseExtractionDeps {
  store: SqlDoseStore;
  /** Queues the notifications of these alerts not queued yet (QualityNotifier.notify). */
  notify: (alertIds: number[]) => Promise<number>;
  openInstance: (sopInstanceUid: string) => Promise<{ bytes: AsyncIterable<Uint8Array> }>;
  settings: () => DoseSettings;
  log: Logger;
  onExtracted?: (modality: string, alerts: number) => void;
}

export type DoseOutcome = { outcome: 'not-a-dose-sop-class' } | { outcome: 'no-dose'; reason: string } | { outcome: 'extracted' | 'already-extracted'; reportId: number; alerts: number };

export async function extractOnStore(deps: DoseExtractionDeps, event: DeliveredEvent<'InstanceStored'>): Promise<DoseOutcome> {
  const p = event.payload;
  if (!DOSE_CARRYING_SOP_CLASSES.includes(p.sopClassUid)) return { outcome: 'not-a-dose-sop-class' };
  const now = new Date();
  const settings = deps.settings();
  const existing = await deps.store.reportBySopInstanceUid(p.sopInstanceUid);
  let reportId: number;
  let created = false;
  if (existing) {
    reportId = existing.id;
  } else {
    let bytes: AsyncIterable<Uint8Array>;
    try {
      ({ bytes } = await deps.openInstance(p.sopInstanceUid));
    } catch (error) {
      // Deleted (or replaced) before its event came round: nothing left to read, and retrying would hold the study's later events.
      if (error instanceof AtriumError && error.code === 'not-found') return { outcome: 'no-dose', reason: 'the instance is no longer stored' };
      throw error;
    }
    const started = performance.now();
    let extraction: DoseExtraction;
    try {
      extraction = await readDoseReport(bytes);
    } catch (error) {
      // The ingest parsed it once already; should the codec still refuse it, retrying would not change that.
      if (error instanceof DicomParseError) {
        deps.log.warn({ sopInstanceUid: p.sopInstanceUid, code: error.code, err: error.message }, 'dose SR could not be parsed: not extracted');
        return { outcome: 'no-dose', reason: `not parsed: ${error.message}` };
      }
      throw error;
    }
    if (!extraction.dose) {
      deps.log.info({ sopInstanceUid: p.sopInstanceUid, sopClassUid: p.sopClassUid, reason: extraction.reason }, 'SR carries no radiation dose report');
      return { outcome: 'no-dose', reason: extraction.reason };
    }
    const saved = await deps.store.saveReport(extraction, { eventId: event.id, drlPercent: settings.drlPercent, ctdivolAlertMgy: settings.ctdivolAlertMgy, now });
    reportId = saved.reportId;
    created = saved.created;
    deps.log.info({ sopInstanceUid: p.sopInstanceUid, studyInstanceUid: p.studyInstanceUid, modality: extraction.modality, events: extraction.events.length,
      alerts: saved.alerts, ms: Number((performance.now() - started).toFixed(1)) }, created ? 'dose report extracted' : 'dose report already extracted');
    if (created) deps.onExtracted?.(extraction.modality, saved.alerts);
  }
  const alerts = await deps.store.alertsOfReport(reportId);
  await deps.notify(alerts.map((a) => a.id));
  return { outcome: created ? 'extracted' : 'already-extracted', reportId, alerts: alerts.length };
}
