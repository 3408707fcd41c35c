/**
 * The integrity monitor's REST API (docs/integrity.md, docs/api.md "Study integrity"), and the rule of each
 * route. Reads of findings are audited as queries naming the patients they return; state changes as updates
 * of the finding (who, which change, the note).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type {} from '../../http/access.ts';
import { auditPrincipal, type AuditService } from '../../audit/audit-service.ts';
import { AtriumError } from '../../errors.ts';
import type { JobQueue } from '../../ports/job-queue.ts';
import type { RouteRules } from '../../security/route-rule.ts';
import { INTEGRITY_KINDS } from '../config.ts';
import { INTEGRITY_SWEEP_JOB, type SweepPayload } from './integrity-sweep.ts';
import type { MetadataSampler } from './metadata-sample.ts';
import { FINDING_STATES, SEVERITIES, type FindingState, type IntegrityFinding, type SqlIntegrityStore } from './sql-integrity-store.ts';

export const INTEGRITY_ROUTE_RULES: RouteRules = {
  'GET /api/quality/integrity/findings': 'integrity:read',
  'GET /api/quality/integrity/findings/:finding': 'integrity:read',
  'GET /api/quality/integrity/summary': 'integrity:read',
  'POST /api/quality/integrity/findings/:finding/acknowledge': 'integrity:write',
  'POST /api/quality/integrity/findings/:finding/false-positive': 'integrity:write',
  'POST /api/quality/integrity/findings/:finding/resolve': 'integrity:write',
  'GET /api/quality/integrity/sweeps': 'integrity:read',
  'POST /api/quality/integrity/sweeps': 'integrity:write',
  'GET /api/quality/integrity/samples': 'integrity:read',
  'GET /api/quality/integrity/samples/:sample': 'integrity:read',
  'POST /api/quality/integrity/samples': 'integrity:write',
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

function body(req: FastifyRequest): Record<string, unknown> {
  const b = req.body ?? {};
  if (typeof b !== 'object' || Array.isArray(b)) throw new AtriumError('invalid-input', 'the body must be a JSON object');
  return b as Record<string, unknown>;
}

function note(b: Record<string, unknown>, required: boolean): string | null {
  const v = b.note;
  if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) {
    if (required) throw new AtriumError('invalid-input', 'note is required: say how it was resolved');
    return null;
  }
  if (typeof v !== 'string') throw new AtriumError('invalid-input', 'note must be a string');
  if (v.length > 2000) throw new AtriumError('invalid-input', 'note must be at most 2000 characters');
  return v.trim();
}

/**
 * Where the corrections of src/quality/corrections/ are reached from a finding: the UI's link and the REST
 * client's hint. The corrections routes come with that work; until then the links name what they will be.
 */
export function correctionLinks(f: IntegrityFinding): { action: string; href: string }[] {
  const study = f.studyInstanceUid ? encodeURIComponent(f.studyInstanceUid) : null;
  switch (f.kind) {
    case 'identity-mismatch':
    case 'study-uid-conflict':
      return study ? [{ action: 'move-study', href: `/admin/corrections?action=move-study&study=${study}&finding=${f.id}` },
        { action: 'edit-patient', href: `/admin/corrections?action=edit-patient&study=${study}&finding=${f.id}` }] : [];
    case 'series-uid-conflict':
      return f.seriesInstanceUid ? [{ action: 'move-series', href: `/admin/corrections?action=move-series&series=${encodeURIComponent(f.seriesInstanceUid)}&finding=${f.id}` }] : [];
    case 'orphan-study':
      return study ? [{ action: 'link-order', href: `/admin/corrections?action=link-order&study=${study}&finding=${f.id}` }] : [];
    case 'key-attributes':
      return study ? [{ action: 'edit-study', href: `/admin/corrections?action=edit-study&study=${study}&finding=${f.id}` }] : [];
    case 'duplicate-study':
      return study ? [{ action: 'move-series', href: `/admin/corrections?action=move-series&study=${study}&finding=${f.id}` }] : [];
    default:
      return [];
  }
}

const withLinks = (f: IntegrityFinding) => ({ ...f, corrections: correctionLinks(f) });

