/**
 * The AI integration of one archive (docs/ai.md): the `ai.send` job a routing rule's `ai` action queues
 * (records the request, forwards the study by the exchange's C-STORE or the workflow's STOW-RS), the linking of
 * what the node sends back (InstanceStored), the triage flag it raises on the reading worklist, the
 * radiologist's agreement, and the node's metrics.
 *
 * AI output only ever adds a flag (labelled `AI:` with the node's name) and a request record: it never
 * reports, completes or finalizes anything.
 */
import type { Logger } from 'pino';
import { AtriumError } from '../errors.ts';
import { DicomParseError } from '../dicom/errors.ts';
import { Part10Reader } from '../dicom/part10-reader.ts';
import { toDicomJson } from '../dicom/dicom-json.ts';
import type { DeliveredEvent } from '../events/event-map.ts';
import type { IndexStore } from '../ports/index-store.ts';
import type { Job } from '../ports/job-queue.ts';
import type { JobContext, JobHandler } from '../jobs/job-runner.ts';
import type { Reading } from '../reading/reading.ts';
import type { AiSendPayload } from '../workflow/routing.ts';
import { sourceAeOf } from '../workflow/rule.ts';
import type { AiSettings } from './config.ts';
import { flagsOf, readResult, resultKindOf, type ResultContent } from './findings.ts';
import { nodeMetrics, type NodeMetrics } from './metrics.ts';
import type { AiNode } from './node.ts';
import type { Agreement, AiRequest, AiResult, SqlAiStore } from './sql-ai-store.ts';

/** Order statuses that mean a report exists. */
const REPORTED = new Set(['preliminary-report', 'final-report', 'amended']);

export interface AiDeps {
  store: SqlAiStore;
  reading: Pick<Reading, 'setTriage'>;
  index: Pick<IndexStore, 'getStudy'>;
  openInstance: (sopInstanceUid: string) => Promise<{ bytes: AsyncIterable<Uint8Array> }>;
  /** The order of a study (by accession number, else Study Instance UID), for its report status. */
  orderStatus: (study: { studyInstanceUid: string; accessionNumber: string | null }) => Promise<string | null>;
  /** The exchange's C-STORE job and the workflow's STOW-RS job, run in place for the node's endpoint. */
  send: JobHandler;
  stow: JobHandler;
  settings: () => AiSettings;
  clock: () => Date;
  log: Logger;
}

export type LinkOutcome =
  | { outcome: 'not-a-result' | 'already-recorded' }
  | { outcome: 'linked'; requestId: number; node: string; research: boolean; flags: string[]; linkedBy: string }
  | { outcome: 'unmatched'; node: string | null; reason: string };

const permanent = (error: AtriumError) => Object.assign(error, { retryable: false });

export class AiService {
  readonly store: SqlAiStore;
  readonly #d: AiDeps;

  constructor(deps: AiDeps) {
    this.store = deps.store;
    this.#d = deps;
  }

  now(): Date {
    return this.#d.clock();
  }

  timeoutMinutes(node: AiNode): number {
    return node.timeoutMinutes ?? this.#d.settings().timeoutMinutes;
  }

  // ------------------------------------------------------------------------------------------ sending

