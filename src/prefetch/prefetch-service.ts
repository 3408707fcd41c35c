/**
 * Prior prefetch (docs/prefetch.md): an order scheduled (or its study arriving) queues one durable search
 * (`prefetch.search`); the search finds the patient's studies in Atrium's index and on the rules' remote
 * archives (C-FIND), keeps the relevant ones by the rules, and queues one durable retrieve per remote prior
 * (`dicom.retrieve`, src/exchange/dicom-jobs.ts). Everything is keyed so that a redelivered event, a second
 * search or a second node queues nothing twice.
 */
import type { Logger } from 'pino';
import type { JobHandler } from '../jobs/job-runner.ts';
import type { Job, JobQueue } from '../ports/job-queue.ts';
import type { IndexStore } from '../ports/index-store.ts';
import type { AuditPrincipal, AuditInterface } from '../ports/audit-store.ts';
import type { DicomJsonDataSet } from '../dicom/dicom-json.ts';
import type { Order } from '../ris/model.ts';
import type { Ris } from '../ris/ris.ts';
import { AtriumError } from '../errors.ts';
import type { RetrievePayload } from '../exchange/dicom-jobs.ts';
import { daysBefore, ruleAppliesTo, selectPriors, type CandidateStudy, type OrderFacts, type PrefetchRule } from './rules.ts';
import type { PrefetchOrderRecord, PrefetchPriorRecord, PrefetchTrigger, SearchSummary, SqlPrefetchStore } from './sql-prefetch-store.ts';

export const PREFETCH_SEARCH_JOB = 'prefetch.search';
/** One remote prior: the exchange's retrieve (dicom-jobs.ts) run for the order, its outcome on the order's timeline. */
export const PREFETCH_FETCH_JOB = 'prefetch.fetch';

export interface PrefetchFetchPayload extends RetrievePayload {
  accessionNumber: string;
  /** For the timeline entry: the prior's date and description. */
  studyDate: string | null;
  studyDescription: string | null;
}

export interface PrefetchSearchPayload {
  accessionNumber: string;
  requestedBy?: AuditPrincipal;
  requestedThrough?: AuditInterface;
}

/** What the prefetch uses: its store, the job queue, the index, the RIS, and a C-FIND client. */
export interface PrefetchDeps {
  store: SqlPrefetchStore;
  jobs: JobQueue;
  index: IndexStore;
  ris: Pick<Ris, 'orders' | 'patients' | 'core'>;
  find(aeTitle: string, level: 'STUDY' | 'SERIES', keys: Record<string, string>): Promise<DicomJsonDataSet[]>;
  log: Logger;
  clock?: () => Date;
}

const SYSTEM: AuditPrincipal = { kind: 'anonymous', id: null, displayName: 'Atrium prior prefetch' };

/**
 * Queues the order's search unless one was queued for it already (a redelivery, the other node, or the
 * study arriving after the order was scheduled). `on-demand` always searches again: an active search is
 * made due now, a finished one is followed by a new one.
 */
export async function queueSearch(deps: PrefetchDeps, order: Order, trigger: PrefetchTrigger, requester: Omit<PrefetchSearchPayload, 'accessionNumber'> = {}): Promise<PrefetchOrderRecord> {
  const now = deps.clock?.() ?? new Date();
  const { order: row } = await deps.store.ensureOrder({
    accessionNumber: order.accessionNumber, studyInstanceUid: order.studyInstanceUid, patientId: order.patient.patientId,
    issuerOfPatientId: order.patient.issuerOfPatientId, trigger,
  }, now);
  if (row.searchJobId !== null && trigger !== 'on-demand') return row;
  if (row.searchJobId !== null) {
    const previous = await deps.jobs.get(row.searchJobId);
    if (previous && (previous.state === 'queued' || previous.state === 'running')) {
      if (previous.state === 'queued') await deps.jobs.retry(previous.id);
      return row;
    }
  }
  const job = await deps.jobs.enqueue<PrefetchSearchPayload>(PREFETCH_SEARCH_JOB, {
    accessionNumber: order.accessionNumber, requestedBy: requester.requestedBy ?? SYSTEM, ...(requester.requestedThrough ? { requestedThrough: requester.requestedThrough } : {}),
  }, { dedupeKey: `${PREFETCH_SEARCH_JOB}:${order.accessionNumber}`, maxAttempts: 8 });
  // Two nodes may both get here for one order: the dedupe key gave them the same job, and the same id is written.
  await deps.store.setSearchJob(row.id, job.id, now);
  return { ...row, searchJobId: job.id };
}

