/**
 * Peers: Atrium's own application entity, the DICOM nodes it knows (who may ask it what, where it may
 * send), add/edit/remove of the API-managed ones (configured ones are read-only: dicom.peers), a C-ECHO
 * per peer with its outcome, and the last contact when the server records it.
 */
import { useState } from 'preact/hooks';
import { api, useApi, type Resource } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { ConfirmDialog, Dialog } from '../components/dialog.tsx';
import { Field, FormActions, FormError, useForm, type FormState, type Values } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { formatTime } from '../format.ts';
import { aeTitleProblem, DICOM_OPERATIONS, type DicomOperation, type DicomPeer } from '../../../../ports/peer-registry.ts';
import './peers.css';

/** A peer as listed; its last contact fields are null while there was no contact yet. */
export type PeerItem = DicomPeer;

interface OwnAe { aeTitle: string; host: string; port: number; tlsPort: number | null; maxAssociations: number; unknownCallers: DicomOperation[] }

const OPERATION_LABELS: Record<DicomOperation, string> = {
  echo: 'Verify (C-ECHO)',
  store: 'Store to Atrium (C-STORE)',
  find: 'Query (C-FIND)',
  move: 'Retrieve by move (C-MOVE)',
  get: 'Retrieve by get (C-GET)',
  commit: 'Storage commitment',
};
const SHORT: Record<DicomOperation, string> = { echo: 'echo', store: 'store', find: 'find', move: 'move', get: 'get', commit: 'commit' };

type Echo =
  | { state: 'pending' }
  | { state: 'ok'; at: string; ms: number; description: string }
  | { state: 'failed'; at: string; detail: string };

