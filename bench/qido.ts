/**
 * Index scale benchmark (issue 13, "QIDO-RS, OHIF-style study searches at 1M instances, SQLite and
 * PostgreSQL: p95 < 20 ms"): the same deterministic data set (bench/support/study-index.ts: 100k studies of
 * 10 instances by default) seeded straight into a SQLite index and into a fresh PostgreSQL schema, then the
 * viewer's study-list searches (qidoQueries: patient name prefixes, date ranges, modality, patient ID,
 * accession, no filter; limit=101 as OHIF sends) over HTTP against Atrium's server in this process
 * (kept-alive fetch, one request at a time, after a warm-up). Latency per kind, p50/p95. A benchmark, not a
 * test: nothing is asserted about time. See docs/benchmarks.md "Index at scale (bench:qido)".
 *
 *   npm run bench:qido -- [--studies 100000] [--instances-per-study 10] [--queries 400] [--engines sqlite,postgres]
 *                         [--postgres postgresql://postgres@127.0.0.1:5432/test] [--tmp <dir>] [--json]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { pino } from 'pino';
import { MODULES, openArchive } from '../src/app.ts';
import { loadConfig } from '../src/config/config.ts';
import { configSectionsOf } from '../src/modules/module.ts';
import { Metrics } from '../src/observability/metrics.ts';
import { createHttpServer } from '../src/http/server.ts';
import { benchArgs } from './support/args.ts';
import { describeStudies, qidoQueries, seedAtriumIndex } from './support/study-index.ts';

const ENGINES = ['sqlite', 'postgres'] as const;
type Engine = (typeof ENGINES)[number];
const GOAL_P95_MS = 20;
const WARMUP = 40;

const { args, usage, wholeNumber } = benchArgs('bench:qido', '[--studies N] [--instances-per-study N] [--queries N] [--engines sqlite,postgres] [--postgres URL] [--tmp DIR] [--json]', {
  studies: { type: 'string', default: '100000' },
  'instances-per-study': { type: 'string', default: '10' },
  queries: { type: 'string', default: '400' },
  engines: { type: 'string', default: ENGINES.join(',') },
  postgres: { type: 'string', default: 'postgresql://postgres@127.0.0.1:5432/test' },
  tmp: { type: 'string' },
  json: { type: 'boolean', default: false },
});
const studyCount = wholeNumber('studies');
const perStudy = wholeNumber('instances-per-study');
const queryCount = wholeNumber('queries');
const engines = String(args.engines).split(',').map((e) => e.trim()).filter(Boolean) as Engine[];
for (const e of engines) if (!ENGINES.includes(e)) usage(`unknown engine ${e}`);
const note = (m: string) => { if (!args.json) console.error(m); };

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

interface KindRow { kind: string; p50Ms: number; p95Ms: number; maxMs: number; resultsPerQuery: number; errors: number }
interface EngineRun { engine: Engine; instances: number; seedSeconds: number; all: { p50Ms: number; p95Ms: number }; kinds: KindRow[] }

async function run(engine: Engine, root: string): Promise<EngineRun> {
  const dir = await mkdtemp(join(root, `atrium-bench-qido-${engine}-`));
  const schema = `atrium_bench_qido_${process.pid}`;
  const admin = engine === 'postgres' ? new pg.Client({ connectionString: String(args.postgres) }) : null;
  let url = '';
  if (admin) {
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.query(`CREATE SCHEMA "${schema}"`);
    const u = new URL(String(args.postgres));
    u.searchParams.set('options', `-c search_path=${schema}`);
    url = u.toString();
  }
  try {
    const studies = describeStudies(studyCount, perStudy, '1.2.826.0.1.3680043.10.1444.9013');
    note(`${engine}: seeding ${studyCount.toLocaleString('en-US')} studies x ${perStudy} instances`);
    const t0 = performance.now();
    const instances = await seedAtriumIndex(engine === 'sqlite' ? join(dir, 'index.sqlite') : { engine: 'postgres', connectionString: url }, studies,
      (n) => { if (n % 10_000 === 0) note(`  ${n.toLocaleString('en-US')} studies`); });
    const seedSeconds = (performance.now() - t0) / 1000;
    const env: Record<string, string> = { ATRIUM_DATA: dir, ATRIUM_LOG_LEVEL: 'silent', ...(engine === 'postgres' ? { ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: url } : {}) };
    const config = loadConfig({ env, sections: configSectionsOf(MODULES) });
    const archive = await openArchive(config, { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }) });
    const app = await createHttpServer(archive);
    try {
      const { key } = await archive.security.createApiKey({ name: 'bench', roles: ['administrator'] });
      const origin = await app.listen({ host: '127.0.0.1', port: 0 });
      const headers = { authorization: `Bearer ${key}`, accept: 'application/dicom+json' };
      const queries = qidoQueries(studies, queryCount);
      const get = async (query: string) => {
        const start = performance.now();
        const r = await fetch(`${origin}/dicom-web/studies?${query}`, { headers });
        const text = await r.text();
        return { ms: performance.now() - start, status: r.status, n: r.status === 200 && text.trim() ? (JSON.parse(text) as unknown[]).length : 0 };
      };
      for (const q of qidoQueries(studies, WARMUP, 99)) await get(q.query);
      const byKind = new Map<string, { times: number[]; results: number; errors: number }>();
      const all: number[] = [];
      for (const q of queries) {
        const r = await get(q.query);
        const k = byKind.get(q.kind) ?? { times: [], results: 0, errors: 0 };
        k.times.push(r.ms);
        k.results += r.n;
        if (r.status !== 200 && r.status !== 204) k.errors++;
        byKind.set(q.kind, k);
        all.push(r.ms);
      }
      const sortedAll = [...all].sort((a, b) => a - b);
      return {
        engine, instances, seedSeconds, all: { p50Ms: quantile(sortedAll, 0.5), p95Ms: quantile(sortedAll, 0.95) },
        kinds: [...byKind].map(([kind, k]) => {
          const sorted = [...k.times].sort((a, b) => a - b);
          return { kind, p50Ms: quantile(sorted, 0.5), p95Ms: quantile(sorted, 0.95), maxMs: sorted.at(-1)!, resultsPerQuery: k.results / k.times.length, errors: k.errors };
        }),
      };
    } finally {
      await app.close();
      await archive.close();
    }
  } finally {
    if (admin) {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
      await admin.end();
    }
    await rm(dir, { recursive: true, force: true });
  }
}

const root = String(args.tmp ?? os.tmpdir());
const runs: EngineRun[] = [];
for (const engine of engines) runs.push(await run(engine, root));
if (args.json) {
  console.log(JSON.stringify({ studies: studyCount, perStudy, queries: queryCount, runs }, null, 2));
} else {
  for (const r of runs) {
    console.log(`\nQIDO-RS study searches, ${r.engine}: ${studyCount.toLocaleString('en-US')} studies, ${r.instances.toLocaleString('en-US')} instances (seeded in ${r.seedSeconds.toFixed(0)} s), ${queryCount} queries, one at a time`);
    console.log(['kind'.padEnd(28), 'p50 ms', 'p95 ms', 'max ms', 'results/query', 'errors'].join('  '));
    for (const k of r.kinds) {
      console.log([k.kind.padEnd(28), k.p50Ms.toFixed(1).padStart(6), k.p95Ms.toFixed(1).padStart(6), k.maxMs.toFixed(1).padStart(6), k.resultsPerQuery.toFixed(1).padStart(13), String(k.errors).padStart(6)].join('  '));
    }
    console.log(`${'all'.padEnd(28)}  ${r.all.p50Ms.toFixed(1).padStart(6)}  ${r.all.p95Ms.toFixed(1).padStart(6)}`);
  }
  console.log(`\nGoal: p95 < ${GOAL_P95_MS} ms on each engine.`);
}
