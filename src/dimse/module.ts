import type { AtriumModule } from '../modules/module.ts';
import { archiveDimseServices } from './services/dicom-service.ts';

/** The archive on DIMSE: verification, storage, query, move, get and storage commitment. */
export const dimseModule: AtriumModule = { name: 'dimse', dimseServices: archiveDimseServices };
