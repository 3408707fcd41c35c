import { type Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * What is served for corrected studies and series (docs/corrections.md): the attribute values every retrieve
 * of their instances carries in place of the stored ones, with the replaced values in an Original Attributes
 * Sequence item. One row per study (`series_instance_uid` '') or series; written by the identity corrections
 * (src/quality/corrections/), read by the one read path (src/archive/retrieve.ts). The stored objects are
 * never rewritten.
 */
export const migration: SchemaMigration = {
  name: '0025_served_corrections',
  module: 'archive',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('served_correction'))
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      .addColumn('series_instance_uid', 'text', (c) => c.notNull().defaultTo(''))
      // JSON: [{ tag: "00100020", keyword, vr, value }], ascending tags.
      .addColumn('attributes', 'text', (c) => c.notNull())
      // The correction that wrote the row last: part of the served object's entity tag.
      .addColumn('correction_pk', 'bigint', (c) => c.notNull())
      .addColumn('corrected_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('served_correction_target', ['study_instance_uid', 'series_instance_uid'])
      .execute();
    await db.schema.createIndex('served_correction_series_idx').on('served_correction').column('series_instance_uid').execute();
  },
};
