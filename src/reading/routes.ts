/**
 * The reading REST API under /api/reading (docs/reading.md "REST"), and the rule of each route. Listings of
 * patient data are audited as queries naming the patients; claims, SLA edits and acknowledgements as updates.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type {} from '../http/access.ts';
import { auditPrincipal, type AuditService } from '../audit/audit-service.ts';
import { AtriumError } from '../errors.ts';
import type { RouteRules } from '../security/route-rule.ts';
import type { Ris } from '../ris/ris.ts';
import type { ReportStatus } from '../ris/model.ts';
import { READING_PRIORITIES, type ReadingPriority, type SlaRule } from './sla.ts';
import type { Reading, User, WorklistEntry, WorklistFilter } from './reading.ts';
import { INTERVALS, type Interval } from './tat.ts';

export const READING_ROUTE_RULES: RouteRules = {
  'GET /api/reading/worklist': 'reading:read',
  'GET /api/reading/worklist/:study': 'reading:read',
  'POST /api/reading/worklist/:study/claim': 'reading:claim',
  'POST /api/reading/worklist/:study/unclaim': 'reading:claim',
  'POST /api/reading/worklist/:study/release': 'reading:release',
  'POST /api/reading/worklist/:study/report': 'reading:claim',
  'GET /api/reading/tat': 'reading:read',
  'GET /api/reading/sla': 'reading:read',
  'PUT /api/reading/sla': 'sla:write',
  'GET /api/reading/breaches': 'reading:read',
  'GET /api/reading/critical-results': 'reading:read',
  'POST /api/reading/critical-results/:id/acknowledge': 'critical:ack',
};

type Query = Record<string, string | undefined>;

function userOf(req: FastifyRequest): User {
  const p = req.principal;
  return { id: p ? `${p.kind}:${p.kind === 'user' ? p.name : p.id}` : 'anonymous', name: p?.name ?? 'anonymous' };
}

function page(q: Query): { limit: number; offset: number } {
  const limit = q.limit === undefined ? 100 : Number(q.limit);
  const offset = q.offset === undefined ? 0 : Number(q.offset);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new AtriumError('invalid-input', 'limit must be a whole number from 1 to 1000');
  if (!Number.isInteger(offset) || offset < 0) throw new AtriumError('invalid-input', 'offset must be a whole number from 0');
  return { limit, offset };
}

function priorityOf(value: string | undefined): ReadingPriority | undefined {
  if (value === undefined || value === '') return undefined;
  if (!(READING_PRIORITIES as readonly string[]).includes(value)) throw new AtriumError('invalid-input', `priority must be one of ${READING_PRIORITIES.join(', ')}`);
  return value as ReadingPriority;
}

/** ISO time or YYYY-MM-DD; `fallback` when absent. */
function instant(value: string | undefined, key: string, fallback: Date): string {
  if (value === undefined || value === '') return fallback.toISOString();
  const t = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (!Number.isFinite(t)) throw new AtriumError('invalid-input', `${key} must be an ISO-8601 time or YYYY-MM-DD`);
  return new Date(t).toISOString();
}

/** The SLA table of a PUT body: `{ rules: [{ priority, modality, minutes, warningMinutes? }] }`. */
export function slaRulesOf(body: unknown): SlaRule[] {
  const rules = (body as { rules?: unknown } | null)?.rules;
  if (!Array.isArray(rules)) throw new AtriumError('invalid-input', 'the body must be { "rules": [ { priority, modality, minutes, warningMinutes } ... ] }');
  const seen = new Set<string>();
  return rules.map((r: any, i) => {
    if (!r || typeof r !== 'object') throw new AtriumError('invalid-input', `rules[${i}] must be an object`);
    const priority = priorityOf(String(r.priority ?? ''));
    if (!priority) throw new AtriumError('invalid-input', `rules[${i}].priority is required`);
    const modality = typeof r.modality === 'string' ? r.modality.trim().toUpperCase() : '';
    if (!/^([A-Z0-9]{1,16}|\*)$/.test(modality)) throw new AtriumError('invalid-input', `rules[${i}].modality must be a modality code (CT, MR ...) or *`);
    if (!Number.isInteger(r.minutes) || r.minutes < 1) throw new AtriumError('invalid-input', `rules[${i}].minutes must be a whole number of minutes from 1`);
    const warningMinutes = r.warningMinutes ?? null;
    if (warningMinutes !== null && (!Number.isInteger(warningMinutes) || warningMinutes < 0 || warningMinutes > r.minutes)) {
      throw new AtriumError('invalid-input', `rules[${i}].warningMinutes must be a whole number of minutes from 0 to minutes`);
    }
    if (seen.has(`${priority}|${modality}`)) throw new AtriumError('invalid-input', `rules[${i}]: ${priority} ${modality} is given twice`);
    seen.add(`${priority}|${modality}`);
    return { priority, modality, minutes: r.minutes, warningMinutes };
  });
}

