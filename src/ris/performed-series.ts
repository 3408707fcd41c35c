/**
 * The Performed Series Sequence of an MPPS checked against what the archive holds: the instances the
 * modality says it made that are not archived (missing), and the instances archived in the procedure's
 * studies that no MPPS named (unnamed). Computed when asked (GET /api/ris/mpps/:uid and
 * GET /api/ris/orders/:pk), from the index as it is then, so that images arriving after N-SET COMPLETED
 * (a modality's store queue often lags its MPPS) are counted as soon as they are stored. See
 * docs/mwl-mpps.md "Performed series against the archive".
 */
import type { IndexStore } from '../ports/index-store.ts';
import type { OrderDetail, PerformedSeriesCheck, PerformedSeriesEntry } from './model.ts';
import { performedSeries } from './mpps-scp.ts';
import type { MppsRecord, SqlMppsStore } from './sql-mpps-store.ts';
import type { DicomJsonDataSet } from '../dicom/dicom-json.ts';

export interface PerformedSeriesDeps {
  index: IndexStore;
  mpps: SqlMppsStore;
  /** The studies linked to an order (by accession number), to compare with. */
  linkedStudies: (accessionNumber: string) => Promise<string[]>;
}

const PAGE = 1000;

/** Every archived instance of a study: SOP Instance UID -> Series Instance UID. */
async function instancesOf(index: IndexStore, studyInstanceUid: string, into: Map<string, string>): Promise<void> {
  for (let offset = 0; ; offset += PAGE) {
    const series = await index.listSeries(studyInstanceUid, { limit: PAGE, offset });
    for (const s of series.items) {
      for (let o = 0; ; o += PAGE) {
        const instances = await index.listInstances(s.seriesInstanceUid, { limit: PAGE, offset: o });
        for (const i of instances.items) into.set(i.sopInstanceUid, s.seriesInstanceUid);
        if (o + PAGE >= instances.total) break;
      }
    }
    if (offset + PAGE >= series.total) break;
  }
}

/** The check of the given MPPS (their data sets, N-SETs applied); null when none of them names a series. */
export async function checkPerformedSeries(deps: PerformedSeriesDeps, list: (MppsRecord & { dataset: DicomJsonDataSet })[], extraStudies: string[] = []): Promise<PerformedSeriesCheck | null> {
  const named = new Map<string, Set<string>>();
  for (const m of list) {
    for (const s of performedSeries(m.dataset)) {
      if (!s.seriesInstanceUid) continue;
      const set = named.get(s.seriesInstanceUid) ?? new Set<string>();
      for (const i of s.instances) if (i.sopInstanceUid) set.add(i.sopInstanceUid);
      named.set(s.seriesInstanceUid, set);
    }
  }
  if (named.size === 0) return null;
  const studies = new Set<string>(extraStudies);
  for (const m of list) {
    for (const step of m.scheduledSteps) {
      if (step.studyInstanceUid) studies.add(step.studyInstanceUid);
      if (step.order) for (const uid of await deps.linkedStudies(step.order)) studies.add(uid);
    }
  }
  // A modality that made its own Study Instance UID: the named series says where its images went.
  for (const seriesUid of named.keys()) {
    const series = await deps.index.getSeries(seriesUid);
    if (series) studies.add(series.studyInstanceUid);
  }
  const archived = new Map<string, string>();
  const held: string[] = [];
  for (const uid of [...studies].sort()) {
    if (!(await deps.index.getStudy(uid))) continue;
    held.push(uid);
    await instancesOf(deps.index, uid, archived);
  }
  const allNamed = new Set([...named.values()].flatMap((s) => [...s]));
  const bySeries = new Map<string, string[]>();
  for (const [sop, series] of archived) if (!allNamed.has(sop)) bySeries.set(series, [...(bySeries.get(series) ?? []), sop]);
  const entries: PerformedSeriesEntry[] = [...named].map(([seriesInstanceUid, sops]) => {
    const missing = [...sops].filter((sop) => !archived.has(sop));
    return { seriesInstanceUid, performed: true, named: sops.size, archived: sops.size - missing.length, missing, unnamed: (bySeries.get(seriesInstanceUid) ?? []).sort() };
  });
  for (const [seriesInstanceUid, sops] of bySeries) {
    if (!named.has(seriesInstanceUid)) entries.push({ seriesInstanceUid, performed: false, named: 0, archived: 0, missing: [], unnamed: sops.sort() });
  }
  const missing = entries.reduce((n, e) => n + e.missing.length, 0);
  const unnamed = entries.reduce((n, e) => n + e.unnamed.length, 0);
  return {
    mpps: list.map((m) => m.sopInstanceUid), studies: held, named: allNamed.size, archived: allNamed.size - missing, missing, unnamed,
    complete: missing === 0 && unnamed === 0, series: entries,
  };
}

/** The check of one MPPS (its detail). */
export async function checkMpps(deps: PerformedSeriesDeps, uid: string): Promise<PerformedSeriesCheck | null> {
  const m = await deps.mpps.get(uid);
  return m ? await checkPerformedSeries(deps, [m]) : null;
}

/**
 * The check of an order: its final MPPS (COMPLETED or DISCONTINUED; the ones its timeline names, source
 * mpps) against its linked studies and the studies they name. null while no final MPPS names a series.
 */
export async function checkOrder(deps: PerformedSeriesDeps, order: OrderDetail): Promise<PerformedSeriesCheck | null> {
  const uids = [...new Set(order.timeline.filter((e) => e.source.kind === 'mpps' && e.source.ref).map((e) => e.source.ref!))];
  const list = [];
  for (const uid of uids) {
    const m = await deps.mpps.get(uid);
    if (m && m.status !== 'IN PROGRESS') list.push(m);
  }
  return await checkPerformedSeries(deps, list, order.studies.map((s) => s.studyInstanceUid));
}
