import type { FastifyInstance, FastifyRequest } from 'fastify';
import type {} from '../http/access.ts';
import { auditPrincipal } from '../audit/audit-service.ts';
import { AtriumError } from '../errors.ts';
import type { AuditService } from '../audit/audit-service.ts';
import type { RouteRules } from '../security/route-rule.ts';
import { ORDER_STATUSES, PRIORITIES, type OrderChange, type OrderDetail, type OrderInput, type OrderStatus, type PatientInput, type StepInput } from './model.ts';
import type { PerformedSeriesCheck } from './model.ts';
import type { ChangeContext } from './ris-context.ts';
import type { Ris } from './ris.ts';

/** The RIS REST API (docs/api.md "RIS"), and the rule of each route. */
export const RIS_ROUTE_RULES: RouteRules = {
  'GET /api/ris/orders': 'order:read',
  'POST /api/ris/orders': 'order:write',
  'GET /api/ris/orders/:order': 'order:read',
  'PATCH /api/ris/orders/:order': 'order:write',
  'POST /api/ris/orders/:order/cancel': 'order:write',
  'POST /api/ris/orders/:order/discontinue': 'order:write',
  'GET /api/ris/patients': 'order:read',
  'POST /api/ris/patients': 'order:write',
  'GET /api/ris/patients/:patient': 'order:read',
  'POST /api/ris/patient-changes/:change/undo': 'admin:config',
  'GET /api/ris/reports': 'order:read',
  'GET /api/ris/reports/:report': 'order:read',
  'GET /api/ris/unmatched-studies': 'order:read',
  'GET /api/ris/hl7/messages': 'admin:config',
  'GET /api/ris/hl7/messages/:message': 'admin:config',
  'POST /api/ris/hl7/messages/:message/replay': 'admin:config',
};

type Query = Record<string, string | undefined>;

function page(q: Query): { limit: number; offset: number } {
  const limit = q.limit === undefined ? 50 : Number(q.limit);
  const offset = q.offset === undefined ? 0 : Number(q.offset);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new AtriumError('invalid-input', 'limit must be a whole number from 1 to 1000');
  if (!Number.isInteger(offset) || offset < 0) throw new AtriumError('invalid-input', 'offset must be a whole number from 0');
  return { limit, offset };
}

function id(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new AtriumError('invalid-input', `${what} must be a positive whole number`);
  return n;
}

function str(body: Record<string, unknown>, key: string, required = false): string | null | undefined {
  const v = body[key];
  if (v === undefined || v === null) {
    if (required) throw new AtriumError('invalid-input', `${key} is required`);
    return v as null | undefined;
  }
  if (typeof v !== 'string') throw new AtriumError('invalid-input', `${key} must be a string`);
  if (required && v === '') throw new AtriumError('invalid-input', `${key} is required`);
  return v;
}

function steps(value: unknown): StepInput[] {
  if (!Array.isArray(value)) throw new AtriumError('invalid-input', 'steps must be a list of scheduled procedure steps');
  return value.map((s: any, i) => {
    if (!s || typeof s !== 'object' || typeof s.stepId !== 'string' || !s.stepId) throw new AtriumError('invalid-input', `steps[${i}].stepId is required`);
    if (s.startDate !== undefined && s.startDate !== null && !/^\d{8}$/.test(s.startDate)) throw new AtriumError('invalid-input', `steps[${i}].startDate must be YYYYMMDD`);
    if (s.startTime !== undefined && s.startTime !== null && !/^\d{2,6}$/.test(s.startTime)) throw new AtriumError('invalid-input', `steps[${i}].startTime must be HHMM[SS]`);
    return {
      stepId: s.stepId, modality: s.modality ?? null, stationAeTitle: s.stationAeTitle ?? null, stationName: s.stationName ?? null, location: s.location ?? null,
      startDate: s.startDate ?? null, startTime: s.startTime ?? null, description: s.description ?? null, performingPhysician: s.performingPhysician ?? null,
      protocolCodes: Array.isArray(s.protocolCodes) ? s.protocolCodes : [],
    };
  });
}

function priority(value: unknown): OrderInput['priority'] {
  if (value === undefined || value === null) return undefined;
  if (!PRIORITIES.includes(value as any)) throw new AtriumError('invalid-input', `priority must be one of ${PRIORITIES.join(', ')}`);
  return value as OrderInput['priority'];
}

