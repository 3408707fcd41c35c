/**
 * Prefetch rules as data (docs/prefetch.md): which orders a rule applies to, which of the patient's earlier
 * studies are relevant to them, and where to look. Pure: validation and matching, no I/O.
 */
import { AtriumError } from '../errors.ts';

export interface PrefetchRuleDefinition {
  /** Which orders: by the modality of a scheduled step, the requested procedure code, or a body region
   * named in the procedure's code meaning or description. An empty list matches any. */
  order: { modalities: string[]; procedureCodes: string[]; bodyRegions: string[] };
  /** Which priors: any of these modalities in the study, a body region in Body Part Examined or the study
   * description, studied within `lookbackDays`; the `maxStudies` most recent. */
  priors: { modalities: string[]; bodyRegions: string[]; lookbackDays: number; maxStudies: number };
  /** AE titles of exchange peers (GET /api/dicom/peers) asked by C-FIND; Atrium's own index is always searched. */
  sources: string[];
  /** How a remote prior is fetched: C-MOVE to Atrium (the peer must know Atrium as a move destination) or C-GET. */
  method: 'move' | 'get';
}

export interface PrefetchRule extends PrefetchRuleDefinition {
  id: number;
  name: string;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
  updatedBy: string | null;
}

export type PrefetchRuleInput = PrefetchRuleDefinition & { name: string; enabled: boolean };

/** What an order offers the rules. */
export interface OrderFacts {
  modalities: string[];
  procedureCode: string | null;
  /** Code meaning, requested procedure description, step descriptions: searched for body regions. */
  texts: string[];
}

/** What a candidate prior study offers the rules (from Atrium's index or a C-FIND response). */
export interface CandidateStudy {
  studyInstanceUid: string;
  /** YYYYMMDD, or null when the study carries none (not relevant: its age is unknown). */
  studyDate: string | null;
  studyDescription: string | null;
  modalities: string[];
  bodyParts: string[];
  /** `local`, or the AE title of the remote archive that answered. */
  source: string;
}

const AE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;

function strings(value: unknown, key: string, pattern?: RegExp): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.trim() === '')) throw new AtriumError('invalid-input', `${key} must be a list of non-empty strings`, { key });
  const list = (value as string[]).map((v) => v.trim());
  for (const v of list) if (pattern && !pattern.test(v)) throw new AtriumError('invalid-input', `${key}: "${v}" is not valid`, { key });
  return list;
}

function object(value: unknown, key: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new AtriumError('invalid-input', `${key} must be an object`, { key });
  return value as Record<string, unknown>;
}

function wholeNumber(value: unknown, key: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new AtriumError('invalid-input', `${key} must be a whole number from ${min} to ${max}`, { key });
  return value;
}

/** A rule as a REST body gives it, checked; every problem names its key. */
export function parseRuleInput(body: unknown): PrefetchRuleInput {
  const b = object(body ?? null, 'body');
  if (typeof b.name !== 'string' || !b.name.trim() || b.name.length > 128) throw new AtriumError('invalid-input', 'name is required (at most 128 characters)', { key: 'name' });
  if (b.enabled !== undefined && typeof b.enabled !== 'boolean') throw new AtriumError('invalid-input', 'enabled must be true or false', { key: 'enabled' });
  const order = object(b.order, 'order');
  const priors = object(b.priors, 'priors');
  const method = b.method ?? 'move';
  if (method !== 'move' && method !== 'get') throw new AtriumError('invalid-input', 'method must be move or get', { key: 'method' });
  const modality = /^[A-Z0-9]{1,16}$/;
  return {
    name: b.name.trim(),
    enabled: b.enabled ?? true,
    order: {
      modalities: strings(order.modalities, 'order.modalities', modality),
      procedureCodes: strings(order.procedureCodes, 'order.procedureCodes'),
      bodyRegions: strings(order.bodyRegions, 'order.bodyRegions'),
    },
    priors: {
      modalities: strings(priors.modalities, 'priors.modalities', modality),
      bodyRegions: strings(priors.bodyRegions, 'priors.bodyRegions'),
      lookbackDays: wholeNumber(priors.lookbackDays, 'priors.lookbackDays', 1, 36_500),
      maxStudies: wholeNumber(priors.maxStudies ?? 3, 'priors.maxStudies', 1, 100),
    },
    sources: strings(b.sources, 'sources', AE),
    method,
  };
}

/** `*` and `?` wildcards, case-insensitive (as an administrator writes `CT*CHEST*`). */
function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
}

/** A region as a word of the text (CHEST in "CT CHEST W/O", not in "CHESTER"); `_` and `^` separate words too. */
function mentions(texts: string[], region: string): boolean {
  const word = new RegExp(`(^|[^A-Z0-9])${region.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^A-Z0-9])`, 'i');
  return texts.some((t) => word.test(t));
}

export function ruleAppliesTo(rule: PrefetchRuleDefinition, order: OrderFacts): boolean {
  const o = rule.order;
  if (o.modalities.length && !order.modalities.some((m) => o.modalities.includes(m.toUpperCase()))) return false;
  if (o.procedureCodes.length && !(order.procedureCode && o.procedureCodes.some((p) => wildcard(p).test(order.procedureCode!)))) return false;
  if (o.bodyRegions.length && !o.bodyRegions.some((r) => mentions(order.texts, r))) return false;
  return true;
}

/** DICOM DA of the day `days` before `now` (UTC). */
export function daysBefore(now: Date, days: number): string {
  const d = new Date(now.getTime() - days * 86_400_000);
  return d.toISOString().slice(0, 10).replace(/-/g, '');
}

export function isRelevant(rule: PrefetchRuleDefinition, study: CandidateStudy, now: Date): boolean {
  const p = rule.priors;
  if (!study.studyDate || study.studyDate < daysBefore(now, p.lookbackDays)) return false;
  if (p.modalities.length && !study.modalities.some((m) => p.modalities.includes(m.toUpperCase()))) return false;
  if (p.bodyRegions.length) {
    const parts = study.bodyParts.map((b) => b.toUpperCase());
    const byPart = p.bodyRegions.some((r) => parts.includes(r.toUpperCase()));
    if (!byPart && !p.bodyRegions.some((r) => mentions(study.studyDescription ? [study.studyDescription] : [], r))) return false;
  }
  return true;
}

/**
 * The priors each applicable rule selects: relevant candidates, the most recent first, at most the rule's
 * `maxStudies`; a study selected by two rules is listed once (under the first). Atrium's own copy of a study
 * is preferred over a remote one.
 */
export function selectPriors(rules: readonly PrefetchRule[], candidates: readonly CandidateStudy[], now: Date, excludeStudyUid: string | null): { rule: string; study: CandidateStudy }[] {
  const byUid = new Map<string, CandidateStudy>();
  for (const c of candidates) {
    if (c.studyInstanceUid === excludeStudyUid) continue;
    const seen = byUid.get(c.studyInstanceUid);
    if (!seen || (seen.source !== 'local' && c.source === 'local')) byUid.set(c.studyInstanceUid, c);
  }
  const chosen = new Map<string, { rule: string; study: CandidateStudy }>();
  for (const rule of rules) {
    const relevant = [...byUid.values()].filter((s) => isRelevant(rule, s, now))
      .sort((a, b) => (b.studyDate ?? '').localeCompare(a.studyDate ?? '') || a.studyInstanceUid.localeCompare(b.studyInstanceUid))
      .slice(0, rule.priors.maxStudies);
    for (const study of relevant) if (!chosen.has(study.studyInstanceUid)) chosen.set(study.studyInstanceUid, { rule: rule.name, study });
  }
  return [...chosen.values()];
}