/** An order scheduled: its search is queued. */
export async function onOrderScheduled(deps: PrefetchDeps, accessionNumber: string): Promise<void> {
  const order = await deps.ris.orders.find({ accessionNumber });
  if (order) await queueSearch(deps, order, 'order-scheduled');
}

/**
 * Orders whose study may still be read. A prior fetched for another order may well have an order of its own
 * in the RIS, reported long ago: its arrival must not start a prefetch for it (nor a cascade back in time).
 */
const AWAITING_READING = new Set<Order['status']>(['ordered', 'scheduled', 'arrived', 'in-progress', 'completed']);

/** A study arrived (its first instance, or stable): the search of its order, when it has one not yet searched. */
export async function onStudyArrived(deps: PrefetchDeps, studyInstanceUid: string, accessionNumber: string | null, trigger: 'study-arrived' | 'study-stable'): Promise<void> {
  const order = await deps.ris.orders.find({ studyInstanceUid })
    ?? (accessionNumber ? await deps.ris.orders.find({ accessionNumber }) : null);
  if (!order || !AWAITING_READING.has(order.status) || await deps.store.getOrder(order.accessionNumber)) return;
  await queueSearch(deps, order, trigger);
}

function orderFacts(order: Order): OrderFacts {
  const texts = [order.requestedProcedureCode?.meaning, order.requestedProcedureDescription, ...order.steps.map((s) => s.description)]
    .filter((t): t is string => Boolean(t));
  return { modalities: order.steps.map((s) => s.modality).filter((m): m is string => Boolean(m)), procedureCode: order.requestedProcedureCode?.code ?? null, texts };
}

/** The order's patient and every identity merged into it (A40) or known before (A47), not undone. */
async function identitiesOf(deps: PrefetchDeps, order: Order): Promise<{ patientId: string; issuerOfPatientId: string }[]> {
  const own = { patientId: order.patient.patientId, issuerOfPatientId: order.patient.issuerOfPatientId };
  const list = [own];
  const patient = await deps.ris.patients.get(own);
  for (const change of patient?.history ?? []) {
    if (change.undoneAt || change.survivor.patientId !== own.patientId || change.survivor.issuerOfPatientId !== own.issuerOfPatientId) continue;
    if (!list.some((i) => i.patientId === change.prior.patientId && i.issuerOfPatientId === change.prior.issuerOfPatientId)) list.push(change.prior);
  }
  return list;
}

/** Issuers match when equal or when either side gives none (images often carry no issuer). */
const sameIssuer = (a: string | null | undefined, b: string) => !a || !b || a === b;

async function localCandidates(deps: PrefetchDeps, identity: { patientId: string; issuerOfPatientId: string }, since: string): Promise<CandidateStudy[]> {
  const found: CandidateStudy[] = [];
  for (let offset = 0; ; offset += 500) {
    const page = await deps.index.listStudies({ patientId: identity.patientId }, { limit: 500, offset });
    for (const s of page.items) {
      if (s.patient.patientId !== identity.patientId || !sameIssuer(s.patient.issuerOfPatientId, identity.issuerOfPatientId)) continue;
      if (!s.studyDate || s.studyDate.replace(/-/g, '') < since) continue;
      const series = (await deps.index.listSeries(s.studyInstanceUid, { limit: 1000, offset: 0 })).items;
      found.push({
        studyInstanceUid: s.studyInstanceUid, studyDate: s.studyDate.replace(/-/g, ''), studyDescription: s.studyDescription,
        modalities: s.modalitiesInStudy, bodyParts: series.map((x) => x.bodyPartExamined).filter((b): b is string => Boolean(b)), source: 'local',
      });
    }
    if (offset + 500 >= page.total) break;
  }
  return found;
}

const text = (ds: DicomJsonDataSet, tag: string): string | null => {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'string' && v.trim() ? v.trim() : null;
};
const texts = (ds: DicomJsonDataSet, tag: string): string[] => (ds[tag]?.Value ?? []).filter((v): v is string => typeof v === 'string' && v.trim() !== '').map((v) => v.trim());

