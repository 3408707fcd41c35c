/**
 * Integrity: the study integrity monitor's findings (docs/integrity.md). Open and acknowledged findings by
 * kind and severity (the summary table filters the list), each with its evidence (which attributes differ,
 * both values) and the actions: acknowledge, mark a false positive, resolve with a note; and, where a
 * correction resolves the finding, a link to that correction (the corrections pages come with
 * src/quality/corrections/: the link names the action, the study and the finding). A sweep can be asked for.
 */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { api, query, useApi } from '../api.ts';
import { DataTable } from '../components/table.tsx';
import { Dialog } from '../components/dialog.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { useToast } from '../components/toast.tsx';
import { formatTime } from '../format.ts';

interface Evidence { attribute: string; expected: string | null; actual: string | null; problem?: string }
export interface Finding {
  id: number; kind: string; subject: string; severity: 'critical' | 'major' | 'minor'; state: string; summary: string;
  studyInstanceUid: string | null; seriesInstanceUid: string | null; accessionNumber: string | null; patientId: string | null;
  evidence: Evidence[]; objects: Record<string, unknown>; detectedAt: string; lastDetectedAt: string; detectedBy: string;
  stateChangedAt: string | null; stateChangedBy: string | null; resolution: string | null; correctionId: number | null;
  corrections: { action: string; href: string }[];
}
interface Summary { kinds: string[]; severities: string[]; counts: { kind: string; severity: string; state: string; n: number }[]; lastSweep: { state: string; startedAt: string; finishedAt: string | null } | null }

const LIMIT = 50;
const TONE = { critical: 'bad', major: 'warn', minor: 'info' } as const;

export function IntegrityPage() {
  const { query: params, route, path } = useLocation();
  const offset = Number(params.offset ?? 0);
  const filter = { kind: params.kind, severity: params.severity };
  const list = useApi<{ items: Finding[]; total: number }>(`/api/quality/integrity/findings${query({ ...filter, limit: LIMIT, offset })}`);
  const summary = useApi<Summary>('/api/quality/integrity/summary');
  const toast = useToast();
  const selectedId = params.id ? Number(params.id) : null;
  const go = (p: Record<string, string | number | undefined>) => route(`${path}${query(p)}`);
  const reload = () => { list.reload(); summary.reload(); };
  const sweep = async () => {
    try {
      const r = await api<{ jobId: number }>('/api/quality/integrity/sweeps', { method: 'POST', body: {} });
      toast.ok(`Sweep queued (job ${r.jobId})`);
    } catch (error) { toast.error(error as Error); }
  };
  const count = (kind: string, severity: string) => summary.data?.counts.filter((c) => c.kind === kind && c.severity === severity).reduce((s, c) => s + c.n, 0) ?? 0;
  return (
    <>
      <PageHeader title="Integrity" subtitle={list.data ? `${list.data.total} open ${list.data.total === 1 ? 'finding' : 'findings'}${filter.kind ? ` of kind ${filter.kind}` : ''}${filter.severity ? `, ${filter.severity}` : ''}` : undefined}>
        <button type="button" onClick={sweep}>Run a sweep now</button>
      </PageHeader>
      {summary.data && (
        <div class="table-wrap">
          <table aria-label="Open findings by kind and severity">
            <thead><tr><th>Kind</th>{summary.data.severities.map((s) => <th key={s} class="num">{s}</th>)}</tr></thead>
            <tbody>
              {summary.data.kinds.map((k) => (
                <tr key={k}>
                  <td><button type="button" class="link" onClick={() => go({ kind: k })}>{k}</button></td>
                  {summary.data!.severities.map((s) => <td key={s} class="num">{count(k, s) ? <button type="button" class="link" aria-label={`${count(k, s)} ${s} ${k}`} onClick={() => go({ kind: k, severity: s })}>{count(k, s)}</button> : 0}</td>)}
                </tr>
              ))}
            </tbody>
          </table>
          {summary.data.lastSweep && <p>Last sweep: {summary.data.lastSweep.state}, {formatTime(summary.data.lastSweep.finishedAt ?? summary.data.lastSweep.startedAt)}</p>}
          {(filter.kind || filter.severity) && <button type="button" onClick={() => go({})}>Show every kind</button>}
        </div>
      )}
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {list.data && (
        <DataTable
          label="Open findings"
          rows={list.data.items}
          rowKey={(f) => String(f.id)}
          paging={{ total: list.data.total, limit: LIMIT, offset, onPage: (o) => go({ ...filter, offset: o }) }}
          empty={<Empty title="No open findings.">The checks run as images, orders and merges arrive, and in the scheduled sweep.</Empty>}
          columns={[
            { key: 'severity', title: 'Severity', value: (f) => f.severity, render: (f) => <Badge tone={TONE[f.severity]}>{f.severity}</Badge> },
            { key: 'kind', title: 'Kind', value: (f) => f.kind },
            { key: 'summary', title: 'Finding', value: (f) => f.summary, render: (f) => <button type="button" class="link" onClick={() => go({ ...filter, id: f.id })}>{f.summary}</button> },
            { key: 'state', title: 'State', value: (f) => f.state },
            { key: 'detected', title: 'Detected', value: (f) => f.detectedAt, render: (f) => <span class="nowrap">{formatTime(f.detectedAt)}</span> },
          ]}
        />
      )}
      {selectedId !== null && <FindingDialog id={selectedId} onClose={() => go(filter)} onChanged={reload} />}
    </>
  );
}

