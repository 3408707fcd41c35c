/**
 * Reports to the EHR: a report version recorded as final (F) or corrected (C), whichever transport brought
 * it (HL7 ORU, REST, FHIR), is sent as an ORU^R01 to each destination of `ris.hl7Destinations` with
 * `reports: true`, by a durable `ris.hl7-report` job: retried with backoff while the destination does not
 * answer or answers AE, failed for good on AR (the delivery of outbound.ts). See docs/ehr.md.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../database/database.ts';
import type { DeliveredEvent } from '../../events/event-map.ts';
import type { JobHandler } from '../../jobs/job-runner.ts';
import type { JobQueue } from '../../ports/job-queue.ts';
import { escapeHl7 } from '../../hl7/message.ts';
import type { Hl7Destination } from '../config.ts';
import type { Order, Report } from '../model.ts';
import { deliverHl7, permanent } from './outbound.ts';

export const HL7_REPORT_JOB = 'ris.hl7-report';

export interface Hl7ReportPayload {
  /** The ReportFinal outbox id. */
  eventId: number;
  destination: string;
  /** The report version to send. */
  reportId: number;
  accessionNumber: string;
  status: 'F' | 'C';
}

/**
 * OBX-3 of the report text: LOINC 18782-3 "Radiology Study observation (narrative)", the code of a
 * radiology report's narrative that EHRs file imaging results under.
 */
export const REPORT_OBSERVATION_ID = '18782-3^Radiology Study observation (narrative)^LN';

function hl7Time(iso: string): string {
  return iso.replace(/[-:T]/g, '').replace(/\.\d+/, '').replace(/Z$/, '').slice(0, 14);
}

/** A report's observation time as HL7 TS: kept when it is one already (ORU in), else from ISO-8601. */
function observationTime(value: string | null): string {
  if (!value) return '';
  if (/^\d{4,14}(\.\d+)?([+-]\d{4})?$/.test(value)) return value;
  return Number.isNaN(Date.parse(value)) ? '' : hl7Time(new Date(value).toISOString());
}

/** A DICOM PN (Family^Given^Middle^Prefix^Suffix) as the name part of an XCN (ID^Family^Given...). */
function xcn(name: string | null): string {
  return name ? `^${name.split('^').map((p) => escapeHl7(p)).join('^')}` : '';
}

/**
 * The author as OBR-32 (NDL, whose first component is a CNN: ID&Family&Given): the name the report was
 * received with (`Family^Given`, see the ORU handler) in subcomponents 2 and 3.
 */
function interpreter(author: string | null): string {
  if (!author) return '';
  const [family = '', given = ''] = author.split('^');
  return `&${escapeHl7(family)}${given ? `&${escapeHl7(given)}` : ''}`;
}

export interface ReportMessageOptions {
  destination: Pick<Hl7Destination, 'version' | 'receivingApplication' | 'receivingFacility' | 'reportValueType'>;
  sendingApplication: string;
  sendingFacility: string;
  controlId: string;
  order: Order;
  report: Report;
  now: Date;
}

/**
 * The ORU^R01 of one report version, as text (segments ended by \r, UTF-8 declared in MSH-18):
 * MSH PID ORC OBR OBX+. ORC-1 RE (observations to follow); OBR-2/3 placer and filler order numbers, OBR-4
 * the procedure, OBR-7 the observation time, OBR-16 the ordering physician, OBR-18 the accession number,
 * OBR-19 the requested procedure ID, OBR-22 when the report was recorded, OBR-24 RAD (table 0074), OBR-25
 * and every OBX-11 the status (F final, C corrected), OBR-32 the author. The text: with TX one OBX per line,
 * with FT one OBX whose line breaks are \.br\.
 */
export function buildReportMessage(o: ReportMessageOptions): string {
  const e = (s: string | null | undefined) => escapeHl7(s ?? '');
  const { order, report } = o;
  const segments: string[][] = [];
  segments.push(['MSH', '^~\\&', e(o.sendingApplication), e(o.sendingFacility), e(o.destination.receivingApplication), e(o.destination.receivingFacility),
    hl7Time(o.now.toISOString()), '', 'ORU^R01^ORU_R01', e(o.controlId), 'P', o.destination.version, '', '', '', '', '', 'UNICODE UTF-8']);
  segments.push(['PID', '1', '', `${e(order.patient.patientId)}^^^${e(order.patient.issuerOfPatientId)}^MR`, '', nameOf(order.patient.patientName),
    '', e(order.patient.patientBirthDate), e(order.patient.patientSex)]);
  segments.push(['ORC', 'RE', e(order.placerOrderNumber), e(order.fillerOrderNumber), '', 'CM', '', '', '', hl7Time(report.createdAt)]);
  const code = order.requestedProcedureCode;
  const service = code ? `${e(code.code)}^${e(code.meaning)}^${e(code.scheme)}` : order.requestedProcedureDescription ? `^${e(order.requestedProcedureDescription)}` : '';
  const observed = observationTime(report.observedAt);
  const obr = ['OBR', '1', e(order.placerOrderNumber), e(order.fillerOrderNumber), service];
  obr[7] = observed;
  obr[16] = xcn(order.orderingPhysician);
  obr[18] = e(order.accessionNumber);
  obr[19] = e(order.requestedProcedureId);
  obr[22] = hl7Time(report.createdAt);
  obr[24] = 'RAD';
  obr[25] = report.status;
  obr[32] = interpreter(report.author);
  segments.push(Array.from(obr, (v) => v ?? ''));
  const lines = report.text.split(/\r\n|\r|\n/);
  const values = o.destination.reportValueType === 'FT' ? [e(lines.join('\n'))] : lines.map((line) => e(line));
  for (const [i, value] of values.entries()) {
    segments.push(['OBX', String(i + 1), o.destination.reportValueType, REPORT_OBSERVATION_ID, '1', value, '', '', '', '', '', report.status, '', '', observed]);
  }
  return segments.map((fields) => fields.join('|').replace(/\|+$/, '')).join('\r') + '\r';
}

