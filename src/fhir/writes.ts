/**
 * Create and update of ServiceRequest and DiagnosticReport through the RIS's own services (one domain, two
 * transports): a ServiceRequest placed here is an order as an ORM^O01 NW would place it, an update is an XO
 * (or a CA/DC for status revoked), a DiagnosticReport is a report version as an ORU^R01 would add. Only the
 * elements Atrium keeps are accepted: anything else is refused with its name rather than silently lost.
 * Nothing is written unless the whole resource is understood.
 */
import type { FastifyRequest } from 'fastify';
import type { DiagnosticReport, ServiceRequest } from '@medplum/fhirtypes';
import type {} from '../http/access.ts';
import { auditPrincipal } from '../audit/audit-service.ts';
import { AtriumError } from '../errors.ts';
import type { Code, OrderChange, OrderInput, Priority, ReportStatus, StepInput } from '../ris/model.ts';
import type { ChangeContext } from '../ris/ris-context.ts';
import type { Ris } from '../ris/ris.ts';
import type { FhirContext } from './context.ts';
import { dateRange, localKey } from './dates.ts';
import { readDiagnosticReport } from './diagnostic-report.ts';
import { invalid } from './operation-outcome.ts';
import { referenceId } from './search-request.ts';
import { REQUEST_PRIORITY, REQUEST_STATUS, orderPk, readServiceRequest } from './service-request.ts';
import { V2_0203, codeOfCoding, parsePatientLogicalId } from './values.ts';

type Json = Record<string, unknown>;

const SERVICE_REQUEST_ELEMENTS = new Set(['resourceType', 'id', 'meta', 'text', 'identifier', 'status', 'intent', 'category', 'priority', 'code', 'subject',
  'occurrenceDateTime', 'authoredOn', 'requester', 'reasonCode']);
const DIAGNOSTIC_REPORT_ELEMENTS = new Set(['resourceType', 'id', 'meta', 'text', 'identifier', 'basedOn', 'status', 'category', 'code', 'subject',
  'effectiveDateTime', 'issued', 'resultsInterpreter', 'imagingStudy', 'conclusion', 'presentedForm']);

const PRIORITY_OF: Readonly<Record<string, Priority>> = Object.fromEntries(Object.entries(REQUEST_PRIORITY).map(([k, v]) => [v, k as Priority]));
const REPORT_STATUS_OF: Readonly<Record<string, ReportStatus>> = { preliminary: 'P', final: 'F', amended: 'C', corrected: 'C' };

function unprocessable(message: string, expression: string): AtriumError {
  return new AtriumError('unprocessable', message, { expression });
}

/** The body as a resource of `type`, its elements checked against what Atrium keeps. */
function resourceBody(request: FastifyRequest, type: string, elements: ReadonlySet<string>): Json {
  const body = request.body;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid(`the body must be a FHIR ${type} resource (a JSON object)`);
  const resource = body as Json;
  if (resource.resourceType !== type) {
    throw invalid(`the body is ${typeof resource.resourceType === 'string' ? `a ${resource.resourceType}` : 'no FHIR resource (no resourceType)'}, not a ${type}`, 'resourceType');
  }
  for (const key of Object.keys(resource)) {
    if (!elements.has(key)) throw invalid(`${type}.${key} is not kept by Atrium (supported: ${[...elements].filter((e) => e !== 'resourceType').join(', ')})`, `${type}.${key}`);
  }
  return resource;
}

function optionalString(value: unknown, at: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '') throw invalid(`${at} must be a non-empty string`, at);
  return value;
}

function array(value: unknown, at: string): Json[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => !v || typeof v !== 'object' || Array.isArray(v))) throw invalid(`${at} must be an array of objects`, at);
  return value as Json[];
}

