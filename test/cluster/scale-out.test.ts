/**
 * Scale-out, proven: two real `atrium serve` nodes on one PostgreSQL schema and one S3 bucket (s3rver),
 * behind a real HAProxy (TCP mode for DIMSE, HTTP mode for the web, health-checked on /api/health/ready),
 * the shape deploy/ documents (docs/scale-out.md).
 *
 * - ingest with DCMTK storescu through HAProxy (spread over both nodes: each node's own metrics count some)
 *   and directly to each node at the same time;
 * - QIDO-RS through HAProxy and at each node, C-FIND at each node, C-MOVE through HAProxy: all see everything;
 * - send jobs queued through HAProxy run exactly once across the nodes (storescp with unique file names
 *   receives each instance once), the outbox's deliveries are done once per event and handler;
 * - one node SIGKILLed while storescu streams to it: every instance storescu was told was stored is
 *   queryable and retrievable afterwards with the same bytes, and the other node keeps serving and takes new
 *   associations through HAProxy.
 * Nothing about time is asserted; waits poll.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MODULES, openArchive } from '../../src/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { configSectionsOf } from '../../src/modules/module.ts';
import { syntheticInstance } from '../../src/synthetic/synthetic-instance.ts';
import { generateUid } from '../../src/dicom/uid.ts';
import { sql } from 'kysely';
import { authHeaders, createTestAdminKey, installAuthFetch } from '../support/archive.ts';
import { createTestSchema, type TestSchema } from '../support/postgres.ts';
import { startS3Server, type TestS3Server } from '../support/s3-server.ts';
import { killAllChildren, parsePart10, runTool, startStorescp, type Storescp } from '../support/dcmtk.ts';
import { startAtriumNode, startClusterProxy, type AtriumNode, type ClusterProxy } from '../support/cluster.ts';
import { waitFor } from '../support/dimse-peers.ts';

const AET = 'ATRIUM';

/** Writes `count` synthetic instances of one new study into `dir` as <SOPInstanceUID>.dcm; returns the study UID. */
async function writeStudy(dir: string, count: number, patientId: string): Promise<{ studyUid: string; files: string[] }> {
  await mkdir(dir, { recursive: true });
  const studyUid = generateUid();
  const seriesUid = generateUid();
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const uid = generateUid();
    const bytes = Buffer.concat([...syntheticInstance({ patientId, patientName: `CLUSTER^${patientId}`, studyInstanceUid: studyUid, seriesInstanceUid: seriesUid,
      sopInstanceUid: uid, instanceNumber: i + 1, rows: 32, columns: 32, seed: i })]);
    const file = path.join(dir, `${uid}.dcm`);
    await writeFile(file, bytes);
    files.push(file);
  }
  return { studyUid, files };
}

/** The SOP Instance UID of a Part-10 file, from its meta (Media Storage SOP Instance UID). */
function sopUidOf(bytes: Buffer): string {
  const element = parsePart10(bytes).header.fileMeta?.elements.find((e) => e.tag === 0x00020003);
  return new TextDecoder().decode(element!.value!).replace(/[\0 ]+$/, '');
}

function storescu(port: number, folder: string, callingAe = 'MODALITY') {
  return runTool('storescu', ['-v', '-aet', callingAe, '-aec', AET, '+sd', '127.0.0.1', String(port), folder], { timeoutMs: 300_000 });
}

/** The SOP Instance UIDs (file names) storescu was told were stored: a "Sending file" followed by a success response. */
function acknowledged(output: string): string[] {
  const uids: string[] = [];
  let current: string | null = null;
  for (const line of output.split('\n')) {
    const sending = /Sending file: (.*\.dcm)\s*$/.exec(line);
    if (sending) current = path.basename(sending[1], '.dcm');
    else if (/Received Store Response \(Success\)/.test(line) && current) { uids.push(current); current = null; }
  }
  return uids;
}

