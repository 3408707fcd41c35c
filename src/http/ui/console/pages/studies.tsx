/**
 * Studies: the day's list by default (a department works on today's studies), filters over the index,
 * and bulk actions on the selected rows: send to a peer, delete with confirmation. Retrieving from a
 * peer (query it, pick, retrieve) is the other door in.
 */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { api, query, useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Empty, ErrorState, PageHeader } from '../components/states.tsx';
import { ConfirmDialog, Dialog } from '../components/dialog.tsx';
import { Field, FormActions, FormError, useForm } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { useSession } from '../session.tsx';
import { dicomToday, formatBytes, formatDicomDate, personName } from '../format.ts';
import { RetrieveDialog } from './retrieve-dialog.tsx';

export interface Study {
  studyInstanceUid: string;
  studyDate: string | null;
  accessionNumber: string | null;
  studyDescription: string | null;
  patient: { patientId: string | null; patientName: string | null };
  modalitiesInStudy: string[];
  numberOfStudyRelatedSeries: number;
  numberOfStudyRelatedInstances: number;
  sizeBytes: number;
}

const FILTERS = ['patientName', 'patientId', 'accessionNumber', 'modality', 'studyDate'] as const;
const LIMIT = 50;
const RANGES = [
  { key: 'today', label: 'Today', date: () => dicomToday() },
  { key: 'week', label: 'Last 7 days', date: () => `${dicomToday(-6)}-${dicomToday()}` },
  { key: 'all', label: 'All dates', date: () => '' },
] as const;

export function StudiesPage() {
  const { query: params, route, path } = useLocation();
  const { can } = useSession();
  const toast = useToast();
  const range = params.range ?? (params.studyDate ? 'custom' : 'today');
  const studyDate = range === 'custom' ? params.studyDate : RANGES.find((r) => r.key === range)?.date() ?? '';
  const offset = Number(params.offset ?? 0);
  const list = useApi<{ items: Study[]; total: number }>(`/api/studies${query({
    patientName: params.patientName, patientId: params.patientId, accessionNumber: params.accessionNumber,
    modality: params.modality, studyDate, limit: LIMIT, offset,
  })}`);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [dialog, setDialog] = useState<'send' | 'delete' | 'retrieve' | null>(null);
  const [busy, setBusy] = useState(false);

  const navigate = (next: Record<string, string | undefined>) => {
    const merged: Record<string, string | undefined> = { ...params, offset: undefined, ...next };
    route(`${path}${query(merged)}`);
    setSelected(new Set());
  };
  const filters = useForm(Object.fromEntries(FILTERS.map((k) => [k, params[k] ?? ''])), (v) => ({
    studyDate: v.studyDate && !/^\d{8}(-\d{8})?$|^-\d{8}$|^\d{8}-$/.test(v.studyDate) ? 'A date (YYYYMMDD) or a range (YYYYMMDD-YYYYMMDD)' : undefined,
  }));

  const deleteSelected = async () => {
    setBusy(true);
    let done = 0;
    for (const uid of selected) {
      try {
        await api(`/api/studies/${encodeURIComponent(uid)}`, { method: 'DELETE' });
        done++;
      } catch (error) {
        toast.error(`Study ${uid} not deleted: ${(error as Error).message}`);
      }
    }
    setBusy(false);
    setDialog(null);
    if (done) toast.ok(`${done} ${done === 1 ? 'study' : 'studies'} deleted`);
    setSelected(new Set());
    list.reload();
  };

  const columns: Column<Study>[] = [
    { key: 'patient', title: 'Patient', value: (s) => personName(s.patient.patientName), render: (s) => <a href={`/admin/studies/${encodeURIComponent(s.studyInstanceUid)}`}>{personName(s.patient.patientName)}</a> },
    { key: 'patientId', title: 'Patient ID', value: (s) => s.patient.patientId },
    { key: 'date', title: 'Date', value: (s) => s.studyDate, render: (s) => formatDicomDate(s.studyDate) },
    { key: 'description', title: 'Description', value: (s) => s.studyDescription },
    { key: 'accession', title: 'Accession', value: (s) => s.accessionNumber },
    { key: 'modalities', title: 'Modalities', value: (s) => s.modalitiesInStudy.join(', ') },
    { key: 'series', title: 'Series', align: 'right', value: (s) => s.numberOfStudyRelatedSeries },
    { key: 'instances', title: 'Instances', align: 'right', value: (s) => s.numberOfStudyRelatedInstances },
    { key: 'size', title: 'Size', align: 'right', value: (s) => s.sizeBytes, render: (s) => formatBytes(s.sizeBytes) },
  ];
  const bulk = can('study:export') || can('study:delete');

  return (
    <>
      <PageHeader title="Studies" subtitle={list.data ? `${list.data.total} ${list.data.total === 1 ? 'study' : 'studies'}` : undefined}>
        {can('study:export') && <button type="button" onClick={() => setDialog('retrieve')}>Retrieve from a peer…</button>}
      </PageHeader>
      <form class="toolbar" onSubmit={filters.submit(async (v) => navigate({ ...v, range: v.studyDate ? 'custom' : params.range === 'custom' ? 'all' : params.range }))} role="search">
        <Field form={filters} name="patientName" label="Patient name" placeholder="Doe*" />
        <Field form={filters} name="patientId" label="Patient ID" />
        <Field form={filters} name="accessionNumber" label="Accession" />
        <Field form={filters} name="modality" label="Modality" size={6} placeholder="CT" />
        <Field form={filters} name="studyDate" label="Study date" placeholder="20240101-20241231" />
        <button class="primary">Search</button>
        <div class="chips" role="group" aria-label="Study date range">
          {RANGES.map((r) => (
            <button key={r.key} type="button" aria-pressed={range === r.key} onClick={() => { filters.set('studyDate', ''); navigate({ range: r.key, studyDate: undefined }); }}>{r.label}</button>
          ))}
        </div>
      </form>
      {bulk && (
        <div class="toolbar" aria-label="Bulk actions">
          <span class="muted">{selected.size} selected</span>
          {can('study:export') && <button type="button" disabled={selected.size === 0} onClick={() => setDialog('send')}>Send to a peer…</button>}
          {can('study:delete') && <button type="button" class="danger" disabled={selected.size === 0} onClick={() => setDialog('delete')}>Delete…</button>}
        </div>
      )}
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {list.data && (
        <DataTable
          label="Studies"
          columns={columns}
          rows={list.data.items}
          rowKey={(s) => s.studyInstanceUid}
          selection={bulk ? { selected, onChange: setSelected } : undefined}
          paging={{ total: list.data.total, limit: LIMIT, offset, onPage: (o) => navigate({ offset: String(o) }) }}
          empty={
            <Empty title={range === 'today' ? 'No study dated today.' : 'No study matches.'}>
              {range !== 'all' && <button type="button" onClick={() => navigate({ range: 'all', studyDate: undefined })}>Show all dates</button>}
            </Empty>
          }
        />
      )}
      <SendDialog open={dialog === 'send'} studies={[...selected]} onClose={() => setDialog(null)} onSent={() => { setDialog(null); setSelected(new Set()); }} />
      <ConfirmDialog open={dialog === 'delete'} title="Delete studies" confirmLabel={`Delete ${selected.size} ${selected.size === 1 ? 'study' : 'studies'}`} busy={busy} onConfirm={deleteSelected} onClose={() => setDialog(null)}>
        <p>The selected studies, their series and instances are removed from the archive and its storage. This cannot be undone.</p>
        <ul>{[...selected].slice(0, 10).map((uid) => <li key={uid} class="mono">{uid}</li>)}{selected.size > 10 && <li>and {selected.size - 10} more</li>}</ul>
      </ConfirmDialog>
      <RetrieveDialog open={dialog === 'retrieve'} onClose={() => setDialog(null)} />
    </>
  );
}