/** An order identifier by its v2-0203 type (ACSN, PLAC, FILL). */
function typedIdentifier(identifiers: Json[], code: string): string | undefined {
  for (const [i, id] of identifiers.entries()) {
    const codings = array((id.type as Json | undefined)?.coding, `ServiceRequest.identifier[${i}].type.coding`);
    if (codings.some((c) => c.system === V2_0203 && c.code === code)) return optionalString(id.value, `ServiceRequest.identifier[${i}].value`);
  }
  return undefined;
}

/** A FHIR dateTime as DICOM DA and TM in this process's zone (how the RIS keeps step starts). */
function localDateTime(value: string, at: string): { date: string; time: string | null } {
  const key = localKey(dateRange(value, at).startMs);
  return { date: key.slice(0, 8), time: value.includes('T') ? key.slice(8) : null };
}

function codeOf(concept: unknown, at: string): { code: Code | null; text: string | null } {
  if (concept === undefined) return { code: null, text: null };
  if (!concept || typeof concept !== 'object') throw invalid(`${at} must be a CodeableConcept`, at);
  const c = concept as Json;
  const coding = array(c.coding, `${at}.coding`)[0];
  const code = coding ? codeOfCoding(coding as any) : null;
  if (coding && !code) throw invalid(`${at}.coding[0].code is required`, `${at}.coding[0].code`);
  return { code, text: optionalString(c.text, `${at}.text`) ?? null };
}

export class FhirWrites {
  readonly #ris: Ris;
  readonly #context: (request: FastifyRequest) => FhirContext;

  constructor(ris: Ris, context: (request: FastifyRequest) => FhirContext) {
    this.#ris = ris;
    this.#context = context;
  }