export function PeersPage() {
  const own = useApi<OwnAe>('/api/dicom');
  const list = useApi<{ items: PeerItem[] }>('/api/dicom/peers');
  const toast = useToast();
  const [editing, setEditing] = useState<PeerItem | 'new' | null>(null);
  const [removing, setRemoving] = useState<PeerItem | null>(null);
  const [busy, setBusy] = useState(false);
  const [echoes, setEchoes] = useState<Record<string, Echo>>({});

  const echo = async (peer: PeerItem) => {
    const ae = peer.aeTitle;
    setEchoes((e) => ({ ...e, [ae]: { state: 'pending' } }));
    const started = performance.now();
    try {
      const result = await api<{ status: number; description: string }>(`/api/dicom/peers/${encodeURIComponent(ae)}/echo`, { method: 'POST' });
      const at = new Date().toISOString();
      if (result.status === 0) {
        const ms = Math.round(performance.now() - started);
        setEchoes((e) => ({ ...e, [ae]: { state: 'ok', at, ms, description: result.description } }));
        toast.ok(`C-ECHO to ${ae}: OK in ${ms} ms`);
      } else {
        const detail = `status 0x${result.status.toString(16).padStart(4, '0')}: ${result.description}`;
        setEchoes((e) => ({ ...e, [ae]: { state: 'failed', at, detail } }));
        toast.error(`C-ECHO to ${ae} failed: ${detail}`);
      }
    } catch (error) {
      // The row says it was a C-ECHO to this peer already: its detail without that.
      const detail = (error as Error).message.replace(/^C-ECHO to .* failed: /, '');
      setEchoes((e) => ({ ...e, [ae]: { state: 'failed', at: new Date().toISOString(), detail } }));
      toast.error(`C-ECHO to ${ae} failed: ${detail}`);
    }
    // A server that records contacts has a new last contact now.
    list.reload();
  };

  const remove = async () => {
    if (!removing) return;
    setBusy(true);
    try {
      await api(`/api/dicom/peers/${encodeURIComponent(removing.aeTitle)}`, { method: 'DELETE' });
      toast.ok(`Peer ${removing.aeTitle} removed`);
      list.reload();
    } catch (error) {
      toast.error(`Peer ${removing.aeTitle} not removed: ${(error as Error).message}`);
    } finally {
      setBusy(false);
      setRemoving(null);
    }
  };

  const peers = list.data?.items ?? [];
  const columns: Column<PeerItem>[] = [
    {
      key: 'ae', title: 'AE title', value: (p) => p.aeTitle,
      render: (p) => <><span class="mono peer-ae">{p.aeTitle}</span>{p.description && <div class="muted">{p.description}</div>}</>,
    },
    {
      key: 'address', title: 'Address', value: (p) => `${p.host}:${p.port}`,
      render: (p) => <><span class="mono">{p.host}:{p.port}</span>{p.tls && <> <Badge tone="info">TLS</Badge></>}</>,
    },
    {
      key: 'operations', title: 'May ask Atrium', value: (p) => p.operations.join(', '),
      render: (p) => p.operations.length === 0 ? <span class="muted">nothing</span>
        : p.operations.length === DICOM_OPERATIONS.length ? <span title={p.operations.join(', ')}>everything</span>
        : <span class="peer-ops">{p.operations.map((op) => <span key={op} class="peer-op" title={OPERATION_LABELS[op]}>{SHORT[op] ?? op}</span>)}</span>,
    },
    {
      key: 'source', title: 'Defined in', value: (p) => p.source,
      render: (p) => p.source === 'config'
        ? <span title="Defined in the configuration (dicom.peers): change it there"><Badge tone="muted">configuration</Badge></span>
        : <Badge tone="info">console / API</Badge>,
    },
    { key: 'contact', title: 'Last contact', value: (p) => p.lastContactAt ?? '', render: (p) => <LastContact peer={p} /> },
    {
      key: 'actions', title: 'Actions',
      render: (p) => (
        <div class="peer-actions">
          <div class="row-actions">
            <button type="button" aria-label={`Echo ${p.aeTitle}`} title="C-ECHO: is the peer there and does it accept Atrium?" disabled={echoes[p.aeTitle]?.state === 'pending'} onClick={() => echo(p)}>Echo</button>
            {p.source === 'config' ? <span class="muted read-only">Read-only</span> : (
              <>
                <button type="button" aria-label={`Edit ${p.aeTitle}`} onClick={() => setEditing(p)}>Edit…</button>
                <button type="button" class="danger" aria-label={`Remove ${p.aeTitle}`} onClick={() => setRemoving(p)}>Remove…</button>
              </>
            )}
          </div>
          <EchoResult echo={echoes[p.aeTitle]} />
        </div>
      ),
    },
  ];

  return (
    <>
      <PageHeader title="Peers" subtitle="The DICOM nodes Atrium knows: who may ask it what, and where it may send.">
        <button type="button" class="primary" onClick={() => setEditing('new')}>Add a peer…</button>
      </PageHeader>
      <OwnAeCard own={own} />
      <h2 id="peers-heading">Known peers{list.data && <span class="muted"> · {peers.length}</span>}</h2>
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {!list.data && !list.error && <Loading label="Loading the peers…" />}
      {list.data && (
        <DataTable
          label="DICOM peers"
          columns={columns}
          rows={peers}
          rowKey={(p) => p.aeTitle}
          empty={
            <Empty title="No DICOM peer is known yet.">
              <p>Add the modalities, workstations and archives Atrium exchanges studies with.</p>
              <button type="button" onClick={() => setEditing('new')}>Add a peer…</button>
            </Empty>
          }
        />
      )}
      {list.data && peers.some((p) => p.source === 'config') && (
        <p class="muted peer-note">Peers defined in the configuration (<code>dicom.peers</code>) are read-only here: they are set again at every start.</p>
      )}
      <PeerDialog
        peer={editing}
        peers={peers}
        onClose={() => setEditing(null)}
        onSaved={(saved, created) => {
          setEditing(null);
          toast.ok(`Peer ${saved.aeTitle} ${created ? 'added' : 'saved'}`);
          list.reload();
        }}
      />
      <ConfirmDialog open={removing !== null} title={`Remove peer ${removing?.aeTitle ?? ''}`} confirmLabel={`Remove ${removing?.aeTitle ?? ''}`} busy={busy} onConfirm={remove} onClose={() => setRemoving(null)}>
        <p>
          Atrium forgets <strong class="mono">{removing?.aeTitle}</strong> ({removing?.host}:{removing?.port}): it will refuse the peer's
          associations unless unknown callers may do what it asks, and sends and retrieves to or from it will fail.
        </p>
      </ConfirmDialog>
    </>
  );
}

