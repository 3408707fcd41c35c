/**
 * ServiceRequest: the RIS's orders (one requested procedure each), read with SQL from its tables. Its id is
 * the order's number in Atrium (the `:order` of /api/ris/orders/{order}).
 */
import { sql, type RawBuilder } from 'kysely';
import type { Identifier, ServiceRequest } from '@medplum/fhirtypes';
import { all, any, type FhirContext } from './context.ts';
import { dateCondition, utcInstantRange } from './dates.ts';
import { invalid } from './operation-outcome.ts';
import { patientKeysOf, patientReference, type PatientKey } from './patients.ts';
import { tokenValue, type ParsedSearch, type SearchDefinition, type SearchFilter } from './search-request.ts';
import { SNOMED, V2_0203, codingOf, displayName, fhirDateTime, fhirInstant } from './values.ts';
import type { OrderStatus, Priority } from '../ris/model.ts';

export const SERVICE_REQUEST_SEARCH: SearchDefinition = {
  resourceType: 'ServiceRequest',
  parameters: [
    { code: '_id', type: 'token', expression: 'ServiceRequest.id', documentation: 'The logical id: the order\'s number in Atrium' },
    { code: 'patient', type: 'reference', expression: "ServiceRequest.subject.where(resolve() is Patient)", definition: 'http://hl7.org/fhir/SearchParameter/clinical-patient',
      documentation: 'The order\'s patient: Patient/<id>' },
    { code: 'subject', type: 'reference', expression: 'ServiceRequest.subject', definition: 'http://hl7.org/fhir/SearchParameter/ServiceRequest-subject',
      documentation: 'The order\'s patient: Patient/<id>' },
    { code: 'identifier', type: 'token', expression: 'ServiceRequest.identifier', definition: 'http://hl7.org/fhir/SearchParameter/ServiceRequest-identifier', modifiers: ['of-type'],
      documentation: 'Accession, placer or filler order number (value or |value; :of-type=http://terminology.hl7.org/CodeSystem/v2-0203|ACSN|value, PLAC, FILL)' },
    { code: 'status', type: 'token', expression: 'ServiceRequest.status', definition: 'http://hl7.org/fhir/SearchParameter/ServiceRequest-status',
      documentation: 'active, completed or revoked (mapped from the order status, docs/fhir.md)' },
    { code: 'authored', type: 'date', expression: 'ServiceRequest.authoredOn', definition: 'http://hl7.org/fhir/SearchParameter/ServiceRequest-authored',
      documentation: 'When Atrium received the order, with the prefixes eq ne lt gt le ge sa eb' },
  ],
  sorts: ['authored'],
  includes: ['ServiceRequest:subject', 'ServiceRequest:patient'],
};

/** Order status -> ServiceRequest.status (request-status). */
export const REQUEST_STATUS: Readonly<Record<OrderStatus, ServiceRequest['status']>> = {
  ordered: 'active', scheduled: 'active', arrived: 'active', 'in-progress': 'active',
  completed: 'completed', 'preliminary-report': 'completed', 'final-report': 'completed', amended: 'completed',
  cancelled: 'revoked', discontinued: 'revoked',
};

export const REQUEST_PRIORITY: Readonly<Record<Priority, ServiceRequest['priority']>> = { STAT: 'stat', ASAP: 'asap', URGENT: 'urgent', ROUTINE: 'routine' };

const REQUEST_STATUS_SYSTEM = 'http://hl7.org/fhir/request-status';
const IMAGING_CATEGORY = { coding: [{ system: SNOMED, code: '363679005', display: 'Imaging' }] };

interface OrderRow {
  pk: number;
  accession_number: string;
  placer_order_number: string | null;
  filler_order_number: string | null;
  requested_procedure_code: string | null;
  requested_procedure_description: string | null;
  priority: Priority;
  reason: string | null;
  referring_physician: string | null;
  ordering_physician: string | null;
  status: OrderStatus;
  created_at: string;
  updated_at: string;
  patient_id: string;
  issuer_of_patient_id: string;
  patient_name: string | null;
}

export function orderIdentifiers(o: { accession_number: string; placer_order_number: string | null; filler_order_number: string | null }): Identifier[] {
  const typed = (code: string, value: string): Identifier => ({ type: { coding: [{ system: V2_0203, code }] }, value });
  return [
    { use: 'usual', ...typed('ACSN', o.accession_number) },
    ...(o.placer_order_number ? [typed('PLAC', o.placer_order_number)] : []),
    ...(o.filler_order_number ? [typed('FILL', o.filler_order_number)] : []),
  ];
}

/** Order pks named by `ServiceRequest/<id>` values (or bare ids); non-numeric ids name none. */
export function orderPk(id: string | null): number | null {
  return id !== null && /^[1-9]\d{0,14}$/.test(id) ? Number(id) : null;
}

