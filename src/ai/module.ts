import { Gauge, type Registry } from 'prom-client';
import type { Archive } from '../app.ts';
import type { AtriumModule } from '../modules/module.ts';
import { sectionOf } from '../config/config.ts';
import { on } from '../events/event-map.ts';
import { DicomClient } from '../dimse/services/scu.ts';
import { outboundTls } from '../dimse/services/tls.ts';
import { SEND_JOB, dicomJobHandlers } from '../exchange/dicom-jobs.ts';
import { readingOf } from '../reading/module.ts';
import { risOf } from '../ris/module.ts';
import { workflowOf } from '../workflow/module.ts';
import { workflowConfig } from '../workflow/config.ts';
import { AI_SEND_JOB } from '../workflow/routing.ts';
import { stowJob } from '../workflow/stow-forward.ts';
import { migration as nodes } from './migrations/0041_ai_nodes.ts';
import { migration as requests } from './migrations/0042_ai_requests.ts';
import { migration as results } from './migrations/0043_ai_results.ts';
import { aiConfig } from './config.ts';
import { AiService } from './ai-service.ts';
import { AI_ROUTE_RULES, aiRoutes } from './routes.ts';
import { SqlAiStore } from './sql-ai-store.ts';

const built = new WeakMap<Archive, AiService>();

/**
 * The AI services of an archive, built on first use. Times are read from the workflow's clock (tests move it
 * rather than sleeping: StudyStable, processing times and timeouts all follow it).
 */
export function aiOf(archive: Archive): AiService {
  let ai = built.get(archive);
  if (!ai) {
    const store = new SqlAiStore(archive.database);
    const orders = () => risOf(archive).orders;
    ai = new AiService({
      store, reading: { setTriage: (study, triage) => readingOf(archive).setTriage(study, triage) }, index: archive.index,
      openInstance: (uid) => archive.retrieve.openInstance(uid),
      orderStatus: async (study) => {
        const found = (study.accessionNumber ? await orders().find({ accessionNumber: study.accessionNumber }) : null) ?? await orders().find({ studyInstanceUid: study.studyInstanceUid });
        return found?.status ?? null;
      },
      send: dicomJobHandlers(archive, new DicomClient(archive, { tls: outboundTls(archive.config) }))[SEND_JOB]!,
      stow: stowJob({ archive, settings: () => sectionOf(archive.config, workflowConfig) }),
      settings: () => sectionOf(archive.config, aiConfig), clock: () => workflowOf(archive).clock(), log: archive.log.child({ module: 'ai' }),
    });
    registerMetrics(archive.metrics.registry, ai);
    built.set(archive, ai);
  }
  return ai;
}

/** Prometheus gauges computed from the tables at each scrape (any node answers for all). */
function registerMetrics(registry: Registry, ai: AiService): void {
  if (registry.getSingleMetric('atrium_ai_requests')) return;
  const every = async () => {
    const out = [];
    for (const node of await ai.store.listNodes().catch(() => [])) out.push(await ai.metrics(node));
    return out;
  };
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge<string>, metrics: Awaited<ReturnType<typeof every>>) => void) => new Gauge({
    name, help, labelNames, registers: [registry],
    async collect() {
      this.reset();
      fill(this, await every());
    },
  });
  gauge('atrium_ai_requests', 'AI requests per node and state (queued, sent, resulted, failed, timeout)', ['node', 'state'], (g, all) => {
    for (const m of all) {
      for (const state of ['queued', 'sent', 'resulted', 'failed'] as const) g.set({ node: m.node, state }, m.requests[state]);
      g.set({ node: m.node, state: 'timeout' }, m.timeouts);
    }
  });
  gauge('atrium_ai_processing_seconds', 'AI processing time per study, sent to first result: median and 90th percentile', ['node', 'quantile'], (g, all) => {
    for (const m of all) {
      if (m.processingSeconds.median !== null) g.set({ node: m.node, quantile: '0.5' }, m.processingSeconds.median);
      if (m.processingSeconds.p90 !== null) g.set({ node: m.node, quantile: '0.9' }, m.processingSeconds.p90);
    }
  });
  gauge('atrium_ai_results', 'AI result objects linked per node', ['node'], (g, all) => { for (const m of all) g.set({ node: m.node }, m.results); });
  gauge('atrium_ai_positive_rate', 'Share of evaluated AI requests with a mapped finding present', ['node'], (g, all) => {
    for (const m of all) if (m.positiveRate !== null) g.set({ node: m.node }, m.positiveRate);
  });
  gauge('atrium_ai_availability', 'Share of send attempts the AI node accepted', ['node'], (g, all) => {
    for (const m of all) if (m.availability.rate !== null) g.set({ node: m.node }, m.availability.rate);
  });
  gauge('atrium_ai_agreement', 'Radiologist agreement with AI results once reported (confirms, overrides)', ['node', 'verdict'], (g, all) => {
    for (const m of all) { g.set({ node: m.node, verdict: 'confirms' }, m.agreement.confirms); g.set({ node: m.node, verdict: 'overrides' }, m.agreement.overrides); }
  });
  gauge('atrium_ai_results_unmatched', 'Results from an AI node that matched no request', ['node'], (g, all) => { for (const m of all) g.set({ node: m.node }, m.unmatchedResults); });
}

/**
 * AI integration (issue 12, docs/ai.md): the AI node registry, studies sent by routing rules' `ai` actions,
 * results (SR, SEG, SC, PR) linked back to the study and request, triage flags on the reading worklist,
 * the radiologist's agreement, and the nodes' performance.
 */
export const aiModule: AtriumModule = {
  name: 'ai',
  migrations: [nodes, requests, results],
  config: aiConfig,
  eventHandlers: (archive) => [
    on('InstanceStored', 'ai.result', async (event) => { await aiOf(archive).onInstanceStored(event); }),
    on('StudyStable', 'ai.pending-triage', async (event) => { await aiOf(archive).onStudyStable(event.payload.studyInstanceUid); }),
  ],
  jobHandlers: (archive) => ({ [AI_SEND_JOB]: aiOf(archive).sendJob }),
  routeRules: AI_ROUTE_RULES,
  httpRoutes: async (app, archive) => { await aiRoutes(app, aiOf(archive), archive.audit, archive.index); },
};
