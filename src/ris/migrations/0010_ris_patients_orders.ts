import type { Kysely } from 'kysely';
import { withPk, type SchemaMigration, type SqlEngine } from '../../database/migration.ts';

/**
 * The RIS (src/ris/): patients as the RIS/ADT knows them with their merge history, orders (one requested
 * procedure each) with their scheduled procedure steps and status timeline, reports with their versions,
 * the links of archived studies to orders (and the studies no order matched), and the HL7 message log.
 * Numbered 0010: 0008 and 0009 are taken by the archive and exchange changes being made beside this one.
 */
export const migration: SchemaMigration = {
  name: '0010_ris_patients_orders',
  module: 'ris',
  async up(db: Kysely<any>, engine: SqlEngine) {
    await withPk(engine, db.schema.createTable('ris_patient'))
      .addColumn('patient_id', 'text', (c) => c.notNull())
      .addColumn('issuer_of_patient_id', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('patient_name', 'text')
      .addColumn('patient_name_search', 'text')
      .addColumn('patient_birth_date', 'text')
      .addColumn('patient_sex', 'text')
      /** JSON [{ id, issuer, type }]: the other identifiers of PID-3. */
      .addColumn('other_identifiers', 'text', (c) => c.notNull().defaultTo('[]'))
      /** active | merged (into merged_into_pk). */
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
      .addColumn('merged_into_pk', 'bigint')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('ris_patient_identity', ['patient_id', 'issuer_of_patient_id'])
      .execute();
    await db.schema.createIndex('ris_patient_name_idx').on('ris_patient').column('patient_name_search').execute();

    await withPk(engine, db.schema.createTable('ris_patient_change'))
      /** merge (A40) | identifier-change (A47) */
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('survivor_pk', 'bigint', (c) => c.notNull().references('ris_patient.pk'))
      .addColumn('prior_pk', 'bigint', (c) => c.references('ris_patient.pk'))
      .addColumn('prior_patient_id', 'text', (c) => c.notNull())
      .addColumn('prior_issuer', 'text', (c) => c.notNull())
      /** JSON: what the change did, for its undo (order pks, study UIDs, index patient rows). */
      .addColumn('moved', 'text', (c) => c.notNull())
      .addColumn('source_kind', 'text', (c) => c.notNull())
      .addColumn('source_ref', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('undone_at', 'text')
      .addColumn('undone_by', 'text')
      .execute();
    await db.schema.createIndex('ris_patient_change_survivor_idx').on('ris_patient_change').column('survivor_pk').execute();
    await db.schema.createIndex('ris_patient_change_prior_idx').on('ris_patient_change').column('prior_pk').execute();

    await withPk(engine, db.schema.createTable('ris_order'))
      .addColumn('patient_pk', 'bigint', (c) => c.notNull().references('ris_patient.pk'))
      .addColumn('placer_order_number', 'text')
      .addColumn('filler_order_number', 'text')
      .addColumn('accession_number', 'text', (c) => c.notNull().unique())
      .addColumn('requested_procedure_id', 'text')
      /** JSON { code, scheme, meaning } or null. */
      .addColumn('requested_procedure_code', 'text')
      .addColumn('requested_procedure_description', 'text')
      .addColumn('priority', 'text', (c) => c.notNull())
      .addColumn('screening', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('reason', 'text')
      .addColumn('referring_physician', 'text')
      .addColumn('ordering_physician', 'text')
      .addColumn('study_instance_uid', 'text', (c) => c.notNull().unique())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ris_order_patient_idx').on('ris_order').column('patient_pk').execute();
    await db.schema.createIndex('ris_order_placer_idx').on('ris_order').column('placer_order_number').execute();
    await db.schema.createIndex('ris_order_filler_idx').on('ris_order').column('filler_order_number').execute();
    await db.schema.createIndex('ris_order_status_idx').on('ris_order').columns(['status', 'created_at']).execute();

    await withPk(engine, db.schema.createTable('ris_procedure_step'))
      .addColumn('order_pk', 'bigint', (c) => c.notNull().references('ris_order.pk'))
      .addColumn('step_id', 'text', (c) => c.notNull())
      .addColumn('modality', 'text')
      .addColumn('station_ae_title', 'text')
      .addColumn('station_name', 'text')
      .addColumn('location', 'text')
      /** DICOM DA and TM; start_at is both as YYYYMMDDHHMMSS, for ranges. */
      .addColumn('start_date', 'text')
      .addColumn('start_time', 'text')
      .addColumn('start_at', 'text')
      .addColumn('description', 'text')
      .addColumn('performing_physician', 'text')
      /** JSON [{ code, scheme, meaning }]. */
      .addColumn('protocol_codes', 'text', (c) => c.notNull().defaultTo('[]'))
      /** SCHEDULED | ARRIVED | READY | IN PROGRESS | COMPLETED | DISCONTINUED | CANCELLED */
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('ris_procedure_step_id', ['order_pk', 'step_id'])
      .execute();
    await db.schema.createIndex('ris_procedure_step_open_idx').on('ris_procedure_step').columns(['status', 'start_at']).execute();
    await db.schema.createIndex('ris_procedure_step_station_idx').on('ris_procedure_step').columns(['station_ae_title', 'start_at']).execute();

    await withPk(engine, db.schema.createTable('ris_order_event'))
      .addColumn('order_pk', 'bigint', (c) => c.notNull().references('ris_order.pk'))
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('step_pk', 'bigint')
      /** hl7 | mpps | image | user | system */
      .addColumn('source_kind', 'text', (c) => c.notNull())
      /** The HL7 message (sender:control ID), the MPPS SOP Instance UID, the study UID, the user name. */
      .addColumn('source_ref', 'text')
      .addColumn('detail', 'text')
      .addColumn('at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ris_order_event_order_idx').on('ris_order_event').columns(['order_pk', 'pk']).execute();

    await withPk(engine, db.schema.createTable('ris_report'))
      .addColumn('order_pk', 'bigint', (c) => c.notNull().references('ris_order.pk'))
      .addColumn('accession_number', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      /** P (preliminary) | F (final) | C (corrected, an amendment) */
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('text', 'text', (c) => c.notNull())
      .addColumn('author', 'text')
      .addColumn('observed_at', 'text')
      .addColumn('source_kind', 'text', (c) => c.notNull())
      .addColumn('source_ref', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('superseded_at', 'text')
      .addUniqueConstraint('ris_report_version', ['order_pk', 'version'])
      .execute();
    await db.schema.createIndex('ris_report_accession_idx').on('ris_report').column('accession_number').execute();

    await withPk(engine, db.schema.createTable('ris_order_study'))
      .addColumn('order_pk', 'bigint', (c) => c.notNull().references('ris_order.pk'))
      .addColumn('study_instance_uid', 'text', (c) => c.notNull().unique())
      /** accession | study-uid */
      .addColumn('matched_by', 'text', (c) => c.notNull())
      /** The study's Patient ID is not the order's patient's: a wrong-patient safety flag, never fixed silently. */
      .addColumn('patient_mismatch', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('study_patient_id', 'text')
      .addColumn('linked_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ris_order_study_order_idx').on('ris_order_study').column('order_pk').execute();

    await withPk(engine, db.schema.createTable('ris_unmatched_study'))
      .addColumn('study_instance_uid', 'text', (c) => c.notNull().unique())
      .addColumn('accession_number', 'text')
      .addColumn('patient_id', 'text')
      .addColumn('first_seen_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ris_unmatched_accession_idx').on('ris_unmatched_study').column('accession_number').execute();

    await withPk(engine, db.schema.createTable('ris_hl7_message'))
      /** MSH-3^MSH-4 (application^facility): the namespace MSH-10 is unique in. */
      .addColumn('sender', 'text', (c) => c.notNull())
      /** MSH-10; null when the message could not be parsed that far. */
      .addColumn('control_id', 'text')
      .addColumn('message_type', 'text')
      .addColumn('version', 'text')
      .addColumn('remote_address', 'text')
      /** The bytes as received (base64), and their decoded text for reading and searching. */
      .addColumn('raw', 'text', (c) => c.notNull())
      .addColumn('text', 'text', (c) => c.notNull())
      .addColumn('ack', 'text', (c) => c.notNull())
      .addColumn('ack_code', 'text', (c) => c.notNull())
      .addColumn('error_code', 'text')
      .addColumn('error_location', 'text')
      .addColumn('error_text', 'text')
      .addColumn('patient_id', 'text')
      .addColumn('accession_number', 'text')
      .addColumn('received_at', 'text', (c) => c.notNull())
      .addColumn('replays', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('replayed_at', 'text')
      .addColumn('replayed_by', 'text')
      .addUniqueConstraint('ris_hl7_message_once', ['sender', 'control_id'])
      .execute();
    await db.schema.createIndex('ris_hl7_message_received_idx').on('ris_hl7_message').column('received_at').execute();
    await db.schema.createIndex('ris_hl7_message_code_idx').on('ris_hl7_message').columns(['ack_code', 'received_at']).execute();
  },
};