  /**
   * The `ai.send` job: one request per study and node (a later StudyStable of the same study, which the node's
   * own result causes, sends nothing again), then the study over the node's endpoint. Each attempt is counted
   * for the node's availability; the request fails when the job has no attempt left.
   */
  readonly sendJob: JobHandler<AiSendPayload> = async (job: Job<AiSendPayload>, context: JobContext) => {
    const p = job.payload;
    const node = await this.store.nodeByName(p.node);
    if (!node) throw permanent(new AtriumError('not-found', `no AI node "${p.node}" in the AI registry (/api/ai/nodes)`));
    if (!node.enabled) throw permanent(new AtriumError('conflict', `AI node "${node.name}" is disabled: study ${p.studyInstanceUid} not sent`));
    const { request, created } = await this.store.openRequest({
      nodeId: node.id, studyInstanceUid: p.studyInstanceUid, rule: p.rule ? { id: p.rule.id, name: p.rule.name } : null, jobId: job.id, research: node.mode === 'research',
    }, this.now());
    if (!created && request.jobId !== job.id) {
      if (request.state !== 'failed') return { request: request.id, skipped: `study already sent to AI node ${node.name} (request ${request.id})` };
      await this.store.setJob(request.id, job.id); // a new rule trigger after a failed request tries again
    }
    try {
      if (node.endpoint.type === 'dicom') {
        await this.#d.send({ ...job, payload: { destination: node.endpoint.aeTitle, studyInstanceUid: p.studyInstanceUid, requestedBy: p.requestedBy, requestedThrough: 'dimse' } }, context);
      } else {
        await this.#d.stow({ ...job, payload: { destination: node.endpoint.destination, studyInstanceUid: p.studyInstanceUid, ...(p.rule ? { rule: p.rule } : {}) } }, context);
      }
    } catch (error) {
      const final = job.attempts >= job.maxAttempts || (error as { retryable?: unknown }).retryable === false;
      await this.store.recordAttempt(request.id, (error as Error).message, final, this.now());
      throw error;
    }
    await this.store.recordAttempt(request.id, null, false, this.now());
    this.#d.log.info({ node: node.name, studyInstanceUid: p.studyInstanceUid, request: request.id, research: node.mode === 'research' }, 'study sent to AI node');
    return { request: request.id, node: node.name, sent: true };
  };

  // ------------------------------------------------------------------------------------------ results

