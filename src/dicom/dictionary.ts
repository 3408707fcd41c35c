// Data dictionary lookups (PS3.6), built once from dcmjs's copy of the standard's registry.
import dcmjs from 'dcmjs';
import { isPrivateCreator, isPrivateTag } from './tags.ts';

export interface DictionaryEntry {
  /** A single VR usable for Implicit VR decoding; ambiguous registry VRs are resolved as noted below. */
  vr: string;
  keyword: string;
  vm: string;
  retired?: boolean;
}

let byTag: Map<number, DictionaryEntry> | undefined;
let byKeyword: Map<string, number> | undefined;

// The registry lists some VRs as alternatives ("OB or OW", "US or SS", ...). Implicit VR streams are
// decoded with the choice PS3.5 A.1 prescribes (OW for pixel-like data, US for "US or SS", UL for offsets).
const AMBIGUOUS: Record<string, string> = { ox: 'OW', xs: 'US', lt: 'OW', up: 'UL', na: 'UN' };

function load(): void {
  byTag = new Map();
  byKeyword = new Map();
  const nameMap = dcmjs.data.DicomMetaDictionary.nameMap;
  for (const name of Object.keys(nameMap)) {
    const e = nameMap[name];
    const m = /^\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)$/.exec(e.tag);
    if (!m) continue;
    const tag = parseInt(m[1] + m[2], 16) >>> 0;
    const retired = name.startsWith('RETIRED_');
    const keyword = retired ? name.slice('RETIRED_'.length) : name;
    const entry: DictionaryEntry = { vr: AMBIGUOUS[e.vr] ?? e.vr, keyword, vm: e.vm };
    if (retired) entry.retired = true;
    if (!byTag.has(tag)) byTag.set(tag, entry);
    if (!byKeyword.has(keyword)) byKeyword.set(keyword, tag);
  }
}

/** Repeating groups 50xx and 60xx (PS3.5 7.6) are registered under 5000 and 6000. */
function baseOfRepeatingGroup(tag: number): number {
  const g = tag >>> 16;
  if ((g & 0xff01) === 0x5000 || (g & 0xff01) === 0x6000) return (((g & 0xff00) << 16) | (tag & 0xffff)) >>> 0;
  return tag;
}

const PRIVATE_CREATOR: DictionaryEntry = { vr: 'LO', keyword: 'PrivateCreator', vm: '1' };
const GROUP_LENGTH: DictionaryEntry = { vr: 'UL', keyword: 'GroupLength', vm: '1' };

/** Looks a tag up; returns undefined for private and unregistered tags (see `vrOf`). */
export function lookupTag(tag: number): DictionaryEntry | undefined {
  if (!byTag) load();
  const t = tag >>> 0;
  if (isPrivateTag(t)) {
    if (isPrivateCreator(t)) return PRIVATE_CREATOR;
    if ((t & 0xffff) === 0) return GROUP_LENGTH;
    return undefined;
  }
  const hit = byTag!.get(t) ?? byTag!.get(baseOfRepeatingGroup(t));
  if (hit) return hit;
  // Every group's element 0000 is its Group Length (PS3.5 7.2), registered or not.
  if ((t & 0xffff) === 0) return GROUP_LENGTH;
  return undefined;
}

/** VR to use when the stream does not carry one (Implicit VR, PS3.5 A.1): 'UN' when unknown. */
export function vrOf(tag: number): string {
  return lookupTag(tag)?.vr ?? 'UN';
}

export function keywordOf(tag: number): string | undefined {
  return lookupTag(tag)?.keyword;
}

export function tagOfKeyword(keyword: string): number | undefined {
  if (!byKeyword) load();
  return byKeyword!.get(keyword);
}
