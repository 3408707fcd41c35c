import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { AtriumConfig } from './config/config.ts';
import type { BlobStore } from './ports/blob-store.ts';
import type { IndexStore } from './ports/index-store.ts';
import { Database, type DatabaseConfig } from './database/database.ts';
import { SqlIndexStore } from './adapters/index/sql-index-store.ts';
import { SqlEventOutbox } from './adapters/index/sql-event-outbox.ts';
import type { EventOutbox } from './ports/event-outbox.ts';
import { EventDispatcher } from './events/dispatcher.ts';
import type { EventHandler } from './events/event-map.ts';
import type { DimseService } from './dimse/services/dimse-service.ts';
import { configSectionsOf, migrationsOf, type AtriumModule } from './modules/module.ts';
import { archiveModule } from './archive/module.ts';
import { exchangeModule } from './exchange/module.ts';
import { securityModule } from './security/module.ts';
import { auditModule } from './audit/module.ts';
import { eventsModule } from './events/module.ts';
import { dimseModule } from './dimse/module.ts';
import { risModule } from './ris/module.ts';
import { fhirModule } from './fhir/module.ts';
import { prefetchModule } from './prefetch/module.ts';
import { qualityModule } from './quality/module.ts';
import { readingModule } from './reading/module.ts';
import { correctionsModule } from './quality/corrections/module.ts';
import { workflowModule } from './workflow/module.ts';
import { aiModule } from './ai/module.ts';
import { FsBlobStore } from './adapters/blob/fs-blob-store.ts';
import { S3BlobStore } from './adapters/blob/s3-blob-store.ts';
import { Metrics } from './observability/metrics.ts';
import { IngestService } from './archive/ingest.ts';
import { comparePixels } from './imaging/index.ts';
import { RetrieveService } from './archive/retrieve.ts';
import { SqlServedCorrections } from './adapters/index/sql-served-corrections.ts';
import { DeletionService } from './archive/deletion.ts';
import { DashboardService } from './archive/dashboard.ts';
import { QuarantineService } from './archive/quarantine.ts';
import type { JobQueue } from './ports/job-queue.ts';
import { JobRunner, type JobRunnerOptions } from './jobs/job-runner.ts';
import type { PeerRegistry } from './ports/peer-registry.ts';
import { SqlJobQueue } from './adapters/index/sql-job-queue.ts';
import { SqlPeerRegistry } from './adapters/index/sql-peer-registry.ts';
import { ApplicationEntities } from './dicom-access/application-entities.ts';
import { SqlSecurityStore } from './adapters/index/sql-security-store.ts';
import { SqlAuditStore } from './adapters/index/sql-audit-store.ts';
import { SecurityService, securityDisabledWarning } from './security/index.ts';
import { AuditService, type AuditSink } from './audit/audit-service.ts';
import { SyslogSender } from './audit/syslog.ts';

/**
 * The modules this build installs, in the order their parts are installed. A new area (ris, fhir,
 * quality ...) is one folder exporting an AtriumModule, added here.
 */
export const MODULES: readonly AtriumModule[] = [archiveModule, exchangeModule, securityModule, auditModule, eventsModule, dimseModule, risModule, qualityModule, correctionsModule, fhirModule, readingModule, prefetchModule, workflowModule, aiModule];

/** The one database of a node, migrated to what the modules need (several nodes may do this at once). */
export async function openDatabase(config: DatabaseConfig, modules: readonly AtriumModule[] = MODULES): Promise<Database> {
  const database = Database.open(config);
  try {
    await database.migrate(migrationsOf(modules));
  } catch (error) {
    await database.close();
    throw error;
  }
  return database;
}

