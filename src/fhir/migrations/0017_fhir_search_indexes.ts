import type { Kysely } from 'kysely';
import type { SchemaMigration } from '../../database/migration.ts';

/**
 * Indexes the FHIR searches (src/fhir/) use beyond the index's and the RIS's own: the referring physician of
 * a study (a referring clinician's searches read the column's distinct values through it, context.ts), the
 * series of a modality within a study (ImagingStudy?modality), orders by reception time
 * (ServiceRequest?authored and the default order) and the current report of an order.
 */
export const migration: SchemaMigration = {
  name: '0017_fhir_search_indexes',
  module: 'fhir',
  async up(db: Kysely<any>) {
    await db.schema.createIndex('fhir_study_referring_idx').on('study').column('referring_physician_name').execute();
    await db.schema.createIndex('fhir_series_modality_study_idx').on('series').columns(['modality', 'study_pk']).execute();
    await db.schema.createIndex('fhir_ris_order_created_idx').on('ris_order').columns(['created_at', 'pk']).execute();
    await db.schema.createIndex('fhir_ris_report_current_idx').on('ris_report').columns(['order_pk', 'superseded_at']).execute();
  },
};
