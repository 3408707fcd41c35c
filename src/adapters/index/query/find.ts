/**
 * The query model (dicom/query) compiled to SQL on the index, identical on SQLite and PostgreSQL.
 *
 * Case: DICOM matching is case-sensitive except for person names (PS3.4 C.2.2.2.1, C.2.2.2.4). `=` is
 * case-sensitive on both engines, but LIKE is not portable (PostgreSQL's is case-sensitive, SQLite's folds
 * ASCII case, and `PRAGMA case_sensitive_like` is per connection), so wild cards compile to GLOB on SQLite
 * (case-sensitive, `*` and `?`, a literal `[` written `[[]`) and to LIKE with `\` as escape on PostgreSQL:
 * literal `%`, `_` and `\` in values match themselves on both. Case- and accent-insensitive person name
 * matching goes through patient_name_search, folded at ingest (upper case, accents removed).
 */
import { sql, type Kysely, type RawBuilder, type SqlBool } from 'kysely';
import type { DicomJsonAttribute, DicomJsonDataSet } from '../../../dicom/dicom-json.ts';
import { vrOf } from '../../../dicom/dictionary.ts';
import { splitPersonName } from '../../../dicom/charset.ts';
import {
  QUERY_LEVELS, T, UNIQUE_KEY, hexTag, knownTagsOfLevel, levelIndex, levelOf,
  type IndexQuery, type QueryKey, type QueryLevel, type QueryResults,
} from '../../../dicom/query/model.ts';
import { datasetMatchesKey, matcherOf, valueMatches, type Matcher, type NameOptions } from '../../../dicom/query/matching.ts';
import { validateQuery } from '../../../dicom/query/validate.ts';
import type { SqlEngine } from '../../../database/migration.ts';
import { searchableName } from '../matching.ts';
import { and, or, wildcard, type Pred } from './sql-predicates.ts';
import { COLUMNS, DATE_TIME_PAIRS, LEVEL_OF_TABLE, REQUEST_ATTRIBUTES_COLUMNS, SELECTED, TABLE_OF_LEVEL, type Column, type Table } from './columns.ts';

type Row = Record<string, unknown>;
/** A test on a row (and the instance metadata at IMAGE level) for what SQL cannot decide. */
type Residual = (row: Row, metadata: DicomJsonDataSet | undefined) => boolean;

const BATCH = 500;
const TABLES: Table[] = ['patient', 'study', 'series', 'instance'];

interface Compiled {
  where: Pred[];
  residuals: Residual[];
  /** IMAGE level: the instance metadata is needed to match. */
  matchesMetadata: boolean;
  /** A person name is matched: a narrow filter no index serves (wild cards on both sides, name groups). */
  matchesPersonName: boolean;
}

