import { AtriumError } from '../errors.ts';
import type { Page, Paged } from '../ports/index-store.ts';
import type { OrderStatus, Report, ReportInput } from './model.ts';
import type { OrderService } from './order-service.ts';
import { studyRef } from './order-service.ts';
import type { ChangeContext, RisCore, RisUnit } from './ris-context.ts';

/**
 * Reports (ORU^R01): linked to their order, and so to its study, by accession number. Every version is
 * kept: a correction or a second final becomes version n+1 and the one before is marked superseded.
 */
export class ReportService {
  readonly #core: RisCore;
  readonly #orders: OrderService;

  constructor(core: RisCore, orders: OrderService) {
    this.#core = core;
    this.#orders = orders;
  }

  async receive(unit: RisUnit, input: ReportInput): Promise<Report> {
    const order = await unit.store.findOrder({ accessionNumber: input.accessionNumber });
    if (!order) throw new AtriumError('not-found', `no order with accession number ${input.accessionNumber}`, { key: 'order' });
    if (order.status === 'cancelled') throw new AtriumError('conflict', `order ${order.accessionNumber} is cancelled`, { key: 'order' });
    const previous = await unit.store.currentReport(order.pk);
    const report = await unit.store.insertReport(order.pk, order, input, unit.context.source, unit.now);
    // Final and corrected versions go out to the EHR (ORU^R01, src/ris/hl7/report-outbound.ts): the event is
    // written here, in the report's transaction, whichever transport brought the report.
    if (report.status === 'F' || report.status === 'C') await unit.store.emitReportFinal(report, order, unit.now);
    // A critical result, of any status (a preliminary read may be what finds it): docs/reading.md "Critical results".
    if (input.critical) await unit.store.emitCriticalResult(report, order, unit.now);
    const status: OrderStatus = input.status === 'P' ? 'preliminary-report'
      : input.status === 'C' || previous?.status === 'F' || previous?.status === 'C' ? 'amended' : 'final-report';
    await this.#orders.reportStatus(unit, { pk: order.pk }, status, `report version ${report.version} (${input.status})${input.author ? ` by ${input.author}` : ''}`);
    unit.audit('order-record', `report version ${report.version} (${input.status}) of order ${order.accessionNumber} received`, { patientIds: [order.patient.patientId], studies: [studyRef(order)] });
    return report;
  }

  /** A report as one change of its own (REST, FHIR: callers outside an HL7 message's transaction). */
  async receiveReport(context: ChangeContext, input: ReportInput): Promise<Report> {
    return await this.#core.change(context, (unit) => this.receive(unit, input));
  }

  async list(filter: { accessionNumber?: string; status?: string }, page: Page): Promise<Paged<Report>> {
    return await this.#core.store.listReports(filter, page);
  }

  async get(id: number): Promise<Report | null> {
    return await this.#core.store.getReport(id);
  }
}
