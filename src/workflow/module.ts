import type { Archive } from '../app.ts';
import type { AtriumModule } from '../modules/module.ts';
import { sectionOf } from '../config/config.ts';
import { on } from '../events/event-map.ts';
import { risOf } from '../ris/module.ts';
import { migration as studyActivity } from './migrations/0028_workflow_study_activity.ts';
import { migration as rulesTables } from './migrations/0029_workflow_rules.ts';
import { migration as ruleTriggers } from './migrations/0030_workflow_rule_triggers.ts';
import { workflowConfig } from './config.ts';
import { SqlRuleStore } from './sql-rule-store.ts';
import { STUDY_STABLE_SWEEP_JOB, StudyStability } from './study-stability.ts';
import { RoutingEngine, STOW_JOB } from './routing.ts';
import { stowJob } from './stow-forward.ts';
import { WORKFLOW_ROUTE_RULES, workflowRoutes } from './routes.ts';
import type { OrderLookup } from './facts.ts';

/** The workflow services of one archive. */
export interface Workflow {
  rules: SqlRuleStore;
  stability: StudyStability;
  routing: RoutingEngine;
  /** The clock StudyStable and rule times are read from (tests move it instead of sleeping). */
  clock: () => Date;
}

const built = new WeakMap<Archive, Workflow>();
const clocks = new WeakMap<Archive, () => Date>();

/**
 * Sets the clock of an archive's workflow before its first use (tests: a clock moved past the quiet time
 * instead of a sleep). The clock is read at each use, so a test may also move it later.
 */
export function setWorkflowClock(archive: Archive, clock: () => Date): void {
  clocks.set(archive, clock);
}

/** The workflow services of an archive (built on first use, once per archive). */
export function workflowOf(archive: Archive): Workflow {
  let workflow = built.get(archive);
  if (!workflow) {
    const clock = () => (clocks.get(archive) ?? (() => new Date()))();
    const settings = () => sectionOf(archive.config, workflowConfig);
    const rules = new SqlRuleStore(archive.database);
    const stability = new StudyStability({ database: archive.database, jobs: archive.jobs, clock, quietMs: () => settings().quietSeconds * 1000 });
    const order: OrderLookup = async (study) => {
      const orders = risOf(archive).orders;
      const found = (study.accessionNumber ? await orders.find({ accessionNumber: study.accessionNumber }) : null) ?? await orders.find({ studyInstanceUid: study.studyInstanceUid });
      return found ? { priority: found.priority, procedureCode: found.requestedProcedureCode?.code ?? null } : null;
    };
    const routing = new RoutingEngine({
      database: archive.database, index: archive.index, jobs: archive.jobs, rules, facts: { index: archive.index, order }, settings, clock,
      peerKnown: async (ae) => (await archive.peers.get(ae)) !== null,
    });
    workflow = { rules, stability, routing, clock };
    built.set(archive, workflow);
  }
  return workflow;
}

/**
 * Workflow (issue 12, docs/workflow.md): the StudyStable event, and routing rules as data that forward what
 * arrives to DICOM peers (C-STORE, by the exchange module's send job) and DICOMweb servers (STOW-RS), at
 * instance or study-stable granularity, each action a durable job.
 */
export const workflowModule: AtriumModule = {
  name: 'workflow',
  migrations: [studyActivity, rulesTables, ruleTriggers],
  config: workflowConfig,
  eventHandlers: (archive) => [
    on('InstanceStored', 'workflow.study-activity', async (event) => { await workflowOf(archive).stability.recordInstance(event); }),
    on('StudyDeleted', 'workflow.study-deleted', async (event) => { await workflowOf(archive).stability.forget(event.payload.studyInstanceUid); }),
    on('InstanceStored', 'workflow.route-instance', async (event) => { await workflowOf(archive).routing.onInstanceStored(event); }),
    on('StudyStable', 'workflow.route-study', async (event) => {
      const workflow = workflowOf(archive);
      const activity = await workflow.stability.get(event.payload.studyInstanceUid);
      await workflow.routing.onStudyStable(event, activity?.lastSource ?? null);
    }),
  ],
  jobHandlers: (archive) => ({
    [STUDY_STABLE_SWEEP_JOB]: async () => ({ emitted: await workflowOf(archive).stability.sweep() }),
    [STOW_JOB]: stowJob({ archive, settings: () => sectionOf(archive.config, workflowConfig) }),
  }),
  routeRules: WORKFLOW_ROUTE_RULES,
  httpRoutes: async (app, archive) => {
    const workflow = workflowOf(archive);
    await workflowRoutes(app, { ...workflow, audit: archive.audit });
  },
};
