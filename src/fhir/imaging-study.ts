/**
 * ImagingStudy (R4, as IHE's profiles use it): one per study of the index, generated from the study,
 * series and instance rows and the RIS's study-to-order links, never by opening a stored object. Its id is
 * the Study Instance UID (a UID is a valid FHIR id; a malformed one the archive flagged but kept, that is
 * not, is left out of FHIR).
 */
import { sql, type RawBuilder } from 'kysely';
import type { Coding, ImagingStudy, ImagingStudySeries } from '@medplum/fhirtypes';
import { all, any, studyVisibility, type FhirContext } from './context.ts';
import { dateCondition, dicomDateTimeRange } from './dates.ts';
import { invalid } from './operation-outcome.ts';
import { canonicalPatients, indexRowsOf, keyText, patientKeysOf, patientReference, type PatientKey } from './patients.ts';
import { referenceId, tokenValue, type ParsedSearch, type SearchDefinition, type SearchFilter } from './search-request.ts';
import { bodySiteCoding, lateralityCoding } from './anatomy.ts';
import {
  DICOM_CODE_SYSTEM, V2_0203, codingOf, displayName, fhirDateTime, fhirInstant, modalityCoding,
} from './values.ts';
import { ENDPOINT_DICOMWEB, ENDPOINT_IID } from './endpoint.ts';
import { chartExtensions, studyChartFacts } from './chart-links.ts';

export const DICOM_UID_SYSTEM = 'urn:dicom:uid';
const IMAGING_STUDY_STATUS = 'http://hl7.org/fhir/imagingstudy-status';

export const IMAGING_STUDY_SEARCH: SearchDefinition = {
  resourceType: 'ImagingStudy',
  parameters: [
    { code: '_id', type: 'token', expression: 'ImagingStudy.id', documentation: 'The logical id: the Study Instance UID' },
    { code: 'patient', type: 'reference', expression: "ImagingStudy.subject.where(resolve() is Patient)", definition: 'http://hl7.org/fhir/SearchParameter/clinical-patient',
      documentation: 'The study\'s patient: Patient/<id>' },
    { code: 'subject', type: 'reference', expression: 'ImagingStudy.subject', definition: 'http://hl7.org/fhir/SearchParameter/ImagingStudy-subject',
      documentation: 'The study\'s patient (the only kind of subject): Patient/<id>' },
    { code: 'identifier', type: 'token', expression: 'ImagingStudy.identifier', definition: 'http://hl7.org/fhir/SearchParameter/clinical-identifier', modifiers: ['of-type'],
      documentation: 'urn:dicom:uid|urn:oid:<Study Instance UID>, or the accession number (|value, value; :of-type=http://terminology.hl7.org/CodeSystem/v2-0203|ACSN|value)' },
    { code: 'started', type: 'date', expression: 'ImagingStudy.started', definition: 'http://hl7.org/fhir/SearchParameter/ImagingStudy-started',
      documentation: 'Study Date and Time, with the prefixes eq ne lt gt le ge sa eb' },
    { code: 'modality', type: 'token', expression: 'ImagingStudy.series.modality', definition: 'http://hl7.org/fhir/SearchParameter/ImagingStudy-modality',
      documentation: 'A modality of one of its series (DICOM code system, or the code alone)' },
    { code: 'status', type: 'token', expression: 'ImagingStudy.status', definition: 'http://hl7.org/fhir/SearchParameter/ImagingStudy-status',
      documentation: 'available (every study in the archive)' },
    { code: 'basedon', type: 'reference', expression: 'ImagingStudy.basedOn', definition: 'http://hl7.org/fhir/SearchParameter/ImagingStudy-basedon',
      documentation: 'The order the study was linked to: ServiceRequest/<id>' },
  ],
  sorts: ['started'],
  includes: ['ImagingStudy:subject', 'ImagingStudy:patient'],
};

interface StudyRow {
  pk: number;
  study_instance_uid: string;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  study_description: string | null;
  referring_physician_name: string | null;
  modalities_in_study: string;
  number_of_series: number;
  number_of_instances: number;
  updated_at: string;
  patient_id: string;
  issuer_of_patient_id: string;
  patient_name: string | null;
}

/** Studies whose UID can be a FHIR id (R4 `id`: 1-64 of [A-Za-z0-9.-]). */
function servable(ctx: FhirContext): RawBuilder<unknown> {
  return ctx.engine === 'postgres'
    ? sql`(length(s.study_instance_uid) <= 64 and s.study_instance_uid !~ '[^A-Za-z0-9.-]')`
    : sql`(length(s.study_instance_uid) <= 64 and s.study_instance_uid not glob '*[^A-Za-z0-9.-]*')`;
}

