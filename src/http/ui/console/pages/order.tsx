/**
 * One order: the patient, the procedure, its scheduled steps, the studies linked to it (each a link to the
 * study page), its reports with every version, and the timeline of its status with each transition's time
 * and source (HL7 message, MPPS, image arrival, user); a wrong-patient flag is shown at the top.
 */
import { useApi } from '../api.ts';
import { ErrorState, Loading, PageHeader, Badge } from '../components/states.tsx';
import { DataTable, type Column } from '../components/table.tsx';
import { formatDicomDate, formatTime, personName } from '../format.ts';
import { PriorityBadge, StatusBadge, formatTm, statusLabel } from './orders.tsx';
import type { OrderDetail, PerformedSeriesCheck, ProcedureStep, TimelineEntry } from '../../../../ris/model.ts';
import './orders.css';

const SOURCE_LABELS: Record<string, string> = { hl7: 'HL7 message', mpps: 'MPPS', image: 'Image arrival', user: 'User', system: 'Atrium' };

export function OrderPage({ id }: { id: string }) {
  const order = useApi<OrderDetail & { performedSeriesCheck: PerformedSeriesCheck | null }>(`/api/ris/orders/${encodeURIComponent(id)}`);
  if (order.error) return <><PageHeader title={`Order ${id}`} /><ErrorState error={order.error} retry={order.reload} /></>;
  if (!order.data) return <Loading label="Loading the order…" />;
  const o = order.data;
  const stepColumns: Column<ProcedureStep>[] = [
    { key: 'step', title: 'Step', render: (s) => <span class="mono">{s.stepId}</span> },
    { key: 'when', title: 'Scheduled', render: (s) => <>{formatDicomDate(s.startDate)} {formatTm(s.startTime)}</> },
    { key: 'modality', title: 'Modality', render: (s) => s.modality ?? '—' },
    { key: 'station', title: 'Station', render: (s) => <span class="mono">{s.stationAeTitle ?? '—'}</span> },
    { key: 'description', title: 'Description', render: (s) => s.description ?? '' },
    { key: 'status', title: 'Status', render: (s) => <Badge tone="info">{s.status}</Badge> },
  ];
  return (
    <>
      <PageHeader title={`Order ${o.accessionNumber}`} subtitle={o.requestedProcedureDescription ?? o.requestedProcedureCode?.meaning ?? undefined}>
        <a href="/admin/orders">All orders</a>
        <button type="button" onClick={order.reload}>Refresh</button>
      </PageHeader>
      {o.identityMismatch && (
        <p class="warning" role="alert">
          <strong>Wrong-patient flag.</strong> {o.identityMismatch.map((m) => `Study ${m.studyInstanceUid} carries Patient ID ${m.study.patientId ?? '(none)'}${m.study.issuerOfPatientId ? ` (${m.study.issuerOfPatientId})` : ''}${m.study.patientName ? `, ${personName(m.study.patientName)}` : ''}, not the order's ${m.order.patientId}${m.order.issuerOfPatientId ? ` (${m.order.issuerOfPatientId})` : ''}.`).join(' ')} The images were not changed: check the study before it is read.
        </p>
      )}
      <section aria-labelledby="order-summary">
        <h2 id="order-summary">Patient and procedure</h2>
        <dl class="props">
          <dt>Patient</dt><dd>{personName(o.patient.patientName)} <span class="muted mono">{o.patient.patientId}{o.patient.issuerOfPatientId ? ` (${o.patient.issuerOfPatientId})` : ''}</span></dd>
          <dt>Birth date, sex</dt><dd>{formatDicomDate(o.patient.patientBirthDate) || '—'}, {o.patient.patientSex || '—'}</dd>
          <dt>Status</dt><dd><StatusBadge status={o.status} /></dd>
          <dt>Priority</dt><dd><PriorityBadge priority={o.priority} />{o.screening && <span class="muted"> screening</span>}</dd>
          <dt>Procedure</dt><dd>{o.requestedProcedureDescription ?? '—'}{o.requestedProcedureCode && <span class="muted mono"> {o.requestedProcedureCode.code} ({o.requestedProcedureCode.scheme})</span>}</dd>
          <dt>Requested procedure ID</dt><dd class="mono">{o.requestedProcedureId ?? '—'}</dd>
          <dt>Placer / filler order</dt><dd class="mono">{o.placerOrderNumber ?? '—'} / {o.fillerOrderNumber ?? '—'}</dd>
          <dt>Reason</dt><dd>{o.reason ?? '—'}</dd>
          <dt>Referring / ordering physician</dt><dd>{o.referringPhysician ? personName(o.referringPhysician) : '—'} / {o.orderingPhysician ? personName(o.orderingPhysician) : '—'}</dd>
          <dt>Study Instance UID</dt><dd class="mono">{o.studyInstanceUid}</dd>
        </dl>
      </section>
      <section aria-labelledby="order-steps">
        <h2 id="order-steps">Scheduled procedure steps</h2>
        <DataTable label="Scheduled procedure steps" columns={stepColumns} rows={o.steps} rowKey={(s) => String(s.pk)} empty={<p>No step.</p>} />
      </section>
      <section aria-labelledby="order-studies">
        <h2 id="order-studies">Studies</h2>
        {o.studies.length === 0 ? <p class="muted">No image has arrived for this order yet.</p> : (
          <ul>{o.studies.map((s) => (
            <li key={s.studyInstanceUid}>
              <a class="mono" href={`/admin/studies/${encodeURIComponent(s.studyInstanceUid)}`}>{s.studyInstanceUid}</a>
              <span class="muted"> matched by {s.matchedBy === 'accession' ? 'accession number' : 'Study Instance UID'}, {formatTime(s.linkedAt)}</span>
              {s.patientMismatch && <> <Badge tone="bad">Wrong patient? Its images carry Patient ID {s.studyPatientId ?? '(none)'}{s.studyIssuerOfPatientId ? ` (${s.studyIssuerOfPatientId})` : ''}</Badge></>}
            </li>
          ))}</ul>
        )}
      </section>
      {o.performedSeriesCheck && (
        <section aria-labelledby="order-performed">
          <h2 id="order-performed">Performed series</h2>
          <p>
            {o.performedSeriesCheck.named} instances named by the modality's MPPS, {o.performedSeriesCheck.archived} archived
            {o.performedSeriesCheck.complete ? <> <Badge tone="ok">complete</Badge></> : <>
              {o.performedSeriesCheck.missing > 0 && <> <Badge tone="bad">{o.performedSeriesCheck.missing} not archived</Badge></>}
              {o.performedSeriesCheck.unnamed > 0 && <> <Badge tone="warn">{o.performedSeriesCheck.unnamed} archived, not named</Badge></>}
            </>}
          </p>
        </section>
      )}
      <section aria-labelledby="order-reports">
        <h2 id="order-reports">Reports</h2>
        {o.reports.length === 0 ? <p class="muted">No report yet.</p> : o.reports.map((r) => (
          <article key={r.id} class="report" aria-label={`Report version ${r.version}`}>
            <h3>Version {r.version}: {r.status === 'F' ? 'final' : r.status === 'P' ? 'preliminary' : 'corrected'}{r.supersededAt && <span class="muted"> (superseded {formatTime(r.supersededAt)})</span>}</h3>
            <p class="muted">{r.author ? personName(r.author) : 'no author'}, {formatTime(r.createdAt)}</p>
            <pre class="dump">{r.text}</pre>
          </article>
        ))}
      </section>
      <section aria-labelledby="order-timeline">
        <h2 id="order-timeline">Timeline</h2>
        <ol class="timeline">{o.timeline.map((t: TimelineEntry, i) => (
          <li key={i}>
            <strong>{t.flag === 'identity-mismatch' ? 'Wrong-patient flag' : t.flag === 'prior-prefetch' ? 'Prior prefetch' : statusLabel(t.status)}</strong> <span class="muted">{formatTime(t.at)}</span>
            <div>{SOURCE_LABELS[t.source.kind] ?? t.source.kind}{t.source.ref && <span class="mono"> {t.source.ref}</span>}{t.stepId && <span class="muted"> step {t.stepId}</span>}</div>
            {t.detail && <div class="muted">{t.detail}</div>}
          </li>
        ))}</ol>
      </section>
    </>
  );
}

