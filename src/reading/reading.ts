/**
 * The reading services of one archive (docs/reading.md): the worklist with its claims, turnaround times, the
 * SLA monitor (warnings and breaches recorded once and handed to the Notifier), and critical results.
 */
import { AtriumError } from '../errors.ts';
import type { JobQueue } from '../ports/job-queue.ts';
import type { EventMap } from '../events/event-map.ts';
import type { ReadingSettings } from './config.ts';
import type { Notifier } from './notifier.ts';
import { PRIORITY_RANK, readingPriorityOf, slaFor, slaStatus, type ReadingPriority, type SlaRule, type SlaStatus } from './sla.ts';
import type { CriticalResultRecord, OrderFacts, ReadingItemRow, SqlReadingStore, StudyFacts } from './sql-reading-store.ts';
import { summarize, timeSeries, turnaroundCase, type Dimension, type Interval, type TurnaroundCase } from './tat.ts';

export const READING_MONITOR_JOB = 'reading.monitor';

/** Order statuses with nothing left to read: a study that became stable after its final report is not listed. */
const DONE = new Set(['final-report', 'amended', 'cancelled', 'discontinued']);

export interface WorklistEntry {
  studyInstanceUid: string;
  accessionNumber: string | null;
  patientId: string | null;
  patientName: string | null;
  priority: ReadingPriority;
  /** The order's own priority (STAT, ASAP, URGENT, ROUTINE), null for a study no order matched. */
  orderPriority: string | null;
  procedure: string | null;
  modality: string | null;
  bodyRegion: string | null;
  site: string | null;
  /** The AI triage flag (set by the AI integration); null: none. */
  triage: string | null;
  readyAt: string;
  readyReason: ReadingItemRow['readyReason'];
  /** The exam complete time the SLA runs from. */
  completedAt: string;
  waitingMinutes: number;
  sla: SlaStatus;
  status: string | null;
  claim: { by: string; name: string; at: string; mine: boolean } | null;
  viewerUrl: string;
  priors: number;
}

export interface WorklistFilter {
  modality?: string;
  bodyRegion?: string;
  site?: string;
  priority?: ReadingPriority;
  claim?: 'mine' | 'others' | 'unclaimed';
}

export interface User { id: string; name: string }

/** The viewer (OHIF at /viewer) with the study and its priors: one StudyInstanceUIDs parameter each. */
export function viewerUrl(studyInstanceUid: string, priors: readonly string[]): string {
  return `/viewer?${[studyInstanceUid, ...priors].map((u) => `StudyInstanceUIDs=${encodeURIComponent(u)}`).join('&')}`;
}

/** Whether `clinician` (config: an ID or a Family^Given name) is the order's physician (`ORDERER^OSCAR^^^DR`, or an XCN with its ID first). */
export function clinicianMatches(clinician: string, xcn: string | null): boolean {
  if (!xcn) return false;
  const x = xcn.trim().toUpperCase();
  const want = clinician.trim().toUpperCase();
  if (x === want || x.startsWith(`${want}^`)) return true;
  const [id, ...name] = x.split('^');
  const rest = name.join('^');
  return id === want || rest === want || rest.startsWith(`${want}^`);
}

export class Reading {
  readonly store: SqlReadingStore;
  readonly #jobs: JobQueue;
  readonly #notifier: Notifier;
  readonly #settings: () => ReadingSettings;
  readonly #clock: () => Date;

  constructor(deps: { store: SqlReadingStore; jobs: JobQueue; notifier: Notifier; settings: () => ReadingSettings; clock?: () => Date }) {
    this.store = deps.store;
    this.#jobs = deps.jobs;
    this.#notifier = deps.notifier;
    this.#settings = deps.settings;
    this.#clock = deps.clock ?? (() => new Date());
  }

  now(): Date {
    return this.#clock();
  }

  warningPercent(): number {
    return this.#settings().warningPercent;
  }

  // ------------------------------------------------------------------------------------------ events

