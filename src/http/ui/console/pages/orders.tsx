/**
 * Orders: the schedule (today's scheduled steps per modality by default) with each step's time, patient,
 * procedure, station, priority (STAT/URGENT highlighted) and the order's status; filters on status,
 * modality, date range, station, patient ID and accession number; create, edit and cancel an order by hand
 * (order:write) for sites without a RIS. One order's detail is order.tsx.
 */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { api, query, useApi } from '../api.ts';
import { DataTable, type Column } from '../components/table.tsx';
import { Badge, Empty, ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { ConfirmDialog, Dialog } from '../components/dialog.tsx';
import { Field, FormActions, FormError, useForm, type Values } from '../components/form.tsx';
import { useToast } from '../components/toast.tsx';
import { useSession } from '../session.tsx';
import { dicomToday, formatDicomDate, personName } from '../format.ts';
import type { Order, OrderStatus, Priority, ProcedureStep } from '../../../../ris/model.ts';
import './orders.css';

export const ORDER_STATUSES: OrderStatus[] = ['ordered', 'scheduled', 'arrived', 'in-progress', 'completed', 'discontinued', 'preliminary-report', 'final-report', 'amended', 'cancelled'];
const STATUS_TONES: Record<OrderStatus, 'ok' | 'warn' | 'bad' | 'info' | 'muted'> = {
  ordered: 'muted', scheduled: 'info', arrived: 'info', 'in-progress': 'warn', completed: 'ok', discontinued: 'bad',
  'preliminary-report': 'ok', 'final-report': 'ok', amended: 'ok', cancelled: 'muted',
};
export const statusLabel = (s: string) => s.replace(/-/g, ' ').replace(/^./, (c) => c.toUpperCase());
export function StatusBadge({ status }: { status: OrderStatus }) {
  return <Badge tone={STATUS_TONES[status] ?? 'info'}>{statusLabel(status)}</Badge>;
}
export function PriorityBadge({ priority }: { priority: Priority }) {
  const urgent = priority === 'STAT' || priority === 'URGENT';
  return <span class={`priority priority-${priority.toLowerCase()}${urgent ? ' priority-urgent' : ''}`}>{priority}</span>;
}
export const formatTm = (t: string | null) => (t && t.length >= 4 ? `${t.slice(0, 2)}:${t.slice(2, 4)}` : '');
const ENDED: OrderStatus[] = ['cancelled', 'discontinued'];
const LIMIT = 200;

interface Row { order: Order; step: ProcedureStep | null }

export function OrdersPage() {
  const { query: params, route, path } = useLocation();
  const { can } = useSession();
  const toast = useToast();
  const today = dicomToday();
  const allDates = params.dates === 'all';
  const from = allDates ? undefined : params.from || today;
  const to = allDates ? undefined : params.to || params.from || today;
  const filter = { status: params.status || undefined, modality: params.modality || undefined, station: params.station || undefined, patientId: params.patientId || undefined, accessionNumber: params.accessionNumber || undefined };
  const list = useApi<{ items: Order[]; total: number }>(`/api/ris/orders${query({ ...filter, from, to, limit: LIMIT })}`);
  const [editing, setEditing] = useState<Order | 'new' | null>(null);
  const [cancelling, setCancelling] = useState<Order | null>(null);
  const [busy, setBusy] = useState(false);
  const navigate = (next: Record<string, string | undefined>) => route(`${path}${query({ ...params, ...next })}`);

  const rows: Row[] = (list.data?.items ?? []).flatMap<Row>((order) => {
    const steps = order.steps.filter((s) => !from || !s.startDate || (s.startDate >= from.slice(0, 8) && s.startDate <= (to ?? from).slice(0, 8)));
    return steps.length ? steps.map((step) => ({ order, step })) : [{ order, step: null }];
  }).filter((r) => !filter.modality || r.step?.modality === filter.modality)
    .sort((a, b) => `${a.step?.startDate ?? ''}${a.step?.startTime ?? ''}`.localeCompare(`${b.step?.startDate ?? ''}${b.step?.startTime ?? ''}`));
  const modalities = [...new Set(rows.map((r) => r.step?.modality ?? '—'))].sort();

  const cancel = async () => {
    if (!cancelling) return;
    setBusy(true);
    try {
      await api(`/api/ris/orders/${cancelling.pk}/cancel`, { method: 'POST', body: { reason: 'cancelled in the console' } });
      toast.ok(`Order ${cancelling.accessionNumber} cancelled`);
    } catch (error) {
      toast.error(`Order ${cancelling.accessionNumber} not cancelled: ${(error as Error).message}`);
    } finally {
      setBusy(false);
      setCancelling(null);
      list.reload();
    }
  };

  const columns: Column<Row>[] = [
    { key: 'time', title: 'Time', value: (r) => `${r.step?.startDate ?? ''}${r.step?.startTime ?? ''}`, render: (r) => <><strong>{formatTm(r.step?.startTime ?? null)}</strong><div class="muted">{formatDicomDate(r.step?.startDate)}</div></> },
    { key: 'patient', title: 'Patient', value: (r) => r.order.patient.patientName ?? '', render: (r) => <>{personName(r.order.patient.patientName)}<div class="muted mono">{r.order.patient.patientId}</div></> },
    { key: 'procedure', title: 'Procedure', render: (r) => <><a href={`/admin/orders/${r.order.pk}`}>{r.order.requestedProcedureDescription || r.order.requestedProcedureCode?.meaning || r.order.accessionNumber}</a><div class="muted mono">{r.order.accessionNumber}</div></> },
    { key: 'station', title: 'Station', value: (r) => r.step?.stationAeTitle ?? '', render: (r) => <span class="mono">{r.step?.stationAeTitle ?? '—'}</span> },
    { key: 'priority', title: 'Priority', value: (r) => r.order.priority, render: (r) => <PriorityBadge priority={r.order.priority} /> },
    { key: 'status', title: 'Status', value: (r) => r.order.status, render: (r) => <StatusBadge status={r.order.status} /> },
    ...(can('order:write') ? [{
      key: 'actions', title: 'Actions', render: (r: Row) => ENDED.includes(r.order.status) ? null : (
        <div class="row-actions">
          <button type="button" aria-label={`Edit order ${r.order.accessionNumber}`} onClick={() => setEditing(r.order)}>Edit…</button>
          <button type="button" aria-label={`Cancel order ${r.order.accessionNumber}`} onClick={() => setCancelling(r.order)}>Cancel…</button>
        </div>
      ),
    }] : []),
  ];

  return (
    <>
      <PageHeader title="Orders" subtitle={allDates ? 'Every order matching the filters.' : from === today && to === today ? "Today's schedule per modality." : `Schedule ${formatDicomDate(from)} to ${formatDicomDate(to)}.`}>
        {can('order:write') && <button type="button" class="primary" onClick={() => setEditing('new')}>New order…</button>}
        <button type="button" onClick={list.reload} disabled={list.loading}>Refresh</button>
      </PageHeader>
      <OrderFilters params={params} onApply={navigate} />
      {list.error && <ErrorState error={list.error} retry={list.reload} />}
      {!list.data && !list.error && <Loading label="Loading the orders…" />}
      {list.data && rows.length === 0 && <Empty title="No order matches."><button type="button" onClick={() => route(`${path}?dates=all`)}>Show all orders</button></Empty>}
      {list.data && modalities.map((m) => (
        <section key={m} class="modality-schedule" aria-label={`Modality ${m}`}>
          <h2>{m} <span class="muted">({rows.filter((r) => (r.step?.modality ?? '—') === m).length})</span></h2>
          <DataTable label={`Schedule of ${m}`} columns={columns} rows={rows.filter((r) => (r.step?.modality ?? '—') === m)} rowKey={(r) => `${r.order.pk}:${r.step?.pk ?? 0}`} empty={<Empty title="Nothing scheduled." />} />
        </section>
      ))}
      <OrderDialog order={editing} onClose={() => setEditing(null)} onSaved={(o, created) => { setEditing(null); toast.ok(`Order ${o.accessionNumber} ${created ? 'created' : 'saved'}`); list.reload(); }} />
      <ConfirmDialog open={cancelling !== null} title={`Cancel order ${cancelling?.accessionNumber ?? ''}`} confirmLabel="Cancel the order" cancelLabel="Keep it" busy={busy} onConfirm={cancel} onClose={() => setCancelling(null)}>
        {cancelling && <p>{personName(cancelling.patient.patientName)}'s {cancelling.requestedProcedureDescription ?? 'procedure'} will not be done: its steps leave the worklist and the RIS is told (if configured).</p>}
      </ConfirmDialog>
    </>
  );
}

function OrderFilters({ params, onApply }: { params: Record<string, string>; onApply(next: Record<string, string | undefined>): void }) {
  const form = useForm({
    status: params.status ?? '', modality: params.modality ?? '', station: params.station ?? '', patientId: params.patientId ?? '', accessionNumber: params.accessionNumber ?? '',
    from: params.from ?? '', to: params.to ?? '',
  }, (v) => ({
    from: v.from && !/^\d{8}$/.test(v.from) ? 'A date as YYYYMMDD' : undefined,
    to: v.to && !/^\d{8}$/.test(v.to) ? 'A date as YYYYMMDD' : v.from && v.to && v.to < v.from ? 'Not before the start' : undefined,
  }));
  const apply = async (v: Values) => onApply(Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x.trim() || undefined])));
  return (
    <form class="toolbar orders-filters" noValidate onSubmit={form.submit(apply)} aria-label="Filter the orders">
      <Field form={form} name="status" label="Status" options={[{ value: '', label: 'Any status' }, ...ORDER_STATUSES.map((s) => ({ value: s, label: statusLabel(s) }))]} />
      <Field form={form} name="modality" label="Modality" size={5} />
      <Field form={form} name="station" label="Station AE" size={12} />
      <Field form={form} name="patientId" label="Patient ID" size={10} />
      <Field form={form} name="accessionNumber" label="Accession" size={12} />
      <Field form={form} name="from" label="From" placeholder="YYYYMMDD" size={9} />
      <Field form={form} name="to" label="To" placeholder="YYYYMMDD" size={9} />
      <button>Apply</button>
      <button type="button" onClick={() => onApply({ dates: 'all', from: undefined, to: undefined })}>All dates</button>
    </form>
  );
}

