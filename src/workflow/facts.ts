/**
 * The facts routing rules are evaluated against, read from the index (never from the blobs) and the RIS: of
 * one stored instance (instance rules), or of a whole study (study-stable rules and the dry-run).
 */
import type { IndexStore, SeriesRecord, StudyRecord } from '../ports/index-store.ts';
import type { RoutingFacts } from './rule.ts';

/** The order a study is matched to, as far as routing cares. */
export type OrderLookup = (study: { accessionNumber: string | null; studyInstanceUid: string }) => Promise<{ priority: string; procedureCode: string | null } | null>;

export interface FactSources {
  index: IndexStore;
  order: OrderLookup;
}

type Json = Record<string, { Value?: unknown[] } | undefined>;

/** Code values of the Procedure Code Sequence (0008,1032) and Requested Procedure Code Sequence (0032,1064), top level or in the Request Attributes Sequence. */
export function procedureCodesOf(metadata: unknown): string[] {
  const codes: string[] = [];
  const fromSequence = (ds: Json, tag: string) => {
    for (const item of (ds[tag]?.Value ?? []) as Json[]) {
      const value = item?.['00080100']?.Value?.[0];
      if (typeof value === 'string') codes.push(value);
    }
  };
  if (!metadata || typeof metadata !== 'object') return codes;
  const ds = metadata as Json;
  fromSequence(ds, '00081032');
  fromSequence(ds, '00321064');
  for (const item of (ds['00400275']?.Value ?? []) as Json[]) if (item) fromSequence(item, '00321064');
  return codes;
}

const present = <T>(values: (T | null | undefined)[]): T[] => [...new Set(values.filter((v): v is T => v !== null && v !== undefined && v !== ''))];

async function orderFacts(sources: FactSources, study: StudyRecord | null, studyInstanceUid: string) {
  const order = await sources.order({ accessionNumber: study?.accessionNumber ?? null, studyInstanceUid });
  return { priority: order?.priority ?? null, procedureCode: order?.procedureCode ?? null };
}

/** The facts of one stored instance: its series' modality, body part and station, its study's description, its procedure codes. */
export async function instanceFacts(sources: FactSources, sopInstanceUid: string, source: string | null, at: Date): Promise<RoutingFacts | null> {
  const instance = await sources.index.findInstance(sopInstanceUid);
  if (!instance) return null;
  const [series, study, metadata] = await Promise.all([
    sources.index.getSeries(instance.seriesInstanceUid), sources.index.getStudy(instance.studyInstanceUid), sources.index.instanceMetadata(sopInstanceUid),
  ]);
  const order = await orderFacts(sources, study, instance.studyInstanceUid);
  return {
    studyInstanceUid: instance.studyInstanceUid,
    modalities: present([series?.modality]),
    source: source ?? instance.source,
    studyDescription: study?.studyDescription ?? null,
    procedureCodes: present([...procedureCodesOf(metadata), order.procedureCode]),
    bodyParts: present([series?.bodyPartExamined]),
    priority: order.priority,
    stations: present([series?.stationName]),
    at,
  };
}

/**
 * The facts of a whole study: every modality, body part and station of its series, the procedure codes of the
 * first instance of each series. `source` is the transport of the study's last instance when known.
 */
export async function studyFacts(sources: FactSources, studyInstanceUid: string, source: string | null, at: Date): Promise<RoutingFacts | null> {
  const study = await sources.index.getStudy(studyInstanceUid);
  if (!study) return null;
  const series: SeriesRecord[] = (await sources.index.listSeries(studyInstanceUid, { limit: 1000, offset: 0 })).items;
  const codes: string[] = [];
  let lastSource = source;
  for (const s of series) {
    const first = (await sources.index.listInstances(s.seriesInstanceUid, { limit: 1, offset: 0 })).items[0];
    if (!first) continue;
    codes.push(...procedureCodesOf(await sources.index.instanceMetadata(first.sopInstanceUid)));
    lastSource ??= first.source;
  }
  const order = await orderFacts(sources, study, studyInstanceUid);
  return {
    studyInstanceUid,
    modalities: present([...series.map((s) => s.modality), ...study.modalitiesInStudy]),
    source: lastSource,
    studyDescription: study.studyDescription,
    procedureCodes: present([...codes, order.procedureCode]),
    bodyParts: present(series.map((s) => s.bodyPartExamined)),
    priority: order.priority,
    stations: present(series.map((s) => s.stationName)),
    at,
  };
}
