/** Retrieve from a peer: C-FIND it (through Atrium), pick the studies, queue one retrieve job each. */
import { useState } from 'preact/hooks';
import { api, useApi } from '../api.ts';
import { Dialog } from '../components/dialog.tsx';
import { Field, FormActions, FormError, useForm } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { formatDicomDate, personName } from '../format.ts';

/** A C-FIND match as DICOM JSON (PS3.18 F.2). */
type Match = Record<string, { vr: string; Value?: unknown[] }>;

const TAGS = { StudyInstanceUID: '0020000D', PatientName: '00100010', PatientID: '00100020', StudyDate: '00080020', StudyDescription: '00081030' } as const;

function valueOf(m: Match, keyword: keyof typeof TAGS): string {
  const v = m[TAGS[keyword]]?.Value?.[0];
  if (v && typeof v === 'object' && 'Alphabetic' in v) return String((v as { Alphabetic: string }).Alphabetic);
  return v === undefined || v === null ? '' : String(v);
}

export function RetrieveDialog({ open, onClose }: { open: boolean; onClose(): void }) {
  const peers = useApi<{ items: { aeTitle: string }[] }>(open ? '/api/dicom/peers' : null);
  const toast = useToast();
  const [matches, setMatches] = useState<Match[] | null>(null);
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const form = useForm({ peer: '', PatientID: '', PatientName: '', AccessionNumber: '', StudyDate: '' }, (v) => ({
    peer: v.peer ? undefined : 'Choose the peer to query',
    PatientID: v.PatientID || v.PatientName || v.AccessionNumber || v.StudyDate ? undefined : 'Give at least one of patient ID, name, accession or date',
  }));
  const search = async (v: Record<string, string>) => {
    const keys: Record<string, string> = { StudyInstanceUID: '', PatientName: v.PatientName, PatientID: v.PatientID, AccessionNumber: v.AccessionNumber, StudyDate: v.StudyDate, StudyDescription: '', ModalitiesInStudy: '' };
    const { items } = await api<{ items: Match[] }>(`/api/dicom/peers/${encodeURIComponent(v.peer)}/find`, { method: 'POST', body: { level: 'STUDY', keys } });
    setMatches(items);
    setPicked(new Set());
  };
  const retrieve = async () => {
    for (const uid of picked) {
      await api(`/api/dicom/peers/${encodeURIComponent(form.values.peer)}/retrieve`, { method: 'POST', body: { level: 'STUDY', keys: { StudyInstanceUID: uid } } })
        .catch((error: Error) => toast.error(`Study ${uid}: ${error.message}`));
    }
    toast.ok(`${picked.size} retrieve ${picked.size === 1 ? 'job' : 'jobs'} queued from ${form.values.peer}`);
    close();
  };
  const close = () => { setMatches(null); setPicked(new Set()); form.reset(); onClose(); };
  const uidOf = (m: Match) => valueOf(m, 'StudyInstanceUID');
  return (
    <Dialog open={open} title="Retrieve from a peer" onClose={close}>
      <form class="stack" onSubmit={form.submit(search)}>
        <Field form={form} name="peer" label="Peer" required options={[{ value: '', label: 'Choose a peer' }, ...(peers.data?.items ?? []).map((p) => ({ value: p.aeTitle, label: p.aeTitle }))]} />
        <Field form={form} name="PatientID" label="Patient ID" />
        <Field form={form} name="PatientName" label="Patient name" placeholder="Doe*" />
        <Field form={form} name="AccessionNumber" label="Accession" />
        <Field form={form} name="StudyDate" label="Study date" placeholder="20240101-20241231" />
        <FormError form={form} />
        <FormActions><button type="button" onClick={close}>Cancel</button><button class="primary" disabled={form.busy}>Search the peer</button></FormActions>
      </form>
      {matches && (matches.length === 0 ? <p class="muted">The peer has no matching study.</p> : (
        <>
          <ul class="matches">
            {matches.map((m) => (
              <li key={uidOf(m)}>
                <label>
                  <input type="checkbox" checked={picked.has(uidOf(m))} onChange={() => { const n = new Set(picked); n.has(uidOf(m)) ? n.delete(uidOf(m)) : n.add(uidOf(m)); setPicked(n); }} />
                  {' '}{personName(valueOf(m, 'PatientName'))} · {valueOf(m, 'PatientID')} · {formatDicomDate(valueOf(m, 'StudyDate'))} · {valueOf(m, 'StudyDescription')} <span class="muted mono">{uidOf(m)}</span>
                </label>
              </li>
            ))}
          </ul>
          <FormActions><button type="button" class="primary" disabled={picked.size === 0} onClick={retrieve}>Retrieve {picked.size || ''}</button></FormActions>
        </>
      ))}
    </Dialog>
  );
}
