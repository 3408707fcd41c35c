/**
 * Reading priorities and the report turnaround SLA (docs/reading.md). The SLA measures the report
 * turnaround of the seed's table ("study-to-report", Step 5 of the imaging informatics checklist): from the
 * exam complete (the order's `completed` timeline entry, else the study found stable) to the final report.
 */
import type { Priority } from '../ris/model.ts';

/** The clinical priority classes of the worklist and the SLA table, most urgent first. */
export type ReadingPriority = 'stat' | 'urgent' | 'routine' | 'screening';
export const READING_PRIORITIES: readonly ReadingPriority[] = ['stat', 'urgent', 'routine', 'screening'];
export const PRIORITY_RANK: Readonly<Record<ReadingPriority, number>> = { stat: 0, urgent: 1, routine: 2, screening: 3 };

/** An order's priority class: STAT; URGENT and ASAP (HL7 TQ1-9 / ORC-7 "A") are urgent; ROUTINE with the screening mark is screening. */
export function readingPriorityOf(priority: Priority | null | undefined, screening: boolean): ReadingPriority {
  if (priority === 'STAT') return 'stat';
  if (priority === 'URGENT' || priority === 'ASAP') return 'urgent';
  return screening ? 'screening' : 'routine';
}

export interface SlaRule {
  priority: ReadingPriority;
  /** A DICOM modality code (CT, MR, DX ...), or `*` for any modality no other row names. */
  modality: string;
  /** Exam complete -> final report allowed; past it, the study is in breach. */
  minutes: number;
  /** When the study is "about to breach"; null: reading.warningPercent of `minutes`. */
  warningMinutes: number | null;
}

/**
 * The seed's table (`Report turnaround time targets by priority and modality`), one row per modality code:
 * CT/MRI = CT, MR; X-ray = CR, DX, RF, XA, MG (projection radiography, mammography included); Ultrasound = US;
 * Nuclear Medicine = NM, PT. Screening is given for CT/MRI only ("48-72 hours"): breach at 72 h, warning at
 * 48 h; the other modalities' screening cells are N/A, so no row (no SLA, no alert).
 */
const GROUPS = { ctmr: ['CT', 'MR'], xray: ['CR', 'DX', 'RF', 'XA', 'MG'], us: ['US'], nm: ['NM', 'PT'] } as const;
const SEED_TABLE: readonly { priority: ReadingPriority; ctmr: number | [number, number] | null; xray: number | null; us: number | null; nm: number | null }[] = [
  { priority: 'stat', ctmr: 30, xray: 30, us: 30, nm: 60 },
  { priority: 'urgent', ctmr: 120, xray: 120, us: 120, nm: 240 },
  { priority: 'routine', ctmr: 1440, xray: 1440, us: 1440, nm: 2880 },
  { priority: 'screening', ctmr: [2880, 4320], xray: null, us: null, nm: null },
];

export const DEFAULT_SLA: readonly SlaRule[] = SEED_TABLE.flatMap((row) => (Object.keys(GROUPS) as (keyof typeof GROUPS)[]).flatMap((group) => {
  const cell = row[group];
  if (cell === null) return [];
  const [warningMinutes, minutes] = Array.isArray(cell) ? cell : [null, cell];
  return GROUPS[group].map((modality) => ({ priority: row.priority, modality, minutes, warningMinutes }));
}));

/** The rule for a study: its modality's row, else the `*` row of its priority; null when none (no SLA). */
export function slaFor(rules: readonly SlaRule[], priority: ReadingPriority, modalities: readonly string[]): SlaRule | null {
  for (const modality of modalities) {
    const rule = rules.find((r) => r.priority === priority && r.modality === modality.toUpperCase());
    if (rule) return rule;
  }
  return rules.find((r) => r.priority === priority && r.modality === '*') ?? null;
}

export type SlaState = 'ok' | 'warning' | 'breach' | 'none';

export interface SlaStatus {
  state: SlaState;
  minutes: number | null;
  warningMinutes: number | null;
  dueAt: string | null;
  warningAt: string | null;
  /** Minutes since exam complete (to the report, or to now when not reported). */
  elapsedMinutes: number;
  /** Elapsed over the SLA (1 = at the limit). */
  fraction: number | null;
}

const MINUTE = 60_000;

/** Where a study stands against its rule at `now` (or at its final report, when reported). */
export function slaStatus(rule: SlaRule | null, completedAt: string, finalAt: string | null, now: Date, warningPercent: number): SlaStatus {
  const start = Date.parse(completedAt);
  const end = finalAt ? Date.parse(finalAt) : now.getTime();
  const elapsedMinutes = Math.max(0, (end - start) / MINUTE);
  if (!rule) return { state: 'none', minutes: null, warningMinutes: null, dueAt: null, warningAt: null, elapsedMinutes, fraction: null };
  const warningMinutes = rule.warningMinutes ?? (rule.minutes * warningPercent) / 100;
  const state: SlaState = elapsedMinutes > rule.minutes ? 'breach' : !finalAt && elapsedMinutes >= warningMinutes ? 'warning' : 'ok';
  return {
    state, minutes: rule.minutes, warningMinutes, elapsedMinutes, fraction: elapsedMinutes / rule.minutes,
    dueAt: new Date(start + rule.minutes * MINUTE).toISOString(), warningAt: new Date(start + warningMinutes * MINUTE).toISOString(),
  };
}
