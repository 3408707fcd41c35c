import { readFileSync } from 'node:fs';
import type { Archive } from '../app.ts';
import type { AtriumModule, ModuleListener } from '../modules/module.ts';
import { sectionOf } from '../config/config.ts';
import { on } from '../events/event-map.ts';
import { startMllpListener, type MllpListener } from '../hl7/mllp.ts';
import { migration as patientsOrders } from './migrations/0010_ris_patients_orders.ts';
import { migration as worklistIndexes } from './migrations/0011_ris_worklist_indexes.ts';
import { migration as mppsTable } from './migrations/0012_ris_mpps.ts';
import { mppsService } from './mpps-scp.ts';
import { MPPS_ROUTE_RULES, mppsRoutes } from './mpps-routes.ts';
import { SqlMppsStore } from './sql-mpps-store.ts';
import { worklistService } from './worklist-scp.ts';
import { SqlWorklistStore } from './sql-worklist-store.ts';
import { migration as hl7Outbound } from './migrations/0013_ris_hl7_outbound.ts';
import { migration as identityFlags } from './migrations/0014_ris_identity_flags.ts';
import { HL7_STATUS_JOB, hl7StatusJob, laterDelivered, queueStatusMessages } from './hl7/outbound.ts';
import { migration as hl7ReportOutbound } from './migrations/0019_ris_hl7_report_outbound.ts';
import { HL7_REPORT_JOB, hl7ReportJob, queueReportMessages } from './hl7/report-outbound.ts';
import { risConfig, type Hl7ListenerSettings } from './config.ts';
import { createRis, type Ris } from './ris.ts';
import { matchStudyToOrder } from './image-matching.ts';
import { checkMpps, checkOrder } from './performed-series.ts';
import { RIS_ROUTE_RULES, risRoutes } from './routes.ts';

const built = new WeakMap<Archive, Ris>();

/** The RIS services of an archive (built on first use, once per archive). */
export function risOf(archive: Archive): Ris {
  let ris = built.get(archive);
  if (!ris) {
    const hl7 = sectionOf(archive.config, risConfig).hl7;
    ris = createRis({
      database: archive.database, audit: archive.audit, index: archive.index, log: archive.log.child({ module: 'ris' }),
      hl7: { applicationName: hl7.applicationName, facilityName: hl7.facilityName, allowedSenders: hl7.allowedSenders },
    });
    built.set(archive, ris);
  }
  return ris;
}

/**
 * Starts the HL7 MLLP listeners (plain TCP, and TLS when configured) that feed the archive's RIS. Tests
 * call it with `settings` overrides (port 0); `atrium serve` through the module's `listeners`.
 */
export async function startHl7Listeners(archive: Archive, overrides: Partial<Hl7ListenerSettings> = {}): Promise<MllpListener[]> {
  const settings = { ...sectionOf(archive.config, risConfig).hl7, ...overrides };
  const ris = risOf(archive);
  const log = archive.log.child({ module: 'ris', transport: 'hl7' });
  const common = {
    host: settings.host, allowedAddresses: settings.allowedAddresses, maxFrameBytes: settings.maxFrameKiB * 1024,
    idleTimeoutMs: settings.idleTimeoutSeconds * 1000, log,
    handler: async (frame: Buffer, peer: { address: string }) => (await ris.hl7.receive(frame, peer)).ack,
  };
  const listeners = [await startMllpListener({ ...common, port: settings.port })];
  if (settings.tls) {
    const tls = settings.tls;
    listeners.push(await startMllpListener({
      ...common, port: tls.port,
      tls: { cert: readFileSync(tls.cert), key: readFileSync(tls.key), ...(tls.ca ? { ca: readFileSync(tls.ca) } : {}), requireClientCert: tls.requireClientCert },
    }));
  }
  return listeners;
}

/**
 * The RIS (issue 9): patients, orders with their scheduled procedure steps and timeline, reports, the
 * matching of archived studies to orders, HL7 v2 in over MLLP, and its REST API. See docs/ris.md.
 */
