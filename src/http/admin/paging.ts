import { AtriumError } from '../../errors.ts';
import type { Page } from '../../ports/index-store.ts';

export type Query = Record<string, string | undefined>;
export type Params = Record<string, string>;

const MAX_PAGE = 1000;

/** `limit` (1 to 1000, default 100) and `offset` of every listing. */
export function page(query: Query): Page {
  const limit = query.limit === undefined ? 100 : Number(query.limit);
  const offset = query.offset === undefined ? 0 : Number(query.offset);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new AtriumError('invalid-input', `limit must be a whole number from 1 to ${MAX_PAGE}`);
  if (!Number.isInteger(offset) || offset < 0) throw new AtriumError('invalid-input', 'offset must be a whole number from 0');
  return { limit, offset };
}

export function found<T>(value: T | null, what: string): T {
  if (value === null) throw new AtriumError('not-found', `no ${what}`);
  return value;
}
