// Value Representation rules from PS3.5 Section 6.2 and 7.1.2.

export const VALID_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW',
  'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);

/** VRs whose explicit-VR header has 2 reserved bytes and a 32-bit length (PS3.5 Table 7.1-1). */
export const LONG_HEADER_VRS: ReadonlySet<string> = new Set([
  'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV',
]);

/** Character string VRs (PS3.5 6.2): values are backslash-delimited text. */
export const STRING_VRS: ReadonlySet<string> = new Set([
  'AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT',
]);

/** VRs affected by Specific Character Set (PS3.5 6.1.2.3); others are in the default repertoire. */
export const CHARSET_VRS: ReadonlySet<string> = new Set(['LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UT']);

/** VRs with a single value that may contain backslashes (PS3.5 6.2: LT, ST, UT, UR have VM 1). */
export const SINGLE_VALUE_VRS: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR']);

/** Binary VRs that carry opaque or bulk data; DICOM JSON encodes them as InlineBinary (PS3.18 F.2.7). */
export const BINARY_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/** Size in bytes of one numeric unit, used for byte swapping between endiannesses (PS3.5 7.3). */
export function swapUnit(vr: string): number {
  switch (vr) {
    case 'US': case 'SS': case 'OW': case 'AT': return 2;
    case 'UL': case 'SL': case 'FL': case 'OL': case 'OF': return 4;
    case 'FD': case 'OD': case 'SV': case 'UV': case 'OV': return 8;
    default: return 1;
  }
}

/** Returns a copy of `bytes` with every `unit`-byte word reversed. */
export function swapBytes(bytes: Uint8Array, unit: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  const whole = bytes.length - (bytes.length % unit);
  for (let i = 0; i < whole; i += unit) {
    for (let j = 0; j < unit; j++) out[i + j] = bytes[i + unit - 1 - j];
  }
  out.set(bytes.subarray(whole), whole);
  return out;
}

/** Padding byte for odd-length values: NUL for UI and binary VRs, space for text (PS3.5 6.2). */
export function paddingByte(vr: string): number {
  return STRING_VRS.has(vr) && vr !== 'UI' ? 0x20 : 0x00;
}
