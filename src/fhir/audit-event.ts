/**
 * AuditEvent: the audit trail (src/audit, table `audit_event` with its patients and studies in
 * `audit_object`, migration 0004), searched with SQL and each row turned into FHIR by the trail's one
 * conversion (src/audit/fhir-audit-event.ts, the same as GET /api/audit/export?format=fhir). Its id is the
 * record's UUID.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Resource } from '@medplum/fhirtypes';
import { AUDIT_ACTIONS, AUDIT_OUTCOMES, type AuditAction, type AuditObjectRef, type AuditRecord, type NewAuditRecord } from '../ports/audit-store.ts';
import { DCM_SYSTEM, eventCoding, OUTCOME_CODES } from '../audit/event-codes.ts';
import { PRINCIPAL_SYSTEM, toFhirAuditEvent } from '../audit/fhir-audit-event.ts';
import { all, any, type FhirContext } from './context.ts';
import { dateCondition, utcInstantRange } from './dates.ts';
import { invalid } from './operation-outcome.ts';
import { referenceId, tokenValue, type ParsedSearch, type SearchDefinition, type SearchFilter } from './search-request.ts';
import { FHIR_ID, parsePatientLogicalId } from './values.ts';

export const AUDIT_EVENT_SEARCH: SearchDefinition = {
  resourceType: 'AuditEvent',
  parameters: [
    { code: '_id', type: 'token', expression: 'AuditEvent.id', documentation: 'The logical id: the audit record\'s UUID' },
    { code: 'date', type: 'date', expression: 'AuditEvent.recorded', definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-date',
      documentation: 'When the event happened (recorded), with the prefixes eq ne lt gt le ge sa eb' },
    { code: 'agent', type: 'reference', expression: 'AuditEvent.agent.who', definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-agent', modifiers: ['identifier'],
      documentation: 'Who acted (the requestor agent): its principal id (user name, API key id, OIDC subject, AE title), or '
        + `:identifier=${PRINCIPAL_SYSTEM}<kind>|<id> (kind: user, api-key, oidc, dicom-ae, anonymous)` },
    { code: 'entity', type: 'reference', expression: 'AuditEvent.entity.what', definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-entity',
      documentation: 'The patient or study the record names: Patient/<id> or ImagingStudy/<Study Instance UID> (a bare id: either)' },
    { code: 'patient', type: 'reference', expression: "AuditEvent.entity.what.where(resolve() is Patient)", definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-patient',
      documentation: 'The patient the record names: Patient/<id> (the trail keeps the Patient ID, not its issuer: any issuer matches)' },
    { code: 'type', type: 'token', expression: 'AuditEvent.type', definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-type',
      documentation: `The DICOM EventID (${DCM_SYSTEM}|110112 Query, 110103 Instances Accessed, 110114 User Authentication...)` },
    { code: 'subtype', type: 'token', expression: 'AuditEvent.subtype', definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-subtype',
      documentation: 'The DICOM EventTypeCode (110122 Login, 110123 Logout, 110128, 110132, 110136, 110137)' },
    { code: 'outcome', type: 'token', expression: 'AuditEvent.outcome', definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-outcome',
      documentation: '0 success, 4 minor failure, 8 serious failure, 12 major failure' },
    { code: 'action', type: 'token', expression: 'AuditEvent.action', definition: 'http://hl7.org/fhir/SearchParameter/AuditEvent-action',
      documentation: 'C, R, U, D or E' },
  ],
  sorts: ['date'],
  includes: [],
};

const ACTION_SYSTEM = 'http://hl7.org/fhir/audit-event-action';
const OUTCOME_SYSTEM = 'http://hl7.org/fhir/audit-event-outcome';
/** A record whose objects had roles given or changed: what makes a security change also 110136. */
const ROLES_GIVEN: AuditObjectRef[] = [{ type: 'user', id: '-', attributes: ['roles'] }];

/** Trail actions whose coding (event-codes.ts, the one the conversion uses) has the token; null system: any. */
function actionsOf(values: readonly string[], system: string, code: (action: AuditAction, objects: AuditObjectRef[]) => string[]): { plain: AuditAction[]; withRoles: AuditAction[] } {
  const plain = new Set<AuditAction>();
  const withRoles = new Set<AuditAction>();
  for (const v of values) {
    const t = tokenValue(v);
    if (t.system !== null && t.system !== system) continue;
    for (const action of AUDIT_ACTIONS) {
      if (code(action, []).includes(t.code)) plain.add(action);
      else if (code(action, ROLES_GIVEN).includes(t.code)) withRoles.add(action);
    }
  }
  return { plain: [...plain], withRoles: [...withRoles].filter((a) => !plain.has(a)) };
}

/** Whether one of the record's objects had its roles set (`objects[].attributes` holds "roles"), in the stored JSON. */
function rolesGiven(ctx: FhirContext): RawBuilder<unknown> {
  return ctx.engine === 'postgres'
    ? sql`exists (select 1 from jsonb_array_elements(coalesce(e.record::jsonb -> 'objects', '[]'::jsonb)) o where coalesce(o -> 'attributes', '[]'::jsonb) @> '["roles"]'::jsonb)`
    : sql`exists (select 1 from json_each(e.record, '$.objects') o, json_each(o.value, '$.attributes') a where a.value = 'roles')`;
}

