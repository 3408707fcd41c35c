/**
 * A FHIR search request as Atrium understands it. The syntax is @medplum/core's `parseSearchRequest`
 * (prefixes of date values and their formats, `_sort`, `_include`, `_count`, `_offset`, `_summary`),
 * taught our own search parameters (search-parameters.ts) so that it splits prefixes off date values only.
 * What it cannot tell is checked here against those same definitions: parameters we do not support
 * (ignored under `Prefer: handling=lenient`, the default, 400 under `handling=strict`, R4 search.html
 * 3.1.1.4), and modifiers we do not support (always 400: the spec does not let a server ignore them).
 */
import { OperationOutcomeError, indexSearchParameter, parseSearchRequest, type SearchRequest } from '@medplum/core';
import { DATE_PREFIXES, dateRange, type DatePrefix, type InstantRange } from './dates.ts';
import { AtriumError } from '../errors.ts';
import { invalid } from './operation-outcome.ts';

export type ParameterType = 'reference' | 'token' | 'date' | 'string';

/** A search parameter one of our resources supports: what the CapabilityStatement lists, and what is parsed. */
export interface ParameterDefinition {
  code: string;
  type: ParameterType;
  /** FHIRPath, as the R4 SearchParameter of the same code has it (for Medplum's parser and the CapabilityStatement). */
  expression: string;
  documentation: string;
  /** Modifiers supported besides none. */
  modifiers?: readonly string[];
  /** The canonical URL of the R4 SearchParameter it implements, when it is one of the specification's. */
  definition?: string;
}

/** A resource type's search: its parameters, the `_sort` codes, the `_include` values. */
export interface SearchDefinition {
  resourceType: string;
  parameters: readonly ParameterDefinition[];
  sorts: readonly string[];
  includes: readonly string[];
}

/** One `code[:modifier]=a,b` of the query: AND across filters, OR across its values. */
export interface SearchFilter {
  code: string;
  type: ParameterType;
  modifier: string | null;
  /** Date values: their prefix and range; other types: the text (comma splitting undone, escapes resolved). */
  values: string[];
  dates: { prefix: DatePrefix; range: InstantRange; text: string }[];
}

export interface ParsedSearch {
  filters: SearchFilter[];
  count: number;
  offset: number;
  sort: { code: string; descending: boolean }[];
  include: string[];
  /** `_summary=count`: the total only. */
  countOnly: boolean;
  /** `_summary=true`: the summary elements only (ImagingStudy without its instance lists). */
  summary: boolean;
  /** The query as understood, for the Bundle's self link (ignored parameters left out). */
  understood: URLSearchParams;
  /** Parameters left out under lenient handling. */
  ignored: string[];
}

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 1000;

const RESULT_PARAMETERS = new Set(['_count', '_offset', '_sort', '_include', '_summary', '_total', '_format', '_pretty']);

const indexed = new WeakSet<SearchDefinition>();

/** Teaches Medplum's parser our parameters' types (once per definition). */
function teach(definition: SearchDefinition): void {
  if (indexed.has(definition)) return;
  for (const p of definition.parameters) {
    indexSearchParameter({
      resourceType: 'SearchParameter', url: p.definition ?? `urn:atrium:fhir:SearchParameter:${definition.resourceType}-${p.code}`, name: p.code,
      status: 'active', description: p.documentation, code: p.code, base: [definition.resourceType as any], type: p.type, expression: p.expression,
    });
  }
  indexed.add(definition);
}

/** Values of one parameter occurrence, split at commas not escaped with `\` (R4 search.html 3.1.1.6). */
export function splitValues(value: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '\\' && i + 1 < value.length && /[\\,$|]/.test(value[i + 1]!)) { current += value[++i]; continue; }
    if (ch === ',') { out.push(current); current = ''; continue; }
    current += ch;
  }
  out.push(current);
  return out;
}

/** Whether `Prefer` asks for strict handling of unknown parameters. */
export function strictHandling(prefer: string | string[] | undefined): boolean {
  const text = [prefer ?? []].flat().join(',');
  return /(^|[,;\s])handling\s*=\s*"?strict"?/i.test(text);
}