function OwnAeCard({ own }: { own: Resource<OwnAe> }) {
  if (own.error) return <ErrorState error={own.error} retry={own.reload} />;
  if (!own.data) return <Loading label="Loading Atrium's DICOM settings…" />;
  const o = own.data;
  return (
    <section class="card own-ae" aria-labelledby="own-ae-heading">
      <h2 id="own-ae-heading">This archive</h2>
      <dl class="props">
        <dt>AE title</dt><dd class="mono">{o.aeTitle}</dd>
        <dt>Listens on</dt><dd class="mono">{o.host}:{o.port}</dd>
        <dt>DICOM TLS</dt><dd>{o.tlsPort ? <>port <span class="mono">{o.tlsPort}</span></> : <span class="muted">off</span>}</dd>
        <dt>Associations</dt><dd>at most {o.maxAssociations} at once</dd>
        <dt>Unknown callers</dt><dd>{o.unknownCallers.length ? o.unknownCallers.join(', ') : <span class="muted">refused</span>}</dd>
      </dl>
    </section>
  );
}

function LastContact({ peer }: { peer: PeerItem }) {
  if (!peer.lastContactAt) return <span class="muted">never</span>;
  return (
    <div class="peer-contact">
      {peer.lastContactOutcome === 'ok' ? <Badge tone="ok">ok</Badge> : peer.lastContactOutcome === 'failed' ? <Badge tone="bad">failed</Badge> : null}
      {' '}<span>{formatTime(peer.lastContactAt)}</span>
      {peer.lastContactDetail && <div class="muted peer-detail">{peer.lastContactDetail}</div>}
    </div>
  );
}

function EchoResult({ echo }: { echo: Echo | undefined }) {
  return (
    <span class="peer-echo-result" role="status" aria-live="polite">
      {echo?.state === 'pending' && <span class="muted">C-ECHO…</span>}
      {echo?.state === 'ok' && <><Badge tone="ok">OK</Badge> <span class="muted">C-ECHO in {echo.ms} ms at {new Date(echo.at).toLocaleTimeString()}</span></>}
      {echo?.state === 'failed' && <><Badge tone="bad">Failed</Badge> <span class="peer-detail">{echo.detail}</span></>}
    </span>
  );
}

const EMPTY: Values = { aeTitle: '', host: '', port: '104', description: '', tls: '', operations: DICOM_OPERATIONS.join(',') };

function valuesOf(peer: PeerItem): Values {
  return { aeTitle: peer.aeTitle, host: peer.host, port: String(peer.port), description: peer.description ?? '', tls: peer.tls ? 'true' : '', operations: peer.operations.join(',') };
}

/** Add (peer 'new') or edit one API-managed peer; the AE title is the key and is not edited. */
function PeerDialog({ peer, peers, onClose, onSaved }: { peer: PeerItem | 'new' | null; peers: PeerItem[]; onClose(): void; onSaved(peer: DicomPeer, created: boolean): void }) {
  const creating = peer === 'new';
  const key = peer === null ? 'closed' : creating ? 'new' : peer.aeTitle;
  return (
    <Dialog open={peer !== null} title={creating ? 'Add a DICOM peer' : `Edit peer ${peer?.aeTitle ?? ''}`} onClose={onClose}>
      {peer !== null && <PeerForm key={key} peer={peer} peers={peers} onClose={onClose} onSaved={onSaved} />}
    </Dialog>
  );
}