function orderChange(body: Record<string, unknown>): OrderChange {
  const change: OrderChange = {};
  for (const key of ['placerOrderNumber', 'fillerOrderNumber', 'requestedProcedureId', 'requestedProcedureDescription', 'reason', 'referringPhysician', 'orderingPhysician'] as const) {
    const v = str(body, key);
    if (v !== undefined) change[key] = v;
  }
  if (body.priority !== undefined) change.priority = priority(body.priority);
  if (body.screening !== undefined) change.screening = body.screening === true;
  if (body.requestedProcedureCode !== undefined) change.requestedProcedureCode = body.requestedProcedureCode as OrderChange['requestedProcedureCode'];
  if (body.steps !== undefined) change.steps = steps(body.steps);
  return change;
}

function patientInput(body: Record<string, unknown>): PatientInput {
  return {
    patientId: str(body, 'patientId', true)!, issuerOfPatientId: str(body, 'issuerOfPatientId') ?? '',
    ...(body.patientName !== undefined ? { patientName: str(body, 'patientName') ?? null } : {}),
    ...(body.patientBirthDate !== undefined ? { patientBirthDate: str(body, 'patientBirthDate') ?? null } : {}),
    ...(body.patientSex !== undefined ? { patientSex: str(body, 'patientSex') ?? null } : {}),
  };
}

export interface RisRouteOptions {
  /** The order's performed series checked against the archive (src/ris/performed-series.ts), for its detail. */
  performedSeries?: (order: OrderDetail) => Promise<PerformedSeriesCheck | null>;
}