async function qidoStudies(base: string, query = ''): Promise<{ uid: string; instances: number }[]> {
  const r = await fetch(`${base}/dicom-web/studies?limit=1000${query}`, { headers: authHeaders({ accept: 'application/dicom+json' }) });
  assert.ok(r.status === 200 || r.status === 204, `${r.status}: ${await r.clone().text()}`);
  const body = r.status === 204 ? [] : await r.json() as Record<string, { Value?: unknown[] }>[];
  return body.map((s) => ({ uid: String(s['0020000D'].Value![0]), instances: Number(s['00201208']?.Value?.[0] ?? 0) }));
}

describe('two Atrium nodes on one PostgreSQL and one S3 store behind HAProxy', { timeout: 600_000 }, () => {
  let schema: TestSchema;
  let s3: TestS3Server;
  let env: Record<string, string>;
  let nodes: AtriumNode[] = [];
  let proxy: ClusterProxy;
  let work: string;
  let storescp: Storescp;
  let received: string;
  /** Every study sent so far, with its files. */
  const studies = new Map<string, string[]>();

  before(async () => {
    installAuthFetch();
    work = await mkdtemp(path.join(os.tmpdir(), 'atrium-cluster-'));
    schema = await createTestSchema();
    s3 = await startS3Server();
    env = {
      ATRIUM_INDEX_ENGINE: 'postgres', ATRIUM_POSTGRES_URL: schema.connectionString,
      ATRIUM_BLOB_ENGINE: 's3', ATRIUM_S3_ENDPOINT: s3.endpoint, ATRIUM_S3_BUCKET: s3.bucket, ATRIUM_S3_REGION: s3.region,
      ATRIUM_S3_ACCESS_KEY_ID: s3.accessKeyId, ATRIUM_S3_SECRET_ACCESS_KEY: s3.secretAccessKey, ATRIUM_S3_PART_SIZE_MIB: '5',
      // Every node has the cluster's one AE title (peers address the cluster, not a node) and trusts the proxy.
      ATRIUM_DICOM_AE_TITLE: AET, ATRIUM_HTTP_TRUSTED_PROXIES: '127.0.0.1',
    };
    // Both nodes start at once on the empty schema, as a cluster does after a fresh install or an upgrade:
    // the migrations must run once, whichever node gets there first.
    nodes = await Promise.all(['node1', 'node2'].map((name) => startAtriumNode(name, env)));
    // The test's administrator key and the DICOM peers go into the shared database, seen by both nodes.
    const setup = await openArchive(loadConfig({ sections: configSectionsOf(MODULES), env: { ...env, ATRIUM_DATA: path.join(work, 'setup'), ATRIUM_LOG_LEVEL: 'silent' } }));
    try {
      await createTestAdminKey(setup);
      received = path.join(work, 'received');
      await mkdir(received);
      storescp = await startStorescp(received, { aeTitle: 'DEST', extraArgs: ['+uf'] });
      await setup.peers.upsert({ aeTitle: 'DEST', host: '127.0.0.1', port: storescp.port, operations: ['echo', 'store'] });
      await setup.peers.upsert({ aeTitle: 'MODALITY', host: '127.0.0.1', port: 104, operations: ['echo', 'store'] });
      await setup.peers.upsert({ aeTitle: 'READER', host: '127.0.0.1', port: 104, operations: ['echo', 'find', 'move'] });
    } finally {
      await setup.close();
    }
    proxy = await startClusterProxy(nodes);
    await waitFor(async () => Object.values(await proxy.status()).every((s) => s === 'UP'), 'HAProxy sees every node UP', 30_000);
  });

  after(async () => {
    // ATRIUM_TEST_KEEP_LOGS=<folder>: each node's log kept there, to read what the nodes said.
    if (process.env.ATRIUM_TEST_KEEP_LOGS) for (const n of nodes) await writeFile(path.join(process.env.ATRIUM_TEST_KEEP_LOGS, `${n.name}.log`), n.log());
    await proxy?.stop();
    for (const node of nodes) await node.kill('SIGTERM');
    await storescp?.stop();
    killAllChildren();
    await s3?.stop();
    await schema?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('storescu through HAProxy is spread over both nodes, and straight to each node at the same time', async () => {
    const folders: { folder: string; port: number }[] = [];
    for (let i = 0; i < 6; i++) {
      const folder = path.join(work, `ingest-${i}`);
      const { studyUid, files } = await writeStudy(folder, 8, `P${i}`);
      studies.set(studyUid, files);
      // Four associations through HAProxy, one straight to each node, all at once.
      folders.push({ folder, port: i < 4 ? proxy.dicomPort : nodes[i - 4].dicomPort });
    }
    const before = await Promise.all(nodes.map((n) => n.counter('atrium_ingest_total', 'outcome="stored"')));
    const runs = await Promise.all(folders.map(({ folder, port }) => storescu(port, folder)));
    for (const r of runs) assert.equal(r.code, 0, r.output);
    const after = await Promise.all(nodes.map((n) => n.counter('atrium_ingest_total', 'outcome="stored"')));
    const perNode = after.map((a, i) => a - before[i]);
    assert.equal(perNode[0] + perNode[1], 48, `stored per node: ${perNode}`);
    // Each node got its direct association (8) and at least one of the four through HAProxy.
    for (const [i, n] of perNode.entries()) assert.ok(n >= 16, `${nodes[i].name} stored ${n}: HAProxy did not spread the associations`);
  });

  test('QIDO-RS through HAProxy and at each node, C-FIND at each node, C-MOVE through HAProxy: every node sees everything', async () => {
    const expected = [...studies.keys()].sort();
    for (const base of [`http://127.0.0.1:${proxy.webPort}`, ...nodes.map((n) => n.base)]) {
      const found = await qidoStudies(base);
      assert.deepEqual(found.map((s) => s.uid).sort(), expected, base);
      assert.ok(found.every((s) => s.instances === 8), JSON.stringify(found));
    }
    for (const node of nodes) {
      const r = await runTool('findscu', ['-S', '-aet', 'READER', '-aec', AET, '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID', '127.0.0.1', String(node.dicomPort)]);
      assert.equal(r.code, 0, r.output);
      const uids = [...r.output.matchAll(/\(0020,000d\) UI \[([0-9.]+)[ \0]*\]/g)].map((m) => m[1]).sort();
      assert.deepEqual(uids, expected, `C-FIND at ${node.name}: ${r.output}`);
    }
    const [study, files] = [...studies.entries()][0];
    const moved = await runTool('movescu', ['-S', '-aet', 'READER', '-aec', AET, '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study}`, '127.0.0.1', String(proxy.dicomPort)]);
    assert.equal(moved.code, 0, moved.output);
    const got = await readdir(received);
    assert.equal(got.length, files.length, `C-MOVE through HAProxy delivered ${got.length} of ${files.length}`);
    for (const f of got) await rm(path.join(received, f));
  });

  test('send jobs queued through HAProxy run once across the nodes; outbox deliveries are done once', async () => {
    const web = `http://127.0.0.1:${proxy.webPort}`;
    const ids: string[] = [];
    for (const study of studies.keys()) {
      const r = await fetch(`${web}/api/dicom/peers/DEST/send`, { method: 'POST', headers: authHeaders({ 'content-type': 'application/json' }), body: JSON.stringify({ studyInstanceUid: study }) });
      assert.equal(r.status, 202, await r.clone().text());
      ids.push(((await r.json()) as { id: string }).id);
    }
    const jobs = async () => await Promise.all(ids.map(async (id) => (await (await fetch(`${web}/api/jobs/${id}`)).json()) as { state: string; attempts: number }));
    await waitFor(async () => (await jobs()).every((j) => j.state === 'succeeded' || j.state === 'failed'), 'every send job finished', 120_000);
    const done = await jobs();
    assert.ok(done.every((j) => j.state === 'succeeded' && j.attempts === 1), JSON.stringify(done));
    // storescp keeps every object it receives under a unique name: a job run twice would show as 2 files.
    const files = await readdir(received);
    assert.equal(files.length, 48, `storescp received ${files.length} objects for 48 instances`);
    const uids = new Set<string>();
    for (const f of files) uids.add(sopUidOf(await readFile(path.join(received, f))));
    assert.equal(uids.size, 48, 'each instance once');
    for (const f of files) await rm(path.join(received, f));

    // Outbox: every delivery done, in one attempt, and the nodes' metrics count each once between them.
    const setupDb = (await import('../../src/database/database.ts')).Database.open({ engine: 'postgres', connectionString: schema.connectionString });
    try {
      const db = setupDb.kysely<any>();
      await waitFor(async () => Number((await sql<{ n: string }>`select count(*) as n from event_delivery where state <> 'done'`.execute(db)).rows[0].n) === 0, 'every delivery done', 60_000);
      const rows = (await sql<{ handler: string; n: string; once: string }>`select handler, count(*) as n, sum(case when attempts = 1 then 1 else 0 end) as once from event_delivery group by handler`.execute(db)).rows;
      assert.ok(rows.length > 0, 'some handler is subscribed to the events of the ingest');
      for (const row of rows) {
        assert.equal(Number(row.once), Number(row.n), `${row.handler}: some deliveries took more than one attempt`);
        const counted = (await Promise.all(nodes.map((n) => n.counter('atrium_event_deliveries_total', `handler="${row.handler}"`)))).reduce((a, b) => a + b, 0);
        assert.equal(counted, Number(row.n), `${row.handler}: the nodes ran ${counted} deliveries for ${row.n} rows`);
      }
    } finally {
      await setupDb.close();
    }
  });

  test('a node SIGKILLed mid-ingest loses no acknowledged instance; the other keeps serving through HAProxy', async (t) => {
    const [victim, survivor] = nodes;
    const toVictim = path.join(work, 'kill-victim');
    const toProxy = path.join(work, 'kill-proxy');
    const a = await writeStudy(toVictim, 400, 'KILL1');
    const b = await writeStudy(toProxy, 100, 'KILL2');
    const stored0 = await victim.counter('atrium_ingest_total', 'outcome="stored"');
    const runs = [storescu(victim.dicomPort, toVictim), storescu(proxy.dicomPort, toProxy)];
    await waitFor(async () => (await victim.counter('atrium_ingest_total', 'outcome="stored"')) - stored0 >= 20, 'the victim stored 20 of its 400', 120_000);
    process.kill(-victim.child.pid!, 'SIGKILL');
    const [killed, other] = await Promise.all(runs);
    assert.notEqual(killed.code, 0, 'storescu to the killed node failed');
    const ack = [...acknowledged(killed.output), ...acknowledged(other.output)];
    assert.ok(ack.length >= 20, `acknowledged: ${ack.length}`);
    t.diagnostic(`acknowledged before and around the kill: ${acknowledged(killed.output).length} of 400 by ${victim.name}, ${acknowledged(other.output).length} of 100 through HAProxy`);
    await waitFor(async () => (await proxy.status())[`atrium_web/${victim.name}`] === 'DOWN', 'HAProxy takes the killed node out', 30_000);

    // Every acknowledged instance: found through HAProxy, and its bytes (the data set: the file meta is the
    // archive's own) equal to what was sent.
    const web = `http://127.0.0.1:${proxy.webPort}`;
    const sent = new Map([...a.files, ...b.files].map((f) => [path.basename(f, '.dcm'), f]));
    for (const uid of ack) {
      const r = await fetch(`${web}/api/instances/${uid}/file`);
      assert.equal(r.status, 200, `acknowledged ${uid} not retrievable: ${r.status}`);
      const got = parsePart10(Buffer.from(await r.arrayBuffer()));
      const want = parsePart10(await readFile(sent.get(uid)!));
      assert.ok(got.dataset.equals(want.dataset), `${uid}: stored data set differs from the one sent`);
    }
    const found = await qidoStudies(web, `&StudyInstanceUID=${a.studyUid},${b.studyUid}`);
    const total = found.reduce((n, s) => n + s.instances, 0);
    assert.ok(total >= ack.length, `QIDO counts ${total} instances for ${ack.length} acknowledged`);

    // New associations through HAProxy go to the survivor.
    const after = path.join(work, 'after-kill');
    const c = await writeStudy(after, 5, 'AFTER');
    const again = await storescu(proxy.dicomPort, after);
    assert.equal(again.code, 0, again.output);
    assert.equal(acknowledged(again.output).length, 5);
    assert.deepEqual((await qidoStudies(web, `&StudyInstanceUID=${c.studyUid}`)).map((s) => s.instances), [5]);
    assert.ok(survivor.alive());
  });
});
