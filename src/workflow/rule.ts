/**
 * The routing rule language (docs/workflow.md "Rules"): a rule is data, a JSON object with a trigger, conditions
 * on attributes and actions. Pure: validation, compilation of the patterns and evaluation against the facts of
 * an instance or a study; no I/O.
 */

export type RuleTrigger = 'instance' | 'study-stable';
export const RULE_TRIGGERS: readonly RuleTrigger[] = ['instance', 'study-stable'];

/** The order priorities (src/ris/model.ts). */
export const ORDER_PRIORITIES = ['STAT', 'ASAP', 'URGENT', 'ROUTINE'] as const;

/**
 * Every list is "any of"; every condition given must hold (an absent or empty one holds for anything).
 * Patterns are DICOM wildcards (`*` any run, `?` one character), matched case-insensitively on the whole value.
 */
export interface RuleConditions {
  /** Modality of the instance (instance rules) or any modality in the study (study-stable rules), exact. */
  modality?: string[];
  /** Calling AE title of the association that stored it (source `dimse:<AE>`), patterns. */
  sourceAe?: string[];
  /** The transport it came by (`dimse:*`, `stow`, `import:*`, `retrieve:*`), patterns. */
  source?: string[];
  studyDescription?: string[];
  /** Code values of the Procedure Code Sequence, the Requested Procedure Code Sequence, or the matched order's requested procedure code, patterns. */
  procedureCode?: string[];
  /** Body Part Examined of the instance's series (or any series of the study), patterns. */
  bodyPart?: string[];
  /** Priority of the order the study is matched to (by its accession number): STAT, ASAP, URGENT, ROUTINE. No order: no match. */
  priority?: string[];
  /** Station Name of the instance's series (or any series of the study), patterns. */
  station?: string[];
  /** The local time of the event (the node's time zone), `HH:MM` to `HH:MM`, `to` excluded; a range may pass midnight. */
  timeOfDay?: { from: string; to: string };
}

export type RuleAction =
  /** C-STORE to a DICOM peer of the peer registry (/api/dicom/peers), by the exchange module's send job. */
  | { type: 'dicom'; destination: string; transferSyntaxes?: string[] }
  /** STOW-RS to a DICOMweb destination of the configuration (`workflow.dicomwebDestinations`). */
  | { type: 'dicomweb'; destination: string }
  /**
   * The study to an AI node of the AI registry (src/ai/, docs/ai.md), by name: the AI module's `ai.send` job
   * records the request and forwards over the node's endpoint. Study-stable rules only.
   */
  | { type: 'ai'; node: string };

export interface RuleDefinition {
  name: string;
  description?: string;
  trigger: RuleTrigger;
  conditions: RuleConditions;
  actions: RuleAction[];
}

/** What a rule is evaluated against. */
export interface RoutingFacts {
  studyInstanceUid: string;
  modalities: string[];
  source: string | null;
  studyDescription: string | null;
  procedureCodes: string[];
  bodyParts: string[];
  /** The matched order's priority; null when no order is matched. */
  priority: string | null;
  stations: string[];
  /** When the event happened, for timeOfDay (its local hour and minute). */
  at: Date;
}

export interface RuleProblem {
  path: string;
  message: string;
}

const PATTERN_KEYS = ['sourceAe', 'source', 'studyDescription', 'procedureCode', 'bodyPart', 'station'] as const;
const CONDITION_KEYS = ['modality', ...PATTERN_KEYS, 'priority', 'timeOfDay'] as const;
export type ConditionName = (typeof CONDITION_KEYS)[number];

const TIME = /^([01]\d|2[0-3]):([0-5]\d)$/;
const AE_TITLE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;
const UID = /^[0-9]+(\.[0-9]+)*$/;
const NAME = /^[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]{0,99}$/;

/**
 * Checks a rule as it came (from REST or the console) and returns the definition, normalized (modality and
 * priority in upper case, empty lists left out), or every problem with the path of the field it is in.
 */
