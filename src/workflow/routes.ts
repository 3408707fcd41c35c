/**
 * The routing rules REST API (docs/workflow.md "REST"), and the rule of each route. Every change is a new
 * version of the rule and an audit record (an update of the object `routing-rule`); the dry-run is audited as
 * a query of the study's patient.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type {} from '../http/access.ts';
import { auditPrincipal, type AuditService } from '../audit/audit-service.ts';
import { AtriumError } from '../errors.ts';
import type { RouteRules } from '../security/route-rule.ts';
import { validateRule } from './rule.ts';
import type { RuleChange, SqlRuleStore } from './sql-rule-store.ts';
import type { RoutingEngine } from './routing.ts';
import type { StudyStability } from './study-stability.ts';

export const WORKFLOW_ROUTE_RULES: RouteRules = {
  'GET /api/workflow/rules': 'rules:read',
  'POST /api/workflow/rules': 'rules:write',
  'POST /api/workflow/rules/validate': 'rules:read',
  'GET /api/workflow/rules/:id': 'rules:read',
  'GET /api/workflow/rules/:id/versions/:version': 'rules:read',
  'PUT /api/workflow/rules/:id': 'rules:write',
  'POST /api/workflow/rules/:id/disable': 'rules:write',
  'POST /api/workflow/rules/:id/enable': 'rules:write',
  'DELETE /api/workflow/rules/:id': 'rules:write',
  'GET /api/workflow/dry-run/:study': 'rules:read',
};

export interface WorkflowRouteDeps {
  rules: SqlRuleStore;
  routing: RoutingEngine;
  stability: StudyStability;
  audit: AuditService;
  clock: () => Date;
}

function ruleId(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new AtriumError('invalid-input', 'the rule id must be a positive whole number');
  return n;
}

function definitionOf(body: unknown) {
  const result = validateRule(body);
  if (!result.rule) throw new AtriumError('invalid-input', `the rule is not valid: ${result.problems.map((p) => `${p.path || 'rule'}: ${p.message}`).join('; ')}`, { problems: result.problems });
  return result.rule;
}

function expectedVersion(req: FastifyRequest): number | undefined {
  const q = (req.query as { version?: string }).version ?? (req.body as { version?: unknown } | undefined)?.version;
  if (q === undefined) return undefined;
  const n = Number(q);
  if (!Number.isInteger(n) || n < 1) throw new AtriumError('invalid-input', 'version must be a positive whole number');
  return n;
}

export async function workflowRoutes(app: FastifyInstance, deps: WorkflowRouteDeps): Promise<void> {
  const changedBy = (req: FastifyRequest) => JSON.stringify(auditPrincipal(req.principal));
  const audited = async (req: FastifyRequest, id: number, name: string, change: RuleChange, version: number) => {
    await deps.audit.record({
      principal: auditPrincipal(req.principal), action: 'update', interface: 'rest', origin: { address: req.ip },
      objects: [{ type: 'routing-rule', id: String(id), name, change, attributes: [`version ${version}`] }], detail: `${req.method} ${req.url}`,
    });
  };

  app.get('/api/workflow/rules', async (req) => {
    const q = req.query as { deleted?: string };
    return { items: await deps.rules.list({ includeDeleted: q.deleted === 'true' }) };
  });

  app.post('/api/workflow/rules/validate', async (req) => {
    const result = validateRule(req.body);
    return { valid: result.problems.length === 0, problems: result.problems, rule: result.rule };
  });

  app.post('/api/workflow/rules', async (req, reply) => {
    const body = req.body as Record<string, unknown> | undefined;
    const enabled = body?.enabled !== false;
    const { enabled: _e, ...definition } = body ?? {};
    const rule = await deps.rules.create(definitionOf(definition), changedBy(req), deps.clock(), enabled);
    await audited(req, rule.id, rule.name, 'created', rule.version);
    return reply.status(201).header('location', `/api/workflow/rules/${rule.id}`).send(rule);
  });

  app.get('/api/workflow/rules/:id', async (req) => {
    const id = ruleId((req.params as { id: string }).id);
    const rule = await deps.rules.get(id);
    if (!rule) throw new AtriumError('not-found', `no routing rule ${id}`);
    const versions = (await deps.rules.versions(id)).map((v) => ({ ...v, changedBy: parsePrincipal(v.changedBy) }));
    return { ...rule, versions };
  });

  app.get('/api/workflow/rules/:id/versions/:version', async (req) => {
    const params = req.params as { id: string; version: string };
    const id = ruleId(params.id);
    const n = Number(params.version);
    if (!Number.isInteger(n) || n < 1) throw new AtriumError('invalid-input', 'version must be a positive whole number');
    const version = await deps.rules.version(id, n);
    if (!version) throw new AtriumError('not-found', `routing rule ${id} has no version ${n}`);
    return { ...version, changedBy: parsePrincipal(version.changedBy) };
  });

  app.put('/api/workflow/rules/:id', async (req) => {
    const id = ruleId((req.params as { id: string }).id);
    const { version: _v, enabled: _e, ...definition } = (req.body ?? {}) as Record<string, unknown>;
    const rule = await deps.rules.change(id, 'updated', changedBy(req), deps.clock(), { definition: definitionOf(definition), expectedVersion: expectedVersion(req) });
    await audited(req, rule.id, rule.name, 'updated', rule.version);
    return rule;
  });

  for (const change of ['disable', 'enable'] as const) {
    app.post(`/api/workflow/rules/:id/${change}`, async (req) => {
      const id = ruleId((req.params as { id: string }).id);
      const rule = await deps.rules.change(id, `${change}d`, changedBy(req), deps.clock(), { expectedVersion: expectedVersion(req) });
      await audited(req, rule.id, rule.name, `${change}d`, rule.version);
      return rule;
    });
  }

  app.delete('/api/workflow/rules/:id', async (req) => {
    const id = ruleId((req.params as { id: string }).id);
    const rule = await deps.rules.change(id, 'deleted', changedBy(req), deps.clock(), { expectedVersion: expectedVersion(req) });
    await audited(req, rule.id, rule.name, 'deleted', rule.version);
    return rule;
  });

  app.get('/api/workflow/dry-run/:study', async (req) => {
    const study = (req.params as { study: string }).study;
    const activity = await deps.stability.get(study);
    const result = await deps.routing.dryRun(study, activity?.lastSource ?? null);
    if (!result) throw new AtriumError('not-found', `no study ${study} in the archive`);
    await deps.audit.record({ principal: auditPrincipal(req.principal), action: 'query', interface: 'rest', origin: { address: req.ip }, query: req.url,
      studies: [{ studyInstanceUid: study }] });
    return { ...result, stability: activity, triggered: await deps.routing.triggered(study) };
  });
}

function parsePrincipal(text: string): unknown {
  try { return JSON.parse(text); } catch { return { id: text }; }
}
