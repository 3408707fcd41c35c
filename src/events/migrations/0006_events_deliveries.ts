import { sql, type Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Deliveries of outbox events to handlers (src/events/): one row per event and subscribed handler, with
 * its attempts, its next due time and the lease of the node delivering it. The outbox gains the key its
 * events keep their order within (the study). Events written before this migration had no handler to
 * reach: they are marked routed, so an upgraded archive does not replay its whole history into handlers
 * that arrive with the upgrade.
 */
export const migration: SchemaMigration = {
  name: '0006_events_deliveries',
  module: 'events',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await db.schema.alterTable('outbox').addColumn('ordering_key', 'text').execute();
    await db.updateTable('outbox').set({ dispatched_at: sql`created_at` }).where('dispatched_at', 'is', null).execute();

    await withPk(engine, db.schema.createTable('event_delivery'))
      .addColumn('event_pk', 'bigint', (c) => c.notNull().references('outbox.pk'))
      .addColumn('handler', 'text', (c) => c.notNull())
      .addColumn('ordering_key', 'text')
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('run_at', 'text', (c) => c.notNull())
      .addColumn('last_error', 'text')
      .addColumn('locked_by', 'text')
      .addColumn('locked_until', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('delivered_at', 'text')
      .addUniqueConstraint('event_delivery_once', ['event_pk', 'handler'])
      .execute();
    // Claiming: the due pending deliveries, oldest event first; the order check looks up a handler's
    // pending deliveries of one study.
    await db.schema.createIndex('event_delivery_due_idx').on('event_delivery').columns(['state', 'run_at', 'event_pk']).execute();
    await db.schema.createIndex('event_delivery_order_idx').on('event_delivery').columns(['handler', 'ordering_key', 'state', 'event_pk']).execute();
    await db.schema.createIndex('outbox_created_idx').on('outbox').column('created_at').execute();
  },
};
