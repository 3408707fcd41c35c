import { type Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The security core (src/security/, sql-security-store.ts): local users, their sessions, API keys,
 * login failure counters (lock-out) and settings such as the first-run setup token. Secrets are stored
 * only as scrypt hashes (passwords) or SHA-256 digests (session ids, API keys, setup token).
 */
export const migration: SchemaMigration = {
  name: '0003_security',
  module: 'security',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('security_user'))
      .addColumn('username', 'text', (c) => c.notNull().unique())
      .addColumn('display_name', 'text')
      .addColumn('password_hash', 'text', (c) => c.notNull())
      .addColumn('roles', 'text', (c) => c.notNull())
      .addColumn('dicom_person_name', 'text')
      .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('last_login_at', 'text')
      .execute();

    await withPk(engine, db.schema.createTable('security_session'))
      .addColumn('id_hash', 'text', (c) => c.notNull().unique())
      .addColumn('user_pk', 'bigint', (c) => c.notNull().references('security_user.pk').onDelete('cascade'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_seen_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('source_address', 'text')
      .execute();
    await db.schema.createIndex('security_session_user_idx').on('security_session').column('user_pk').execute();

    await withPk(engine, db.schema.createTable('security_api_key'))
      .addColumn('key_id', 'text', (c) => c.notNull().unique())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
      .addColumn('roles', 'text', (c) => c.notNull())
      .addColumn('route_prefixes', 'text')
      .addColumn('created_by', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text')
      .addColumn('revoked_at', 'text')
      .addColumn('last_used_at', 'text')
      .execute();

    await db.schema.createTable('security_login_throttle')
      .addColumn('throttle_key', 'text', (c) => c.primaryKey())
      .addColumn('failures', 'integer', (c) => c.notNull())
      .addColumn('window_started_at', 'text', (c) => c.notNull())
      .addColumn('locked_until', 'text')
      .execute();

    await db.schema.createTable('security_setting')
      .addColumn('setting_key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
  },
};
