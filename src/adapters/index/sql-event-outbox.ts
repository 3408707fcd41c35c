import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../../database/database.ts';
import type { SqlEngine } from '../../database/migration.ts';
import type { EventDelivery, EventOutbox, StuckDelivery } from '../../ports/event-outbox.ts';
import { orderingKeyOf, type ArchiveEvent } from '../../events/event-map.ts';
import type { AtriumDatabase } from './schema.ts';

type Db = Kysely<AtriumDatabase>;

/**
 * Writes an event into the outbox inside the caller's transaction: the event exists exactly when the
 * change it reports is committed.
 */
export async function emit(tx: Transaction<AtriumDatabase>, event: ArchiveEvent, now: string): Promise<void> {
  await tx.insertInto('outbox')
    .values({ event_type: event.type, payload: JSON.stringify(event.payload), created_at: now, ordering_key: orderingKeyOf(event) })
    .execute();
}

/**
 * EventOutbox over the index database (tables `outbox` and `event_delivery`, migrations 0001 and 0006).
 * Cluster safety comes from the database: on PostgreSQL the claims lock their rows with
 * `FOR UPDATE SKIP LOCKED`, so two nodes claiming at once take different deliveries; on SQLite the one
 * writer serializes claims (BEGIN IMMEDIATE). A lease (`locked_until`) hands a dead node's deliveries on.
 */
export class SqlEventOutbox implements EventOutbox {
  readonly #db: Db;
  readonly #engine: SqlEngine;

  constructor(database: Database) {
    this.#db = database.kysely<AtriumDatabase>();
    this.#engine = database.engine;
  }

