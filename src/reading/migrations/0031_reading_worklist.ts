import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The reading worklist (src/reading/): one row per study ready to read (its order's MPPS or status
 * completed, or the study found stable), with the AI triage flag later work sets, and its claim. A claim is
 * one conditional UPDATE (`claimed_by IS NULL`), so two radiologists never both hold a study.
 */
export const migration: SchemaMigration = {
  name: '0031_reading_worklist',
  module: 'reading',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('reading_item'))
      .addColumn('study_instance_uid', 'text', (c) => c.notNull().unique())
      .addColumn('accession_number', 'text')
      .addColumn('patient_id', 'text')
      /** When the exam became ready to read (the completed entry's time, or the last instance's of a stable study). */
      .addColumn('ready_at', 'text', (c) => c.notNull())
      /** mpps | order | stable */
      .addColumn('ready_reason', 'text', (c) => c.notNull())
      /** The AI triage flag (a finding), set by the AI integration; null: none. */
      .addColumn('triage', 'text')
      .addColumn('claimed_by', 'text')
      .addColumn('claimed_by_name', 'text')
      .addColumn('claimed_at', 'text')
      /** The final report's time: the study leaves the worklist. */
      .addColumn('reported_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('reading_item_open_idx').on('reading_item').columns(['reported_at', 'ready_at']).execute();
    await db.schema.createIndex('reading_item_accession_idx').on('reading_item').column('accession_number').execute();
  },
};