function grouped(entries: WorklistEntry[], by: string | undefined) {
  if (!by) return undefined;
  if (by !== 'modality' && by !== 'bodyRegion' && by !== 'site') throw new AtriumError('invalid-input', 'groupBy must be modality, bodyRegion or site');
  const groups = new Map<string, WorklistEntry[]>();
  for (const e of entries) {
    const key = e[by] ?? '(none)';
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  return [...groups.entries()].map(([key, items]) => ({ key, count: items.length, studies: items.map((e) => e.studyInstanceUid) }));
}

export async function readingRoutes(app: FastifyInstance, reading: Reading, ris: Ris, audit: AuditService): Promise<void> {
  const queried = async (req: FastifyRequest, patientIds: (string | null)[]) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'query', interface: 'rest', origin: { address: req.ip }, query: req.url,
      patientIds: [...new Set(patientIds.filter((p): p is string => !!p))] });
  };
  const studyChanged = async (req: FastifyRequest, e: { studyInstanceUid: string; patientId: string | null; accessionNumber: string | null }, detail: string) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'update', interface: 'rest', origin: { address: req.ip }, detail,
      patientIds: e.patientId ? [e.patientId] : [], studies: [{ studyInstanceUid: e.studyInstanceUid, patientId: e.patientId, accessionNumber: e.accessionNumber }] });
  };
  const study = (req: FastifyRequest) => (req.params as { study: string }).study;

  app.get('/api/reading/worklist', async (req) => {
    const q = req.query as Query;
    if (q.claim && !['mine', 'others', 'unclaimed'].includes(q.claim)) throw new AtriumError('invalid-input', 'claim must be mine, others or unclaimed');
    const filter: WorklistFilter = { modality: q.modality || undefined, bodyRegion: q.bodyRegion || undefined, site: q.site || undefined, priority: priorityOf(q.priority), claim: q.claim as WorklistFilter['claim'] };
    const items = await reading.worklist(filter, userOf(req));
    await queried(req, items.map((e) => e.patientId));
    return { now: reading.now().toISOString(), total: items.length, items, groups: grouped(items, q.groupBy) };
  });

  app.get('/api/reading/worklist/:study', async (req) => {
    const entry = await reading.open(study(req), userOf(req));
    await audit.record({ principal: auditPrincipal(req.principal), action: 'read', interface: 'rest', origin: { address: req.ip }, detail: 'reading worklist entry',
      patientIds: entry.patientId ? [entry.patientId] : [], studies: [{ studyInstanceUid: entry.studyInstanceUid, patientId: entry.patientId, accessionNumber: entry.accessionNumber }] });
    return entry;
  });

  app.post('/api/reading/worklist/:study/claim', async (req) => {
    const entry = await reading.claim(study(req), userOf(req));
    await studyChanged(req, entry, 'reading claim taken');
    return entry;
  });

  app.post('/api/reading/worklist/:study/unclaim', async (req) => {
    const entry = await reading.unclaim(study(req), userOf(req), false);
    await studyChanged(req, entry, 'reading claim given back');
    return entry;
  });

  app.post('/api/reading/worklist/:study/release', async (req) => {
    const before = await reading.store.item(study(req));
    const entry = await reading.unclaim(study(req), userOf(req), true);
    await studyChanged(req, entry, `reading claim of ${before?.claimedByName ?? before?.claimedBy} released`);
    return entry;
  });

  // A report written from the worklist (status P or F, `critical` marks a critical result): through the RIS's report service.
  app.post('/api/reading/worklist/:study/report', async (req, reply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    const item = await reading.store.item(study(req));
    if (!item?.accessionNumber) throw new AtriumError('not-found', `study ${study(req)} is not on the reading worklist with an order`);
    if (b.status !== 'P' && b.status !== 'F') throw new AtriumError('invalid-input', 'status must be P (preliminary) or F (final)');
    if (typeof b.text !== 'string' || !b.text.trim()) throw new AtriumError('invalid-input', 'text is required');
    if (b.critical !== undefined && typeof b.critical !== 'boolean') throw new AtriumError('invalid-input', 'critical must be true or false');
    const report = await ris.reports.receiveReport({
      source: { kind: 'user', ref: req.principal?.name ?? null }, principal: auditPrincipal(req.principal), interface: 'rest', origin: { address: req.ip },
    }, { accessionNumber: item.accessionNumber, status: b.status as ReportStatus, text: b.text, author: req.principal?.name ?? null, critical: b.critical === true });
    return reply.code(201).send(report);
  });

  app.get('/api/reading/tat', async (req) => {
    const q = req.query as Query;
    const now = reading.now();
    const bucket = q.bucket ?? 'day';
    if (bucket !== 'hour' && bucket !== 'day' && bucket !== 'week') throw new AtriumError('invalid-input', 'bucket must be hour, day or week');
    if (q.interval && !(INTERVALS as readonly string[]).includes(q.interval)) throw new AtriumError('invalid-input', `interval must be one of ${INTERVALS.join(', ')}`);
    const result = await reading.turnaround({
      from: instant(q.from, 'from', new Date(now.getTime() - 30 * 86_400_000)), to: instant(q.to, 'to', new Date(now.getTime() + 60_000)), bucket,
      interval: q.interval as Interval | undefined, modality: q.modality || undefined, priority: priorityOf(q.priority), site: q.site || undefined, radiologist: q.radiologist || undefined,
    });
    await queried(req, result.cases.map((c) => c.patientId));
    return result;
  });

  app.get('/api/reading/sla', async () => ({ warningPercent: reading.warningPercent(), rules: await reading.store.slaRules() }));

  app.put('/api/reading/sla', async (req) => {
    const rules = slaRulesOf(req.body);
    await reading.store.replaceSla(rules, req.principal?.name ?? 'anonymous', reading.now().toISOString());
    for (const item of await reading.store.openItems()) await reading.scheduleChecks(item.studyInstanceUid);
    await audit.record({ principal: auditPrincipal(req.principal), action: 'update', interface: 'rest', origin: { address: req.ip }, detail: `${req.method} ${req.url}`,
      objects: [{ type: 'reading-sla', id: 'sla', change: `replaced (${rules.length} rules)` }] });
    return { warningPercent: reading.warningPercent(), rules: await reading.store.slaRules() };
  });

  app.get('/api/reading/breaches', async (req) => {
    const q = req.query as Query;
    if (q.kind && q.kind !== 'warning' && q.kind !== 'breach') throw new AtriumError('invalid-input', 'kind must be warning or breach');
    const alerts = await reading.store.alerts({ kind: q.kind, from: q.from, to: q.to }, page(q));
    const open = (await reading.worklist({}, userOf(req))).filter((e) => e.sla.state === 'warning' || e.sla.state === 'breach');
    await queried(req, open.map((e) => e.patientId));
    return { alerts, open };
  });

  app.get('/api/reading/critical-results', async (req) => {
    const q = req.query as Query;
    if (q.state && !['notified', 'acknowledged', 'escalated'].includes(q.state)) throw new AtriumError('invalid-input', 'state must be notified, acknowledged or escalated');
    const result = await reading.store.criticals({ state: q.state, accessionNumber: q.accessionNumber }, page(q));
    await queried(req, result.items.map((c) => c.patientId));
    return result;
  });

  app.post('/api/reading/critical-results/:id/acknowledge', async (req) => {
    const id = Number((req.params as { id: string }).id);
    if (!Number.isInteger(id) || id < 1) throw new AtriumError('invalid-input', 'id must be a positive whole number');
    const record = await reading.acknowledge(id, req.principal?.name ?? 'anonymous');
    await audit.record({ principal: auditPrincipal(req.principal), action: 'update', interface: 'rest', origin: { address: req.ip }, detail: `${req.method} ${req.url}`,
      patientIds: record.patientId ? [record.patientId] : [], objects: [{ type: 'critical-result', id: String(id), change: 'acknowledged' }] });
    return record;
  });
}
