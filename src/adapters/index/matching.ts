import { foldName } from '../../dicom/query/matching.ts';

/**
 * Small pieces of DICOM attribute matching (PS3.4 C.2.2.2) that the SQL adapters share. The full query
 * model (sequence matching, fuzzy names, UID lists at every level) grows from here with C-FIND and QIDO.
 */

/** DICOM wildcards `*` and `?` as a SQL LIKE pattern with `\` as the escape character. */
export function likePattern(value: string): string {
  let out = '';
  for (const ch of value) {
    if (ch === '*') out += '%';
    else if (ch === '?') out += '_';
    else if (ch === '%' || ch === '_' || ch === '\\') out += '\\' + ch;
    else out += ch;
  }
  return out;
}

/** A date matching value: single "YYYYMMDD", or a range "A-B", "A-", "-B" (PS3.4 C.2.2.2.5). */
export function dateRangeBounds(value: string): { from?: string; to?: string } {
  const v = value.replace(/[.]/g, '').trim();
  if (!v.includes('-')) return { from: v, to: v };
  const [from, to] = v.split('-', 2);
  return { from: from || undefined, to: to || undefined };
}

/**
 * The form a person name is stored and searched in (patient_name_search): the query model's folding, so
 * "Müller^Jürgen" is found by "MULLER*" and by "müller*" alike on both engines.
 */
export function searchableName(name: string | null | undefined): string | null {
  return name === null || name === undefined ? null : foldName(name);
}