export const risModule: AtriumModule = {
  name: 'ris',
  migrations: [patientsOrders, worklistIndexes, mppsTable, hl7Outbound, identityFlags, hl7ReportOutbound],
  config: risConfig,
  eventHandlers: (archive) => [
    on('InstanceStored', 'ris.match-order', async (event) => {
      const ris = risOf(archive);
      await matchStudyToOrder({ core: ris.core, orders: ris.orders, index: archive.index }, event);
    }),
    on('OrderStatusChanged', 'ris.hl7-status', async (event) => {
      await queueStatusMessages({ database: archive.database, jobs: archive.jobs, destinations: () => sectionOf(archive.config, risConfig).hl7Destinations }, event);
    }),
    // Final and corrected reports to the EHR as ORU^R01: docs/ehr.md.
    on('ReportFinal', 'ris.hl7-report', async (event) => {
      await queueReportMessages({ database: archive.database, jobs: archive.jobs, destinations: () => sectionOf(archive.config, risConfig).hl7Destinations }, event);
    }),
  ],
  // Modality Worklist (and MPPS): docs/mwl-mpps.md.
  dimseServices: (archive) => [
    worklistService({
      worklist: new SqlWorklistStore(archive.database), audit: archive.audit, log: archive.log.child({ module: 'ris', transport: 'dimse' }),
      caseInsensitivePersonNames: archive.config.dicom.caseInsensitivePersonNames,
    }),
    mppsService({ store: new SqlMppsStore(archive.database), orders: risOf(archive).orders, log: archive.log.child({ module: 'ris', transport: 'dimse' }) }),
  ],
  jobHandlers: (archive) => ({
    [HL7_STATUS_JOB]: hl7StatusJob({
      destinations: () => sectionOf(archive.config, risConfig).hl7Destinations,
      findOrder: async (accessionNumber) => await risOf(archive).orders.find({ accessionNumber }),
      sender: () => { const hl7 = sectionOf(archive.config, risConfig).hl7; return { application: hl7.applicationName, facility: hl7.facilityName }; },
      supersededBy: (payload) => laterDelivered({ database: archive.database, jobs: archive.jobs }, payload),
    }),
    [HL7_REPORT_JOB]: hl7ReportJob({
      destinations: () => sectionOf(archive.config, risConfig).hl7Destinations,
      findReport: async (id) => await risOf(archive).reports.get(id),
      reportVersions: async (accessionNumber) => (await risOf(archive).reports.list({ accessionNumber }, { limit: 1000, offset: 0 })).items,
      findOrder: async (accessionNumber) => await risOf(archive).orders.find({ accessionNumber }),
      sender: () => { const hl7 = sectionOf(archive.config, risConfig).hl7; return { application: hl7.applicationName, facility: hl7.facilityName }; },
    }),
  }),
  routeRules: { ...RIS_ROUTE_RULES, ...MPPS_ROUTE_RULES },
  httpRoutes: async (app, archive) => {
    const ris = risOf(archive);
    const mpps = new SqlMppsStore(archive.database);
    const check = {
      index: archive.index, mpps,
      linkedStudies: async (accessionNumber: string) => {
        const order = await ris.orders.find({ accessionNumber });
        return order ? ((await ris.orders.detail(order.pk))?.studies ?? []).map((s) => s.studyInstanceUid) : [];
      },
    };
    await risRoutes(app, ris, archive.audit, { performedSeries: (order) => checkOrder(check, order) });
    await mppsRoutes(app, mpps, archive.audit, (uid) => checkMpps(check, uid));
  },
  async listeners(archive): Promise<ModuleListener[]> {
    if (!sectionOf(archive.config, risConfig).hl7.enabled) return [];
    const listeners = await startHl7Listeners(archive);
    return listeners.map((l, i) => ({ name: i === 0 ? 'hl7' : 'hl7-tls', port: l.port, close: () => l.close() }));
  },
};
