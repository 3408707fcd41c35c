/**
 * FHIR date search (R4 search.html "date"): a search value is a range (its precision: a year, a month, a
 * day, a minute, a second), a stored value is a range too (a study with a date and no time is its whole
 * day), and each prefix compares the two ranges as the specification words it. Compiled to SQL over
 * sortable text keys, so that the comparison runs in the database on SQLite and PostgreSQL alike.
 */
import { sql, type RawBuilder } from 'kysely';
import { invalid } from './operation-outcome.ts';

export type DatePrefix = 'eq' | 'ne' | 'lt' | 'gt' | 'le' | 'ge' | 'sa' | 'eb';
export const DATE_PREFIXES: readonly DatePrefix[] = ['eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb'];

/** A search value's range: [startMs, endMs] inclusive, to the millisecond. */
export interface InstantRange {
  startMs: number;
  endMs: number;
}

const DATE_VALUE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * The range a FHIR date search value stands for. A value with a time and no zone is read in this process's
 * zone, as DICOM's dates are (values.ts fhirDateTime).
 */
export function dateRange(value: string, parameter: string): InstantRange {
  const m = DATE_VALUE.exec(value);
  if (!m) throw invalid(`${parameter}: "${value}" is not a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][zone])`, parameter);
  const [, y, mo, d, h, mi, s, fraction, zone] = m;
  const year = Number(y);
  const month = mo ? Number(mo) : 1;
  const day = d ? Number(d) : 1;
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || (h !== undefined && (Number(h) > 23 || Number(mi) > 59 || Number(s ?? 0) > 59))) {
    throw invalid(`${parameter}: "${value}" is not a real date or time`, parameter);
  }
  if (h === undefined) {
    // A date: its days in this process's zone (a stored date is local to where it was made).
    const start = new Date(year, month - 1, day).getTime();
    const end = d ? new Date(year, month - 1, day + 1).getTime() : mo ? new Date(year, month, 1).getTime() : new Date(year + 1, 0, 1).getTime();
    return { startMs: start, endMs: end - 1 };
  }
  const ms = fraction ? Math.floor(Number(`0${fraction}`) * 1000) : 0;
  const fields = [year, month - 1, day, Number(h), Number(mi), Number(s ?? 0), ms] as const;
  let start: number;
  if (zone) {
    const offset = zone === 'Z' ? 0 : (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
    start = Date.UTC(...fields) - offset * 60_000;
  } else {
    start = new Date(...fields).getTime();
  }
  const width = s === undefined ? 60_000 : fraction ? 1 : 1000;
  return { startMs: start, endMs: start + width - 1 };
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** An instant as a local `YYYYMMDDHHMMSS` key: DICOM DA + TM, and HL7 TS without a zone, compare as these. */
export function localKey(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getFullYear(), 4)}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** An instant as the ISO-8601 UTC text Atrium stores its own times in (`created_at`). */
export function utcKey(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * A stored value's range as two SQL text expressions of one key format (inclusive), and the search value's
 * range in that format; the prefix's condition. Rows without a value (`start` null) match no prefix.
 * `coarse`, when given, is an indexed column with a leading part of the key (DA for DA+TM) that bounds the
 * rows the database must look at.
 */
export interface StoredRange {
  start: RawBuilder<unknown>;
  end: RawBuilder<unknown>;
  /** How a search value's instant becomes this key (localKey or utcKey). */
  key: (ms: number) => string;
  coarse?: { column: RawBuilder<unknown>; length: number };
}

export function dateCondition(prefix: DatePrefix, value: InstantRange, stored: StoredRange): RawBuilder<unknown> {
  const ps = stored.key(value.startMs);
  const pe = stored.key(value.endMs);
  const { start: rs, end: re } = stored;
  const contained = sql`(${rs} >= ${ps} and ${re} <= ${pe})`;
  let condition: RawBuilder<unknown>;
  let low: string | null = null;
  let high: string | null = null;
  switch (prefix) {
    case 'eq': condition = contained; low = ps; high = pe; break;
    case 'ne': condition = sql`not ${contained}`; break;
    // The range above (below) the search value overlaps the stored range.
    case 'gt': condition = sql`${re} > ${pe}`; low = pe; break;
    case 'lt': condition = sql`${rs} < ${ps}`; high = ps; break;
    case 'ge': condition = sql`(${re} > ${pe} or ${contained})`; low = ps; break;
    case 'le': condition = sql`(${rs} < ${ps} or ${contained})`; high = pe; break;
    // No overlap, and wholly above (below).
    case 'sa': condition = sql`${rs} > ${pe}`; low = pe; break;
    case 'eb': condition = sql`${re} < ${ps}`; high = ps; break;
  }
  const parts = [sql`${rs} is not null`, condition];
  if (stored.coarse) {
    const { column, length } = stored.coarse;
    if (low !== null) parts.push(sql`${column} >= ${low.slice(0, length)}`);
    if (high !== null) parts.push(sql`${column} <= ${high.slice(0, length)}`);
  }
  return sql`(${sql.join(parts, sql` and `)})`;
}

/**
 * The range of DICOM DA + TM columns as local keys: a time to the second (fractions dropped, HHMM and HH
 * padded), or the whole day without a time. A date that is not 8 digits is no value.
 */
export function dicomDateTimeRange(date: RawBuilder<unknown>, time: RawBuilder<unknown>): StoredRange {
  const valid = sql`(length(${date}) = 8)`;
  const hasTime = sql`(${time} is not null and length(${time}) >= 2)`;
  const start = sql`(case when ${valid} then ${date} || (case when ${hasTime} then substr(${time} || '000000', 1, 6) else '000000' end) end)`;
  const end = sql`(case when ${valid} then ${date} || (case when ${hasTime} then substr(${time} || '000000', 1, 6) else '235959' end) end)`;
  return { start, end, key: localKey, coarse: { column: date, length: 8 } };
}

/** The range of an HL7 TS column (`YYYYMMDD[HHMM[SS]]`, a zone suffix ignored) as local keys. */
export function hl7TimestampRange(ts: RawBuilder<unknown>): StoredRange {
  const digits = sql`substr(${ts}, 1, 14)`;
  const valid = sql`(${ts} is not null and length(${ts}) >= 8)`;
  const dateOnly = sql`(length(${ts}) < 10 or substr(${ts}, 9, 1) not between '0' and '9')`;
  const start = sql`(case when ${valid} then (case when ${dateOnly} then substr(${ts}, 1, 8) || '000000' else substr(${digits} || '000000', 1, 14) end) end)`;
  const end = sql`(case when ${valid} then (case when ${dateOnly} then substr(${ts}, 1, 8) || '235959' else substr(${digits} || '000000', 1, 14) end) end)`;
  return { start, end, key: localKey };
}

/** The range of an ISO-8601 UTC text column Atrium wrote (an instant: start = end). */
export function utcInstantRange(column: RawBuilder<unknown>): StoredRange {
  return { start: column, end: column, key: utcKey };
}
