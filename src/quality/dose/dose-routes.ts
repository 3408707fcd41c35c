/**
 * The radiation dose REST API (docs/dose.md, docs/api.md "Radiation dose"), and the rule of each route.
 * Reads of reports and events are audited as queries naming the patients they return; reference-level
 * changes and alert acknowledgements are audited as updates of the object.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type {} from '../../http/access.ts';
import { auditPrincipal, type AuditService } from '../../audit/audit-service.ts';
import { AtriumError } from '../../errors.ts';
import type { RouteRules } from '../../security/route-rule.ts';
import { AGE_BANDS, QUANTITIES, QUANTITY_NAMES, type AgeBand, type Quantity } from './reference-levels.ts';
import type { DoseEventRecord, EventFilter, ReferenceLevelInput, SqlDoseStore } from './sql-dose-store.ts';

export const DOSE_ROUTE_RULES: RouteRules = {
  'GET /api/quality/dose/events': 'dose:read',
  'GET /api/quality/dose/events.csv': 'dose:read',
  'GET /api/quality/dose/reports': 'dose:read',
  'GET /api/quality/dose/studies/:study': 'dose:read',
  'GET /api/quality/dose/alerts': 'dose:read',
  'POST /api/quality/dose/alerts/:alert/acknowledge': 'dose:write',
  'GET /api/quality/dose/reference-levels': 'dose:read',
  'POST /api/quality/dose/reference-levels': 'dose:write',
  'PUT /api/quality/dose/reference-levels/:level': 'dose:write',
  'DELETE /api/quality/dose/reference-levels/:level': 'dose:write',
};

type Query = Record<string, string | undefined>;

function page(q: Query, max = 1000): { limit: number; offset: number } {
  const limit = q.limit === undefined ? 100 : Number(q.limit);
  const offset = q.offset === undefined ? 0 : Number(q.offset);
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new AtriumError('invalid-input', `limit must be a whole number from 1 to ${max}`);
  if (!Number.isInteger(offset) || offset < 0) throw new AtriumError('invalid-input', 'offset must be a whole number from 0');
  return { limit, offset };
}

function id(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new AtriumError('invalid-input', `${what} must be a positive whole number`);
  return n;
}

/** The filters every listing takes: modality, station, protocol, from/to (YYYY-MM-DD or YYYYMMDD), ageBand, study. */
export function eventFilter(q: Query): EventFilter {
  const date = (key: 'from' | 'to') => {
    const v = q[key];
    if (v === undefined || v === '') return undefined;
    const m = v.match(/^(\d{4})-?(\d{2})-?(\d{2})$/);
    if (!m) throw new AtriumError('invalid-input', `${key} must be a date, YYYY-MM-DD or YYYYMMDD`);
    return `${m[1]}-${m[2]}-${m[3]}`;
  };
  if (q.ageBand && !(AGE_BANDS as readonly string[]).includes(q.ageBand)) throw new AtriumError('invalid-input', `ageBand must be one of ${AGE_BANDS.join(', ')}`);
  const f: EventFilter = {};
  if (q.modality) f.modality = q.modality;
  if (q.station) f.station = q.station;
  if (q.protocol) f.protocol = q.protocol;
  if (q.ageBand) f.ageBand = q.ageBand;
  if (q.study) f.studyInstanceUid = q.study;
  const from = date('from');
  const to = date('to');
  if (from) f.from = from;
  if (to) f.to = to;
  return f;
}

