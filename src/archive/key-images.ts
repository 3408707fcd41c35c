/**
 * The key images of a study, for a patient chart: the instances its Key Object Selection documents
 * (PS3.3 A.35.4, TID 2000) select, read from the KOS content. The index finds the KOS instances of the
 * study (by SOP Class UID, no blob opened for a study without one); each KOS is then read whole (they are
 * a few kilobytes) through the retrieve service. KOS that are not selections of key images are left out:
 * IHE IOCM rejection notes, whose instances are left out too, and XDS-I manifests (whole-study lists).
 */
import { Part10Reader } from '../dicom/part10-reader.ts';
import { characterSetOf, findElement, stringValue, stringValues, type DataSet } from '../dicom/dataset.ts';
import { AtriumError } from '../errors.ts';
import type { IndexStore, InstanceRecord } from '../ports/index-store.ts';
import type { StoredInstanceReader } from '../ports/stored-instance-reader.ts';

export const KEY_OBJECT_SELECTION_DOCUMENT_STORAGE = '1.2.840.10008.5.1.4.1.1.88.59';

/** Document titles (CID 7010, scheme DCM) of KOS that reject instances (IHE IOCM): not key images. */
export const REJECTION_NOTE_TITLES: ReadonlySet<string> = new Set([
  '113001', // Rejected for Quality Reasons
  '113037', // Rejected for Patient Safety Reasons
  '113038', // Incorrect Modality Worklist Entry
  '113039', // Data Retention Policy Expired
]);

/** Document titles (CID 7010) of manifests (XDS-I, complete study or acquisition content): lists, not a selection. */
export const MANIFEST_TITLES: ReadonlySet<string> = new Set(['113030', '113031', '113032', '113033', '113034', '113035']);

/** A KOS larger than this is not read (a selection of key images is a few kilobytes). */
const MAX_KOS_BYTES = 16 * 1024 * 1024;

const Tag = {
  SOPInstanceUID: 0x00080018,
  ContentDate: 0x00080023,
  ContentTime: 0x00080033,
  CodeValue: 0x00080100,
  CodingSchemeDesignator: 0x00080102,
  CodeMeaning: 0x00080104,
  ReferencedSeriesSequence: 0x00081115,
  ReferencedSOPClassUID: 0x00081150,
  ReferencedSOPInstanceUID: 0x00081155,
  ReferencedFrameNumber: 0x00081160,
  ReferencedSOPSequence: 0x00081199,
  StudyInstanceUID: 0x0020000d,
  SeriesInstanceUID: 0x0020000e,
  ValueType: 0x0040a040,
  ConceptNameCodeSequence: 0x0040a043,
  TextValue: 0x0040a160,
  CurrentRequestedProcedureEvidenceSequence: 0x0040a375,
  ContentSequence: 0x0040a730,
} as const;

export interface CodedTitle {
  code: string;
  scheme: string;
  meaning: string;
}

/** One Key Object Selection document of the study. */
export interface KeyObjectSelection {
  sopInstanceUid: string;
  seriesInstanceUid: string;
  /** The document title (CID 7010): Of Interest, For Referring Provider, For Teaching ... */
  title: CodedTitle | null;
  /** The Key Object Description (TEXT, concept 113012), when given. */
  description: string | null;
  contentDate: string | null;
  contentTime: string | null;
}

/** One instance a KOS selects, with where to get it. Paths are relative to the server's base URL. */
export interface KeyImage {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  /** Frames selected (Referenced Frame Number), null: the whole instance. */
  frames: number[] | null;
  /** The KOS that select it. */
  selectedBy: string[];
  /** Whether the archive holds it (a KOS may reference what was never sent, or was deleted). */
  stored: boolean;
  /** WADO-RS rendered (image/jpeg by default, PS3.18 9.5.1.2), of each selected frame; null when not stored or not an image. */
  rendered: string | null;
  renderedFrames: string[] | null;
  /** 128-pixel thumbnail (PS3.18 9.5.1.2.2), of the first selected frame; null when not stored or not an image. */
  thumbnail: string | null;
  /** WADO-RS retrieve of the instance; null when not stored. */
  retrieve: string | null;
}

export interface StudyKeyImages {
  studyInstanceUid: string;
  keyObjectSelections: KeyObjectSelection[];
  keyImages: KeyImage[];
  /** KOS that could not be read (their SOP Instance UID and why), so that a chart can say some are missing. */
  unreadable: { sopInstanceUid: string; reason: string }[];
}

interface Reference {
  studyInstanceUid: string | null;
  seriesInstanceUid: string | null;
  sopClassUid: string;
  sopInstanceUid: string;
  frames: number[] | null;
}

interface ParsedKos {
  title: CodedTitle | null;
  description: string | null;
  contentDate: string | null;
  contentTime: string | null;
  /** The content tree's IMAGE / COMPOSITE references, in document order. */
  selected: Reference[];
  /** Current Requested Procedure Evidence: SOP Instance UID -> its study and series. */
  evidence: Map<string, { studyInstanceUid: string; seriesInstanceUid: string; sopClassUid: string }>;
}