/**
 * The patient's studies on a remote archive since `since`: a study-level C-FIND by Patient ID and date
 * range, then a series-level one per study for the modalities and body parts (Modalities in Study is
 * optional for an SCP, and Body Part Examined is a series attribute).
 */
async function remoteCandidates(deps: PrefetchDeps, source: string, identity: { patientId: string; issuerOfPatientId: string }, since: string): Promise<CandidateStudy[]> {
  const studies = await deps.find(source, 'STUDY', {
    PatientID: identity.patientId, IssuerOfPatientID: '', StudyDate: `${since}-`, StudyInstanceUID: '', StudyDescription: '', ModalitiesInStudy: '', AccessionNumber: '',
  });
  const found: CandidateStudy[] = [];
  for (const s of studies) {
    const uid = text(s, '0020000D');
    const date = text(s, '00080020');
    if (!uid || !date || date < since || text(s, '00100020') !== null && text(s, '00100020') !== identity.patientId) continue;
    if (!sameIssuer(text(s, '00100021'), identity.issuerOfPatientId)) continue;
    const series = await deps.find(source, 'SERIES', { StudyInstanceUID: uid, SeriesInstanceUID: '', Modality: '', BodyPartExamined: '' });
    const modalities = new Set([...texts(s, '00080061'), ...series.flatMap((x) => texts(x, '00080060'))]);
    found.push({
      studyInstanceUid: uid, studyDate: date, studyDescription: text(s, '00081030'), modalities: [...modalities],
      bodyParts: series.flatMap((x) => texts(x, '00180015')), source,
    });
  }
  return found;
}

/** The search job: find, select, record, and queue the fetches. */
export function prefetchSearchJob(deps: PrefetchDeps): JobHandler {
  const search = searchOnce(deps);
  return async (job: Job<PrefetchSearchPayload>, context) => {
    try {
      return await search(job);
    } catch (error) {
      const last = job.attempts >= job.maxAttempts || (error as { retryable?: boolean }).retryable === false;
      const order = last && !context.signal.aborted ? await deps.ris.orders.find({ accessionNumber: job.payload.accessionNumber }) : null;
      if (order) await timeline(deps, order, `prior prefetch: the search for priors failed: ${(error as Error).message}`);
      throw error;
    }
  };
}

function searchOnce(deps: PrefetchDeps) {
  return async (job: Job<PrefetchSearchPayload>) => {
    const now = deps.clock?.() ?? new Date();
    const order = await deps.ris.orders.find({ accessionNumber: job.payload.accessionNumber });
    const row = await deps.store.getOrder(job.payload.accessionNumber);
    if (!order || !row) throw Object.assign(new AtriumError('not-found', `no order ${job.payload.accessionNumber}`), { retryable: false });
    const facts = orderFacts(order);
    const rules = (await deps.store.listRules()).filter((r) => r.enabled && ruleAppliesTo(r, facts));
    const identities = await identitiesOf(deps, order);
    const summary: SearchSummary = { rules: rules.map((r) => r.name), identities, sources: [] };
    if (rules.length === 0) {
      await deps.store.recordSearch(row.id, summary, now);
      return { rules: 0, priors: 0 };
    }
    const since = daysBefore(now, Math.max(...rules.map((r) => r.priors.lookbackDays)));
    const candidates: CandidateStudy[] = [];
    const local = (await Promise.all(identities.map((i) => localCandidates(deps, i, since)))).flat();
    candidates.push(...local);
    summary.sources.push({ source: 'local', candidates: local.length });
    // A remote that cannot be asked fails the search (retried with backoff): selecting from the others only
    // would pick older priors in place of the missing remote's more recent ones.
    for (const source of [...new Set(rules.flatMap((r) => r.sources))]) {
      const found: CandidateStudy[] = [];
      for (const identity of identities) {
        try {
          found.push(...await remoteCandidates(deps, source, identity, since));
        } catch (error) {
          throw new Error(`C-FIND on ${source} for patient ${identity.patientId}: ${(error as Error).message}`, { cause: error });
        }
      }
      candidates.push(...found);
      summary.sources.push({ source, candidates: found.length });
    }
    const selected = selectPriors(rules, candidates, now, order.studyInstanceUid);
    const methodOf = new Map(rules.map((r) => [r.name, r.method]));
    let queued = 0;
    for (const { rule, study } of selected) {
      const prior = await deps.store.ensurePrior(row.id, {
        studyInstanceUid: study.studyInstanceUid, source: study.source, rule, studyDate: study.studyDate, studyDescription: study.studyDescription, modalities: study.modalities,
      }, now);
      if (prior.source === 'local' || await deps.index.getStudy(prior.studyInstanceUid)) continue;
      queued += await queueFetch(deps, prior, methodOf.get(prior.rule) ?? 'move', job.payload, order.accessionNumber);
    }
    await deps.store.recordSearch(row.id, summary, now);
    const present = selected.length - queued;
    const remotes = [...new Set(selected.filter((p) => p.study.source !== 'local').map((p) => p.study.source))];
    await timeline(deps, order, selected.length === 0 ? `prior prefetch: no relevant prior found (rules ${summary.rules.join(', ')})`
      : `prior prefetch: ${selected.length} relevant prior${selected.length === 1 ? '' : 's'} found by rule${rules.length === 1 ? '' : 's'} ${summary.rules.join(', ')}: ${present} in Atrium, ${queued} to fetch${remotes.length ? ` from ${remotes.join(', ')}` : ''}`);
    deps.log.info({ accessionNumber: order.accessionNumber, rules: summary.rules, priors: selected.length, queued }, 'prior prefetch search done');
    return { rules: rules.length, priors: selected.length, queued };
  };
}

