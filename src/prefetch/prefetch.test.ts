// Prior prefetch (issue 12, "Must be shown: Prefetch"), against a real remote archive: DCMTK dcmqrscp with
// its own storage area, loaded by storescu, knowing Atrium as a move destination. An order scheduled over
// the RIS REST for a patient with priors there (and one merged into the patient, and one already in
// Atrium): exactly the relevant priors by the rule (modality, region, look-back, limit) are retrieved into
// Atrium, the rest are not. With the remote down the search fails and is retried, the status says failed
// with the reason, then fetched once it is up; a redelivered event and a second node queue nothing twice.
// On SQLite and PostgreSQL (two nodes on one database there).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { freePort, killAllChildren, runTool, waitForPort } from '../../test/support/dcmtk.ts';
import { jobRunner, type Archive } from '../app.ts';
import { EventDispatcher } from '../events/dispatcher.ts';
import { createHttpServer } from '../http/server.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';
import { generateUid } from '../dicom/uid.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { risOf } from '../ris/module.ts';
import type { ChangeContext } from '../ris/ris-context.ts';
import { parseRuleInput, selectPriors, type PrefetchRule } from './rules.ts';
import { PREFETCH_FETCH_JOB, PREFETCH_SEARCH_JOB } from './prefetch-service.ts';

const DAY = 86_400_000;
const da = (daysAgo: number) => new Date(Date.now() - daysAgo * DAY).toISOString().slice(0, 10).replace(/-/g, '');

async function until<T>(probe: () => Promise<T | undefined | null | false>, what: string, limitMs = 60_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('rules: validation names the key; relevance by modality, region, look-back and limit', () => {
  assert.throws(() => parseRuleInput({ name: 'x', priors: { lookbackDays: 0 } }), /priors.lookbackDays/);
  assert.throws(() => parseRuleInput({ name: 'x', priors: { lookbackDays: 10, modalities: ['ct'] } }), /priors.modalities/);
  assert.throws(() => parseRuleInput({ name: 'x', priors: { lookbackDays: 10 }, method: 'push' }), /method/);
  const input = parseRuleInput({ name: 'chest', order: { modalities: ['CT'] }, priors: { modalities: ['CT', 'DX'], bodyRegions: ['CHEST'], lookbackDays: 365, maxStudies: 2 } });
  const rule: PrefetchRule = { ...input, id: 1, createdAt: '', updatedAt: '', updatedBy: null };
  const now = new Date();
  const s = (uid: string, days: number, modality: string, description: string, bodyParts: string[] = []) =>
    ({ studyInstanceUid: uid, studyDate: da(days), studyDescription: description, modalities: [modality], bodyParts, source: 'R' });
  const picked = selectPriors([rule], [
    s('a', 10, 'CT', 'CT CHEST'), s('b', 20, 'DX', 'XR 2 VIEWS', ['CHEST']), s('c', 30, 'CT', 'CT THORAX CHEST'),
    s('d', 5, 'MR', 'MR CHEST'), s('e', 5, 'CT', 'CT HEAD'), s('f', 400, 'CT', 'CT CHEST'), s('g', 5, 'CT', 'CT CHESTER'),
    { ...s('a', 10, 'CT', 'CT CHEST'), source: 'local' },
  ], now, null);
  assert.deepEqual(picked.map((p) => [p.study.studyInstanceUid, p.study.source]), [['a', 'local'], ['b', 'R']]);
});

/** DCMTK's query/retrieve SCP over `storage`, knowing Atrium as a move destination. */
async function startDcmqrscp(dir: string, port: number, atrium: { aeTitle: string; port: number }): Promise<{ stop(): Promise<void> }> {
  const storage = path.join(dir, 'dcmqrscp-db');
  await mkdir(storage, { recursive: true });
  const cfg = path.join(dir, 'dcmqrscp.cfg');
  await writeFile(cfg, [
    `NetworkTCPPort = ${port}`, 'MaxPDUSize = 16384', 'MaxAssociations = 16',
    'HostTable BEGIN', `atrium = (${atrium.aeTitle}, 127.0.0.1, ${atrium.port})`, 'HostTable END',
    'VendorTable BEGIN', 'VendorTable END',
    'AETable BEGIN', `DCMQRSCP ${storage} RW (200, 1024mb) ANY`, 'AETable END', '',
  ].join('\n'));
  const child: ChildProcess = spawn('dcmqrscp', ['-c', cfg, '--disable-host-lookup'], { detached: true, stdio: 'ignore' });
  await waitForPort(port, child);
  return {
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
      await exited;
    },
  };
}

interface Prior { key: string; patientId: string; daysAgo: number; modality: string; description: string }