/** The matches of `query` as DICOM JSON data sets, read in batches of 500 rows. */
export function findMatches(db: Kysely<any>, engine: SqlEngine, query: IndexQuery): QueryResults {
  validateQuery(query);
  const compiled = compile(engine, query);
  const plan = returnPlan(query);
  const needMetadataColumn = query.level === 'IMAGE' && (compiled.matchesMetadata || plan.needsMetadata);
  const scan = async function* (offset: number, limit: number): AsyncGenerator<Row> {
    if (compiled.residuals.length === 0) {
      // Paging in SQL.
      for (let produced = 0; produced < limit;) {
        const n = Math.min(BATCH, limit - produced);
        const rows = await selectRows(db, engine, query, compiled, needMetadataColumn, n, offset + produced);
        for (const r of rows) yield r;
        produced += rows.length;
        if (rows.length < n) return;
      }
      return;
    }
    // Some keys are matched in memory: scan in batches, filter, then page.
    let skipped = 0;
    let produced = 0;
    for (let at = 0; ; at += BATCH) {
      const rows = await selectRows(db, engine, query, compiled, needMetadataColumn, BATCH, at);
      for (const r of rows) {
        const md = r.instance__metadata === undefined ? undefined : parseMetadata(r.instance__metadata);
        if (md) r.__metadata = md;
        if (!compiled.residuals.every((f) => f(r, md))) continue;
        if (skipped < offset) { skipped++; continue; }
        if (produced >= limit) return;
        produced++;
        yield r;
      }
      if (rows.length < BATCH || produced >= limit) return;
    }
  };

  return {
    async *[Symbol.asyncIterator]() {
      let batch: Row[] = [];
      for await (const row of scan(query.offset ?? 0, query.limit ?? Infinity)) {
        batch.push(row);
        if (batch.length >= BATCH) {
          yield* await toDatasets(db, query, plan, batch);
          batch = [];
        }
      }
      if (batch.length > 0) yield* await toDatasets(db, query, plan, batch);
    },
    async total() {
      if (compiled.residuals.length === 0) {
        const { rows } = await sql<{ n: number | string }>`select count(*) as n from ${fromClause(query.level)} ${whereClause(compiled.where)}`.execute(db);
        return Number(rows[0]?.n ?? 0);
      }
      let n = 0;
      for await (const _ of scan(0, Infinity)) n++;
      return n;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// WHERE

function compile(engine: SqlEngine, query: IndexQuery): Compiled {
  const names: NameOptions = { fuzzy: query.fuzzy, caseInsensitive: query.caseInsensitivePersonNames };
  const out: Compiled = { where: [], residuals: [], matchesMetadata: false, matchesPersonName: false };
  const qi = levelIndex(query.level);
  /** Predicates on tables below the query level, by table: one EXISTS joins them all. */
  const below = new Map<Table, Pred[]>();
  const add = (table: Table, p: Pred | undefined) => {
    if (!p) return;
    if (levelIndex(LEVEL_OF_TABLE[table]) <= qi) out.where.push(p);
    else below.set(table, [...(below.get(table) ?? []), p]);
  };

  const consumed = new Set<number>();
  if (query.combinedDateTime) {
    for (const [dTag, tTag] of DATE_TIME_PAIRS) {
      const d = query.keys.find((k) => k.tag === dTag);
      const t = query.keys.find((k) => k.tag === tTag);
      if (!d || !t) continue;
      const md = matcherOf(d), mt = matcherOf(t);
      if (md.kind !== 'range' || mt.kind !== 'range' || md.form !== mt.form) continue;
      const dc = COLUMNS.get(dTag)!, tc = COLUMNS.get(tTag)!;
      add(dc.table, combinedRange(ref(dc), ref(tc), md, mt));
      consumed.add(dTag).add(tTag);
    }
  }

  for (const key of query.keys) {
    if (consumed.has(key.tag)) continue;
    const m = matcherOf(key);
    if (m.kind === 'universal') continue;
    const keyLevel = levelOf(key.tag, query.root, query.level);
    const atOrAbove = levelIndex(keyLevel) <= qi;

    if (m.kind === 'sequence') {
      if (query.level === 'IMAGE') {
        // The instance carries every item: matched exactly on its stored DICOM JSON.
        out.matchesMetadata = true;
        out.residuals.push((_row, md) => md !== undefined && datasetMatchesKey(md, key, names));
      } else if (key.tag === T.RequestAttributesSequence) {
        // Matched on the columns of the series (values of the first item); item keys without a column
        // are not matched (universal), which PS3.4 C.2.2.1.3 allows for Optional Keys.
        for (const itemKey of m.item) {
          const col = REQUEST_ATTRIBUTES_COLUMNS.get(itemKey.tag);
          if (col) add(col.table, columnPredicate(engine, col, matcherOf(itemKey), names).pred);
        }
      }
      // Other sequences above IMAGE level: return keys only (C.2.2.1.3, Optional Keys need not be matched).
      continue;
    }

    const col = COLUMNS.get(key.tag);
    if (!col) {
      if (query.level === 'IMAGE') {
        // No column: matched against the instance's stored DICOM JSON (which holds the attributes of
        // every level) after the SQL narrowing.
        out.matchesMetadata = true;
        out.residuals.push((_row, md) => md !== undefined && datasetMatchesKey(md, key, names));
      }
      // At PATIENT, STUDY and SERIES level an attribute without a column is a return key only: an SCP
      // need not support matching on Optional Keys (PS3.4 C.2.2.1.3 note 2; its Conformance Statement lists
      // the keys it matches), and the value is returned from a representative instance.
      continue;
    }
    if (col.kind === 'multi') {
      add(col.matchOn!.table, columnPredicate(engine, { ...col, table: col.matchOn!.table, column: col.matchOn!.column, kind: col.vr === 'UI' ? 'uid' : 'text' }, m, names).pred);
      continue;
    }
    const { pred, residual } = columnPredicate(engine, col, m, names);
    if (col.kind === 'pn' && pred) out.matchesPersonName = true;
    add(col.table, pred);
    // A residual can only run on a row that carries the column: tables at or above the query level.
    if (residual && atOrAbove && levelIndex(LEVEL_OF_TABLE[col.table]) <= qi) out.residuals.push(residual);
  }

  if (below.size > 0) out.where.push(existsBelow(query.level, below));
  return out;
}

function ref(col: { table: string; column: string }, column = col.column): RawBuilder<unknown> {
  return sql.ref(`${col.table}.${column}`);
}


function columnPredicate(engine: SqlEngine, col: Column, m: Matcher, names: NameOptions): { pred?: Pred; residual?: Residual } {
  const target = ref(col);
  if (m.kind === 'universal' || m.kind === 'sequence') return {};
  switch (col.kind) {
    case 'uid':
    case 'multi':
      if (m.kind === 'single') return { pred: sql<SqlBool>`${target} = ${m.value}` };
      if (m.kind === 'list') return { pred: sql<SqlBool>`${target} in (${sql.join(m.values)})` };
      if (m.kind === 'wildcard') return { pred: wildcard(engine, target, m.pattern) };
      return {};
    case 'number':
      if (m.kind === 'single') return { pred: sql<SqlBool>`${target} = ${Number(m.value)}` };
      if (m.kind === 'list') return { pred: sql<SqlBool>`${target} in (${sql.join(m.values.map(Number))})` };
      return {};
    case 'date':
    case 'time': {
      const vr = col.kind === 'date' ? 'DA' : 'TM';
      if (m.kind === 'list') return { pred: or(m.values.map((v) => rangePredicate(target, vr, { kind: 'single', value: v })!)) };
      const p = rangePredicate(target, vr, m);
      return p ? { pred: p } : {};
    }
    case 'pn':
      return personNamePredicate(engine, col, m, names);
    case 'text':
    default:
      if (m.kind === 'single') return { pred: sql<SqlBool>`${target} = ${m.value}` };
      if (m.kind === 'list') return { pred: sql<SqlBool>`${target} in (${sql.join(m.values)})` };
      if (m.kind === 'wildcard') return { pred: wildcard(engine, target, m.pattern) };
      return {};
  }
}

function rangePredicate(target: RawBuilder<unknown>, vr: 'DA' | 'TM', m: Matcher): Pred | undefined {
  let from: string | undefined, to: string | undefined;
  if (m.kind === 'range') ({ from, to } = m);
  else if (m.kind === 'single') {
    if (vr === 'DA') return sql<SqlBool>`${target} = ${m.value}`;
    // A single time is matched by meaning (C.2.2.2.1.3): "2230" matches 22:30:00 to 22:30:59.999999.
    from = lowerTime(m.value);
    to = upperTime(m.value);
  } else return undefined;
  const ps: Pred[] = [];
  if (from !== undefined) ps.push(sql<SqlBool>`${target} >= ${from}`);
  if (to !== undefined) ps.push(sql<SqlBool>`${target} <= ${to}`);
  return and(ps);
}

const lowerTime = (v: string) => v.replace(/\..*/, '').padEnd(6, '0') + (v.includes('.') ? '.' + v.split('.')[1] : '');
const upperTime = (v: string) => (v.includes('.') ? v.split('.')[0] + '.' + v.split('.')[1].padEnd(6, '9') : v + '235959'.slice(v.length) + '.999999');

/** Combined datetime range (C.2.2.2.5.4): "20060705-20060707" with "1000-1800" is July 5 10:00 to July 7 18:00. */
function combinedRange(d: RawBuilder<unknown>, t: RawBuilder<unknown>, md: Extract<Matcher, { kind: 'range' }>, mt: Extract<Matcher, { kind: 'range' }>): Pred {
  const ps: Pred[] = [];
  if (md.from !== undefined) ps.push(sql<SqlBool>`(${d} > ${md.from} or (${d} = ${md.from} and ${t} >= ${mt.from!}))`);
  if (md.to !== undefined) ps.push(sql<SqlBool>`(${d} < ${md.to} or (${d} = ${md.to} and ${t} <= ${mt.to!}))`);
  return and(ps);
}

/**
 * Person names. Literal matching (the default) is case-sensitive on the stored value, and a query without
 * `=` also matches one component group ("Yamada^Tarou" finds "Yamada^Tarou=山田^太郎"), which
 * C.2.2.2.1.1 leaves to the implementation. Fuzzy matching (PS3.18 fuzzymatching, or negotiated fuzzy
 * semantic matching) is case- and accent-insensitive word-prefix matching: every word of the query starts
 * a word of the name. Case-insensitive matching compares the folded forms exactly.
 */
function personNamePredicate(engine: SqlEngine, col: Column, m: Matcher, names: NameOptions): { pred?: Pred; residual?: Residual } {
  const values = m.kind === 'list' ? m.values : m.kind === 'single' ? [m.value] : m.kind === 'wildcard' ? [m.pattern] : [];
  if (values.length === 0) return {};
  const inMemory: Residual = (row) => {
    const stored = row[`${col.table}__${col.column}`];
    return typeof stored === 'string' && stored !== '' && valueMatches(m, 'PN', stored, names);
  };
  if (names.fuzzy || names.caseInsensitive) {
    if (!col.search) return { residual: inMemory };
    const s = ref(col, col.search);
    if (names.fuzzy) {
      // Exact in SQL: each folded query word prefixes a word of the folded name.
      return {
        pred: or(values.map((v) => and((searchableName(v) ?? '').split(' ').filter((w) => w !== '')
          .map((w) => or([wildcard(engine, s, `${w}*`), wildcard(engine, s, `* ${w}*`)]))))),
      };
    }
    // Narrowed in SQL on the folded column, decided in memory (the folded column has lost the groups).
    return { pred: or(values.map((v) => wildcard(engine, s, `*${searchableName(v)}*`))), residual: inMemory };
  }
  const target = ref(col);
  const ps: Pred[] = [];
  for (const v of values) {
    if (m.kind !== 'wildcard') ps.push(sql<SqlBool>`${target} = ${v}`);
    else ps.push(wildcard(engine, target, v));
    if (!v.includes('=')) ps.push(wildcard(engine, target, `${v}=*`), wildcard(engine, target, `*=${v}`), wildcard(engine, target, `*=${v}=*`));
  }
  return { pred: or(ps) };
}

const JOIN_DOWN: Record<Table, string> = {
  patient: '',
  study: 'study.patient_pk = patient.pk',
  series: 'series.study_pk = study.pk',
  instance: 'instance.series_pk = series.pk',
};

/** EXISTS over the tables below the query level, joined down to the deepest one that has a predicate. */
function existsBelow(level: QueryLevel, below: Map<Table, Pred[]>): Pred {
  const qi = levelIndex(level);
  const deepest = Math.max(...[...below.keys()].map((t) => TABLES.indexOf(t)));
  const tables = TABLES.slice(qi + 1, deepest + 1);
  const from = sql.join(tables.map((t, i) => (i === 0 ? sql.ref(t) : sql`join ${sql.ref(t)} on ${sql.raw(JOIN_DOWN[t])}`)), sql` `);
  const preds = [sql<SqlBool>`${sql.raw(JOIN_DOWN[tables[0]])}`, ...tables.flatMap((t) => below.get(t) ?? [])];
  return sql<SqlBool>`exists (select 1 from ${from} where ${sql.join(preds, sql` and `)})`;
}

// ---------------------------------------------------------------------------------------------------
// SELECT

function fromClause(level: QueryLevel): RawBuilder<unknown> {
  switch (level) {
    case 'PATIENT': return sql`patient`;
    case 'STUDY': return sql`study join patient on patient.pk = study.patient_pk`;
    case 'SERIES': return sql`series join study on study.pk = series.study_pk join patient on patient.pk = study.patient_pk`;
    case 'IMAGE': return sql`instance join series on series.pk = instance.series_pk join study on study.pk = series.study_pk join patient on patient.pk = study.patient_pk`;
  }
}

function whereClause(where: Pred[]): RawBuilder<unknown> {
  return where.length === 0 ? sql`` : sql`where ${sql.join(where, sql` and `)}`;
}

/**
 * Stable order: patients by name, studies newest first (StudyDate, StudyTime descending), series by
 * SeriesNumber and instances by InstanceNumber within their parent; NULLs last and the primary key as
 * the tie-break on both engines (their NULL ordering differs, hence the explicit `is null`, or `nulls last`
 * for studies, which study_list_order_idx serves on both).
 */
function orderClause(engine: SqlEngine, level: QueryLevel, compiled: Compiled): RawBuilder<unknown> {
  const c = engine === 'postgres' ? sql.raw(' collate "C"') : sql``;
  switch (level) {
    case 'PATIENT': return sql`order by patient.patient_name is null, patient.patient_name${c}, patient.patient_id${c}, patient.pk`;
    case 'STUDY': {
      // SQLite, without statistics on a name pattern, would walk study_list_order_idx and test every study's
      // patient name, when sorting the few that match is cheaper (at 10,000 studies, a family and given
      // name: 1.8 against 9 ms). A unary + makes the sort key an expression no index provides.
      const date = engine === 'sqlite' && compiled.matchesPersonName ? sql`+study.study_date` : sql`study.study_date`;
      return sql`order by ${date} desc nulls last, study.study_time desc nulls last, study.pk desc`;
    }
    case 'SERIES': return sql`order by study.pk, series.series_number is null, series.series_number, series.pk`;
    case 'IMAGE': return sql`order by series.pk, instance.instance_number is null, instance.instance_number, instance.pk`;
  }
}

async function selectRows(db: Kysely<any>, engine: SqlEngine, query: IndexQuery, compiled: Compiled, withMetadata: boolean, limit: number, offset: number): Promise<Row[]> {
  const qi = levelIndex(query.level);
  const cols: RawBuilder<unknown>[] = [];
  for (const t of TABLES.slice(0, qi + 1)) {
    for (const c of SELECTED[t]) cols.push(sql`${sql.ref(`${t}.${c}`)} as ${sql.ref(`${t}__${c}`)}`);
  }
  if (withMetadata) cols.push(sql`instance.metadata as instance__metadata`);
  if (query.level === 'PATIENT') {
    cols.push(sql`(select count(*) from study d where d.patient_pk = patient.pk) as derived__studies`);
    cols.push(sql`(select coalesce(sum(d.number_of_series), 0) from study d where d.patient_pk = patient.pk) as derived__series`);
    cols.push(sql`(select coalesce(sum(d.number_of_instances), 0) from study d where d.patient_pk = patient.pk) as derived__instances`);
  }
  const { rows } = await sql<Row>`select ${sql.join(cols)} from ${fromClause(query.level)} ${whereClause(compiled.where)} ${orderClause(engine, query.level, compiled)} limit ${limit} offset ${offset}`.execute(db);
  return rows;
}

function parseMetadata(text: unknown): DicomJsonDataSet | undefined {
  if (typeof text !== 'string') return undefined;
  try { return JSON.parse(text) as DicomJsonDataSet; } catch { return undefined; }
}

// ---------------------------------------------------------------------------------------------------
// Return values

interface ReturnPlan {
  tags: number[];
  /** Keys by tag, for sequence item filtering. */
  keys: Map<number, QueryKey>;
  all: boolean;
  needsMetadata: boolean;
  /** STUDY level: series attributes asked for (OHIF's Modality) come from the representative instance's series row. */
  needsSeriesRow: boolean;
}

const ALWAYS: number[] = [T.SpecificCharacterSet, T.QueryRetrieveLevel, T.InstanceAvailability];
const DERIVED: Record<QueryLevel, number[]> = {
  PATIENT: [T.NumberOfPatientRelatedStudies, T.NumberOfPatientRelatedSeries, T.NumberOfPatientRelatedInstances],
  STUDY: [T.NumberOfStudyRelatedSeries, T.NumberOfStudyRelatedInstances, T.ModalitiesInStudy, T.SOPClassesInStudy],
  SERIES: [T.NumberOfSeriesRelatedInstances],
  IMAGE: [],
};

function returnPlan(query: IndexQuery): ReturnPlan {
  const qi = levelIndex(query.level);
  const tags = new Set<number>([...ALWAYS, ...DERIVED[query.level]]);
  const top = query.root === 'PATIENT' ? 0 : 1;
  for (let i = top; i <= qi; i++) tags.add(UNIQUE_KEY[QUERY_LEVELS[i]]);
  for (const k of query.keys) tags.add(k.tag);
  const all = query.include === 'all';
  if (Array.isArray(query.include)) for (const t of query.include) tags.add(t);
  if (all) {
    for (const [tag, col] of COLUMNS) if (levelIndex(LEVEL_OF_TABLE[col.table]) <= qi) tags.add(tag);
    for (let i = top; i <= qi; i++) for (const t of knownTagsOfLevel(QUERY_LEVELS[i], query.root)) tags.add(t);
  }
  const available = (tag: number) => ALWAYS.includes(tag) || DERIVED[query.level].includes(tag) || availableColumn(tag, qi);
  const fromSeriesRow = (tag: number) => query.level === 'STUDY' && !all && seriesColumn(tag) !== undefined;
  const needsMetadata = all || [...tags].some((t) => !available(t) && !fromSeriesRow(t));
  const needsSeriesRow = [...tags].some((t) => !available(t) && fromSeriesRow(t));
  return { tags: [...tags], keys: new Map(query.keys.map((k) => [k.tag, k])), all, needsMetadata, needsSeriesRow };
}

function availableColumn(tag: number, qi: number): boolean {
  const col = COLUMNS.get(tag);
  return col !== undefined && levelIndex(LEVEL_OF_TABLE[col.table]) <= qi;
}

/** A single-valued column of the series table: at STUDY level, read from the representative instance's series. */
function seriesColumn(tag: number): Column | undefined {
  const col = COLUMNS.get(tag);
  return col && col.table === 'series' && col.kind !== 'multi' ? col : undefined;
}

/**
 * The series row (its SELECTED columns, `series__` prefixed) of each study's representative instance: what
 * its metadata would say of series attributes, without parsing that metadata (JSON.parse of 101 studies'
 * metadata was 2 ms of every study list OHIF asks for, which wants Modality at study level).
 */
async function representativeSeries(db: Kysely<any>, rows: Row[]): Promise<Map<number, Row>> {
  const out = new Map<number, Row>();
  const pks = [...new Set(rows.map((r) => Number(r.study__pk)))];
  if (pks.length === 0) return out;
  const cols = SELECTED.series.map((c) => sql`${sql.ref(`series.${c}`)} as ${sql.ref(`series__${c}`)}`);
  const { rows: found } = await sql<Row>`select series.study_pk as owner, ${sql.join(cols)} from instance join series on series.pk = instance.series_pk
    where instance.pk in (select min(i.pk) from instance i join series s on s.pk = i.series_pk where s.study_pk in (${sql.join(pks)}) group by s.study_pk)`.execute(db);
  for (const r of found) out.set(Number(r.owner), r);
  return out;
}

/** Metadata of the lowest-pk instance of each study / series / patient of the batch (IMAGE: the instance's own). */
async function representativeMetadata(db: Kysely<any>, level: QueryLevel, rows: Row[]): Promise<Map<number, DicomJsonDataSet>> {
  const out = new Map<number, DicomJsonDataSet>();
  if (level === 'IMAGE') {
    const missing = rows.filter((r) => !r.__metadata).map((r) => Number(r.instance__pk));
    for (const r of rows) if (r.__metadata) out.set(Number(r.instance__pk), r.__metadata as DicomJsonDataSet);
    if (missing.length > 0) {
      const { rows: md } = await sql<{ pk: number; metadata: string }>`select pk, metadata from instance where pk in (${sql.join(missing)})`.execute(db);
      for (const m of md) { const j = parseMetadata(m.metadata); if (j) out.set(Number(m.pk), j); }
    }
    return out;
  }
  const owner = level === 'PATIENT' ? 'study.patient_pk' : level === 'STUDY' ? 'series.study_pk' : 'instance.series_pk';
  const pks = [...new Set(rows.map((r) => Number(r[`${TABLE_OF_LEVEL[level]}__pk`])))];
  if (pks.length === 0) return out;
  const joins = level === 'PATIENT'
    ? sql`instance join series on series.pk = instance.series_pk join study on study.pk = series.study_pk`
    : level === 'STUDY' ? sql`instance join series on series.pk = instance.series_pk` : sql`instance`;
  const { rows: reps } = await sql<{ owner: number; pk: number }>`select ${sql.ref(owner)} as owner, min(instance.pk) as pk from ${joins} where ${sql.ref(owner)} in (${sql.join(pks)}) group by ${sql.ref(owner)}`.execute(db);
  if (reps.length === 0) return out;
  const { rows: md } = await sql<{ pk: number; metadata: string }>`select pk, metadata from instance where pk in (${sql.join(reps.map((r) => Number(r.pk)))})`.execute(db);
  const byPk = new Map(md.map((m) => [Number(m.pk), m.metadata]));
  for (const r of reps) { const j = parseMetadata(byPk.get(Number(r.pk))); if (j) out.set(Number(r.owner), j); }
  return out;
}

async function toDatasets(db: Kysely<any>, query: IndexQuery, plan: ReturnPlan, rows: Row[]): Promise<DicomJsonDataSet[]> {
  const metadata = plan.needsMetadata ? await representativeMetadata(db, query.level, rows) : new Map<number, DicomJsonDataSet>();
  const seriesRows = plan.needsSeriesRow ? await representativeSeries(db, rows) : new Map<number, Row>();
  const qi = levelIndex(query.level);
  const pkColumn = `${TABLE_OF_LEVEL[query.level]}__pk`;
  // The data set lists its attributes in tag order: the tags asked for are sorted once, not per match.
  const ordered = [...plan.tags].sort((a, b) => (a >>> 0) - (b >>> 0));
  return rows.map((row) => {
    const md = metadata.get(Number(row[pkColumn]));
    let tags = ordered;
    if (plan.all && md) {
      // Everything the representative instance holds at this level; at IMAGE level its whole metadata.
      const all = new Set(ordered);
      for (const hex of Object.keys(md)) {
        const tag = parseInt(hex, 16) >>> 0;
        if (query.level === 'IMAGE' || levelIndex(levelOf(tag, query.root, 'IMAGE')) <= qi) all.add(tag);
      }
      tags = [...all].sort((a, b) => (a >>> 0) - (b >>> 0));
    }
    const out: DicomJsonDataSet = {};
    const seriesRow = seriesRows.get(Number(row[pkColumn]));
    for (const tag of tags) {
      const col = seriesRow && seriesColumn(tag);
      const attr = col ? columnAttribute(col, seriesRow[`series__${col.column}`]) : attributeValue(query, qi, plan, row, md, tag);
      if (attr) out[hexTag(tag)] = attr;
    }
    return out;
  });
}

function attributeValue(query: IndexQuery, qi: number, plan: ReturnPlan, row: Row, md: DicomJsonDataSet | undefined, tag: number): DicomJsonAttribute | undefined {
  switch (tag) {
    case T.SpecificCharacterSet: return { vr: 'CS', Value: ['ISO_IR 192'] };
    case T.QueryRetrieveLevel: return { vr: 'CS', Value: [query.level] };
    case T.InstanceAvailability: return { vr: 'CS', Value: ['ONLINE'] };
  }
  if (query.level === 'PATIENT') {
    const derived = { [T.NumberOfPatientRelatedStudies]: 'derived__studies', [T.NumberOfPatientRelatedSeries]: 'derived__series', [T.NumberOfPatientRelatedInstances]: 'derived__instances' }[tag];
    if (derived) return { vr: 'IS', Value: [Number(row[derived] ?? 0)] };
  }
  const col = COLUMNS.get(tag);
  if (col && levelIndex(LEVEL_OF_TABLE[col.table]) <= qi) return columnAttribute(col, row[`${col.table}__${col.column}`]);
  const key = plan.keys.get(tag);
  const stored = md?.[hexTag(tag)];
  if (stored && stored.BulkDataURI === undefined) {
    if (stored.vr === 'SQ' && key?.items?.[0]?.length && Array.isArray(stored.Value)) {
      // Sequence matching returns the items with the requested item attributes only (C.2.2.2.6).
      const wanted = key.items[0].map((k) => hexTag(k.tag));
      return { vr: 'SQ', Value: (stored.Value as DicomJsonDataSet[]).map((item) => Object.fromEntries(wanted.filter((w) => item?.[w]).map((w) => [w, item[w]]))) };
    }
    return stored;
  }
  if (stored?.BulkDataURI !== undefined) return plan.all ? undefined : { vr: stored.vr };
  if (!key && !plan.tags.includes(tag)) return undefined;
  // Asked for but unknown: returned empty (zero length, PS3.4 C.4.1.1.3.2).
  return { vr: key?.vr && key.vr !== 'UN' ? key.vr : vrOf(tag) };
}

function columnAttribute(col: Column, value: unknown): DicomJsonAttribute {
  if (value === null || value === undefined || value === '') return { vr: col.vr };
  switch (col.kind) {
    case 'pn': return { vr: 'PN', Value: String(value).split('\\').map((v) => (v === '' ? null : splitPersonName(v))) };
    case 'multi': return { vr: col.vr, Value: String(value).split('\\') };
    case 'number': return { vr: col.vr, Value: [Number(value)] };
    default: return { vr: col.vr, Value: [String(value)] };
  }
}