/** The archive with its adapters and services, before any transport is attached. */
export interface Archive {
  config: AtriumConfig;
  log: Logger;
  metrics: Metrics;
  database: Database;
  index: IndexStore;
  blobs: BlobStore;
  ingest: IngestService;
  retrieve: RetrieveService;
  deletion: DeletionService;
  /** The operations console's numbers and health checks (src/archive/dashboard.ts). */
  dashboard: DashboardService;
  /** Looking into, releasing and deleting quarantined objects (src/archive/quarantine.ts). */
  quarantine: QuarantineService;
  jobs: JobQueue;
  /** The reading side of the event outbox (the dispatcher, the stuck-events listing). */
  events: EventOutbox;
  /** The modules installed (MODULES unless a test adds its own): transports read their parts from them. */
  modules: readonly AtriumModule[];
  /** The handlers every module subscribed, for the dispatcher `atrium serve` runs. */
  eventHandlers: readonly EventHandler[];
  /** The DIMSE services every module offers, for the DICOM listeners (src/dimse/services/dicom-service.ts). */
  dimseServices: readonly DimseService[];
  peers: PeerRegistry;
  applicationEntities: ApplicationEntities;
  /** Authentication and the one authorization policy of every transport (src/security/). */
  security: SecurityService;
  /** The audit trail every transport records patient-data access into (src/audit/). */
  audit: AuditService;
  close(): Promise<void>;
}

export function createLogger(config: AtriumConfig, destination?: NodeJS.WritableStream): Logger {
  return pino({
    level: config.log.level,
    base: { service: 'atrium' },
    // Secrets never reach the log, whatever object a caller passes.
    redact: ['*.secretAccessKey', '*.password', '*.authorization', 'req.headers.authorization'],
  }, destination as any);
}