// The rule: CT chest orders get CT, CR and DX chest studies of the last 5 years, the 4 most recent.
const REMOTE: Prior[] = [
  { key: 'merged-ct-chest', patientId: 'PF-OLD', daysAgo: 180, modality: 'CT', description: 'CT CHEST W/O' },
  { key: 'ct-chest-1y', patientId: 'PF-1', daysAgo: 365, modality: 'CT', description: 'CT CHEST' },
  { key: 'cr-chest-2y', patientId: 'PF-1', daysAgo: 730, modality: 'CR', description: 'XR CHEST PA LAT' },
  // Relevant, but older than the 4 most recent (the one in Atrium is one of them).
  { key: 'ct-chest-3y', patientId: 'PF-1', daysAgo: 1095, modality: 'CT', description: 'CT CHEST' },
  { key: 'dx-chest-4y', patientId: 'PF-1', daysAgo: 1460, modality: 'DX', description: 'CHEST 1 VIEW' },
  // Not relevant: another region, another modality, too old, another patient.
  { key: 'ct-head-1y', patientId: 'PF-1', daysAgo: 300, modality: 'CT', description: 'CT HEAD' },
  { key: 'mr-chest-1y', patientId: 'PF-1', daysAgo: 300, modality: 'MR', description: 'MR CHEST' },
  { key: 'ct-chest-7y', patientId: 'PF-1', daysAgo: 2555, modality: 'CT', description: 'CT CHEST' },
  { key: 'other-patient', patientId: 'PF-2', daysAgo: 200, modality: 'CT', description: 'CT CHEST' },
];
const FETCHED = ['merged-ct-chest', 'ct-chest-1y', 'cr-chest-2y'];

