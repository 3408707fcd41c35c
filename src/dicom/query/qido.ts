/** QIDO-RS search parameters (PS3.18 10.6.1) as an IndexQuery. */
import { AtriumError } from '../../errors.ts';
import { tagOfKeyword, vrOf } from '../dictionary.ts';
import { T, type IndexQuery, type QueryKey, type QueryLevel } from './model.ts';
import { validateQuery } from './validate.ts';

export interface QidoQueryOptions {
  caseInsensitivePersonNames?: boolean;
  /** Largest `limit` honoured (a client's larger limit is lowered, PS3.18 10.6.1.2.3 allows it). */
  maxLimit?: number;
  /** Combined datetime matching of date/time range pairs (default true). */
  combinedDateTime?: boolean;
}

// Attributes returned by default (PS3.18 Tables 10.6.3-3, -4 and -5), RetrieveURL excepted: it is the
// transport's, which knows its base URL. A series or instance search returns the parent levels' too.
const STUDY_DEFAULTS: number[] = [
  T.SpecificCharacterSet, T.StudyDate, T.StudyTime, T.AccessionNumber, T.InstanceAvailability, T.ModalitiesInStudy,
  T.ReferringPhysicianName, T.TimezoneOffsetFromUTC, T.PatientName, T.PatientID, T.PatientBirthDate, T.PatientSex,
  T.StudyInstanceUID, T.StudyID, T.NumberOfStudyRelatedSeries, T.NumberOfStudyRelatedInstances,
];
const SERIES_DEFAULTS: number[] = [
  T.Modality, T.SeriesDescription, T.SeriesInstanceUID, T.SeriesNumber, T.NumberOfSeriesRelatedInstances,
  T.PerformedProcedureStepStartDate, T.PerformedProcedureStepStartTime, T.RequestAttributesSequence,
];
const INSTANCE_DEFAULTS: number[] = [T.SOPClassUID, T.SOPInstanceUID, T.InstanceNumber, T.Rows, T.Columns, T.BitsAllocated, T.NumberOfFrames];

export function qidoDefaultAttributes(level: QueryLevel): number[] {
  const out = [...STUDY_DEFAULTS];
  if (level === 'SERIES' || level === 'IMAGE') out.push(...SERIES_DEFAULTS);
  if (level === 'IMAGE') out.push(...INSTANCE_DEFAULTS);
  return out;
}

const RESERVED = new Set(['includefield', 'fuzzymatching', 'limit', 'offset']);

/**
 * `level` is STUDY for /studies, SERIES for .../series, IMAGE for .../instances; for nested resources
 * (/studies/{uid}/series) the caller passes the parent UIDs as keys (StudyInstanceUID=...). Attributes are
 * keywords or 8-digit hex tags, sequence items as dotted paths (RequestAttributesSequence.RequestedProcedureID);
 * UID lists are comma- or backslash-separated. QIDO-RS searches are relational: no parent key is needed.
 */
export function queryFromQidoParams(
  level: 'STUDY' | 'SERIES' | 'IMAGE',
  params: URLSearchParams | Record<string, string | string[]>,
  options: QidoQueryOptions = {},
): IndexQuery {
  const entries: [string, string][] = params instanceof URLSearchParams
    ? [...params.entries()]
    : Object.entries(params).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x] as [string, string]) : [[k, v] as [string, string]]));
  const keys: QueryKey[] = [];
  let include: number[] | 'all' = qidoDefaultAttributes(level);
  const query: IndexQuery = { level, root: 'STUDY', keys, relational: true, combinedDateTime: options.combinedDateTime ?? true };
  if (options.caseInsensitivePersonNames) query.caseInsensitivePersonNames = true;

  for (const [rawName, rawValue] of entries) {
    const name = rawName.trim();
    const lower = name.toLowerCase();
    if (RESERVED.has(lower)) {
      if (lower === 'includefield') {
        for (const f of rawValue.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
          if (f.toLowerCase() === 'all') include = 'all';
          else if (include !== 'all') include.push(attributePath(f, 'includefield')[0]);
        }
      } else if (lower === 'fuzzymatching') {
        if (!/^(true|false)$/i.test(rawValue)) throw parameterError('fuzzymatching', `must be true or false, not "${rawValue}"`);
        query.fuzzy = rawValue.toLowerCase() === 'true';
      } else {
        if (!/^\d+$/.test(rawValue.trim())) throw parameterError(lower, `must be a non-negative integer, not "${rawValue}"`);
        const n = Number(rawValue.trim());
        if (lower === 'limit') query.limit = options.maxLimit !== undefined ? Math.min(n, options.maxLimit) : n;
        else query.offset = n;
      }
      continue;
    }
    const path = attributePath(name, name);
    addKey(keys, path, rawValue);
  }
  if (query.limit === undefined && options.maxLimit !== undefined) query.limit = options.maxLimit;
  query.include = include === 'all' ? 'all' : [...new Set(include)];
  validateQuery(query);
  return query;
}

function addKey(keys: QueryKey[], path: number[], rawValue: string): void {
  const [tag, ...rest] = path;
  if (rest.length > 0) {
    let key = keys.find((k) => k.tag === tag);
    if (!key) keys.push(key = { tag, vr: 'SQ', value: '', items: [[]] });
    key.items ??= [[]];
    if (key.items.length === 0) key.items.push([]);
    addKey(key.items[0], rest, rawValue);
    return;
  }
  const vr = vrOf(tag);
  const value = vr === 'UI' ? rawValue.split(/[,\\]/).map((u) => u.trim()).filter((u) => u !== '').join('\\') : rawValue.trim();
  const existing = keys.find((k) => k.tag === tag);
  // A repeated parameter adds values: any of them may match (like a list of UIDs).
  if (existing) existing.value = existing.value === '' ? value : value === '' ? existing.value : `${existing.value}\\${value}`;
  else keys.push({ tag, vr, value });
}

/** "PatientName", "00100010" or "RequestAttributesSequence.RequestedProcedureID" as tags. */
function attributePath(text: string, parameter: string): number[] {
  return text.split('.').map((part) => {
    if (/^[0-9A-Fa-f]{8}$/.test(part)) return parseInt(part, 16) >>> 0;
    const tag = tagOfKeyword(part);
    if (tag === undefined) throw parameterError(parameter, `"${part}" is neither a DICOM keyword nor a tag`);
    return tag;
  });
}

function parameterError(parameter: string, message: string): AtriumError {
  return new AtriumError('invalid-input', `query parameter ${parameter}: ${message}`, { parameter });
}
