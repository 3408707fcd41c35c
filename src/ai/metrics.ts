/**
 * An AI node's performance (docs/ai.md "Monitoring"), computed from its requests at a given time. Pure.
 *
 * - processing time: sent -> first result, per resulted request (median, 90th percentile, mean);
 * - results per study: results linked per resulted request;
 * - positive rate: requests with a mapped finding present / requests whose SR results were evaluated;
 * - failures: requests whose send failed for good; timeouts: sent, and no result within the timeout (`late`
 *   when one came after it);
 * - availability: the share of send attempts the node accepted;
 * - agreement: the radiologist's confirms / overrides once the study is reported.
 */
import type { AiRequest } from './sql-ai-store.ts';

export interface NodeMetrics {
  node: string;
  research: boolean;
  timeoutMinutes: number;
  requests: { total: number; queued: number; sent: number; resulted: number; failed: number; pending: number };
  processingSeconds: { count: number; median: number | null; p90: number | null; mean: number | null; max: number | null };
  resultsPerStudy: number | null;
  results: number;
  positive: number;
  evaluated: number;
  positiveRate: number | null;
  failures: number;
  timeouts: number;
  /** Of the timeouts, results that came after the timeout. */
  late: number;
  unmatchedResults: number;
  availability: { attempts: number; failedAttempts: number; rate: number | null; lastError: string | null };
  agreement: { confirms: number; overrides: number; rate: number | null; awaiting: number };
}

/** Linear interpolation between closest ranks (as src/reading/tat.ts). */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = (sorted.length - 1) * p;
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

const round = (n: number | null, digits = 3) => (n === null ? null : Number(n.toFixed(digits)));

export function nodeMetrics(node: { name: string; mode: string }, requests: readonly AiRequest[], unmatchedResults: number, now: Date, timeoutMinutes: number): NodeMetrics {
  const timeoutMs = timeoutMinutes * 60_000;
  const count = (s: AiRequest['state']) => requests.filter((r) => r.state === s).length;
  const durations = requests.filter((r) => r.sentAt && r.firstResultAt).map((r) => Math.max(0, (Date.parse(r.firstResultAt!) - Date.parse(r.sentAt!)) / 1000)).sort((a, b) => a - b);
  let timeouts = 0;
  let late = 0;
  let pending = 0;
  for (const r of requests) {
    if (!r.sentAt) continue;
    const sent = Date.parse(r.sentAt);
    if (!r.firstResultAt) {
      if (now.getTime() - sent > timeoutMs) timeouts++;
      else pending++;
    } else if (Date.parse(r.firstResultAt) - sent > timeoutMs) {
      timeouts++;
      late++;
    }
  }
  const resulted = requests.filter((r) => r.resultCount > 0);
  const evaluated = requests.filter((r) => r.positive !== null);
  const positive = evaluated.filter((r) => r.positive).length;
  const attempts = requests.reduce((n, r) => n + r.attempts, 0);
  const failedAttempts = requests.reduce((n, r) => n + r.failedAttempts, 0);
  const confirms = requests.filter((r) => r.agreement?.value === 'confirms').length;
  const overrides = requests.filter((r) => r.agreement?.value === 'overrides').length;
  const lastFailed = requests.filter((r) => r.lastError).sort((a, b) => b.id - a.id)[0];
  return {
    node: node.name, research: node.mode === 'research', timeoutMinutes,
    requests: { total: requests.length, queued: count('queued'), sent: count('sent'), resulted: count('resulted'), failed: count('failed'), pending },
    processingSeconds: {
      count: durations.length, median: round(percentile(durations, 0.5)), p90: round(percentile(durations, 0.9)),
      mean: round(durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : null), max: round(durations.at(-1) ?? null),
    },
    resultsPerStudy: round(resulted.length ? resulted.reduce((n, r) => n + r.resultCount, 0) / resulted.length : null),
    results: resulted.reduce((n, r) => n + r.resultCount, 0),
    positive, evaluated: evaluated.length, positiveRate: round(evaluated.length ? positive / evaluated.length : null),
    failures: count('failed'), timeouts, late, unmatchedResults,
    availability: { attempts, failedAttempts, rate: round(attempts ? (attempts - failedAttempts) / attempts : null), lastError: lastFailed?.lastError ?? null },
    agreement: { confirms, overrides, rate: round(confirms + overrides ? confirms / (confirms + overrides) : null), awaiting: resulted.filter((r) => !r.agreement).length },
  };
}
