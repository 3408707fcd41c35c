/**
 * Turnaround times (docs/reading.md): exam complete -> final report (or another interval) per modality and
 * priority over time, median and 90th percentile against the SLA, one chart per group; the summary per
 * modality, priority, radiologist and site; the studies in breach listed.
 */
import { useLocation } from 'preact-iso/router';
import { query, useApi } from '../api.ts';
import { Chart } from '../components/chart.tsx';
import { DataTable, type Column } from '../components/table.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { Field, useForm, type Values } from '../components/form.tsx';
import { formatTime } from '../format.ts';
import { minutes } from './reading.tsx';

interface Stats { count: number; median: number | null; p90: number | null }
interface Group { key: string; cases: number; breaches: number; intervals: Record<string, Stats> }
interface Series { modality: string | null; priority: string; slaMinutes: number | null; points: ({ at: string } & Stats)[] }
interface Case { accessionNumber: string; priority: string; modality: string | null; site: string | null; radiologist: string | null; minutes: Record<string, number | null>; sla: { state: string; minutes: number | null; dueAt: string | null; elapsedMinutes: number } | null }
interface Tat { interval: string; summary: Record<'modality' | 'priority' | 'radiologist' | 'site', Group[]>; series: Series[]; breaches: Case[]; atRisk: Case[] }

const INTERVALS: Record<string, string> = {
  examCompleteToFinal: 'Exam complete → final report', examCompleteToPreliminary: 'Exam complete → preliminary report',
  examCompleteToFirstImage: 'Exam complete → first image', orderToExamStart: 'Order → exam start',
};
const round = (v: number | null) => (v === null ? '' : Number(v.toFixed(1)));

export function TurnaroundPage() {
  const { query: params, route, path } = useLocation();
  const filter = { from: params.from || undefined, to: params.to || undefined, bucket: params.bucket || 'day', interval: params.interval || undefined, modality: params.modality || undefined, priority: params.priority || undefined };
  const tat = useApi<Tat>(`/api/reading/tat${query(filter)}`);
  const data = tat.data;
  const interval = data?.interval ?? 'examCompleteToFinal';
  const summaryColumns = (title: string): Column<Group>[] => [
    { key: 'key', title, value: (g) => g.key },
    { key: 'n', title: 'Studies', align: 'right', value: (g) => g.intervals[interval]?.count ?? 0 },
    { key: 'median', title: 'Median (min)', align: 'right', value: (g) => round(g.intervals[interval]?.median ?? null) },
    { key: 'p90', title: '90th percentile (min)', align: 'right', value: (g) => round(g.intervals[interval]?.p90 ?? null) },
    { key: 'breaches', title: 'SLA breaches', align: 'right', value: (g) => g.breaches },
  ];
  const breachColumns: Column<Case>[] = [
    { key: 'acc', title: 'Accession', value: (c) => c.accessionNumber },
    { key: 'priority', title: 'Priority', value: (c) => c.priority },
    { key: 'modality', title: 'Modality', value: (c) => c.modality ?? '' },
    { key: 'site', title: 'Site', value: (c) => c.site ?? '' },
    { key: 'radiologist', title: 'Radiologist', value: (c) => c.radiologist ?? '' },
    { key: 'sla', title: 'SLA', value: (c) => c.sla?.minutes ?? 0, render: (c) => (c.sla?.minutes ? minutes(c.sla.minutes) : '—') },
    { key: 'elapsed', title: 'Complete → final', align: 'right', value: (c) => c.sla?.elapsedMinutes ?? 0, render: (c) => <>{minutes(c.sla?.elapsedMinutes ?? 0)} {c.minutes.examCompleteToFinal === null && <Badge tone="bad">not reported</Badge>}</> },
    { key: 'due', title: 'Due', value: (c) => c.sla?.dueAt ?? '', render: (c) => formatTime(c.sla?.dueAt) },
  ];
  return (
    <>
      <PageHeader title="Turnaround times" subtitle={INTERVALS[interval]} />
      <TatFilters params={params} onApply={(next) => route(`${path}${query({ ...params, ...next })}`)} />
      {tat.error && <ErrorState error={tat.error} retry={tat.reload} />}
      {!data && !tat.error && <Loading label="Loading the turnaround times…" />}
      {data && !data.series.length && <Empty title="No turnaround times in this period." />}
      {data && data.series.length > 0 && (
        <section class="charts" aria-label="Charts">
          {data.series.slice(0, 8).map((s) => (
            <div class="card" key={`${s.modality}-${s.priority}`}>
              <Chart title={`${s.modality ?? '—'} ${s.priority}: median, 90th percentile${s.slaMinutes ? ` and SLA (${minutes(s.slaMinutes)})` : ''}, minutes`}
                x={s.points.map((p) => Date.parse(p.at) / 1000)}
                series={[
                  { label: 'median', values: s.points.map((p) => round(p.median) as number) },
                  { label: '90th percentile', values: s.points.map((p) => round(p.p90) as number) },
                  ...(s.slaMinutes ? [{ label: 'SLA', values: s.points.map(() => s.slaMinutes!) }] : []),
                ]} />
            </div>
          ))}
        </section>
      )}
      {data && (
        <>
          <section aria-label="Breaches">
            <h2>In breach <span class="muted">({data.breaches.length})</span>{data.atRisk.length > 0 && <> · <Badge tone="warn">{data.atRisk.length} about to breach</Badge></>}</h2>
            <DataTable label="Studies in breach of their SLA" columns={breachColumns} rows={data.breaches} rowKey={(c) => c.accessionNumber} empty={<Empty title="No breaches." />} />
          </section>
          {(['modality', 'priority', 'radiologist', 'site'] as const).map((d) => (
            <section key={d} aria-label={`Per ${d}`}>
              <h2>Per {d}</h2>
              <DataTable label={`Turnaround per ${d}`} columns={summaryColumns(d[0].toUpperCase() + d.slice(1))} rows={data.summary[d]} rowKey={(g) => g.key} />
            </section>
          ))}
        </>
      )}
    </>
  );
}

