/**
 * Dose: the radiation dose events extracted from dose SRs (docs/dose.md) as a physicist reads them: for a
 * chosen quantity (CTDIvol, DLP, DAP, AGD), its distribution per acquisition protocol (median and 75th
 * percentile) against the protocol's reference level, the monthly median per protocol, and the studies
 * with the highest totals, linked to the study; filters on modality, station, protocol, dates and age
 * band; the events table as CSV.
 */
import { useLocation } from 'preact-iso/router';
import { query, useApi } from '../api.ts';
import { Chart } from '../components/chart.tsx';
import { DataTable, type Column } from '../components/table.tsx';
import { Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { Field, useForm, type Values } from '../components/form.tsx';

interface DoseEvent {
  id: number; reportId: number; studyInstanceUid: string; modality: string; stationName: string | null; studyDate: string | null;
  acquisitionProtocol: string | null; targetRegion: string | null; ctdivol: number | null; dlp: number | null; dap: number | null; agd: number | null;
}
interface DoseReport {
  id: number; studyInstanceUid: string; modality: string; stationName: string | null; studyDate: string | null; studyDescription: string | null;
  ageBand: string; totals: { dlpTotal: number | null; dapTotal: number | null; agdTotal: number | null };
}
interface Level { id: number; modality: string; quantity: string; protocol: string | null; bodyRegion: string | null; value: number; unit: string; example: boolean }

const QUANTITIES = {
  ctdivol: { label: 'CTDIvol', unit: 'mGy', level: 'ctdivol', pick: (e: DoseEvent) => e.ctdivol },
  dlp: { label: 'DLP', unit: 'mGy.cm', level: 'dlp-total', pick: (e: DoseEvent) => e.dlp },
  dap: { label: 'DAP', unit: 'Gy.cm2', level: 'dap-total', pick: (e: DoseEvent) => e.dap },
  agd: { label: 'AGD', unit: 'mGy', level: 'agd', pick: (e: DoseEvent) => e.agd },
} as const;
type QuantityKey = keyof typeof QUANTITIES;
const AGE_BANDS = ['0-1y', '1-5y', '5-10y', '10-15y', '15-18y', 'adult', 'unknown'];

/** The p-quantile of sorted values, linear between ranks (as spreadsheets' PERCENTILE.INC). */
export function quantile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const at = (sorted.length - 1) * p;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

const round = (v: number) => Number(v.toPrecision(4));

export function DosePage() {
  const { query: params, route, path } = useLocation();
  const filter = { modality: params.modality || undefined, station: params.station || undefined, protocol: params.protocol || undefined,
    from: params.from || undefined, to: params.to || undefined, ageBand: params.ageBand || undefined };
  const events = useApi<{ items: DoseEvent[]; total: number }>(`/api/quality/dose/events${query({ ...filter, limit: 1000 })}`);
  const highest = useApi<{ items: DoseReport[]; total: number }>(`/api/quality/dose/reports${query({ ...filter, order: 'highest', limit: 10 })}`);
  const levels = useApi<{ items: Level[] }>('/api/quality/dose/reference-levels');
  const navigate = (next: Record<string, string | undefined>) => route(`${path}${query({ ...params, ...next })}`);

  const items = events.data?.items ?? [];
  const available = (Object.keys(QUANTITIES) as QuantityKey[]).filter((k) => items.some((e) => QUANTITIES[k].pick(e) !== null));
  const quantity: QuantityKey = (params.quantity as QuantityKey) in QUANTITIES && available.includes(params.quantity as QuantityKey) ? params.quantity as QuantityKey : available[0] ?? 'ctdivol';
  const q = QUANTITIES[quantity];
  const measured = items.filter((e) => q.pick(e) !== null);
  const byProtocol = new Map<string, DoseEvent[]>();
  for (const e of measured) {
    const key = e.acquisitionProtocol ?? '(no protocol)';
    byProtocol.set(key, [...(byProtocol.get(key) ?? []), e]);
  }
  const protocols = [...byProtocol.keys()].sort((a, b) => byProtocol.get(b)!.length - byProtocol.get(a)!.length || a.localeCompare(b)).slice(0, 12);
  const drlOf = (protocol: string): number | null => {
    const evs = byProtocol.get(protocol)!;
    const candidates = (levels.data?.items ?? []).filter((l) => l.quantity === q.level && evs.some((e) => e.modality === l.modality));
    const exact = candidates.find((l) => l.protocol !== null && l.protocol.toLowerCase() === protocol.toLowerCase());
    const region = candidates.find((l) => l.protocol === null && l.bodyRegion !== null && evs.some((e) => e.targetRegion?.toLowerCase() === l.bodyRegion!.toLowerCase()));
    return (exact ?? region)?.value ?? null;
  };
  const stats = protocols.map((p) => {
    const values = byProtocol.get(p)!.map((e) => q.pick(e)!).sort((a, b) => a - b);
    return { protocol: p, n: values.length, median: round(quantile(values, 0.5)), p75: round(quantile(values, 0.75)), drl: drlOf(p) };
  });
  // The monthly median of the five protocols with the most events.
  const months = [...new Set(measured.map((e) => e.studyDate?.slice(0, 7)).filter((m): m is string => !!m))].sort();
  const trend = stats.slice(0, 5).map((s) => ({
    label: s.protocol,
    values: months.map((m) => {
      const values = byProtocol.get(s.protocol)!.filter((e) => e.studyDate?.startsWith(m)).map((e) => q.pick(e)!).sort((a, b) => a - b);
      return values.length ? round(quantile(values, 0.5)) : (null as unknown as number);
    }),
  }));

  const columns: Column<DoseReport>[] = [
    { key: 'study', title: 'Study', render: (r) => <a href={`/admin/studies/${encodeURIComponent(r.studyInstanceUid)}`}>{r.studyDescription || r.studyInstanceUid}</a>, value: (r) => r.studyDescription ?? r.studyInstanceUid },
    { key: 'date', title: 'Date', value: (r) => r.studyDate ?? '' },
    { key: 'modality', title: 'Modality', value: (r) => r.modality },
    { key: 'station', title: 'Station', value: (r) => r.stationName ?? '' },
    { key: 'age', title: 'Age band', value: (r) => r.ageBand },
    { key: 'dlp', title: 'DLP total (mGy.cm)', align: 'right', value: (r) => r.totals.dlpTotal },
    { key: 'dap', title: 'DAP total (Gy.cm2)', align: 'right', value: (r) => r.totals.dapTotal },
    { key: 'agd', title: 'AGD total (mGy)', align: 'right', value: (r) => r.totals.agdTotal },
  ];

  return (
    <>
      <PageHeader title="Dose" subtitle="Radiation dose from the dose reports the archive received">
        <a class="button-link" href={`/api/quality/dose/events.csv${query(filter)}`} download>Export events (CSV)</a>
      </PageHeader>
      <DoseFilters params={params} onApply={navigate} />
      {events.error && <ErrorState error={events.error} retry={events.reload} />}
      {!events.data && !events.error && <Loading label="Loading the dose events…" />}
      {events.data && !measured.length && <Empty title="No dose events match these filters." />}
      {events.data && measured.length > 0 && (
        <>
          <div class="toolbar" role="group" aria-label="Quantity">
            {available.map((k) => (
              <button key={k} type="button" aria-pressed={k === quantity} onClick={() => navigate({ quantity: k })}>{QUANTITIES[k].label}</button>
            ))}
          </div>
          <section class="charts" aria-label="Charts">
            <div class="card">
              <Chart title={`${q.label} per protocol (${q.unit}): reference level, 75th percentile, median`} x={stats.map((s) => s.protocol)}
                series={[
                  { label: 'reference level', values: stats.map((s) => s.drl ?? (null as unknown as number)) },
                  { label: '75th percentile', values: stats.map((s) => s.p75) },
                  { label: 'median', values: stats.map((s) => s.median) },
                ]} />
            </div>
            {months.length > 0 && (
              <div class="card">
                <Chart title={`${q.label} monthly median per protocol (${q.unit})`} x={months.map((m) => Date.parse(`${m}-01T00:00:00Z`) / 1000)} series={trend} />
              </div>
            )}
          </section>
          <p data-testid="dose-summary">{measured.length} events with {q.label}{events.data.total > items.length ? ` (the ${items.length} most recent of ${events.data.total})` : ''}; {stats.filter((s) => s.drl !== null && s.p75 > s.drl).length} protocols with a 75th percentile over their reference level.</p>
        </>
      )}
      <section aria-label="Highest doses">
        <h2>Highest doses</h2>
        {highest.data && <DataTable label="Studies with the highest doses" columns={columns} rows={highest.data.items} rowKey={(r) => String(r.id)} empty={<Empty title="No dose reports." />} />}
      </section>
    </>
  );
}

function DoseFilters({ params, onApply }: { params: Record<string, string>; onApply: (next: Record<string, string | undefined>) => void }) {
  const form = useForm({
    modality: params.modality ?? '', station: params.station ?? '', protocol: params.protocol ?? '', from: params.from ?? '', to: params.to ?? '', ageBand: params.ageBand ?? '',
  }, (v) => ({
    from: v.from && !/^\d{4}-?\d{2}-?\d{2}$/.test(v.from) ? 'A date as YYYY-MM-DD' : undefined,
    to: v.to && !/^\d{4}-?\d{2}-?\d{2}$/.test(v.to) ? 'A date as YYYY-MM-DD' : undefined,
  }));
  const apply = async (v: Values) => onApply(Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x.trim() || undefined])));
  return (
    <form class="toolbar" noValidate onSubmit={form.submit(apply)} aria-label="Filter the dose events">
      <Field form={form} name="modality" label="Modality" size={5} />
      <Field form={form} name="station" label="Station" size={12} />
      <Field form={form} name="protocol" label="Protocol" size={14} />
      <Field form={form} name="from" label="From" placeholder="YYYY-MM-DD" size={10} />
      <Field form={form} name="to" label="To" placeholder="YYYY-MM-DD" size={10} />
      <Field form={form} name="ageBand" label="Age band" options={[{ value: '', label: 'Any age' }, ...AGE_BANDS.map((b) => ({ value: b, label: b }))]} />
      <button>Apply</button>
    </form>
  );
}
