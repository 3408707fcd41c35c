/**
 * Patient: from the RIS (ADT: the demographics of record, merges, identifier changes) and from the index
 * (patients known only from their images). One Patient per identity (Patient ID + issuer), whichever table
 * knows it; an index row without an issuer belongs to the RIS patient of the same ID, as the RIS itself
 * treats it (docs/ris.md "What the index shows"): its id then answers with `link` replaced-by that patient.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Identifier, Patient, PatientLink, Reference } from '@medplum/fhirtypes';
import { all, any, contains, startsWith, studyVisibility, type FhirContext } from './context.ts';
import { dicomDateTimeRange, dateCondition } from './dates.ts';
import { foldName } from '../dicom/query/matching.ts';
import { invalid } from './operation-outcome.ts';
import { referenceId, tokenValue, type ParsedSearch, type SearchDefinition, type SearchFilter } from './search-request.ts';
import { FHIR_ID, V2_0203, fhirDate, fhirInstant, humanName, issuerOfSystem, issuerSystem, parsePatientLogicalId, patientLogicalId } from './values.ts';

export interface PatientKey {
  patientId: string;
  issuer: string;
}

export const PATIENT_SEARCH: SearchDefinition = {
  resourceType: 'Patient',
  parameters: [
    { code: '_id', type: 'token', expression: 'Patient.id', documentation: 'The logical id (Patient ID and issuer, see docs/fhir.md)' },
    { code: 'identifier', type: 'token', expression: 'Patient.identifier', definition: 'http://hl7.org/fhir/SearchParameter/Patient-identifier',
      documentation: 'Patient ID, as system|value (system: the issuer as a URI), |value (no issuer) or value (any issuer)' },
    { code: 'name', type: 'string', expression: 'Patient.name', definition: 'http://hl7.org/fhir/SearchParameter/Patient-name', modifiers: ['contains'],
      documentation: 'Any part of the name starts with the value (:contains: contains it); case and accents ignored' },
    { code: 'birthdate', type: 'date', expression: 'Patient.birthDate', definition: 'http://hl7.org/fhir/SearchParameter/individual-birthdate',
      documentation: 'Birth date, with the prefixes eq ne lt gt le ge sa eb' },
  ],
  sorts: ['birthdate'],
  includes: [],
};

interface PatientRow {
  source: 'ris' | 'index';
  pk: number;
  patient_id: string;
  issuer_of_patient_id: string;
  patient_name: string | null;
  patient_birth_date: string | null;
  patient_sex: string | null;
  status: string;
  merged_into_pk: number | null;
  other_identifiers: string;
  updated: string | null;
}

const GENDER: Readonly<Record<string, Patient['gender']>> = { M: 'male', F: 'female', O: 'other' };

/** The reference to a patient's resource; display-only when the identity cannot be an id. */
export function patientReference(key: PatientKey, name?: string | null): Reference<Patient> {
  const id = patientLogicalId(key.patientId, key.issuer);
  const display = humanName(name)?.text ?? undefined;
  if (id) return { reference: `Patient/${id}`, ...(display ? { display } : {}) };
  return { type: 'Patient', display: display ?? `Patient ID ${key.patientId || '(none)'}` };
}

function identifierOf(key: PatientKey, typeCode = 'MR'): Identifier {
  const system = issuerSystem(key.issuer);
  return {
    use: 'usual', type: { coding: [{ system: V2_0203, code: typeCode }] }, ...(system ? { system } : {}), value: key.patientId,
    ...(key.issuer ? { assigner: { display: key.issuer } } : {}),
  };
}

function resourceOf(row: PatientRow, links: PatientLink[], active: boolean): Patient {
  const key = { patientId: row.patient_id, issuer: row.issuer_of_patient_id };
  const others = (JSON.parse(row.other_identifiers || '[]') as { id: string; issuer: string; type: string }[])
    .filter((o) => o.id && !(o.id === key.patientId && o.issuer === key.issuer))
    .map((o): Identifier => {
      const system = issuerSystem(o.issuer);
      return { ...(o.type ? { type: { coding: [{ system: V2_0203, code: o.type }] } } : {}), ...(system ? { system } : {}), value: o.id, ...(o.issuer ? { assigner: { display: o.issuer } } : {}) };
    });
  const name = humanName(row.patient_name);
  const birthDate = fhirDate(row.patient_birth_date);
  const gender = row.patient_sex ? GENDER[row.patient_sex.trim().toUpperCase()] ?? 'unknown' : undefined;
  const updated = fhirInstant(row.updated);
  return {
    resourceType: 'Patient', id: patientLogicalId(key.patientId, key.issuer)!,
    ...(updated ? { meta: { lastUpdated: updated } } : {}),
    identifier: [identifierOf(key), ...others], active,
    ...(name ? { name: [name] } : {}), ...(gender ? { gender } : {}), ...(birthDate ? { birthDate } : {}),
    ...(links.length ? { link: links } : {}),
  };
}

