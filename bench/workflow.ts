/**
 * Workflow benchmark (docs/benchmarks.md "Workflow"): (1) routing rule evaluation per StudyStable event with
 * 100 rules, in memory (the compiled rules against a study's facts) and as the handler does it (the rules'
 * freshness check, the study's facts read from the index, evaluation; the job queueing left out), and (2)
 * routing throughput: studies stored in an archive, made stable, and forwarded by a study-stable rule to
 * DCMTK storescp as durable send jobs (instances/s from the sweep to the last job done), beside a plain
 * storescu of the same files to a storescp in the same run. A benchmark, not a test: nothing is asserted.
 *
 *   npm run bench:workflow -- [--count 1000] [--per-study 100] [--events 2000] [--rules 100] [--concurrency 4] [--tmp DIR] [--json]
 */
import { mkdtemp, mkdir, rm, readdir } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { benchArgs } from './support/args.ts';
import { generateCorpus, listFiles, warmPageCache } from './support/corpus.ts';
import { DCMTK_ENV, cleanupOnExit, freePort, runClient, startServer, stopServer, waitForEcho } from './support/processes.ts';
import { MODULES, eventDispatcher, jobRunner, openArchive } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';
import { configSectionsOf } from '../src/modules/module.ts';
import { Metrics } from '../src/observability/metrics.ts';
import { setWorkflowClock, workflowOf } from '../src/workflow/module.ts';
import { studyFacts } from '../src/workflow/facts.ts';
import { validateRule, type RuleDefinition } from '../src/workflow/rule.ts';
import { SEND_JOB } from '../src/exchange/dicom-jobs.ts';

