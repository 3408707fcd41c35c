/**
 * What every FHIR handler works with: the database (the index's and the RIS's tables, read with SQL),
 * the base URL references and links are made from, and who asks (a referring clinician sees only the
 * studies they referred, and the patients of those studies).
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { SqlEngine } from '../database/migration.ts';
import { normalizePersonName, type StudyFilter } from '../security/index.ts';

export interface FhirContext {
  db: Kysely<any>;
  engine: SqlEngine;
  /** `http(s)://host[:port]/fhir/R4`, as the client reached us. */
  base: string;
  /** `http(s)://host[:port]`: where the DICOMweb Endpoint is. */
  origin: string;
  /** What the caller may see of the studies (policy.ts studyFilter). */
  studies: StudyFilter;
  /** Memo of referringNames for this request. */
  referring?: Promise<string[]>;
}

/**
 * The stored ReferringPhysicianName values a referring clinician may see (those policy.ts would match):
 * the distinct values of the column, read through its index (migration 0017) and compared in JavaScript
 * by the policy's own normalization, then used as an exact `in (...)` list. Never the study rows.
 */
export async function referringNames(ctx: FhirContext): Promise<string[]> {
  if (ctx.studies.kind !== 'referring-physician') return [];
  const wanted = new Set(ctx.studies.normalizedPersonNames);
  ctx.referring ??= (async () => {
    const rows = await ctx.db.selectFrom('study').select('referring_physician_name as name').distinct()
      .where('referring_physician_name', 'is not', null).execute();
    return rows.map((r) => String(r.name)).filter((value) => value.split('\\').some((v) => wanted.has(normalizePersonName(v))));
  })();
  return await ctx.referring;
}

/** The condition a study row (alias `studyAlias`) must meet for the caller to see it; null: every study. */
export async function studyVisibility(ctx: FhirContext, studyAlias: string): Promise<RawBuilder<unknown> | null> {
  if (ctx.studies.kind === 'all') return null;
  if (ctx.studies.kind === 'none') return sql`1 = 0`;
  const names = await referringNames(ctx);
  if (names.length === 0) return sql`1 = 0`;
  return sql`${sql.ref(`${studyAlias}.referring_physician_name`)} in (${sql.join(names)})`;
}

/** `a and b and ...` of the conditions (true when there are none). */
export function all(conditions: readonly RawBuilder<unknown>[]): RawBuilder<unknown> {
  return conditions.length ? sql`(${sql.join(conditions, sql` and `)})` : sql`1 = 1`;
}

/** `a or b or ...` of the conditions (false when there are none). */
export function any(conditions: readonly RawBuilder<unknown>[]): RawBuilder<unknown> {
  return conditions.length ? sql`(${sql.join(conditions, sql` or `)})` : sql`1 = 0`;
}

/** A LIKE pattern matching values that start with `prefix` (escaped with `\`). */
export function startsWith(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** A LIKE pattern matching values that contain `part`. */
export function contains(part: string): string {
  return `%${startsWith(part)}`;
}