const RIS_COLUMNS = sql`'ris' as source, r.pk, r.patient_id, r.issuer_of_patient_id, r.patient_name, r.patient_name_search, r.patient_birth_date, r.patient_sex, r.status, r.merged_into_pk, r.other_identifiers, r.updated_at as updated`;
const INDEX_COLUMNS = sql`'index' as source, p.pk, p.patient_id, p.issuer_of_patient_id, p.patient_name, p.patient_name_search, p.patient_birth_date, p.patient_sex, 'active' as status, null as merged_into_pk, '[]' as other_identifiers, p.created_at as updated`;
/** Index rows that are a patient of their own: no RIS patient has their identity, or (no issuer) their ID. */
const INDEX_ONLY = sql`p.patient_id <> '' and not exists (select 1 from ris_patient r where r.patient_id = p.patient_id and (r.issuer_of_patient_id = p.issuer_of_patient_id or p.issuer_of_patient_id = ''))`;
/** Every Patient, as one derived table `pt`. */
const PATIENTS = sql`(select ${RIS_COLUMNS} from ris_patient r union all select ${INDEX_COLUMNS} from patient p where ${INDEX_ONLY}) pt`;

/**
 * The index rows (alias `ip`) whose studies are the patient `pt`'s: its own row (index patients); for a RIS
 * patient, the rows of its identity and the issuer-less row of its ID, unless that row belongs to another
 * RIS patient (one without an issuer, or the first one created).
 */
const INDEX_ROWS_OF_PT = sql`((pt.source = 'index' and ip.pk = pt.pk) or (pt.source = 'ris' and ip.patient_id = pt.patient_id and (ip.issuer_of_patient_id = pt.issuer_of_patient_id
  or (ip.issuer_of_patient_id = '' and not exists (select 1 from ris_patient r2 where r2.patient_id = pt.patient_id and (r2.issuer_of_patient_id = '' or r2.pk < pt.pk))))))`;

/**
 * The Patient the index patient rows belong to, for each row given: the RIS patient of the same identity,
 * else (no issuer) the RIS patient of the same ID (the one without an issuer, else the first created), else
 * the row itself.
 */
export async function canonicalPatients(ctx: FhirContext, rows: readonly PatientKey[]): Promise<Map<string, PatientKey>> {
  const ids = [...new Set(rows.map((r) => r.patientId))];
  const ris = ids.length ? await ctx.db.selectFrom('ris_patient').select(['pk', 'patient_id', 'issuer_of_patient_id']).where('patient_id', 'in', ids).orderBy('pk').execute() : [];
  const out = new Map<string, PatientKey>();
  for (const row of rows) {
    const same = ris.filter((r) => r.patient_id === row.patientId);
    const exact = same.find((r) => r.issuer_of_patient_id === row.issuer);
    const chosen = exact ?? (row.issuer === '' ? same.find((r) => r.issuer_of_patient_id === '') ?? same[0] : undefined);
    out.set(keyText(row), chosen ? { patientId: String(chosen.patient_id), issuer: String(chosen.issuer_of_patient_id) } : row);
  }
  return out;
}

export function keyText(key: PatientKey): string {
  return JSON.stringify([key.patientId, key.issuer]);
}

/** The index patient rows whose studies belong to the Patient `key` (canonicalPatients read backwards). */
export async function indexRowsOf(ctx: FhirContext, key: PatientKey): Promise<number[]> {
  const rows = await ctx.db.selectFrom('patient').select(['pk', 'patient_id', 'issuer_of_patient_id'])
    .where('patient_id', '=', key.patientId).where('issuer_of_patient_id', 'in', [...new Set([key.issuer, ''])]).execute();
  if (rows.length === 0) return [];
  const canonical = await canonicalPatients(ctx, rows.map((r) => ({ patientId: String(r.patient_id), issuer: String(r.issuer_of_patient_id) })));
  return rows.filter((r) => keyText(canonical.get(keyText({ patientId: String(r.patient_id), issuer: String(r.issuer_of_patient_id) }))!) === keyText(key)).map((r) => Number(r.pk));
}

/** The patients a `patient`/`subject` reference filter names (OR of its values). */
export function patientKeysOf(filter: SearchFilter, ctx: FhirContext): PatientKey[] {
  const keys: PatientKey[] = [];
  for (const value of filter.values) {
    const id = referenceId(value, 'Patient', ctx.base);
    const key = id === null ? null : parsePatientLogicalId(id);
    if (id !== null && !FHIR_ID.test(id)) throw invalid(`${filter.code}: "${value}" is not a Patient reference (Patient/<id>)`, filter.code);
    if (key) keys.push(key);
  }
  return keys;
}