  /**
   * InstanceStored: is it an AI result, and of which request? From a node's calling AE title (DIMSE), or by
   * STOW-RS when the object's Manufacturer is a node's vendor (STOW carries no AE title; see docs/ai.md). The
   * request is the node's for the object's study, else for a study its SR references. Anything else stored is
   * not an AI result and is left alone.
   */
  async onInstanceStored(event: DeliveredEvent<'InstanceStored'>): Promise<LinkOutcome> {
    const p = event.payload;
    const ae = sourceAeOf(p.source);
    const kind = resultKindOf(p.sopClassUid);
    const viaStow = p.source === 'stow' && kind !== 'other';
    if (!ae && !viaStow) return { outcome: 'not-a-result' };
    const nodes = await this.store.listNodes();
    let node = ae ? nodes.find((n) => n.endpoint.callingAeTitles.some((a) => a === ae)) ?? null : null;
    if (!node && !viaStow) return { outcome: 'not-a-result' };
    if (await this.store.resultBySop(p.sopInstanceUid)) return { outcome: 'already-recorded' };

    const mappings = [...(node?.findings ?? []), ...this.#d.settings().findings];
    let content: ResultContent = { studyInstanceUid: p.studyInstanceUid, referencedStudies: [], manufacturer: null, model: null, findings: [] };
    let unreadable: string | null = null;
    if (kind === 'sr' || viaStow) {
      try {
        content = await this.#read(p.sopInstanceUid, viaStow && !node ? nodes.flatMap((n) => n.findings).concat(this.#d.settings().findings) : mappings);
      } catch (error) {
        if (!(error instanceof DicomParseError) && !(error instanceof AtriumError && error.code === 'not-found')) throw error;
        unreadable = `the result could not be read: ${(error as Error).message}`;
      }
    }
    const studies = [...new Set([p.studyInstanceUid, ...content.referencedStudies])];
    let request: AiRequest | null = null;
    let linkedBy = '';
    if (node) {
      for (const study of studies) {
        request = await this.store.request(node.id, study);
        if (request) {
          linkedBy = study === p.studyInstanceUid ? `calling AE ${ae}, same study` : `calling AE ${ae}, study referenced by the SR`;
          break;
        }
      }
    } else {
      // STOW-RS: the study's requests whose node the object names as its maker.
      const maker = (content.manufacturer ?? '').toUpperCase();
      const model = (content.model ?? '').toUpperCase();
      const candidates: { request: AiRequest; node: AiNode }[] = [];
      for (const study of studies) {
        for (const r of await this.store.requestsOfStudy(study)) {
          const n = nodes.find((x) => x.id === r.nodeId);
          const names = (x: AiNode) => [x.name, x.product].filter((v): v is string => !!v).map((v) => v.toUpperCase());
          if (n && ((maker && n.vendor.toUpperCase() === maker) || (model && names(n).includes(model)))) candidates.push({ request: r, node: n });
        }
      }
      const byNode = new Map(candidates.map((c) => [c.node.id, c]));
      if (byNode.size === 0) return { outcome: 'not-a-result' };
      if (byNode.size > 1) {
        const reason = `received by STOW-RS from "${content.manufacturer}": several AI nodes (${[...byNode.values()].map((c) => c.node.name).join(', ')}) have a request for the study; set Manufacturer Model Name to the node's name or product`;
        const narrowed = model ? candidates.filter((c) => c.node.name.toUpperCase() === model || (c.node.product ?? '').toUpperCase() === model) : [];
        if (narrowed.length !== 1) return await this.#unmatched(p, kind, null, reason, content);
        candidates.splice(0, candidates.length, narrowed[0]);
      }
      node = candidates[0].node;
      request = candidates[0].request;
      linkedBy = `STOW-RS, Manufacturer "${content.manufacturer}" = node ${node.name}, ${request.studyInstanceUid === p.studyInstanceUid ? 'same study' : 'study referenced by the SR'}`;
    }
    if (!request) {
      return await this.#unmatched(p, kind, node, unreadable ?? `AI node ${node.name} sent a result for study ${p.studyInstanceUid}${studies.length > 1 ? ` (referencing ${studies.slice(1).join(', ')})` : ''}, which was never sent to it: no request to link it to`, content);
    }
    const research = request.research || node.mode === 'research';
    const flags = flagsOf(content.findings);
    const positive = kind === 'sr' && !unreadable ? flags.length > 0 : null;
    const saved = await this.store.saveResult({
      sopInstanceUid: p.sopInstanceUid, sopClassUid: p.sopClassUid, kind, studyInstanceUid: p.studyInstanceUid, source: p.source, nodeId: node.id, requestId: request.id,
      state: 'linked', reason: unreadable ? `${linkedBy}; ${unreadable}` : linkedBy, research, findings: content.findings, positive, receivedAt: this.now().toISOString(),
    });
    if (!saved) return { outcome: 'already-recorded' };
    const updated = await this.store.recordResult(request.id, { positive, flags, at: this.now() });
    // Research mode: recorded and shown as research, never used to raise a clinical priority.
    if (flags.length && !research) await this.applyTriage(updated.studyInstanceUid);
    this.#d.log.info({ node: node.name, request: request.id, sopInstanceUid: p.sopInstanceUid, kind, flags, research, linkedBy }, 'AI result linked');
    return { outcome: 'linked', requestId: request.id, node: node.name, research, flags, linkedBy };
  }

  async #read(sopInstanceUid: string, mappings: AiNode['findings']): Promise<ResultContent> {
    const { bytes } = await this.#d.openInstance(sopInstanceUid);
    const reader = new Part10Reader({ bulkThreshold: 1 << 16 });
    for await (const chunk of bytes) reader.push(chunk);
    return readResult(toDicomJson(reader.end().dataset), mappings);
  }

