import type { SchemaMigration } from '../database/migration.ts';
import type { EventHandler } from '../events/event-map.ts';
import type { Archive } from '../app.ts';
import type { DimseService } from '../dimse/services/dimse-service.ts';
import type { ConfigSection } from '../config/config.ts';
import type { RouteRules } from '../security/route-rule.ts';
import type { FastifyInstance } from 'fastify';
import type { JobHandler } from '../jobs/job-runner.ts';

/**
 * One area of Atrium as the composition root installs it (app.ts lists them): its tables, its reactions to
 * events, its DIMSE services, its HTTP routes with their access rules, and its configuration section. Adding
 * an area is one folder exporting one of these plus one line in app.ts; no other area's file changes. See
 * docs/architecture.md "Modules".
 */
export interface AtriumModule {
  /** Lower case, stable: it prefixes the module's migration files and its event handler names. */
  name: string;
  /** Its schema changes, one file each (`NNNN_<module>_<what>.ts`), run in name order with every module's. */
  migrations?: readonly SchemaMigration[];
  /** Its reactions to events, built once the archive's services exist. */
  eventHandlers?(archive: Archive): readonly EventHandler[];
  /** Its DIMSE services (Modality Worklist, MPPS ...), offered on Atrium's DICOM listeners beside the others. */
  dimseServices?(archive: Archive): readonly DimseService[];
  /** Its durable jobs: job type (`<module>.<what>`) -> handler, run by every node's job runner. */
  jobHandlers?(archive: Archive): Readonly<Record<string, JobHandler>>;
  /** Its part of the configuration (`ris` in atrium.json, ATRIUM_RIS_* ...), read with `sectionOf(config, section)`. */
  config?: ConfigSection;
  /**
   * The access rules of its HTTP routes (`METHOD /url-pattern` -> rule, src/security/route-rule.ts),
   * composed by src/http/access.ts with the core areas' tables: a route declared by two tables fails the
   * server's start, a route with no rule anywhere is denied (403). Every rule must name a route the server
   * registers, its own through `httpRoutes` (the security matrix test checks both ways).
   */
  routeRules?: RouteRules;
  /**
   * Routes of `routeRules` (same `METHOD /url-pattern` keys) whose handlers narrow what they answer to the
   * caller's own studies themselves (policy.ts `studyFilter`): a principal whose `query` grant is
   * own-studies only (a referring clinician) may call them without naming a study, as it may the core's
   * study listings. Any other own-studies request that names no study is denied by src/http/access.ts.
   */
  ownStudiesListings?: readonly string[];
  /** Registers its HTTP routes (REST, FHIR ...) on Atrium's server, after the core's; each needs a rule in `routeRules`. */
  httpRoutes?(app: FastifyInstance, archive: Archive): Promise<void>;
  /**
   * Starts its own network listeners (the RIS's HL7 MLLP ports ...), called by `atrium serve` after the
   * DICOM listeners and closed in reverse order before the archive closes. Return none when disabled.
   */
  listeners?(archive: Archive): Promise<readonly ModuleListener[]>;
}

/** A listener a module started: its name and port for the start-up log line, and how to stop it. */
export interface ModuleListener {
  name: string;
  port: number;
  close(): Promise<void>;
}

/** Every module's configuration section, for loadConfig. */
export function configSectionsOf(modules: readonly AtriumModule[]): ConfigSection[] {
  return modules.flatMap((m) => (m.config ? [m.config] : []));
}

/** Every module's migrations, checked to belong to the module that lists them. */
export function migrationsOf(modules: readonly AtriumModule[]): SchemaMigration[] {
  return modules.flatMap((m) => (m.migrations ?? []).map((migration) => {
    if (migration.module !== m.name) throw new Error(`migration ${migration.name} belongs to module ${migration.module}, not ${m.name}`);
    return migration;
  }));
}
