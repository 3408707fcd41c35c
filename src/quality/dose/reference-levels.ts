/**
 * Dose reference levels (DRLs) are data (table `dose_reference_level`, REST `/api/quality/dose/reference-levels`):
 * a level applies to a study by modality, protocol, procedure code, body region, age band and, for
 * mammography, compressed breast thickness. This file is the matching and the comparison; no I/O.
 *
 * Study-level quantities (dlp-total, dap-total, dose-rp-total, fluoro-time-total) compare the report's
 * totals; event-level ones (ctdivol, agd) each irradiation event. Where several levels match the same value,
 * the most specific one (the most criteria given) is used, so a site's specific level replaces a general
 * one without the general one alerting too; between equally specific ones, the site's own before a shipped
 * example, then the newest.
 */
export const AGE_BANDS = ['0-1y', '1-5y', '5-10y', '10-15y', '15-18y', 'adult', 'unknown'] as const;
export type AgeBand = (typeof AGE_BANDS)[number];

/** Pediatric bands as the age groups of paediatric DRLs (ICRP 135, EC RP 185) split them; 18 and over is adult. */
export function ageBandOf(years: number | null): AgeBand {
  if (years === null || !Number.isFinite(years) || years < 0) return 'unknown';
  if (years < 1) return '0-1y';
  if (years < 5) return '1-5y';
  if (years < 10) return '5-10y';
  if (years < 15) return '10-15y';
  if (years < 18) return '15-18y';
  return 'adult';
}

export const QUANTITIES = {
  'dlp-total': { level: 'study', unit: 'mGy.cm', modalities: ['CT'] },
  'dap-total': { level: 'study', unit: 'Gy.cm2', modalities: ['DX', 'RF', 'MG'] },
  'dose-rp-total': { level: 'study', unit: 'mGy', modalities: ['DX', 'RF'] },
  'fluoro-time-total': { level: 'study', unit: 's', modalities: ['RF'] },
  ctdivol: { level: 'event', unit: 'mGy', modalities: ['CT'] },
  agd: { level: 'event', unit: 'mGy', modalities: ['MG'] },
} as const;
export type Quantity = keyof typeof QUANTITIES;
export const QUANTITY_NAMES = Object.keys(QUANTITIES) as Quantity[];

export interface ReferenceLevel {
  id: number;
  modality: string;
  quantity: Quantity;
  protocol: string | null;
  procedureCode: string | null;
  bodyRegion: string | null;
  ageBand: AgeBand | null;
  breastThicknessMinMm: number | null;
  breastThicknessMaxMm: number | null;
  /** In the quantity's canonical unit (QUANTITIES[quantity].unit). */
  value: number;
  unit: string;
  source: string;
  /** A published value shipped as an example, to be replaced by the site's own. */
  example: boolean;
  updatedAt: string;
  updatedBy: string | null;
}

/** What the comparison needs of a stored report and its events. */
export interface ComparedReport {
  modality: string;
  procedureCode: string | null;
  ageBand: AgeBand;
  totals: { dlpTotal: number | null; dapTotal: number | null; doseRpTotal: number | null; fluoroTimeTotal: number | null };
  events: {
    id: number; acquisitionProtocol: string | null; targetRegion: string | null; targetRegionCode: string | null;
    compressionThickness: number | null; ctdivol: number | null; agd: number | null;
  }[];
}

export interface AlertCandidate {
  kind: 'drl-exceeded' | 'ctdivol-alert';
  quantity: Quantity;
  value: number;
  unit: string;
  threshold: number;
  referenceLevelId: number | null;
  eventId: number | null;
  message: string;
}

const same = (a: string | null, b: string | null) => a !== null && b !== null && a.trim().toLowerCase() === b.trim().toLowerCase();

type Event = ComparedReport['events'][number];

function eventMatches(level: ReferenceLevel, e: Event): boolean {
  if (level.protocol !== null && !same(level.protocol, e.acquisitionProtocol)) return false;
  if (level.bodyRegion !== null && !same(level.bodyRegion, e.targetRegion) && !same(level.bodyRegion, e.targetRegionCode)) return false;
  if (level.breastThicknessMinMm !== null && !(e.compressionThickness !== null && e.compressionThickness >= level.breastThicknessMinMm)) return false;
  if (level.breastThicknessMaxMm !== null && !(e.compressionThickness !== null && e.compressionThickness < level.breastThicknessMaxMm)) return false;
  return true;
}

function reportMatches(level: ReferenceLevel, r: ComparedReport): boolean {
  if (level.modality.toUpperCase() !== r.modality) return false;
  if (level.ageBand !== null && level.ageBand !== r.ageBand) return false;
  if (level.procedureCode !== null && !same(level.procedureCode, r.procedureCode)) return false;
  return true;
}

