/**
 * AI nodes (docs/ai.md): the registry with each node's clearance (or research mode), endpoint and state, and
 * its performance (processing time, results, positive rate, failures and timeouts, availability, radiologist
 * agreement); the results that matched no request. Read-only: nodes are managed over REST (`/api/ai/nodes`).
 */
import { useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { formatTime } from '../format.ts';

interface Clearance { kind: string; number: string | null; ceClass: string | null; indication: string; intendedUse: string; modalities: string[] }
interface NodeRow { id: number; name: string; vendor: string; product: string | null; version: string; mode: 'clinical' | 'research'; enabled: boolean; clearance: Clearance | null;
  endpoint: { type: 'dicom'; aeTitle: string } | { type: 'dicomweb'; destination: string } }
interface Metrics {
  id: number; node: string; research: boolean; timeoutMinutes: number;
  requests: { total: number; pending: number }; processingSeconds: { count: number; median: number | null; p90: number | null };
  results: number; resultsPerStudy: number | null; positiveRate: number | null; failures: number; timeouts: number; unmatchedResults: number;
  availability: { rate: number | null; lastError: string | null }; agreement: { confirms: number; overrides: number; rate: number | null; awaiting: number };
}
interface ResultRow { id: number; sopInstanceUid: string; studyInstanceUid: string; source: string; kind: string; reason: string | null; receivedAt: string }

const percent = (r: number | null) => (r === null ? '—' : `${Math.round(r * 100)} %`);
const seconds = (s: number | null) => (s === null ? '—' : s < 120 ? `${Math.round(s)} s` : `${(s / 60).toFixed(1)} min`);
const clearanceText = (c: Clearance | null) => (c ? `${c.kind}${c.number ? ` ${c.number}` : ''}${c.ceClass ? ` class ${c.ceClass}` : ''}: ${c.indication} (${c.modalities.join(', ')})` : 'none recorded');

export function AiPage() {
  const nodes = useApi<{ items: NodeRow[] }>('/api/ai/nodes');
  const metrics = useApi<{ items: Metrics[] }>('/api/ai/metrics', { pollMs: 15_000 });
  const unmatched = useApi<{ items: ResultRow[]; total: number }>('/api/ai/results?state=unmatched&limit=50');

  const nodeColumns: Column<NodeRow>[] = [
    { key: 'name', title: 'Node', value: (n) => n.name, render: (n) => <>{n.name}<div class="muted">{n.vendor}{n.product ? ` ${n.product}` : ''} {n.version}</div></> },
    { key: 'mode', title: 'Mode', value: (n) => n.mode, render: (n) => <Badge tone={n.mode === 'research' ? 'warn' : 'ok'}>{n.mode === 'research' ? 'research (results marked)' : 'clinical'}</Badge> },
    { key: 'clearance', title: 'Clearance', value: (n) => clearanceText(n.clearance) },
    { key: 'endpoint', title: 'Endpoint', value: (n) => (n.endpoint.type === 'dicom' ? `C-STORE to ${n.endpoint.aeTitle}` : `STOW-RS to ${n.endpoint.destination}`) },
    { key: 'enabled', title: 'State', value: (n) => (n.enabled ? 'enabled' : 'disabled'), render: (n) => <Badge tone={n.enabled ? 'ok' : 'muted'}>{n.enabled ? 'enabled' : 'disabled'}</Badge> },
  ];
  const metricColumns: Column<Metrics>[] = [
    { key: 'node', title: 'Node', value: (m) => m.node, render: (m) => <>{m.node}{m.research && <> <Badge tone="warn">research</Badge></>}</> },
    { key: 'requests', title: 'Studies sent', align: 'right', value: (m) => m.requests.total },
    { key: 'median', title: 'Processing (median / p90)', value: (m) => m.processingSeconds.median, render: (m) => `${seconds(m.processingSeconds.median)} / ${seconds(m.processingSeconds.p90)}` },
    { key: 'results', title: 'Results (per study)', align: 'right', value: (m) => m.results, render: (m) => `${m.results} (${m.resultsPerStudy ?? '—'})` },
    { key: 'positive', title: 'Positive rate', align: 'right', value: (m) => m.positiveRate, render: (m) => percent(m.positiveRate) },
    { key: 'failures', title: 'Failures', align: 'right', value: (m) => m.failures },
    { key: 'timeouts', title: 'Timeouts', align: 'right', value: (m) => m.timeouts, render: (m) => <span title={`no result within ${m.timeoutMinutes} min`}>{m.timeouts}</span> },
    { key: 'availability', title: 'Availability', align: 'right', value: (m) => m.availability.rate, render: (m) => <span title={m.availability.lastError ?? ''}>{percent(m.availability.rate)}</span> },
    { key: 'agreement', title: 'Radiologist agreement', value: (m) => m.agreement.rate,
      render: (m) => `${percent(m.agreement.rate)} (${m.agreement.confirms} confirmed, ${m.agreement.overrides} overridden, ${m.agreement.awaiting} awaiting)` },
    { key: 'unmatched', title: 'Unmatched results', align: 'right', value: (m) => m.unmatchedResults },
  ];
  const resultColumns: Column<ResultRow>[] = [
    { key: 'received', title: 'Received', value: (r) => r.receivedAt, render: (r) => formatTime(r.receivedAt) },
    { key: 'study', title: 'Study', value: (r) => r.studyInstanceUid, render: (r) => <span class="mono">{r.studyInstanceUid}</span> },
    { key: 'source', title: 'From', value: (r) => r.source },
    { key: 'kind', title: 'Kind', value: (r) => r.kind.toUpperCase() },
    { key: 'reason', title: 'Why not linked', value: (r) => r.reason ?? '' },
  ];

  return (
    <>
      <PageHeader title="AI nodes" subtitle="AI output is labelled AI and only ever raises a triage flag; it never finalizes anything" />
      <section aria-labelledby="ai-nodes">
        <h2 id="ai-nodes">Registry</h2>
        {nodes.error && <ErrorState error={nodes.error} retry={nodes.reload} />}
        {!nodes.data && !nodes.error && <Loading label="Loading the AI nodes…" />}
        {nodes.data && <DataTable label="AI nodes" columns={nodeColumns} rows={nodes.data.items} rowKey={(n) => String(n.id)} empty={<Empty title="No AI node: register one with POST /api/ai/nodes." />} />}
      </section>
      <section aria-labelledby="ai-metrics">
        <h2 id="ai-metrics">Performance</h2>
        {metrics.error && <ErrorState error={metrics.error} retry={metrics.reload} />}
        {metrics.data && <DataTable label="AI node performance" columns={metricColumns} rows={metrics.data.items} rowKey={(m) => String(m.id)} empty={<Empty title="No AI node yet." />} />}
      </section>
      <section aria-labelledby="ai-unmatched">
        <h2 id="ai-unmatched">Results that matched no request</h2>
        {unmatched.data && <DataTable label="Unmatched AI results" columns={resultColumns} rows={unmatched.data.items} rowKey={(r) => String(r.id)} empty={<Empty title="Every AI result was linked to its request." />} />}
      </section>
    </>
  );
}
