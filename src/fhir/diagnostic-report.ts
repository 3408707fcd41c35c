/**
 * DiagnosticReport: the report of an order (ORU^R01, or created through FHIR). One resource per order, its
 * id the order's, whose versions are the RIS's report versions (meta.versionId; vread at
 * DiagnosticReport/{id}/_history/{version}). Status: P preliminary, F final, and every version after a
 * final (C, or a second F) amended, as the order's status says.
 */
import { sql, type RawBuilder } from 'kysely';
import type { DiagnosticReport } from '@medplum/fhirtypes';
import { all, any, type FhirContext } from './context.ts';
import { dateCondition, hl7TimestampRange } from './dates.ts';
import { patientKeysOf, patientReference, type PatientKey } from './patients.ts';
import { referenceId, tokenValue, type ParsedSearch, type SearchDefinition, type SearchFilter } from './search-request.ts';
import { orderIdentifiers, orderPk, patientCondition } from './service-request.ts';
import { codingOf, dateTimeOfHl7OrIso, displayName, fhirInstant } from './values.ts';

export const DIAGNOSTIC_REPORT_SEARCH: SearchDefinition = {
  resourceType: 'DiagnosticReport',
  parameters: [
    { code: '_id', type: 'token', expression: 'DiagnosticReport.id', documentation: 'The logical id: the order\'s number in Atrium' },
    { code: 'patient', type: 'reference', expression: "DiagnosticReport.subject.where(resolve() is Patient)", definition: 'http://hl7.org/fhir/SearchParameter/clinical-patient',
      documentation: 'The report\'s patient: Patient/<id>' },
    { code: 'subject', type: 'reference', expression: 'DiagnosticReport.subject', definition: 'http://hl7.org/fhir/SearchParameter/DiagnosticReport-subject',
      documentation: 'The report\'s patient: Patient/<id>' },
    { code: 'based-on', type: 'reference', expression: 'DiagnosticReport.basedOn', definition: 'http://hl7.org/fhir/SearchParameter/DiagnosticReport-based-on',
      documentation: 'The order reported on: ServiceRequest/<id>' },
    { code: 'status', type: 'token', expression: 'DiagnosticReport.status', definition: 'http://hl7.org/fhir/SearchParameter/DiagnosticReport-status',
      documentation: 'preliminary, final or amended' },
    { code: 'date', type: 'date', expression: 'DiagnosticReport.effective', definition: 'http://hl7.org/fhir/SearchParameter/clinical-date',
      documentation: 'The observation time (OBR-7), with the prefixes eq ne lt gt le ge sa eb' },
  ],
  sorts: ['date', 'issued'],
  includes: ['DiagnosticReport:subject', 'DiagnosticReport:patient'],
};