async function visibility(ctx: FhirContext): Promise<RawBuilder<unknown> | null> {
  const studies = await studyVisibility(ctx, 's');
  if (!studies) return null;
  return sql`exists (select 1 from study s join patient ip on ip.pk = s.patient_pk where ${studies} and ${INDEX_ROWS_OF_PT})`;
}

function conditions(filters: readonly SearchFilter[]): RawBuilder<unknown>[] {
  const out: RawBuilder<unknown>[] = [];
  for (const f of filters) {
    switch (f.code) {
      case '_id':
        out.push(any(f.values.map((v) => {
          const key = parsePatientLogicalId(v);
          return key ? sql`(pt.patient_id = ${key.patientId} and pt.issuer_of_patient_id = ${key.issuer})` : sql`1 = 0`;
        })));
        break;
      case 'identifier':
        out.push(any(f.values.map((v) => {
          const { system, code } = tokenValue(v);
          const parts: RawBuilder<unknown>[] = [];
          if (code !== '') parts.push(sql`pt.patient_id = ${code}`);
          if (system === '') parts.push(sql`pt.issuer_of_patient_id = ''`);
          else if (system !== null) {
            const issuer = issuerOfSystem(system);
            if (issuer === null) return sql`1 = 0`;
            // A local issuer name or the URI itself: both are how an issuer may be stored.
            parts.push(sql`pt.issuer_of_patient_id in (${sql.join([...new Set([issuer, system])])})`);
          }
          return all(parts);
        })));
        break;
      case 'name':
        out.push(any(f.values.map((v) => {
          const folded = foldName(v);
          if (!folded) return sql`1 = 1`;
          return f.modifier === 'contains'
            ? sql`pt.patient_name_search like ${contains(folded)} escape '\\'`
            : sql`(pt.patient_name_search like ${startsWith(folded)} escape '\\' or pt.patient_name_search like ${`% ${startsWith(folded)}`} escape '\\')`;
        })));
        break;
      case 'birthdate':
        out.push(any(f.dates.map((d) => dateCondition(d.prefix, d.range, dicomDateTimeRange(sql`pt.patient_birth_date`, sql`null`)))));
        break;
    }
  }
  return out;
}

async function linksOf(ctx: FhirContext, rows: readonly PatientRow[]): Promise<Map<number, PatientLink[]>> {
  const ris = rows.filter((r) => r.source === 'ris');
  // RIS pks only: index rows have no links of their own (and pks of their own table).
  const links = new Map<number, PatientLink[]>(ris.map((r) => [r.pk, []]));
  if (ris.length === 0) return links;
  const pks = ris.map((r) => r.pk);
  const survivors = ris.map((r) => r.merged_into_pk).filter((pk): pk is number => pk !== null).map(Number);
  const [targets, merged, renamed] = await Promise.all([
    survivors.length ? ctx.db.selectFrom('ris_patient').select(['pk', 'patient_id', 'issuer_of_patient_id']).where('pk', 'in', survivors).execute() : [],
    ctx.db.selectFrom('ris_patient').select(['merged_into_pk', 'patient_id', 'issuer_of_patient_id']).where('merged_into_pk', 'in', pks).orderBy('pk').execute(),
    ctx.db.selectFrom('ris_patient_change').select(['survivor_pk', 'prior_patient_id', 'prior_issuer']).where('kind', '=', 'identifier-change')
      .where('undone_at', 'is', null).where('survivor_pk', 'in', pks).orderBy('pk').execute(),
  ]);
  const link = (type: PatientLink['type'], key: PatientKey): PatientLink | null => {
    const ref = patientReference(key);
    return ref.reference ? { other: { reference: ref.reference }, type } : null;
  };
  for (const r of ris) {
    const out = links.get(r.pk)!;
    if (r.merged_into_pk !== null) {
      const t = targets.find((x) => Number(x.pk) === Number(r.merged_into_pk));
      const l = t && link('replaced-by', { patientId: String(t.patient_id), issuer: String(t.issuer_of_patient_id) });
      if (l) out.push(l);
    }
    for (const m of merged.filter((x) => Number(x.merged_into_pk) === r.pk)) {
      const l = link('replaces', { patientId: String(m.patient_id), issuer: String(m.issuer_of_patient_id) });
      if (l) out.push(l);
    }
    for (const c of renamed.filter((x) => Number(x.survivor_pk) === r.pk)) {
      const l = link('replaces', { patientId: String(c.prior_patient_id), issuer: String(c.prior_issuer) });
      if (l && !(c.prior_patient_id === r.patient_id && c.prior_issuer === r.issuer_of_patient_id)) out.push(l);
    }
  }
  return links;
}