function levelInput(body: unknown): ReferenceLevelInput {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new AtriumError('invalid-input', 'the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const text = (key: string, required = false): string | null => {
    const v = b[key];
    if (v === undefined || v === null || v === '') {
      if (required) throw new AtriumError('invalid-input', `${key} is required`);
      return null;
    }
    if (typeof v !== 'string') throw new AtriumError('invalid-input', `${key} must be a string`);
    return v.trim();
  };
  const num = (key: string, required = false): number | null => {
    const v = b[key];
    if (v === undefined || v === null) {
      if (required) throw new AtriumError('invalid-input', `${key} is required`);
      return null;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new AtriumError('invalid-input', `${key} must be a number of 0 or more`);
    return v;
  };
  const quantity = text('quantity', true)!;
  if (!(QUANTITY_NAMES as string[]).includes(quantity)) throw new AtriumError('invalid-input', `quantity must be one of ${QUANTITY_NAMES.join(', ')}`);
  const ageBand = text('ageBand');
  if (ageBand !== null && !(AGE_BANDS as readonly string[]).includes(ageBand)) throw new AtriumError('invalid-input', `ageBand must be one of ${AGE_BANDS.join(', ')}`);
  const value = num('value', true)!;
  if (value === 0) throw new AtriumError('invalid-input', 'value must be above 0');
  const unit = QUANTITIES[quantity as Quantity].unit;
  const given = text('unit');
  if (given !== null && given !== unit) throw new AtriumError('invalid-input', `${quantity} levels are in ${unit} (the unit extraction stores it in), not ${given}`);
  const min = num('breastThicknessMinMm');
  const max = num('breastThicknessMaxMm');
  if (min !== null && max !== null && min >= max) throw new AtriumError('invalid-input', 'breastThicknessMinMm must be below breastThicknessMaxMm');
  return {
    modality: text('modality', true)!.toUpperCase(), quantity: quantity as Quantity, protocol: text('protocol'), procedureCode: text('procedureCode'),
    bodyRegion: text('bodyRegion'), ageBand: ageBand as AgeBand | null, breastThicknessMinMm: min, breastThicknessMaxMm: max, value, unit,
    source: text('source') ?? 'site', example: b.example === true,
  };
}

const CSV_COLUMNS: (keyof DoseEventRecord)[] = [
  'studyInstanceUid', 'studyDate', 'modality', 'stationName', 'ageBand', 'sequence', 'irradiationEventUid', 'eventType', 'acquisitionProtocol', 'targetRegion',
  'anatomy', 'laterality', 'imageView', 'acquisitionPlane', 'phantomType', 'startedAt', 'ctdivol', 'dlp', 'scanLength', 'kvp', 'tubeCurrent', 'exposureTime',
  'exposure', 'pitch', 'dap', 'doseRp', 'agd', 'entranceDose', 'compressionThickness', 'administeredActivity', 'radiopharmaceutical',
];
/** The unit of each numeric CSV column, written into its header ("ctdivol_mGy"). */
const CSV_UNITS: Partial<Record<keyof DoseEventRecord, string>> = {
  ctdivol: 'mGy', dlp: 'mGy.cm', scanLength: 'mm', kvp: 'kV', tubeCurrent: 'mA', exposureTime: 's', exposure: 'mAs', dap: 'Gy.cm2', doseRp: 'mGy',
  agd: 'mGy', entranceDose: 'mGy', compressionThickness: 'mm', administeredActivity: 'MBq',
};

/** RFC 4180 field; a leading = + - @ is prefixed with ' so a spreadsheet does not run it as a formula. */
function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * `recheck(modality, reason)` queues the re-comparison of the modality's stored reports with the levels as
 * they now are (dose-recheck.ts): called after every level change, so a lowered level alerts on the studies
 * already over it and a raised or removed one withdraws the alerts it no longer supports.
 */
export async function doseRoutes(app: FastifyInstance, store: SqlDoseStore, audit: AuditService, recheck: (modality: string, reason: string) => Promise<unknown>): Promise<void> {
  const queried = async (req: FastifyRequest, patientIds: (string | null)[]) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'query', interface: 'rest', origin: { address: req.ip }, query: req.url,
      patientIds: [...new Set(patientIds.filter((p): p is string => !!p))] });
  };
  const patientsOf = async (reportIds: number[]) => {
    const ids: (string | null)[] = [];
    for (const r of new Set(reportIds)) ids.push((await store.report(r))?.patientId ?? null);
    return ids;
  };
  const changed = async (req: FastifyRequest, type: 'dose-reference-level' | 'dose-alert', objectId: number, change: string, attributes?: string[]) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'update', interface: 'rest', origin: { address: req.ip },
      objects: [{ type, id: String(objectId), change, ...(attributes ? { attributes } : {}) }], detail: `${req.method} ${req.url}` });
  };

  app.get('/api/quality/dose/events', async (req) => {
    const q = req.query as Query;
    const result = await store.listEvents(eventFilter(q), page(q));
    await queried(req, await patientsOf(result.items.map((e) => e.reportId)));
    return result;
  });

  app.get('/api/quality/dose/events.csv', async (req, reply: FastifyReply) => {
    const q = req.query as Query;
    const filter = eventFilter(q);
    const lines = [CSV_COLUMNS.map((c) => (CSV_UNITS[c] ? `${c}_${CSV_UNITS[c]}` : c)).join(',')];
    const reports: number[] = [];
    for (let offset = 0; ; offset += 1000) {
      const { items } = await store.listEvents(filter, { limit: 1000, offset });
      for (const e of items) { lines.push(CSV_COLUMNS.map((c) => csvField(e[c])).join(',')); reports.push(e.reportId); }
      if (items.length < 1000 || offset > 1_000_000) break;
    }
    await queried(req, await patientsOf(reports));
    return reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="dose-events.csv"').send(`${lines.join('\r\n')}\r\n`);
  });

  app.get('/api/quality/dose/reports', async (req) => {
    const q = req.query as Query;
    if (q.order !== undefined && q.order !== 'recent' && q.order !== 'highest') throw new AtriumError('invalid-input', 'order must be recent or highest');
    const result = await store.listReports(eventFilter(q), page(q), (q.order as 'recent' | 'highest') ?? 'recent');
    await queried(req, result.items.map((r) => r.patientId));
    return result;
  });

  app.get('/api/quality/dose/studies/:study', async (req) => {
    const study = (req.params as { study: string }).study;
    const all = await store.reportsOfStudy(study);
    if (!all.length) throw new AtriumError('not-found', `no dose report for study ${study}`);
    // The totals count each irradiation event once: a report a later cumulative one superseded is listed, not summed.
    const reports = all.filter((r) => r.supersededBy === null);
    const sum = (pick: (r: (typeof reports)[number]) => number | null) => {
      const values = reports.map(pick).filter((v): v is number => v !== null);
      return values.length ? Number(values.reduce((a, b) => a + b, 0).toPrecision(12)) : null;
    };
    const { items: events } = await store.listEvents({ studyInstanceUid: study }, { limit: 1000, offset: 0 });
    const alerts = (await store.listAlerts({ studyInstanceUid: study }, { limit: 1000, offset: 0 })).items;
    await queried(req, reports.map((r) => r.patientId));
    return {
      studyInstanceUid: study,
      // Summed over the study's dose reports; a device that sends one report per performed procedure step makes several.
      totals: {
        dlpTotal: sum((r) => r.totals.dlpTotal), dapTotal: sum((r) => r.totals.dapTotal), doseRpTotal: sum((r) => r.totals.doseRpTotal),
        fluoroTimeTotal: sum((r) => r.totals.fluoroTimeTotal), agdTotal: sum((r) => r.totals.agdTotal), entranceDoseTotal: sum((r) => r.totals.entranceDoseTotal),
        eventCount: reports.reduce((n, r) => n + r.eventCount, 0),
      },
      units: { dlpTotal: 'mGy.cm', dapTotal: 'Gy.cm2', doseRpTotal: 'mGy', fluoroTimeTotal: 's', agdTotal: 'mGy', entranceDoseTotal: 'mGy' },
      reports: all, events, alerts,
    };
  });

  app.get('/api/quality/dose/alerts', async (req) => {
    const q = req.query as Query;
    if (q.state && q.state !== 'open' && q.state !== 'acknowledged' && q.state !== 'withdrawn') throw new AtriumError('invalid-input', 'state must be open, acknowledged or withdrawn');
    const filter = { ...eventFilter(q), ...(q.state ? { state: q.state } : {}), ...(q.kind ? { kind: q.kind } : {}) };
    const result = await store.listAlerts(filter, page(q));
    await queried(req, await patientsOf(result.items.map((a) => a.reportId)));
    return result;
  });

  app.post('/api/quality/dose/alerts/:alert/acknowledge', async (req) => {
    const alertId = id((req.params as { alert: string }).alert, 'alert');
    if (!(await store.alert(alertId))) throw new AtriumError('not-found', `no dose alert ${alertId}`);
    const alert = await store.acknowledgeAlert(alertId, req.principal?.name ?? 'unknown', new Date());
    await changed(req, 'dose-alert', alertId, 'acknowledged');
    return alert;
  });

  app.get('/api/quality/dose/reference-levels', async () => ({ items: await store.listLevels(), quantities: QUANTITIES, ageBands: AGE_BANDS }));

  app.post('/api/quality/dose/reference-levels', async (req, reply) => {
    const level = await store.createLevel(levelInput(req.body), req.principal?.name ?? 'unknown', new Date());
    await changed(req, 'dose-reference-level', level.id, 'created');
    await recheck(level.modality, `DRL #${level.id} created`);
    return reply.code(201).send(level);
  });

  app.put('/api/quality/dose/reference-levels/:level', async (req) => {
    const levelId = id((req.params as { level: string }).level, 'level');
    const input = levelInput(req.body);
    const before = await store.level(levelId);
    if (!before) throw new AtriumError('not-found', `no dose reference level ${levelId}`);
    const level = await store.updateLevel(levelId, input, req.principal?.name ?? 'unknown', new Date());
    const attributes = (Object.keys(input) as (keyof typeof input)[]).filter((k) => (before as any)[k] !== (level as any)[k]);
    await changed(req, 'dose-reference-level', levelId, 'updated', attributes);
    for (const modality of new Set([before.modality, level.modality])) await recheck(modality, `DRL #${levelId} updated`);
    return level;
  });

  app.delete('/api/quality/dose/reference-levels/:level', async (req, reply) => {
    const levelId = id((req.params as { level: string }).level, 'level');
    const removed = await store.deleteLevel(levelId);
    await changed(req, 'dose-reference-level', levelId, 'deleted');
    await recheck(removed.modality, `DRL #${levelId} deleted`);
    return reply.code(204).send();
  });
}
