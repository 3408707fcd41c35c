import type { Archive } from '../app.ts';
import type { AtriumModule } from '../modules/module.ts';
import { sectionOf } from '../config/config.ts';
import { on } from '../events/event-map.ts';
import { risOf } from '../ris/module.ts';
import { readingConfig } from './config.ts';
import { migration as worklistTable } from './migrations/0031_reading_worklist.ts';
import { migration as slaTables } from './migrations/0032_reading_sla.ts';
import { migration as criticalResults } from './migrations/0033_reading_critical_results.ts';
import { READING_WEBHOOK_JOB, readingWebhookJob, WebhookJobNotifier, type Notifier } from './notifier.ts';
import { Reading, READING_MONITOR_JOB } from './reading.ts';
import { READING_ROUTE_RULES, readingRoutes } from './routes.ts';
import { SqlReadingStore } from './sql-reading-store.ts';

const built = new WeakMap<Archive, Reading>();

/**
 * The reading services of an archive, built on first use. Tests pass a controlled `clock` (and may pass another
 * `notifier`) on the first call; the quality issue's shared notifier is wired here, in place of the default
 * WebhookJobNotifier, once it exists.
 */
export function readingOf(archive: Archive, options: { clock?: () => Date; notifier?: Notifier } = {}): Reading {
  let reading = built.get(archive);
  if (!reading) {
    const store = new SqlReadingStore(archive.database);
    const settings = () => sectionOf(archive.config, readingConfig);
    const notifier = options.notifier ?? new WebhookJobNotifier({ store, jobs: archive.jobs, webhooks: () => settings().webhooks, clock: options.clock });
    reading = new Reading({ store, jobs: archive.jobs, notifier, settings, clock: options.clock });
    built.set(archive, reading);
  }
  return reading;
}

/**
 * Reading (issue 12): the radiologists' worklist of studies ready to read with claims, turnaround times from
 * the order timeline against the SLA table, SLA alerts, critical results. See docs/reading.md.
 */
export const readingModule: AtriumModule = {
  name: 'reading',
  migrations: [worklistTable, slaTables, criticalResults],
  config: readingConfig,
  eventHandlers: (archive) => [
    on('OrderStatusChanged', 'reading.order-status', async (event) => { await readingOf(archive).onOrderStatus(event.payload); }),
    on('StudyStable', 'reading.study-stable', async (event) => { await readingOf(archive).onStudyStable(event.payload); }),
    on('CriticalResult', 'reading.critical-result', async (event) => { await readingOf(archive).onCriticalResult(event.payload); }),
  ],
  jobHandlers: (archive) => ({
    [READING_MONITOR_JOB]: async () => await readingOf(archive).monitor(),
    [READING_WEBHOOK_JOB]: readingWebhookJob({ store: new SqlReadingStore(archive.database), webhooks: () => sectionOf(archive.config, readingConfig).webhooks }),
  }),
  routeRules: READING_ROUTE_RULES,
  httpRoutes: async (app, archive) => {
    await readingRoutes(app, readingOf(archive), risOf(archive), archive.audit);
  },
};
