import { AtriumError } from '../../errors.ts';
import { invalid, matcherOf } from './matching.ts';
import { QUERY_LEVELS, T, UNIQUE_KEY, formatTagParen, hexTag, levelIndex, type IndexQuery, type QueryKey } from './model.ts';

/**
 * Checks a query before it reaches the index; throws AtriumError('invalid-input') naming the offending
 * element: unknown level, values the matching rules reject (wild cards in UID/date/time keys, malformed or
 * reversed ranges, non-numeric numbers), and in a hierarchical query a missing unique key of a level above
 * the query level (PS3.4 C.4.1.2.1).
 */
export function validateQuery(query: IndexQuery): void {
  if (!QUERY_LEVELS.includes(query.level)) {
    throw new AtriumError('invalid-input', `${formatTagParen(T.QueryRetrieveLevel)}: unknown Query/Retrieve Level "${query.level}"`,
      { tag: hexTag(T.QueryRetrieveLevel), element: formatTagParen(T.QueryRetrieveLevel) });
  }
  if (query.root !== 'PATIENT' && query.root !== 'STUDY') {
    throw new AtriumError('invalid-input', `unknown information model root "${query.root}"`);
  }
  if (query.level === 'PATIENT' && query.root === 'STUDY') {
    throw invalid(T.QueryRetrieveLevel, 'level PATIENT does not exist in the Study Root information model (PS3.4 C.3.2)');
  }
  const check = (keys: QueryKey[]) => {
    for (const key of keys) {
      matcherOf(key);
      for (const item of key.items ?? []) check(item);
    }
  };
  check(query.keys);
  for (const [name, n] of [['limit', query.limit], ['offset', query.offset]] as const) {
    if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new AtriumError('invalid-input', `${name} must be a non-negative integer`, { parameter: name });
  }
  if (!query.relational) checkHierarchicalKeys(query);
}

/**
 * Hierarchical search (PS3.4 C.4.1.2.1): every level above the query level (from the root down) must be
 * identified by a single value of its unique key; only relational queries (C.4.1.2.2, extended negotiation)
 * may leave them out.
 */
function checkHierarchicalKeys(query: IndexQuery): void {
  const top = query.root === 'PATIENT' ? 0 : 1;
  for (let i = top; i < levelIndex(query.level); i++) {
    const level = QUERY_LEVELS[i];
    const tag = UNIQUE_KEY[level];
    const key = query.keys.find((k) => k.tag === tag);
    const m = key ? matcherOf(key) : undefined;
    if (!m || m.kind !== 'single') {
      const what = !m || m.kind === 'universal' ? 'is missing' : 'must be a single value';
      throw invalid(tag, `the unique key of level ${level} ${what} in a hierarchical ${query.level} query ` +
        '(PS3.4 C.4.1.2.1; relational queries need extended negotiation)');
    }
  }
}