const EMPTY_ORDER: Values = {
  patientId: '', issuerOfPatientId: '', patientName: '', patientBirthDate: '', patientSex: '', accessionNumber: '', requestedProcedureId: '', requestedProcedureDescription: '',
  priority: 'ROUTINE', reason: '', referringPhysician: '', stepId: '', modality: '', stationAeTitle: '', startDate: '', startTime: '',
};

function validateOrder(v: Values, creating: boolean): Partial<Record<string, string>> {
  return {
    patientId: creating && !v.patientId.trim() ? 'The patient ID is required' : undefined,
    patientBirthDate: v.patientBirthDate && !/^\d{8}$/.test(v.patientBirthDate) ? 'A date as YYYYMMDD' : undefined,
    accessionNumber: creating && !v.accessionNumber.trim() ? 'The accession number is required' : v.accessionNumber.length > 16 ? 'At most 16 characters (DICOM SH)' : undefined,
    stepId: !v.stepId.trim() ? 'A scheduled procedure step ID is required' : undefined,
    modality: v.modality && !/^[A-Z]{2,16}$/.test(v.modality) ? 'A modality code such as CT or MR' : undefined,
    stationAeTitle: v.stationAeTitle && !/^[ -[\]-~]{1,16}$/.test(v.stationAeTitle) ? 'An AE title: at most 16 characters, no backslash' : undefined,
    startDate: !/^\d{8}$/.test(v.startDate) ? 'The date as YYYYMMDD' : undefined,
    startTime: v.startTime && !/^\d{4}(\d{2})?$/.test(v.startTime) ? 'The time as HHMM or HHMMSS' : undefined,
  };
}