function TatFilters({ params, onApply }: { params: Record<string, string>; onApply: (next: Record<string, string | undefined>) => void }) {
  const form = useForm({ from: params.from ?? '', to: params.to ?? '', bucket: params.bucket ?? 'day', interval: params.interval ?? 'examCompleteToFinal', modality: params.modality ?? '', priority: params.priority ?? '' }, (v) => ({
    from: v.from && !/^\d{4}-\d{2}-\d{2}$/.test(v.from) ? 'A date as YYYY-MM-DD' : undefined,
    to: v.to && !/^\d{4}-\d{2}-\d{2}$/.test(v.to) ? 'A date as YYYY-MM-DD' : undefined,
  }));
  const apply = async (v: Values) => onApply(Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x.trim() || undefined])));
  return (
    <form class="toolbar" noValidate onSubmit={form.submit(apply)} aria-label="Filter the turnaround times">
      <Field form={form} name="from" label="From" placeholder="YYYY-MM-DD" size={10} />
      <Field form={form} name="to" label="To" placeholder="YYYY-MM-DD" size={10} />
      <Field form={form} name="bucket" label="Per" options={[{ value: 'hour', label: 'hour' }, { value: 'day', label: 'day' }, { value: 'week', label: 'week' }]} />
      <Field form={form} name="interval" label="Interval" options={Object.entries(INTERVALS).map(([value, label]) => ({ value, label }))} />
      <Field form={form} name="modality" label="Modality" size={5} />
      <Field form={form} name="priority" label="Priority" options={[{ value: '', label: 'Any' }, ...['stat', 'urgent', 'routine', 'screening'].map((p) => ({ value: p, label: p }))]} />
      <button>Apply</button>
    </form>
  );
}
