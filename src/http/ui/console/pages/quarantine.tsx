/**
 * Quarantine: what was received but not archived, with the reason. Per object: a dump of what could be
 * read of its header, download of the bytes as received, release (ingest again, after the cause was
 * fixed, optionally setting attributes such as a missing PatientID) and delete.
 */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { api, query, useApi } from '../api.ts';
import { DataTable } from '../components/table.tsx';
import { ConfirmDialog, Dialog } from '../components/dialog.tsx';
import { Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { FormActions, FormError, useForm } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { formatBytes, formatTime } from '../format.ts';

export interface Quarantined {
  id: number;
  source: string;
  reasonCode: string;
  reason: string;
  element: string | null;
  byteOffset: number | null;
  sopInstanceUid: string | null;
  originalName: string | null;
  receivedAt: string;
  sizeBytes: number;
}

interface Dump { elements: { tag: string; vr: string; keyword: string; length: number; value: string; depth?: number }[]; stoppedAt?: string }

const LIMIT = 50;

export function QuarantinePage() {
  const { query: params, route, path } = useLocation();
  const offset = Number(params.offset ?? 0);
  const list = useApi<{ items: Quarantined[]; total: number }>(`/api/quarantine${query({ limit: LIMIT, offset })}`);
  const selectedId = params.id ? Number(params.id) : null;
  const open = (id: number | null) => route(`${path}${query({ ...params, id: id ?? undefined })}`);
  return (
    <>
      <PageHeader title="Quarantine" subtitle={list.data ? `${list.data.total} ${list.data.total === 1 ? 'object' : 'objects'} received but not archived` : undefined} />
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {list.data && (
        <DataTable
          label="Quarantined objects"
          rows={list.data.items}
          rowKey={(q) => String(q.id)}
          paging={{ total: list.data.total, limit: LIMIT, offset, onPage: (o) => route(`${path}${query({ offset: o })}`) }}
          empty={<Empty title="Nothing in quarantine.">Objects that cannot be archived as received (truncated, invalid, conflicting) are kept here with the reason.</Empty>}
          columns={[
            { key: 'received', title: 'Received', value: (q) => q.receivedAt, render: (q) => <span class="nowrap">{formatTime(q.receivedAt)}</span> },
            { key: 'source', title: 'Source', value: (q) => q.source },
            { key: 'file', title: 'File or SOP Instance', value: (q) => q.originalName ?? q.sopInstanceUid ?? '', render: (q) => <button type="button" class="link" onClick={() => open(q.id)}>{q.originalName ?? q.sopInstanceUid ?? `object ${q.id}`}</button> },
            { key: 'reason', title: 'Reason', value: (q) => q.reasonCode, render: (q) => <><strong>{q.reasonCode}</strong>: {q.reason}</> },
            { key: 'size', title: 'Size', align: 'right', value: (q) => q.sizeBytes, render: (q) => formatBytes(q.sizeBytes) },
          ]}
        />
      )}
      {selectedId !== null && <QuarantinedObject id={selectedId} onClose={() => open(null)} onGone={() => { open(null); list.reload(); }} />}
    </>
  );
}

function QuarantinedObject({ id, onClose, onGone }: { id: number; onClose(): void; onGone(): void }) {
  const entry = useApi<Quarantined>(`/api/quarantine/${id}`);
  const dump = useApi<Dump>(`/api/quarantine/${id}/dump`);
  const toast = useToast();
  const [dialog, setDialog] = useState<'release' | 'delete' | null>(null);
  const remove = async () => {
    try {
      await api(`/api/quarantine/${id}`, { method: 'DELETE' });
      toast.ok(`Quarantined object ${id} deleted`);
      setDialog(null);
      onGone();
    } catch (error) {
      toast.error(error as Error);
      setDialog(null);
    }
  };
  return (
    <Dialog open title={`Quarantined object ${id}`} onClose={onClose}>
      {entry.error && <ErrorState error={entry.error} />}
      {!entry.data && !entry.error && <Loading />}
      {entry.data && (
        <>
          <dl class="props">
            <dt>Reason</dt><dd><strong>{entry.data.reasonCode}</strong>: {entry.data.reason}</dd>
            {entry.data.element && <><dt>Element</dt><dd class="mono">{entry.data.element}</dd></>}
            {entry.data.byteOffset !== null && <><dt>At byte</dt><dd>{entry.data.byteOffset}</dd></>}
            <dt>Received</dt><dd>{formatTime(entry.data.receivedAt)} from {entry.data.source}</dd>
            <dt>Size</dt><dd>{formatBytes(entry.data.sizeBytes)}</dd>
            {entry.data.sopInstanceUid && <><dt>SOP Instance UID</dt><dd class="mono">{entry.data.sopInstanceUid}</dd></>}
          </dl>
          <h3>Header</h3>
          {dump.error && <ErrorState error={dump.error} />}
          {dump.data && <HeaderDump dump={dump.data} />}
          <div class="dialog-actions">
            <a class="button-link" href={`/api/quarantine/${id}/file`} download={entry.data.originalName ?? `quarantined-${id}.dcm`}>Download</a>
            <button type="button" class="danger" onClick={() => setDialog('delete')}>Delete…</button>
            <button type="button" class="primary" onClick={() => setDialog('release')}>Release…</button>
            <button type="button" onClick={onClose}>Close</button>
          </div>
        </>
      )}
      <ConfirmDialog open={dialog === 'delete'} title="Delete the quarantined object" confirmLabel="Delete it" onConfirm={remove} onClose={() => setDialog(null)}>
        <p>Its bytes are removed for good. Download them first if they may still be needed.</p>
      </ConfirmDialog>
      <ReleaseDialog open={dialog === 'release'} id={id} onClose={() => setDialog(null)} onReleased={() => { setDialog(null); onGone(); }} />
    </Dialog>
  );
}

function HeaderDump({ dump }: { dump: Dump }) {
  return (
    <>
      <div class="table-wrap dump" tabIndex={0} role="region" aria-label="Header dump">
        <table aria-label="Header elements">
          <thead><tr><th>Tag</th><th>VR</th><th>Keyword</th><th class="num">Length</th><th>Value</th></tr></thead>
          <tbody>
            {dump.elements.map((e, i) => (
              <tr key={i}>
                <td class="mono nowrap">{'  '.repeat(e.depth ?? 0)}{(e.depth ?? 0) > 0 ? '› ' : ''}{e.tag}</td>
                <td class="mono">{e.vr}</td><td>{e.keyword}</td><td class="num">{e.length}</td><td class="mono">{e.value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {dump.stoppedAt && <p class="field-error">Reading stopped: {dump.stoppedAt}</p>}
    </>
  );
}

const KEYWORD = /^[A-Za-z][A-Za-z0-9]*$/;

/** Release: ingest again; attributes given here are set first (e.g. the PatientID the modality left out). */
function ReleaseDialog({ open, id, onClose, onReleased }: { open: boolean; id: number; onClose(): void; onReleased(): void }) {
  const toast = useToast();
  const [rows, setRows] = useState<{ keyword: string; value: string }[]>([]);
  const form = useForm({}, () => {
    const errors: Record<string, string> = {};
    rows.forEach((r, i) => { if (!KEYWORD.test(r.keyword)) errors[`keyword-${i}`] = 'A DICOM attribute keyword, e.g. PatientID'; });
    return errors;
  });
  const release = async () => {
    const attributes = Object.fromEntries(rows.map((r) => [r.keyword, r.value]));
    const result = await api<{ status: string; sopInstanceUid?: string }>(`/api/quarantine/${id}/release`, { method: 'POST', body: rows.length ? { attributes } : {} });
    toast.ok(`Released: ${result.status}${result.sopInstanceUid ? ` (${result.sopInstanceUid})` : ''}`);
    setRows([]);
    onReleased();
  };
  const update = (i: number, patch: Partial<{ keyword: string; value: string }>) => setRows((list) => list.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  return (
    <Dialog open={open} title="Release from quarantine" onClose={onClose}>
      <form class="stack" onSubmit={form.submit(release)}>
        <p>The object goes through ingest again, with today's configuration. If it is refused again it stays here with the new reason.</p>
        <fieldset>
          <legend>Set attributes first (optional)</legend>
          {rows.map((r, i) => (
            <div key={i} class="attribute-row">
              <div class={`field${form.errors[`keyword-${i}`] ? ' invalid' : ''}`}>
                <label for={`attr-k-${i}`}>Keyword</label>
                <input id={`attr-k-${i}`} value={r.keyword} placeholder="PatientID" aria-invalid={form.errors[`keyword-${i}`] ? true : undefined} aria-describedby={form.errors[`keyword-${i}`] ? `attr-k-${i}-error` : undefined} onInput={(e) => update(i, { keyword: e.currentTarget.value })} />
                {form.errors[`keyword-${i}`] && <small id={`attr-k-${i}-error`} class="field-error">{form.errors[`keyword-${i}`]}</small>}
              </div>
              <div class="field">
                <label for={`attr-v-${i}`}>Value</label>
                <input id={`attr-v-${i}`} value={r.value} onInput={(e) => update(i, { value: e.currentTarget.value })} />
              </div>
              <button type="button" aria-label={`Remove attribute ${i + 1}`} onClick={() => setRows((list) => list.filter((_, j) => j !== i))}>Remove</button>
            </div>
          ))}
          <button type="button" onClick={() => setRows((list) => [...list, { keyword: '', value: '' }])}>Add an attribute</button>
        </fieldset>
        <FormError form={form} />
        <FormActions>
          <button type="button" onClick={onClose}>Cancel</button>
          <button class="primary" disabled={form.busy}>Release</button>
        </FormActions>
      </form>
    </Dialog>
  );
}
