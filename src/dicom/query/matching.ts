/**
 * Attribute matching of PS3.4 C.2.2.2, pure: what kind of matching a key asks for, its validation, and the
 * in-memory matcher used on stored DICOM JSON where the index has no column.
 */
import { AtriumError } from '../../errors.ts';
import type { DicomJsonAttribute, DicomJsonDataSet, DicomJsonPersonName } from '../dicom-json.ts';
import { formatTagParen, hexTag, type QueryKey } from './model.ts';
import { isTolerableUid } from '../uid.ts';

/** VRs for which `*` and `?` are wild cards (C.2.2.2.4). */
export const WILDCARD_VRS: ReadonlySet<string> = new Set(['AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT']);
const RANGE_VRS: ReadonlySet<string> = new Set(['DA', 'TM', 'DT']);

export type Matcher =
  | { kind: 'universal' }
  /** Single Value Matching (C.2.2.2.1); for DA/TM/DT a single value is matched by meaning, as a range. */
  | { kind: 'single'; value: string }
  /** List of UID Matching (C.2.2.2.2), and a backslash list of single values for other VRs. */
  | { kind: 'list'; values: string[] }
  /** Wild Card Matching (C.2.2.2.4): the raw pattern with `*` and `?`. */
  | { kind: 'wildcard'; pattern: string }
  /** Range Matching (C.2.2.2.5): bounds normalized for string comparison; `form` tells "A-B", "A-" or "-B". */
  | { kind: 'range'; from?: string; to?: string; form: 'closed' | 'from' | 'to' }
  /** Sequence Matching (C.2.2.2.6): one item of item keys. */
  | { kind: 'sequence'; item: QueryKey[] };

export interface NameOptions {
  fuzzy?: boolean;
  caseInsensitive?: boolean;
}

export function invalid(tag: number, message: string): AtriumError {
  return new AtriumError('invalid-input', `${formatTagParen(tag)}: ${message}`, { tag: hexTag(tag), element: formatTagParen(tag) });
}

/** Trailing spaces are padding, never significant (PS3.5 6.2); leading spaces only for PN/LT/ST/UT/UC. */
function trimKey(value: string, vr: string): string {
  const v = value.replace(/[\0 ]+$/, '');
  return ['PN', 'LT', 'ST', 'UT', 'UC'].includes(vr) ? v : v.replace(/^ +/, '');
}

/** The matching a key asks for; throws invalid-input for values the standard does not allow. */
export function matcherOf(key: QueryKey): Matcher {
  if (key.vr === 'SQ' || key.items) {
    const items = key.items ?? [];
    if (items.length > 1) throw invalid(key.tag, 'sequence matching takes a single item (PS3.4 C.2.2.2.6)');
    const item = items[0] ?? [];
    return item.length === 0 ? { kind: 'universal' } : { kind: 'sequence', item };
  }
  const v = trimKey(key.value, key.vr);
  if (v === '') return { kind: 'universal' };
  const vr = key.vr;
  if (vr === 'UI') {
    if (/[*?]/.test(v)) throw invalid(key.tag, 'wild cards are not allowed in a UID key (PS3.4 C.2.2.2.4)');
    const values = v.split('\\').map((u) => u.trim()).filter((u) => u !== '');
    for (const u of values) {
      // UIDs that break PS3.5 9.1 (old equipment) may be archived, so they can be asked for: see isTolerableUid.
      if (!isTolerableUid(u)) throw invalid(key.tag, `"${u}" is not a UID`);
    }
    return values.length === 1 ? { kind: 'single', value: values[0] } : { kind: 'list', values };
  }
  if (RANGE_VRS.has(vr)) {
    if (/[*?]/.test(v)) throw invalid(key.tag, `wild cards are not allowed in a ${vr} key (PS3.4 C.2.2.2.4)`);
    return rangeMatcher(key.tag, vr, v);
  }
  if (WILDCARD_VRS.has(vr) && /[*?]/.test(v)) {
    if (/^\*+$/.test(v)) return { kind: 'universal' }; // C.2.2.2.4 note 1
    return { kind: 'wildcard', pattern: v };
  }
  if (vr === 'IS' || vr === 'DS' || vr === 'US' || vr === 'SS' || vr === 'UL' || vr === 'SL' || vr === 'FL' || vr === 'FD' || vr === 'SV' || vr === 'UV') {
    const values = v.split('\\').map((n) => n.trim());
    for (const n of values) {
      const integer = !['DS', 'FL', 'FD'].includes(vr);
      if (n === '' || !Number.isFinite(Number(n)) || (integer && !/^[+-]?\d+$/.test(n))) {
        throw invalid(key.tag, `"${n}" is not a valid ${vr} value`);
      }
    }
    return values.length === 1 ? { kind: 'single', value: values[0] } : { kind: 'list', values };
  }
  if (v.includes('\\') && vr !== 'LT' && vr !== 'ST' && vr !== 'UT' && vr !== 'UR') {
    // Several values in a key: any of them may match (as a list of single values, like C.2.2.2.2).
    return { kind: 'list', values: v.split('\\').map((x) => trimKey(x, vr)).filter((x) => x !== '') };
  }
  return { kind: 'single', value: v };
}

