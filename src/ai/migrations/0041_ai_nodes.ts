import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The AI node registry (src/ai/, docs/ai.md): one row per AI product Atrium sends studies to, its definition
 * (vendor, version, regulatory clearance, endpoint, finding mapping) as JSON. Changes are audit records.
 */
export const migration: SchemaMigration = {
  name: '0041_ai_nodes',
  module: 'ai',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('ai_node'))
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('enabled', 'integer', (c) => c.notNull())
      /** clinical (a clearance is recorded) | research (its results are marked research and raise nothing). */
      .addColumn('mode', 'text', (c) => c.notNull())
      .addColumn('definition_json', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('updated_by', 'text')
      .execute();
  },
};
