/**
 * The FHIR R4 REST API at /fhir/R4 (docs/fhir.md): read and search of Patient, ImagingStudy, Endpoint,
 * ServiceRequest and DiagnosticReport, create and update of the last two, and the CapabilityStatement.
 * Registered in an encapsulated Fastify context so that its errors, its 404s and the access hook's
 * refusals all leave as OperationOutcome (operation-outcome.ts) in application/fhir+json.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Bundle, BundleEntry, BundleLink, ImagingStudy, Resource } from '@medplum/fhirtypes';
import type {} from '../http/access.ts';
import type { Archive } from '../app.ts';
import { AtriumError } from '../errors.ts';
import { auditPrincipal, type AuditActor } from '../audit/audit-service.ts';
import { studyFilter, type RouteRules } from '../security/index.ts';
import { AUDIT_EVENT_SEARCH, readAuditEvent, searchAuditEvents } from './audit-event.ts';
import { capabilityStatement, type ServedResource } from './capability.ts';
import type { FhirContext } from './context.ts';
import { dateRange } from './dates.ts';
import { DIAGNOSTIC_REPORT_SEARCH, readDiagnosticReport, searchDiagnosticReports } from './diagnostic-report.ts';
import { ENDPOINT_SEARCH, endpoints } from './endpoint.ts';
import { IMAGING_STUDY_SEARCH, readImagingStudy, searchImagingStudies } from './imaging-study.ts';
import { outcome, outcomeOfError, outcomeOfProblem } from './operation-outcome.ts';
import { PATIENT_SEARCH, patientsByKey, readPatient, searchPatients, type PatientKey } from './patients.ts';
import { parseSearch, strictHandling, tokenValue, type ParsedSearch, type SearchDefinition } from './search-request.ts';
import { SERVICE_REQUEST_SEARCH, readServiceRequest, searchServiceRequests } from './service-request.ts';
import { FhirWrites } from './writes.ts';
import { parsePatientLogicalId } from './values.ts';
import type { Ris } from '../ris/ris.ts';

export const FHIR_BASE = '/fhir/R4';
export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

const B = FHIR_BASE;

/** The access rule of every FHIR route (composed by src/http/access.ts with every other area's). */
export const FHIR_ROUTE_RULES: RouteRules = {
  // The CapabilityStatement holds no patient data; clients read it before they authenticate (SMART discovery).
  [`GET ${B}/metadata`]: 'public',
  [`GET ${B}/Patient`]: 'query',
  [`GET ${B}/Patient/:id`]: 'query',
  [`GET ${B}/ImagingStudy`]: 'query',
  // Named by its Study Instance UID (`:study`): the access hook checks a referring clinician's study and
  // audits the read once per study, as for WADO-RS.
  [`GET ${B}/ImagingStudy/:study`]: 'study:read',
  [`GET ${B}/Endpoint`]: 'authenticated',
  [`GET ${B}/Endpoint/:id`]: 'authenticated',
  [`GET ${B}/ServiceRequest`]: 'order:read',
  [`GET ${B}/ServiceRequest/:id`]: 'order:read',
  [`POST ${B}/ServiceRequest`]: 'order:write',
  [`PUT ${B}/ServiceRequest/:id`]: 'order:write',
  [`GET ${B}/DiagnosticReport`]: 'order:read',
  [`GET ${B}/DiagnosticReport/:id`]: 'order:read',
  [`GET ${B}/DiagnosticReport/:id/_history/:vid`]: 'order:read',
  [`POST ${B}/DiagnosticReport`]: 'order:write',
  [`PUT ${B}/DiagnosticReport/:id`]: 'order:write',
  // The audit trail: for those who may read it at GET /api/audit (src/http/admin/audit-routes.ts).
  [`GET ${B}/AuditEvent`]: 'audit:read',
  [`GET ${B}/AuditEvent/:id`]: 'audit:read',
  // Anything else under the base: an OperationOutcome 404 (not the viewer's page, whose route catches every other GET).
  [`GET ${B}/*`]: 'public',
};

