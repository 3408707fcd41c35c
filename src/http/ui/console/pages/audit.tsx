/**
 * Audit (audit:read): the trail of who did what to which patient data, newest first, searched by time
 * range, user, patient, study, action, interface and outcome (the filters live in the address, so a
 * search can be bookmarked or sent), each record's details on demand, and downloads of the matching
 * records as FHIR AuditEvents, NDJSON or DICOM audit messages carrying the same filters.
 */
import './audit.css';
import { Fragment } from 'preact';
import { useLayoutEffect } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { query, useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { Field, FormActions, useForm, type Values } from '../components/form.tsx';
import { useSession } from '../session.tsx';
import { formatTime } from '../format.ts';
import { ACTION_LABELS, AUDIT_ACTIONS, AUDIT_INTERFACES, AUDIT_OUTCOMES, EXPORTS } from './audit-vocabulary.ts';

interface NetworkEnd { address?: string; aeTitle?: string; port?: number }
interface StudyRef { studyInstanceUid: string; patientId?: string | null; accessionNumber?: string | null; seriesInstanceUids?: string[]; sopClassUids?: string[]; numberOfInstances?: number | null }

export interface AuditRecord {
  seq: number;
  id: string;
  time: string;
  principal: { kind: string; id: string | null; displayName: string | null; roles: string[] };
  action: string;
  interface: string;
  origin: NetworkEnd | null;
  destination: NetworkEnd | null;
  patientIds: string[];
  studies: StudyRef[];
  query: string | null;
  outcome: string;
  outcomeReason: string | null;
  detail: string | null;
  sourceId: string;
}

/** The filters of GET /api/audit and /api/audit/export, as named in the address. */
const FILTERS = ['from', 'to', 'user', 'patientId', 'studyInstanceUid', 'action', 'interface', 'outcome'] as const;
const LIMIT = 50;

const pad = (n: number) => String(n).padStart(2, '0');
/** An ISO instant as a datetime-local value, in the browser's time zone. */
function localOf(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
/** A datetime-local value (the browser's time zone) as an ISO instant. */
function isoOf(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

const RANGES = [
  { label: 'Last hour', ms: 3_600_000 },
  { label: 'Last 24 hours', ms: 86_400_000 },
  { label: 'Last 7 days', ms: 7 * 86_400_000 },
] as const;

const OUTCOME_TONE: Record<string, 'ok' | 'warn' | 'bad'> = { success: 'ok', 'minor-failure': 'warn', 'serious-failure': 'bad', 'major-failure': 'bad' };

function options(values: readonly string[], any: string, label: (v: string) => string = (v) => v) {
  return [{ value: '', label: any }, ...values.map((v) => ({ value: v, label: label(v) }))];
}

function endOf(end: NetworkEnd | null): string {
  if (!end) return '';
  return [end.aeTitle, end.address && (end.port ? `${end.address}:${end.port}` : end.address)].filter(Boolean).join(' @ ');
}

export function AuditPage() {
  const { query: params, route, path } = useLocation();
  const { can } = useSession();
  const offset = Number(params.offset ?? 0) || 0;
  const limit = Number(params.limit ?? LIMIT) || LIMIT;
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params[k] ?? ''])) as Record<(typeof FILTERS)[number], string>;
  const list = useApi<{ items: AuditRecord[]; total: number }>(`/api/audit${query({ ...filters, limit, offset })}`);
  const exportQuery = (format: string) => `/api/audit/export${query({ format, ...filters })}`;
  const filtered = FILTERS.some((k) => filters[k]);

  const navigate = (next: Record<string, string | undefined>) => route(`${path}${query({ ...params, offset: undefined, ...next })}`);
  const form = useForm(
    { ...filters, from: localOf(filters.from), to: localOf(filters.to) },
    (v) => ({
      to: v.from && v.to && isoOf(v.from)! >= isoOf(v.to)! ? 'The end of the range must come after its start' : undefined,
    }),
  );
  // The address is the truth: a link (a user's name, a patient) or Back changes it, the form follows
  // (before the browser paints, so that nothing typed in between is lost).
  const current = JSON.stringify(filters);
  useLayoutEffect(() => { form.reset({ ...filters, from: localOf(filters.from), to: localOf(filters.to) }); }, [current]);
  const search = async (v: Values) => {
    navigate({ ...Object.fromEntries(FILTERS.map((k) => [k, v[k]?.trim() || undefined])), from: isoOf(v.from), to: isoOf(v.to) });
  };
  const clear = () => route(path);
  const lastRange = (ms: number) => {
    const from = new Date(Date.now() - ms).toISOString();
    navigate({ from, to: undefined });
  };
  const filterLink = (next: Record<string, string>) => `${path}${query({ ...filters, ...next })}`;

  const columns: Column<AuditRecord>[] = [
    { key: 'time', title: 'Time', value: (r) => r.time, render: (r) => <time class="nowrap" dateTime={r.time} title={r.time}>{formatTime(r.time)}</time> },
    {
      key: 'who', title: 'Who', value: (r) => r.principal.displayName ?? r.principal.id ?? '',
      render: (r) => {
        const p = r.principal;
        const name = p.displayName ?? p.id ?? 'anonymous';
        return (
          <>
            {p.id ? <a href={filterLink({ user: p.id })} title={`Only the records of ${p.id}`}>{name}</a> : <span>{name}</span>}
            <div class="muted small">{p.kind}{p.id && p.id !== name ? ` ${p.id}` : ''}{p.roles.length ? ` · ${p.roles.join(', ')}` : ''}</div>
          </>
        );
      },
    },
    { key: 'action', title: 'Action', value: (r) => r.action, render: (r) => <Badge tone={r.action === 'delete' || r.action === 'login-failed' ? 'warn' : 'info'}>{r.action}</Badge> },
    {
      key: 'outcome', title: 'Outcome', value: (r) => r.outcome,
      render: (r) => <><Badge tone={OUTCOME_TONE[r.outcome] ?? 'bad'}>{r.outcome}</Badge>{r.outcomeReason && <div class="muted small reason">{r.outcomeReason}</div>}</>,
    },
    { key: 'interface', title: 'Interface', value: (r) => r.interface },
    {
      key: 'subject', title: 'Patient / study', value: (r) => r.patientIds[0] ?? r.studies[0]?.studyInstanceUid ?? '',
      render: (r) => (r.patientIds.length === 0 && r.studies.length === 0 ? <span class="muted">—</span> : (
        <div class="subject">
          {r.patientIds.map((id) => <div key={id}>Patient <a href={filterLink({ patientId: id })}>{id}</a></div>)}
          {r.studies.map((s) => (
            <div key={s.studyInstanceUid} class="mono uid">
              {can('study:read') ? <a href={`/admin/studies/${encodeURIComponent(s.studyInstanceUid)}`}>{s.studyInstanceUid}</a> : s.studyInstanceUid}
            </div>
          ))}
        </div>
      )),
    },
    { key: 'client', title: 'Client', value: (r) => endOf(r.origin), render: (r) => <span class="mono">{endOf(r.origin) || '—'}</span> },
    { key: 'details', title: 'Details', render: (r) => <Details record={r} /> },
  ];

  return (
    <>
      <PageHeader title="Audit" subtitle={list.data ? `${list.data.total} ${list.data.total === 1 ? 'record' : 'records'}${filtered ? ' match' : ''}, newest first` : 'Who did what to which patient data'}>
        <button type="button" onClick={list.reload} disabled={list.loading}>Refresh</button>
      </PageHeader>
      <form class="toolbar audit-filters" role="search" aria-label="Audit records" noValidate onSubmit={form.submit(search)}>
        <Field form={form} name="from" label="From" type="datetime-local" />
        <Field form={form} name="to" label="To" type="datetime-local" hint="Excluded; your time zone." />
        <Field form={form} name="user" label="User" autocomplete="off" hint="User name, API key id or AE title, exactly." />
        <Field form={form} name="patientId" label="Patient ID" autocomplete="off" />
        <Field form={form} name="studyInstanceUid" label="Study Instance UID" autocomplete="off" />
        <Field form={form} name="action" label="Action" options={options(AUDIT_ACTIONS, 'Any action', (a) => ACTION_LABELS[a as keyof typeof ACTION_LABELS] ?? a)} />
        <Field form={form} name="interface" label="Interface" options={options(AUDIT_INTERFACES, 'Any interface')} />
        <Field form={form} name="outcome" label="Outcome" options={options(AUDIT_OUTCOMES, 'Any outcome')} />
        <FormActions>
          <button type="button" onClick={clear} disabled={!filtered}>Clear</button>
          <button class="primary" disabled={form.busy}>Search</button>
        </FormActions>
      </form>
      <div class="toolbar audit-bar">
        <div class="chips" role="group" aria-label="Time range">
          {RANGES.map((r) => <button key={r.label} type="button" onClick={() => lastRange(r.ms)}>{r.label}</button>)}
        </div>
        <div class="exports" role="group" aria-label="Export the matching records">
          <span class="muted">Export{filtered ? ' the matching records' : ' all records'}:</span>
          {EXPORTS.map((e) => <a key={e.format} class="button-link" href={exportQuery(e.format)} download={e.file}>{e.label}</a>)}
        </div>
      </div>
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {!list.data && !list.error && <Loading label="Loading the audit trail…" />}
      {list.data && (
        <DataTable
          label="Audit records"
          columns={columns}
          rows={list.data.items}
          rowKey={(r) => r.id}
          paging={{ total: list.data.total, limit, offset, onPage: (o) => navigate({ offset: String(o) }) }}
          empty={
            <Empty title={filtered ? 'No audit record matches.' : 'The audit trail is empty.'}>
              {filtered && <button type="button" onClick={clear}>Clear the filters</button>}
            </Empty>
          }
        />
      )}
    </>
  );
}

