// Atrium's UIDs (PS3.5 Section 9). The root is a UUID-derived OID under 2.25 (PS3.5 B.2), which needs no
// registration and cannot collide with other organizations' roots.
import { randomUUID } from 'node:crypto';

export const ATRIUM_UID_ROOT = '2.25.200463520585735848779651870934069577193';
/** (0002,0012) Implementation Class UID written by Atrium (PS3.7 D.3.3.2). */
export const ATRIUM_IMPLEMENTATION_CLASS_UID = `${ATRIUM_UID_ROOT}.1`;
/** (0002,0013) Implementation Version Name: at most 16 characters of SH. */
export const ATRIUM_IMPLEMENTATION_VERSION_NAME = 'ATRIUM_0_1';

/** A new globally unique UID: 2.25 followed by the decimal value of a random (version 4) UUID (PS3.5 B.2). */
export function generateUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString(10)}`;
}

/** Syntax check of PS3.5 9.1: at most 64 characters, numeric components without leading zeros. */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/.test(uid);
}

/** Why `uid` breaks PS3.5 9.1 (undefined when it does not): what a quality finding says of it. */
export function uidProblem(uid: string): string | undefined {
  if (isValidUid(uid)) return undefined;
  const problems: string[] = [];
  if (uid.length > 64) problems.push(`${uid.length} characters, more than 64`);
  if (/[^0-9.]/.test(uid)) problems.push('characters other than digits and dots');
  if (/^\.|\.$|\.\./.test(uid)) problems.push('an empty component');
  if (/(^|\.)0[0-9]/.test(uid)) problems.push('a component with a leading zero');
  return problems.length ? problems.join(', ') : 'empty';
}

/**
 * What is taken as a UID from equipment that breaks PS3.5 9.1 (letters, hex strings, over 64 characters,
 * leading zeros): a run of printable characters without spaces, backslashes or wild cards, at most 256. The
 * archive may store such UIDs (ingest.invalidUidPolicy "flag"), so queries and URLs must be able to name them.
 */
export function isTolerableUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 256 && /^[\x21-\x7e]+$/.test(uid) && !/[\\*?]/.test(uid);
}