const specificity = (l: ReferenceLevel) =>
  [l.protocol, l.procedureCode, l.bodyRegion, l.ageBand, l.breastThicknessMinMm, l.breastThicknessMaxMm].filter((v) => v !== null).length;

function mostSpecific(levels: ReferenceLevel[]): ReferenceLevel | undefined {
  // Ties: the site's own level before a shipped example, then the newest.
  return [...levels].sort((a, b) => specificity(b) - specificity(a) || Number(a.example) - Number(b.example) || b.id - a.id)[0];
}

const STUDY_VALUE: Record<string, (r: ComparedReport) => number | null> = {
  'dlp-total': (r) => r.totals.dlpTotal, 'dap-total': (r) => r.totals.dapTotal, 'dose-rp-total': (r) => r.totals.doseRpTotal,
  'fluoro-time-total': (r) => r.totals.fluoroTimeTotal,
};
const EVENT_VALUE: Record<string, (e: Event) => number | null> = { ctdivol: (e) => e.ctdivol, agd: (e) => e.agd };

/** The alerts a report raises: its totals and events over their DRL x percent / 100, and CT events over the CTDIvol alert value. */
export function compareWithReferenceLevels(report: ComparedReport, levels: readonly ReferenceLevel[], settings: { drlPercent: number; ctdivolAlertMgy: number }): AlertCandidate[] {
  const out: AlertCandidate[] = [];
  const factor = settings.drlPercent / 100;
  const applicable = levels.filter((l) => reportMatches(l, report));
  for (const quantity of QUANTITY_NAMES) {
    const unit = QUANTITIES[quantity].unit;
    const ofQuantity = applicable.filter((l) => l.quantity === quantity);
    if (!ofQuantity.length) continue;
    if (QUANTITIES[quantity].level === 'study') {
      const value = STUDY_VALUE[quantity]!(report);
      // A study-level level with event criteria applies when any event of the study matches them.
      const level = mostSpecific(ofQuantity.filter((l) => (l.protocol === null && l.bodyRegion === null) || report.events.some((e) => eventMatches(l, e))));
      if (value === null || !level) continue;
      const threshold = Number((level.value * factor).toPrecision(12));
      if (value > threshold) {
        out.push({ kind: 'drl-exceeded', quantity, value, unit, threshold, referenceLevelId: level.id, eventId: null,
          message: `${quantity} ${value} ${unit} is over ${threshold} ${unit} (${describe(level)}${factor !== 1 ? ` x ${factor}` : ''})` });
      }
    } else {
      for (const e of report.events) {
        const value = EVENT_VALUE[quantity]!(e);
        const level = mostSpecific(ofQuantity.filter((l) => eventMatches(l, e)));
        if (value === null || !level) continue;
        const threshold = Number((level.value * factor).toPrecision(12));
        if (value > threshold) {
          out.push({ kind: 'drl-exceeded', quantity, value, unit, threshold, referenceLevelId: level.id, eventId: e.id,
            message: `${quantity} ${value} ${unit} of event ${e.acquisitionProtocol ?? e.id} is over ${threshold} ${unit} (${describe(level)}${factor !== 1 ? ` x ${factor}` : ''})` });
        }
      }
    }
  }
  if (report.modality === 'CT') {
    for (const e of report.events) {
      if (e.ctdivol !== null && e.ctdivol > settings.ctdivolAlertMgy) {
        out.push({ kind: 'ctdivol-alert', quantity: 'ctdivol', value: e.ctdivol, unit: 'mGy', threshold: settings.ctdivolAlertMgy, referenceLevelId: null, eventId: e.id,
          message: `CTDIvol ${e.ctdivol} mGy of event ${e.acquisitionProtocol ?? e.id} is over the alert value ${settings.ctdivolAlertMgy} mGy` });
      }
    }
  }
  return out;
}

function describe(l: ReferenceLevel): string {
  const criteria = [l.protocol && `protocol ${l.protocol}`, l.bodyRegion && `region ${l.bodyRegion}`, l.procedureCode && `procedure ${l.procedureCode}`,
    l.ageBand && `age ${l.ageBand}`, (l.breastThicknessMinMm !== null || l.breastThicknessMaxMm !== null) && `thickness ${l.breastThicknessMinMm ?? ''}-${l.breastThicknessMaxMm ?? ''} mm`]
    .filter(Boolean).join(', ');
  return `DRL #${l.id} ${l.modality} ${l.value} ${l.unit}${criteria ? `, ${criteria}` : ''}`;
}