function items(ds: DataSet, tag: number): DataSet[] {
  return findElement(ds, tag)?.items ?? [];
}

function codeOf(ds: DataSet, tag: number, charset: string[] | undefined): CodedTitle | null {
  const item = items(ds, tag)[0];
  if (!item) return null;
  const code = stringValue(item, Tag.CodeValue) ?? '';
  return code ? { code, scheme: stringValue(item, Tag.CodingSchemeDesignator) ?? '', meaning: stringValue(item, Tag.CodeMeaning, charset) ?? '' } : null;
}

/** Reads the parts of a KOS that name what it selects (PS3.3 C.17.2 SR Document General, C.17.3 SR Document Content). */
export function parseKeyObjectSelection(root: DataSet): ParsedKos {
  const charset = characterSetOf(root);
  const evidence: ParsedKos['evidence'] = new Map();
  for (const study of items(root, Tag.CurrentRequestedProcedureEvidenceSequence)) {
    const studyInstanceUid = stringValue(study, Tag.StudyInstanceUID) ?? '';
    for (const series of items(study, Tag.ReferencedSeriesSequence)) {
      const seriesInstanceUid = stringValue(series, Tag.SeriesInstanceUID) ?? '';
      for (const sop of items(series, Tag.ReferencedSOPSequence)) {
        const uid = stringValue(sop, Tag.ReferencedSOPInstanceUID);
        if (uid) evidence.set(uid, { studyInstanceUid, seriesInstanceUid, sopClassUid: stringValue(sop, Tag.ReferencedSOPClassUID) ?? '' });
      }
    }
  }
  const selected: Reference[] = [];
  let description: string | null = null;
  // TID 2000 is flat (the root container CONTAINS the references), but walk nested containers too.
  const walk = (container: DataSet) => {
    for (const item of items(container, Tag.ContentSequence)) {
      const type = stringValue(item, Tag.ValueType);
      if (type === 'IMAGE' || type === 'COMPOSITE' || type === 'WAVEFORM') {
        for (const sop of items(item, Tag.ReferencedSOPSequence)) {
          const uid = stringValue(sop, Tag.ReferencedSOPInstanceUID);
          if (!uid) continue;
          const frames = (stringValues(sop, Tag.ReferencedFrameNumber) ?? []).map(Number).filter((n) => Number.isInteger(n) && n > 0);
          selected.push({ studyInstanceUid: null, seriesInstanceUid: null, sopClassUid: stringValue(sop, Tag.ReferencedSOPClassUID) ?? '', sopInstanceUid: uid, frames: frames.length ? frames : null });
        }
      } else if (type === 'TEXT' && codeOf(item, Tag.ConceptNameCodeSequence, charset)?.code === '113012') {
        description ??= stringValue(item, Tag.TextValue, charset) ?? null;
      } else if (type === 'CONTAINER') {
        walk(item);
      }
    }
  };
  walk(root);
  // A KOS without content items (not conformant, but seen) still names its instances in the evidence.
  if (selected.length === 0) {
    for (const [uid, e] of evidence) selected.push({ studyInstanceUid: null, seriesInstanceUid: null, sopClassUid: e.sopClassUid, sopInstanceUid: uid, frames: null });
  }
  for (const ref of selected) {
    const e = evidence.get(ref.sopInstanceUid);
    if (e) { ref.studyInstanceUid = e.studyInstanceUid || null; ref.seriesInstanceUid = e.seriesInstanceUid || null; ref.sopClassUid ||= e.sopClassUid; }
  }
  return {
    title: codeOf(root, Tag.ConceptNameCodeSequence, charset), description,
    contentDate: stringValue(root, Tag.ContentDate) ?? null, contentTime: stringValue(root, Tag.ContentTime) ?? null, selected, evidence,
  };
}

/** The WADO-RS paths of an instance under /dicom-web. */
export function instancePaths(studyInstanceUid: string, seriesInstanceUid: string, sopInstanceUid: string) {
  const instance = `/dicom-web/studies/${studyInstanceUid}/series/${seriesInstanceUid}/instances/${sopInstanceUid}`;
  return {
    retrieve: instance,
    rendered: `${instance}/rendered`,
    thumbnail: `${instance}/thumbnail`,
    frameRendered: (frame: number) => `${instance}/frames/${frame}/rendered`,
    frameThumbnail: (frame: number) => `${instance}/frames/${frame}/thumbnail`,
  };
}

export interface KeyImageDeps {
  index: IndexStore;
  retrieve: Pick<StoredInstanceReader, 'readInstance'>;
}

async function readKos(deps: KeyImageDeps, record: InstanceRecord): Promise<DataSet> {
  if (record.sizeBytes > MAX_KOS_BYTES) throw new Error(`${record.sizeBytes} bytes, more than a key object selection holds`);
  const reader = new Part10Reader({ bulkThreshold: MAX_KOS_BYTES });
  for await (const chunk of await deps.retrieve.readInstance(record)) reader.push(chunk as Uint8Array);
  return reader.end().dataset;
}

