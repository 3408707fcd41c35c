/** One study: its patient and attributes, series with their instances, open in the viewer, send, delete. */
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { api, useApi } from '../api.ts';
import { DataTable } from '../components/table.tsx';
import { ErrorState, Loading, PageHeader } from '../components/states.tsx';
import { ConfirmDialog } from '../components/dialog.tsx';
import { useToast } from '../components/toast.tsx';
import { useSession } from '../session.tsx';
import { formatBytes, formatDicomDate, formatTime, personName } from '../format.ts';
import type { Study } from './studies.tsx';

interface Series { seriesInstanceUid: string; seriesNumber: number | null; modality: string | null; seriesDescription: string | null; numberOfSeriesRelatedInstances?: number }
interface Instance { sopInstanceUid: string; instanceNumber: number | null; sizeBytes: number; transferSyntaxUid?: string }

export function StudyPage({ uid }: { uid: string }) {
  const study = useApi<Study & { referringPhysicianName: string | null; createdAt: string; updatedAt: string }>(`/api/studies/${encodeURIComponent(uid)}`);
  const series = useApi<{ items: Series[] }>(`/api/studies/${encodeURIComponent(uid)}/series`);
  const { can } = useSession();
  const { route } = useLocation();
  const toast = useToast();
  const [confirm, setConfirm] = useState(false);
  if (study.error) return <><PageHeader title="Study" /><ErrorState error={study.error} retry={study.reload} /></>;
  if (!study.data) return <Loading />;
  const s = study.data;
  const remove = async () => {
    try {
      await api(`/api/studies/${encodeURIComponent(uid)}`, { method: 'DELETE' });
      toast.ok('Study deleted');
      route('/admin/studies?range=all');
    } catch (error) {
      toast.error(error as Error);
      setConfirm(false);
    }
  };
  return (
    <>
      <PageHeader title={personName(s.patient.patientName)} subtitle={<>{s.studyDescription || 'No description'} · {formatDicomDate(s.studyDate)}</>}>
        <a class="button-link" href={`/viewer?StudyInstanceUIDs=${encodeURIComponent(s.studyInstanceUid)}`}>Open in the viewer</a>
        {can('corrections:write') && <a class="button-link" href={`/admin/corrections?study=${encodeURIComponent(s.studyInstanceUid)}`}>Correct…</a>}
        {can('study:delete') && <button type="button" class="danger" onClick={() => setConfirm(true)}>Delete…</button>}
      </PageHeader>
      <div class="card">
        <dl class="props">
          <dt>Patient ID</dt><dd>{s.patient.patientId}</dd>
          <dt>Accession</dt><dd>{s.accessionNumber ?? '—'}</dd>
          <dt>Referring physician</dt><dd>{s.referringPhysicianName ? personName(s.referringPhysicianName) : '—'}</dd>
          <dt>Modalities</dt><dd>{s.modalitiesInStudy.join(', ')}</dd>
          <dt>Size</dt><dd>{s.numberOfStudyRelatedSeries} series, {s.numberOfStudyRelatedInstances} instances, {formatBytes(s.sizeBytes)}</dd>
          <dt>Study Instance UID</dt><dd class="mono">{s.studyInstanceUid}</dd>
          <dt>Received</dt><dd>{formatTime(s.createdAt)}{s.updatedAt !== s.createdAt && <> · last change {formatTime(s.updatedAt)}</>}</dd>
        </dl>
      </div>
      {series.error && <ErrorState error={series.error} retry={series.reload} />}
      {series.data?.items.map((se) => <SeriesInstances key={se.seriesInstanceUid} series={se} />)}
      <ConfirmDialog open={confirm} title="Delete this study" confirmLabel="Delete the study" onConfirm={remove} onClose={() => setConfirm(false)}>
        <p>{s.numberOfStudyRelatedInstances} instances ({formatBytes(s.sizeBytes)}) of {personName(s.patient.patientName)} are removed from the archive. This cannot be undone.</p>
      </ConfirmDialog>
    </>
  );
}

function SeriesInstances({ series }: { series: Series }) {
  const instances = useApi<{ items: Instance[] }>(`/api/series/${encodeURIComponent(series.seriesInstanceUid)}/instances?limit=1000`);
  return (
    <section aria-label={`Series ${series.seriesNumber ?? ''}`}>
      <h2>Series {series.seriesNumber ?? '—'} · {series.modality} · {series.seriesDescription || 'No description'}</h2>
      {instances.error && <ErrorState error={instances.error} />}
      {instances.data && (
        <DataTable
          label={`Instances of series ${series.seriesNumber ?? ''}`}
          rowKey={(i) => i.sopInstanceUid}
          rows={instances.data.items}
          columns={[
            { key: 'n', title: 'Instance', align: 'right', value: (i) => i.instanceNumber },
            { key: 'uid', title: 'SOP Instance UID', value: (i) => i.sopInstanceUid, render: (i) => <span class="mono">{i.sopInstanceUid}</span> },
            { key: 'size', title: 'Size', align: 'right', value: (i) => i.sizeBytes, render: (i) => formatBytes(i.sizeBytes) },
            { key: 'file', title: 'File', render: (i) => <a href={`/api/instances/${encodeURIComponent(i.sopInstanceUid)}/file`} download={`${i.sopInstanceUid}.dcm`}>download</a> },
          ]}
        />
      )}
    </section>
  );
}
