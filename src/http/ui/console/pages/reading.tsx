/**
 * Reading worklist (docs/reading.md): the studies ready to read, most urgent first (priority class, AI triage
 * flag, share of the SLA used), each row highlighted when about to breach or in breach; filters and grouping
 * by modality, body region and site; claim / give back (release of another's claim with reading:release);
 * "Open" opens the study in the viewer with the patient's priors. Below, the critical results waiting for an
 * acknowledgement, acknowledged in one click.
 */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { api, query, useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { Field, useForm, type Values } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { useSession } from '../session.tsx';
import { formatTime, personName } from '../format.ts';

interface Entry {
  studyInstanceUid: string; accessionNumber: string | null; patientId: string | null; patientName: string | null; priority: string; procedure: string | null;
  modality: string | null; bodyRegion: string | null; site: string | null; triage: string | null; completedAt: string; waitingMinutes: number;
  sla: { state: 'ok' | 'warning' | 'breach' | 'none'; minutes: number | null; dueAt: string | null; fraction: number | null };
  claim: { by: string; name: string; at: string; mine: boolean } | null;
  /** The order's status (preliminary-report ...), null without an order. */
  status: string | null;
}
interface Critical { id: number; accessionNumber: string; clinician: string | null; destination: string | null; notifiedAt: string; acknowledgeBy: string; state: string; escalationDestination: string | null }

const PRIORITY_TONE: Record<string, 'bad' | 'warn' | 'info' | 'muted'> = { stat: 'bad', urgent: 'warn', routine: 'info', screening: 'muted' };
const SLA_TONE = { ok: 'ok', warning: 'warn', breach: 'bad', none: 'muted' } as const;
const SLA_LABEL = { ok: 'within SLA', warning: 'about to breach', breach: 'in breach', none: 'no SLA' } as const;

export function minutes(m: number): string {
  if (m < 60) return `${Math.round(m)} min`;
  if (m < 48 * 60) return `${Math.floor(m / 60)} h ${Math.round(m % 60)} min`;
  return `${Math.floor(m / 1440)} d ${Math.round((m % 1440) / 60)} h`;
}

/** Order statuses with a report: the AI agreement can be recorded. */
const REPORTED = new Set(['preliminary-report', 'final-report', 'amended']);

export function ReadingPage() {
  const { query: params, route, path } = useLocation();
  const { can } = useSession();
  const toast = useToast();
  const filter = { modality: params.modality || undefined, bodyRegion: params.bodyRegion || undefined, site: params.site || undefined, priority: params.priority || undefined, claim: params.claim || undefined, groupBy: params.groupBy || undefined };
  const list = useApi<{ items: Entry[]; groups?: { key: string; count: number; studies: string[] }[] }>(`/api/reading/worklist${query(filter)}`, { pollMs: 15_000 });
  const criticals = useApi<{ items: Critical[] }>(can('reading:read') ? '/api/reading/critical-results?state=notified' : null);
  const [busy, setBusy] = useState<string | null>(null);
  const act = async (uid: string, verb: 'claim' | 'unclaim' | 'release') => {
    setBusy(uid);
    try {
      await api(`/api/reading/worklist/${encodeURIComponent(uid)}/${verb}`, { method: 'POST', body: {} });
      toast.ok(verb === 'claim' ? 'Claimed' : verb === 'unclaim' ? 'Given back' : 'Claim released');
    } catch (error) {
      toast.error(error as Error);
    } finally {
      setBusy(null);
      list.reload();
    }
  };
  const open = async (uid: string) => {
    try {
      const entry = await api<{ viewerUrl: string }>(`/api/reading/worklist/${encodeURIComponent(uid)}`);
      location.assign(entry.viewerUrl);
    } catch (error) {
      toast.error(error as Error);
    }
  };
  // One click once the study is reported: the report confirms or overrides the AI flag (docs/ai.md "Agreement").
  const agree = async (uid: string, agreement: 'confirms' | 'overrides') => {
    setBusy(uid);
    try {
      await api(`/api/ai/studies/${encodeURIComponent(uid)}/agreement`, { method: 'POST', body: { agreement } });
      toast.ok(agreement === 'confirms' ? 'Recorded: the report confirms the AI flag' : 'Recorded: the report overrides the AI flag');
    } catch (error) {
      toast.error(error as Error);
    } finally {
      setBusy(null);
      list.reload();
    }
  };
  const acknowledge = async (id: number) => {
    try {
      await api(`/api/reading/critical-results/${id}/acknowledge`, { method: 'POST', body: {} });
      toast.ok(`Critical result ${id} acknowledged`);
    } catch (error) {
      toast.error(error as Error);
    }
    criticals.reload();
  };

  const columns: Column<Entry>[] = [
    { key: 'priority', title: 'Priority', value: (e) => e.priority, render: (e) => <Badge tone={PRIORITY_TONE[e.priority] ?? 'info'}>{e.priority}</Badge> },
    { key: 'triage', title: 'Triage', value: (e) => e.triage ?? '', render: (e) => (e.triage ? <>
      <Badge tone="warn">{e.triage}</Badge>
      {e.triage.startsWith('AI:') && can('ai:review') && REPORTED.has(e.status ?? '') && <div class="row-actions" role="group" aria-label={`Does the report agree with the AI flag of ${e.accessionNumber ?? e.studyInstanceUid}?`}>
        <button type="button" disabled={busy === e.studyInstanceUid} onClick={() => agree(e.studyInstanceUid, 'confirms')}>Report confirms</button>
        <button type="button" disabled={busy === e.studyInstanceUid} onClick={() => agree(e.studyInstanceUid, 'overrides')}>Report overrides</button>
      </div>}
    </> : <span class="muted">—</span>) },
    { key: 'patient', title: 'Patient', value: (e) => e.patientName ?? '', render: (e) => <>{personName(e.patientName)}<div class="muted mono">{e.patientId}</div></> },
    { key: 'procedure', title: 'Procedure', value: (e) => e.procedure ?? '', render: (e) => <>{e.procedure ?? '—'}<div class="muted mono">{e.accessionNumber}</div></> },
    { key: 'modality', title: 'Modality', value: (e) => e.modality ?? '' },
    { key: 'bodyRegion', title: 'Body region', value: (e) => e.bodyRegion ?? '' },
    { key: 'site', title: 'Site', value: (e) => e.site ?? '' },
    { key: 'waiting', title: 'Waiting', align: 'right', value: (e) => e.waitingMinutes, render: (e) => minutes(e.waitingMinutes) },
    { key: 'sla', title: 'SLA', value: (e) => e.sla.fraction ?? -1, render: (e) => (
      <span data-sla={e.sla.state}><Badge tone={SLA_TONE[e.sla.state]}>{SLA_LABEL[e.sla.state]}</Badge>{e.sla.minutes !== null && <div class="muted">{minutes(e.sla.minutes)}, due {formatTime(e.sla.dueAt)}</div>}</span>
    ) },
    { key: 'claim', title: 'Claimed by', value: (e) => e.claim?.name ?? '', render: (e) => (e.claim ? <>{e.claim.mine ? <strong>you</strong> : e.claim.name}<div class="muted">{formatTime(e.claim.at)}</div></> : <span class="muted">—</span>) },
    { key: 'actions', title: 'Actions', render: (e) => (
      <div class="row-actions">
        <button type="button" onClick={() => open(e.studyInstanceUid)} aria-label={`Open ${e.accessionNumber ?? e.studyInstanceUid} in the viewer`}>Open</button>
        {!e.claim && can('reading:claim') && <button type="button" class="primary" disabled={busy === e.studyInstanceUid} onClick={() => act(e.studyInstanceUid, 'claim')} aria-label={`Claim ${e.accessionNumber ?? e.studyInstanceUid}`}>Claim</button>}
        {e.claim?.mine && <button type="button" disabled={busy === e.studyInstanceUid} onClick={() => act(e.studyInstanceUid, 'unclaim')} aria-label={`Give back ${e.accessionNumber ?? e.studyInstanceUid}`}>Give back</button>}
        {e.claim && !e.claim.mine && can('reading:release') && <button type="button" disabled={busy === e.studyInstanceUid} onClick={() => act(e.studyInstanceUid, 'release')} aria-label={`Release ${e.accessionNumber ?? e.studyInstanceUid}`}>Release</button>}
      </div>
    ) },
  ];

  const items = list.data?.items ?? [];
  const groups = list.data?.groups ?? [{ key: '', count: items.length, studies: items.map((e) => e.studyInstanceUid) }];
  const waitingCriticals = criticals.data?.items ?? [];
  return (
    <>
      <PageHeader title="Reading worklist" subtitle="Studies ready to read, most urgent first" />
      <ReadingFilters params={params} onApply={(next) => route(`${path}${query({ ...params, ...next })}`)} />
      {waitingCriticals.length > 0 && (
        <section aria-label="Critical results waiting for acknowledgement" class="card">
          <h2>Critical results waiting for acknowledgement</h2>
          <ul>
            {waitingCriticals.map((c) => (
              <li key={c.id}>
                <Badge tone="bad">critical</Badge> {c.accessionNumber}: notified to {c.clinician ?? 'the clinician'} ({c.destination ?? 'no destination'}) at {formatTime(c.notifiedAt)}, escalates at {formatTime(c.acknowledgeBy)}{' '}
                {can('critical:ack') && <button type="button" onClick={() => acknowledge(c.id)}>Acknowledge</button>}
              </li>
            ))}
          </ul>
        </section>
      )}
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {!list.data && !list.error && <Loading label="Loading the worklist…" />}
      {list.data && !items.length && <Empty title="Nothing to read." />}
      {list.data && items.length > 0 && groups.map((g) => (
        <section key={g.key} aria-label={g.key ? `Group ${g.key}` : 'Worklist'}>
          {g.key && <h2>{g.key} <span class="muted">({g.count})</span></h2>}
          <DataTable label={g.key ? `Studies to read: ${g.key}` : 'Studies to read'} columns={columns} rows={items.filter((e) => g.studies.includes(e.studyInstanceUid))} rowKey={(e) => e.studyInstanceUid} />
        </section>
      ))}
    </>
  );
}

function ReadingFilters({ params, onApply }: { params: Record<string, string>; onApply: (next: Record<string, string | undefined>) => void }) {
  const form = useForm({ modality: params.modality ?? '', bodyRegion: params.bodyRegion ?? '', site: params.site ?? '', priority: params.priority ?? '', claim: params.claim ?? '', groupBy: params.groupBy ?? '' });
  const apply = async (v: Values) => onApply(Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x.trim() || undefined])));
  return (
    <form class="toolbar" noValidate onSubmit={form.submit(apply)} aria-label="Filter the worklist">
      <Field form={form} name="modality" label="Modality" size={5} />
      <Field form={form} name="bodyRegion" label="Body region" size={10} />
      <Field form={form} name="site" label="Site" size={10} />
      <Field form={form} name="priority" label="Priority" options={[{ value: '', label: 'Any' }, ...['stat', 'urgent', 'routine', 'screening'].map((p) => ({ value: p, label: p }))]} />
      <Field form={form} name="claim" label="Claimed" options={[{ value: '', label: 'Any' }, { value: 'unclaimed', label: 'Not claimed' }, { value: 'mine', label: 'By me' }, { value: 'others', label: 'By others' }]} />
      <Field form={form} name="groupBy" label="Group by" options={[{ value: '', label: 'No grouping' }, { value: 'modality', label: 'Modality' }, { value: 'bodyRegion', label: 'Body region' }, { value: 'site', label: 'Site' }]} />
      <button>Apply</button>
    </form>
  );
}
