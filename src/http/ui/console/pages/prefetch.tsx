/**
 * Prior prefetch (docs/prefetch.md): the rules, the orders searched with their status (found, in Atrium,
 * fetching, fetched, failed), and one order's priors with the state and reason of each. Read-only: rules
 * are managed over REST (`/api/prefetch/rules`).
 */
import { useLocation } from 'preact-iso/router';
import { query, useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { formatTime } from '../format.ts';

interface Rule {
  id: number; name: string; enabled: boolean; sources: string[]; method: string;
  order: { modalities: string[]; procedureCodes: string[]; bodyRegions: string[] };
  priors: { modalities: string[]; bodyRegions: string[]; lookbackDays: number; maxStudies: number };
}
interface Counts { found: number; present: number; fetching: number; fetched: number; failed: number }
interface OrderRow { id: number; accessionNumber: string; patientId: string; trigger: string; status: string; counts: Counts | null; searchReason: string | null; searchedAt: string | null; createdAt: string }
interface Prior { id: number; studyInstanceUid: string; source: string; rule: string; studyDate: string | null; studyDescription: string | null; modalities: string[]; state: string; reason: string | null; attempts: number; retrying: boolean }
interface Status { accessionNumber: string; status: string; search: { state: string; reason: string | null; retrying: boolean; attempts: number }; priors: Prior[] }

const any = (list: string[]) => (list.length ? list.join(', ') : 'any');
const date = (d: string | null) => (d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d ?? '');

export function PrefetchPage() {
  const { query: params } = useLocation();
  const rules = useApi<{ items: Rule[] }>('/api/prefetch/rules');
  const orders = useApi<{ items: OrderRow[]; total: number }>('/api/prefetch/orders?limit=100', { pollMs: 5000 });
  const selected = params.order || null;
  const status = useApi<Status>(selected ? `/api/prefetch/orders/${encodeURIComponent(selected)}` : null, { pollMs: 5000 });

  const ruleColumns: Column<Rule>[] = [
    { key: 'name', title: 'Rule', value: (r) => r.name },
    { key: 'enabled', title: 'Enabled', value: (r) => (r.enabled ? 'yes' : 'no') },
    { key: 'order', title: 'For orders', value: (r) => `modality ${any(r.order.modalities)}; region ${any(r.order.bodyRegions)}; code ${any(r.order.procedureCodes)}` },
    { key: 'priors', title: 'Priors', value: (r) => `${any(r.priors.modalities)} of ${any(r.priors.bodyRegions)}, last ${r.priors.lookbackDays} days, at most ${r.priors.maxStudies}` },
    { key: 'sources', title: 'Remote archives', value: (r) => `${r.sources.join(', ') || 'none (Atrium only)'} (C-${r.method.toUpperCase()})` },
  ];
  const orderColumns: Column<OrderRow>[] = [
    { key: 'accession', title: 'Accession', render: (o) => <a href={`/admin/prefetch${query({ order: o.accessionNumber })}`}>{o.accessionNumber}</a>, value: (o) => o.accessionNumber },
    { key: 'patient', title: 'Patient ID', value: (o) => o.patientId },
    { key: 'trigger', title: 'Trigger', value: (o) => o.trigger },
    { key: 'status', title: 'Status', render: (o) => <span class={`badge badge-${o.status === 'failed' ? 'bad' : o.status === 'fetched' ? 'ok' : 'info'}`}>{o.status}</span>, value: (o) => o.status },
    { key: 'found', title: 'Found', align: 'right', value: (o) => o.counts?.found ?? null },
    { key: 'present', title: 'In Atrium', align: 'right', value: (o) => o.counts?.present ?? null },
    { key: 'fetched', title: 'Fetched', align: 'right', value: (o) => o.counts?.fetched ?? null },
    { key: 'failed', title: 'Failed', align: 'right', value: (o) => o.counts?.failed ?? null },
    { key: 'searched', title: 'Searched', value: (o) => (o.searchedAt ? formatTime(o.searchedAt) : o.searchReason ?? '') },
  ];
  const priorColumns: Column<Prior>[] = [
    { key: 'date', title: 'Study date', value: (p) => date(p.studyDate) },
    { key: 'description', title: 'Study', render: (p) => <a href={`/admin/studies/${encodeURIComponent(p.studyInstanceUid)}`}>{p.studyDescription || p.studyInstanceUid}</a>, value: (p) => p.studyDescription ?? p.studyInstanceUid },
    { key: 'modalities', title: 'Modalities', value: (p) => p.modalities.join(', ') },
    { key: 'source', title: 'From', value: (p) => (p.source === 'local' ? 'Atrium' : p.source) },
    { key: 'rule', title: 'Rule', value: (p) => p.rule },
    { key: 'state', title: 'State', value: (p) => (p.retrying ? `${p.state} (retrying)` : p.state) },
    { key: 'reason', title: 'Reason', value: (p) => p.reason ?? '' },
  ];

  return (
    <>
      <PageHeader title="Prior prefetch" subtitle="Relevant earlier studies fetched for scheduled orders before the reading" />
      <section aria-labelledby="prefetch-rules">
        <h2 id="prefetch-rules">Rules</h2>
        {rules.error && <ErrorState error={rules.error} retry={rules.reload} />}
        {!rules.data && !rules.error && <Loading label="Loading the rules…" />}
        {rules.data && <DataTable label="Prefetch rules" columns={ruleColumns} rows={rules.data.items} rowKey={(r) => String(r.id)} empty={<Empty title="No prefetch rule: add one with POST /api/prefetch/rules." />} />}
      </section>
      <section aria-labelledby="prefetch-orders">
        <h2 id="prefetch-orders">Orders</h2>
        {orders.error && <ErrorState error={orders.error} retry={orders.reload} />}
        {!orders.data && !orders.error && <Loading label="Loading the orders…" />}
        {orders.data && <DataTable label="Orders searched for priors" columns={orderColumns} rows={orders.data.items} rowKey={(o) => String(o.id)} empty={<Empty title="No order searched for priors yet." />} />}
      </section>
      {selected && (
        <section aria-labelledby="prefetch-order">
          <h2 id="prefetch-order">Priors of order {selected}</h2>
          {status.error && <ErrorState error={status.error} retry={status.reload} />}
          {status.data && (
            <>
              <p>Status <strong>{status.data.status}</strong>; search {status.data.search.state}{status.data.search.reason ? `: ${status.data.search.reason}` : ''}{status.data.search.retrying ? ' (retrying)' : ''}</p>
              <DataTable label={`Priors of order ${selected}`} columns={priorColumns} rows={status.data.priors} rowKey={(p) => String(p.id)} empty={<Empty title="No relevant prior found." />} />
            </>
          )}
        </section>
      )}
    </>
  );
}
