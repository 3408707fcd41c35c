import { type Kysely } from 'kysely';
import { type SchemaMigration } from '../../database/migration.ts';

/**
 * The last contact with each DICOM peer (an association either way: our echo, send, find or retrieve, or the
 * peer calling us), its outcome and a line saying what happened, so that an operator sees which peers work
 * without reading logs. Null until the first contact; nothing else about the peer changes with them.
 */
export const migration: SchemaMigration = {
  name: '0009_peer_last_contact',
  module: 'exchange',
  async up(db: Kysely<any>) {
    await db.schema.alterTable('ae_peer').addColumn('last_contact_at', 'text').execute();
    await db.schema.alterTable('ae_peer').addColumn('last_contact_outcome', 'text').execute();
    await db.schema.alterTable('ae_peer').addColumn('last_contact_detail', 'text').execute();
  },
};
