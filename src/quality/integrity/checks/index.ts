/** Every integrity check, in the order a sweep runs them (docs/integrity.md lists them). */
import type { IntegrityKind } from '../../config.ts';
import type { IntegrityCheck } from './check.ts';
import { duplicateStudyCheck } from './duplicate-study.ts';
import { identityMismatchCheck } from './identity-mismatch.ts';
import { keyAttributesCheck } from './key-attributes.ts';
import { orderWithoutImagesCheck, orphanStudyCheck } from './orders-and-orphans.ts';
import { seriesUidConflictCheck, sopInstanceConflictCheck, studyUidConflictCheck } from './uid-conflicts.ts';

export const CHECKS: Readonly<Record<IntegrityKind, IntegrityCheck>> = {
  'identity-mismatch': identityMismatchCheck,
  'study-uid-conflict': studyUidConflictCheck,
  'series-uid-conflict': seriesUidConflictCheck,
  'sop-instance-conflict': sopInstanceConflictCheck,
  'duplicate-study': duplicateStudyCheck,
  'orphan-study': orphanStudyCheck,
  'key-attributes': keyAttributesCheck,
  'order-without-images': orderWithoutImagesCheck,
};