async function toResources(ctx: FhirContext, rows: PatientRow[]): Promise<Patient[]> {
  const links = await linksOf(ctx, rows);
  return rows.filter((r) => patientLogicalId(r.patient_id, r.issuer_of_patient_id) !== null)
    .map((r) => resourceOf(r, (r.source === 'ris' ? links.get(r.pk) : undefined) ?? [], r.status !== 'merged'));
}

function normalize(row: any): PatientRow {
  return { ...row, pk: Number(row.pk), merged_into_pk: row.merged_into_pk === null || row.merged_into_pk === undefined ? null : Number(row.merged_into_pk) };
}

const ORDER: Record<string, RawBuilder<unknown>> = {
  birthdate: sql`pt.patient_birth_date`,
};

export async function searchPatients(ctx: FhirContext, search: ParsedSearch): Promise<{ total: number; resources: Patient[] }> {
  const where = conditions(search.filters);
  const visible = await visibility(ctx);
  if (visible) where.push(visible);
  where.push(sql`length(pt.patient_id) > 0`);
  const condition = all(where);
  const totalRow = await sql<{ n: number | string }>`select count(*) as n from ${PATIENTS} where ${condition}`.execute(ctx.db);
  const total = Number(totalRow.rows[0]?.n ?? 0);
  if (search.count === 0) return { total, resources: [] };
  const order = [...search.sort.map((s) => sql`${ORDER[s.code]!} ${sql.raw(s.descending ? 'desc' : 'asc')}`), sql`pt.patient_id`, sql`pt.issuer_of_patient_id`, sql`pt.source`];
  const rows = await sql<PatientRow>`select * from ${PATIENTS} where ${condition} order by ${sql.join(order)} limit ${search.count} offset ${search.offset}`.execute(ctx.db);
  return { total, resources: await toResources(ctx, rows.rows.map(normalize)) };
}

/** The patients of these identities that the caller may see (for _include), by key. */
export async function patientsByKey(ctx: FhirContext, keys: readonly PatientKey[]): Promise<Patient[]> {
  if (keys.length === 0) return [];
  const match = any(keys.map((k) => sql`(pt.patient_id = ${k.patientId} and pt.issuer_of_patient_id = ${k.issuer})`));
  const visible = await visibility(ctx);
  const rows = await sql<PatientRow>`select * from ${PATIENTS} where ${match}${visible ? sql` and ${visible}` : sql``} order by pt.patient_id, pt.issuer_of_patient_id`.execute(ctx.db);
  return await toResources(ctx, rows.rows.map(normalize));
}

/**
 * Patient/{id}: the RIS or index patient of that identity; an index row without an issuer that belongs to a
 * RIS patient, or an identity an A47 replaced, answers inactive with `link` replaced-by. Null: not found
 * (or not the caller's).
 */
export async function readPatient(ctx: FhirContext, id: string): Promise<Patient | null> {
  const key = parsePatientLogicalId(id);
  if (!key) return null;
  const [found] = await patientsByKey(ctx, [key]);
  if (found) return found;
  if (ctx.studies.kind !== 'all') return null;
  const alias = await ctx.db.selectFrom('patient').selectAll().where('patient_id', '=', key.patientId).where('issuer_of_patient_id', '=', key.issuer).executeTakeFirst();
  if (alias) {
    const canonical = (await canonicalPatients(ctx, [key])).get(keyText(key))!;
    const ref = patientReference(canonical);
    const row = normalize({ ...alias, source: 'index', status: 'active', merged_into_pk: null, other_identifiers: '[]', updated: alias.created_at });
    return resourceOf(row, ref.reference ? [{ other: { reference: ref.reference }, type: 'replaced-by' }] : [], false);
  }
  const change = await ctx.db.selectFrom('ris_patient_change as c').innerJoin('ris_patient as r', 'r.pk', 'c.survivor_pk')
    .select(['r.patient_id', 'r.issuer_of_patient_id', 'c.created_at']).where('c.kind', '=', 'identifier-change').where('c.undone_at', 'is', null)
    .where('c.prior_patient_id', '=', key.patientId).where('c.prior_issuer', '=', key.issuer).orderBy('c.pk', 'desc').executeTakeFirst();
  if (change) {
    const ref = patientReference({ patientId: String(change.patient_id), issuer: String(change.issuer_of_patient_id) });
    const row: PatientRow = { source: 'index', pk: 0, patient_id: key.patientId, issuer_of_patient_id: key.issuer, patient_name: null, patient_birth_date: null, patient_sex: null,
      status: 'merged', merged_into_pk: null, other_identifiers: '[]', updated: String(change.created_at) };
    return resourceOf(row, ref.reference ? [{ other: { reference: ref.reference }, type: 'replaced-by' }] : [], false);
  }
  return null;
}
