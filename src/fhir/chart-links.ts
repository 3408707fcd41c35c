/**
 * What a patient chart shows of a study besides the study itself (issue 10, docs/ehr.md): its thumbnail and
 * its key images, as two Atrium extensions on ImagingStudy whose values are the URLs of Atrium's own
 * resources (docs/fhir.md "Thumbnail and key images"). Told from the index only: a study has a thumbnail when
 * one of its instances has Rows (an image); it has key images when one of its Key Object Selection documents
 * is a selection, not an IOCM rejection note or a manifest, by the document title (0040,A043) the index's
 * DICOM JSON of the KOS holds. The KOS content (which instances it selects) is read by the key images
 * resource (src/archive/key-images.ts), not here.
 */
import { sql } from 'kysely';
import type { Extension } from '@medplum/fhirtypes';
import { KEY_OBJECT_SELECTION_DOCUMENT_STORAGE, MANIFEST_TITLES, REJECTION_NOTE_TITLES } from '../archive/key-images.ts';
import type { FhirContext } from './context.ts';

/** Canonical URLs of the two extensions, under the FHIR base the client reached (as every URL Atrium serves is). */
export function thumbnailExtensionUrl(ctx: FhirContext): string {
  return `${ctx.base}/StructureDefinition/imagingstudy-thumbnail`;
}

export function keyImagesExtensionUrl(ctx: FhirContext): string {
  return `${ctx.base}/StructureDefinition/imagingstudy-key-images`;
}

export interface StudyChartFacts {
  /** The study has an instance with pixels (Rows in the index). */
  image: boolean;
  /** The study has a KOS that selects key images. */
  keyImages: boolean;
  /** SOP Instance UID of each of its KOS -> the document title's meaning (for ImagingStudy.series.instance.title). */
  kosTitles: Map<string, string>;
}

/** The chart facts of the studies (by study pk): two statements for a page of studies, over the index's rows. */
export async function studyChartFacts(ctx: FhirContext, studyPks: readonly number[]): Promise<Map<number, StudyChartFacts>> {
  const out = new Map<number, StudyChartFacts>();
  if (studyPks.length === 0) return out;
  for (const pk of studyPks) out.set(pk, { image: false, keyImages: false, kosTitles: new Map() });
  const [images, kos] = await Promise.all([
    sql<{ study_pk: number }>`select distinct se.study_pk from series se where se.study_pk in (${sql.join(studyPks)})
      and exists (select 1 from instance i where i.series_pk = se.pk and i.rows is not null)`.execute(ctx.db),
    ctx.db.selectFrom('instance as i').innerJoin('series as se', 'se.pk', 'i.series_pk').select(['se.study_pk', 'i.sop_instance_uid', 'i.metadata'])
      .where('se.study_pk', 'in', studyPks).where('i.sop_class_uid', '=', KEY_OBJECT_SELECTION_DOCUMENT_STORAGE).execute(),
  ]);
  for (const row of images.rows) out.get(Number(row.study_pk))!.image = true;
  for (const row of kos) {
    const facts = out.get(Number(row.study_pk))!;
    const title = documentTitle(String(row.metadata));
    if (title?.meaning) facts.kosTitles.set(String(row.sop_instance_uid), title.meaning);
    // A KOS without a readable title is still listed by the key images resource: count it as a selection.
    if (!title || !(title.scheme === 'DCM' && (REJECTION_NOTE_TITLES.has(title.code) || MANIFEST_TITLES.has(title.code)))) facts.keyImages = true;
  }
  return out;
}

/** The Concept Name Code Sequence (0040,A043) of a KOS's DICOM JSON: its document title (CID 7010). */
function documentTitle(metadata: string): { code: string; scheme: string; meaning: string } | null {
  try {
    const item = (JSON.parse(metadata) as Record<string, any>)['0040A043']?.Value?.[0];
    const value = (tag: string) => item?.[tag]?.Value?.[0];
    const code = value('00080100');
    if (typeof code !== 'string') return null;
    return { code, scheme: String(value('00080102') ?? ''), meaning: typeof value('00080104') === 'string' ? value('00080104') : '' };
  } catch {
    return null;
  }
}

/** The extensions of one ImagingStudy (none when the study has neither a thumbnail nor key images). */
export function chartExtensions(ctx: FhirContext, studyInstanceUid: string, facts: StudyChartFacts | undefined): Extension[] {
  const study = encodeURIComponent(studyInstanceUid);
  return [
    ...(facts?.image ? [{ url: thumbnailExtensionUrl(ctx), valueUrl: `${ctx.origin}/dicom-web/studies/${study}/thumbnail` }] : []),
    ...(facts?.keyImages ? [{ url: keyImagesExtensionUrl(ctx), valueUrl: `${ctx.origin}/api/studies/${study}/key-images` }] : []),
  ];
}