export async function risRoutes(app: FastifyInstance, ris: Ris, audit: AuditService, options: RisRouteOptions = {}): Promise<void> {
  const context = (req: FastifyRequest): ChangeContext => ({
    source: { kind: 'user', ref: req.principal?.name ?? null }, principal: auditPrincipal(req.principal), interface: 'rest', origin: { address: req.ip },
  });
  const audited = async (req: FastifyRequest, patientIds: string[] = []) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'query', interface: 'rest', origin: { address: req.ip }, query: req.url, patientIds });
  };
  const body = (req: FastifyRequest): Record<string, unknown> => {
    if (!req.body || typeof req.body !== 'object' || Array.isArray(req.body)) throw new AtriumError('invalid-input', 'the body must be a JSON object');
    return req.body as Record<string, unknown>;
  };

  app.get('/api/ris/orders', async (req) => {
    const q = req.query as Query;
    const status = q.status ? q.status.split(',').map((s) => s.trim()) : undefined;
    for (const s of status ?? []) if (!ORDER_STATUSES.includes(s as OrderStatus)) throw new AtriumError('invalid-input', `status must be among ${ORDER_STATUSES.join(', ')}`);
    for (const key of ['from', 'to'] as const) if (q[key] && !/^\d{8}(\d{4}(\d{2})?)?$/.test(q[key]!)) throw new AtriumError('invalid-input', `${key} must be YYYYMMDD or YYYYMMDDHHMM[SS]`);
    const result = await ris.orders.list({
      status: status as OrderStatus[] | undefined, modality: q.modality, stationAeTitle: q.station, patientId: q.patientId, accessionNumber: q.accessionNumber, from: q.from, to: q.to,
    }, page(q));
    await audited(req, [...new Set(result.items.map((o) => o.patient.patientId))]);
    return result;
  });

  app.post('/api/ris/orders', async (req, reply) => {
    const b = body(req);
    const patient = b.patient && typeof b.patient === 'object' ? patientInput(b.patient as Record<string, unknown>) : null;
    if (!patient) throw new AtriumError('invalid-input', 'patient { patientId, issuerOfPatientId, ... } is required');
    const ctx = context(req);
    const order = await ris.core.change(ctx, async (unit) => {
      await ris.patients.upsert(unit, patient);
      return await ris.orders.place(unit, {
        ...orderChange(b), patient: { patientId: patient.patientId, issuerOfPatientId: patient.issuerOfPatientId },
        accessionNumber: str(b, 'accessionNumber', true)!, studyInstanceUid: str(b, 'studyInstanceUid') ?? null, steps: steps(b.steps ?? []),
      });
    });
    return reply.status(201).send(await ris.orders.detail(order.pk));
  });

  app.get('/api/ris/orders/:order', async (req) => {
    const detail = await ris.orders.detail(id((req.params as { order: string }).order, 'order'));
    if (!detail) throw new AtriumError('not-found', 'no such order');
    await audited(req, [detail.patient.patientId]);
    return { ...detail, performedSeriesCheck: options.performedSeries ? await options.performedSeries(detail) : null };
  });

  app.patch('/api/ris/orders/:order', async (req) => {
    const pk = id((req.params as { order: string }).order, 'order');
    await ris.orders.changeOrder(context(req), { pk }, orderChange(body(req)));
    return await ris.orders.detail(pk);
  });

  app.post('/api/ris/orders/:order/cancel', async (req) => {
    const pk = id((req.params as { order: string }).order, 'order');
    await ris.orders.cancelOrder(context(req), { pk }, (req.body as { reason?: string } | undefined)?.reason ?? null);
    return await ris.orders.detail(pk);
  });

  app.post('/api/ris/orders/:order/discontinue', async (req) => {
    const pk = id((req.params as { order: string }).order, 'order');
    await ris.orders.discontinueOrder(context(req), { pk }, (req.body as { reason?: string } | undefined)?.reason ?? null);
    return await ris.orders.detail(pk);
  });

  app.get('/api/ris/patients', async (req) => {
    const q = req.query as Query;
    if (q.status && q.status !== 'active' && q.status !== 'merged') throw new AtriumError('invalid-input', 'status must be active or merged');
    const result = await ris.patients.list({ patientId: q.patientId, patientName: q.patientName, status: q.status as 'active' | 'merged' | undefined }, page(q));
    await audited(req, result.items.map((p) => p.patientId));
    return result;
  });

  app.post('/api/ris/patients', async (req) => {
    const patient = await ris.patients.upsertPatient(context(req), patientInput(body(req)));
    return await ris.patients.getByPk(patient.pk);
  });

  app.get('/api/ris/patients/:patient', async (req) => {
    const patient = await ris.patients.getByPk(id((req.params as { patient: string }).patient, 'patient'));
    if (!patient) throw new AtriumError('not-found', 'no such patient');
    await audited(req, [patient.patientId]);
    return patient;
  });

  app.post('/api/ris/patient-changes/:change/undo', async (req) => {
    const result = await ris.patients.undoChange(context(req), id((req.params as { change: string }).change, 'change'));
    return { change: result.change, studies: result.studies, orders: result.orders };
  });

  app.get('/api/ris/reports', async (req) => {
    const q = req.query as Query;
    const result = await ris.reports.list({ accessionNumber: q.accessionNumber, status: q.status }, page(q));
    await audited(req);
    return result;
  });

  app.get('/api/ris/reports/:report', async (req) => {
    const report = await ris.reports.get(id((req.params as { report: string }).report, 'report'));
    if (!report) throw new AtriumError('not-found', 'no such report');
    await audited(req);
    return report;
  });

  app.get('/api/ris/unmatched-studies', async (req) => {
    const result = await ris.core.store.listUnmatched(page(req.query as Query));
    await audited(req, [...new Set(result.items.flatMap((s) => (s.patientId ? [s.patientId] : [])))]);
    return result;
  });

  app.get('/api/ris/hl7/messages', async (req) => {
    const q = req.query as Query;
    if (q.ackCode && !['AA', 'AE', 'AR'].includes(q.ackCode)) throw new AtriumError('invalid-input', 'ackCode must be AA, AE or AR');
    const result = await ris.core.store.listMessages({
      ackCode: q.ackCode as 'AA' | 'AE' | 'AR' | undefined, messageType: q.messageType, sender: q.sender, controlId: q.controlId,
      patientId: q.patientId, accessionNumber: q.accessionNumber, from: q.from, to: q.to, text: q.text,
    }, page(q));
    await audited(req);
    return { ...result, items: result.items.map(({ text: _text, ...rest }) => rest) };
  });

  app.get('/api/ris/hl7/messages/:message', async (req) => {
    const message = await ris.core.store.getMessage(id((req.params as { message: string }).message, 'message'));
    if (!message) throw new AtriumError('not-found', 'no such HL7 message');
    await audited(req, message.patientId ? [message.patientId] : []);
    const { raw, ...rest } = message;
    return { ...rest, rawBase64: raw.toString('base64') };
  });

  app.post('/api/ris/hl7/messages/:message/replay', async (req) => {
    return await ris.hl7.replay(id((req.params as { message: string }).message, 'message'), auditPrincipal(req.principal));
  });
}
