/**
 * Outbound HL7 status messages: when an order's status moves (MPPS in progress / completed / discontinued,
 * images arrived, a cancel by hand), each configured destination is sent an ORM^O01 or OMI^O23 with ORC-1
 * SC and ORC-5 the status (HL7 table 0038), by a durable `ris.hl7-status` job: retried with backoff while
 * the destination does not answer or answers AE, failed for good on AR. See docs/ris.md.
 */
import { readFileSync } from 'node:fs';
import type { Kysely } from 'kysely';
import type { Database } from '../../database/database.ts';
import type { DeliveredEvent } from '../../events/event-map.ts';
import type { JobHandler } from '../../jobs/job-runner.ts';
import type { JobQueue } from '../../ports/job-queue.ts';
import { escapeHl7, encodeCharacterSet } from '../../hl7/message.ts';
import { parseAck } from '../../hl7/ack.ts';
import { sendMllp } from '../../hl7/mllp-client.ts';
import type { Hl7Destination, OutboundStatus } from '../config.ts';
import type { Order } from '../model.ts';

export const HL7_STATUS_JOB = 'ris.hl7-status';

export interface Hl7StatusPayload {
  /** The OrderStatusChanged outbox id. */
  eventId: number;
  destination: string;
  accessionNumber: string;
  status: OutboundStatus;
  source: string;
  sourceRef: string | null;
  /** When the status changed (the event's time): ORC-9. */
  at: string;
}

/**
 * HL7 table 0038 (order status) for each status sent, and the NTE note that says what happened when 0038
 * has no word for it. Images arriving is IP: acquisition has begun (the images prove it), but the
 * procedure is not known to be complete (more series may come; MPPS COMPLETED or the RIS says so).
 */
export const ORDER_STATUS_0038: Readonly<Record<OutboundStatus, { code: string; note: string | null }>> = {
  scheduled: { code: 'SC', note: null },
  arrived: { code: 'IP', note: 'Images arrived' },
  'in-progress': { code: 'IP', note: null },
  completed: { code: 'CM', note: null },
  discontinued: { code: 'DC', note: null },
  cancelled: { code: 'CA', note: null },
};

/** Table 0027 priority for ORC-7.6 / OBR-27.6 / TQ1-9. */
const PRIORITY_0027: Record<Order['priority'], string> = { STAT: 'S', ASAP: 'A', URGENT: 'U', ROUTINE: 'R' };

function hl7Time(iso: string): string {
  return iso.replace(/[-:T]/g, '').replace(/\.\d+/, '').replace(/Z$/, '').slice(0, 14);
}

export interface StatusMessageOptions {
  destination: Pick<Hl7Destination, 'messageType' | 'version' | 'receivingApplication' | 'receivingFacility'>;
  sendingApplication: string;
  sendingFacility: string;
  controlId: string;
  order: Order;
  status: OutboundStatus;
  /** The change's time (ISO-8601). */
  at: string;
  /** The change's source, for the note: `mpps 1.2.3`, `image 1.2.3` ... */
  source: string;
  now: Date;
}

/**
 * The status message, as text (segments ended by \r, UTF-8 declared in MSH-18). ORM^O01: MSH PID ORC OBR
 * [NTE]. OMI^O23 (v2.5+): MSH PID ORC TQ1 OBR [NTE] IPC (accession, requested procedure, Study Instance UID,
 * step, modality, station AE title).
 */