/** The rest of a record, on demand (a native disclosure: keyboard and screen readers know it). */
function Details({ record: r }: { record: AuditRecord }) {
  return (
    <details class="audit-details">
      <summary>Details<span class="visually-hidden"> of the {r.action} record of {formatTime(r.time)}</span></summary>
      <dl class="props">
        {r.detail && <><dt>Request</dt><dd class="mono">{r.detail}</dd></>}
        {r.query && <><dt>Query</dt><dd class="mono">{r.query}</dd></>}
        {r.outcomeReason && <><dt>Reason</dt><dd>{r.outcomeReason}</dd></>}
        {r.destination && <><dt>Destination</dt><dd class="mono">{endOf(r.destination)}</dd></>}
        {r.studies.map((s) => (
          <Fragment key={s.studyInstanceUid}>
            <dt>Study</dt>
            <dd>
              <span class="mono">{s.studyInstanceUid}</span>
              {s.accessionNumber && <> · accession {s.accessionNumber}</>}
              {s.numberOfInstances != null && <> · {s.numberOfInstances} instances</>}
              {s.seriesInstanceUids?.length ? <> · {s.seriesInstanceUids.length} series</> : null}
            </dd>
          </Fragment>
        ))}
        <dt>Roles</dt><dd>{r.principal.roles.join(', ') || '—'}</dd>
        <dt>Record</dt><dd class="mono">{r.id} (#{r.seq})</dd>
        <dt>Written by</dt><dd>{r.sourceId}</dd>
      </dl>
    </details>
  );
}