function FindingDialog({ id, onClose, onChanged }: { id: number; onClose(): void; onChanged(): void }) {
  const finding = useApi<Finding>(`/api/quality/integrity/findings/${id}`);
  const toast = useToast();
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const act = async (action: 'acknowledge' | 'false-positive' | 'resolve') => {
    if (action !== 'acknowledge' && note.trim() === '') { setError('Write a note: what was checked, or how it was resolved.'); return; }
    setBusy(true);
    setError(null);
    try {
      const f = await api<Finding>(`/api/quality/integrity/findings/${id}/${action}`, { method: 'POST', body: note.trim() ? { note: note.trim() } : {} });
      toast.ok(`Finding ${id}: ${f.state}`);
      finding.reload();
      onChanged();
    } catch (e) { setError((e as Error).message); } finally { setBusy(false); }
  };
  const f = finding.data;
  const active = f && (f.state === 'open' || f.state === 'acknowledged');
  return (
    <Dialog open title={`Integrity finding ${id}`} onClose={onClose}>
      {finding.error && <ErrorState error={finding.error} />}
      {!f && !finding.error && <Loading />}
      {f && (
        <>
          <p>{f.summary}</p>
          <dl class="props">
            <dt>Kind</dt><dd>{f.kind}</dd>
            <dt>Severity</dt><dd><Badge tone={TONE[f.severity]}>{f.severity}</Badge></dd>
            <dt>State</dt><dd>{f.state}{f.stateChangedBy ? ` (${f.stateChangedBy}, ${formatTime(f.stateChangedAt!)})` : ''}{f.resolution ? `: ${f.resolution}` : ''}</dd>
            {f.studyInstanceUid && <><dt>Study</dt><dd class="mono"><a href={`/admin/studies/${encodeURIComponent(f.studyInstanceUid)}`}>{f.studyInstanceUid}</a></dd></>}
            {f.accessionNumber && <><dt>Accession</dt><dd>{f.accessionNumber}</dd></>}
            {f.patientId && <><dt>Patient ID</dt><dd>{f.patientId}</dd></>}
            <dt>Detected</dt><dd>{formatTime(f.detectedAt)} by {f.detectedBy}; last {formatTime(f.lastDetectedAt)}</dd>
          </dl>
          <h3>Evidence</h3>
          <div class="table-wrap">
            <table aria-label="Evidence">
              <thead><tr><th>Attribute</th><th>Expected</th><th>Found</th><th>Note</th></tr></thead>
              <tbody>{f.evidence.map((e, i) => <tr key={i}><td>{e.attribute}</td><td class="mono">{e.expected ?? '(none)'}</td><td class="mono">{e.actual ?? '(none)'}</td><td>{e.problem ?? ''}</td></tr>)}</tbody>
            </table>
          </div>
          {f.corrections.length > 0 && (
            <p>Correct it: {f.corrections.map((c, i) => <span key={c.action}>{i ? ', ' : ''}<a href={c.href} data-correction={c.action}>{c.action.replace('-', ' ')}</a></span>)}</p>
          )}
          {active && (
            <div class="stack">
              <div class="field">
                <label for="finding-note">Note</label>
                <textarea id="finding-note" rows={2} value={note} onInput={(e) => setNote(e.currentTarget.value)} />
              </div>
              {error && <p role="alert" class="field-error">{error}</p>}
            </div>
          )}
          <div class="dialog-actions">
            {f.state === 'open' && <button type="button" disabled={busy} onClick={() => act('acknowledge')}>Acknowledge</button>}
            {active && <button type="button" disabled={busy} onClick={() => act('false-positive')}>False positive</button>}
            {(active || f.state === 'false-positive') && <button type="button" class="primary" disabled={busy} onClick={() => act('resolve')}>Resolve</button>}
            <button type="button" onClick={onClose}>Close</button>
          </div>
        </>
      )}
    </Dialog>
  );
}
