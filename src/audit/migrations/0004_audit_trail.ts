import { sql, type Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The audit trail (see sql-audit-store.ts): one row per event, with the patients and studies it touched in
 * `audit_object` for indexed search. Append-only, enforced by the database itself: triggers reject
 * UPDATE and DELETE on both tables (and TRUNCATE on PostgreSQL), whatever the client.
 */
export const migration: SchemaMigration = {
  name: '0004_audit',
  module: 'audit',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('audit_event'))
      .addColumn('event_id', 'text', (c) => c.notNull().unique())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('interface', 'text', (c) => c.notNull())
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('principal_kind', 'text', (c) => c.notNull())
      .addColumn('principal_id', 'text')
      .addColumn('origin_address', 'text')
      .addColumn('origin_ae_title', 'text')
      .addColumn('record', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_event_time_idx').on('audit_event').columns(['recorded_at', 'pk']).execute();
    await db.schema.createIndex('audit_event_principal_idx').on('audit_event').columns(['principal_id', 'recorded_at']).execute();
    await db.schema.createIndex('audit_event_action_idx').on('audit_event').columns(['action', 'recorded_at']).execute();

    await withPk(engine, db.schema.createTable('audit_object'))
      .addColumn('event_pk', 'bigint', (c) => c.notNull().references('audit_event.pk'))
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('value', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_object_value_idx').on('audit_object').columns(['kind', 'value', 'event_pk']).execute();
    await db.schema.createIndex('audit_object_event_idx').on('audit_object').column('event_pk').execute();

    if (engine === 'postgres') {
      await sql`CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit records are append-only: % on % refused', TG_OP, TG_TABLE_NAME; END $$`.execute(db);
      for (const table of ['audit_event', 'audit_object']) {
        await sql`CREATE TRIGGER ${sql.raw(`${table}_append_only`)} BEFORE UPDATE OR DELETE ON ${sql.table(table)}
          FOR EACH ROW EXECUTE FUNCTION audit_append_only()`.execute(db);
        await sql`CREATE TRIGGER ${sql.raw(`${table}_no_truncate`)} BEFORE TRUNCATE ON ${sql.table(table)}
          FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`.execute(db);
      }
    } else {
      for (const table of ['audit_event', 'audit_object']) {
        for (const op of ['UPDATE', 'DELETE']) {
          await sql.raw(`CREATE TRIGGER ${table}_no_${op.toLowerCase()} BEFORE ${op} ON ${table}
            BEGIN SELECT RAISE(ABORT, 'audit records are append-only: ${op} on ${table} refused'); END`).execute(db);
        }
      }
    }
  },
};
