import { Counter, Gauge } from 'prom-client';
import type { Archive } from '../app.ts';
import type { AtriumModule } from '../modules/module.ts';
import { sectionOf } from '../config/config.ts';
import { on } from '../events/event-map.ts';
import { migration as doseReports } from './migrations/0020_quality_dose_reports.ts';
import { migration as doseAlerts } from './migrations/0021_quality_dose_alerts.ts';
import { migration as integrityFindings } from './migrations/0022_quality_integrity_findings.ts';
import { migration as integrityRuns } from './migrations/0023_quality_integrity_runs.ts';
import { migration as notifications } from './migrations/0024_quality_notifications.ts';
import { migration as doseSupersede } from './migrations/0035_quality_dose_supersede.ts';
import { qualityConfig } from './config.ts';
import { DOSE_ALERT_WEBHOOK_JOB, doseAlertContent, legacyDoseAlertWebhookJob } from './dose/dose-alert-webhook.ts';
import { DOSE_ROUTE_RULES, doseRoutes } from './dose/dose-routes.ts';
import { extractOnStore } from './dose/dose-service.ts';
import { DOSE_RECHECK_JOB, doseRecheckJob, queueDoseRecheck } from './dose/dose-recheck.ts';
import { SqlDoseStore } from './dose/sql-dose-store.ts';
import { findingContent } from './integrity/finding-notification.ts';
import { integrityEventHandlers } from './integrity/integrity-events.ts';
import { INTEGRITY_ROUTE_RULES, integrityRoutes } from './integrity/integrity-routes.ts';
import { IntegrityService } from './integrity/integrity-service.ts';
import { INTEGRITY_SWEEP_JOB, integritySweepJob, scheduleNextSweep } from './integrity/integrity-sweep.ts';
import { MetadataSampler } from './integrity/metadata-sample.ts';
import { SEVERITY_RANK, SqlIntegrityStore } from './integrity/sql-integrity-store.ts';
import { QUALITY_NOTIFY_JOB, QualityNotifier, qualityNotifyJob } from './notifier.ts';

interface QualityParts {
  extracted: Counter<'modality'>;
  doseStore: SqlDoseStore;
  integrityStore: SqlIntegrityStore;
  notifier: QualityNotifier;
  integrity: IntegrityService;
}

const partsOf = new WeakMap<Archive, QualityParts>();

/**
 * The module's services for one archive, built once, and its metrics: `atrium_dose_reports_extracted_total{modality}`
 * (this process), `atrium_dose_alerts_open{kind,modality}` and `atrium_integrity_findings_open{kind,severity,state}`
 * read from the database at each scrape (so every node reports the same, whichever found them).
 */
export function qualityOf(archive: Archive): QualityParts {
  let m = partsOf.get(archive);
  if (m) return m;
  const registry = archive.metrics.registry;
  const settings = () => sectionOf(archive.config, qualityConfig);
  const doseStore = new SqlDoseStore(archive.database);
  const integrityStore = new SqlIntegrityStore(archive.database);
  const notifier = new QualityNotifier(archive.database, archive.jobs, settings);
  const integrity = new IntegrityService({
    database: archive.database, store: integrityStore, settings: () => settings().integrity, log: archive.log.child({ module: 'quality' }),
    onOpened: async (findings) => {
      const min = SEVERITY_RANK[settings().notifications.minSeverity];
      await notifier.notify('integrity-finding', findings.filter((f) => SEVERITY_RANK[f.severity] >= min).map((f) => f.id));
    },
  });
  const extracted = (registry.getSingleMetric('atrium_dose_reports_extracted_total') as Counter<'modality'> | undefined) ?? new Counter({
    name: 'atrium_dose_reports_extracted_total', help: 'Radiation dose reports extracted from stored SRs, by modality', labelNames: ['modality'] as const, registers: [registry],
  });
  if (!registry.getSingleMetric('atrium_dose_alerts_open')) {
    new Gauge({
      name: 'atrium_dose_alerts_open', help: 'Dose alerts not yet acknowledged, by kind (drl-exceeded, ctdivol-alert) and modality', labelNames: ['kind', 'modality'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const row of await doseStore.openAlertCounts().catch(() => [])) this.set({ kind: row.kind, modality: row.modality }, row.n);
      },
    });
  }
  if (!registry.getSingleMetric('atrium_integrity_findings_open')) {
    new Gauge({
      name: 'atrium_integrity_findings_open', help: 'Integrity findings open or acknowledged (not resolved, not false positives), by kind, severity and state',
      labelNames: ['kind', 'severity', 'state'] as const, registers: [registry],
      async collect() {
        this.reset();
        for (const row of await integrityStore.activeCounts().catch(() => [])) this.set({ kind: row.kind, severity: row.severity, state: row.state }, row.n);
      },
    });
  }
  m = { extracted, doseStore, integrityStore, notifier, integrity };
  partsOf.set(archive, m);
  return m;
}

/**
 * Quality and compliance (issue 11): radiation dose monitoring (docs/dose.md) and the study integrity monitor
 * (docs/integrity.md), with one notification path for both (src/quality/notifier.ts).
 */
export const qualityModule: AtriumModule = {
  name: 'quality',
  migrations: [doseReports, doseAlerts, integrityFindings, integrityRuns, notifications, doseSupersede],
  config: qualityConfig,
  eventHandlers: (archive) => {
    const parts = qualityOf(archive);
    const log = archive.log.child({ module: 'quality' });
    return [
      on('InstanceStored', 'quality.dose-extract', async (event) => {
        await extractOnStore({
          store: parts.doseStore, log, settings: () => sectionOf(archive.config, qualityConfig).dose,
          notify: (ids) => parts.notifier.notify('dose-alert', ids),
          openInstance: (uid) => archive.retrieve.openInstance(uid),
          onExtracted: (modality) => parts.extracted.inc({ modality }),
        }, event);
      }),
      ...integrityEventHandlers(parts.integrity, archive.database),
    ];
  },
  jobHandlers: (archive) => {
    const parts = qualityOf(archive);
    const settings = () => sectionOf(archive.config, qualityConfig);
    const notify = qualityNotifyJob({ settings, readers: { 'dose-alert': doseAlertContent(parts.doseStore), 'integrity-finding': findingContent(parts.integrityStore) } });
    return {
      [QUALITY_NOTIFY_JOB]: notify,
      [DOSE_ALERT_WEBHOOK_JOB]: legacyDoseAlertWebhookJob(notify),
      [DOSE_RECHECK_JOB]: doseRecheckJob({ store: parts.doseStore, settings: () => settings().dose, notify: (ids) => parts.notifier.notify('dose-alert', ids) }),
      [INTEGRITY_SWEEP_JOB]: integritySweepJob({ service: parts.integrity, store: parts.integrityStore, jobs: archive.jobs, settings: () => settings().integrity }),
    };
  },
  // No listener of its own: `atrium serve` calls this once at start, where the next scheduled sweep is made sure of.
  listeners: async (archive) => {
    await scheduleNextSweep(archive.jobs, sectionOf(archive.config, qualityConfig).integrity, new Date());
    return [];
  },
  routeRules: { ...DOSE_ROUTE_RULES, ...INTEGRITY_ROUTE_RULES },
  httpRoutes: async (app, archive) => {
    const parts = qualityOf(archive);
    await doseRoutes(app, parts.doseStore, archive.audit, queueDoseRecheck(archive.jobs));
    await integrityRoutes(app, { store: parts.integrityStore, jobs: archive.jobs, audit: archive.audit, sampler: new MetadataSampler(archive.database, parts.integrityStore) });
  },
};
