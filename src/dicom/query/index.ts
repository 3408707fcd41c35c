// The query model: one description of C-FIND / QIDO-RS matching, compiled by the index (IndexStore.find).
export type { IndexQuery, QueryKey, QueryLevel, QueryResults } from './model.ts';
export { QUERY_LEVELS, UNIQUE_KEY, levelOf } from './model.ts';
export { queryFromIdentifier, type IdentifierQueryOptions } from './identifier.ts';
export { queryFromQidoParams, qidoDefaultAttributes, type QidoQueryOptions } from './qido.ts';
export { validateQuery } from './validate.ts';
export { matcherOf, datasetMatchesKey, valueMatches, foldName, type Matcher } from './matching.ts';
