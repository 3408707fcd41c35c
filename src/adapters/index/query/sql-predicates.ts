/** SQL predicates the DICOM matching of the index (find.ts) and the worklist (src/ris) both compile to. */
import { sql, type RawBuilder, type SqlBool } from 'kysely';
import type { SqlEngine } from '../../../database/migration.ts';

export type Pred = RawBuilder<SqlBool>;

/** A DICOM wild card pattern (`*`, `?`, everything else literal) against a column, case-sensitive on both engines. */
export function wildcard(engine: SqlEngine, target: RawBuilder<unknown>, pattern: string): Pred {
  if (engine === 'sqlite') {
    let glob = '';
    for (const ch of pattern) glob += ch === '[' ? '[[]' : ch;
    return sql<SqlBool>`${target} glob ${glob}`;
  }
  let like = '';
  for (const ch of pattern) {
    if (ch === '*') like += '%';
    else if (ch === '?') like += '_';
    else if (ch === '%' || ch === '_' || ch === '\\') like += '\\' + ch;
    else like += ch;
  }
  return sql<SqlBool>`${target} like ${like} escape '\\'`;
}

export const or = (ps: Pred[]): Pred => (ps.length === 1 ? ps[0]! : sql<SqlBool>`(${sql.join(ps, sql` or `)})`);
export const and = (ps: Pred[]): Pred => (ps.length === 1 ? ps[0]! : sql<SqlBool>`(${sql.join(ps, sql` and `)})`);
