import type { Kysely } from 'kysely';
import type { SchemaMigration } from '../../database/migration.ts';

/**
 * A dose report superseded by a later cumulative one of the same study (`superseded_by`: the report whose
 * irradiation events include all of its own), left out of the study's totals, the charts and the CSV; and
 * alerts withdrawn by the system (`state` withdrawn, `withdrawn_reason`) when their report was superseded
 * or a reference level changed so that the value is no longer over it.
 */
export const migration: SchemaMigration = {
  name: '0035_quality_dose_supersede',
  module: 'quality',
  async up(db: Kysely<any>) {
    await db.schema.alterTable('dose_report').addColumn('superseded_by', 'bigint').execute();
    await db.schema.alterTable('dose_alert').addColumn('withdrawn_reason', 'text').execute();
  },
};
