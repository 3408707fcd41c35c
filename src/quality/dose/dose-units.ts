/**
 * Dose values are kept as the SR gave them (value and its UCUM unit code, Measurement Units Code Sequence)
 * and also in one unit per quantity, so that studies from devices that report DAP in Gy.m2, dGy.cm2 or
 * uGy.m2 can be compared with each other and with a reference level. The canonical units are those DRLs
 * are published in: mGy (CTDIvol, AGD, dose at the reference point), mGy.cm (DLP), Gy.cm2 (DAP), s, mm,
 * kV, mA, mAs, MBq. A unit not listed gives no canonical value (the original is still kept).
 *
 * `mGycm` is not UCUM (UCUM writes `mGy.cm`) but some devices send it (the Siemens file of the test data):
 * it is read as mGy.cm.
 */
export type Dimension = 'dose' | 'dlp' | 'dap' | 'time' | 'length' | 'voltage' | 'current' | 'exposure' | 'activity' | 'ratio';

export const CANONICAL_UNIT: Readonly<Record<Dimension, string>> = {
  dose: 'mGy', dlp: 'mGy.cm', dap: 'Gy.cm2', time: 's', length: 'mm', voltage: 'kV', current: 'mA', exposure: 'mAs', activity: 'MBq', ratio: '1',
};

const FACTORS: Readonly<Record<Dimension, Readonly<Record<string, number>>>> = {
  dose: { Gy: 1000, dGy: 100, cGy: 10, mGy: 1, uGy: 0.001 },
  dlp: { 'mGy.cm': 1, mGycm: 1, 'mGy*cm': 1, 'Gy.cm': 1000, 'cGy.cm': 10, 'mGy.mm': 0.1, 'Gy.m': 100_000 },
  dap: { 'Gy.m2': 10_000, 'Gy.cm2': 1, 'dGy.cm2': 0.1, 'cGy.cm2': 0.01, 'mGy.cm2': 0.001, 'uGy.cm2': 0.000001, 'mGy.m2': 10, 'uGy.m2': 0.01, 'dGy.m2': 1000 },
  time: { s: 1, ms: 0.001, us: 0.000001, min: 60, h: 3600 },
  length: { mm: 1, cm: 10, m: 1000, um: 0.001 },
  voltage: { kV: 1, V: 0.001 },
  current: { mA: 1, A: 1000, uA: 0.001 },
  exposure: { mAs: 1, 'mA.s': 1, uAs: 0.001, 'uA.s': 0.001, As: 1000, 'A.s': 1000 },
  activity: { MBq: 1, kBq: 0.001, Bq: 0.000001, GBq: 1000, mCi: 37, uCi: 0.037 },
  ratio: { '1': 1, '{ratio}': 1, '{Ratio}': 1 },
};

/** The value in its dimension's canonical unit, or null when the unit is not one known for it. */
export function toCanonical(dimension: Dimension, value: number, unit: string | null): number | null {
  if (unit === null) return dimension === 'ratio' ? value : null;
  const factor = FACTORS[dimension][unit];
  if (factor === undefined) return null;
  // Rounded to 12 significant digits so 1.07E-05 Gy.m2 reads 0.107 Gy.cm2, not 0.10700000000000001.
  return Number((value * factor).toPrecision(12));
}