function OrderDialog({ order, onClose, onSaved }: { order: Order | 'new' | null; onClose(): void; onSaved(order: Order, created: boolean): void }) {
  const creating = order === 'new';
  return (
    <Dialog open={order !== null} title={creating ? 'New order' : `Edit order ${typeof order === 'object' && order ? order.accessionNumber : ''}`} onClose={onClose}>
      {order !== null && <OrderForm key={creating ? 'new' : order.pk} order={creating ? null : order} onClose={onClose} onSaved={onSaved} />}
    </Dialog>
  );
}

function OrderForm({ order, onClose, onSaved }: { order: Order | null; onClose(): void; onSaved(order: Order, created: boolean): void }) {
  const step = order?.steps[0];
  const form = useForm(order ? {
    ...EMPTY_ORDER, patientId: order.patient.patientId, accessionNumber: order.accessionNumber, requestedProcedureId: order.requestedProcedureId ?? '',
    requestedProcedureDescription: order.requestedProcedureDescription ?? '', priority: order.priority, reason: order.reason ?? '', referringPhysician: order.referringPhysician ?? '',
    stepId: step?.stepId ?? '', modality: step?.modality ?? '', stationAeTitle: step?.stationAeTitle ?? '', startDate: step?.startDate ?? '', startTime: step?.startTime ?? '',
  } : { ...EMPTY_ORDER, startDate: dicomToday() }, (v) => validateOrder(v, !order));
  const save = async (v: Values) => {
    const opt = (s: string) => s.trim() || null;
    const body = {
      requestedProcedureId: opt(v.requestedProcedureId), requestedProcedureDescription: opt(v.requestedProcedureDescription), priority: v.priority, reason: opt(v.reason),
      referringPhysician: opt(v.referringPhysician),
      steps: [{ stepId: v.stepId.trim(), modality: opt(v.modality), stationAeTitle: opt(v.stationAeTitle), startDate: v.startDate, startTime: opt(v.startTime.length === 4 ? `${v.startTime}00` : v.startTime), description: opt(v.requestedProcedureDescription) }],
    };
    const saved = order
      ? await api<Order>(`/api/ris/orders/${order.pk}`, { method: 'PATCH', body })
      : await api<Order>('/api/ris/orders', { method: 'POST', body: { ...body, accessionNumber: v.accessionNumber.trim(),
        patient: { patientId: v.patientId.trim(), issuerOfPatientId: v.issuerOfPatientId.trim(), ...(v.patientName ? { patientName: v.patientName.trim() } : {}), ...(v.patientBirthDate ? { patientBirthDate: v.patientBirthDate } : {}), ...(v.patientSex ? { patientSex: v.patientSex } : {}) } } });
    onSaved(saved, !order);
  };
  return (
    <form class="order-form" noValidate onSubmit={form.submit(save)} aria-label={order ? 'Edit the order' : 'The new order'}>
      <fieldset><legend>Patient</legend>
        <Field form={form} name="patientId" label="Patient ID" required={!order} disabled={!!order} />
        {!order && <>
          <Field form={form} name="issuerOfPatientId" label="Issuer of patient ID" />
          <Field form={form} name="patientName" label="Patient name" hint="DICOM form: FAMILY^GIVEN" />
          <Field form={form} name="patientBirthDate" label="Birth date" placeholder="YYYYMMDD" />
          <Field form={form} name="patientSex" label="Sex" options={[{ value: '', label: 'Unknown' }, { value: 'F', label: 'Female' }, { value: 'M', label: 'Male' }, { value: 'O', label: 'Other' }]} />
        </>}
      </fieldset>
      <fieldset><legend>Procedure</legend>
        <Field form={form} name="accessionNumber" label="Accession number" required={!order} disabled={!!order} />
        <Field form={form} name="requestedProcedureId" label="Requested procedure ID" />
        <Field form={form} name="requestedProcedureDescription" label="Procedure" />
        <Field form={form} name="priority" label="Priority" options={['STAT', 'ASAP', 'URGENT', 'ROUTINE'].map((p) => ({ value: p, label: p }))} />
        <Field form={form} name="reason" label="Reason" />
        <Field form={form} name="referringPhysician" label="Referring physician" />
      </fieldset>
      <fieldset><legend>Scheduled step</legend>
        <Field form={form} name="stepId" label="Step ID" required />
        <Field form={form} name="modality" label="Modality" />
        <Field form={form} name="stationAeTitle" label="Station AE title" />
        <Field form={form} name="startDate" label="Start date" placeholder="YYYYMMDD" required />
        <Field form={form} name="startTime" label="Start time" placeholder="HHMM" />
      </fieldset>
      <FormError form={form} />
      <FormActions>
        <button type="button" onClick={onClose}>Close</button>
        <button class="primary" disabled={form.busy}>{order ? 'Save' : 'Create the order'}</button>
      </FormActions>
    </form>
  );
}