const STATUS_SYSTEM = 'http://hl7.org/fhir/diagnostic-report-status';
const LOINC_IMAGING = { system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' };
const RADIOLOGY = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD', display: 'Radiology' }] };

/** The FHIR status of the report version `r`: amended once an earlier version was final. */
const STATUS = sql`(case when r.status = 'P' then 'preliminary'
  when r.status = 'C' or exists (select 1 from ris_report r0 where r0.order_pk = r.order_pk and r0.version < r.version and r0.status in ('F', 'C')) then 'amended'
  else 'final' end)`;

interface ReportRow {
  pk: number;
  order_pk: number;
  version: number;
  text: string;
  author: string | null;
  observed_at: string | null;
  created_at: string;
  fhir_status: DiagnosticReport['status'];
  accession_number: string;
  placer_order_number: string | null;
  filler_order_number: string | null;
  requested_procedure_code: string | null;
  requested_procedure_description: string | null;
  patient_id: string;
  issuer_of_patient_id: string;
  patient_name: string | null;
}

const FROM = sql`ris_report r join ris_order o on o.pk = r.order_pk join ris_patient p on p.pk = o.patient_pk`;
const COLUMNS = sql`r.pk, r.order_pk, r.version, r.text, r.author, r.observed_at, r.created_at, ${STATUS} as fhir_status, o.accession_number, o.placer_order_number,
  o.filler_order_number, o.requested_procedure_code, o.requested_procedure_description, p.patient_id, p.issuer_of_patient_id, p.patient_name`;

function conditions(ctx: FhirContext, filters: readonly SearchFilter[]): RawBuilder<unknown>[] {
  const out: RawBuilder<unknown>[] = [sql`r.superseded_at is null`];
  for (const f of filters) {
    switch (f.code) {
      case '_id':
      case 'based-on': {
        const pks = f.values.map((v) => orderPk(f.code === '_id' ? v : referenceId(v, 'ServiceRequest', ctx.base))).filter((pk): pk is number => pk !== null);
        out.push(pks.length ? sql`r.order_pk in (${sql.join(pks)})` : sql`1 = 0`);
        break;
      }
      case 'patient':
      case 'subject':
        out.push(patientCondition(patientKeysOf(f, ctx)));
        break;
      case 'status': {
        const codes = f.values.map(tokenValue).filter((t) => t.system === null || t.system === STATUS_SYSTEM).map((t) => t.code);
        out.push(codes.length ? sql`${STATUS} in (${sql.join(codes)})` : sql`1 = 0`);
        break;
      }
      case 'date':
        out.push(any(f.dates.map((d) => dateCondition(d.prefix, d.range, hl7TimestampRange(sql`r.observed_at`)))));
        break;
    }
  }
  return out;
}

export interface DiagnosticReportResults {
  total: number;
  resources: DiagnosticReport[];
  patients: PatientKey[];
}

export async function searchDiagnosticReports(ctx: FhirContext, search: ParsedSearch): Promise<DiagnosticReportResults> {
  const condition = all(conditions(ctx, search.filters));
  const counted = await sql<{ n: number | string }>`select count(*) as n from ${FROM} where ${condition}`.execute(ctx.db);
  const total = Number(counted.rows[0]?.n ?? 0);
  if (search.count === 0) return { total, resources: [], patients: [] };
  const order = search.sort.map((s) => {
    const direction = sql.raw(s.descending ? 'desc' : 'asc');
    return s.code === 'date' ? sql`${hl7TimestampRange(sql`r.observed_at`).start} ${direction} nulls last` : sql`r.created_at ${direction}`;
  });
  const rows = await sql<ReportRow>`select ${COLUMNS} from ${FROM} where ${condition}
    order by ${sql.join([...order, sql`r.created_at desc`, sql`r.order_pk desc`])} limit ${search.count} offset ${search.offset}`.execute(ctx.db);
  return { total, ...await toResources(ctx, rows.rows) };
}

/** DiagnosticReport/{id} (the current version), or a version of it (vread). */
export async function readDiagnosticReport(ctx: FhirContext, id: string, version?: number): Promise<DiagnosticReport | null> {
  const pk = orderPk(id);
  if (pk === null) return null;
  const which = version === undefined ? sql`r.superseded_at is null` : sql`r.version = ${version}`;
  const rows = await sql<ReportRow>`select ${COLUMNS} from ${FROM} where r.order_pk = ${pk} and ${which}`.execute(ctx.db);
  return (await toResources(ctx, rows.rows)).resources[0] ?? null;
}

async function toResources(ctx: FhirContext, rows: ReportRow[]): Promise<{ resources: DiagnosticReport[]; patients: PatientKey[] }> {
  if (rows.length === 0) return { resources: [], patients: [] };
  // The studies of the order that are in the index (a link may name a study deleted since).
  const studies = await ctx.db.selectFrom('ris_order_study as os').innerJoin('study as s', 's.study_instance_uid', 'os.study_instance_uid')
    .select(['os.order_pk', 'os.study_instance_uid']).where('os.order_pk', 'in', rows.map((r) => Number(r.order_pk))).orderBy('os.pk').execute();
  const studiesByOrder = Map.groupBy(studies, (s) => Number(s.order_pk));
  const patients = new Map<string, PatientKey>();
  const resources = rows.map((r): DiagnosticReport => {
    const key = { patientId: r.patient_id, issuer: r.issuer_of_patient_id };
    patients.set(JSON.stringify(key), key);
    const code = r.requested_procedure_code ? JSON.parse(r.requested_procedure_code) as { code: string; scheme: string; meaning: string } : null;
    const text = r.requested_procedure_description ?? code?.meaning ?? null;
    const effective = dateTimeOfHl7OrIso(r.observed_at);
    const author = displayName(r.author);
    const issued = fhirInstant(r.created_at)!;
    const linked = (studiesByOrder.get(Number(r.order_pk)) ?? []).map((s) => String(s.study_instance_uid));
    return {
      resourceType: 'DiagnosticReport', id: String(Number(r.order_pk)),
      meta: { versionId: String(Number(r.version)), lastUpdated: issued },
      identifier: orderIdentifiers(r).slice(0, 1),
      basedOn: [{ reference: `ServiceRequest/${Number(r.order_pk)}` }],
      status: r.fhir_status,
      category: [RADIOLOGY],
      code: { coding: [LOINC_IMAGING, ...(code ? [codingOf(code)] : [])], ...(text ? { text } : {}) },
      subject: patientReference(key, r.patient_name),
      ...(effective ? { effectiveDateTime: effective } : {}),
      issued,
      ...(author ? { resultsInterpreter: [{ display: author }] } : {}),
      ...(linked.length ? { imagingStudy: linked.map((uid) => ({ reference: `ImagingStudy/${uid}` })) } : {}),
      ...(r.text ? {
        conclusion: r.text,
        presentedForm: [{ contentType: 'text/plain; charset=utf-8', data: Buffer.from(r.text, 'utf8').toString('base64'), title: `Report version ${Number(r.version)}` }],
      } : {}),
    };
  });
  return { resources, patients: [...patients.values()] };
}