/** Parses and checks a search query (`URLSearchParams` as received) for `definition`'s resource type. */
export function parseSearch(definition: SearchDefinition, query: URLSearchParams, strict: boolean): ParsedSearch {
  teach(definition);
  const byCode = new Map(definition.parameters.map((p) => [p.code, p]));
  const understood = new URLSearchParams();
  const kept = new URLSearchParams();
  const ignored: string[] = [];
  for (const [key, value] of query) {
    const colon = key.indexOf(':');
    const code = colon < 0 ? key : key.slice(0, colon);
    const modifier = colon < 0 ? null : key.slice(colon + 1);
    if (RESULT_PARAMETERS.has(code)) {
      if (code === '_include' && modifier !== null) throw invalid(`_include:${modifier} is not supported (no _include:iterate)`, key);
      if (code !== '_format' && code !== '_pretty') understood.append(key, value);
      kept.append(key, value);
      continue;
    }
    const parameter = byCode.get(code);
    if (!parameter) {
      if (strict) throw invalid(`unknown search parameter "${key}" for ${definition.resourceType} (Prefer: handling=strict); supported: ${[...byCode.keys()].join(', ')}`, key);
      ignored.push(key);
      continue;
    }
    if (modifier !== null && !(parameter.modifiers ?? []).includes(modifier)) {
      throw invalid(`modifier :${modifier} is not supported on ${definition.resourceType}.${code}${parameter.modifiers?.length ? ` (supported: ${parameter.modifiers.map((m) => `:${m}`).join(', ')})` : ''}`, key);
    }
    if (value === '') {
      if (strict) throw invalid(`search parameter "${key}" has no value`, key);
      ignored.push(key);
      continue;
    }
    understood.append(key, value);
    kept.append(key, value);
  }

  // Medplum checks a date value whole: each of an OR list goes to it on its own (the filters are ours, below).
  const forMedplum = new URLSearchParams();
  for (const [key, value] of kept) {
    const parameter = byCode.get(key.split(':', 1)[0]!);
    for (const v of parameter?.type === 'date' ? splitValues(value) : [value]) forMedplum.append(key, v);
  }
  let request: SearchRequest;
  try {
    request = parseSearchRequest(`${definition.resourceType}?${forMedplum.toString()}`);
  } catch (error) {
    if (error instanceof OperationOutcomeError) throw invalid(error.outcome.issue?.[0]?.details?.text ?? error.message);
    throw invalid((error as Error).message);
  }

  const filters: SearchFilter[] = [];
  for (const [key, value] of kept) {
    const colon = key.indexOf(':');
    const code = colon < 0 ? key : key.slice(0, colon);
    const parameter = byCode.get(code);
    if (!parameter) continue;
    const filter: SearchFilter = { code, type: parameter.type, modifier: colon < 0 ? null : key.slice(colon + 1), values: [], dates: [] };
    for (const text of splitValues(value)) {
      if (parameter.type === 'date') {
        // Medplum's parser has checked the format; the prefix is the first two letters when they are one.
        const head = text.slice(0, 2);
        const isPrefix = /^[a-z]{2}$/.test(head);
        if (isPrefix && !(DATE_PREFIXES as readonly string[]).includes(head)) throw invalid(`${code}: prefix "${head}" is not supported (supported: ${DATE_PREFIXES.join(', ')})`, code);
        const prefix = (isPrefix ? head : 'eq') as DatePrefix;
        const dateText = isPrefix ? text.slice(2) : text;
        filter.dates.push({ prefix, range: dateRange(dateText, code), text });
      } else {
        if (text === '') throw invalid(`${code}: an empty value in "${value}"`, code);
        filter.values.push(text);
      }
    }
    filters.push(filter);
  }

  const summaryValues = query.getAll('_summary');
  for (const s of summaryValues) if (!['count', 'true', 'false'].includes(s)) throw invalid(`_summary=${s} is not supported (count, true or false)`, '_summary');
  const countOnly = summaryValues.includes('count');
  const countText = query.get('_count');
  let count = DEFAULT_COUNT;
  if (countText !== null) {
    if (!/^\d+$/.test(countText)) throw invalid(`_count must be a whole number from 0 to ${MAX_COUNT}`, '_count');
    count = Math.min(Number(countText), MAX_COUNT);
  }
  const offsetText = query.get('_offset');
  if (offsetText !== null && !/^\d+$/.test(offsetText)) throw invalid('_offset must be a whole number from 0', '_offset');
  const offset = offsetText === null ? 0 : Number(offsetText);
  const total = query.get('_total');
  if (total !== null && !['none', 'estimate', 'accurate'].includes(total)) throw invalid('_total must be none, estimate or accurate', '_total');
  const format = query.get('_format');
  if (format !== null && !/^(json|application\/(fhir\+)?json)$/i.test(format.split(';')[0]!.trim())) {
    throw new AtriumError('not-acceptable', `_format=${format}: only JSON (application/fhir+json) is served`, { expression: '_format' });
  }

  const sort = (request.sortRules ?? []).map((rule) => {
    if (!definition.sorts.includes(rule.code)) throw invalid(`_sort=${rule.code} is not supported for ${definition.resourceType} (supported: ${definition.sorts.join(', ') || 'none'})`, '_sort');
    return { code: rule.code, descending: rule.descending === true };
  });
  const include = (request.include ?? []).map((target) => {
    const text = `${target.resourceType}:${target.searchParam}${target.targetType ? `:${target.targetType}` : ''}`;
    const plain = `${target.resourceType}:${target.searchParam}`;
    if (!definition.includes.includes(plain) || (target.targetType && target.targetType !== 'Patient')) {
      throw invalid(`_include=${text} is not supported for ${definition.resourceType} (supported: ${definition.includes.join(', ') || 'none'})`, '_include');
    }
    return plain;
  });
  return { filters, count: countOnly ? 0 : count, offset, sort, include: [...new Set(include)], countOnly, summary: summaryValues.includes('true'), understood, ignored };
}

/** A reference search value (`Patient/123`, `123`, or an absolute URL of ours) as the id of `type`; null when it names another type. */
export function referenceId(value: string, type: string, base: string): string | null {
  let v = value;
  if (v.startsWith(`${base}/`)) v = v.slice(base.length + 1);
  else if (/^https?:\/\//.test(v)) {
    // Another server's base with our path: only the type and id count.
    const m = /\/([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(v);
    if (!m) return null;
    v = `${m[1]}/${m[2]}`;
  }
  v = v.replace(/\/_history\/[^/]+$/, '');
  const slash = v.indexOf('/');
  if (slash < 0) return v;
  return v.slice(0, slash) === type ? v.slice(slash + 1) : null;
}

/** A token search value as `{ system, code }`: `system|code`, `|code` (no system: ''), or `code` (any system: null). */
export function tokenValue(value: string): { system: string | null; code: string } {
  const bar = value.indexOf('|');
  if (bar < 0) return { system: null, code: value };
  return { system: value.slice(0, bar), code: value.slice(bar + 1) };
}