function uidOfIdentifier(value: string): string {
  return value.startsWith('urn:oid:') ? value.slice(8) : value;
}

async function conditions(ctx: FhirContext, filters: readonly SearchFilter[]): Promise<RawBuilder<unknown>[]> {
  const out: RawBuilder<unknown>[] = [];
  for (const f of filters) {
    switch (f.code) {
      case '_id':
        out.push(sql`s.study_instance_uid in (${sql.join(f.values)})`);
        break;
      case 'patient':
      case 'subject': {
        const pks = (await Promise.all(patientKeysOf(f, ctx).map((k) => indexRowsOf(ctx, k)))).flat();
        out.push(pks.length ? sql`s.patient_pk in (${sql.join(pks)})` : sql`1 = 0`);
        break;
      }
      case 'identifier':
        out.push(any(f.values.map((v) => {
          if (f.modifier === 'of-type') {
            const [typeSystem, typeCode, ...rest] = v.split('|');
            const value = rest.join('|');
            if (rest.length === 0 || !value) throw invalid(`identifier:of-type needs system|code|value, not "${v}"`, 'identifier');
            return typeSystem === V2_0203 && typeCode === 'ACSN' ? sql`s.accession_number = ${value}` : sql`1 = 0`;
          }
          const { system, code } = tokenValue(v);
          if (system === DICOM_UID_SYSTEM) return sql`s.study_instance_uid = ${uidOfIdentifier(code)}`;
          if (system === '') return sql`s.accession_number = ${code}`;
          if (system !== null) return sql`1 = 0`;
          return sql`(s.study_instance_uid = ${uidOfIdentifier(code)} or s.accession_number = ${code})`;
        })));
        break;
      case 'started':
        out.push(any(f.dates.map((d) => dateCondition(d.prefix, d.range, dicomDateTimeRange(sql`s.study_date`, sql`s.study_time`)))));
        break;
      case 'modality': {
        const codes = f.values.map(tokenValue).filter((t) => t.system === null || t.system === DICOM_CODE_SYSTEM).map((t) => t.code);
        out.push(codes.length ? sql`exists (select 1 from series se where se.study_pk = s.pk and se.modality in (${sql.join(codes)}))` : sql`1 = 0`);
        break;
      }
      case 'status':
        out.push(f.values.map(tokenValue).some((t) => t.code === 'available' && (t.system === null || t.system === IMAGING_STUDY_STATUS)) ? sql`1 = 1` : sql`1 = 0`);
        break;
      case 'basedon': {
        const pks = f.values.map((v) => referenceId(v, 'ServiceRequest', ctx.base)).filter((id): id is string => id !== null && /^\d{1,15}$/.test(id)).map(Number);
        out.push(pks.length
          ? sql`exists (select 1 from ris_order_study os where os.study_instance_uid = s.study_instance_uid and os.order_pk in (${sql.join(pks)}))`
          : sql`1 = 0`);
        break;
      }
    }
  }
  return out;
}

const COLUMNS = sql`s.pk, s.study_instance_uid, s.study_date, s.study_time, s.accession_number, s.study_description, s.referring_physician_name,
  s.modalities_in_study, s.number_of_series, s.number_of_instances, s.updated_at, p.patient_id, p.issuer_of_patient_id, p.patient_name`;

async function where(ctx: FhirContext, filters: readonly SearchFilter[]): Promise<RawBuilder<unknown>> {
  const parts = [servable(ctx), ...await conditions(ctx, filters)];
  const visible = await studyVisibility(ctx, 's');
  if (visible) parts.push(visible);
  return all(parts);
}

export interface ImagingStudyResults {
  total: number;
  resources: ImagingStudy[];
  /** The patients of the studies on the page, for _include and the audit record. */
  patients: PatientKey[];
}

export async function searchImagingStudies(ctx: FhirContext, search: ParsedSearch): Promise<ImagingStudyResults> {
  const condition = await where(ctx, search.filters);
  const counted = await sql<{ n: number | string }>`select count(*) as n from study s where ${condition}`.execute(ctx.db);
  const total = Number(counted.rows[0]?.n ?? 0);
  if (search.count === 0) return { total, resources: [], patients: [] };
  const started = search.sort.find((s) => s.code === 'started');
  // Newest first by default: the order of the study list's index (migration 0005); ties by the row.
  const direction = sql.raw(started && !started.descending ? 'asc' : 'desc');
  const rows = await sql<StudyRow>`select ${COLUMNS} from study s join patient p on p.pk = s.patient_pk where ${condition}
    order by s.study_date ${direction} nulls last, s.study_time ${direction} nulls last, s.pk ${direction} limit ${search.count} offset ${search.offset}`.execute(ctx.db);
  return { ...await toResources(ctx, rows.rows, search.summary), total };
}