export function buildStatusMessage(o: StatusMessageOptions): string {
  const e = (s: string | null | undefined) => escapeHl7(s ?? '');
  const { order } = o;
  const step = order.steps[0] ?? null;
  const start = step?.startDate ? `${step.startDate}${step.startTime ?? ''}` : '';
  const mapped = ORDER_STATUS_0038[o.status];
  const [type, trigger] = o.destination.messageType.split('^') as [string, string];
  const segments: string[][] = [];
  segments.push(['MSH', '^~\\&', e(o.sendingApplication), e(o.sendingFacility), e(o.destination.receivingApplication), e(o.destination.receivingFacility),
    hl7Time(o.now.toISOString()), '', `${type}^${trigger}^${type}_${trigger}`, e(o.controlId), 'P', o.destination.version, '', '', '', '', '', 'UNICODE UTF-8']);
  segments.push(['PID', '1', '', `${e(order.patient.patientId)}^^^${e(order.patient.issuerOfPatientId)}^MR`, '', nameOf(order.patient.patientName),
    '', e(order.patient.patientBirthDate), e(order.patient.patientSex)]);
  const quantityTiming = o.destination.messageType === 'ORM^O01' ? `^^^${start}^^${PRIORITY_0027[order.priority]}` : '';
  segments.push(['ORC', 'SC', e(order.placerOrderNumber), e(order.fillerOrderNumber), '', mapped.code, '', quantityTiming, '', hl7Time(o.at)]);
  if (o.destination.messageType === 'OMI^O23') segments.push(['TQ1', '1', '', '', '', '', '', start, '', PRIORITY_0027[order.priority]]);
  const code = order.requestedProcedureCode;
  const service = code ? `${e(code.code)}^${e(code.meaning)}^${e(code.scheme)}` : order.requestedProcedureDescription ? `^${e(order.requestedProcedureDescription)}` : '';
  const obr = ['OBR', '1', e(order.placerOrderNumber), e(order.fillerOrderNumber), service];
  obr[18] = e(order.accessionNumber);
  obr[19] = e(order.requestedProcedureId);
  obr[20] = e(step?.stepId);
  obr[21] = e(step?.stationAeTitle);
  obr[24] = e(step?.modality);
  if (o.destination.messageType === 'ORM^O01') obr[27] = quantityTiming;
  segments.push(Array.from(obr, (v) => v ?? ''));
  const note = mapped.note ? `${mapped.note} (${o.source})` : null;
  if (note) segments.push(['NTE', '1', 'L', e(note)]);
  if (o.destination.messageType === 'OMI^O23') {
    for (const [i, s] of (order.steps.length ? order.steps : [null]).entries()) {
      segments.push(['IPC', e(order.accessionNumber), e(order.requestedProcedureId), e(order.studyInstanceUid), e(s?.stepId), e(s?.modality), '', e(s?.stationName), e(s?.location), e(s?.stationAeTitle)]);
      if (i > 20) break;
    }
  }
  return segments.map((fields) => fields.join('|').replace(/\|+$/, '')).join('\r') + '\r';
}

/** DICOM PN (Family^Given^Middle^Prefix^Suffix) is already HL7 XPN's component order; each part escaped. */
function nameOf(name: string | null): string {
  return (name ?? '').split('^').map((p) => escapeHl7(p)).join('^');
}

/** What queuing needs. */
export interface OutboundDeps {
  database: Database;
  jobs: JobQueue;
  destinations: () => readonly Hl7Destination[];
}

/**
 * The `ris.hl7-status` handler of OrderStatusChanged: one job per destination that wants the status.
 * Idempotent (events are delivered at least once): a row keyed on (event id, destination) is inserted
 * first; a redelivery finds it and queues nothing more, unless the job was never queued (a node lost
 * between the row and the job), in which case the job's dedupe key keeps it single.
 */
export async function queueStatusMessages(deps: OutboundDeps, event: DeliveredEvent<'OrderStatusChanged'>): Promise<number> {
  const p = event.payload;
  const db = deps.database.kysely<any>() as Kysely<any>;
  let queued = 0;
  for (const destination of deps.destinations()) {
    if (!(destination.statuses as readonly string[]).includes(p.status)) continue;
    if (p.source === 'hl7' && !destination.echoHl7) continue;
    await db.insertInto('ris_hl7_outbound').values({
      event_id: event.id, destination: destination.name, accession_number: p.accessionNumber, status: p.status, job_id: null, created_at: new Date().toISOString(),
    }).onConflict((oc) => oc.columns(['event_id', 'destination']).doNothing()).execute();
    const row = await db.selectFrom('ris_hl7_outbound').select(['pk', 'job_id']).where('event_id', '=', event.id).where('destination', '=', destination.name).executeTakeFirstOrThrow();
    if (row.job_id !== null) continue;
    const payload: Hl7StatusPayload = {
      eventId: event.id, destination: destination.name, accessionNumber: p.accessionNumber, status: p.status as OutboundStatus,
      source: p.source, sourceRef: p.sourceRef, at: event.createdAt,
    };
    const job = await deps.jobs.enqueue(HL7_STATUS_JOB, payload, { dedupeKey: `${HL7_STATUS_JOB}:${event.id}:${destination.name}`, maxAttempts: destination.maxAttempts });
    await db.updateTable('ris_hl7_outbound').set({ job_id: job.id }).where('pk', '=', row.pk).execute();
    queued++;
  }
  return queued;
}

/** A failure that will not pass by retrying (AR, an unknown destination or order). */
export function permanent(message: string): Error {
  return Object.assign(new Error(message), { retryable: false });
}

export interface StatusJobDeps {
  destinations: () => readonly Hl7Destination[];
  findOrder: (accessionNumber: string) => Promise<Order | null>;
  sender: () => { application: string; facility: string };
  /** The job of a later status message of the same order to the same destination that was delivered already, if any. */
  supersededBy?: (payload: Hl7StatusPayload) => Promise<number | null>;
}

