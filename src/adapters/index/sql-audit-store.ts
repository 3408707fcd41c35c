import type { Kysely, Selectable, SelectQueryBuilder } from 'kysely';
import type { AuditFilter, AuditRecord, AuditStore, NewAuditRecord } from '../../ports/audit-store.ts';
import type { Page, Paged } from '../../ports/index-store.ts';
import type { AtriumDatabase, AuditEventTable } from './schema.ts';
import type { Database } from '../../database/database.ts';

type Db = Kysely<AtriumDatabase>;
type EventQuery = SelectQueryBuilder<AtriumDatabase, 'audit_event', {}>;

/**
 * Writes audit records with the caller's query builder: inside the transaction of the change they report
 * (the RIS writes its records with its change, see AuditService.prepare), or in one of their own (append).
 */
export async function insertAuditRecords(db: Kysely<any>, records: readonly NewAuditRecord[]): Promise<AuditRecord[]> {
  if (records.length === 0) return [];
  const tx = db as Db;
  const inserted = await tx.insertInto('audit_event')
    .values(records.map((r) => ({
      event_id: r.id,
      recorded_at: r.time,
      action: r.action,
      interface: r.interface,
      outcome: r.outcome,
      principal_kind: r.principal.kind,
      principal_id: r.principal.id,
      origin_address: r.origin?.address ?? null,
      origin_ae_title: r.origin?.aeTitle ?? null,
      record: JSON.stringify(r),
    })))
    .returning(['pk', 'event_id'])
    .execute();
  const pkOf = new Map(inserted.map((row) => [row.event_id, Number(row.pk)]));
  const objects = records.flatMap((r) => {
    const eventPk = pkOf.get(r.id)!;
    return [
      ...r.patientIds.map((value) => ({ event_pk: eventPk, kind: 'patient', value })),
      ...unique(r.studies.map((s) => s.studyInstanceUid)).map((value) => ({ event_pk: eventPk, kind: 'study', value })),
    ];
  });
  // Bounded statements: PostgreSQL allows 65535 parameters, SQLite 32766.
  for (let i = 0; i < objects.length; i += 1000) await tx.insertInto('audit_object').values(objects.slice(i, i + 1000)).execute();
  return records.map((r) => ({ seq: pkOf.get(r.id)!, ...r }));
}

/**
 * AuditStore over the index database (tables `audit_event` and `audit_object`, migration 0004), on
 * SQLite and PostgreSQL. Append-only: this class has no way to change or remove a record, and the
 * database refuses UPDATE and DELETE on both tables (triggers), so neither can a raw SQL client.
 *
 * The record is kept whole as JSON; the columns beside it exist only to filter and sort. A record's
 * patients and studies go to `audit_object` so that "everything that touched patient X" is an index scan.
 */
export class SqlAuditStore implements AuditStore {
  readonly #db: Db;

  constructor(database: Database) {
    const db = database.kysely<AtriumDatabase>();
    this.#db = db;
  }

  async append(records: NewAuditRecord[]): Promise<AuditRecord[]> {
    if (records.length === 0) return [];
    return await this.#db.transaction().execute((tx) => insertAuditRecords(tx, records));
  }

  async search(filter: AuditFilter, page: Page, order: 'asc' | 'desc' = 'desc'): Promise<Paged<AuditRecord>> {
    const base = this.#filtered(filter);
    const { count } = await base.select((eb) => eb.fn.countAll<number | string>().as('count')).executeTakeFirstOrThrow();
    const rows = await base.select(['pk', 'record'])
      .orderBy('recorded_at', order).orderBy('pk', order)
      .limit(page.limit).offset(page.offset)
      .execute();
    return { items: rows.map(toRecord), total: Number(count), limit: page.limit, offset: page.offset };
  }

  async *scan(filter: AuditFilter, options: { batchSize?: number } = {}): AsyncIterable<AuditRecord> {
    const batchSize = options.batchSize ?? 500;
    let after: { time: string; pk: number } | null = null;
    for (;;) {
      const cursor: { time: string; pk: number } | null = after;
      const rows: Array<Pick<Selectable<AuditEventTable>, 'pk' | 'record' | 'recorded_at'>> = await this.#filtered(filter)
        .select(['pk', 'record', 'recorded_at'])
        .$if(cursor !== null, (qb) => qb.where((eb) => eb.or([
          eb('recorded_at', '>', cursor!.time),
          eb.and([eb('recorded_at', '=', cursor!.time), eb('pk', '>', cursor!.pk)]),
        ])))
        .orderBy('recorded_at', 'asc').orderBy('pk', 'asc')
        .limit(batchSize)
        .execute();
      for (const row of rows) yield toRecord(row);
      if (rows.length < batchSize) return;
      const last = rows[rows.length - 1];
      after = { time: last.recorded_at, pk: Number(last.pk) };
    }
  }

  #filtered(filter: AuditFilter): EventQuery {
    let q: EventQuery = this.#db.selectFrom('audit_event');
    if (filter.from !== undefined) q = q.where('recorded_at', '>=', filter.from);
    if (filter.to !== undefined) q = q.where('recorded_at', '<', filter.to);
    if (filter.user !== undefined) q = q.where('principal_id', '=', filter.user);
    if (filter.action !== undefined) q = q.where('action', '=', filter.action);
    if (filter.interface !== undefined) q = q.where('interface', '=', filter.interface);
    if (filter.outcome !== undefined) q = q.where('outcome', '=', filter.outcome);
    for (const [kind, value] of [['patient', filter.patientId], ['study', filter.studyInstanceUid]] as const) {
      if (value === undefined) continue;
      q = q.where('pk', 'in', (eb) => eb.selectFrom('audit_object').select('event_pk').where('kind', '=', kind).where('value', '=', value));
    }
    return q;
  }
}

function toRecord(row: { pk: number | string; record: string }): AuditRecord {
  // Records written before administrative changes were recorded have no `objects`.
  const record = JSON.parse(row.record) as NewAuditRecord;
  return { seq: Number(row.pk), ...record, objects: record.objects ?? [] };
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
