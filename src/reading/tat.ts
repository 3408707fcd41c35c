/**
 * Turnaround times from the order timeline (src/ris/: each status transition with its time and source), pure:
 * docs/reading.md "Turnaround times" defines each interval.
 */
import type { OrderFacts, StudyFacts } from './sql-reading-store.ts';
import { readingPriorityOf, slaFor, slaStatus, type ReadingPriority, type SlaRule, type SlaStatus } from './sla.ts';

export const INTERVALS = ['orderToExamStart', 'examCompleteToFirstImage', 'examCompleteToPreliminary', 'examCompleteToFinal'] as const;
export type Interval = (typeof INTERVALS)[number];

/** The instants of one order's life the intervals are measured between (ISO times, null when not reached). */
export interface OrderTimes {
  orderedAt: string;
  /** The first `in-progress` entry (MPPS IN PROGRESS, ORC-5 IP, by hand). */
  examStartAt: string | null;
  /** The first `completed` entry (MPPS COMPLETED, ORC-5 CM, by hand). */
  examCompleteAt: string | null;
  /** The first entry whose source is an image (a study of the order arrived). */
  firstImageAt: string | null;
  preliminaryAt: string | null;
  /** The first `final-report` entry (an amendment later does not move it). */
  finalAt: string | null;
}

const first = (o: OrderFacts, test: (e: OrderFacts['timeline'][number]) => boolean) => o.timeline.find(test)?.at ?? null;

export function orderTimes(o: OrderFacts): OrderTimes {
  return {
    orderedAt: first(o, (e) => e.status === 'ordered') ?? o.createdAt,
    examStartAt: first(o, (e) => e.status === 'in-progress'),
    examCompleteAt: first(o, (e) => e.status === 'completed'),
    firstImageAt: first(o, (e) => e.sourceKind === 'image'),
    preliminaryAt: first(o, (e) => e.status === 'preliminary-report'),
    finalAt: first(o, (e) => e.status === 'final-report'),
  };
}

const minutesBetween = (a: string | null, b: string | null): number | null => (a && b ? (Date.parse(b) - Date.parse(a)) / 60_000 : null);

/**
 * Minutes of each interval; null when an end is missing. Exam complete -> first image is signed: negative when
 * images arrived before the modality said it was done (the usual case for a modality sending as it scans).
 */
export function intervalsOf(t: OrderTimes): Record<Interval, number | null> {
  return {
    orderToExamStart: minutesBetween(t.orderedAt, t.examStartAt),
    examCompleteToFirstImage: minutesBetween(t.examCompleteAt, t.firstImageAt),
    examCompleteToPreliminary: minutesBetween(t.examCompleteAt, t.preliminaryAt),
    examCompleteToFinal: minutesBetween(t.examCompleteAt, t.finalAt),
  };
}

/** Linear interpolation between closest ranks (the "R-7" / NumPy default); null for no values. */
export function percentile(values: readonly number[], p: number): number | null {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/** One order as the dashboard and the REST API report it. */
export interface TurnaroundCase {
  accessionNumber: string;
  studyInstanceUid: string;
  patientId: string;
  priority: ReadingPriority;
  modality: string | null;
  site: string | null;
  /** The author of the first final (else preliminary) report. */
  radiologist: string | null;
  times: OrderTimes;
  minutes: Record<Interval, number | null>;
  /** Against the SLA (exam complete -> final report); null when the exam is not complete. */
  sla: SlaStatus | null;
}

export function turnaroundCase(o: OrderFacts, study: StudyFacts | undefined, rules: readonly SlaRule[], now: Date, warningPercent: number): TurnaroundCase {
  const times = orderTimes(o);
  const priority = readingPriorityOf(o.priority, o.screening);
  const modalities = [o.modality, ...(study?.modalities ?? [])].filter((m): m is string => !!m);
  const rule = slaFor(rules, priority, modalities);
  const author = o.reports.find((r) => r.status === 'F')?.author ?? o.reports.find((r) => r.status === 'P')?.author ?? null;
  return {
    accessionNumber: o.accessionNumber, studyInstanceUid: o.studyInstanceUid, patientId: o.patientId, priority, modality: modalities[0] ?? null,
    site: study?.institutions[0] ?? o.location ?? null, radiologist: author, times, minutes: intervalsOf(times),
    sla: times.examCompleteAt ? slaStatus(rule, times.examCompleteAt, times.finalAt, now, warningPercent) : null,
  };
}

export interface IntervalStats {
  count: number;
  median: number | null;
  p90: number | null;
}

export function statsOf(values: readonly number[]): IntervalStats {
  return { count: values.length, median: percentile(values, 50), p90: percentile(values, 90) };
}

export type Dimension = 'modality' | 'priority' | 'radiologist' | 'site';

/** Cases grouped by one dimension: each interval's count, median and 90th percentile, and the SLA breaches. */
export function summarize(cases: readonly TurnaroundCase[], by: Dimension): { key: string; intervals: Record<Interval, IntervalStats>; breaches: number; cases: number }[] {
  const groups = new Map<string, TurnaroundCase[]>();
  for (const c of cases) {
    const key = c[by] ?? '(none)';
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, list]) => ({
    key, cases: list.length, breaches: list.filter((c) => c.sla?.state === 'breach').length,
    intervals: Object.fromEntries(INTERVALS.map((i) => [i, statsOf(list.map((c) => c.minutes[i]).filter((m): m is number => m !== null))])) as Record<Interval, IntervalStats>,
  }));
}

/** The UTC start of the bucket (hour, day, week from Monday) `iso` falls in. */
export function bucketOf(iso: string, bucket: 'hour' | 'day' | 'week'): string {
  const d = new Date(iso);
  if (bucket === 'hour') d.setUTCMinutes(0, 0, 0);
  else {
    d.setUTCHours(0, 0, 0, 0);
    if (bucket === 'week') d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
  }
  return d.toISOString();
}

/**
 * Exam complete -> final report over time, per modality and priority: for each bucket (by the exam complete's
 * time) the count, median and 90th percentile, beside the group's SLA minutes.
 */
export function timeSeries(cases: readonly TurnaroundCase[], bucket: 'hour' | 'day' | 'week', interval: Interval = 'examCompleteToFinal') {
  const groups = new Map<string, { modality: string | null; priority: ReadingPriority; slaMinutes: number | null; points: Map<string, number[]> }>();
  for (const c of cases) {
    const m = c.minutes[interval];
    const at = interval === 'orderToExamStart' ? c.times.orderedAt : c.times.examCompleteAt;
    if (m === null || !at) continue;
    const key = `${c.modality ?? ''}|${c.priority}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { modality: c.modality, priority: c.priority, slaMinutes: c.sla?.minutes ?? null, points: new Map() }));
    const b = bucketOf(at, bucket);
    g.points.set(b, [...(g.points.get(b) ?? []), m]);
  }
  return [...groups.values()].map((g) => ({
    modality: g.modality, priority: g.priority, slaMinutes: interval === 'examCompleteToFinal' ? g.slaMinutes : null,
    points: [...g.points.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([at, values]) => ({ at, ...statsOf(values) })),
  })).sort((a, b) => (a.modality ?? '').localeCompare(b.modality ?? '') || a.priority.localeCompare(b.priority));
}
