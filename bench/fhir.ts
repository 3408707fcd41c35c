/**
 * FHIR benchmark: ImagingStudy search latency (p50/p95) at 100k indexed instances, by patient and by date,
 * over HTTP against Atrium's server in this process (keep-alive fetch, one request at a time). The index is
 * seeded straight into SQLite (bench/support/study-index.ts: rows as ingest writes them). Every answer is a
 * full searchset page (_count 20 by default) with each study's series and instances. A benchmark, not a
 * test: nothing is asserted about time. Goal: p95 < 30 ms. See docs/benchmarks.md.
 *
 *   npm run bench:fhir -- [--studies 1000] [--instances-per-study 100] [--queries 300] [--count 20] [--tmp <dir>] [--json]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { MODULES, openArchive } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';
import { configSectionsOf } from '../src/modules/module.ts';
import { Metrics } from '../src/observability/metrics.ts';
import { createHttpServer } from '../src/http/server.ts';
import { benchArgs } from './support/args.ts';
import { describeStudies, rng, seedAtriumIndex } from './support/study-index.ts';

const { args, wholeNumber } = benchArgs('bench:fhir', '[--studies N] [--instances-per-study N] [--queries N] [--count N] [--tmp DIR] [--json]', {
  studies: { type: 'string', default: '1000' },
  'instances-per-study': { type: 'string', default: '100' },
  queries: { type: 'string', default: '300' },
  count: { type: 'string', default: '20' },
  tmp: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const studyCount = wholeNumber('studies');
const perStudy = wholeNumber('instances-per-study');
const queries = wholeNumber('queries');
const pageSize = wholeNumber('count');

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const dir = await mkdtemp(join(String(args.tmp ?? os.tmpdir()), 'atrium-bench-fhir-'));
try {
  const studies = describeStudies(studyCount, perStudy, '1.2.826.0.1.3680043.10.9');
  const seeded = performance.now();
  const instances = await seedAtriumIndex(join(dir, 'index.sqlite'), studies);
  const seedSeconds = (performance.now() - seeded) / 1000;
  const config = loadConfig({ env: { ATRIUM_DATA: dir, ATRIUM_LOG_LEVEL: 'silent' }, sections: configSectionsOf(MODULES) });
  const archive = await openArchive(config, { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }) });
  const { key } = await archive.security.createApiKey({ name: 'bench', roles: ['administrator'] });
  const app = await createHttpServer(archive);
  const origin = await app.listen({ host: '127.0.0.1', port: 0 });
  const headers = { authorization: `Bearer ${key}`, accept: 'application/fhir+json' };
  const random = rng(11);
  const patients = [...new Set(studies.map((s) => s.patient.id))];
  const day = (s: string) => `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}`;
  const kinds: Record<string, () => string> = {
    'by patient': () => `patient=Patient/${patients[Math.floor(random() * patients.length)]}`,
    'by date (one day)': () => `started=${day(studies[Math.floor(random() * studies.length)]!.date)}`,
    'by date range (a month, ge/lt)': () => {
      const d = studies[Math.floor(random() * studies.length)]!.date;
      const next = new Date(Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)), 1)).toISOString().slice(0, 7);
      return `started=ge${d.slice(0, 4)}-${d.slice(4, 6)}&started=lt${next}`;
    },
    'by patient and date': () => {
      const s = studies[Math.floor(random() * studies.length)]!;
      return `patient=Patient/${s.patient.id}&started=le${day(s.date)}`;
    },
  };
  const rows: { query: string; p50Ms: number; p95Ms: number; meanMs: number; maxMs: number; resultsPerQuery: number; errors: number }[] = [];
  for (const [name, make] of Object.entries(kinds)) {
    // Warm-up: the page cache and the server's first requests.
    for (let i = 0; i < 20; i++) await (await fetch(`${origin}/fhir/R4/ImagingStudy?${make()}&_count=${pageSize}`, { headers })).arrayBuffer();
    const times: number[] = [];
    let results = 0;
    let errors = 0;
    for (let i = 0; i < queries; i++) {
      const url = `${origin}/fhir/R4/ImagingStudy?${make()}&_count=${pageSize}`;
      const start = performance.now();
      const response = await fetch(url, { headers });
      const body = await response.json() as { entry?: unknown[] };
      times.push(performance.now() - start);
      if (response.status !== 200) errors++;
      results += body.entry?.length ?? 0;
    }
    const sorted = [...times].sort((a, b) => a - b);
    rows.push({ query: name, p50Ms: quantile(sorted, 0.5), p95Ms: quantile(sorted, 0.95), meanMs: times.reduce((a, b) => a + b, 0) / times.length, maxMs: sorted.at(-1)!,
      resultsPerQuery: results / queries, errors });
  }
  await app.close();
  await archive.close();
  if (args.json) {
    console.log(JSON.stringify({ studies: studyCount, instances, seedSeconds, pageSize, queries, rows }, null, 2));
  } else {
    console.log(`FHIR ImagingStudy search, SQLite index: ${studyCount.toLocaleString('en-US')} studies, ${instances.toLocaleString('en-US')} instances (seeded in ${seedSeconds.toFixed(1)} s), _count=${pageSize}, ${queries} queries each, one at a time\n`);
    console.log(['query'.padEnd(32), 'p50 ms', 'p95 ms', 'mean ms', 'max ms', 'results/query', 'errors'].join('  '));
    for (const r of rows) {
      console.log([r.query.padEnd(32), r.p50Ms.toFixed(1).padStart(6), r.p95Ms.toFixed(1).padStart(6), r.meanMs.toFixed(1).padStart(7), r.maxMs.toFixed(1).padStart(6),
        r.resultsPerQuery.toFixed(1).padStart(13), String(r.errors).padStart(6)].join('  '));
    }
    console.log('\nGoal: p95 < 30 ms.');
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
