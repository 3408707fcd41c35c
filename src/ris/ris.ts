import type { Logger } from 'pino';
import type { Database } from '../database/database.ts';
import type { AuditService } from '../audit/audit-service.ts';
import type { IndexStore } from '../ports/index-store.ts';
import { RisCore } from './ris-context.ts';
import { SqlRisStore } from './sql-ris-store.ts';
import { PatientService } from './patient-service.ts';
import { OrderService } from './order-service.ts';
import { ReportService } from './report-service.ts';
import { Hl7Receiver, type Hl7ReceiverOptions } from './hl7/receiver.ts';

/** The RIS services of one archive, built once per archive (risOf). */
export interface Ris {
  core: RisCore;
  patients: PatientService;
  orders: OrderService;
  reports: ReportService;
  hl7: Hl7Receiver;
  index: IndexStore;
}

export function createRis(deps: { database: Database; audit: AuditService; index: IndexStore; log: Logger; hl7: Hl7ReceiverOptions; clock?: () => Date }): Ris {
  const core = new RisCore({ store: new SqlRisStore(deps.database), audit: deps.audit, clock: deps.clock });
  const patients = new PatientService(core);
  const orders = new OrderService(core, deps.log);
  const reports = new ReportService(core, orders);
  const hl7 = new Hl7Receiver(core, { patients, orders, reports }, deps.hl7, deps.log);
  return { core, patients, orders, reports, hl7, index: deps.index };
}