const { args: parsed, wholeNumber } = benchArgs('bench:workflow', '[--count N] [--per-study N] [--events N] [--rules N] [--concurrency N] [--tmp DIR] [--json]', {
  count: { type: 'string', default: '1000' },
  'per-study': { type: 'string', default: '100' },
  events: { type: 'string', default: '2000' },
  rules: { type: 'string', default: '100' },
  concurrency: { type: 'string', default: '4' },
  tmp: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const args = parsed as Record<string, string> & { json: boolean };
const count = wholeNumber('count');
const perStudy = wholeNumber('per-study');
const events = wholeNumber('events');
const ruleCount = wholeNumber('rules');
const concurrency = wholeNumber('concurrency');
cleanupOnExit((message) => console.error(message));

const MODALITIES = ['MR', 'US', 'NM', 'PT', 'DX', 'CR', 'MG', 'XA', 'RF', 'OT'];
/** 100 rules of every kind of condition, none of which matches the benchmark's CT studies except the last. */
function benchRules(n: number, destination: string): RuleDefinition[] {
  const rules: RuleDefinition[] = [];
  for (let i = 0; i < n - 1; i++) {
    const conditions: RuleDefinition['conditions'] = { modality: [MODALITIES[i % MODALITIES.length], MODALITIES[(i + 3) % MODALITIES.length]] };
    if (i % 2) conditions.sourceAe = [`SCANNER${i}*`, `MOD?${i}`];
    if (i % 3) conditions.studyDescription = [`*protocol ${i}*`];
    if (i % 5 === 0) conditions.procedureCode = [`P${i}*`];
    if (i % 7 === 0) conditions.bodyPart = ['CHEST', `PART${i}`];
    if (i % 4 === 0) conditions.station = [`ST${i}*`];
    if (i % 6 === 0) conditions.timeOfDay = { from: '07:00', to: '19:00' };
    rules.push(validateRule({ name: `rule ${i}`, trigger: 'study-stable', conditions, actions: [{ type: 'dicom', destination: `PEER${i}` }] }).rule!);
  }
  rules.push(validateRule({ name: 'CT to storescp', trigger: 'study-stable', conditions: { modality: ['CT'], source: ['bench*'] }, actions: [{ type: 'dicom', destination }] }).rule!);
  return rules;
}

const percentile = (values: number[], p: number) => { const s = [...values].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const round = (n: number, digits = 3) => Number(n.toFixed(digits));

const tmp = await mkdtemp(join(args.tmp ?? os.tmpdir(), 'atrium-bench-workflow-'));
const log = (message: string) => { if (!args.json) console.error(message); };
try {
  log(`generating ${count} CT instances (${perStudy} per study)...`);
  const corpus = join(tmp, 'corpus');
  await generateCorpus(corpus, count, perStudy);
  const files = await listFiles(corpus);
  await warmPageCache(files);

  const config = loadConfig({ env: { ATRIUM_DATA: join(tmp, 'data'), ATRIUM_LOG_LEVEL: 'silent' }, sections: configSectionsOf(MODULES) });
  const archive = await openArchive(config, { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }) });
  let offset = 0;
  setWorkflowClock(archive, () => new Date(Date.now() + offset));
  const workflow = workflowOf(archive);
  const scpDir = join(tmp, 'routed');
  await mkdir(scpDir);
  const scpPort = await freePort();
  const scp = startServer('storescp', ['-aet', 'ROUTED', '+xa', '-od', scpDir, '--fork', String(scpPort)], { log: join(tmp, 'storescp-routed.log'), env: DCMTK_ENV });
  await waitForEcho(scp, 'ROUTED', scpPort, 15_000, 'storescp');
  await archive.peers.upsert({ aeTitle: 'ROUTED', host: '127.0.0.1', port: scpPort, operations: [] });
  for (const rule of benchRules(ruleCount, 'ROUTED')) await workflow.rules.create(rule, 'bench', new Date());

  log('ingesting the corpus...');
  const { readFile } = await import('node:fs/promises');
  for (const file of files) await archive.ingest.ingest([await readFile(file)], { source: 'bench' });
  const dispatcher = eventDispatcher(archive);
  for (;;) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) break; }
  const studies = (await archive.index.listStudies({}, { limit: 10_000, offset: 0 })).items.map((s) => s.studyInstanceUid);

  // (1) Rule evaluation per StudyStable event.
  const compiled = await workflow.rules.active('study-stable');
  const facts = (await studyFacts({ index: archive.index, order: async () => null }, studies[0], 'bench', new Date()))!;
  for (let i = 0; i < 1000; i++) workflow.routing.evaluate('study-stable', facts, compiled); // warm up
  const inMemory: number[] = [];
  for (let i = 0; i < events; i++) {
    const t0 = performance.now();
    workflow.routing.evaluate('study-stable', { ...facts, studyDescription: `protocol ${i % 200}` }, compiled);
    inMemory.push((performance.now() - t0) * 1000);
  }
  const withReads: number[] = [];
  for (let i = 0; i < Math.min(events, 500); i++) {
    const t0 = performance.now();
    const rules = await workflow.rules.active('study-stable');
    const f = (await studyFacts({ index: archive.index, order: async () => null }, studies[i % studies.length], 'bench', new Date()))!;
    workflow.routing.evaluate('study-stable', f, rules);
    withReads.push((performance.now() - t0) * 1000);
  }

  // (2) Routing throughput: sweep -> StudyStable -> rule -> send jobs -> storescp.
  log('routing to storescp...');
  const runner = jobRunner(archive, { concurrency, pollIntervalMs: 10 });
  offset = (config.sections.workflow as { quietSeconds: number }).quietSeconds * 1000 + 1000;
  const started = performance.now();
  await runner.start();
  await workflow.stability.sweep();
  // Routing: every StudyStable delivered, its send jobs queued (the handler queues them before it returns).
  for (;;) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) break; }
  // Polled at 50 ms, not faster: SQLite has one connection, and the job runner needs it.
  for (;;) {
    const { items, total } = await archive.jobs.list({ type: SEND_JOB }, { limit: 10_000, offset: 0 });
    if (total >= studies.length && items.every((j) => j.state === 'succeeded' || j.state === 'failed')) break;
    await new Promise((r2) => setTimeout(r2, 50));
  }
  const routedSeconds = (performance.now() - started) / 1000;
  // The same sends queued by hand, no event or rule on the way: what the send path itself costs.
  const direct = performance.now();
  const directJobs = [];
  for (const studyInstanceUid of studies) directJobs.push(await archive.jobs.enqueue(SEND_JOB, { destination: 'ROUTED', studyInstanceUid }));
  runner.wake();
  for (;;) {
    const states = await Promise.all(directJobs.map((j) => archive.jobs.get(j.id)));
    if (states.every((j) => j && (j.state === 'succeeded' || j.state === 'failed'))) break;
    await new Promise((r2) => setTimeout(r2, 50));
  }
  const directSeconds = (performance.now() - direct) / 1000;
  await runner.stop();
  await dispatcher.stop();
  const jobs = (await archive.jobs.list({ type: SEND_JOB }, { limit: 10_000, offset: 0 })).items.filter((j) => (j.payload as { rule?: unknown }).rule);
  const routedFiles = (await readdir(scpDir)).length;
  await stopServer(scp);

  // Beside it: a plain storescu of the same files to a storescp, `concurrency` associations like the job runner's.
  const plainDir = join(tmp, 'plain');
  await mkdir(plainDir);
  const plainPort = await freePort();
  const plain = startServer('storescp', ['-aet', 'PLAIN', '+xa', '-od', plainDir, '--fork', String(plainPort)], { log: join(tmp, 'storescp-plain.log'), env: DCMTK_ENV });
  await waitForEcho(plain, 'PLAIN', plainPort, 15_000, 'storescp');
  const byStudy = new Map<string, string[]>();
  for (const f of files) { const d = f.slice(0, f.lastIndexOf('/')); byStudy.set(d, [...(byStudy.get(d) ?? []), f]); }
  const groups: string[][] = Array.from({ length: concurrency }, () => []);
  [...byStudy.values()].forEach((g, i) => groups[i % concurrency].push(...g));
  const plainStart = performance.now();
  const results = await Promise.all(groups.filter((g) => g.length).map((g) => runClient('storescu', ['-aec', 'PLAIN', '127.0.0.1', String(plainPort), ...g])));
  const plainSeconds = (performance.now() - plainStart) / 1000;
  const plainFiles = (await readdir(plainDir)).length;
  await stopServer(plain);
  await archive.close();

  const summary = {
    rules: ruleCount, events, instances: count, studies: studies.length, perStudy, concurrency,
    evaluationMicroseconds: { median: round(percentile(inMemory, 50)), p95: round(percentile(inMemory, 95)), p99: round(percentile(inMemory, 99)) },
    handlerMicroseconds: { median: round(percentile(withReads, 50), 1), p95: round(percentile(withReads, 95), 1), note: 'rules freshness check + study facts from the SQLite index + evaluation' },
    routing: { seconds: round(routedSeconds, 2), instancesPerSecond: round(count / routedSeconds, 1), jobs: jobs.length, failedJobs: jobs.filter((j) => j.state !== 'succeeded').length, filesReceived: routedFiles },
    sendJobsAlone: { seconds: round(directSeconds, 2), instancesPerSecond: round(count / directSeconds, 1) },
    plainStorescu: { seconds: round(plainSeconds, 2), instancesPerSecond: round(count / plainSeconds, 1), exitCodes: results.map((r) => r.code), filesReceived: plainFiles },
  };
  if (args.json) console.log(JSON.stringify(summary, null, 2));
  else {
    console.log(`rule evaluation, ${ruleCount} rules, per StudyStable event: median ${summary.evaluationMicroseconds.median} µs, p95 ${summary.evaluationMicroseconds.p95} µs, p99 ${summary.evaluationMicroseconds.p99} µs (${events} events)`);
    console.log(`  with the index reads of the handler: median ${summary.handlerMicroseconds.median} µs, p95 ${summary.handlerMicroseconds.p95} µs`);
    console.log(`routing to storescp: ${count} instances in ${studies.length} studies, ${summary.routing.seconds} s, ${summary.routing.instancesPerSecond} instances/s (${jobs.length} send jobs, ${summary.routing.failedJobs} not succeeded, ${routedFiles} files received)`);
    console.log(`the same send jobs queued by hand (no event, no rule): ${summary.sendJobsAlone.seconds} s, ${summary.sendJobsAlone.instancesPerSecond} instances/s`);
    console.log(`plain storescu, ${concurrency} associations: ${summary.plainStorescu.seconds} s, ${summary.plainStorescu.instancesPerSecond} instances/s (${plainFiles} files received)`);
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}