const DATE = /^\d{8}$/;
const TIME = /^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$/;
const DATETIME = /^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$/;

function rangeMatcher(tag: number, vr: string, raw: string): Matcher {
  // Old ACR-NEMA style separators (1993.01.31, 10:30) are accepted and dropped.
  const clean = (s: string) => s.trim().replace(vr === 'DA' ? /\./g : vr === 'TM' ? /:/g : /$^/g, '');
  const check = (s: string) => {
    const ok = vr === 'DA' ? DATE.test(s) : vr === 'TM' ? TIME.test(s) : DATETIME.test(s);
    if (!ok) throw invalid(tag, `"${s}" is not a valid ${vr} value`);
    if (vr === 'DA' && !validDate(s)) throw invalid(tag, `"${s}" is not a calendar date`);
    if (vr === 'TM' && !validTime(s)) throw invalid(tag, `"${s}" is not a time of day`);
    return s;
  };
  // A DT value may carry a negative UTC offset; only a "-" outside an offset separates a range (C.2.2.2.1.3 note 3).
  const dash = vr === 'DT' ? dtRangeDash(raw) : raw.indexOf('-');
  if (dash < 0) {
    const v = check(clean(raw));
    return { kind: 'single', value: v };
  }
  if (raw.indexOf('-', dash + 1) >= 0 && vr !== 'DT') throw invalid(tag, `"${raw}" is not a valid ${vr} range`);
  const a = clean(raw.slice(0, dash));
  const b = clean(raw.slice(dash + 1));
  if (a === '' && b === '') throw invalid(tag, `"${raw}" is a range without bounds`);
  const from = a === '' ? undefined : lowerBound(vr, check(a));
  const to = b === '' ? undefined : upperBound(vr, check(b));
  if (from !== undefined && to !== undefined && from > to) {
    throw invalid(tag, `range "${raw}" ends before it starts (PS3.4 C.2.2.2.5 requires the first bound to be the earlier)`);
  }
  return { kind: 'range', from, to, form: from === undefined ? 'to' : to === undefined ? 'from' : 'closed' };
}

function dtRangeDash(raw: string): number {
  // "A-B": the separator is the dash not followed by exactly an offset at the end.
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== '-') continue;
    if (/^\d{4}$/.test(raw.slice(i + 1)) && i >= 14) continue; // "YYYYMMDDHHMMSS-0500"
    return i;
  }
  return -1;
}

function validTime(s: string): boolean {
  const [hh, mm, ss] = [s.slice(0, 2), s.slice(2, 4), s.slice(4, 6)].map((x) => (x === '' ? 0 : Number(x)));
  return hh < 24 && mm < 60 && ss < 61; // 60: a leap second
}

function validDate(s: string): boolean {
  const y = Number(s.slice(0, 4)), m = Number(s.slice(4, 6)), d = Number(s.slice(6, 8));
  if (m < 1 || m > 12 || d < 1) return false;
  return d <= new Date(Date.UTC(y, m, 0)).getUTCDate();
}

/** The earliest moment a (possibly partial) TM/DT value denotes, as a comparable string. */
export function lowerBound(vr: string, v: string): string {
  if (vr === 'TM') return v.replace(/\..*/, '').padEnd(6, '0') + (v.includes('.') ? '.' + v.split('.')[1].padEnd(6, '0') : '');
  if (vr === 'DT') return stripOffset(v).replace(/\..*/, '').padEnd(14, '0').replace(/^(\d{4})0000/, '$10101').replace(/^(\d{6})00/, '$101');
  return v;
}

/** The latest moment a (possibly partial) TM/DT value denotes: "1200" is up to 12:00:59.999999. */
export function upperBound(vr: string, v: string): string {
  if (vr === 'TM') {
    if (v.includes('.')) return v.split('.')[0] + '.' + v.split('.')[1].padEnd(6, '9');
    return v + '235959'.slice(v.length) + '.999999';
  }
  if (vr === 'DT') {
    const s = stripOffset(v);
    if (s.includes('.')) return s.split('.')[0] + '.' + s.split('.')[1].padEnd(6, '9');
    return s + '99991231235959'.slice(s.length) + '.999999';
  }
  return v;
}

function stripOffset(v: string): string {
  return v.replace(/[+-]\d{4}$/, '');
}

