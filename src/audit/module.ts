import type { AtriumModule } from '../modules/module.ts';
import { migration as auditTrail } from './migrations/0004_audit_trail.ts';

/** The append-only audit trail. */
export const auditModule: AtriumModule = { name: 'audit', migrations: [auditTrail] };