  async fanOut(subscribers: ReadonlyMap<string, readonly string[]>, limit: number, at: Date): Promise<number> {
    return await this.#db.transaction().execute(async (tx) => {
      let pick = tx.selectFrom('outbox').select(['pk', 'event_type', 'ordering_key']).where('dispatched_at', 'is', null).orderBy('pk').limit(limit);
      if (this.#engine === 'postgres') pick = pick.forUpdate().skipLocked();
      const events = await pick.execute();
      if (events.length === 0) return 0;
      const now = at.toISOString();
      const rows = events.flatMap((e) => (subscribers.get(e.event_type) ?? []).map((handler) => ({
        event_pk: Number(e.pk), handler, ordering_key: e.ordering_key, state: 'pending' as const, attempts: 0, run_at: now,
        last_error: null, locked_by: null, locked_until: null, created_at: now, updated_at: now, delivered_at: null,
      })));
      for (let i = 0; i < rows.length; i += 500) {
        await tx.insertInto('event_delivery').values(rows.slice(i, i + 500))
          .onConflict((oc) => oc.columns(['event_pk', 'handler']).doNothing()).execute();
      }
      const ids = events.map((e) => Number(e.pk));
      for (let i = 0; i < ids.length; i += 500) {
        await tx.updateTable('outbox').set({ dispatched_at: now }).where('pk', 'in', ids.slice(i, i + 500)).execute();
      }
      return events.length;
    });
  }

  async claim(owner: string, handlers: readonly string[], limit: number, now: Date, leaseUntil: Date): Promise<EventDelivery[]> {
    if (handlers.length === 0) return [];
    const at = now.toISOString();
    const claimed = await this.#db.transaction().execute(async (tx) => {
      let pick = tx.selectFrom('event_delivery as d').select('d.pk')
        .where('d.state', '=', 'pending').where('d.handler', 'in', [...handlers]).where('d.run_at', '<=', at)
        .where((eb) => eb.or([eb('d.locked_until', 'is', null), eb('d.locked_until', '<=', at)]))
        // Only the oldest undelivered event of a study, per handler: order within a study, and never two of
        // its events at one handler at once (a leased head is still pending, so it blocks the next).
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('event_delivery as e').select('e.pk')
          .whereRef('e.handler', '=', 'd.handler').whereRef('e.ordering_key', '=', 'd.ordering_key')
          .where('e.state', '=', 'pending').whereRef('e.event_pk', '<', 'd.event_pk'))))
        .orderBy('d.event_pk').limit(limit);
      if (this.#engine === 'postgres') pick = pick.forUpdate('d').skipLocked();
      const ids = (await pick.execute()).map((r) => Number(r.pk));
      if (ids.length === 0) return [];
      return await tx.updateTable('event_delivery')
        .set((eb) => ({ locked_by: owner, locked_until: leaseUntil.toISOString(), attempts: eb('attempts', '+', 1), updated_at: at }))
        .where('pk', 'in', ids)
        .returning(['pk', 'event_pk', 'handler', 'ordering_key', 'attempts'])
        .execute();
    });
    if (claimed.length === 0) return [];
    const events = new Map((await this.#db.selectFrom('outbox').select(['pk', 'event_type', 'payload', 'created_at'])
      .where('pk', 'in', [...new Set(claimed.map((c) => Number(c.event_pk)))]).execute()).map((e) => [Number(e.pk), e]));
    return claimed
      .map((c) => {
        const event = events.get(Number(c.event_pk))!;
        return {
          id: Number(c.pk), eventId: Number(c.event_pk), handler: c.handler, eventType: event.event_type, payload: JSON.parse(event.payload),
          orderingKey: c.ordering_key, createdAt: event.created_at, attempts: Number(c.attempts),
        };
      })
      .sort((a, b) => a.eventId - b.eventId);
  }

  async renew(ids: readonly number[], owner: string, leaseUntil: Date): Promise<number[]> {
    if (ids.length === 0) return [];
    const renewed = await this.#db.updateTable('event_delivery').set({ locked_until: leaseUntil.toISOString() })
      .where('pk', 'in', [...ids]).where('locked_by', '=', owner).where('state', '=', 'pending')
      .returning('pk').execute();
    const held = new Set(renewed.map((r) => Number(r.pk)));
    return ids.filter((id) => !held.has(id));
  }

  async complete(ids: readonly number[], owner: string, now: Date): Promise<number[]> {
    if (ids.length === 0) return [];
    const at = now.toISOString();
    const done = new Set<number>();
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.#db.updateTable('event_delivery')
        .set({ state: 'done', delivered_at: at, updated_at: at, locked_by: null, locked_until: null, last_error: null })
        .where('pk', 'in', ids.slice(i, i + 500)).where('locked_by', '=', owner).where('state', '=', 'pending')
        .returning('pk').execute();
      for (const r of rows) done.add(Number(r.pk));
    }
    return ids.filter((id) => !done.has(id));
  }

  async fail(id: number, owner: string, error: string, retryAt: Date, now: Date): Promise<boolean> {
    const result = await this.#db.updateTable('event_delivery')
      .set({ run_at: retryAt.toISOString(), last_error: error.slice(0, 2000), locked_by: null, locked_until: null, updated_at: now.toISOString() })
      .where('pk', '=', id).where('locked_by', '=', owner).where('state', '=', 'pending')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async retryNow(id: number, now: Date): Promise<boolean> {
    const result = await this.#db.updateTable('event_delivery').set({ run_at: now.toISOString(), updated_at: now.toISOString() })
      .where('pk', '=', id).where('state', '=', 'pending').executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async stuck(limit: number, offset: number): Promise<{ total: number; items: StuckDelivery[] }> {
    const failing = this.#db.selectFrom('event_delivery as d').where('d.state', '=', 'pending').where('d.last_error', 'is not', null);
    const total = Number((await failing.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const rows = await failing.innerJoin('outbox as o', 'o.pk', 'd.event_pk')
      .select(['d.pk', 'd.event_pk', 'd.handler', 'd.ordering_key', 'd.attempts', 'd.last_error', 'd.run_at', 'd.locked_by', 'o.event_type', 'o.payload', 'o.created_at'])
      .orderBy('d.event_pk').limit(limit).offset(offset).execute();
    return {
      total,
      items: rows.map((r) => ({
        id: Number(r.pk), eventId: Number(r.event_pk), handler: r.handler, eventType: r.event_type, payload: JSON.parse(r.payload),
        orderingKey: r.ordering_key, createdAt: r.created_at, attempts: Number(r.attempts), lastError: r.last_error, nextAttemptAt: r.run_at, lockedBy: r.locked_by,
      })),
    };
  }

  async backlog(): Promise<{ unrouted: number; pending: Map<string, number> }> {
    const unrouted = await this.#db.selectFrom('outbox').select((eb) => eb.fn.countAll<number>().as('n')).where('dispatched_at', 'is', null).executeTakeFirstOrThrow();
    const pending = await this.#db.selectFrom('event_delivery').select(['handler', (eb) => eb.fn.countAll<number>().as('n')])
      .where('state', '=', 'pending').groupBy('handler').execute();
    return { unrouted: Number(unrouted.n), pending: new Map(pending.map((p) => [p.handler, Number(p.n)])) };
  }

  async prune(before: Date): Promise<number> {
    const cutoff = before.toISOString();
    return await this.#db.transaction().execute(async (tx) => {
      // An event goes once it was routed before the cutoff and none of its deliveries is pending.
      const gone = await tx.selectFrom('outbox as o').select('o.pk')
        .where('o.dispatched_at', 'is not', null).where('o.dispatched_at', '<', cutoff)
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('event_delivery as d').select('d.pk')
          .whereRef('d.event_pk', '=', 'o.pk').where('d.state', '=', 'pending'))))
        .orderBy('o.pk').limit(5000).execute();
      const ids = gone.map((g) => Number(g.pk));
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        await tx.deleteFrom('event_delivery').where('event_pk', 'in', chunk).execute();
        await tx.deleteFrom('outbox').where('pk', 'in', chunk).execute();
      }
      return ids.length;
    });
  }
}

/** For the index's statistics: events written and not yet delivered everywhere. */
export async function undeliveredEvents(db: Db): Promise<number> {
  const row = await db.selectFrom('outbox').select((eb) => eb.fn.countAll<number>().as('n'))
    .where((eb) => eb.or([eb('dispatched_at', 'is', null),
      eb.exists(eb.selectFrom('event_delivery as d').select('d.pk').whereRef('d.event_pk', '=', 'outbox.pk').where('d.state', '=', 'pending'))]))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