function conditions(ctx: FhirContext, filters: readonly SearchFilter[]): RawBuilder<unknown>[] {
  const out: RawBuilder<unknown>[] = [];
  for (const f of filters) {
    switch (f.code) {
      case '_id': {
        const pks = f.values.map(orderPk).filter((pk): pk is number => pk !== null);
        out.push(pks.length ? sql`o.pk in (${sql.join(pks)})` : sql`1 = 0`);
        break;
      }
      case 'patient':
      case 'subject':
        out.push(patientCondition(patientKeysOf(f, ctx)));
        break;
      case 'identifier':
        out.push(any(f.values.map((v) => {
          if (f.modifier === 'of-type') {
            const [typeSystem, typeCode, ...rest] = v.split('|');
            const value = rest.join('|');
            if (rest.length === 0 || !value) throw invalid(`identifier:of-type needs system|code|value, not "${v}"`, 'identifier');
            if (typeSystem !== V2_0203) return sql`1 = 0`;
            const column = { ACSN: 'accession_number', PLAC: 'placer_order_number', FILL: 'filler_order_number' }[typeCode ?? ''];
            return column ? sql`${sql.ref(`o.${column}`)} = ${value}` : sql`1 = 0`;
          }
          const { system, code } = tokenValue(v);
          if (system !== null && system !== '') return sql`1 = 0`;
          return sql`(o.accession_number = ${code} or o.placer_order_number = ${code} or o.filler_order_number = ${code})`;
        })));
        break;
      case 'status': {
        const statuses = f.values.map(tokenValue).filter((t) => t.system === null || t.system === REQUEST_STATUS_SYSTEM)
          .flatMap((t) => Object.entries(REQUEST_STATUS).filter(([, s]) => s === t.code).map(([order]) => order));
        out.push(statuses.length ? sql`o.status in (${sql.join(statuses)})` : sql`1 = 0`);
        break;
      }
      case 'authored':
        out.push(any(f.dates.map((d) => dateCondition(d.prefix, d.range, utcInstantRange(sql`o.created_at`)))));
        break;
    }
  }
  return out;
}

/** Orders of these patients (RIS patients: an order's patient is always one). */
export function patientCondition(keys: readonly PatientKey[]): RawBuilder<unknown> {
  return any(keys.map((k) => sql`(p.patient_id = ${k.patientId} and p.issuer_of_patient_id = ${k.issuer})`));
}

const FROM = sql`ris_order o join ris_patient p on p.pk = o.patient_pk`;
const COLUMNS = sql`o.pk, o.accession_number, o.placer_order_number, o.filler_order_number, o.requested_procedure_code, o.requested_procedure_description,
  o.priority, o.reason, o.referring_physician, o.ordering_physician, o.status, o.created_at, o.updated_at, p.patient_id, p.issuer_of_patient_id, p.patient_name`;

export interface ServiceRequestResults {
  total: number;
  resources: ServiceRequest[];
  patients: PatientKey[];
}

export async function searchServiceRequests(ctx: FhirContext, search: ParsedSearch): Promise<ServiceRequestResults> {
  const condition = all(conditions(ctx, search.filters));
  const counted = await sql<{ n: number | string }>`select count(*) as n from ${FROM} where ${condition}`.execute(ctx.db);
  const total = Number(counted.rows[0]?.n ?? 0);
  if (search.count === 0) return { total, resources: [], patients: [] };
  const authored = search.sort.find((s) => s.code === 'authored');
  const direction = sql.raw(authored && !authored.descending ? 'asc' : 'desc');
  const rows = await sql<OrderRow>`select ${COLUMNS} from ${FROM} where ${condition} order by o.created_at ${direction}, o.pk ${direction}
    limit ${search.count} offset ${search.offset}`.execute(ctx.db);
  return { total, ...await toResources(ctx, rows.rows) };
}

export async function readServiceRequest(ctx: FhirContext, id: string): Promise<ServiceRequest | null> {
  const pk = orderPk(id);
  if (pk === null) return null;
  const rows = await sql<OrderRow>`select ${COLUMNS} from ${FROM} where o.pk = ${pk}`.execute(ctx.db);
  return (await toResources(ctx, rows.rows)).resources[0] ?? null;
}

async function toResources(ctx: FhirContext, rows: OrderRow[]): Promise<{ resources: ServiceRequest[]; patients: PatientKey[] }> {
  if (rows.length === 0) return { resources: [], patients: [] };
  const steps = await ctx.db.selectFrom('ris_procedure_step').select(['order_pk', 'start_date', 'start_time', 'start_at'])
    .where('order_pk', 'in', rows.map((r) => Number(r.pk))).where('start_date', 'is not', null).orderBy('start_at').orderBy('pk').execute();
  const firstStep = new Map<number, { start_date: string; start_time: string | null }>();
  for (const s of steps) if (!firstStep.has(Number(s.order_pk))) firstStep.set(Number(s.order_pk), { start_date: String(s.start_date), start_time: s.start_time === null ? null : String(s.start_time) });
  const patients = new Map<string, PatientKey>();
  const resources = rows.map((o): ServiceRequest => {
    const key = { patientId: o.patient_id, issuer: o.issuer_of_patient_id };
    patients.set(JSON.stringify(key), key);
    const step = firstStep.get(Number(o.pk));
    const occurrence = step ? fhirDateTime(step.start_date, step.start_time) : null;
    const code = o.requested_procedure_code ? JSON.parse(o.requested_procedure_code) as { code: string; scheme: string; meaning: string } : null;
    const text = o.requested_procedure_description ?? code?.meaning ?? null;
    const requester = displayName(o.ordering_physician) ?? displayName(o.referring_physician);
    const updated = fhirInstant(o.updated_at);
    return {
      resourceType: 'ServiceRequest', id: String(Number(o.pk)),
      ...(updated ? { meta: { lastUpdated: updated } } : {}),
      identifier: orderIdentifiers(o),
      status: REQUEST_STATUS[o.status] ?? 'unknown',
      intent: 'order',
      category: [IMAGING_CATEGORY],
      priority: REQUEST_PRIORITY[o.priority] ?? 'routine',
      ...(code || text ? { code: { ...(code ? { coding: [codingOf(code)] } : {}), ...(text ? { text } : {}) } } : {}),
      subject: patientReference(key, o.patient_name),
      ...(occurrence ? { occurrenceDateTime: occurrence } : {}),
      authoredOn: fhirInstant(o.created_at)!,
      ...(requester ? { requester: { display: requester } } : {}),
      ...(o.reason ? { reasonCode: [{ text: o.reason }] } : {}),
    };
  });
  return { resources, patients: [...patients.values()] };
}