/** Composition happens here, once: config -> adapters -> services. Transports attach to the result. */
export async function openArchive(config: AtriumConfig, options: { log?: Logger; metrics?: Metrics; firstRunSetup?: boolean; modules?: readonly AtriumModule[] } = {}): Promise<Archive> {
  const modules = options.modules ?? MODULES;
  const unloaded = configSectionsOf(modules).filter((section) => !Object.hasOwn(config.sections, section.key));
  if (unloaded.length) throw new Error(`the configuration was loaded without the sections of ${unloaded.map((s) => s.key).join(', ')}: loadConfig({ sections: configSectionsOf(modules) })`);
  const log = options.log ?? createLogger(config);
  const metrics = options.metrics ?? new Metrics();
  mkdirSync(config.dataDir, { recursive: true });

  const database = await openDatabase(config.index.engine === 'sqlite'
    ? { engine: 'sqlite', path: join(config.dataDir, 'index.sqlite') }
    : { engine: 'postgres', connectionString: config.index.url, poolSize: config.index.poolSize }, modules);
  const index = new SqlIndexStore(database);

  let blobs: BlobStore;
  if (config.blobs.engine === 'fs') {
    blobs = new FsBlobStore(join(config.dataDir, 'blobs'));
  } else {
    const s3 = config.blobs;
    const store = new S3BlobStore({
      bucket: s3.bucket, region: s3.region, endpoint: s3.endpoint ?? undefined, prefix: s3.prefix,
      accessKeyId: s3.accessKeyId ?? undefined, secretAccessKey: s3.secretAccessKey ?? undefined,
      forcePathStyle: s3.forcePathStyle, partSize: s3.partSizeMiB * 1024 * 1024, logger: log,
    });
    blobs = store;
  }
  // Other nodes (or an `atrium import` beside `atrium serve`) may be writing right now: only a day-old
  // upload is surely abandoned, unless the store can tell its writer is gone.
  const cleaned = await blobs.cleanupIncomplete(24 * 60 * 60 * 1000);
  if (cleaned > 0) log.info({ removed: cleaned }, 'removed incomplete uploads left by an earlier crash');

  const ingest = new IngestService({ index, blobs, log, metrics, options: { duplicatePolicy: config.ingest.duplicatePolicy, invalidUidPolicy: config.ingest.invalidUidPolicy },
    samePixels: (a, b) => comparePixels(blobs, a, b) });
  const retrieve = new RetrieveService({ index, blobs, corrections: new SqlServedCorrections(database), modifyingSystem: `ATRIUM ${config.dicom.aeTitle}` });
  const deletion = new DeletionService({ index, blobs, log });
  const quarantine = new QuarantineService({ index, blobs, retrieve, ingest, log, modifyingSystem: `ATRIUM ${config.dicom.aeTitle}` });
  // Every store lives in the one database: one engine to run and back up.
  const jobs = new SqlJobQueue(database);
  const events = new SqlEventOutbox(database);
  const dashboard = new DashboardService({ index, blobs, jobs, events });
  const peers = new SqlPeerRegistry(database);
  const synced = await peers.syncFromConfig(config.dicom.peers);
  if (synced.created + synced.updated + synced.deleted > 0) log.info(synced, 'DICOM peers synchronized from the configuration');
  const applicationEntities = new ApplicationEntities({ peers, config: config.dicom,
    onContactError: (error, aeTitle) => log.warn({ err: error, peer: aeTitle }, 'could not record the last contact of a DICOM peer') });
  // Security and audit live in the index database too (tables security_*, audit_*).
  const security = new SecurityService({ store: new SqlSecurityStore(database), config: config.security });
  // The server (`atrium serve`) asks for the first-run setup: a one-off CLI command must neither print
  // nor rotate the setup token of the running server.
  if (options.firstRunSetup) {
    const disabled = securityDisabledWarning(config.security);
    if (disabled) log.error(disabled);
    const { setupToken } = await security.start();
    if (setupToken) log.warn({ setup: true }, security.setupMessage(setupToken));
  }
  const syslog = config.audit.syslog
    ? new SyslogSender(config.audit.syslog, { onError: (error) => log.warn({ err: error }, 'audit syslog: %s', error.message) })
    : null;
  const sinks: AuditSink[] = syslog ? [syslog] : [];
  const audit = new AuditService({
    store: new SqlAuditStore(database), sourceId: config.dicom.aeTitle, sinks,
    studyInfo: async (uid) => {
      const study = await index.getStudy(uid);
      return study ? { patientId: study.patient.patientId, accessionNumber: study.accessionNumber } : null;
    },
  });
  log.debug({ index: index.kind, blobs: blobs.kind, dataDir: config.dataDir }, 'archive open');
  const archive: Archive = {
    config, log, metrics, database, index, blobs, ingest, retrieve, deletion, dashboard, quarantine, jobs, events, modules, eventHandlers: [], dimseServices: [], peers, applicationEntities, security, audit,
    async close() {
      // Records under way are committed before the database closes; the syslog copy is flushed last.
      await audit.drain().catch(() => {});
      await syslog?.close().catch(() => {});
      await database.close();
      await blobs.close();
    },
  };
  // A module's parts are built once the archive's services exist, for the transports to read.
  archive.eventHandlers = archive.modules.flatMap((m) => m.eventHandlers?.(archive) ?? []);
  archive.dimseServices = archive.modules.flatMap((m) => m.dimseServices?.(archive) ?? []);
  return archive;
}

/** A runner of the archive's durable jobs with every module's handlers (`atrium serve`, and CLI commands that queue jobs). */
export function jobRunner(archive: Archive, options: Omit<JobRunnerOptions, 'queue' | 'log'> = {}): JobRunner {
  const runner = new JobRunner({ ...options, queue: archive.jobs, log: archive.log });
  for (const module of archive.modules) runner.registerAll(module.jobHandlers?.(archive) ?? {});
  return runner;
}

/** The dispatcher of the archive's events to its modules' handlers (run by `atrium serve`). */
export function eventDispatcher(archive: Archive): EventDispatcher {
  return new EventDispatcher({ outbox: archive.events, handlers: archive.eventHandlers, log: archive.log, metrics: archive.metrics });
}
