/**
 * Jobs: the durable jobs (sends, retrieves, storage commitment reports) with their state, live while any
 * is queued or running, filtered by state and type; the error of a failed (or retrying) job, cancel and
 * retry where the state allows, and one job's details (what, to or from where, who asked).
 */
import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { api, query, useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { ConfirmDialog, Dialog } from '../components/dialog.tsx';
import { Field, FormError, useForm } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { formatTime } from '../format.ts';
import type { Job, JobState } from '../../../../ports/job-queue.ts';
import './jobs.css';

const STATES: JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const STATE_LABELS: Record<JobState, string> = { queued: 'Queued', running: 'Running', succeeded: 'Succeeded', failed: 'Failed', cancelled: 'Cancelled' };
const STATE_TONES: Record<JobState, 'ok' | 'warn' | 'bad' | 'info' | 'muted'> = { queued: 'info', running: 'info', succeeded: 'ok', failed: 'bad', cancelled: 'muted' };
/** The job types of Atrium's modules (there is no endpoint listing them). */
const TYPES: Record<string, string> = {
  'dicom.send': 'Send', 'dicom.retrieve': 'Retrieve', 'dicom.commitment-report': 'Storage commitment report',
  'workflow.stow': 'STOW-RS forward', 'workflow.study-stable-sweep': 'StudyStable sweep',
};
const LIMIT = 50;
const POLL_MS = 2000;

interface Principal { kind?: string; id?: string | null; displayName?: string | null }
interface Payload {
  destination?: string; source?: string; studyInstanceUid?: string; seriesInstanceUid?: string; sopInstanceUids?: string[];
  level?: string; keys?: Record<string, string>; method?: string; requester?: string; transactionUid?: string;
  requestedBy?: Principal; requestedThrough?: string;
  /** The routing rule that queued it (src/workflow/). */
  rule?: { id: number; name: string; version: number };
}
type AnyJob = Job<Payload | null>;
interface Counts { completed?: number; failed?: number; warning?: number; remaining?: number }

const inProgress = (j: AnyJob) => j.state === 'queued' || j.state === 'running';
const typeLabel = (type: string) => TYPES[type] ?? type;

/** How many jobs are in each state (with the type filter): one small page per state. */
function useStateCounts(type: string | undefined, refresh: unknown): Record<JobState, number> | null {
  const [counts, setCounts] = useState<Record<JobState, number> | null>(null);
  useEffect(() => {
    let cancelled = false;
    Promise.all(STATES.map((state) => api<{ total: number }>(`/api/jobs${query({ state, type, limit: 1 })}`).then((r) => r.total)))
      .then((totals) => { if (!cancelled) setCounts(Object.fromEntries(STATES.map((s, i) => [s, totals[i]])) as Record<JobState, number>); })
      .catch(() => { /* the list shows the error */ });
    return () => { cancelled = true; };
  }, [type, refresh]);
  return counts;
}

export function JobsPage() {
  const { query: params, route, path } = useLocation();
  const toast = useToast();
  const state = STATES.includes(params.state as JobState) ? (params.state as JobState) : undefined;
  const type = params.type || undefined;
  const offset = Number(params.offset ?? 0);
  const [live, setLive] = useState(false);
  const list = useApi<{ items: AnyJob[]; total: number }>(`/api/jobs${query({ state, type, limit: LIMIT, offset })}`, { pollMs: live ? POLL_MS : undefined });
  const counts = useStateCounts(type, list.data);
  // Live while anything is in progress (shown or counted); otherwise no polling: the Refresh button.
  const active = !!list.data?.items.some(inProgress) || !!(counts && counts.queued + counts.running > 0);
  useEffect(() => setLive(active), [active]);
  const [cancelling, setCancelling] = useState<AnyJob | null>(null);
  const [busy, setBusy] = useState(false);

  const navigate = (next: Record<string, string | undefined>) => route(`${path}${query({ ...params, offset: undefined, ...next })}`);
  const openJob = (id: number | undefined) => navigate({ job: id === undefined ? undefined : String(id), offset: params.offset });

  const cancel = async () => {
    if (!cancelling) return;
    setBusy(true);
    try {
      const job = await api<AnyJob>(`/api/jobs/${cancelling.id}/cancel`, { method: 'POST' });
      if (job.state === 'cancelled') toast.ok(`Job ${job.id} cancelled`);
      else toast.info(`Job ${job.id} had already finished: ${STATE_LABELS[job.state].toLowerCase()}`);
    } catch (error) {
      toast.error(`Job ${cancelling.id} not cancelled: ${(error as Error).message}`);
    } finally {
      setBusy(false);
      setCancelling(null);
      list.reload();
    }
  };
  const retry = async (job: AnyJob) => {
    try {
      const after = await api<AnyJob>(`/api/jobs/${job.id}/retry`, { method: 'POST' });
      toast.ok(job.state === 'queued' ? `Job ${after.id} is due now` : `Job ${after.id} queued again`);
    } catch (error) {
      toast.error(`Job ${job.id} not retried: ${(error as Error).message}`);
    }
    list.reload();
  };

  const columns: Column<AnyJob>[] = [
    {
      key: 'id', title: 'Job', value: (j) => j.id,
      render: (j) => <><button type="button" class="link" aria-label={`Details of job ${j.id}`} onClick={() => openJob(j.id)}>#{j.id}</button><div class="muted">{typeLabel(j.type)}</div></>,
    },
    { key: 'what', title: 'What', render: (j) => <><Summary job={j} />{requester(j) && <div class="muted">by {requester(j)}</div>}</> },
    { key: 'state', title: 'State', value: (j) => j.state, render: (j) => <StateCell job={j} /> },
    { key: 'progress', title: 'Progress', render: (j) => <ProgressCell job={j} /> },
    { key: 'updated', title: 'Updated', value: (j) => j.updatedAt, render: (j) => <span class="job-updated">{formatTime(j.updatedAt)}</span> },
    { key: 'actions', title: 'Actions', render: (j) => <JobActions job={j} onCancel={() => setCancelling(j)} onRetry={() => retry(j)} /> },
  ];
  const all = counts ? STATES.reduce((n, s) => n + counts[s], 0) : undefined;
  const typeOptions = [...Object.keys(TYPES), ...(type && !TYPES[type] ? [type] : [])];

  return (
    <>
      <PageHeader title="Jobs" subtitle="Sends, retrieves and other work Atrium does in the background, retried until done.">
        <span class={`live ${live ? 'on' : ''}`} role="status">{live ? `Live: updating every ${POLL_MS / 1000} s` : 'Nothing in progress'}</span>
        <button type="button" onClick={list.reload} disabled={list.loading}>Refresh</button>
      </PageHeader>
      <div class="toolbar jobs-toolbar">
        <div class="chips" role="group" aria-label="State">
          <button type="button" aria-pressed={!state} onClick={() => navigate({ state: undefined })}>All{all !== undefined && <span class="count"> {all}</span>}</button>
          {STATES.map((s) => (
            <button key={s} type="button" aria-pressed={state === s} onClick={() => navigate({ state: s })}>
              {STATE_LABELS[s]}{counts && <span class={`count${s === 'failed' && counts[s] > 0 ? ' count-bad' : ''}`}> {counts[s]}</span>}
            </button>
          ))}
        </div>
        <div class="field">
          <label for="jobs-type">Type</label>
          <select id="jobs-type" value={type ?? ''} onChange={(e) => navigate({ type: e.currentTarget.value || undefined })}>
            <option value="">All types</option>
            {typeOptions.map((t) => <option key={t} value={t}>{typeLabel(t)}</option>)}
          </select>
        </div>
        <OpenJobForm onOpen={openJob} />
      </div>
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {!list.data && !list.error && <Loading label="Loading the jobs…" />}
      {list.data && (
        <DataTable
          label="Jobs"
          columns={columns}
          rows={list.data.items}
          rowKey={(j) => String(j.id)}
          paging={{ total: list.data.total, limit: LIMIT, offset, onPage: (o) => navigate({ offset: String(o) }) }}
          empty={
            state || type ? (
              <Empty title="No job matches.">
                <button type="button" onClick={() => navigate({ state: undefined, type: undefined })}>Show all jobs</button>
              </Empty>
            ) : <Empty title="No job yet."><p>Sends and retrieves started from the Studies page, the REST API or DICOM appear here.</p></Empty>
          }
        />
      )}
      <JobDialog id={params.job ? Number(params.job) : null} onClose={() => openJob(undefined)} onCancel={setCancelling} onRetry={retry} refresh={list.data} />
      <ConfirmDialog open={cancelling !== null} title={`Cancel job ${cancelling?.id ?? ''}`} confirmLabel="Cancel the job" cancelLabel="Keep it"
        busy={busy} onConfirm={cancel} onClose={() => setCancelling(null)}>
        {cancelling && <p>{cancelText(cancelling)} It can be retried later.</p>}
      </ConfirmDialog>
    </>
  );
}

function cancelText(job: AnyJob): string {
  const p = job.payload ?? {};
  if (job.type === 'dicom.send') return `The send to ${p.destination} stops${job.state === 'running' ? ': what the peer has stored already stays there' : ''}.`;
  if (job.type === 'dicom.retrieve') return `The retrieve from ${p.source} stops${job.state === 'running' ? ': what has arrived already stays in the archive' : ''}.`;
  return `${typeLabel(job.type)} job ${job.id} stops.`;
}

function requester(job: AnyJob): string {
  const by = job.payload?.requestedBy;
  if (!by) return '';
  return by.displayName || by.id || by.kind || '';
}

function short(uid: string): string {
  return uid.length > 24 ? `…${uid.slice(-20).replace(/^\./, '')}` : uid;
}

/** What a job does, in a line or two: to or from which peer, which studies. */
function Summary({ job }: { job: AnyJob }) {
  const p = job.payload ?? {};
  if (job.type === 'dicom.send') {
    return (
      <div>
        to <strong class="mono">{p.destination}</strong>
        <div class="muted">
          {p.studyInstanceUid ? <>study <a class="mono" href={`/admin/studies/${encodeURIComponent(p.studyInstanceUid)}`} title={p.studyInstanceUid}>{short(p.studyInstanceUid)}</a></>
            : p.seriesInstanceUid ? <>series <span class="mono" title={p.seriesInstanceUid}>{short(p.seriesInstanceUid)}</span></>
            : p.sopInstanceUids ? <>{p.sopInstanceUids.length} {p.sopInstanceUids.length === 1 ? 'instance' : 'instances'}</> : null}
        </div>
        {p.rule && <div class="muted">by routing rule <a href="/admin/rules">{p.rule.name}</a> v{p.rule.version}</div>}
      </div>
    );
  }
  if (job.type === 'workflow.stow') {
    return (
      <div>
        STOW-RS to <strong class="mono">{p.destination}</strong>
        <div class="muted">{p.sopInstanceUids ? `${p.sopInstanceUids.length} instance(s) of ` : ''}study <a class="mono" href={`/admin/studies/${encodeURIComponent(p.studyInstanceUid ?? '')}`} title={p.studyInstanceUid}>{short(p.studyInstanceUid ?? '')}</a></div>
        {p.rule && <div class="muted">by routing rule <a href="/admin/rules">{p.rule.name}</a> v{p.rule.version}</div>}
      </div>
    );
  }
  if (job.type === 'dicom.retrieve') {
    const keys = Object.entries(p.keys ?? {}).filter(([, v]) => v);
    return (
      <div>
        from <strong class="mono">{p.source}</strong>
        <div class="muted">{p.level?.toLowerCase()} by C-{(p.method ?? 'move').toUpperCase()}{keys.length > 0 && <>: <span class="mono">{keys.map(([k, v]) => `${k}=${short(v)}`).join(', ')}</span></>}</div>
      </div>
    );
  }
  if (job.type === 'dicom.commitment-report') {
    return <div>to <strong class="mono">{p.requester}</strong><div class="muted">transaction <span class="mono" title={p.transactionUid}>{short(p.transactionUid ?? '')}</span></div></div>;
  }
  return <span class="muted mono">{JSON.stringify(job.payload).slice(0, 80)}</span>;
}

function StateCell({ job }: { job: AnyJob }) {
  const retrying = job.state === 'queued' && job.attempts > 0 && job.lastError;
  return (
    <div class="job-state">
      <Badge tone={retrying ? 'warn' : STATE_TONES[job.state]}>{retrying ? 'Retrying' : STATE_LABELS[job.state]}</Badge>
      {retrying && <div class="muted">attempt {job.attempts} of {job.maxAttempts} failed; next at {new Date(job.runAt).toLocaleTimeString()}</div>}
      {job.state === 'failed' && <div class="muted">after {job.attempts} of {job.maxAttempts} {job.maxAttempts === 1 ? 'attempt' : 'attempts'}</div>}
      {job.state === 'running' && job.attempts > 1 && <div class="muted">attempt {job.attempts} of {job.maxAttempts}</div>}
      {job.lastError && job.state !== 'succeeded' && <div class="job-error">{job.lastError}</div>}
    </div>
  );
}

function countsOf(value: unknown): Counts | null {
  if (!value || typeof value !== 'object') return null;
  const v = value as Record<string, unknown>;
  const n = (k: string) => (typeof v[k] === 'number' ? (v[k] as number) : undefined);
  const c = { completed: n('completed'), failed: n('failed'), warning: n('warning'), remaining: n('remaining') };
  return Object.values(c).some((x) => x !== undefined) ? c : null;
}

function ProgressCell({ job }: { job: AnyJob }) {
  if (job.state === 'succeeded') {
    const r = countsOf(job.result);
    if (!r) return <span class="muted">done</span>;
    const done = (r.completed ?? 0) + (r.warning ?? 0);
    return <span>{done} {job.type === 'dicom.send' ? 'sent' : 'completed'}{r.warning ? ` (${r.warning} with warnings)` : ''}</span>;
  }
  const p = countsOf(job.progress);
  if (!p) return <span class="muted">{job.state === 'queued' ? 'waiting' : job.state === 'running' ? 'starting' : '—'}</span>;
  const done = (p.completed ?? 0) + (p.failed ?? 0) + (p.warning ?? 0);
  const total = done + (p.remaining ?? 0);
  const pct = total ? Math.round((done / total) * 100) : 0;
  return (
    <div class="job-progress">
      <div class="progress" role="progressbar" aria-label={`Progress of job ${job.id}`} aria-valuemin={0} aria-valuemax={total} aria-valuenow={done}>
        <span style={{ width: `${pct}%` }} />
      </div>
      <small>{done} of {total}{p.failed ? `, ${p.failed} failed` : ''}</small>
    </div>
  );
}

function JobActions({ job, onCancel, onRetry }: { job: AnyJob; onCancel(): void; onRetry(): void }) {
  const retryable = job.state === 'failed' || job.state === 'cancelled';
  const waiting = job.state === 'queued' && job.attempts > 0 && !!job.lastError;
  return (
    <div class="row-actions">
      {inProgress(job) && <button type="button" aria-label={`Cancel job ${job.id}`} onClick={onCancel}>Cancel…</button>}
      {(retryable || waiting) && (
        <button type="button" aria-label={`${waiting ? 'Retry now' : 'Retry'} job ${job.id}`} onClick={onRetry}>{waiting ? 'Retry now' : 'Retry'}</button>
      )}
    </div>
  );
}

/** Open a job by its number (from a log line, a toast, an audit record). */
function OpenJobForm({ onOpen }: { onOpen(id: number): void }) {
  const form = useForm({ jobId: '' }, (v) => ({ jobId: /^\s*\d+\s*$/.test(v.jobId) && Number(v.jobId) > 0 ? undefined : 'A job number, such as 42' }));
  const open = async (v: Record<string, string>) => {
    const id = Number(v.jobId.trim());
    await api(`/api/jobs/${id}`);
    form.reset();
    onOpen(id);
  };
  return (
    <form class="open-job" noValidate onSubmit={form.submit(open)} aria-label="Open a job by number">
      <Field form={form} name="jobId" label="Job number" size={8} autocomplete="off" />
      <button disabled={form.busy}>Open</button>
      <FormError form={form} />
    </form>
  );
}

function JobDialog({ id, onClose, onCancel, onRetry, refresh }: { id: number | null; onClose(): void; onCancel(job: AnyJob): void; onRetry(job: AnyJob): Promise<void>; refresh: unknown }) {
  const job = useApi<AnyJob>(id === null ? null : `/api/jobs/${id}`);
  const j = job.data && job.data.id === id ? job.data : undefined;
  // Live with the list: it polls while anything is in progress; each new list reloads this job too.
  useEffect(() => { if (id !== null) job.reload(); }, [refresh]);
  const p = j?.payload ?? {};
  return (
    <Dialog open={id !== null} title={`Job ${id ?? ''}`} onClose={onClose}>
      {job.error && <ErrorState error={job.error} retry={job.reload} />}
      {!j && !job.error && <Loading />}
      {j && (
        <>
          <dl class="props job-props">
            <dt>Type</dt><dd>{typeLabel(j.type)} <span class="muted mono">{j.type}</span></dd>
            <dt>State</dt><dd><StateCell job={j} /></dd>
            {p.destination && <><dt>Destination</dt><dd class="mono">{p.destination}</dd></>}
            {p.source && <><dt>Source</dt><dd class="mono">{p.source}</dd></>}
            {p.requester && <><dt>Report to</dt><dd class="mono">{p.requester}</dd></>}
            <dt>What</dt><dd><What payload={p} type={j.type} /></dd>
            <dt>Requested by</dt><dd>{requester(j) || '—'}{p.requestedBy?.kind && <span class="muted"> ({p.requestedBy.kind}{p.requestedBy.id && p.requestedBy.id !== requester(j) ? ` ${p.requestedBy.id}` : ''})</span>}{p.requestedThrough && <span class="muted"> through {p.requestedThrough}</span>}</dd>
            <dt>Progress</dt><dd><ProgressCell job={j} /></dd>
            <dt>Attempts</dt><dd>{j.attempts} of {j.maxAttempts}</dd>
            <dt>Created</dt><dd>{formatTime(j.createdAt)}</dd>
            <dt>Updated</dt><dd>{formatTime(j.updatedAt)}</dd>
            {j.state === 'queued' && <><dt>Due</dt><dd>{formatTime(j.runAt)}</dd></>}
            {j.lockedBy && j.state === 'running' && <><dt>Worker</dt><dd class="mono">{j.lockedBy}</dd></>}
          </dl>
          <details class="job-raw">
            <summary>Payload and result as stored</summary>
            <pre class="dump">{JSON.stringify({ payload: j.payload, progress: j.progress, result: j.result }, null, 2)}</pre>
          </details>
          <div class="dialog-actions">
            {inProgress(j) && <button type="button" onClick={() => onCancel(j)}>Cancel the job…</button>}
            {(j.state === 'failed' || j.state === 'cancelled') && <button type="button" onClick={() => onRetry(j)}>Retry</button>}
            <button type="button" class="primary" onClick={onClose}>Close</button>
          </div>
        </>
      )}
      {!j && <div class="dialog-actions"><button type="button" onClick={onClose}>Close</button></div>}
    </Dialog>
  );
}

function What({ payload: p, type }: { payload: Payload; type: string }) {
  if (p.studyInstanceUid) return <>study <a class="mono" href={`/admin/studies/${encodeURIComponent(p.studyInstanceUid)}`}>{p.studyInstanceUid}</a></>;
  if (p.seriesInstanceUid) return <>series <span class="mono">{p.seriesInstanceUid}</span></>;
  if (p.sopInstanceUids) return <>{p.sopInstanceUids.length} instances</>;
  if (type === 'dicom.retrieve') {
    return <>{p.level} level by C-{(p.method ?? 'move').toUpperCase()}, keys <span class="mono">{Object.entries(p.keys ?? {}).map(([k, v]) => `${k}=${v || '*'}`).join(', ') || 'none'}</span></>;
  }
  if (p.transactionUid) return <>Storage commitment result, transaction <span class="mono">{p.transactionUid}</span></>;
  return <span class="muted">see the payload below</span>;
}
