/**
 * What every integrity check is: a kind, and `detect` over a scope (a full sweep, or the studies and orders an
 * event touched), answering what it found and which subjects it looked at (what it may resolve).
 * Checks read the index's and the RIS's tables with their own SQL (the quality module sits beside ris/, not
 * above it) and never write: the findings store lands their results (sql-integrity-store.ts reconcile).
 */
import type { Kysely } from 'kysely';
import type { SqlEngine } from '../../../database/migration.ts';
import type { IntegrityKind, IntegritySettings } from '../../config.ts';
import type { Considered, DetectedFinding } from '../sql-integrity-store.ts';

export interface CheckContext {
  db: Kysely<any>;
  engine: SqlEngine;
  settings: IntegritySettings;
  now: Date;
}

/** All of the archive, or the studies (Study Instance UIDs) and orders (accession numbers) an event touched. */
export type CheckScope = { all: true } | { all?: false; studies: readonly string[]; accessions: readonly string[] };

export interface CheckResult {
  findings: DetectedFinding[];
  considered: Considered;
}

export interface IntegrityCheck {
  kind: IntegrityKind;
  detect(context: CheckContext, scope: CheckScope): Promise<CheckResult>;
}

/** Splits a list for `IN (...)` (SQLite allows 32766 parameters, PostgreSQL 65535; far below both). */
export function chunks<T>(list: readonly T[], size = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/** Rows of `query(part)` for each chunk of `list`, or of `query(null)` (everything) for a full sweep. */
export async function rowsFor<R>(scope: readonly string[] | null, query: (part: string[] | null) => Promise<R[]>): Promise<R[]> {
  if (scope === null) return await query(null);
  const out: R[] = [];
  for (const part of chunks(scope)) out.push(...(await query(part)));
  return out;
}

export const text = (v: unknown): string | null => (v === null || v === undefined || String(v).trim() === '' ? null : String(v));
