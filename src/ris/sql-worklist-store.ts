/**
 * The Modality Worklist query on the RIS tables (migration 0010, indexes of 0011), one SELECT per batch
 * joining step, order and patient, every matching key with a column pushed down to SQL, in batches by
 * step primary key (keyset, so a universal query over 100k steps never loads them at once).
 *
 * Case: DICOM matching is case-sensitive except for person names (PS3.4 C.2.2.2.1), as in the index's
 * C-FIND (src/adapters/index/query/find.ts): wild cards compile to GLOB on SQLite (whose LIKE folds ASCII
 * case) and to LIKE with `\` as escape on PostgreSQL; `=` is case-sensitive on both.
 */
import { sql, type Kysely, type SqlBool } from 'kysely';
import type { Database } from '../database/database.ts';
import type { SqlEngine } from '../database/migration.ts';
import { searchableName } from '../adapters/index/matching.ts';
import { or, wildcard, type Pred } from '../adapters/index/query/sql-predicates.ts';
import type { Matcher } from '../dicom/query/matching.ts';
import { OPEN_STEP_STATUSES } from './model.ts';
import { residualMatches, type ColumnCondition, type WorklistQuery, type WorklistRow } from './worklist-query.ts';

const BATCH = 500;

function columnPredicate(engine: SqlEngine, c: ColumnCondition, caseInsensitive: boolean): Pred | undefined {
  const m: Matcher = c.matcher;
  const target = sql.ref(c.attribute.column!);
  const values = m.kind === 'list' ? m.values : m.kind === 'single' ? [m.value] : m.kind === 'wildcard' ? [m.pattern] : [];
  if (values.length === 0) return undefined;
  if (c.attribute.kind === 'pn') {
    if (caseInsensitive) {
      // Narrowed on the folded column where there is one; decided in memory (WorklistQuery.residual).
      if (!c.attribute.search) return undefined;
      return or(values.map((v) => wildcard(engine, sql.ref(c.attribute.search!), `*${searchableName(v)}*`)));
    }
    // Literal, case-sensitive; a value without "=" also matches one component group (as the index's C-FIND).
    const ps: Pred[] = [];
    for (const v of values) {
      ps.push(m.kind === 'wildcard' ? wildcard(engine, target, v) : sql<SqlBool>`${target} = ${v}`);
      if (!v.includes('=')) ps.push(wildcard(engine, target, `${v}=*`), wildcard(engine, target, `*=${v}`), wildcard(engine, target, `*=${v}=*`));
    }
    return or(ps);
  }
  if (m.kind === 'single') return sql<SqlBool>`${target} = ${m.value}`;
  if (m.kind === 'list') return sql<SqlBool>`${target} in (${sql.join(m.values)})`;
  if (m.kind === 'wildcard') return wildcard(engine, target, m.pattern);
  return undefined;
}

export class SqlWorklistStore {
  readonly #db: Kysely<any>;
  readonly #engine: SqlEngine;

  constructor(database: Database) {
    this.#db = database.kysely<any>();
    this.#engine = database.engine;
  }

  /** The open steps (not completed, discontinued or cancelled, of an order not ended) matching the query. */
  async *find(q: WorklistQuery): AsyncGenerator<WorklistRow> {
    // On SQLite, `+s.status` keeps the status index out of the plan: without statistics the planner took
    // "status in (open ones)" for a selective key and walked every open step (a Patient ID query at 100k
    // steps: 2.2 s, bench:ris); the unary plus lets it start from the key that is selective (the patient's
    // unique index, the accession number, the station or modality with the start date) and a universal
    // query walk the steps in primary-key order, which the keyset batches below follow. PostgreSQL keeps
    // statistics (and has no unary plus on text).
    const status = this.#engine === 'sqlite' ? sql`+s.status` : sql`s.status`;
    const where: Pred[] = [
      sql<SqlBool>`${status} in (${sql.join([...OPEN_STEP_STATUSES])})`,
      sql<SqlBool>`o.status not in ('cancelled', 'discontinued')`,
    ];
    for (const c of q.columns) {
      const p = columnPredicate(this.#engine, c, q.names.caseInsensitive ?? false);
      if (p) where.push(p);
    }
    if (q.start) {
      if (q.start.from !== undefined) where.push(sql<SqlBool>`s.start_at >= ${q.start.from}`);
      if (q.start.to !== undefined) where.push(sql<SqlBool>`s.start_at <= ${q.start.to}`);
      if (q.start.timeOfDay) {
        const t = sql`substr(s.start_at, 9, 6)`;
        if (q.start.timeOfDay.from !== undefined) where.push(sql<SqlBool>`${t} >= ${q.start.timeOfDay.from}`);
        if (q.start.timeOfDay.to !== undefined) where.push(sql<SqlBool>`${t} <= ${q.start.timeOfDay.to}`);
      }
    }
    let after = 0;
    for (;;) {
      const { rows } = await sql<WorklistRow>`
        select s.pk as step_pk, s.step_id, s.modality, s.station_ae_title, s.station_name, s.location, s.start_date, s.start_time,
          s.description, s.performing_physician, s.protocol_codes, s.status as step_status,
          o.accession_number, o.requested_procedure_id, o.requested_procedure_code, o.requested_procedure_description, o.priority, o.reason,
          o.referring_physician, o.ordering_physician, o.study_instance_uid, o.placer_order_number, o.filler_order_number,
          p.patient_id, p.issuer_of_patient_id, p.patient_name, p.patient_birth_date, p.patient_sex
        from ris_procedure_step s join ris_order o on o.pk = s.order_pk join ris_patient p on p.pk = o.patient_pk
        where ${sql.join([...where, sql<SqlBool>`s.pk > ${after}`], sql` and `)}
        order by s.pk limit ${BATCH}`.execute(this.#db);
      for (const row of rows) {
        row.step_pk = Number(row.step_pk);
        if (residualMatches(row, q)) yield row;
      }
      if (rows.length < BATCH) return;
      after = rows[rows.length - 1]!.step_pk;
    }
  }
}
