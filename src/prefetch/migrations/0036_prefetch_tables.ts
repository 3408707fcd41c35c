import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * Prior prefetch (src/prefetch/, docs/prefetch.md): the rules (`prefetch_rule`, their definition as JSON),
 * one `prefetch_order` per order that was searched for priors (unique accession number: what makes a
 * redelivered OrderStatusChanged queue one search), and one `prefetch_prior` per prior study found for an
 * order (unique per order and study: what makes a second search queue no second fetch), with the durable
 * job that fetches it (a `dicom.retrieve` job, src/exchange/dicom-jobs.ts) when it is on a remote archive.
 */
export const migration: SchemaMigration = {
  name: '0036_prefetch_tables',
  module: 'prefetch',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('prefetch_rule'))
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('enabled', 'integer', (c) => c.notNull())
      .addColumn('definition_json', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('updated_by', 'text')
      .execute();

    await withPk(engine, db.schema.createTable('prefetch_order'))
      .addColumn('accession_number', 'text', (c) => c.notNull().unique())
      .addColumn('study_instance_uid', 'text')
      .addColumn('patient_id', 'text', (c) => c.notNull())
      .addColumn('issuer_of_patient_id', 'text', (c) => c.notNull())
      /** order-scheduled | study-arrived | study-stable | on-demand */
      .addColumn('trigger', 'text', (c) => c.notNull())
      /** The `prefetch.search` job of the last search. */
      .addColumn('search_job_id', 'bigint')
      /** What the last finished search saw: rules applied, sources asked (JSON). */
      .addColumn('searched_json', 'text')
      .addColumn('searched_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();

    await withPk(engine, db.schema.createTable('prefetch_prior'))
      .addColumn('order_pk', 'bigint', (c) => c.notNull().references('prefetch_order.pk').onDelete('cascade'))
      .addColumn('study_instance_uid', 'text', (c) => c.notNull())
      /** `local` (already in Atrium) or the AE title of the remote archive it is fetched from. */
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('rule_name', 'text', (c) => c.notNull())
      .addColumn('study_date', 'text')
      .addColumn('study_description', 'text')
      .addColumn('modalities', 'text', (c) => c.notNull())
      .addColumn('job_id', 'bigint')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('prefetch_prior_order_study_idx').on('prefetch_prior').columns(['order_pk', 'study_instance_uid']).unique().execute();
  },
};