interface Peer { aeTitle: string; description?: string | null; operations?: string[] }

/** Sends the selected studies to one peer: one send job per study, followed on the Jobs page. */
function SendDialog({ open, studies, onClose, onSent }: { open: boolean; studies: string[]; onClose(): void; onSent(): void }) {
  const peers = useApi<{ items: Peer[] }>(open ? '/api/dicom/peers' : null);
  const toast = useToast();
  const form = useForm({ peer: '' }, (v) => ({ peer: v.peer ? undefined : 'Choose the peer to send to' }));
  const send = async (v: Record<string, string>) => {
    const jobs: number[] = [];
    for (const uid of studies) {
      const job = await api<{ id: number }>(`/api/dicom/peers/${encodeURIComponent(v.peer)}/send`, { method: 'POST', body: { studyInstanceUid: uid } });
      jobs.push(job.id);
    }
    toast.ok(`${jobs.length} send ${jobs.length === 1 ? 'job' : 'jobs'} queued to ${v.peer}`);
    form.reset();
    onSent();
  };
  const options = [{ value: '', label: 'Choose a peer' }, ...(peers.data?.items ?? []).map((p) => ({ value: p.aeTitle, label: p.description ? `${p.aeTitle} (${p.description})` : p.aeTitle }))];
  return (
    <Dialog open={open} title={`Send ${studies.length} ${studies.length === 1 ? 'study' : 'studies'}`} onClose={onClose}>
      {peers.error && <ErrorState error={peers.error} />}
      <form class="stack" onSubmit={form.submit(send)}>
        <Field form={form} name="peer" label="Destination" options={options} required />
        {peers.data?.items.length === 0 && <p class="muted">No peer is defined yet: add one on the Peers page.</p>}
        <FormError form={form} />
        <FormActions>
          <button type="button" onClick={onClose}>Cancel</button>
          <button class="primary" disabled={form.busy}>Send</button>
        </FormActions>
      </form>
    </Dialog>
  );
}