/** Routes that narrow what they answer to a referring clinician's own studies themselves (AtriumModule.ownStudiesListings). */
export const FHIR_OWN_STUDIES_LISTINGS: readonly string[] = [`GET ${B}/Patient`, `GET ${B}/Patient/:id`, `GET ${B}/ImagingStudy`];

export const SERVED: readonly ServedResource[] = [
  { search: PATIENT_SEARCH, interactions: ['read', 'search-type'], documentation: 'Patients of the RIS (ADT) and of the index; merged patients have link replaced-by' },
  { search: IMAGING_STUDY_SEARCH, interactions: ['read', 'search-type'], documentation: 'Every study of the index; id = Study Instance UID' },
  { search: ENDPOINT_SEARCH, interactions: ['read', 'search-type'], documentation: 'The DICOMweb (WADO-RS) and WADO-URI endpoints, and the viewer launch (IHE IID)' },
  { search: SERVICE_REQUEST_SEARCH, interactions: ['read', 'search-type', 'create', 'update'], documentation: 'The RIS\'s orders; create and update change the order as HL7 ORM would' },
  { search: DIAGNOSTIC_REPORT_SEARCH, interactions: ['read', 'vread', 'search-type', 'create', 'update'], documentation: 'The report of an order, its versions as meta.versionId; create and update add a version as ORU^R01 would' },
  { search: AUDIT_EVENT_SEARCH, interactions: ['read', 'search-type'], documentation: 'The audit trail (what GET /api/audit lists), newest first; reading it is itself recorded (Audit Log Used)' },
];

function send(reply: FastifyReply, request: FastifyRequest, status: number, body: unknown): FastifyReply {
  const pretty = new URL(request.url, 'http://x').searchParams.get('_pretty') === 'true';
  return reply.status(status).type(FHIR_JSON).send(JSON.stringify(body, null, pretty ? 2 : undefined));
}

function contextOf(archive: Archive, request: FastifyRequest): FhirContext {
  const origin = `${request.protocol}://${request.host}`;
  return {
    db: archive.database.kysely<any>(), engine: archive.database.engine, base: `${origin}${FHIR_BASE}`, origin,
    studies: request.principal ? studyFilter(request.principal) : { kind: 'all' },
  };
}

function queryOf(request: FastifyRequest): URLSearchParams {
  return new URL(request.url, 'http://x').searchParams;
}

function bundle(ctx: FhirContext, type: string, search: ParsedSearch, total: number, matches: Resource[], included: Resource[]): Bundle {
  const link = (relation: string, offset: number): BundleLink => {
    const q = new URLSearchParams(search.understood);
    q.delete('_offset');
    q.delete('_count');
    if (!search.countOnly) q.set('_count', String(search.count));
    if (offset > 0) q.set('_offset', String(offset));
    const text = q.toString();
    return { relation, url: `${ctx.base}/${type}${text ? `?${text}` : ''}` };
  };
  const links = [link('self', search.offset)];
  if (!search.countOnly && search.count > 0) {
    links.push(link('first', 0));
    if (search.offset + search.count < total) links.push(link('next', search.offset + search.count));
    if (search.offset > 0) links.push(link('previous', Math.max(0, search.offset - search.count)));
  }
  const entry = (resource: Resource, mode: 'match' | 'include'): BundleEntry => ({
    fullUrl: `${ctx.base}/${resource.resourceType}/${resource.id}`, resource, search: { mode },
  });
  const entries = [...matches.map((r) => entry(r, 'match')), ...included.map((r) => entry(r, 'include'))];
  return { resourceType: 'Bundle', type: 'searchset', total, link: links, ...(entries.length ? { entry: entries } : {}) };
}

async function included(ctx: FhirContext, search: ParsedSearch, patients: readonly PatientKey[]): Promise<Resource[]> {
  if (!search.include.some((i) => i.endsWith(':subject') || i.endsWith(':patient'))) return [];
  return await patientsByKey(ctx, patients);
}

