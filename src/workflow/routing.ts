/**
 * The routing engine: on InstanceStored (instance rules) and StudyStable (study-stable rules) it evaluates the
 * enabled rules against the facts of the instance or study and queues one durable job per action of each rule
 * that matches. The dry-run evaluates the same rules on a stored study without queueing anything.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../database/database.ts';
import type { DeliveredEvent } from '../events/event-map.ts';
import type { JobQueue } from '../ports/job-queue.ts';
import type { IndexStore } from '../ports/index-store.ts';
import type { AuditPrincipal } from '../ports/audit-store.ts';
import { SEND_JOB, type SendPayload } from '../exchange/dicom-jobs.ts';
import { evaluateRule, type RoutingFacts, type RuleAction, type RuleTrigger } from './rule.ts';
import { instanceFacts, studyFacts, type FactSources } from './facts.ts';
import type { RuleRef, SqlRuleStore } from './sql-rule-store.ts';
import type { WorkflowSettings } from './config.ts';

export const STOW_JOB = 'workflow.stow';
/** The job of an `ai` action: run by the AI module (src/ai/), which records the request and forwards the study to the node. */
export const AI_SEND_JOB = 'ai.send';

/** A study for an AI node (src/ai/), named as the registry names it. */
export interface AiSendPayload {
  node: string;
  studyInstanceUid: string;
  rule?: RuleRef;
  requestedBy?: AuditPrincipal;
}

/** A STOW-RS forward: the instances (or the whole study) to a configured DICOMweb destination. */
export interface StowPayload {
  destination: string;
  studyInstanceUid: string;
  sopInstanceUids?: string[];
  rule?: RuleRef;
}

/** What a matched rule's action would do (dry-run) or did (the job it queued). */
export interface PlannedAction {
  rule: RuleRef;
  actionIndex: number;
  action: RuleAction;
  jobType: string;
  /** Which instances: the whole study, or the listed ones. */
  studyInstanceUid: string;
  sopInstanceUids?: string[];
  /** Why the action cannot run as it stands (an unknown destination): it is queued anyway and fails visibly. */
  warning?: string;
}

export interface RoutingOptions {
  database: Database;
  index: IndexStore;
  jobs: JobQueue;
  rules: SqlRuleStore;
  facts: FactSources;
  settings: () => WorkflowSettings;
  clock: () => Date;
  /** Whether a DICOM peer of that AE title is known (for the dry-run's warnings). */
  peerKnown: (aeTitle: string) => Promise<boolean>;
  /** Wakes this node's job runner after queueing. */
  wakeJobs?: () => void;
}

export class RoutingEngine {
  readonly #db: Kysely<any>;
  readonly #o: RoutingOptions;

  constructor(options: RoutingOptions) {
    this.#db = options.database.kysely<any>();
    this.#o = options;
  }