function instance(p: Prior & { studyInstanceUid: string }, n: number): Buffer {
  return Buffer.concat([...syntheticInstance({
    patientId: p.patientId, patientName: `PREFETCH^${p.patientId}`, studyInstanceUid: p.studyInstanceUid, seriesInstanceUid: `${p.studyInstanceUid}.1`,
    sopInstanceUid: `${p.studyInstanceUid}.1.${n}`, studyDate: da(p.daysAgo), modality: p.modality, studyDescription: p.description,
    accessionNumber: `A-${p.key}`.slice(0, 16), rows: 16, columns: 16, seed: n, instanceNumber: n,
  })]);
}

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`prior prefetch from dcmqrscp on order scheduled, on ${engine}`, { timeout: 300_000 }, async () => {
    const ta: TestArchive = await createTestArchive(engine);
    const archive = ta.archive;
    const dicom = await startDicomService(archive, { port: 0 });
    const http = await createHttpServer(archive);
    const base = await http.listen({ host: '127.0.0.1', port: 0 });
    const nodes: Archive[] = [archive];
    // On PostgreSQL a second node on the same database runs its own dispatcher and job runner.
    if (engine === 'postgres+fs') nodes.push(await ta.reopen());
    const runners = nodes.map((a) => jobRunner(a, { pollIntervalMs: 50 }));
    const dispatchers = nodes.map((a) => new EventDispatcher({ outbox: a.events, handlers: a.eventHandlers, log: a.log, pollIntervalMs: 50 }));
    for (const r of runners) r.start();
    for (const d of dispatchers) d.start();
    const work = await mkdtemp(path.join(os.tmpdir(), 'atrium-prefetch-'));
    const qrPort = await freePort();
    const atrium = { aeTitle: archive.config.dicom.aeTitle, port: dicom.port };
    let qr: { stop(): Promise<void> } | null = null;
    after(async () => {
      for (const d of dispatchers) await d.stop();
      for (const r of runners) await r.stop();
      await qr?.stop();
      await http.close();
      await dicom.close();
      killAllChildren();
      await ta.cleanup();
      await rm(work, { recursive: true, force: true });
    });
    const api = async (method: string, url: string, body?: unknown, key = ta.adminKey) => {
      const r = await fetch(`${base}${url}`, {
        method, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    };

    // The remote archive, loaded with the patient's history.
    qr = await startDcmqrscp(work, qrPort, atrium);
    const uid = new Map(REMOTE.map((p) => [p.key, generateUid()]));
    const files: string[] = [];
    for (const p of REMOTE) {
      for (const n of [1, 2]) {
        const file = path.join(work, `${p.key}-${n}.dcm`);
        await writeFile(file, instance({ ...p, studyInstanceUid: uid.get(p.key)! }, n));
        files.push(file);
      }
    }
    const stored = await runTool('storescu', ['-aec', 'DCMQRSCP', '127.0.0.1', String(qrPort), ...files], { timeoutMs: 60_000 });
    assert.equal(stored.code, 0, stored.output);
    await archive.peers.upsert({ aeTitle: 'DCMQRSCP', host: '127.0.0.1', port: qrPort, operations: ['echo', 'find', 'move', 'get', 'store'] });

    // One relevant prior is in Atrium already: found, nothing to fetch.
    const localUid = generateUid();
    const local = await archive.ingest.ingest([instance({ key: 'local', patientId: 'PF-1', daysAgo: 900, modality: 'CT', description: 'CT CHEST', studyInstanceUid: localUid }, 1)], { source: 'test' });
    assert.equal(local.status, 'stored');

    // The patient PF-OLD was merged into PF-1 (HL7 A40 in real life).
    const ris = risOf(archive);
    const ctx: ChangeContext = { source: { kind: 'user', ref: 'test' }, principal: { kind: 'user', id: 'test' }, interface: 'rest' };
    await ris.patients.upsertPatient(ctx, { patientId: 'PF-OLD', issuerOfPatientId: 'HOSP', patientName: 'PREFETCH^OLD' });
    await ris.core.change(ctx, (unit) => ris.patients.merge(unit, { patientId: 'PF-1', issuerOfPatientId: 'HOSP', patientName: 'PREFETCH^PF-1' }, { patientId: 'PF-OLD', issuerOfPatientId: 'HOSP' }));

    // The rule, by REST: a radiologist may read it, not write it.
    const radiologist = (await archive.security.createApiKey({ name: 'radiologist', roles: ['radiologist'] })).key;
    const ruleBody = {
      name: 'CT chest', order: { modalities: ['CT'], bodyRegions: ['CHEST'] },
      priors: { modalities: ['CT', 'CR', 'DX'], bodyRegions: ['CHEST'], lookbackDays: 5 * 365, maxStudies: 4 }, sources: ['DCMQRSCP'], method: 'move',
    };
    assert.equal((await api('POST', '/api/prefetch/rules', ruleBody, radiologist)).status, 403);
    assert.equal((await api('POST', '/api/prefetch/rules', { ...ruleBody, priors: { lookbackDays: -1 } })).status, 400);
    const created = await api('POST', '/api/prefetch/rules', ruleBody);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await api('GET', '/api/prefetch/rules', undefined, radiologist)).body.items.length, 1);
    // Another rule that does not apply to a CT chest order.
    assert.equal((await api('POST', '/api/prefetch/rules', { ...ruleBody, name: 'MR brain', order: { modalities: ['MR'] }, priors: { ...ruleBody.priors, modalities: ['MR'], bodyRegions: ['HEAD'] } })).status, 201);

    // The remote goes down; the order is scheduled over the RIS REST.
    await qr.stop();
    qr = null;
    const order = await api('POST', '/api/ris/orders', {
      patient: { patientId: 'PF-1', issuerOfPatientId: 'HOSP', patientName: 'PREFETCH^PF-1' }, accessionNumber: 'PF-ACC1',
      requestedProcedureCode: { code: 'CTCHEST', scheme: 'LOCAL', meaning: 'CT Chest without contrast' },
      steps: [{ stepId: 'SPS-PF1', modality: 'CT', startDate: da(-1), startTime: '0900', description: 'CT CHEST' }],
    });
    assert.equal(order.status, 201, JSON.stringify(order.body));
    assert.equal(order.body.status, 'scheduled');

    const failed = await until(async () => {
      const r = await api('GET', '/api/prefetch/orders/PF-ACC1', undefined, radiologist);
      return r.status === 200 && r.body.status === 'failed' ? r.body : null;
    }, 'the search to fail with the remote down');
    assert.equal(failed.search.state, 'failed');
    assert.equal(failed.search.retrying, true);
    assert.match(failed.search.reason, /DCMQRSCP/);

    // The remote comes back (same storage); the retry (made due now on demand) finds and fetches.
    qr = await startDcmqrscp(work, qrPort, atrium);
    assert.equal((await api('POST', '/api/prefetch/orders/PF-ACC1/run', undefined, radiologist)).status, 403);
    assert.equal((await api('POST', '/api/prefetch/orders/PF-ACC1/run')).status, 202);
    const done = await until(async () => {
      const r = await api('GET', '/api/prefetch/orders/PF-ACC1', undefined, radiologist);
      return r.body?.status === 'fetched' ? r.body : null;
    }, 'the priors to be fetched');
    assert.deepEqual(done.search.summary.rules, ['CT chest']);
    assert.equal(done.search.attempts, 2);
    const byUid = new Map<string, string>([...uid].map(([k, v]) => [v, k]));
    byUid.set(localUid, 'local');
    assert.deepEqual(done.priors.map((p: any) => [byUid.get(p.studyInstanceUid), p.state]).sort(),
      [...FETCHED.map((k) => [k, 'fetched']), ['local', 'present']].sort());
    assert.deepEqual(done.counts, { found: 4, present: 1, fetching: 0, fetched: 3, failed: 0 });
    for (const p of REMOTE) {
      const inAtrium = await archive.index.getStudy(uid.get(p.key)!);
      assert.equal(Boolean(inAtrium), FETCHED.includes(p.key), `${p.key} ${inAtrium ? 'was' : 'was not'} fetched`);
      if (inAtrium) assert.equal(inAtrium.numberOfStudyRelatedInstances, 2);
    }

    // A redelivered OrderStatusChanged, the study's first image arriving, and a second run: nothing is fetched twice.
    const handler = archive.eventHandlers.find((h) => h.name === 'prefetch.order-scheduled')!;
    const payload = { accessionNumber: 'PF-ACC1', studyInstanceUid: order.body.studyInstanceUid, patientId: 'PF-1', status: 'scheduled', source: 'user', sourceRef: null };
    await handler.handle({ id: 1, type: 'OrderStatusChanged', payload, createdAt: new Date().toISOString(), attempt: 2 } as any);
    const retrieves = async () => (await archive.jobs.list({ type: PREFETCH_FETCH_JOB }, { limit: 100, offset: 0 })).items;
    const searches = async () => (await archive.jobs.list({ type: PREFETCH_SEARCH_JOB }, { limit: 100, offset: 0 })).items;
    assert.equal((await searches()).length, 1);
    assert.equal((await api('POST', '/api/prefetch/orders/PF-ACC1/run')).status, 202);
    await until(async () => (await searches()).every((j) => j.state === 'succeeded') && (await searches()).length === 2, 'the second search');
    const jobs = await retrieves();
    assert.equal(jobs.length, 3);
    assert.ok(jobs.every((j) => j.state === 'succeeded' && j.attempts === 1), JSON.stringify(jobs.map((j) => [j.state, j.attempts])));
    const again = (await api('GET', '/api/prefetch/orders/PF-ACC1')).body;
    assert.deepEqual(again.counts, { found: 4, present: 1, fetching: 0, fetched: 3, failed: 0 });
    assert.equal((await api('GET', '/api/prefetch/orders/NO-SUCH')).status, 404);

    // The order's timeline has the prefetch as system entries (flag prior-prefetch), its status unchanged.
    const detail = (await api('GET', `/api/ris/orders/${order.body.pk}`, undefined, radiologist)).body;
    assert.equal(detail.status, 'scheduled');
    const entries = detail.timeline.filter((e: any) => e.flag === 'prior-prefetch');
    assert.ok(entries.every((e: any) => e.source.kind === 'system' && e.status === 'scheduled'));
    assert.match(entries[0].detail, /4 relevant priors found by rule CT chest: 1 in Atrium, 3 to fetch from DCMQRSCP/);
    assert.equal(entries.filter((e: any) => /fetched from DCMQRSCP \(2 instances\)/.test(e.detail)).length, 3);
    assert.deepEqual(detail.timeline.filter((e: any) => e.flag === null).map((e: any) => e.status), ['ordered', 'scheduled']);

    // An order never scheduled (no start date): its study's first image arriving starts the search.
    const walkIn = await api('POST', '/api/ris/orders', {
      patient: { patientId: 'PF-1', issuerOfPatientId: 'HOSP' }, accessionNumber: 'PF-ACC2',
      requestedProcedureCode: { code: 'CTCHEST', scheme: 'LOCAL', meaning: 'CT Chest' }, steps: [{ stepId: 'SPS-PF2', modality: 'CT' }],
    });
    assert.equal(walkIn.body.status, 'ordered');
    const arrived = await archive.ingest.ingest([instance({ key: 'walk-in', patientId: 'PF-1', daysAgo: 0, modality: 'CT', description: 'CT CHEST', studyInstanceUid: walkIn.body.studyInstanceUid }, 1)], { source: 'test' });
    assert.equal(arrived.status, 'stored');
    const walkInStatus = await until(async () => {
      const r = await api('GET', '/api/prefetch/orders/PF-ACC2');
      return r.body?.status === 'fetched' ? r.body : null;
    }, 'the search of the walk-in order');
    assert.equal(walkInStatus.trigger, 'study-arrived');
    // Its priors are all in Atrium now (the order's own study is not its prior).
    assert.deepEqual(walkInStatus.counts, { found: 4, present: 4, fetching: 0, fetched: 0, failed: 0 });
    assert.equal((await retrieves()).length, 3);
  });
}
