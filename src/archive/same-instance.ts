// The same SOP Instance received again in another transfer syntax (a router transcoded it, a modality resent
// it compressed): is it the same instance? The data sets are compared attribute by attribute, leaving out
// what depends on the transfer syntax, and the pixels after decoding (by the imaging service, given to the
// ingest pipeline as a PixelsComparer since archive/ must not import imaging/).
import type { InstanceRecord, PixelDataLayout } from '../ports/index-store.ts';

export interface InstanceCopy {
  record: InstanceRecord;
  /** DICOM JSON, as the index keeps it. */
  metadata: unknown;
  pixelData: PixelDataLayout | null;
}

export type PixelsComparer = (a: InstanceCopy, b: InstanceCopy) => Promise<
  { result: 'same'; frames: number } | { result: 'different'; detail: string } | { result: 'unknown'; detail: string }>;

/**
 * Transfer syntaxes whose pixels may have lost information (PS3.5 A.4: JPEG baseline/extended, JPEG-LS
 * near-lossless, JPEG 2000 and HTJ2K that are not lossless-only, MPEG and HEVC). Lossy Image Compression
 * (0028,2110) "01" also says so.
 */
const LOSSY_SYNTAXES = new Set([
  '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.81', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.4.93',
  '1.2.840.10008.1.2.4.100', '1.2.840.10008.1.2.4.101', '1.2.840.10008.1.2.4.102', '1.2.840.10008.1.2.4.103', '1.2.840.10008.1.2.4.104',
  '1.2.840.10008.1.2.4.105', '1.2.840.10008.1.2.4.106', '1.2.840.10008.1.2.4.107', '1.2.840.10008.1.2.4.108', '1.2.840.10008.1.2.4.203',
]);

export function isLossy(transferSyntaxUid: string, metadata: unknown): boolean {
  const flag = (metadata as Json)?.['00282110']?.Value?.[0];
  return LOSSY_SYNTAXES.has(transferSyntaxUid) || (typeof flag === 'string' && flag.trim() === '01');
}

/**
 * Attributes that a change of transfer syntax may change (PS3.5 8, A.4; PS3.3 C.7.6.1.1): the pixel data and
 * its offset tables, Photometric Interpretation (YBR_FULL_422 for JPEG, YBR_RCT/ICT for JPEG 2000), Planar
 * Configuration, the lossy compression and derivation attributes, trailing padding and group lengths.
 */
const SYNTAX_DEPENDENT = new Set(['7FE00010', '7FE00001', '7FE00002', '00280004', '00280006', '00282110', '00282112', '00282114', 'FFFCFFFC',
  // Derivation Description and Derivation Code Sequence say "lossy compression" on a lossy copy (PS3.3 C.7.6.1.1.5).
  '00082111', '00089215']);
// Written as "US or SS" in the registry: Implicit VR reads them as US, an Explicit VR writer may have said SS.
const SIXTEEN_BIT = new Set(['US', 'SS']);

type Json = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string }>;

/**
 * The first difference between two DICOM JSON data sets outside the transfer-syntax-dependent attributes, or
 * undefined. Values are compared; VRs are not (Implicit VR leaves private elements UN, whose value is not in the
 * metadata). Binary values are in the metadata only as BulkDataURIs, so only their presence is compared.
 */
export function attributeDifference(a: unknown, b: unknown, path = ''): string | undefined {
  const x = a as Json;
  const y = b as Json;
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  for (const key of [...keys].sort()) {
    if (SYNTAX_DEPENDENT.has(key) && path === '') continue;
    if (key.endsWith('0000')) continue; // group lengths
    const where = `${path}(${key.slice(0, 4)},${key.slice(4)})`;
    const ex = x[key];
    const ey = y[key];
    if (!ex || !ey) return `${where} is in only one copy`;
    if (ex.vr === 'UN' || ey.vr === 'UN') continue; // one copy knows no VR, the other decodes the value: not comparable
    const vx = ex.Value ?? [];
    const vy = ey.Value ?? [];
    if (vx.length !== vy.length) return `${where} has ${vx.length} values against ${vy.length}`;
    for (let i = 0; i < vx.length; i++) {
      const p = vx[i];
      const q = vy[i];
      if (ex.vr === 'SQ' || ey.vr === 'SQ') {
        const inner = attributeDifference(p ?? {}, q ?? {}, `${where}[${i}]`);
        if (inner) return inner;
        continue;
      }
      if (typeof p === 'number' && typeof q === 'number' && (SIXTEEN_BIT.has(ex.vr) || SIXTEEN_BIT.has(ey.vr))) {
        if ((p & 0xffff) !== (q & 0xffff)) return `${where} is ${p} against ${q}`;
        continue;
      }
      if (JSON.stringify(p) !== JSON.stringify(q)) return `${where} is ${JSON.stringify(p)} against ${JSON.stringify(q)}`;
    }
  }
  return undefined;
}
