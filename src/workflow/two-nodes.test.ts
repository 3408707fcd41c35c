/**
 * Two Atrium nodes on one PostgreSQL: both run the event dispatcher and the job runner, and both sweep for
 * stable studies at the same moments. Each study gets one StudyStable, each StudyStable is routed once, each
 * forward job runs once (one attempt), and storescp receives every instance exactly once.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { startStorescp, killAllChildren, type Storescp } from '../../test/support/dcmtk.ts';
import { workflowNode, eventually, type WorkflowNode } from '../../test/support/workflow.ts';
import type { Archive } from '../app.ts';
import { syntheticSeries } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { SEND_JOB } from '../exchange/dicom-jobs.ts';
import { workflowOf } from './module.ts';
import { validateRule } from './rule.ts';

let t: TestArchive;
let second: Archive;
let nodes: WorkflowNode[];
let scp: Storescp;
let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-two-nodes-'));
  t = await createTestArchive('postgres+fs');
  second = await t.reopen();
  await mkdir(path.join(dir, 'scp'));
  scp = await startStorescp(path.join(dir, 'scp'));
  await t.archive.peers.upsert({ aeTitle: scp.aeTitle, host: '127.0.0.1', port: scp.port, operations: [] });
  nodes = [workflowNode(t.archive), workflowNode(second)];
});

after(async () => {
  for (const n of nodes ?? []) await n.stop();
  killAllChildren();
  await scp?.stop();
  await t?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

test('each StudyStable is emitted and handled once, and each forward job runs once, across two nodes', async () => {
  const { rule } = validateRule({ name: 'CT everywhere', trigger: 'study-stable', conditions: { modality: ['CT'] }, actions: [{ type: 'dicom', destination: scp.aeTitle }] });
  await workflowOf(t.archive).rules.create(rule!, 'test', new Date());
  const studies: string[] = [];
  for (let s = 0; s < 8; s++) {
    const studyInstanceUid = generateUid();
    studies.push(studyInstanceUid);
    for (const instance of syntheticSeries(3, { rows: 16, columns: 16, studyInstanceUid, seed: s })) {
      // Stored through either node, as a load balancer would.
      const result = await (s % 2 ? second : t.archive).ingest.ingest([Buffer.concat([...instance])], { source: 'dimse:SCANNER' });
      assert.equal(result.status, 'stored');
    }
  }
  await Promise.all(nodes.map((n) => n.dispatch()));
  for (const n of nodes) n.advance(121_000);
  // Both nodes sweep at once (and their sweep jobs may run too): the rows are shared, not duplicated.
  await Promise.all([...nodes, ...nodes].map((n) => workflowOf(n.archive).stability.sweep(2)));
  await Promise.all(nodes.map((n) => n.dispatch()));
  await eventually(async () => {
    const { items } = await t.archive.jobs.list({ type: SEND_JOB }, { limit: 100, offset: 0 });
    return items.length === studies.length && items.every((j) => j.state === 'succeeded');
  }, 'one succeeded send per study');

  const db = t.archive.database.kysely<any>();
  const events = await sql<{ key: string; n: string }>`SELECT ordering_key AS key, count(*) AS n FROM outbox WHERE event_type = 'StudyStable' GROUP BY ordering_key`.execute(db);
  assert.deepEqual(Object.fromEntries(events.rows.map((r) => [r.key, Number(r.n)])), Object.fromEntries(studies.map((s) => [s, 1])));
  const deliveries = await sql<{ n: string }>`SELECT count(*) AS n FROM event_delivery WHERE handler = 'workflow.route-study' AND state = 'done'`.execute(db);
  assert.equal(Number(deliveries.rows[0].n), studies.length);
  const { items: jobs } = await t.archive.jobs.list({ type: SEND_JOB }, { limit: 100, offset: 0 });
  assert.deepEqual(jobs.map((j) => j.attempts), jobs.map(() => 1), 'every job ran once');
  assert.deepEqual(new Set(jobs.map((j) => (j.payload as { studyInstanceUid: string }).studyInstanceUid)), new Set(studies));
  const stores = (scp.output().match(/Received Store Request/g) ?? []).length;
  assert.equal(stores, studies.length * 3, 'storescp received every instance exactly once');
});
