import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Routing rules as data: `workflow_rule` holds each rule's current definition (JSON, src/workflow/rule.ts),
 * and `workflow_rule_version` every version it ever had (each create, update, disable, enable and delete adds
 * one; none is ever changed), with who made it and what the change was.
 */
export const migration: SchemaMigration = {
  name: '0029_workflow_rules',
  module: 'workflow',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('workflow_rule'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      /** 1 enabled, 0 disabled. */
      .addColumn('enabled', 'integer', (c) => c.notNull())
      .addColumn('definition', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      /** Deleted rules keep their versions; they no longer match and their name may be used again. */
      .addColumn('deleted_at', 'text')
      .execute();
    await db.schema.createIndex('workflow_rule_name_idx').on('workflow_rule').column('name').execute();
    await withPk(engine, db.schema.createTable('workflow_rule_version'))
      .addColumn('rule_pk', 'bigint', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('enabled', 'integer', (c) => c.notNull())
      .addColumn('deleted', 'integer', (c) => c.notNull())
      .addColumn('definition', 'text', (c) => c.notNull())
      /** created | updated | disabled | enabled | deleted */
      .addColumn('change', 'text', (c) => c.notNull())
      .addColumn('changed_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('workflow_rule_version_idx').on('workflow_rule_version').columns(['rule_pk', 'version']).unique().execute();
  },
};