export async function fhirRoutes(app: FastifyInstance, archive: Archive, ris: Ris): Promise<void> {
  await app.register(async (fhir) => {
    // FHIR JSON (and plain JSON), parsed here so that malformed JSON is an OperationOutcome that says where.
    // Not text/plain either (Fastify's default): a body of another type is 415, as R4 http.html says.
    fhir.removeContentTypeParser(['application/json', 'text/plain']);
    fhir.addContentTypeParser(['application/json', 'application/fhir+json', 'application/json+fhir'], { parseAs: 'string' }, (_req, body, done) => {
      const text = String(body);
      if (text.trim() === '') return done(new AtriumError('invalid-input', 'the request body is empty: send a FHIR resource as application/fhir+json'), undefined);
      try {
        done(null, JSON.parse(text));
      } catch (error) {
        done(new AtriumError('invalid-input', `the body is not valid JSON: ${(error as Error).message}`), undefined);
      }
    });
    fhir.setErrorHandler((error, request, reply) => {
      const { status, body, logged } = outcomeOfError(error);
      if (logged) request.log.error({ err: error }, 'FHIR request failed');
      return send(reply, request, status, body);
    });
    const unknown = (request: FastifyRequest, reply: FastifyReply) => {
      const type = /^\/fhir\/R4\/([A-Za-z]+)/.exec(request.url)?.[1];
      const known = SERVED.some((r) => r.search.resourceType === type);
      return send(reply, request, 404, outcome(known ? 'not-found' : 'not-supported',
        known ? `no FHIR interaction ${request.method} ${request.url.split('?')[0]}` : `resource type ${type ?? '(none)'} is not served here; see ${FHIR_BASE}/metadata`));
    };
    fhir.setNotFoundHandler(unknown);
    fhir.get('/*', unknown);
    // The access hook (src/http/access.ts) refuses with problem+json before any handler: said again as OperationOutcome.
    fhir.addHook('onSend', async (request, reply, payload) => {
      const type = String(reply.getHeader('content-type') ?? '');
      if (!type.startsWith('application/problem+json') || typeof payload !== 'string') return payload;
      let problem: { title?: string; detail?: string } = {};
      try { problem = JSON.parse(payload); } catch { /* keep the status alone */ }
      reply.type(FHIR_JSON);
      return JSON.stringify(outcomeOfProblem(reply.statusCode, problem));
    });

    const writes = new FhirWrites(ris, (request) => contextOf(archive, request));

    /** A query record with the patients found, for routes the access hook does not audit (order:read). */
    const auditQuery = async (request: FastifyRequest, patients: readonly PatientKey[]) => {
      await archive.audit.record({
        principal: auditPrincipal(request.principal), action: 'query', interface: 'fhir', origin: { address: request.ip }, query: request.url,
        patientIds: [...new Set(patients.map((p) => p.patientId))],
      });
    };

    const search = (definition: SearchDefinition, run: (ctx: FhirContext, s: ParsedSearch) => Promise<{ total: number; resources: Resource[]; patients?: readonly PatientKey[] }>,
      audit: 'hook' | 'self') => async (request: FastifyRequest, reply: FastifyReply) => {
      const ctx = contextOf(archive, request);
      const parsed = parseSearch(definition, queryOf(request), strictHandling(request.headers.prefer));
      const result = await run(ctx, parsed);
      const patients = result.patients ?? [];
      const extra = await included(ctx, parsed, patients);
      if (audit === 'hook') {
        request.auditSubject = {
          patientIds: [...new Set([...patients.map((p) => p.patientId), ...result.resources.filter((r) => r.resourceType === 'Patient').flatMap((r) => (r as any).identifier?.[0]?.value ?? [])])],
          // With their patients and accession numbers, so that the trail needs no look-up per study.
          ...(definition === IMAGING_STUDY_SEARCH ? {
            studies: (result.resources as ImagingStudy[]).map((r) => ({
              studyInstanceUid: r.id!, patientId: subjectKey(r.subject).patientId || null,
              accessionNumber: r.identifier?.find((i) => i.type?.coding?.[0]?.code === 'ACSN')?.value ?? null,
            })),
          } : {}),
        };
      } else {
        await auditQuery(request, patients);
      }
      return send(reply, request, 200, bundle(ctx, definition.resourceType, parsed, result.total, result.resources, extra));
    };

    const notFound = (type: string, id: string) => new AtriumError('not-found', `${type}/${id} is not known here`);

    fhir.get('/metadata', async (request, reply) => send(reply, request, 200, capabilityStatement(contextOf(archive, request).base, SERVED)));

    fhir.get('/Patient', search(PATIENT_SEARCH, searchPatients, 'hook'));
    fhir.get('/Patient/:id', async (request, reply) => {
      const { id } = request.params as { id: string };
      const patient = await readPatient(contextOf(archive, request), id);
      if (!patient) throw notFound('Patient', id);
      request.auditSubject = { patientIds: [patient.identifier![0]!.value!] };
      return send(reply, request, 200, patient);
    });

    fhir.get('/ImagingStudy', search(IMAGING_STUDY_SEARCH, searchImagingStudies, 'hook'));
    fhir.get('/ImagingStudy/:study', async (request, reply) => {
      const { study } = request.params as { study: string };
      const found = await readImagingStudy(contextOf(archive, request), study);
      if (!found) throw notFound('ImagingStudy', study);
      return send(reply, request, 200, found);
    });

    fhir.get('/Endpoint', async (request, reply) => {
      const ctx = contextOf(archive, request);
      const parsed = parseSearch(ENDPOINT_SEARCH, queryOf(request), strictHandling(request.headers.prefer));
      let found = endpoints(ctx);
      for (const f of parsed.filters) {
        const codes = f.values.map((v) => tokenValue(v).code);
        found = found.filter((e) => codes.includes(f.code === '_id' ? e.id! : f.code === 'status' ? e.status : e.connectionType.code!));
      }
      return send(reply, request, 200, bundle(ctx, 'Endpoint', parsed, found.length, found.slice(parsed.offset, parsed.offset + parsed.count), []));
    });
    fhir.get('/Endpoint/:id', async (request, reply) => {
      const { id } = request.params as { id: string };
      const found = endpoints(contextOf(archive, request)).find((e) => e.id === id);
      if (!found) throw notFound('Endpoint', id);
      return send(reply, request, 200, found);
    });

    fhir.get('/ServiceRequest', search(SERVICE_REQUEST_SEARCH, searchServiceRequests, 'self'));
    fhir.get('/ServiceRequest/:id', async (request, reply) => {
      const { id } = request.params as { id: string };
      const found = await readServiceRequest(contextOf(archive, request), id);
      if (!found) throw notFound('ServiceRequest', id);
      await auditQuery(request, [subjectKey(found.subject)]);
      return send(reply, request, 200, found);
    });
    fhir.post('/ServiceRequest', async (request, reply) => {
      const created = await writes.createServiceRequest(request);
      reply.header('location', `${contextOf(archive, request).base}/ServiceRequest/${created.id}`);
      return send(reply, request, 201, created);
    });
    fhir.put('/ServiceRequest/:id', async (request, reply) => {
      const { id } = request.params as { id: string };
      return send(reply, request, 200, await writes.updateServiceRequest(request, id));
    });

    fhir.get('/DiagnosticReport', search(DIAGNOSTIC_REPORT_SEARCH, searchDiagnosticReports, 'self'));
    fhir.get('/DiagnosticReport/:id', async (request, reply) => {
      const { id } = request.params as { id: string };
      const found = await readDiagnosticReport(contextOf(archive, request), id);
      if (!found) throw notFound('DiagnosticReport', id);
      await auditQuery(request, [subjectKey(found.subject)]);
      return send(reply, request, 200, found);
    });
    fhir.get('/DiagnosticReport/:id/_history/:vid', async (request, reply) => {
      const { id, vid } = request.params as { id: string; vid: string };
      const found = /^[1-9]\d{0,8}$/.test(vid) ? await readDiagnosticReport(contextOf(archive, request), id, Number(vid)) : null;
      if (!found) throw notFound('DiagnosticReport', `${id}/_history/${vid}`);
      await auditQuery(request, [subjectKey(found.subject)]);
      return send(reply, request, 200, found);
    });
    fhir.post('/DiagnosticReport', async (request, reply) => {
      const created = await writes.saveDiagnosticReport(request, null);
      const base = contextOf(archive, request).base;
      reply.header('location', `${base}/DiagnosticReport/${created.id}/_history/${created.meta!.versionId}`);
      return send(reply, request, 201, created);
    });
    fhir.put('/DiagnosticReport/:id', async (request, reply) => {
      const { id } = request.params as { id: string };
      return send(reply, request, 200, await writes.saveDiagnosticReport(request, id));
    });

    // The audit trail, read as every reader of it is: recorded as audit-log-used (the URL as the query), a refusal as a failure.
    const trailReader = (request: FastifyRequest): AuditActor => ({ principal: auditPrincipal(request.principal), interface: 'fhir', origin: { address: request.ip } });
    fhir.get('/AuditEvent', async (request, reply) => {
      const actor = trailReader(request);
      try {
        const ctx = contextOf(archive, request);
        const parsed = pinTrail(parseSearch(AUDIT_EVENT_SEARCH, queryOf(request), strictHandling(request.headers.prefer)));
        const result = await searchAuditEvents(ctx, parsed.search);
        // This reading's own record comes after the pin, so that it is on no page of this walk.
        while (Date.now() <= parsed.pinnedAt) await new Promise((resolve) => setTimeout(resolve, 1));
        await archive.audit.recordTrailRead(actor, request.url);
        return send(reply, request, 200, bundle(ctx, 'AuditEvent', parsed.search, result.total, result.resources, []));
      } catch (error) {
        await archive.audit.recordTrailRead(actor, request.url, error);
        throw error;
      }
    });
    fhir.get('/AuditEvent/:id', async (request, reply) => {
      const { id } = request.params as { id: string };
      const actor = trailReader(request);
      const found = await readAuditEvent(contextOf(archive, request), id);
      await archive.audit.recordTrailRead(actor, request.url, found ? undefined : notFound('AuditEvent', id));
      if (!found) throw notFound('AuditEvent', id);
      return send(reply, request, 200, found);
    });
  }, { prefix: FHIR_BASE });
}

/**
 * The trail grows while it is read (each page read adds a record): a first page (no `_offset`) is pinned
 * to the records up to now, `date=le<now>`, and its links carry the pin, so that paging walks the same
 * records with the same total, each once. Returns the search and the pin's instant (ms; 0: not pinned).
 */
function pinTrail(search: ParsedSearch): { search: ParsedSearch; pinnedAt: number } {
  if (search.understood.has('_offset')) return { search, pinnedAt: 0 };
  const now = Date.now();
  const text = `le${new Date(now).toISOString()}`;
  const understood = new URLSearchParams(search.understood);
  understood.append('date', text);
  return {
    search: { ...search, understood, filters: [...search.filters, { code: 'date', type: 'date', modifier: null, values: [], dates: [{ prefix: 'le', range: dateRange(text.slice(2), 'date'), text }] }] },
    pinnedAt: now,
  };
}

/** The patient identity a subject reference of ours names (for the audit record). */
function subjectKey(subject: { reference?: string } | undefined): PatientKey {
  const id = subject?.reference?.startsWith('Patient/') ? subject.reference.slice(8) : '';
  return parsePatientLogicalId(id) ?? { patientId: '', issuer: '' };
}