/**
 * The key images of a study: every instance its KOS select (but rejection notes and manifests), once each
 * (the frames and the KOS selecting it merged), in the order of the documents (oldest first) and of their
 * content; instances a rejection note of the study rejects are left out. Throws not-found for an unknown
 * study.
 */
export async function studyKeyImages(deps: KeyImageDeps, studyInstanceUid: string): Promise<StudyKeyImages> {
  const study = await deps.index.getStudy(studyInstanceUid);
  if (!study) throw new AtriumError('not-found', `no study ${studyInstanceUid}`);
  const result: StudyKeyImages = { studyInstanceUid, keyObjectSelections: [], keyImages: [], unreadable: [] };
  if (!study.sopClassesInStudy.includes(KEY_OBJECT_SELECTION_DOCUMENT_STORAGE)) return result;

  const kosUids: string[] = [];
  for await (const match of deps.index.find({
    level: 'IMAGE', root: 'STUDY', relational: true,
    keys: [
      { tag: Tag.StudyInstanceUID, vr: 'UI', value: studyInstanceUid },
      { tag: 0x00080016, vr: 'UI', value: KEY_OBJECT_SELECTION_DOCUMENT_STORAGE },
      { tag: Tag.SeriesInstanceUID, vr: 'UI', value: '' },
      { tag: Tag.SOPInstanceUID, vr: 'UI', value: '' },
    ],
  })) {
    const uid = match['00080018']?.Value?.[0];
    if (typeof uid === 'string') kosUids.push(uid);
  }

  const documents: { kos: KeyObjectSelection; parsed: ParsedKos }[] = [];
  for (const uid of kosUids) {
    const record = await deps.index.findInstance(uid);
    if (!record) continue; // deleted since the query
    try {
      const parsed = parseKeyObjectSelection(await readKos(deps, record));
      documents.push({
        kos: { sopInstanceUid: uid, seriesInstanceUid: record.seriesInstanceUid, title: parsed.title, description: parsed.description, contentDate: parsed.contentDate, contentTime: parsed.contentTime },
        parsed,
      });
    } catch (error) {
      result.unreadable.push({ sopInstanceUid: uid, reason: (error as Error).message });
    }
  }
  documents.sort((a, b) => `${a.kos.contentDate ?? ''}${a.kos.contentTime ?? ''}`.localeCompare(`${b.kos.contentDate ?? ''}${b.kos.contentTime ?? ''}`));

  const isScheme = (title: CodedTitle | null, codes: ReadonlySet<string>) => title !== null && title.scheme === 'DCM' && codes.has(title.code);
  const rejected = new Set(documents.filter((d) => isScheme(d.parsed.title, REJECTION_NOTE_TITLES)).flatMap((d) => d.parsed.selected.map((r) => r.sopInstanceUid)));
  const byUid = new Map<string, KeyImage>();
  for (const { kos, parsed } of documents) {
    if (isScheme(parsed.title, REJECTION_NOTE_TITLES) || isScheme(parsed.title, MANIFEST_TITLES)) continue;
    result.keyObjectSelections.push(kos);
    for (const ref of parsed.selected) {
      if (rejected.has(ref.sopInstanceUid)) continue;
      const known = byUid.get(ref.sopInstanceUid);
      if (known) {
        if (!known.selectedBy.includes(kos.sopInstanceUid)) known.selectedBy.push(kos.sopInstanceUid);
        known.frames = known.frames === null || ref.frames === null ? null : [...new Set([...known.frames, ...ref.frames])].sort((a, b) => a - b);
        continue;
      }
      const image: KeyImage = {
        studyInstanceUid: ref.studyInstanceUid ?? studyInstanceUid, seriesInstanceUid: ref.seriesInstanceUid ?? '', sopInstanceUid: ref.sopInstanceUid,
        sopClassUid: ref.sopClassUid, frames: ref.frames, selectedBy: [kos.sopInstanceUid], stored: false,
        rendered: null, renderedFrames: null, thumbnail: null, retrieve: null,
      };
      byUid.set(ref.sopInstanceUid, image);
      result.keyImages.push(image);
    }
  }
  // Where each is, from the index (the KOS's evidence may be incomplete or wrong: the index is the truth).
  for (const image of result.keyImages) {
    const stored = await deps.index.findInstance(image.sopInstanceUid);
    if (!stored) continue;
    Object.assign(image, { stored: true, studyInstanceUid: stored.studyInstanceUid, seriesInstanceUid: stored.seriesInstanceUid, sopClassUid: stored.sopClassUid });
    const paths = instancePaths(stored.studyInstanceUid, stored.seriesInstanceUid, stored.sopInstanceUid);
    image.retrieve = paths.retrieve;
    if (stored.rows !== null && stored.columns !== null) {
      image.rendered = image.frames ? paths.frameRendered(image.frames[0]!) : paths.rendered;
      image.renderedFrames = image.frames ? image.frames.map(paths.frameRendered) : null;
      image.thumbnail = image.frames ? paths.frameThumbnail(image.frames[0]!) : paths.thumbnail;
    }
  }
  return result;
}