  /** Instance rules, for one stored instance. Idempotent per event. */
  async onInstanceStored(event: DeliveredEvent<'InstanceStored'>): Promise<number> {
    const rules = await this.#o.rules.active('instance');
    if (rules.length === 0) return 0;
    const p = event.payload;
    const facts = await instanceFacts(this.#o.facts, p.sopInstanceUid, p.source, new Date(event.createdAt));
    if (!facts) return 0; // deleted since
    return await this.#queue(event.id, this.#plan('instance', facts, rules, [p.sopInstanceUid]));
  }

  /** Study-stable rules, for a study that became stable. Idempotent per event. */
  async onStudyStable(event: DeliveredEvent<'StudyStable'>, lastSource: string | null): Promise<number> {
    const rules = await this.#o.rules.active('study-stable');
    if (rules.length === 0) return 0;
    const facts = await studyFacts(this.#o.facts, event.payload.studyInstanceUid, lastSource, new Date(event.createdAt));
    if (!facts) return 0;
    return await this.#queue(event.id, this.#plan('study-stable', facts, rules));
  }

  /** The facts and the actions of matched rules, evaluated in memory (the benchmark measures this). */
  evaluate(trigger: RuleTrigger, facts: RoutingFacts, rules: Awaited<ReturnType<SqlRuleStore['active']>>, sopInstanceUids?: string[]): PlannedAction[] {
    return this.#plan(trigger, facts, rules, sopInstanceUids);
  }

  #plan(trigger: RuleTrigger, facts: RoutingFacts, rules: Awaited<ReturnType<SqlRuleStore['active']>>, sopInstanceUids?: string[]): PlannedAction[] {
    const planned: PlannedAction[] = [];
    for (const rule of rules) {
      if (rule.definition.trigger !== trigger || !evaluateRule(rule, facts).matched) continue;
      rule.definition.actions.forEach((action, actionIndex) => {
        planned.push({
          rule: rule.ref, actionIndex, action, jobType: action.type === 'dicom' ? SEND_JOB : action.type === 'ai' ? AI_SEND_JOB : STOW_JOB, studyInstanceUid: facts.studyInstanceUid,
          ...(sopInstanceUids ? { sopInstanceUids } : {}),
        });
      });
    }
    return planned;
  }

  async #queue(eventId: number, planned: PlannedAction[]): Promise<number> {
    let queued = 0;
    const settings = this.#o.settings();
    for (const plan of planned) {
      const key = { event_pk: eventId, rule_pk: plan.rule.id, action_index: plan.actionIndex };
      // Already queued by an earlier delivery of this event: nothing more.
      const done = await this.#db.selectFrom('workflow_rule_trigger').select('job_id').where('event_pk', '=', eventId).where('rule_pk', '=', plan.rule.id)
        .where('action_index', '=', plan.actionIndex).executeTakeFirst();
      if (done) continue;
      const options = { maxAttempts: settings.forwardMaxAttempts, dedupeKey: `workflow:${eventId}:${plan.rule.id}:${plan.actionIndex}` };
      const job = plan.action.type === 'dicom'
        ? await this.#o.jobs.enqueue<SendPayload & { rule: RuleRef }>(SEND_JOB, {
          destination: plan.action.destination, ...(plan.sopInstanceUids ? { sopInstanceUids: plan.sopInstanceUids } : { studyInstanceUid: plan.studyInstanceUid }),
          ...(plan.action.transferSyntaxes ? { transferSyntaxes: plan.action.transferSyntaxes } : {}),
          requestedBy: ruleRequester(plan.rule), requestedThrough: 'dimse', rule: plan.rule,
        }, options)
        : plan.action.type === 'ai'
        ? await this.#o.jobs.enqueue<AiSendPayload>(AI_SEND_JOB, {
          node: plan.action.node, studyInstanceUid: plan.studyInstanceUid, rule: plan.rule, requestedBy: ruleRequester(plan.rule),
        }, options)
        : await this.#o.jobs.enqueue<StowPayload>(STOW_JOB, {
          destination: plan.action.destination, studyInstanceUid: plan.studyInstanceUid, ...(plan.sopInstanceUids ? { sopInstanceUids: plan.sopInstanceUids } : {}), rule: plan.rule,
        }, options);
      await this.#db.insertInto('workflow_rule_trigger').values({
        ...key, rule_version: plan.rule.version, study_instance_uid: plan.studyInstanceUid, job_id: job.id, created_at: this.#o.clock().toISOString(),
      }).onConflict((oc) => oc.columns(['event_pk', 'rule_pk', 'action_index']).doNothing()).execute();
      queued++;
    }
    if (queued) this.#o.wakeJobs?.();
    return queued;
  }

  /**
   * Which rules a stored study would trigger, and what they would do, as the engine would decide now: the
   * study-stable rules against the study's facts, the instance rules against each of its instances (up to
   * `maxInstances`). Every enabled rule is listed, with the conditions that did not hold.
   */
  async dryRun(studyInstanceUid: string, lastSource: string | null, maxInstances = 5000): Promise<DryRun | null> {
    const at = this.#o.clock();
    const facts = await studyFacts(this.#o.facts, studyInstanceUid, lastSource, at);
    if (!facts) return null;
    const results: DryRunRule[] = [];
    for (const rule of await this.#o.rules.active('study-stable')) {
      const outcome = evaluateRule(rule, facts, true);
      results.push({ rule: rule.ref, trigger: 'study-stable', matched: outcome.matched, unmet: outcome.unmet, matchedInstances: null,
        actions: outcome.matched ? await this.#describe(rule.definition.actions, studyInstanceUid) : [] });
    }
    const instanceRules = await this.#o.rules.active('instance');
    if (instanceRules.length) {
      const matches = new Map<number, string[]>();
      const unmet = new Map<number, DryRunRule['unmet']>();
      let seen = 0;
      outer: for (const s of (await this.#o.index.listSeries(studyInstanceUid, { limit: 1000, offset: 0 })).items) {
        for (let offset = 0; ; offset += 500) {
          const page = await this.#o.index.listInstances(s.seriesInstanceUid, { limit: 500, offset });
          for (const instance of page.items) {
            if (++seen > maxInstances) break outer;
            const f = await instanceFacts(this.#o.facts, instance.sopInstanceUid, instance.source, at);
            if (!f) continue;
            for (const rule of instanceRules) {
              const outcome = evaluateRule(rule, f, true);
              if (outcome.matched) matches.set(rule.ref.id, [...(matches.get(rule.ref.id) ?? []), instance.sopInstanceUid]);
              else if (!unmet.has(rule.ref.id)) unmet.set(rule.ref.id, outcome.unmet);
            }
          }
          if (offset + 500 >= page.total) break;
        }
      }
      for (const rule of instanceRules) {
        const matched = matches.get(rule.ref.id) ?? [];
        results.push({ rule: rule.ref, trigger: 'instance', matched: matched.length > 0, unmet: matched.length ? [] : unmet.get(rule.ref.id) ?? [],
          matchedInstances: matched.length, actions: matched.length ? await this.#describe(rule.definition.actions, studyInstanceUid, matched.length) : [] });
      }
    }
    return { studyInstanceUid, evaluatedAt: at.toISOString(), facts: { ...facts, at: at.toISOString() }, rules: results };
  }

  async #describe(actions: RuleAction[], studyInstanceUid: string, instances?: number): Promise<DryRunAction[]> {
    const out: DryRunAction[] = [];
    for (const action of actions) {
      const what = instances === undefined ? `study ${studyInstanceUid}` : `${instances} instance${instances === 1 ? '' : 's'} of study ${studyInstanceUid}, one job each`;
      if (action.type === 'ai') {
        out.push({ type: 'ai', destination: action.node, jobType: AI_SEND_JOB, description: `send ${what} to AI node ${action.node} (the AI module records the request)` });
      } else if (action.type === 'dicom') {
        const known = await this.#o.peerKnown(action.destination);
        out.push({ ...action, jobType: SEND_JOB, description: `C-STORE ${what} to DICOM peer ${action.destination}`, ...(known ? {} : { warning: `no DICOM peer ${action.destination} is configured` }) });
      } else {
        const destination = this.#o.settings().dicomwebDestinations.find((d) => d.name === action.destination);
        out.push({ ...action, jobType: STOW_JOB, description: `STOW-RS ${what} to ${destination ? destination.url : action.destination}`,
          ...(destination ? {} : { warning: `no DICOMweb destination ${action.destination} is configured (workflow.dicomwebDestinations)` }) });
      }
    }
    return out;
  }

  /** The jobs rules queued for a study (for the dry-run to compare with what happened). */
  async triggered(studyInstanceUid: string): Promise<{ eventId: number; ruleId: number; ruleVersion: number; actionIndex: number; jobId: number; createdAt: string }[]> {
    const rows = await this.#db.selectFrom('workflow_rule_trigger').selectAll().where('study_instance_uid', '=', studyInstanceUid).orderBy('event_pk').orderBy('rule_pk').orderBy('action_index').execute();
    return rows.map((r) => ({ eventId: Number(r.event_pk), ruleId: Number(r.rule_pk), ruleVersion: Number(r.rule_version), actionIndex: Number(r.action_index), jobId: Number(r.job_id), createdAt: r.created_at }));
  }
}

export interface DryRunAction {
  type: RuleAction['type'];
  destination: string;
  jobType: string;
  description: string;
  warning?: string;
}

export interface DryRunRule {
  rule: RuleRef;
  trigger: RuleTrigger;
  matched: boolean;
  unmet: { condition: string; detail: string }[];
  /** Instance rules: how many of the study's instances match. */
  matchedInstances: number | null;
  actions: DryRunAction[];
}

export interface DryRun {
  studyInstanceUid: string;
  evaluatedAt: string;
  facts: Omit<RoutingFacts, 'at'> & { at: string };
  rules: DryRunRule[];
}

/** Forward jobs run, and are audited, in the name of the rule that queued them. */
export function ruleRequester(rule: RuleRef): AuditPrincipal {
  return { kind: 'user', id: `workflow-rule:${rule.id}`, displayName: `routing rule "${rule.name}" v${rule.version}`, roles: [] };
}
