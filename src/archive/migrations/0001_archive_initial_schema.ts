import { type Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The archive's index (patient, study, series, instance, their versions, the quarantine) and the outbox of
 * events written in the same transaction as each change (see src/events/).
 */
export const migration: SchemaMigration = {
  name: '0001_initial_schema',
  module: 'archive',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('patient'))
      .addColumn('patient_id', 'text', (c) => c.notNull())
      .addColumn('issuer_of_patient_id', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('patient_name', 'text')
      .addColumn('patient_name_search', 'text')
      .addColumn('patient_birth_date', 'text')
      .addColumn('patient_sex', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('patient_identity', ['patient_id', 'issuer_of_patient_id'])
      .execute();
    await db.schema.createIndex('patient_name_search_idx').on('patient').column('patient_name_search').execute();

    await withPk(engine, db.schema.createTable('study'))
      .addColumn('patient_pk', 'bigint', (c) => c.notNull().references('patient.pk'))
      .addColumn('study_instance_uid', 'text', (c) => c.notNull().unique())
      .addColumn('study_date', 'text')
      .addColumn('study_time', 'text')
      .addColumn('accession_number', 'text')
      .addColumn('study_description', 'text')
      .addColumn('referring_physician_name', 'text')
      .addColumn('study_id', 'text')
      .addColumn('timezone_offset_from_utc', 'text')
      .addColumn('patient_age', 'text')
      .addColumn('patient_size', 'double precision')
      .addColumn('patient_weight', 'double precision')
      .addColumn('modalities_in_study', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('sop_classes_in_study', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('number_of_series', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('number_of_instances', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('size_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('study_patient_idx').on('study').column('patient_pk').execute();
    await db.schema.createIndex('study_date_idx').on('study').column('study_date').execute();
    await db.schema.createIndex('study_accession_idx').on('study').column('accession_number').execute();

    await withPk(engine, db.schema.createTable('series'))
      .addColumn('study_pk', 'bigint', (c) => c.notNull().references('study.pk'))
      .addColumn('series_instance_uid', 'text', (c) => c.notNull().unique())
      .addColumn('modality', 'text')
      .addColumn('series_number', 'integer')
      .addColumn('series_description', 'text')
      .addColumn('body_part_examined', 'text')
      .addColumn('series_date', 'text')
      .addColumn('series_time', 'text')
      .addColumn('performed_procedure_step_start_date', 'text')
      .addColumn('performed_procedure_step_start_time', 'text')
      .addColumn('institution_name', 'text')
      .addColumn('station_name', 'text')
      .addColumn('manufacturer', 'text')
      .addColumn('laterality', 'text')
      .addColumn('requested_procedure_id', 'text')
      .addColumn('scheduled_procedure_step_id', 'text')
      .addColumn('number_of_instances', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('size_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('series_study_idx').on('series').column('study_pk').execute();
    await db.schema.createIndex('series_modality_idx').on('series').column('modality').execute();

    await withPk(engine, db.schema.createTable('instance'))
      .addColumn('series_pk', 'bigint', (c) => c.notNull().references('series.pk'))
      .addColumn('sop_instance_uid', 'text', (c) => c.notNull().unique())
      .addColumn('sop_class_uid', 'text', (c) => c.notNull())
      .addColumn('instance_number', 'integer')
      .addColumn('transfer_syntax_uid', 'text', (c) => c.notNull())
      .addColumn('number_of_frames', 'integer')
      .addColumn('rows', 'integer')
      .addColumn('columns', 'integer')
      .addColumn('content_date', 'text')
      .addColumn('content_time', 'text')
      .addColumn('patient_id_received', 'text', (c) => c.notNull())
      .addColumn('blob_key', 'text', (c) => c.notNull())
      .addColumn('size_bytes', 'bigint', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('dataset_sha256', 'text', (c) => c.notNull())
      .addColumn('pixel_data', 'text')
      .addColumn('metadata', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('received_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('instance_series_idx').on('instance').column('series_pk').execute();

    await withPk(engine, db.schema.createTable('instance_version'))
      .addColumn('sop_instance_uid', 'text', (c) => c.notNull())
      .addColumn('transfer_syntax_uid', 'text', (c) => c.notNull())
      .addColumn('blob_key', 'text', (c) => c.notNull())
      .addColumn('size_bytes', 'bigint', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('metadata', 'text', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('received_at', 'text', (c) => c.notNull())
      .addColumn('superseded_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('instance_version_sop_idx').on('instance_version').column('sop_instance_uid').execute();

    await withPk(engine, db.schema.createTable('quarantine'))
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('reason_code', 'text', (c) => c.notNull())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addColumn('element', 'text')
      .addColumn('byte_offset', 'bigint')
      .addColumn('sop_instance_uid', 'text')
      .addColumn('original_name', 'text')
      .addColumn('blob_key', 'text', (c) => c.notNull())
      .addColumn('size_bytes', 'bigint', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('received_at', 'text', (c) => c.notNull())
      .execute();

    await withPk(engine, db.schema.createTable('outbox'))
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('dispatched_at', 'text')
      .execute();
    await db.schema.createIndex('outbox_pending_idx').on('outbox').column('dispatched_at').execute();
  },
};