  async #unmatched(p: DeliveredEvent<'InstanceStored'>['payload'], kind: string, node: AiNode | null, reason: string, content: ResultContent): Promise<LinkOutcome> {
    const saved = await this.store.saveResult({
      sopInstanceUid: p.sopInstanceUid, sopClassUid: p.sopClassUid, kind, studyInstanceUid: p.studyInstanceUid, source: p.source, nodeId: node?.id ?? null, requestId: null,
      state: 'unmatched', reason, research: node?.mode === 'research', findings: content.findings, positive: null, receivedAt: this.now().toISOString(),
    });
    if (!saved) return { outcome: 'already-recorded' };
    this.#d.log.warn({ node: node?.name ?? null, sopInstanceUid: p.sopInstanceUid, studyInstanceUid: p.studyInstanceUid, source: p.source, reason }, 'AI result not linked to a request');
    return { outcome: 'unmatched', node: node?.name ?? null, reason };
  }

  /**
   * The study's triage flag on the reading worklist: every flag of its clinical (not research) requests,
   * `AI: <flags> (<node>)`, joined by `; `. A study not on the worklist yet keeps it pending until StudyStable.
   */
  async applyTriage(studyInstanceUid: string): Promise<string | null> {
    const requests = (await this.store.requestsOfStudy(studyInstanceUid)).filter((r) => r.flag && !r.research);
    if (!requests.length) return null;
    const names = new Map((await this.store.listNodes()).map((n) => [n.id, n.name]));
    const text = requests.map((r) => `AI: ${r.flag} (${names.get(r.nodeId) ?? `node ${r.nodeId}`})`).join('; ');
    try {
      await this.#d.reading.setTriage(studyInstanceUid, text);
      for (const r of requests) if (r.triagePending) await this.store.setTriagePending(r.id, false);
    } catch (error) {
      if (!(error instanceof AtriumError && error.code === 'not-found')) throw error;
      for (const r of requests) await this.store.setTriagePending(r.id, true);
      return null;
    }
    return text;
  }

  /** StudyStable: a flag that came before the study reached the worklist is put on it now. */
  async onStudyStable(studyInstanceUid: string): Promise<void> {
    if ((await this.store.requestsOfStudy(studyInstanceUid)).some((r) => r.triagePending)) await this.applyTriage(studyInstanceUid);
  }

  // ------------------------------------------------------------------------------------------ agreement

  /**
   * The radiologist's verdict on the AI result once the study is reported (preliminary or final): the report
   * confirms or overrides it. Every resulted request of the study (or the named node's) gets it; recording
   * again replaces the earlier verdict.
   */
  async recordAgreement(studyInstanceUid: string, value: Agreement, by: string, nodeName?: string): Promise<{ requests: AiRequest[]; reportStatus: string }> {
    if (value !== 'confirms' && value !== 'overrides') throw new AtriumError('invalid-input', 'agreement must be confirms or overrides');
    const nodes = await this.store.listNodes();
    const named = nodeName ? nodes.find((n) => n.name === nodeName) : undefined;
    if (nodeName && !named) throw new AtriumError('not-found', `no AI node "${nodeName}"`);
    const requests = (await this.store.requestsOfStudy(studyInstanceUid)).filter((r) => r.resultCount > 0 && (!named || r.nodeId === named.id));
    if (!requests.length) throw new AtriumError('not-found', `study ${studyInstanceUid} has no AI result${named ? ` from ${named.name}` : ''}`);
    const study = await this.#d.index.getStudy(studyInstanceUid);
    const reportStatus = await this.#d.orderStatus({ studyInstanceUid, accessionNumber: study?.accessionNumber ?? null });
    if (!reportStatus || !REPORTED.has(reportStatus)) {
      throw new AtriumError('conflict', `study ${studyInstanceUid} has no report yet (order ${reportStatus ?? 'not found'}): agreement is recorded once a report exists`);
    }
    for (const r of requests) await this.store.setAgreement(r.id, value, by, reportStatus, this.now());
    return { requests: await this.store.requestsOfStudy(studyInstanceUid), reportStatus };
  }

  // ------------------------------------------------------------------------------------------ monitoring

  async metrics(node: AiNode, now: Date = this.now()): Promise<NodeMetrics> {
    return nodeMetrics(node, await this.store.requestsOfNode(node.id), await this.store.unmatchedCount(node.id), now, this.timeoutMinutes(node));
  }

  /** What the study's AI said: its requests and results, each with its node and research mark. */
  async study(studyInstanceUid: string): Promise<{ requests: (AiRequest & { node: string })[]; results: (AiResult & { node: string | null })[] }> {
    const names = new Map((await this.store.listNodes()).map((n) => [n.id, n.name]));
    return {
      requests: (await this.store.requestsOfStudy(studyInstanceUid)).map((r) => ({ ...r, node: names.get(r.nodeId) ?? '' })),
      results: (await this.store.resultsOfStudy(studyInstanceUid)).map((r) => ({ ...r, node: r.nodeId === null ? null : names.get(r.nodeId) ?? null })),
    };
  }
}