  /** OrderStatusChanged: completed (MPPS COMPLETED, ORC-5 CM) makes the study ready; a final report takes it off. */
  async onOrderStatus(p: EventMap['OrderStatusChanged']): Promise<void> {
    const now = this.now().toISOString();
    if (p.status === 'completed') {
      const order = (await this.store.ordersByAccession([p.accessionNumber])).get(p.accessionNumber);
      const completedAt = order?.timeline.find((e) => e.status === 'completed')?.at ?? now;
      await this.store.markReady({ studyInstanceUid: p.studyInstanceUid, accessionNumber: p.accessionNumber, patientId: p.patientId, readyAt: completedAt, readyReason: p.source === 'mpps' ? 'mpps' : 'order' }, now);
      await this.scheduleChecks(p.studyInstanceUid);
    } else if (p.status === 'final-report' || p.status === 'amended' || p.status === 'cancelled' || p.status === 'discontinued') {
      const item = await this.store.item(p.studyInstanceUid);
      if (!item || item.reportedAt) return;
      // A report after the due time is a breach even when no scan ran in between.
      if (p.status !== 'cancelled' && p.status !== 'discontinued') await this.monitor(this.now(), [item]);
      const order = (await this.store.ordersByAccession([p.accessionNumber])).get(p.accessionNumber);
      await this.store.markReported(p.studyInstanceUid, order?.timeline.find((e) => e.status === p.status)?.at ?? now);
    }
  }

  /** StudyStable (src/workflow/): images arrived and no more came for the quiet time. */
  async onStudyStable(p: EventMap['StudyStable']): Promise<void> {
    const now = this.now().toISOString();
    await this.store.markReady({ studyInstanceUid: p.studyInstanceUid, accessionNumber: p.accessionNumber, patientId: p.patientId, readyAt: p.lastInstanceAt, readyReason: 'stable' }, now);
    await this.scheduleChecks(p.studyInstanceUid);
  }

  /** The monitor runs at the warning and due times of the study (durable jobs; any node), whatever else happens. */
  async scheduleChecks(studyInstanceUid: string): Promise<void> {
    const [entry] = await this.#entries([await this.store.item(studyInstanceUid)].filter((i): i is ReadingItemRow => !!i), this.now(), null);
    if (!entry?.sla.dueAt) return;
    for (const at of [entry.sla.warningAt!, entry.sla.dueAt]) {
      const runAt = new Date(Date.parse(at) + 1000);
      await this.#jobs.enqueue(READING_MONITOR_JOB, {}, { runAt, dedupeKey: `${READING_MONITOR_JOB}:${studyInstanceUid}:${runAt.toISOString()}` });
    }
  }

  // ------------------------------------------------------------------------------------------ worklist

  async #entries(items: readonly ReadingItemRow[], now: Date, user: User | null): Promise<WorklistEntry[]> {
    const orders = await this.store.ordersByAccession(items.map((i) => i.accessionNumber).filter((a): a is string => !!a));
    const studies = await this.store.studies(items.map((i) => i.studyInstanceUid));
    const rules = await this.store.slaRules();
    const { warningPercent } = this.#settings();
    return items.map((item) => this.#entry(item, item.accessionNumber ? orders.get(item.accessionNumber) : undefined, studies.get(item.studyInstanceUid), rules, now, user, warningPercent));
  }