function actionCondition(ctx: FhirContext, found: { plain: AuditAction[]; withRoles: AuditAction[] }): RawBuilder<unknown> {
  return any([
    ...(found.plain.length ? [sql`e.action in (${sql.join(found.plain)})`] : []),
    ...(found.withRoles.length ? [sql`(e.action in (${sql.join(found.withRoles)}) and ${rolesGiven(ctx)})`] : []),
  ]);
}

function objectCondition(kind: 'patient' | 'study', value: string): RawBuilder<unknown> {
  return sql`e.pk in (select ao.event_pk from audit_object ao where ao.kind = ${kind} and ao.value = ${value})`;
}

/** The patient a `Patient/<id>` (or bare id) value names, as the trail keeps it: the Patient ID alone. */
function patientIdOf(filter: SearchFilter, value: string, ctx: FhirContext): string | null {
  const id = referenceId(value, 'Patient', ctx.base);
  if (id !== null && !FHIR_ID.test(id)) throw invalid(`${filter.code}: "${value}" is not a Patient reference (Patient/<id>)`, filter.code);
  return id === null ? null : parsePatientLogicalId(id)?.patientId ?? null;
}

function conditions(ctx: FhirContext, filters: readonly SearchFilter[]): RawBuilder<unknown>[] {
  const out: RawBuilder<unknown>[] = [];
  for (const f of filters) {
    switch (f.code) {
      case '_id':
        out.push(sql`e.event_id in (${sql.join(f.values)})`);
        break;
      case 'date':
        out.push(any(f.dates.map((d) => dateCondition(d.prefix, d.range, utcInstantRange(sql`e.recorded_at`)))));
        break;
      case 'agent':
        out.push(any(f.values.map((v) => {
          if (f.modifier === 'identifier') {
            const { system, code } = tokenValue(v);
            if (system === null || system === '') return sql`e.principal_id = ${code}`;
            if (!system.startsWith(PRINCIPAL_SYSTEM)) return sql`1 = 0`;
            return sql`(e.principal_kind = ${system.slice(PRINCIPAL_SYSTEM.length)} and e.principal_id = ${code})`;
          }
          return sql`e.principal_id = ${v}`;
        })));
        break;
      case 'patient':
        out.push(any(f.values.map((v) => patientIdOf(f, v, ctx)).filter((id): id is string => id !== null).map((id) => objectCondition('patient', id))));
        break;
      case 'entity':
        out.push(any(f.values.flatMap((v) => {
          const study = referenceId(v, 'ImagingStudy', ctx.base);
          const patient = referenceId(v, 'Patient', ctx.base);
          if (study === null && patient === null) throw invalid(`entity: "${v}" is not a Patient or ImagingStudy reference (Patient/<id>, ImagingStudy/<uid>)`, 'entity');
          const patientId = patient === null ? null : parsePatientLogicalId(patient)?.patientId ?? null;
          return [...(study !== null ? [objectCondition('study', study)] : []), ...(patientId !== null ? [objectCondition('patient', patientId)] : [])];
        })));
        break;
      case 'type':
        out.push(actionCondition(ctx, actionsOf(f.values, DCM_SYSTEM, (a, o) => [eventCoding(a, o).eventId.code])));
        break;
      case 'subtype':
        out.push(actionCondition(ctx, actionsOf(f.values, DCM_SYSTEM, (a, o) => eventCoding(a, o).eventTypes.map((c) => c.code))));
        break;
      case 'action':
        out.push(actionCondition(ctx, actionsOf(f.values, ACTION_SYSTEM, (a) => [eventCoding(a).action])));
        break;
      case 'outcome': {
        const outcomes = f.values.map(tokenValue).filter((t) => t.system === null || t.system === OUTCOME_SYSTEM)
          .flatMap((t) => AUDIT_OUTCOMES.filter((o) => OUTCOME_CODES[o] === t.code));
        out.push(outcomes.length ? sql`e.outcome in (${sql.join(outcomes)})` : sql`1 = 0`);
        break;
      }
    }
  }
  return out;
}

interface EventRow { pk: number | string; record: string }

/** A stored row as the record the trail's conversion takes (records older than administrative objects have none). */
function toResource(row: EventRow): Resource {
  const record = JSON.parse(row.record) as NewAuditRecord;
  const full: AuditRecord = { seq: Number(row.pk), ...record, objects: record.objects ?? [] };
  return toFhirAuditEvent(full) as unknown as Resource;
}

export interface AuditEventResults {
  total: number;
  resources: Resource[];
}

export async function searchAuditEvents(ctx: FhirContext, search: ParsedSearch): Promise<AuditEventResults> {
  const condition = all(conditions(ctx, search.filters));
  const counted = await sql<{ n: number | string }>`select count(*) as n from audit_event e where ${condition}`.execute(ctx.db);
  const total = Number(counted.rows[0]?.n ?? 0);
  if (search.count === 0) return { total, resources: [] };
  const date = search.sort.find((s) => s.code === 'date');
  const direction = sql.raw(date && !date.descending ? 'asc' : 'desc');
  const rows = await sql<EventRow>`select e.pk, e.record from audit_event e where ${condition} order by e.recorded_at ${direction}, e.pk ${direction}
    limit ${search.count} offset ${search.offset}`.execute(ctx.db);
  return { total, resources: rows.rows.map(toResource) };
}

export async function readAuditEvent(ctx: FhirContext, id: string): Promise<Resource | null> {
  if (!FHIR_ID.test(id)) return null;
  const rows = await sql<EventRow>`select e.pk, e.record from audit_event e where e.event_id = ${id}`.execute(ctx.db);
  return rows.rows[0] ? toResource(rows.rows[0]) : null;
}
