// Text decoding honoring Specific Character Set (0008,0005), PS3.5 Section 6.1 and Annexes H, I, J, K.
import { convertBytes } from 'dicom-character-set';
import { CHARSET_VRS, SINGLE_VALUE_VRS } from './vr.ts';

const latin1 = new TextDecoder('latin1');

/**
 * Parses the raw value of Specific Character Set into its terms. An empty first value means the default
 * repertoire ISO-IR 6 is active until an escape sequence switches (PS3.3 C.12.1.1.2).
 */
export function parseSpecificCharacterSet(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const terms = raw.split('\\').map((t) => t.trim());
  if (terms.every((t) => t === '')) return undefined;
  return terms;
}

/**
 * Decodes the bytes of one text value (all its backslash-separated values) to Unicode. Only the VRs listed
 * in PS3.5 6.1.2.3 (SH, LO, ST, LT, PN, UC, UT) may use extended repertoires; other VRs are default
 * repertoire. Outside the default repertoire, bytes of a dataset without (0008,0005) are read as Latin-1
 * rather than rejected: real archives hold many such files and the bytes round-trip unchanged.
 */
export function decodeText(bytes: Uint8Array, vr: string, characterSet?: string[] | string): string {
  const terms = typeof characterSet === 'string' ? parseSpecificCharacterSet(characterSet) : characterSet;
  if (!CHARSET_VRS.has(vr) || !terms || terms.length === 0) return latin1.decode(bytes);
  if (terms.length === 1 && (terms[0] === '' || terms[0] === 'ISO_IR 6' || terms[0] === 'ISO 2022 IR 6')) {
    return latin1.decode(bytes);
  }
  try {
    // dicom-character-set resets to the initial code element at the delimiters PS3.5 6.1.2.5.3 lists for
    // the VR (e.g. "^" and "=" in PN), which is what ISO 2022 code extension requires.
    return convertBytes(terms.join('\\'), bytes, { vr });
  } catch {
    return latin1.decode(bytes);
  }
}

/** Splits a decoded value into its values (PS3.5 6.4: backslash delimits, except for LT, ST, UT, UR). */
export function splitValues(text: string, vr: string): string[] {
  if (SINGLE_VALUE_VRS.has(vr)) return [text];
  return text.split('\\');
}

// Leading spaces are significant for LT, ST, UT, UC, UR and PN is taken verbatim apart from padding
// (PS3.5 Table 6.2-1); trailing spaces are padding for every string VR, and UI pads with NUL.
const KEEP_LEADING: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UC', 'UR', 'PN']);

export function trimValue(value: string, vr: string): string {
  const end = value.replace(/[\0 ]+$/, '');
  return KEEP_LEADING.has(vr) ? end : end.replace(/^ +/, '');
}

export interface PersonNameGroups {
  Alphabetic?: string;
  Ideographic?: string;
  Phonetic?: string;
}

/** Splits one PN value into its component groups (PS3.5 6.2.1.1), omitting empty trailing groups. */
export function splitPersonName(value: string): PersonNameGroups {
  const [a, i, p] = value.split('=');
  const out: PersonNameGroups = {};
  if (a) out.Alphabetic = a;
  if (i) out.Ideographic = i;
  if (p) out.Phonetic = p;
  return out;
}
