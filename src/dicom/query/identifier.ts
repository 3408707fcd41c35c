/** A C-FIND request identifier (PS3.4 C.4.1.1.3) as an IndexQuery. */
import { AtriumError } from '../../errors.ts';
import { decodeText } from '../charset.ts';
import { characterSetOf, elementStrings, type DataSet } from '../dataset.ts';
import { vrOf } from '../dictionary.ts';
import { STRING_VRS } from '../vr.ts';
import { QUERY_LEVELS, T, formatTagParen, hexTag, type IndexQuery, type QueryKey, type QueryLevel } from './model.ts';
import { validateQuery } from './validate.ts';

export interface IdentifierQueryOptions {
  /** Patient Root or Study Root, from the negotiated SOP Class. */
  root: 'PATIENT' | 'STUDY';
  /** Relational-queries extended negotiation accepted (PS3.4 C.5.1.1.1). */
  relational?: boolean;
  /** Fuzzy semantic matching of person names accepted (extended negotiation). */
  fuzzy?: boolean;
  /** Combined datetime matching accepted (extended negotiation, PS3.4 C.2.2.2.5.4). */
  combinedDateTime?: boolean;
  /** Archive configuration: case- and accent-insensitive PN matching. */
  caseInsensitivePersonNames?: boolean;
  limit?: number;
}

/**
 * Query/Retrieve Level (0008,0052) gives the level; every other element is a key: empty = return key,
 * sequences become sequence keys. Specific Character Set (0008,0005) is never matched: it decodes the
 * other values (PS3.4 C.2.2.2), as `characterSet` does when given (e.g. from the association defaults).
 * Throws AtriumError('invalid-input') with the offending tag (see validateQuery).
 */
export function queryFromIdentifier(ds: DataSet, characterSet: string[] | undefined, options: IdentifierQueryOptions): IndexQuery {
  const charset = characterSetOf(ds) ?? characterSet;
  const levelEl = ds.elements.find((e) => e.tag === T.QueryRetrieveLevel);
  const level = levelEl ? (elementStrings(levelEl, ds.littleEndian ?? true)?.[0] ?? '').trim().toUpperCase() : '';
  if (!QUERY_LEVELS.includes(level as QueryLevel)) {
    throw new AtriumError('invalid-input',
      `${formatTagParen(T.QueryRetrieveLevel)}: ${level ? `unknown Query/Retrieve Level "${level}"` : 'Query/Retrieve Level is missing'}`,
      { tag: hexTag(T.QueryRetrieveLevel), element: formatTagParen(T.QueryRetrieveLevel) });
  }
  const query: IndexQuery = {
    level: level as QueryLevel,
    root: options.root,
    keys: keysOf(ds, charset),
    relational: options.relational ?? false,
    fuzzy: options.fuzzy ?? false,
    combinedDateTime: options.combinedDateTime ?? false,
    caseInsensitivePersonNames: options.caseInsensitivePersonNames ?? false,
  };
  if (options.limit !== undefined) query.limit = options.limit;
  validateQuery(query);
  return query;
}

/**
 * The keys of an identifier without a Query/Retrieve Level (the Modality Worklist's, PS3.4 K.6.1.2): every
 * element but Specific Character Set (which decodes the others), sequences as sequence keys.
 */
export function identifierKeys(ds: DataSet, characterSet?: string[]): QueryKey[] {
  return keysOf(ds, characterSetOf(ds) ?? characterSet);
}

function keysOf(ds: DataSet, charset: string[] | undefined): QueryKey[] {
  const keys: QueryKey[] = [];
  const le = ds.littleEndian ?? true;
  for (const el of ds.elements) {
    const tag = el.tag >>> 0;
    const group = tag >>> 16;
    // Command and file meta groups, group lengths, the level and the character set are not keys.
    if (group <= 0x0002 || (tag & 0xffff) === 0 || tag === T.QueryRetrieveLevel || tag === T.SpecificCharacterSet) continue;
    const vr = el.vr === 'UN' && !el.items ? vrOf(tag) : el.vr;
    if (el.items || vr === 'SQ') {
      keys.push({ tag, vr: 'SQ', value: '', items: (el.items ?? []).map((item) => keysOf(item, characterSetOf(item) ?? charset)) });
      continue;
    }
    let value = '';
    if (el.value && el.value.length > 0) {
      value = STRING_VRS.has(vr) ? decodeText(el.value, vr, charset) : (elementStrings({ ...el, vr }, le) ?? []).join('\\');
    }
    // Timezone Offset From UTC qualifies the other values; it is returned, never matched (PS3.4 C.2.2.2).
    if (tag === T.TimezoneOffsetFromUTC) value = '';
    keys.push({ tag, vr, value });
  }
  return keys;
}