/** ImagingStudy/{Study Instance UID}, or null (not in the index, or not the caller's). */
export async function readImagingStudy(ctx: FhirContext, uid: string): Promise<ImagingStudyResults['resources'][number] | null> {
  const condition = await where(ctx, [{ code: '_id', type: 'token', modifier: null, values: [uid], dates: [] }]);
  const rows = await sql<StudyRow>`select ${COLUMNS} from study s join patient p on p.pk = s.patient_pk where ${condition}`.execute(ctx.db);
  return (await toResources(ctx, rows.rows, false)).resources[0] ?? null;
}

interface SeriesRow {
  pk: number;
  study_pk: number;
  series_instance_uid: string;
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
  body_part_examined: string | null;
  laterality: string | null;
  series_date: string | null;
  series_time: string | null;
  number_of_instances: number;
}

async function toResources(ctx: FhirContext, rows: StudyRow[], summary: boolean): Promise<ImagingStudyResults> {
  if (rows.length === 0) return { total: 0, resources: [], patients: [] };
  const studyPks = rows.map((r) => Number(r.pk));
  const uids = rows.map((r) => r.study_instance_uid);
  const [series, orders, canonical, chart] = await Promise.all([
    ctx.db.selectFrom('series').select(['pk', 'study_pk', 'series_instance_uid', 'modality', 'series_number', 'series_description', 'body_part_examined', 'laterality',
      'series_date', 'series_time', 'number_of_instances']).where('study_pk', 'in', studyPks).orderBy('series_number').orderBy('pk').execute() as Promise<SeriesRow[]>,
    ctx.db.selectFrom('ris_order_study as os').innerJoin('ris_order as o', 'o.pk', 'os.order_pk')
      .select(['os.study_instance_uid', 'o.pk', 'o.requested_procedure_code', 'o.requested_procedure_description'])
      .where('os.study_instance_uid', 'in', uids).execute(),
    canonicalPatients(ctx, rows.map((r) => ({ patientId: r.patient_id, issuer: r.issuer_of_patient_id }))),
    studyChartFacts(ctx, studyPks),
  ]);
  const instances = summary || series.length === 0 ? [] : await ctx.db.selectFrom('instance')
    .select(['series_pk', 'sop_instance_uid', 'sop_class_uid', 'instance_number']).where('series_pk', 'in', series.map((s) => Number(s.pk)))
    .orderBy('instance_number').orderBy('pk').execute();
  const instancesBySeries = Map.groupBy(instances, (i) => Number(i.series_pk));
  const indexedCodes = await procedureCodesOfIndex(ctx, rows.filter((r) => !orders.some((o) => o.study_instance_uid === r.study_instance_uid && o.requested_procedure_code)).map((r) => Number(r.pk)));
  const seriesByStudy = Map.groupBy(series, (s) => Number(s.study_pk));
  const ordersByStudy = Map.groupBy(orders, (o) => String(o.study_instance_uid));
  const patients = new Map<string, PatientKey>();

  const resources = rows.map((row): ImagingStudy => {
    const key = canonical.get(keyText({ patientId: row.patient_id, issuer: row.issuer_of_patient_id }))!;
    patients.set(keyText(key), key);
    const linked = ordersByStudy.get(row.study_instance_uid) ?? [];
    const started = fhirDateTime(row.study_date, row.study_time);
    const modalities = [...new Set(String(row.modalities_in_study ?? '').split('\\').map((m) => m.trim()).filter(Boolean))];
    const referrer = displayName(row.referring_physician_name);
    const procedureCodes: { coding: Coding[]; text?: string }[] = linked.filter((o) => o.requested_procedure_code).map((o) => {
      const code = JSON.parse(String(o.requested_procedure_code)) as { code: string; scheme: string; meaning: string };
      return { coding: [codingOf(code)], ...(code.meaning || o.requested_procedure_description ? { text: String(code.meaning || o.requested_procedure_description) } : {}) };
    });
    if (procedureCodes.length === 0) procedureCodes.push(...(indexedCodes.get(Number(row.pk)) ?? []));
    const updated = fhirInstant(row.updated_at);
    const facts = chart.get(Number(row.pk));
    const extension = chartExtensions(ctx, row.study_instance_uid, facts);
    const studySeries = (seriesByStudy.get(Number(row.pk)) ?? []).map((s): ImagingStudySeries => {
      const bodySite = bodySiteCoding(s.body_part_examined);
      const laterality = lateralityCoding(s.laterality);
      const seriesStarted = fhirDateTime(s.series_date, s.series_time);
      const items = instancesBySeries.get(Number(s.pk)) ?? [];
      return {
        uid: s.series_instance_uid,
        ...(s.series_number !== null && s.series_number !== undefined ? { number: Number(s.series_number) } : {}),
        // Modality is 1..1 in R4; a series without (0008,0060) is OT (Other), as DICOM has it.
        modality: modalityCoding(s.modality?.trim() || 'OT'),
        ...(s.series_description ? { description: s.series_description } : {}),
        numberOfInstances: Number(s.number_of_instances),
        endpoint: [{ reference: `Endpoint/${ENDPOINT_DICOMWEB}` }],
        ...(bodySite ? { bodySite } : {}), ...(laterality ? { laterality } : {}), ...(seriesStarted ? { started: seriesStarted } : {}),
        ...(items.length ? {
          instance: items.map((i) => ({
            uid: String(i.sop_instance_uid), sopClass: { system: 'urn:ietf:rfc:3986', code: `urn:oid:${i.sop_class_uid}` } satisfies Coding,
            ...(i.instance_number !== null && i.instance_number !== undefined ? { number: Number(i.instance_number) } : {}),
            // A KOS's document title (Of Interest, For Teaching ...), so that a chart can tell the key image selections.
            ...(facts?.kosTitles.has(String(i.sop_instance_uid)) ? { title: facts.kosTitles.get(String(i.sop_instance_uid))! } : {}),
          })),
        } : {}),
      };
    });
    return {
      resourceType: 'ImagingStudy', id: row.study_instance_uid,
      ...(updated ? { meta: { lastUpdated: updated } } : {}),
      ...(extension.length ? { extension } : {}),
      identifier: [
        { use: 'official', system: DICOM_UID_SYSTEM, value: `urn:oid:${row.study_instance_uid}` },
        ...(row.accession_number ? [{ use: 'usual' as const, type: { coding: [{ system: V2_0203, code: 'ACSN' }] }, value: row.accession_number }] : []),
      ],
      status: 'available',
      ...(modalities.length ? { modality: modalities.map(modalityCoding) } : {}),
      subject: patientReference(key, row.patient_name),
      ...(started ? { started } : {}),
      ...(linked.length ? { basedOn: linked.map((o) => ({ reference: `ServiceRequest/${Number(o.pk)}` })) } : {}),
      ...(referrer ? { referrer: { display: referrer } } : {}),
      // WADO-RS first (where the instances are), then the viewer launch (IHE IID) of the study.
      endpoint: [{ reference: `Endpoint/${ENDPOINT_DICOMWEB}` }, { reference: `Endpoint/${ENDPOINT_IID}` }],
      numberOfSeries: Number(row.number_of_series),
      numberOfInstances: Number(row.number_of_instances),
      ...(procedureCodes.length ? { procedureCode: procedureCodes } : {}),
      ...(row.study_description ? { description: row.study_description } : {}),
      ...(studySeries.length ? { series: studySeries } : {}),
    };
  });
  return { total: rows.length, resources, patients: [...patients.values()] };
}

