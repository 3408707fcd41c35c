/**
 * Dashboard: what an administrator glances at: volume per day and per modality, storage and its growth,
 * the ingest rate of the last hour (refreshed while the page is open), queues, failures, quarantine and
 * the health of each part, from GET /api/dashboard.
 */
import './dashboard.css';
import { useApi } from '../api.ts';
import { Chart } from '../components/chart.tsx';
import { Badge, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { formatBytes, formatTime } from '../format.ts';

export interface Dashboard {
  generatedAt: string;
  days: { date: string; studies: number; instances: number; bytes: number }[];
  modalities: { modality: string | null; studies: number; instances: number; bytes: number }[];
  storage: { bytes: number; instances: number; series: number; studies: number; patients: number; blobs: string; growth: { date: string; bytes: number }[] };
  ingest: { lastMinute: number; lastHour: number; perMinute: { minute: string; instances: number }[] };
  jobs: { byState: Record<string, number>; recentFailures: { id: number; type: string; error: string | null; updatedAt: string }[] };
  quarantine: { total: number };
  events: { backlog: number; stuck: number };
  health: { name: string; status: 'ok' | 'degraded' | 'down'; detail: string }[];
}

const seconds = (iso: string) => Math.floor(new Date(iso.length === 10 ? `${iso}T00:00:00Z` : iso).getTime() / 1000);
const count = (n: number) => n.toLocaleString();

function Kpi({ label, value, href, tone }: { label: string; value: string; href?: string; tone?: 'bad' | 'warn' }) {
  const body = <><span class="value">{value}</span><span class="label">{label}</span></>;
  return <div class={`card kpi${tone ? ` kpi-${tone}` : ''}`}>{href ? <a href={href} class="kpi-link">{body}</a> : body}</div>;
}

export function DashboardPage() {
  const dash = useApi<Dashboard>('/api/dashboard?days=30', { pollMs: 10_000 });
  if (dash.error && !dash.data) return <><PageHeader title="Dashboard" /><ErrorState error={dash.error} retry={dash.reload} /></>;
  if (!dash.data) return <><PageHeader title="Dashboard" /><Loading /></>;
  const d = dash.data;
  const days = d.days.map((x) => seconds(x.date));
  const failed = d.jobs.byState.failed ?? 0;
  const inProgress = (d.jobs.byState.queued ?? 0) + (d.jobs.byState.running ?? 0);
  return (
    <>
      <PageHeader title="Dashboard" subtitle={<>Updated {formatTime(d.generatedAt)}{dash.error && <> · <span class="field-error">last refresh failed: {dash.error.message}</span></>}</>} />
      <section class="grid kpis" aria-label="Key figures">
        <Kpi label="studies" value={count(d.storage.studies)} href="/admin/studies?range=all" />
        <Kpi label="instances" value={count(d.storage.instances)} />
        <Kpi label={`stored (${d.storage.blobs})`} value={formatBytes(d.storage.bytes)} />
        <Kpi label="instances in the last hour" value={count(d.ingest.lastHour)} />
        <Kpi label="jobs queued or running" value={count(inProgress)} href="/admin/jobs" />
        <Kpi label="failed jobs" value={count(failed)} href="/admin/jobs?state=failed" tone={failed ? 'bad' : undefined} />
        <Kpi label="in quarantine" value={count(d.quarantine.total)} href="/admin/quarantine" tone={d.quarantine.total ? 'warn' : undefined} />
        <Kpi label="events waiting for their handlers" value={count(d.events.backlog)} tone={d.events.stuck ? 'warn' : undefined} />
      </section>

      <section aria-label="Service health">
        <h2>Health</h2>
        <ul class="health">
          {d.health.map((h) => (
            <li key={h.name} class="card">
              <Badge tone={h.status === 'ok' ? 'ok' : h.status === 'degraded' ? 'warn' : 'bad'}>{h.status}</Badge>{' '}
              <strong>{h.name}</strong> <span class="muted">{h.detail}</span>
            </li>
          ))}
        </ul>
      </section>

      <section class="grid-wide charts" aria-label="Charts">
        <div class="card"><Chart title="Instances received per day" x={days} series={[{ label: 'instances', values: d.days.map((x) => x.instances), bars: true }]} /></div>
        <div class="card"><Chart title="Studies received per day" x={days} series={[{ label: 'studies', values: d.days.map((x) => x.studies), bars: true }]} /></div>
        <div class="card"><Chart title="Storage used" x={d.storage.growth.map((g) => seconds(g.date))} series={[{ label: 'stored', values: d.storage.growth.map((g) => g.bytes) }]} format={formatBytes} /></div>
        <div class="card"><Chart title="Ingest rate, last hour (instances per minute)" x={d.ingest.perMinute.map((m) => seconds(m.minute))} series={[{ label: 'instances', values: d.ingest.perMinute.map((m) => m.instances) }]} /></div>
        <div class="card"><Chart title="Instances per modality" x={d.modalities.map((m) => m.modality ?? '—')} series={[{ label: 'instances', values: d.modalities.map((m) => m.instances) }]} /></div>
        <div class="card"><Chart title="Jobs by state" x={Object.keys(d.jobs.byState)} series={[{ label: 'jobs', values: Object.values(d.jobs.byState) }]} /></div>
      </section>

      {d.jobs.recentFailures.length > 0 && (
        <section aria-label="Recent job failures">
          <h2>Recent job failures</h2>
          <ul class="failures">
            {d.jobs.recentFailures.map((f) => (
              <li key={f.id}><a href={`/admin/jobs?job=${f.id}`}>Job {f.id}</a> ({f.type}), {formatTime(f.updatedAt)}: <span class="field-error">{f.error}</span></li>
            ))}
          </ul>
        </section>
      )}
    </>
  );
}