/** A `prior-prefetch` entry on the order's timeline (source system): recorded, the order's status unchanged. */
async function timeline(deps: PrefetchDeps, order: Order, detail: string): Promise<void> {
  await deps.ris.core.change({ source: { kind: 'system', ref: 'prefetch' }, principal: SYSTEM, interface: 'rest' }, async (unit) => {
    const current = (await unit.store.getOrder(order.pk)) ?? order;
    await unit.store.addTimeline(order.pk, { status: current.status, stepId: null, source: { kind: 'system', ref: 'prefetch' }, detail, at: unit.now, flag: 'prior-prefetch' });
  }).catch((error) => deps.log.warn({ err: error, accessionNumber: order.accessionNumber }, 'prior prefetch: timeline entry not recorded'));
}

/**
 * The fetch job: the exchange's retrieve handler (its C-MOVE/C-GET, failure classification and audit), then
 * the outcome on the order's timeline; a failure is recorded there once the job has no attempt left.
 */
export function prefetchFetchJob(deps: PrefetchDeps, retrieve: JobHandler): JobHandler {
  return async (job: Job<PrefetchFetchPayload>, context) => {
    const p = job.payload;
    const what = `study ${p.keys.StudyInstanceUID}${p.studyDescription ? ` (${p.studyDescription}${p.studyDate ? `, ${p.studyDate}` : ''})` : ''}`;
    const order = await deps.ris.orders.find({ accessionNumber: p.accessionNumber });
    try {
      const result = await retrieve(job, context) as { completed?: number } | undefined;
      if (order) await timeline(deps, order, `prior prefetch: ${what} fetched from ${p.source} (${result?.completed ?? 0} instances)`);
      return result;
    } catch (error) {
      const last = job.attempts >= job.maxAttempts || (error as { retryable?: boolean }).retryable === false;
      if (order && last && !context.signal.aborted) await timeline(deps, order, `prior prefetch: fetching ${what} from ${p.source} failed: ${(error as Error).message}`);
      throw error;
    }
  };
}