function PeerForm({ peer, peers, onClose, onSaved }: { peer: PeerItem | 'new'; peers: PeerItem[]; onClose(): void; onSaved(peer: DicomPeer, created: boolean): void }) {
  const creating = peer === 'new';
  const form = useForm(creating ? EMPTY : valuesOf(peer), (v) => {
    const ae = v.aeTitle.trim();
    const aeProblem = aeTitleProblem(v.aeTitle);
    const existing = creating ? peers.find((p) => p.aeTitle === ae) : undefined;
    const port = Number(v.port);
    return {
      aeTitle: aeProblem ? `The AE title ${aeProblem} (1 to 16 characters, no backslash)`
        : existing ? `A peer ${ae} exists already${existing.source === 'config' ? ' (in the configuration)' : ': edit it instead'}` : undefined,
      host: !v.host.trim() ? 'Give the host name or IP address of the peer' : /\s/.test(v.host.trim()) ? 'A host name or address has no spaces' : undefined,
      port: /^\d+$/.test(v.port.trim()) && port >= 1 && port <= 65535 ? undefined : 'The port is a whole number from 1 to 65535',
    };
  });
  const operations = new Set(form.values.operations.split(',').filter(Boolean));
  const save = async (v: Values) => {
    const ae = v.aeTitle.trim();
    const body = {
      host: v.host.trim(), port: Number(v.port), tls: v.tls === 'true',
      operations: DICOM_OPERATIONS.filter((op) => operations.has(op)), description: v.description.trim() || null,
    };
    const saved = await api<DicomPeer>(`/api/dicom/peers/${encodeURIComponent(ae)}`, { method: 'PUT', body });
    onSaved(saved, creating);
  };
  return (
    <form class="stack" noValidate onSubmit={form.submit(save)} aria-label={creating ? 'New peer' : `Peer ${peer.aeTitle}`}>
      <Field form={form} name="aeTitle" label="AE title" required disabled={!creating} autocomplete="off"
        hint={creating ? 'As configured on the peer: 1 to 16 characters, case-sensitive.' : 'The key of the peer: to rename it, add the new one and remove this one.'} />
      <div class="peer-address">
        <Field form={form} name="host" label="Host" required autocomplete="off" placeholder="pacs.example.org or 10.0.0.12" />
        <Field form={form} name="port" label="Port" type="number" required size={6} />
      </div>
      <Field form={form} name="description" label="Description" placeholder="CT scanner, room 3" />
      <Checkbox form={form} name="tls" label="Connect with TLS" hint="Atrium's outbound associations to this peer use DICOM TLS (dicom.tls must be configured)." />
      <OperationsField form={form} selected={operations} />
      <FormError form={form} />
      <FormActions>
        <button type="button" onClick={onClose}>Cancel</button>
        <button class="primary" disabled={form.busy}>{creating ? 'Add the peer' : 'Save'}</button>
      </FormActions>
    </form>
  );
}

function Checkbox({ form, name, label, hint }: { form: FormState; name: string; label: string; hint?: string }) {
  const id = `field-${name}`;
  return (
    <div class="field check">
      <label for={id}>
        <input id={id} type="checkbox" checked={form.values[name] === 'true'} aria-describedby={hint ? `${id}-hint` : undefined}
          onChange={(e) => form.set(name, e.currentTarget.checked ? 'true' : '')} />
        {' '}{label}
      </label>
      {hint && <small id={`${id}-hint`} class="muted">{hint}</small>}
    </div>
  );
}

function OperationsField({ form, selected }: { form: FormState; selected: Set<string> }) {
  const toggle = (op: DicomOperation, on: boolean) => {
    const next = new Set(selected);
    on ? next.add(op) : next.delete(op);
    form.set('operations', DICOM_OPERATIONS.filter((o) => next.has(o)).join(','));
  };
  return (
    <fieldset class="peer-operations" aria-describedby="operations-hint">
      <legend>What the peer may ask of Atrium</legend>
      <div class="peer-operations-grid">
        {DICOM_OPERATIONS.map((op) => (
          <label key={op}>
            <input type="checkbox" name="operations" value={op} checked={selected.has(op)} onChange={(e) => toggle(op, e.currentTarget.checked)} />
            {' '}{OPERATION_LABELS[op]}
          </label>
        ))}
      </div>
      <small id="operations-hint" class="muted">
        {selected.size === 0 ? 'None: the peer may ask nothing (Atrium can still send to it).' : 'Atrium refuses what is not ticked when this peer calls.'}
      </small>
    </fieldset>
  );
}