export function validateRule(input: unknown): { rule: RuleDefinition; problems: [] } | { rule: null; problems: RuleProblem[] } {
  const problems: RuleProblem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  if (!input || typeof input !== 'object' || Array.isArray(input)) return { rule: null, problems: [{ path: '', message: 'a rule is a JSON object' }] };
  const b = input as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!['name', 'description', 'trigger', 'conditions', 'actions'].includes(key)) add(key, `unknown field "${key}"`);
  const name = typeof b.name === 'string' ? b.name.trim() : '';
  if (!NAME.test(name)) add('name', 'name is required: 1 to 100 characters, no control characters');
  if (b.description !== undefined && typeof b.description !== 'string') add('description', 'description must be text');
  if (!RULE_TRIGGERS.includes(b.trigger as RuleTrigger)) add('trigger', `trigger must be one of ${RULE_TRIGGERS.join(', ')}`);
  const conditions: RuleConditions = {};
  const c = b.conditions ?? {};
  if (typeof c !== 'object' || c === null || Array.isArray(c)) add('conditions', 'conditions must be an object');
  else {
    const given = c as Record<string, unknown>;
    for (const key of Object.keys(given)) if (!(CONDITION_KEYS as readonly string[]).includes(key)) add(`conditions.${key}`, `unknown condition "${key}" (known: ${CONDITION_KEYS.join(', ')})`);
    const list = (key: string): string[] | undefined => {
      const v = given[key];
      if (v === undefined || v === null) return undefined;
      const values = typeof v === 'string' ? [v] : v;
      if (!Array.isArray(values) || values.some((x) => typeof x !== 'string' || x.trim() === '')) {
        add(`conditions.${key}`, `${key} must be a list of non-empty texts`);
        return undefined;
      }
      return values.length ? values.map((x: string) => x.trim()) : undefined;
    };
    const modality = list('modality');
    if (modality) {
      modality.forEach((m, i) => { if (!/^[A-Za-z0-9]{1,16}$/.test(m)) add(`conditions.modality.${i}`, `"${m}" is not a modality (CT, MR, US ...)`); });
      conditions.modality = modality.map((m) => m.toUpperCase());
    }
    for (const key of PATTERN_KEYS) {
      const patterns = list(key);
      if (patterns) {
        patterns.forEach((p, i) => { if (p.length > 200) add(`conditions.${key}.${i}`, 'a pattern is at most 200 characters'); });
        conditions[key] = patterns;
      }
    }
    const priority = list('priority');
    if (priority) {
      priority.forEach((p, i) => { if (!(ORDER_PRIORITIES as readonly string[]).includes(p.toUpperCase())) add(`conditions.priority.${i}`, `priority must be one of ${ORDER_PRIORITIES.join(', ')}`); });
      conditions.priority = priority.map((p) => p.toUpperCase());
    }
    const t = given.timeOfDay;
    if (t !== undefined && t !== null) {
      const range = t as { from?: unknown; to?: unknown };
      if (typeof t !== 'object' || typeof range.from !== 'string' || !TIME.test(range.from) || typeof range.to !== 'string' || !TIME.test(range.to)) {
        add('conditions.timeOfDay', 'timeOfDay is { "from": "HH:MM", "to": "HH:MM" } (24-hour local time)');
      } else if (range.from === range.to) add('conditions.timeOfDay', 'timeOfDay from and to are the same: give the whole day by leaving timeOfDay out');
      else conditions.timeOfDay = { from: range.from, to: range.to };
    }
  }
  const actions: RuleAction[] = [];
  if (!Array.isArray(b.actions) || b.actions.length === 0) add('actions', 'a rule needs at least one action');
  else {
    b.actions.forEach((a: unknown, i: number) => {
      const at = `actions.${i}`;
      const action = a as Record<string, unknown> | null;
      if (!action || typeof action !== 'object') return add(at, 'an action is an object');
      const destination = typeof action.destination === 'string' ? action.destination.trim() : '';
      if (action.type === 'dicom') {
        if (!AE_TITLE.test(destination)) add(`${at}.destination`, 'destination is the AE title of a DICOM peer (1 to 16 characters, no backslash)');
        const ts = action.transferSyntaxes;
        if (ts !== undefined && (!Array.isArray(ts) || ts.some((x) => typeof x !== 'string' || !UID.test(x)))) add(`${at}.transferSyntaxes`, 'transferSyntaxes is a list of transfer syntax UIDs');
        actions.push({ type: 'dicom', destination, ...(Array.isArray(ts) && ts.length ? { transferSyntaxes: ts as string[] } : {}) });
      } else if (action.type === 'dicomweb') {
        if (!destination) add(`${at}.destination`, 'destination is the name of a DICOMweb destination (workflow.dicomwebDestinations)');
        actions.push({ type: 'dicomweb', destination });
      } else if (action.type === 'ai') {
        const node = typeof action.node === 'string' ? action.node.trim() : '';
        if (!NAME.test(node)) add(`${at}.node`, 'node is the name of an AI node of the AI registry (/api/ai/nodes)');
        if (b.trigger === 'instance') add(`${at}.type`, 'an ai action sends the whole study: use it in a study-stable rule');
        actions.push({ type: 'ai', node });
      } else add(`${at}.type`, 'type must be dicom (C-STORE), dicomweb (STOW-RS) or ai (an AI node)');
    });
  }
  if (problems.length) return { rule: null, problems };
  const rule: RuleDefinition = { name, trigger: b.trigger as RuleTrigger, conditions, actions };
  if (typeof b.description === 'string' && b.description.trim()) rule.description = b.description.trim();
  return { rule, problems: [] };
}

