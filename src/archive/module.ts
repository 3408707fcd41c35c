import type { AtriumModule } from '../modules/module.ts';
import { migration as initialSchema } from './migrations/0001_archive_initial_schema.ts';
import { migration as studyListOrder } from './migrations/0005_archive_study_list_order.ts';
import { migration as qualityFindings } from './migrations/0007_archive_quality_findings.ts';
import { migration as instanceReceivedAt } from './migrations/0008_archive_instance_received_at.ts';
import { migration as servedCorrections } from './migrations/0025_archive_served_corrections.ts';

/** The archive: the index of patients, studies, series and instances, the quarantine, the quality findings, and what is served for corrected studies. */
export const archiveModule: AtriumModule = { name: 'archive', migrations: [initialSchema, studyListOrder, qualityFindings, instanceReceivedAt, servedCorrections] };