function nameOf(name: string | null): string {
  return (name ?? '').split('^').map((p) => escapeHl7(p)).join('^');
}

/**
 * Whether the report came in by HL7 from this destination: MSH-3 is its receiving application and, when it
 * names a receiving facility, MSH-4 is that (compared without regard to case). The source reference of an
 * HL7 report is `<MSH-3>^<MSH-4>:<MSH-10>` (src/ris/hl7/receiver.ts).
 */
export function cameFrom(destination: Pick<Hl7Destination, 'receivingApplication' | 'receivingFacility'>, source: string, sourceRef: string | null): boolean {
  if (source !== 'hl7' || !sourceRef) return false;
  const sender = sourceRef.slice(0, sourceRef.indexOf(':') < 0 ? undefined : sourceRef.indexOf(':'));
  const [application = '', facility = ''] = sender.split('^');
  const same = (a: string, b: string) => a.toUpperCase() === b.toUpperCase();
  return same(application, destination.receivingApplication) && (destination.receivingFacility === '' || same(facility, destination.receivingFacility));
}

/** What queuing needs. */
export interface ReportOutboundDeps {
  database: Database;
  jobs: JobQueue;
  destinations: () => readonly Hl7Destination[];
}

/**
 * The `ris.hl7-report` handler of ReportFinal: one job per destination that takes reports, except the
 * system that sent the report in (unless `echoReports`). Idempotent like the status messages' handler: a
 * row keyed on (event id, destination) first, the job's dedupe key for a node lost between row and job.
 */
export async function queueReportMessages(deps: ReportOutboundDeps, event: DeliveredEvent<'ReportFinal'>): Promise<number> {
  const p = event.payload;
  const db = deps.database.kysely<any>() as Kysely<any>;
  let queued = 0;
  for (const destination of deps.destinations()) {
    if (!destination.reports) continue;
    if (!destination.echoReports && cameFrom(destination, p.source, p.sourceRef)) continue;
    await db.insertInto('ris_hl7_report_outbound').values({
      event_id: event.id, destination: destination.name, report_id: p.reportId, accession_number: p.accessionNumber, status: p.status, job_id: null,
      created_at: new Date().toISOString(),
    }).onConflict((oc) => oc.columns(['event_id', 'destination']).doNothing()).execute();
    const row = await db.selectFrom('ris_hl7_report_outbound').select(['pk', 'job_id']).where('event_id', '=', event.id).where('destination', '=', destination.name).executeTakeFirstOrThrow();
    if (row.job_id !== null) continue;
    const payload: Hl7ReportPayload = { eventId: event.id, destination: destination.name, reportId: p.reportId, accessionNumber: p.accessionNumber, status: p.status };
    const job = await deps.jobs.enqueue(HL7_REPORT_JOB, payload, { dedupeKey: `${HL7_REPORT_JOB}:${event.id}:${destination.name}`, maxAttempts: destination.maxAttempts });
    await db.updateTable('ris_hl7_report_outbound').set({ job_id: job.id }).where('pk', '=', row.pk).execute();
    queued++;
  }
  return queued;
}

export interface ReportJobDeps {
  destinations: () => readonly Hl7Destination[];
  findReport: (id: number) => Promise<Report | null>;
  /** Every version of the order's report (to see whether this one was superseded by a later final). */
  reportVersions: (accessionNumber: string) => Promise<Report[]>;
  findOrder: (accessionNumber: string) => Promise<Order | null>;
  sender: () => { application: string; facility: string };
}

/**
 * The `ris.hl7-report` job: builds the ORU^R01 of the event's report version and the order as it now is,
 * and sends it (MSH-10 `ATR<job id>` on every attempt). A version that a later final or corrected version
 * superseded before it went out is not sent (the job succeeds, saying so): the later one's own job carries
 * the current text, and an older text arriving after it would overwrite the correction at the EHR.
 */
export function hl7ReportJob(deps: ReportJobDeps): JobHandler<Hl7ReportPayload> {
  return async (job, context) => {
    const p = job.payload;
    const destination = deps.destinations().find((d) => d.name === p.destination);
    if (!destination) throw permanent(`no HL7 destination "${p.destination}" is configured (ris.hl7Destinations)`);
    const report = await deps.findReport(p.reportId);
    if (!report) throw permanent(`no report ${p.reportId}`);
    const later = (await deps.reportVersions(report.accessionNumber))
      .filter((r) => r.version > report.version && (r.status === 'F' || r.status === 'C'))
      .sort((a, b) => b.version - a.version)[0];
    if (later) return { destination: destination.name, reportId: report.id, version: report.version, sent: false, supersededBy: later.version };
    const order = await deps.findOrder(report.accessionNumber);
    if (!order) throw permanent(`no order with accession number ${report.accessionNumber}`);
    const controlId = `ATR${job.id}`;
    const sender = deps.sender();
    const text = buildReportMessage({ destination, sendingApplication: sender.application, sendingFacility: sender.facility, controlId, order, report, now: new Date() });
    const ack = await deliverHl7(destination, controlId, text, context.signal);
    return { destination: destination.name, controlId, ack, reportId: report.id, version: report.version, resultStatus: report.status, sent: true };
  };
}