/**
 * The delivered job of a later status change of the same order to the same destination (by outbox id),
 * or null. A message that waited for retries (the RIS was down) must not reach the RIS after a later one:
 * an IP after CM would set the RIS back.
 */
export async function laterDelivered(deps: { database: Database; jobs: JobQueue }, p: Hl7StatusPayload): Promise<number | null> {
  const db = deps.database.kysely<any>() as Kysely<any>;
  const rows = await db.selectFrom('ris_hl7_outbound').select('job_id').where('accession_number', '=', p.accessionNumber).where('destination', '=', p.destination)
    .where('event_id', '>', p.eventId).where('job_id', 'is not', null).orderBy('event_id', 'desc').execute();
  for (const row of rows) {
    const job = await deps.jobs.get(Number(row.job_id));
    if (job?.state === 'succeeded') return job.id;
  }
  return null;
}

/**
 * The `ris.hl7-status` job: builds the message from the order as it now is and the status of the event,
 * sends it over MLLP (MSH-10 `ATR<job id>`, the same on every attempt, so a receiver that saw an attempt
 * whose ACK was lost treats the next as a retransmission), and reads the ACK: AA/CA succeed; AE/CE, no
 * connection or no answer in time are retried with the queue's backoff; AR/CR fail the job at once. A
 * message whose order has a later status delivered to that destination meanwhile is not sent (skipped).
 */
export function hl7StatusJob(deps: StatusJobDeps): JobHandler<Hl7StatusPayload> {
  return async (job, context) => {
    const p = job.payload;
    const destination = deps.destinations().find((d) => d.name === p.destination);
    if (!destination) throw permanent(`no HL7 destination "${p.destination}" is configured (ris.hl7Destinations)`);
    const order = await deps.findOrder(p.accessionNumber);
    if (!order) throw permanent(`no order with accession number ${p.accessionNumber}`);
    const later = await deps.supersededBy?.(p);
    if (later) return { destination: destination.name, skipped: `superseded by ATR${later}, a later status of the order delivered before this one`, orderStatus: ORDER_STATUS_0038[p.status].code };
    const controlId = `ATR${job.id}`;
    const sender = deps.sender();
    const text = buildStatusMessage({
      destination, sendingApplication: sender.application, sendingFacility: sender.facility, controlId, order, status: p.status, at: p.at,
      source: p.sourceRef ? `${p.source} ${p.sourceRef}` : p.source, now: new Date(),
    });
    const ack = await deliverHl7(destination, controlId, text, context.signal);
    return { destination: destination.name, controlId, ack, orderStatus: ORDER_STATUS_0038[p.status].code };
  };
}

/**
 * Sends one message to a destination over MLLP (TLS when configured) and reads its ACK, for the jobs of
 * every outbound message (status messages here, reports in report-outbound.ts): AA/CA resolve with the
 * code; AE/CE, no connection, no answer in time, an answer that is no ACK or acknowledges another message
 * throw (the job is retried); AR/CR throw a permanent error (the job fails at once).
 */
export async function deliverHl7(destination: Hl7Destination, controlId: string, text: string, signal?: AbortSignal): Promise<'AA' | 'CA'> {
  const tls = destination.tls ? {
    ...(destination.tls.ca ? { ca: readFileSync(destination.tls.ca) } : {}), ...(destination.tls.cert ? { cert: readFileSync(destination.tls.cert) } : {}),
    ...(destination.tls.key ? { key: readFileSync(destination.tls.key) } : {}), ...(destination.tls.servername ? { servername: destination.tls.servername } : {}),
    rejectUnauthorized: destination.tls.rejectUnauthorized,
  } : null;
  const answer = await sendMllp({ host: destination.host, port: destination.port, tls, timeoutMs: destination.ackTimeoutSeconds * 1000, signal }, encodeCharacterSet(text, 'UNICODE UTF-8'));
  let ack;
  try {
    ack = parseAck(answer);
  } catch (error) {
    throw new Error(`${destination.name} answered with something that is not an ACK: ${(error as Error).message}`);
  }
  const detail = [ack.text, ack.errorCode ? `ERR-3 ${ack.errorCode}` : '', ack.errorLocation ? `at ${ack.errorLocation}` : ''].filter(Boolean).join(', ');
  if (ack.controlId !== controlId) throw new Error(`${destination.name} acknowledged ${ack.controlId || 'nothing'} (MSA-2), not ${controlId}`);
  if (ack.code === 'AR' || ack.code === 'CR') throw permanent(`${destination.name} rejected ${controlId} (${ack.code})${detail ? `: ${detail}` : ''}`);
  if (ack.code === 'AE' || ack.code === 'CE') throw new Error(`${destination.name} answered ${controlId} with ${ack.code}${detail ? `: ${detail}` : ''}`);
  return ack.code as 'AA' | 'CA';
}