export async function integrityRoutes(app: FastifyInstance, deps: { store: SqlIntegrityStore; jobs: JobQueue; audit: AuditService; sampler: MetadataSampler }): Promise<void> {
  const { store, audit } = deps;
  const queried = async (req: FastifyRequest, patientIds: (string | null)[]) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'query', interface: 'rest', origin: { address: req.ip }, query: req.url,
      patientIds: [...new Set(patientIds.filter((p): p is string => !!p))] });
  };
  const changed = async (req: FastifyRequest, finding: IntegrityFinding, change: string) => {
    await audit.record({ principal: auditPrincipal(req.principal), action: 'update', interface: 'rest', origin: { address: req.ip },
      objects: [{ type: 'integrity-finding', id: String(finding.id), change }], patientIds: finding.patientId ? [finding.patientId] : [],
      detail: `${req.method} ${req.url}: ${finding.kind} ${finding.subject}${finding.resolution ? ` (${finding.resolution})` : ''}` });
  };

  app.get('/api/quality/integrity/findings', async (req) => {
    const q = req.query as Query;
    const states = (q.state ?? 'open,acknowledged').split(',').filter(Boolean);
    for (const s of states) if (s !== 'all' && !(FINDING_STATES as readonly string[]).includes(s)) throw new AtriumError('invalid-input', `state must be all or any of ${FINDING_STATES.join(', ')}`);
    if (q.kind && !(INTEGRITY_KINDS as readonly string[]).includes(q.kind)) throw new AtriumError('invalid-input', `kind must be one of ${INTEGRITY_KINDS.join(', ')}`);
    if (q.severity && !(SEVERITIES as readonly string[]).includes(q.severity)) throw new AtriumError('invalid-input', `severity must be one of ${SEVERITIES.join(', ')}`);
    const result = await store.list({
      ...(states.includes('all') ? {} : { state: states as FindingState[] }),
      ...(q.kind ? { kind: q.kind } : {}), ...(q.severity ? { severity: q.severity } : {}), ...(q.study ? { studyInstanceUid: q.study } : {}),
      ...(q.accession ? { accessionNumber: q.accession } : {}), ...(q.patient ? { patientId: q.patient } : {}),
    }, page(q));
    await queried(req, result.items.map((f) => f.patientId));
    return { items: result.items.map(withLinks), total: result.total };
  });

  app.get('/api/quality/integrity/findings/:finding', async (req) => {
    const findingId = id((req.params as { finding: string }).finding, 'finding');
    const finding = await store.finding(findingId);
    if (!finding) throw new AtriumError('not-found', `no integrity finding ${findingId}`);
    await queried(req, [finding.patientId]);
    return withLinks(finding);
  });

  app.get('/api/quality/integrity/summary', async () => {
    const counts = await store.activeCounts();
    return { kinds: INTEGRITY_KINDS, severities: SEVERITIES, counts, lastSweep: (await store.listRuns('sweep', { limit: 1, offset: 0 })).items[0] ?? null };
  });

  const transition = (to: 'acknowledged' | 'false-positive' | 'resolved', path: string) => {
    app.post(`/api/quality/integrity/findings/:finding/${path}`, async (req) => {
      const findingId = id((req.params as { finding: string }).finding, 'finding');
      const b = body(req);
      let correctionId: number | null = null;
      if (to === 'resolved' && b.correctionId !== undefined && b.correctionId !== null) {
        if (!Number.isInteger(b.correctionId) || (b.correctionId as number) < 1) throw new AtriumError('invalid-input', 'correctionId must be a positive whole number');
        correctionId = b.correctionId as number;
      }
      const text = note(b, to !== 'acknowledged');
      const finding = await store.setState(findingId, to, req.principal?.name ?? 'unknown', new Date(), text, correctionId);
      await changed(req, finding, to);
      return withLinks(finding);
    });
  };
  transition('acknowledged', 'acknowledge');
  transition('false-positive', 'false-positive');
  transition('resolved', 'resolve');

  app.get('/api/quality/integrity/sweeps', async (req) => await store.listRuns('sweep', page(req.query as Query)));

  app.post('/api/quality/integrity/sweeps', async (req, reply) => {
    const payload: SweepPayload = { requestedBy: `user:${req.principal?.name ?? 'unknown'}` };
    // One asked-for sweep at a time: asking again while one waits or runs answers that one.
    const job = await deps.jobs.enqueue(INTEGRITY_SWEEP_JOB, payload, { maxAttempts: 3, dedupeKey: `${INTEGRITY_SWEEP_JOB}:on-demand` });
    return reply.code(202).send({ jobId: job.id, state: job.state, job: `/api/jobs/${job.id}` });
  });

  app.get('/api/quality/integrity/samples', async (req) => await store.listRuns('sample', page(req.query as Query)));

  app.get('/api/quality/integrity/samples/:sample', async (req) => {
    const sampleId = id((req.params as { sample: string }).sample, 'sample');
    const run = await store.run(sampleId);
    if (!run || run.kind !== 'sample') throw new AtriumError('not-found', `no metadata quality sample ${sampleId}`);
    return run;
  });

  app.post('/api/quality/integrity/samples', async (req, reply) => {
    const b = body(req);
    const perModality = b.perModality === undefined ? 100 : b.perModality;
    if (!Number.isInteger(perModality) || (perModality as number) < 1 || (perModality as number) > 10_000) throw new AtriumError('invalid-input', 'perModality must be a whole number from 1 to 10000');
    let modalities: string[] | null = null;
    if (b.modalities !== undefined) {
      if (!Array.isArray(b.modalities) || !b.modalities.every((m) => typeof m === 'string' && m)) throw new AtriumError('invalid-input', 'modalities must be a list of modality codes');
      modalities = (b.modalities as string[]).map((m) => m.toUpperCase());
    }
    const run = await deps.sampler.sample({ perModality: perModality as number, modalities }, `user:${req.principal?.name ?? 'unknown'}`);
    await queried(req, []);
    return reply.code(201).send(run);
  });
}
