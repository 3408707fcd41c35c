import { type Kysely } from 'kysely';
import { type SchemaMigration } from '../../database/migration.ts';

/**
 * Instances by the time they were received (`instance.received_at`, ISO-8601 UTC text that sorts as it
 * compares): the dashboard's activity per day and ingest per minute read a time range of it, which without
 * this index is a scan of every instance on each refresh.
 */
export const migration: SchemaMigration = {
  name: '0008_instance_received_at',
  module: 'archive',
  async up(db: Kysely<any>) {
    await db.schema.createIndex('instance_received_at_idx').on('instance').column('received_at').execute();
  },
};