/**
 * The Procedure Code Sequence (0008,1032) of studies without an order code, from the DICOM JSON the index
 * keeps of each study's first instance (no stored object is opened).
 */
async function procedureCodesOfIndex(ctx: FhirContext, studyPks: number[]): Promise<Map<number, { coding: Coding[]; text?: string }[]>> {
  const out = new Map<number, { coding: Coding[]; text?: string }[]>();
  if (studyPks.length === 0) return out;
  const first = await ctx.db.selectFrom('instance as i').innerJoin('series as se', 'se.pk', 'i.series_pk')
    .select(['se.study_pk', (eb) => eb.fn.min('i.pk').as('pk')]).where('se.study_pk', 'in', studyPks).groupBy('se.study_pk').execute();
  if (first.length === 0) return out;
  const rows = await ctx.db.selectFrom('instance as i').innerJoin('series as se', 'se.pk', 'i.series_pk').select(['se.study_pk', 'i.metadata'])
    .where('i.pk', 'in', first.map((f) => Number(f.pk))).execute();
  for (const row of rows) {
    let items: any[] = [];
    try { items = (JSON.parse(String(row.metadata)) as Record<string, any>)['00081032']?.Value ?? []; } catch { continue; }
    const codes = items.flatMap((item) => {
      const value = (tag: string) => item?.[tag]?.Value?.[0];
      const code = value('00080100') ?? value('00080119');
      if (typeof code !== 'string' || !code) return [];
      const meaning = typeof value('00080104') === 'string' ? value('00080104') as string : '';
      return [{ coding: [codingOf({ code, scheme: String(value('00080102') ?? ''), meaning })], ...(meaning ? { text: meaning } : {}) }];
    });
    if (codes.length) out.set(Number(row.study_pk), codes);
  }
  return out;
}