/** A DICOM wildcard pattern as a RegExp on the whole value, case-insensitive. */
export function wildcard(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'is');
}

/** The calling AE title of a `dimse:<AE>` source, else null. */
export function sourceAeOf(source: string | null): string | null {
  return source?.startsWith('dimse:') ? source.slice('dimse:'.length) : null;
}

/** A rule ready to evaluate many times: its patterns compiled once. */
export interface CompiledRule<R = unknown> {
  ref: R;
  definition: RuleDefinition;
  tests: { name: ConditionName; test(facts: RoutingFacts): boolean; describe(facts: RoutingFacts): string }[];
}

const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

export function compileRule<R>(definition: RuleDefinition, ref: R): CompiledRule<R> {
  const c = definition.conditions;
  const tests: CompiledRule['tests'] = [];
  const anyOf = (name: ConditionName, patterns: string[] | undefined, values: (f: RoutingFacts) => (string | null)[], exact = false) => {
    if (!patterns?.length) return;
    const res = exact ? null : patterns.map(wildcard);
    const set = exact ? new Set(patterns.map((p) => p.toUpperCase())) : null;
    tests.push({
      name,
      test: (f) => values(f).some((v) => v !== null && (set ? set.has(v.toUpperCase()) : res!.some((re) => re.test(v)))),
      describe: (f) => `${name} ${JSON.stringify(values(f).filter((v) => v !== null))} against ${JSON.stringify(patterns)}`,
    });
  };
  anyOf('modality', c.modality, (f) => f.modalities, true);
  anyOf('sourceAe', c.sourceAe, (f) => [sourceAeOf(f.source)]);
  anyOf('source', c.source, (f) => [f.source]);
  anyOf('studyDescription', c.studyDescription, (f) => [f.studyDescription]);
  anyOf('procedureCode', c.procedureCode, (f) => f.procedureCodes);
  anyOf('bodyPart', c.bodyPart, (f) => f.bodyParts);
  anyOf('priority', c.priority, (f) => [f.priority], true);
  anyOf('station', c.station, (f) => f.stations);
  if (c.timeOfDay) {
    const from = minutes(c.timeOfDay.from);
    const to = minutes(c.timeOfDay.to);
    const range = `${c.timeOfDay.from}-${c.timeOfDay.to}`;
    tests.push({
      name: 'timeOfDay',
      test: (f) => {
        const m = f.at.getHours() * 60 + f.at.getMinutes();
        return from < to ? m >= from && m < to : m >= from || m < to;
      },
      describe: (f) => `time ${String(f.at.getHours()).padStart(2, '0')}:${String(f.at.getMinutes()).padStart(2, '0')} against ${range}`,
    });
  }
  return { ref, definition, tests };
}

export interface RuleOutcome<R = unknown> {
  ref: R;
  matched: boolean;
  /** The conditions that did not hold, each with what was compared (empty when matched). */
  unmet: { condition: ConditionName; detail: string }[];
}

/** Evaluates one rule; all its conditions must hold. */
export function evaluateRule<R>(rule: CompiledRule<R>, facts: RoutingFacts, explain = false): RuleOutcome<R> {
  const unmet: RuleOutcome['unmet'] = [];
  for (const t of rule.tests) {
    if (!t.test(facts)) {
      if (!explain) return { ref: rule.ref, matched: false, unmet };
      unmet.push({ condition: t.name, detail: t.describe(facts) });
    }
  }
  return { ref: rule.ref, matched: unmet.length === 0, unmet };
}