/**
 * The searchable form of a person name: upper case, accents removed, `^` and `=` flattened to spaces. It is
 * the same function the index applies to the stored patient_name_search (adapters/index/matching.ts).
 */
export function foldName(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/[\^=]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .toUpperCase();
}

/** A DICOM wild card pattern as an anchored regular expression (`*` any run, `?` one character). */
export function wildcardRegExp(pattern: string, flags = 'su'): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, flags);
}

/** Fuzzy person name matching (PS3.18 10.6.1.2.1 fuzzymatching): every query word prefixes a word of the name. */
export function fuzzyNameMatches(query: string, name: string): boolean {
  const words = foldName(name).split(' ');
  return foldName(query).split(' ').filter((w) => w !== '').every((q) => {
    const re = wildcardRegExp(q + '*');
    return words.some((w) => re.test(w));
  });
}

/** A PN value of DICOM JSON as its DICOM string form "Alphabetic=Ideographic=Phonetic". */
export function personNameString(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v !== 'object') return String(v);
  const pn = v as DicomJsonPersonName;
  return [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''].join('=').replace(/=+$/, '');
}

/** The component groups a single-group query may match besides the whole value. */
function nameGroups(name: string): string[] {
  return [name, ...name.split('=').filter((g) => g !== '')];
}

/** Whether one stored text value matches a (non-sequence, non-universal) matcher, in memory. */
export function valueMatches(m: Matcher, vr: string, stored: string, names: NameOptions = {}): boolean {
  if (m.kind === 'universal') return true;
  if (m.kind === 'sequence') return false;
  if (vr === 'PN') return nameMatches(m, stored, names);
  if (m.kind === 'list') return m.values.some((v) => valueMatches({ kind: 'single', value: v }, vr, stored, names));
  if (m.kind === 'wildcard') return wildcardRegExp(m.pattern).test(stored);
  if (vr === 'TM' || vr === 'DT' || vr === 'DA') {
    const s = vr === 'TM' ? stored.replace(/:/g, '') : vr === 'DA' ? stored.replace(/\./g, '') : stripOffset(stored);
    if (s === '') return false;
    const from = m.kind === 'range' ? m.from : lowerBound(vr, m.value);
    const to = m.kind === 'range' ? m.to : upperBound(vr, m.value);
    const lo = lowerBound(vr, s);
    return (from === undefined || lo >= from) && (to === undefined || lo <= to);
  }
  if (m.kind === 'range') return false;
  if (['IS', 'DS', 'US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV'].includes(vr)) return Number(stored) === Number(m.value);
  return stored === m.value;
}

function nameMatches(m: Matcher, stored: string, names: NameOptions): boolean {
  if (m.kind === 'list') return m.values.some((v) => nameMatches({ kind: 'single', value: v }, stored, names));
  if (m.kind !== 'single' && m.kind !== 'wildcard') return false;
  const q = m.kind === 'single' ? m.value : m.pattern;
  if (names.fuzzy) return fuzzyNameMatches(q, stored);
  if (names.caseInsensitive) {
    const re = wildcardRegExp(foldName(q));
    return re.test(foldName(stored)) || nameGroups(stored).some((g) => re.test(foldName(g)));
  }
  if (m.kind === 'single') return nameGroups(stored).includes(q);
  const re = wildcardRegExp(q);
  return nameGroups(stored).some((g) => re.test(g));
}

/** The stored values of a DICOM JSON attribute as strings (PN as "A=I=P"). */
export function attributeStrings(attr: DicomJsonAttribute | undefined): string[] {
  if (!attr?.Value) return [];
  return attr.Value.map((v) => (attr.vr === 'PN' ? personNameString(v) : v === null ? '' : String(v)));
}

/**
 * Whether a data set (the stored DICOM JSON of an instance, or one item of a sequence) matches a key:
 * multi-valued attributes match when any value does (C.2.2.3); an absent or empty attribute matches only
 * universal matching; a sequence key matches when all its item keys match in at least one item (C.2.2.2.6).
 */
export function datasetMatchesKey(ds: DicomJsonDataSet, key: QueryKey, names: NameOptions = {}): boolean {
  const m = matcherOf(key);
  if (m.kind === 'universal') return true;
  const attr = ds[hexTag(key.tag)];
  if (m.kind === 'sequence') {
    const items = (attr?.Value ?? []) as DicomJsonDataSet[];
    return items.some((item) => item !== null && typeof item === 'object' && m.item.every((k) => datasetMatchesKey(item, k, names)));
  }
  const vr = attr?.vr && attr.vr !== 'UN' ? attr.vr : key.vr;
  return attributeStrings(attr).some((s) => s !== '' && valueMatches(m, vr, s, names));
}
