import { Counter, Gauge } from 'prom-client';
import type { Archive } from '../app.ts';
import type { AtriumModule } from '../modules/module.ts';
import { sectionOf } from '../config/config.ts';
import { on } from '../events/event-map.ts';
import { migration as doseReports } from './migrations/0020_quality_dose_reports.ts';
import { migration as doseAlerts } from './migrations/0021_quality_dose_alerts.ts';
import { migration as doseSupersede } from './migrations/0035_quality_dose_supersede.ts';
import { qualityConfig } from './config.ts';
import { DOSE_ALERT_WEBHOOK_JOB, doseAlertWebhookJob } from './dose/dose-alert-webhook.ts';
import { DOSE_ROUTE_RULES, doseRoutes } from './dose/dose-routes.ts';
import { extractOnStore } from './dose/dose-service.ts';
import { DOSE_RECHECK_JOB, doseRecheckJob, queueDoseRecheck } from './dose/dose-recheck.ts';
import { SqlDoseStore } from './dose/sql-dose-store.ts';

interface DoseMetrics { extracted: Counter<'modality'> }

const metricsOf = new WeakMap<Archive, DoseMetrics>();

/**
 * `atrium_dose_reports_extracted_total{modality}` (this process), and `atrium_dose_alerts_open{kind,modality}`
 * read from the database at each scrape (so every node reports the same, whichever extracted them).
 */
function doseMetrics(archive: Archive): DoseMetrics {
  let m = metricsOf.get(archive);
  if (m) return m;
  const registry = archive.metrics.registry;
  const store = new SqlDoseStore(archive.database);
  const extracted = (registry.getSingleMetric('atrium_dose_reports_extracted_total') as Counter<'modality'> | undefined) ?? new Counter({
    name: 'atrium_dose_reports_extracted_total', help: 'Radiation dose reports extracted from stored SRs, by modality', labelNames: ['modality'] as const, registers: [registry],
  });
  if (!registry.getSingleMetric('atrium_dose_alerts_open')) {
    new Gauge({
      name: 'atrium_dose_alerts_open', help: 'Dose alerts not yet acknowledged, by kind (drl-exceeded, ctdivol-alert) and modality', labelNames: ['kind', 'modality'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const row of await store.openAlertCounts().catch(() => [])) this.set({ kind: row.kind, modality: row.modality }, row.n);
      },
    });
  }
  m = { extracted };
  metricsOf.set(archive, m);
  return m;
}

/**
 * Quality and compliance (issue 11). Today: radiation dose monitoring (docs/dose.md): dose SRs are
 * extracted on ingest into dose reports and events, compared with the dose reference levels, and alerts
 * are notified to webhooks by durable jobs.
 */
export const qualityModule: AtriumModule = {
  name: 'quality',
  migrations: [doseReports, doseAlerts, doseSupersede],
  config: qualityConfig,
  eventHandlers: (archive) => {
    const store = new SqlDoseStore(archive.database);
    const metrics = doseMetrics(archive);
    const log = archive.log.child({ module: 'quality' });
    return [
      on('InstanceStored', 'quality.dose-extract', async (event) => {
        await extractOnStore({
          store, jobs: archive.jobs, log, settings: () => sectionOf(archive.config, qualityConfig).dose,
          openInstance: (uid) => archive.retrieve.openInstance(uid),
          onExtracted: (modality) => metrics.extracted.inc({ modality }),
        }, event);
      }),
    ];
  },
  jobHandlers: (archive) => ({
    [DOSE_ALERT_WEBHOOK_JOB]: doseAlertWebhookJob({ store: new SqlDoseStore(archive.database), webhooks: () => sectionOf(archive.config, qualityConfig).dose.webhooks }),
    [DOSE_RECHECK_JOB]: doseRecheckJob({ store: new SqlDoseStore(archive.database), jobs: archive.jobs, settings: () => sectionOf(archive.config, qualityConfig).dose }),
  }),
  routeRules: DOSE_ROUTE_RULES,
  httpRoutes: async (app, archive) => {
    doseMetrics(archive);
    await doseRoutes(app, new SqlDoseStore(archive.database), archive.audit, queueDoseRecheck(archive.jobs));
  },
};