  #entry(item: ReadingItemRow, order: OrderFacts | undefined, study: StudyFacts | undefined, rules: readonly SlaRule[], now: Date, user: User | null, warningPercent: number): WorklistEntry {
    const priority = order ? readingPriorityOf(order.priority, order.screening) : 'routine';
    const modalities = [order?.modality, ...(study?.modalities ?? [])].filter((m): m is string => !!m);
    const completedAt = order?.timeline.find((e) => e.status === 'completed')?.at ?? item.readyAt;
    const sla = slaStatus(slaFor(rules, priority, modalities), completedAt, null, now, warningPercent);
    return {
      studyInstanceUid: item.studyInstanceUid, accessionNumber: item.accessionNumber, patientId: item.patientId ?? study?.patientId ?? null,
      patientName: order?.patientName ?? study?.patientName ?? null, priority, orderPriority: order?.priority ?? null,
      procedure: order?.procedure ?? study?.studyDescription ?? null, modality: modalities[0] ?? null, bodyRegion: study?.bodyParts[0] ?? null,
      site: study?.institutions[0] ?? order?.location ?? null, triage: item.triage, readyAt: item.readyAt, readyReason: item.readyReason, completedAt,
      waitingMinutes: Math.max(0, (now.getTime() - Date.parse(item.readyAt)) / 60_000), sla, status: order?.status ?? null,
      claim: item.claimedBy ? { by: item.claimedBy, name: item.claimedByName ?? item.claimedBy, at: item.claimedAt!, mine: item.claimedBy === user?.id } : null,
      viewerUrl: viewerUrl(item.studyInstanceUid, []), priors: 0,
    };
  }

  /**
   * Studies ready to read and not yet finally reported, most urgent first: priority class (stat, urgent,
   * routine, screening), then a triage flag, then how far into its SLA (longest waiting when none).
   */
  async worklist(filter: WorklistFilter, user: User | null): Promise<WorklistEntry[]> {
    const now = this.now();
    const eq = (a: string | null, b: string | undefined) => b === undefined || (a ?? '').toUpperCase() === b.toUpperCase();
    const entries = (await this.#entries(await this.store.openItems(), now, user))
      .filter((e) => eq(e.modality, filter.modality) && eq(e.bodyRegion, filter.bodyRegion) && eq(e.site, filter.site) && (!filter.priority || e.priority === filter.priority))
      .filter((e) => !e.status || !DONE.has(e.status))
      .filter((e) => !filter.claim || (filter.claim === 'unclaimed' ? !e.claim : filter.claim === 'mine' ? e.claim?.mine : e.claim && !e.claim.mine));
    return entries.sort((a, b) => PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority]
      || Number(b.triage !== null) - Number(a.triage !== null)
      || (b.sla.fraction ?? -1) - (a.sla.fraction ?? -1)
      || b.waitingMinutes - a.waitingMinutes
      || a.studyInstanceUid.localeCompare(b.studyInstanceUid));
  }

  /** One entry with its priors and the viewer link that opens them beside it. */
  async open(studyInstanceUid: string, user: User | null): Promise<WorklistEntry & { priorStudies: Awaited<ReturnType<SqlReadingStore['priors']>> }> {
    const item = await this.store.item(studyInstanceUid);
    if (!item) throw new AtriumError('not-found', `study ${studyInstanceUid} is not on the reading worklist`);
    const [entry] = await this.#entries([item], this.now(), user);
    const priorStudies = entry.patientId ? await this.store.priors(entry.patientId, studyInstanceUid) : [];
    return { ...entry, priors: priorStudies.length, viewerUrl: viewerUrl(studyInstanceUid, priorStudies.map((p) => p.studyInstanceUid)), priorStudies };
  }

  async claim(studyInstanceUid: string, user: User): Promise<WorklistEntry> {
    const item = await this.store.item(studyInstanceUid);
    if (!item) throw new AtriumError('not-found', `study ${studyInstanceUid} is not on the reading worklist`);
    if (item.reportedAt) throw new AtriumError('conflict', `study ${studyInstanceUid} is reported`);
    if (!(await this.store.claim(studyInstanceUid, user, this.now().toISOString()))) {
      const holder = await this.store.item(studyInstanceUid);
      throw new AtriumError('conflict', `study ${studyInstanceUid} is claimed by ${holder?.claimedByName ?? holder?.claimedBy ?? 'someone else'}`);
    }
    return (await this.#entries([(await this.store.item(studyInstanceUid))!], this.now(), user))[0];
  }

  /** The holder gives it back; `release` (administrators) takes anyone's claim off. */
  async unclaim(studyInstanceUid: string, user: User, release: boolean): Promise<WorklistEntry> {
    const item = await this.store.item(studyInstanceUid);
    if (!item) throw new AtriumError('not-found', `study ${studyInstanceUid} is not on the reading worklist`);
    if (!item.claimedBy) throw new AtriumError('conflict', `study ${studyInstanceUid} is not claimed`);
    if (!release && item.claimedBy !== user.id) throw new AtriumError('forbidden', `study ${studyInstanceUid} is claimed by ${item.claimedByName ?? item.claimedBy}; an administrator may release it`);
    await this.store.unclaim(studyInstanceUid, release ? null : user.id, this.now().toISOString());
    return (await this.#entries([(await this.store.item(studyInstanceUid))!], this.now(), user))[0];
  }

  async setTriage(studyInstanceUid: string, triage: string | null): Promise<void> {
    if (!(await this.store.setTriage(studyInstanceUid, triage, this.now().toISOString()))) throw new AtriumError('not-found', `study ${studyInstanceUid} is not on the reading worklist`);
  }

  // ------------------------------------------------------------------------------------------ turnaround times

  async turnaround(q: { from: string; to: string; bucket: 'hour' | 'day' | 'week'; interval?: Interval; modality?: string; priority?: ReadingPriority; site?: string; radiologist?: string }) {
    const now = this.now();
    const orders = await this.store.ordersPlaced(q.from, q.to);
    const studies = await this.store.studies(orders.map((o) => o.studyInstanceUid));
    const rules = await this.store.slaRules();
    const { warningPercent } = this.#settings();
    const eq = (a: string | null, b: string | undefined) => b === undefined || (a ?? '').toUpperCase() === b.toUpperCase();
    const cases: TurnaroundCase[] = orders.filter((o) => o.status !== 'cancelled').map((o) => turnaroundCase(o, studies.get(o.studyInstanceUid), rules, now, warningPercent))
      .filter((c) => eq(c.modality, q.modality) && eq(c.site, q.site) && eq(c.radiologist, q.radiologist) && (!q.priority || c.priority === q.priority));
    const by = (d: Dimension) => summarize(cases, d);
    return {
      from: q.from, to: q.to, bucket: q.bucket, interval: q.interval ?? 'examCompleteToFinal',
      summary: { modality: by('modality'), priority: by('priority'), radiologist: by('radiologist'), site: by('site') },
      series: timeSeries(cases, q.bucket, q.interval ?? 'examCompleteToFinal'),
      breaches: cases.filter((c) => c.sla && c.sla.state === 'breach'),
      atRisk: cases.filter((c) => c.sla && c.sla.state === 'warning'),
      cases,
    };
  }

  // ------------------------------------------------------------------------------------------ SLA monitor

  /**
   * Records every open study past its warning time or its due time once (the alert's key: study and kind),
   * hands each to the Notifier for every alert destination, and escalates critical results not acknowledged
   * in time. Idempotent: run it as often as you like (the `reading.monitor` jobs do, at each study's times).
   */
  async monitor(now: Date = this.now(), only?: readonly ReadingItemRow[]): Promise<{ warnings: number; breaches: number; escalations: number }> {
    const entries = await this.#entries(only ?? await this.store.openItems(), now, null);
    const settings = this.#settings();
    let warnings = 0;
    let breaches = 0;
    for (const e of entries) {
      if (e.sla.state !== 'warning' && e.sla.state !== 'breach') continue;
      // A study just reported (`only`, from its final report) is checked once more: a late report is a breach.
      if (!only && e.status && DONE.has(e.status)) continue;
      const kinds: ('warning' | 'breach')[] = e.sla.state === 'breach' ? ['warning', 'breach'] : ['warning'];
      for (const kind of kinds) {
        const { alert, created } = await this.store.recordAlert({
          studyInstanceUid: e.studyInstanceUid, accessionNumber: e.accessionNumber, kind, priority: e.priority, modality: e.modality, slaMinutes: e.sla.minutes!,
          completedAt: e.completedAt, dueAt: e.sla.dueAt!, detectedAt: now.toISOString(),
        }, now.toISOString());
        if (created) { if (kind === 'warning') warnings++; else breaches++; }
        // A warning found only once the study is already in breach is recorded, not sent: the breach says more.
        if (kind === 'warning' && e.sla.state === 'breach') continue;
        for (const destination of settings.alertDestinations) {
          await this.#notifier.notify({
            kind: kind === 'breach' ? 'sla-breach' : 'sla-warning', key: `sla-alert:${alert.id}`, destination,
            subject: `${kind === 'breach' ? 'SLA breach' : 'SLA about to breach'}: ${e.priority} ${e.modality ?? ''} ${e.accessionNumber ?? e.studyInstanceUid}`.replace(/\s+/g, ' '),
            body: { alertId: alert.id, kind, studyInstanceUid: e.studyInstanceUid, accessionNumber: e.accessionNumber, priority: e.priority, modality: e.modality, site: e.site,
              slaMinutes: alert.slaMinutes, completedAt: alert.completedAt, dueAt: alert.dueAt, detectedAt: alert.detectedAt, claimedBy: e.claim?.name ?? null },
          });
        }
      }
    }
    const escalations = await this.escalate(now);
    return { warnings, breaches, escalations };
  }

  // ------------------------------------------------------------------------------------------ critical results

  /** CriticalResult: notify the ordering (else referring) clinician's destination and wait for the acknowledgement. */
  async onCriticalResult(p: EventMap['CriticalResult']): Promise<CriticalResultRecord> {
    const now = this.now();
    const { critical } = this.#settings();
    const clinician = p.orderingPhysician || p.referringPhysician || null;
    const configured = critical.clinicians.find((c) => clinicianMatches(c.clinician, p.orderingPhysician)) ?? critical.clinicians.find((c) => clinicianMatches(c.clinician, p.referringPhysician));
    const destination = configured?.destination ?? critical.defaultDestination;
    const acknowledgeBy = new Date(now.getTime() + critical.acknowledgeMinutes * 60_000);
    const { record } = await this.store.recordCritical({
      reportId: p.reportId, accessionNumber: p.accessionNumber, studyInstanceUid: p.studyInstanceUid, patientId: p.patientId, reportStatus: p.status, author: p.author,
      clinician, destination, notifiedAt: now.toISOString(), acknowledgeBy: acknowledgeBy.toISOString(),
    }, now.toISOString());
    if (record.destination) {
      await this.#notifier.notify({
        kind: 'critical-result', key: `critical:${record.id}`, destination: record.destination,
        subject: `Critical result: ${p.accessionNumber}`, body: this.#criticalBody(record),
      });
    }
    await this.#jobs.enqueue(READING_MONITOR_JOB, {}, { runAt: new Date(Date.parse(record.acknowledgeBy) + 1000), dedupeKey: `${READING_MONITOR_JOB}:critical:${record.id}` });
    return record;
  }

  #criticalBody(r: CriticalResultRecord): Record<string, unknown> {
    return {
      criticalResultId: r.id, reportId: r.reportId, accessionNumber: r.accessionNumber, studyInstanceUid: r.studyInstanceUid, patientId: r.patientId,
      reportStatus: r.reportStatus, author: r.author, clinician: r.clinician, notifiedAt: r.notifiedAt, acknowledgeBy: r.acknowledgeBy,
      acknowledgeUrl: `/api/reading/critical-results/${r.id}/acknowledge`,
    };
  }

  async acknowledge(id: number, by: string): Promise<CriticalResultRecord> {
    const record = await this.store.critical(id);
    if (!record) throw new AtriumError('not-found', `no critical result ${id}`);
    if (!(await this.store.acknowledgeCritical(id, by, this.now().toISOString()))) throw new AtriumError('conflict', `critical result ${id} was acknowledged by ${record.acknowledgedBy} at ${record.acknowledgedAt}`);
    return (await this.store.critical(id))!;
  }

  /** Critical results past their acknowledgement time without one: escalated once to the second destination. */
  async escalate(now: Date): Promise<number> {
    const { critical } = this.#settings();
    let n = 0;
    for (const r of await this.store.dueForEscalation(now.toISOString())) {
      const configured = critical.clinicians.find((c) => c.destination === r.destination && c.escalation);
      const destination = configured?.escalation ?? critical.escalationDestination;
      if (!(await this.store.markEscalated(r.id, destination, now.toISOString()))) continue;
      n++;
      if (destination) {
        await this.#notifier.notify({
          kind: 'critical-escalation', key: `critical-escalation:${r.id}`, destination,
          subject: `Critical result not acknowledged in ${critical.acknowledgeMinutes} min: ${r.accessionNumber}`, body: { ...this.#criticalBody(r), escalatedAt: now.toISOString() },
        });
      }
    }
    return n;
  }
}