  #change(request: FastifyRequest): ChangeContext {
    return { source: { kind: 'user', ref: request.principal?.name ?? null }, principal: auditPrincipal(request.principal), interface: 'fhir', origin: { address: request.ip } };
  }

  /** The RIS patient a `subject` names; one known only from its images is taken into the RIS with its index demographics. */
  async #subject(ctx: FhirContext, subject: unknown, at: string): Promise<{ patientId: string; issuer: string; fromIndex: Json | null }> {
    const reference = subject && typeof subject === 'object' ? (subject as Json).reference : undefined;
    if (typeof reference !== 'string') throw invalid(`${at}.reference is required: Patient/<id>`, `${at}.reference`);
    const id = referenceId(reference, 'Patient', ctx.base);
    const key = id === null ? null : parsePatientLogicalId(id);
    if (!key) throw unprocessable(`${at}: "${reference}" is not a Patient of this server`, at);
    if (await this.#ris.core.store.findPatient(key.patientId, key.issuer)) return { ...key, fromIndex: null };
    const row = await ctx.db.selectFrom('patient').selectAll().where('patient_id', '=', key.patientId).where('issuer_of_patient_id', '=', key.issuer).executeTakeFirst();
    if (!row) throw unprocessable(`${at}: ${reference} is not known here`, at);
    return { ...key, fromIndex: row };
  }

  async createServiceRequest(request: FastifyRequest): Promise<ServiceRequest> {
    const ctx = this.#context(request);
    const body = resourceBody(request, 'ServiceRequest', SERVICE_REQUEST_ELEMENTS);
    if (body.status !== 'active') throw invalid(`ServiceRequest.status must be "active" for a new order, not ${JSON.stringify(body.status)}`, 'ServiceRequest.status');
    if (body.intent !== 'order') throw invalid(`ServiceRequest.intent must be "order", not ${JSON.stringify(body.intent)}`, 'ServiceRequest.intent');
    const fields = this.#orderFields(body);
    const identifiers = array(body.identifier, 'ServiceRequest.identifier');
    const accessionNumber = typedIdentifier(identifiers, 'ACSN');
    if (!accessionNumber) throw invalid('ServiceRequest.identifier: an accession number (type http://terminology.hl7.org/CodeSystem/v2-0203|ACSN) is required', 'ServiceRequest.identifier');
    const subject = await this.#subject(ctx, body.subject, 'ServiceRequest.subject');
    const occurrence = optionalString(body.occurrenceDateTime, 'ServiceRequest.occurrenceDateTime');
    const steps: StepInput[] = occurrence ? [{ stepId: `${accessionNumber}-1`, startDate: localDateTime(occurrence, 'ServiceRequest.occurrenceDateTime').date,
      startTime: localDateTime(occurrence, 'ServiceRequest.occurrenceDateTime').time }] : [];
    const input: OrderInput = { ...fields, patient: { patientId: subject.patientId, issuerOfPatientId: subject.issuer }, accessionNumber, steps };
    const order = await this.#ris.core.change(this.#change(request), async (unit) => {
      if (subject.fromIndex) {
        const p = subject.fromIndex;
        await this.#ris.patients.upsert(unit, { patientId: subject.patientId, issuerOfPatientId: subject.issuer, patientName: (p.patient_name as string | null) ?? null,
          patientBirthDate: (p.patient_birth_date as string | null) ?? null, patientSex: (p.patient_sex as string | null) ?? null });
      }
      return await this.#ris.orders.place(unit, input);
    });
    return (await readServiceRequest(ctx, String(order.pk)))!;
  }

  /** What of an order a ServiceRequest sets (the identifiers but the accession, priority, code, reason, requester). */
  #orderFields(body: Json): OrderChange {
    const change: OrderChange = {};
    const identifiers = array(body.identifier, 'ServiceRequest.identifier');
    const placer = typedIdentifier(identifiers, 'PLAC');
    const filler = typedIdentifier(identifiers, 'FILL');
    if (placer) change.placerOrderNumber = placer;
    if (filler) change.fillerOrderNumber = filler;
    if (body.priority !== undefined) {
      const priority = PRIORITY_OF[String(body.priority)];
      if (!priority) throw invalid(`ServiceRequest.priority "${String(body.priority)}" is not a request-priority code (routine, urgent, asap, stat)`, 'ServiceRequest.priority');
      change.priority = priority;
    }
    const { code, text } = codeOf(body.code, 'ServiceRequest.code');
    if (code) change.requestedProcedureCode = code;
    if (text ?? code?.meaning) change.requestedProcedureDescription = text ?? code!.meaning;
    const reason = array(body.reasonCode, 'ServiceRequest.reasonCode')[0];
    if (reason) change.reason = codeOf(reason, 'ServiceRequest.reasonCode[0]').text ?? codeOf(reason, 'ServiceRequest.reasonCode[0]').code?.meaning ?? null;
    if (body.requester !== undefined) {
      const display = optionalString((body.requester as Json)?.display, 'ServiceRequest.requester.display');
      if (!display) throw invalid('ServiceRequest.requester needs a display (the ordering physician\'s name)', 'ServiceRequest.requester');
      change.orderingPhysician = display;
    }
    return change;
  }

  async updateServiceRequest(request: FastifyRequest, id: string): Promise<ServiceRequest> {
    const ctx = this.#context(request);
    const body = resourceBody(request, 'ServiceRequest', SERVICE_REQUEST_ELEMENTS);
    if (body.id !== id) throw invalid(`ServiceRequest.id (${JSON.stringify(body.id)}) must be the id of the URL (${id})`, 'ServiceRequest.id');
    const pk = orderPk(id);
    const order = pk === null ? null : await this.#ris.orders.find({ pk });
    if (!order) throw new AtriumError('not-found', `ServiceRequest/${id} is not known here (an order is created with POST)`);
    if (body.intent !== 'order') throw invalid(`ServiceRequest.intent must be "order", not ${JSON.stringify(body.intent)}`, 'ServiceRequest.intent');
    const accession = typedIdentifier(array(body.identifier, 'ServiceRequest.identifier'), 'ACSN');
    if (accession !== undefined && accession !== order.accessionNumber) throw invalid(`the accession number of an order cannot change (${order.accessionNumber})`, 'ServiceRequest.identifier');
    const subject = await this.#subject(ctx, body.subject, 'ServiceRequest.subject');
    if (subject.patientId !== order.patient.patientId || subject.issuer !== order.patient.issuerOfPatientId) {
      throw invalid('ServiceRequest.subject cannot change: a patient is corrected by merging (ADT A40) or changing the identifier (A47)', 'ServiceRequest.subject');
    }
    const status = String(body.status);
    if (!['active', 'revoked', 'completed'].includes(status)) throw invalid(`ServiceRequest.status "${status}": an order can be active, revoked (cancelled or discontinued) or completed`, 'ServiceRequest.status');
    const change = this.#orderFields(body);
    const occurrence = optionalString(body.occurrenceDateTime, 'ServiceRequest.occurrenceDateTime');
    if (occurrence) {
      const { date, time } = localDateTime(occurrence, 'ServiceRequest.occurrenceDateTime');
      const first = [...order.steps].sort((a, b) => `${a.startDate}${a.startTime}`.localeCompare(`${b.startDate}${b.startTime}`))[0];
      if (!first || first.startDate !== date || (time !== null && first.startTime !== time)) {
        const steps = order.steps.map((s): StepInput => ({ ...s }));
        if (first) Object.assign(steps.find((s) => s.stepId === first.stepId)!, { startDate: date, startTime: time });
        else steps.push({ stepId: `${order.accessionNumber}-1`, startDate: date, startTime: time });
        change.steps = steps;
      }
    }
    const current = REQUEST_STATUS[order.status];
    await this.#ris.core.change(this.#change(request), async (unit) => {
      if (Object.keys(change).length && status !== 'revoked') await this.#ris.orders.change(unit, { pk: order.pk }, change);
      if (status === current) return;
      if (status === 'revoked') {
        // Cancel before the procedure started, discontinue after (the order service refuses the other).
        if (['in-progress', 'completed'].includes(order.status)) await this.#ris.orders.discontinue(unit, { pk: order.pk }, 'revoked through FHIR');
        else await this.#ris.orders.cancel(unit, { pk: order.pk }, 'revoked through FHIR');
      } else if (status === 'completed') {
        await this.#ris.orders.reportStatus(unit, { pk: order.pk }, 'completed', 'completed through FHIR');
      } else {
        throw new AtriumError('conflict', `order ${order.accessionNumber} is ${order.status}: it cannot become active again`, { expression: 'ServiceRequest.status' });
      }
    });
    return (await readServiceRequest(ctx, id))!;
  }

  /** POST (id null) or PUT of a DiagnosticReport: a new version of the order's report, unless it says what the current one says. */
  async saveDiagnosticReport(request: FastifyRequest, id: string | null): Promise<DiagnosticReport> {
    const ctx = this.#context(request);
    const body = resourceBody(request, 'DiagnosticReport', DIAGNOSTIC_REPORT_ELEMENTS);
    if (id !== null && body.id !== id) throw invalid(`DiagnosticReport.id (${JSON.stringify(body.id)}) must be the id of the URL (${id})`, 'DiagnosticReport.id');
    const status = REPORT_STATUS_OF[String(body.status)];
    if (!status) throw invalid(`DiagnosticReport.status "${String(body.status)}": Atrium keeps preliminary, final and amended (or corrected) reports`, 'DiagnosticReport.status');
    const basedOn = array(body.basedOn, 'DiagnosticReport.basedOn');
    if (basedOn.length > 1) throw invalid('DiagnosticReport.basedOn: a report is of one order', 'DiagnosticReport.basedOn');
    const reference = basedOn[0]?.reference;
    if (basedOn.length && typeof reference !== 'string') throw invalid('DiagnosticReport.basedOn[0].reference is required: ServiceRequest/<id>', 'DiagnosticReport.basedOn[0].reference');
    const fromBasedOn = typeof reference === 'string' ? orderPk(referenceId(reference, 'ServiceRequest', ctx.base)) : null;
    if (typeof reference === 'string' && fromBasedOn === null) throw unprocessable(`DiagnosticReport.basedOn: "${reference}" is not a ServiceRequest of this server`, 'DiagnosticReport.basedOn[0]');
    if (id !== null && fromBasedOn !== null && String(fromBasedOn) !== id) throw invalid(`DiagnosticReport/${id} is the report of ServiceRequest/${id}, not of ${reference}`, 'DiagnosticReport.basedOn[0]');
    const pk = fromBasedOn ?? (id !== null ? orderPk(id) : null);
    if (pk === null) throw invalid('DiagnosticReport.basedOn is required: the ServiceRequest (order) reported on', 'DiagnosticReport.basedOn');
    const order = await this.#ris.orders.find({ pk });
    if (!order) throw id !== null && fromBasedOn === null ? new AtriumError('not-found', `DiagnosticReport/${id} is not known here`) : unprocessable(`DiagnosticReport.basedOn: ServiceRequest/${pk} is not known here`, 'DiagnosticReport.basedOn[0]');
    if (body.subject !== undefined) {
      const subject = await this.#subject(ctx, body.subject, 'DiagnosticReport.subject');
      if (subject.patientId !== order.patient.patientId || subject.issuer !== order.patient.issuerOfPatientId) {
        throw unprocessable(`DiagnosticReport.subject is not the patient of ServiceRequest/${pk}`, 'DiagnosticReport.subject');
      }
    }
    const text = this.#reportText(body);
    const author = body.resultsInterpreter === undefined ? null
      : optionalString(array(body.resultsInterpreter, 'DiagnosticReport.resultsInterpreter')[0]?.display, 'DiagnosticReport.resultsInterpreter[0].display') ?? null;
    const effective = optionalString(body.effectiveDateTime, 'DiagnosticReport.effectiveDateTime');
    const observedAt = effective ? (() => {
      const key = localKey(dateRange(effective, 'DiagnosticReport.effectiveDateTime').startMs);
      return effective.includes('T') ? key : key.slice(0, 8);
    })() : null;
    const current = await this.#ris.core.store.currentReport(order.pk);
    const same = current && current.status === status && current.text === text && (current.author ?? null) === author;
    if (!same) {
      await this.#ris.core.change(this.#change(request), (unit) => this.#ris.reports.receive(unit, { accessionNumber: order.accessionNumber, status, text, author, observedAt }));
    }
    return (await readDiagnosticReport(ctx, String(order.pk)))!;
  }

  /** The report's text: `conclusion`, else the text/plain `presentedForm`. */
  #reportText(body: Json): string {
    const conclusion = optionalString(body.conclusion, 'DiagnosticReport.conclusion');
    const forms = array(body.presentedForm, 'DiagnosticReport.presentedForm');
    const plain = forms.find((f) => typeof f.contentType === 'string' && /^text\/plain\b/i.test(f.contentType));
    if (forms.length && !plain) throw invalid('DiagnosticReport.presentedForm: Atrium keeps the report as text (contentType text/plain)', 'DiagnosticReport.presentedForm');
    let fromForm: string | undefined;
    if (plain) {
      if (typeof plain.data !== 'string' || !/^[A-Za-z0-9+/=\s]+$/.test(plain.data)) throw invalid('DiagnosticReport.presentedForm.data must be base64 text', 'DiagnosticReport.presentedForm.data');
      fromForm = Buffer.from(plain.data, 'base64').toString('utf8');
    }
    if (conclusion !== undefined && fromForm !== undefined && conclusion !== fromForm) {
      throw invalid('DiagnosticReport.conclusion and presentedForm differ: Atrium keeps one report text', 'DiagnosticReport.conclusion');
    }
    const text = conclusion ?? fromForm;
    if (!text) throw invalid('DiagnosticReport: the report text is required (conclusion, or presentedForm as text/plain)', 'DiagnosticReport.conclusion');
    return text;
  }
}