/** One retrieve job per remote prior, once; a failed one is retried by a later search (run on demand). */
async function queueFetch(deps: PrefetchDeps, prior: PrefetchPriorRecord, method: 'move' | 'get', requester: PrefetchSearchPayload, accessionNumber: string): Promise<number> {
  if (prior.jobId !== null) {
    const job = await deps.jobs.get(prior.jobId);
    if (job && (job.state === 'failed' || job.state === 'cancelled')) await deps.jobs.retry(job.id).catch(() => null);
    return 0;
  }
  const job = await deps.jobs.enqueue<PrefetchFetchPayload>(PREFETCH_FETCH_JOB, {
    source: prior.source, level: 'STUDY', keys: { StudyInstanceUID: prior.studyInstanceUid }, method,
    requestedBy: requester.requestedBy ?? SYSTEM, requestedThrough: requester.requestedThrough ?? 'rest',
    accessionNumber, studyDate: prior.studyDate, studyDescription: prior.studyDescription,
  }, { dedupeKey: `prefetch:${prior.source}:${prior.studyInstanceUid}`, maxAttempts: 8 });
  await deps.store.setPriorJob(prior.id, job.id);
  return 1;
}

export type PriorState = 'present' | 'queued' | 'fetching' | 'fetched' | 'failed';

export interface PrefetchStatus {
  accessionNumber: string;
  trigger: PrefetchTrigger;
  /** searching: the search has not finished yet (failed: it failed and is retried or given up, with the reason). */
  search: { state: 'searching' | 'done' | 'failed'; jobId: number | null; attempts: number; reason: string | null; retrying: boolean; searchedAt: string | null; summary: SearchSummary | null };
  /** no-rule | searching | none-found | fetching | fetched (every prior in Atrium) | failed (a search or a fetch failed) */
  status: 'no-rule' | 'searching' | 'none-found' | 'fetching' | 'fetched' | 'failed';
  counts: { found: number; present: number; fetching: number; fetched: number; failed: number };
  priors: (PrefetchPriorRecord & { state: PriorState; reason: string | null; attempts: number; retrying: boolean })[];
}

/** Failed with attempts left: queued again after a backoff, with the error it failed with. */
const retrying = (job: Job | null) => Boolean(job && job.state === 'queued' && job.lastError);

export async function prefetchStatus(deps: Pick<PrefetchDeps, 'store' | 'jobs' | 'index'>, accessionNumber: string): Promise<PrefetchStatus | null> {
  const row = await deps.store.getOrder(accessionNumber);
  if (!row) return null;
  const searchJob = row.searchJobId !== null ? await deps.jobs.get(row.searchJobId) : null;
  const searchState = !searchJob ? (row.searchedAt ? 'done' : 'searching')
    : searchJob.state === 'succeeded' ? 'done' : searchJob.state === 'failed' || searchJob.state === 'cancelled' || retrying(searchJob) ? 'failed' : 'searching';
  const priors: PrefetchStatus['priors'] = [];
  for (const p of await deps.store.priors(row.id)) {
    const job = p.jobId !== null ? await deps.jobs.get(p.jobId) : null;
    let state: PriorState;
    if (p.source === 'local') state = 'present';
    else if (!job) state = (await deps.index.getStudy(p.studyInstanceUid)) ? 'present' : 'queued';
    else if (job.state === 'succeeded') state = 'fetched';
    else if (job.state === 'failed' || job.state === 'cancelled' || retrying(job)) state = 'failed';
    else state = job.state === 'running' ? 'fetching' : 'queued';
    priors.push({ ...p, state, reason: state === 'failed' ? job?.lastError ?? job?.state ?? null : null, attempts: job?.attempts ?? 0, retrying: retrying(job) });
  }
  const counts = {
    found: priors.length, present: priors.filter((p) => p.state === 'present').length,
    fetching: priors.filter((p) => p.state === 'queued' || p.state === 'fetching').length,
    fetched: priors.filter((p) => p.state === 'fetched').length, failed: priors.filter((p) => p.state === 'failed').length,
  };
  const summary = row.searched;
  const status: PrefetchStatus['status'] = searchState === 'failed' || counts.failed > 0 ? 'failed'
    : searchState === 'searching' ? 'searching'
    : summary && summary.rules.length === 0 ? 'no-rule'
    : counts.found === 0 ? 'none-found'
    : counts.fetching > 0 ? 'fetching' : 'fetched';
  return {
    accessionNumber, trigger: row.trigger,
    search: {
      state: searchState, jobId: row.searchJobId, attempts: searchJob?.attempts ?? 0, reason: searchState === 'failed' ? searchJob?.lastError ?? null : null,
      retrying: retrying(searchJob), searchedAt: row.searchedAt, summary,
    },
    status, counts, priors,
  };
}
