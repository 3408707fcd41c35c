/**
 * HL7 messages: the log of every message received (time, sender, type, control ID, ACK code), errors
 * highlighted (AE and AR), the ERR code, location and text, the raw message, and replay of a message that
 * was not applied, after confirmation (for after its cause was fixed).
 */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { api, query, useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { ConfirmDialog, Dialog } from '../components/dialog.tsx';
import { useToast } from '../components/toast.tsx';
import { formatTime } from '../format.ts';
import type { Hl7MessageRecord } from '../../../../ris/model.ts';
import './orders.css';

type Listed = Omit<Hl7MessageRecord, 'text'>;
const LIMIT = 50;
const CODES = ['AA', 'AE', 'AR'] as const;

export function Hl7MessagesPage() {
  const { query: params, route, path } = useLocation();
  const toast = useToast();
  const ackCode = CODES.includes(params.ackCode as 'AA') ? params.ackCode : undefined;
  const offset = Number(params.offset ?? 0);
  const list = useApi<{ items: Listed[]; total: number }>(`/api/ris/hl7/messages${query({ ackCode, limit: LIMIT, offset })}`);
  const [open, setOpen] = useState<number | null>(null);
  const [replaying, setReplaying] = useState<Listed | null>(null);
  const [busy, setBusy] = useState(false);
  const navigate = (next: Record<string, string | undefined>) => route(`${path}${query({ ...params, offset: undefined, ...next })}`);

  const replay = async () => {
    if (!replaying) return;
    setBusy(true);
    try {
      const result = await api<{ ackCode?: string; code?: string }>(`/api/ris/hl7/messages/${replaying.id}/replay`, { method: 'POST' });
      const code = result.ackCode ?? result.code ?? '';
      if (code === 'AA') toast.ok(`Message ${replaying.controlId} replayed: accepted (AA)`);
      else toast.error(`Message ${replaying.controlId} replayed: still refused (${code})`);
    } catch (error) {
      toast.error(`Message ${replaying.controlId} not replayed: ${(error as Error).message}`);
    } finally {
      setBusy(false);
      setReplaying(null);
      list.reload();
    }
  };

  const columns: Column<Listed>[] = [
    { key: 'time', title: 'Received', value: (m) => m.receivedAt, render: (m) => formatTime(m.receivedAt) },
    { key: 'sender', title: 'Sender', value: (m) => m.sender, render: (m) => <><span class="mono">{m.sender}</span>{m.remoteAddress && <div class="muted">{m.remoteAddress}</div>}</> },
    { key: 'type', title: 'Type', value: (m) => m.messageType ?? '', render: (m) => <span class="mono">{m.messageType ?? '—'}</span> },
    { key: 'control', title: 'Control ID', render: (m) => <button type="button" class="link mono" aria-label={`Message ${m.controlId ?? m.id}`} onClick={() => setOpen(m.id)}>{m.controlId ?? `#${m.id}`}</button> },
    { key: 'ack', title: 'ACK', value: (m) => m.ackCode, render: (m) => <span class={m.ackCode === 'AA' ? 'ack-ok' : 'ack-bad'}>{m.ackCode}</span> },
    { key: 'error', title: 'Error', render: (m) => m.ackCode === 'AA' ? (m.replays ? <span class="muted">replayed {m.replays}×</span> : null) : (
      <><strong>{m.errorCode}</strong>{m.errorLocation && <span class="mono"> at {m.errorLocation}</span>}<div>{m.errorText}</div></>
    ) },
    { key: 'actions', title: 'Actions', render: (m) => m.ackCode === 'AA' ? null : <button type="button" aria-label={`Replay message ${m.controlId ?? m.id}`} onClick={() => setReplaying(m)}>Replay…</button> },
  ];
  return (
    <>
      <PageHeader title="HL7 messages" subtitle="Every HL7 v2 message received, as received, with the acknowledgment sent.">
        <button type="button" onClick={list.reload} disabled={list.loading}>Refresh</button>
      </PageHeader>
      <div class="toolbar">
        <div class="chips" role="group" aria-label="Acknowledgment">
          <button type="button" aria-pressed={!ackCode} onClick={() => navigate({ ackCode: undefined })}>All</button>
          {CODES.map((c) => <button key={c} type="button" aria-pressed={ackCode === c} onClick={() => navigate({ ackCode: c })}>{c}</button>)}
        </div>
      </div>
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {!list.data && !list.error && <Loading label="Loading the messages…" />}
      {list.data && (
        <div class="hl7-log">
          <DataTable label="HL7 messages" columns={columns} rows={list.data.items} rowKey={(m) => String(m.id)}
            paging={{ total: list.data.total, limit: LIMIT, offset, onPage: (o) => navigate({ offset: String(o) }) }}
            empty={<Empty title="No message yet." />} />
        </div>
      )}
      <MessageDialog id={open} onClose={() => setOpen(null)} />
      <ConfirmDialog open={replaying !== null} title={`Replay message ${replaying?.controlId ?? ''}`} confirmLabel="Replay the message" danger={false} busy={busy} onConfirm={replay} onClose={() => setReplaying(null)}>
        {replaying && <p>The message is applied again as if it had just arrived ({replaying.messageType}). Do this once the cause of "{replaying.errorText}" is fixed; the log then keeps the new acknowledgment.</p>}
      </ConfirmDialog>
    </>
  );
}

function MessageDialog({ id, onClose }: { id: number | null; onClose(): void }) {
  const message = useApi<Hl7MessageRecord & { rawBase64: string }>(id === null ? null : `/api/ris/hl7/messages/${id}`);
  const m = message.data && message.data.id === id ? message.data : undefined;
  return (
    <Dialog open={id !== null} title={`HL7 message ${m?.controlId ?? id ?? ''}`} onClose={onClose}>
      {message.error && <ErrorState error={message.error} />}
      {!m && !message.error && <Loading />}
      {m && (
        <>
          <dl class="props">
            <dt>Type</dt><dd class="mono">{m.messageType} (v{m.version})</dd>
            <dt>ACK</dt><dd><span class={m.ackCode === 'AA' ? 'ack-ok' : 'ack-bad'}>{m.ackCode}</span>{m.errorCode && <> {m.errorCode}{m.errorLocation && ` at ${m.errorLocation}`}: {m.errorText}</>}</dd>
            <dt>Patient, accession</dt><dd class="mono">{m.patientId ?? '—'}, {m.accessionNumber ?? '—'}</dd>
          </dl>
          <h3>Message</h3>
          <pre class="dump hl7-raw" aria-label="The message as received">{m.text.replace(/\r/g, '\n')}</pre>
          <h3>Acknowledgment</h3>
          <pre class="dump hl7-raw" aria-label="The acknowledgment sent">{m.ack.replace(/\r/g, '\n')}</pre>
        </>
      )}
      <div class="dialog-actions"><button type="button" class="primary" onClick={onClose}>Close</button></div>
    </Dialog>
  );
}
