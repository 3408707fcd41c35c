/**
 * Identity corrections (docs/corrections.md): the corrections made, newest first, each undoable with a reason;
 * a form to make one (move a study, edit patient or study attributes, merge, split), reason required.
 * The study page links here with the study filled in (?study=).
 */
import { useState } from 'preact/hooks';
import { api, useApi } from '../api.ts';
import { DataTable } from '../components/table.tsx';
import { Badge, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { Dialog } from '../components/dialog.tsx';
import { Field, FormActions, FormError, useForm, listOf, type Values } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { useSession } from '../session.tsx';
import { formatTime } from '../format.ts';

interface Correction {
  id: number; kind: string; reason: string; actor: string; createdAt: string; undoneAt: string | null; undoneBy: string | null; undoReason: string | null;
  studyInstanceUids: string[]; patientIds: string[];
}

const KINDS = [
  { value: 'move-study', label: 'Move a study to another patient' },
  { value: 'edit-patient', label: 'Correct patient attributes' },
  { value: 'edit-study', label: 'Correct study attributes' },
  { value: 'merge', label: 'Merge two patients' },
  { value: 'split', label: 'Split studies off a patient' },
];

const PATIENT_FIELDS = [['PatientName', 'Patient name (PN)'], ['PatientID', 'Patient ID'], ['PatientBirthDate', 'Birth date (YYYYMMDD)'], ['PatientSex', 'Sex (M, F, O)']];
const STUDY_FIELDS = [['StudyDescription', 'Study description'], ['AccessionNumber', 'Accession number'], ['StudyDate', 'Study date (YYYYMMDD)'], ['ReferringPhysicianName', 'Referring physician (PN)']];

/** The request body of the form's kind, from its fields (empty attribute fields are left out). */
function requestOf(v: Values): Record<string, unknown> {
  const attributes = (fields: string[][]) => Object.fromEntries(fields.map(([k]) => [k, v[k]]).filter(([, x]) => x));
  switch (v.kind) {
    case 'move-study': return { studyInstanceUid: v.study, to: { patientId: v.patientId, issuerOfPatientId: v.issuer || undefined } };
    case 'edit-patient': return { patient: { patientId: v.patientId, issuerOfPatientId: v.issuer || undefined }, attributes: attributes(PATIENT_FIELDS) };
    case 'edit-study': return { studyInstanceUid: v.study, attributes: attributes(STUDY_FIELDS) };
    case 'merge': return { survivor: { patientId: v.patientId }, prior: { patientId: v.otherPatientId } };
    default: return { from: { patientId: v.otherPatientId }, to: { patientId: v.patientId }, studies: listOf(v.study), orders: listOf(v.orders) };
  }
}

export function CorrectionsPage() {
  const params = new URLSearchParams(location.search);
  const list = useApi<{ items: Correction[]; total: number }>(`/api/quality/corrections?limit=100${params.get('study') ? `&study=${encodeURIComponent(params.get('study')!)}` : ''}`);
  const { can } = useSession();
  const toast = useToast();
  const [undoing, setUndoing] = useState<Correction | null>(null);
  const form = useForm({ kind: params.get('study') ? 'move-study' : 'move-study', study: params.get('study') ?? '', patientId: '', issuer: '', otherPatientId: '', orders: '', reason: '' }, (v) => ({
    reason: v.reason.trim() ? undefined : 'A reason is required',
    study: ['move-study', 'edit-study', 'split'].includes(v.kind) && !v.study.trim() ? 'Name the study' : undefined,
    patientId: v.kind !== 'edit-study' && !v.patientId.trim() ? 'Name the patient' : undefined,
    otherPatientId: ['merge', 'split'].includes(v.kind) && !v.otherPatientId.trim() ? 'Name the other patient' : undefined,
  }));
  // Its own field name: two fields named alike would share one element id, and the label would point at the other.
  const undoForm = useForm({ undoReason: '' }, (v) => ({ undoReason: v.undoReason.trim() ? undefined : 'A reason is required' }));
  const k = form.values.kind;
  return (
    <>
      <PageHeader title="Identity corrections" subtitle="Served objects carry the corrected values; the replaced ones stay in their Original Attributes Sequence" />
      {can('corrections:write') && (
        <section class="card" aria-label="New correction">
          <h2>New correction</h2>
          <form id="correction" onSubmit={form.submit(async (v) => {
            const record = await api<Correction>(`/api/quality/corrections/${v.kind}`, { method: 'POST', body: { ...requestOf(v), reason: v.reason } });
            toast.ok(`Correction ${record.id} applied`);
            form.reset({ ...v, reason: '' });
            list.reload();
          })}>
            <Field form={form} name="kind" label="Correction" options={KINDS} />
            {['move-study', 'edit-study', 'split'].includes(k) && <Field form={form} name="study" label={k === 'split' ? 'Study Instance UIDs (comma-separated)' : 'Study Instance UID'} required />}
            {['merge', 'split'].includes(k) && <Field form={form} name="otherPatientId" label={k === 'merge' ? 'Patient ID merged away' : 'Patient ID the studies leave'} required />}
            {k !== 'edit-study' && <Field form={form} name="patientId" label={k === 'move-study' ? 'Move to patient ID' : k === 'merge' ? 'Surviving patient ID' : k === 'split' ? 'Patient ID the studies go to' : 'Patient ID'} required />}
            {['move-study', 'edit-patient'].includes(k) && <Field form={form} name="issuer" label="Issuer of patient ID" />}
            {k === 'split' && <Field form={form} name="orders" label="Accession numbers of orders that go too (comma-separated)" />}
            {k === 'edit-patient' && PATIENT_FIELDS.map(([name, label]) => <Field key={name} form={form} name={name} label={label} />)}
            {k === 'edit-study' && STUDY_FIELDS.map(([name, label]) => <Field key={name} form={form} name={name} label={label} />)}
            <Field form={form} name="reason" label="Reason" required hint="Recorded with the correction and in the audit trail" />
            <FormError form={form} />
            <FormActions><button type="submit" disabled={form.busy}>Apply the correction</button></FormActions>
          </form>
        </section>
      )}
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {!list.data && !list.error && <Loading />}
      {list.data && (
        <DataTable
          label="Corrections"
          rowKey={(c) => String(c.id)}
          rows={list.data.items}
          empty="No correction yet"
          columns={[
            { key: 'id', title: '#', align: 'right', value: (c) => c.id },
            { key: 'kind', title: 'Kind', value: (c) => c.kind },
            { key: 'when', title: 'When', value: (c) => c.createdAt, render: (c) => formatTime(c.createdAt) },
            { key: 'who', title: 'By', value: (c) => c.actor },
            { key: 'reason', title: 'Reason', value: (c) => c.reason },
            { key: 'patients', title: 'Patients', value: (c) => c.patientIds.join(', ') },
            { key: 'studies', title: 'Studies', value: (c) => c.studyInstanceUids.length, render: (c) => c.studyInstanceUids.map((uid) => <div key={uid}><a class="mono" href={`/admin/studies/${encodeURIComponent(uid)}`}>{uid}</a></div>) },
            { key: 'state', title: 'State', value: (c) => (c.undoneAt ? 'undone' : 'applied'), render: (c) => (c.undoneAt ? <Badge tone="muted">undone by {c.undoneBy}: {c.undoReason}</Badge> : <Badge tone="ok">applied</Badge>) },
            { key: 'undo', title: '', render: (c) => (!c.undoneAt && can('corrections:write') ? <button type="button" onClick={() => { undoForm.reset(); setUndoing(c); }}>Undo…</button> : null) },
          ]}
        />
      )}
      <Dialog open={undoing !== null} title={`Undo correction ${undoing?.id ?? ''}`} onClose={() => setUndoing(null)}>
        <form id="undo" onSubmit={undoForm.submit(async (v) => {
          await api(`/api/quality/corrections/${undoing!.id}/undo`, { method: 'POST', body: { reason: v.undoReason } });
          toast.ok(`Correction ${undoing!.id} undone`);
          setUndoing(null);
          list.reload();
        })}>
          <p>The index and the served objects go back to what they were before correction {undoing?.id} ({undoing?.kind}).</p>
          <Field form={undoForm} name="undoReason" label="Reason for the undo" required />
          <FormError form={undoForm} />
          <FormActions><button type="submit" disabled={undoForm.busy}>Undo the correction</button></FormActions>
        </form>
      </Dialog>
    </>
  );
}
