// Reading worklist and turnaround times (issue 12) with a controlled clock, no sleeping, on SQLite and
// PostgreSQL: orders of each priority by HL7 (ORM^O01 through the RIS's HL7 receiver, the screening one by the
// RIS order service since HL7 v2 has no screening mark), MPPS IN PROGRESS / COMPLETED, an image stored and
// matched, ORU^R01 preliminary and final reports, every timeline time set by the clock; then the durations, the
// SLA highlights and the alerts per the seed's table (each recorded once, handed to the webhook notifier and
// POSTed to a test HTTP server), the worklist order, two claims at once (one wins), and critical results
// notified -> acknowledged and notified -> escalated.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestArchive } from '../../test/support/archive.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { sectionOf } from '../config/config.ts';
import { EventDispatcher } from '../events/dispatcher.ts';
import { JobRunner } from '../jobs/job-runner.ts';
import { createHttpServer } from '../http/server.ts';
import { risConfig } from '../ris/config.ts';
import { createRis } from '../ris/ris.ts';
import { matchStudyToOrder } from '../ris/image-matching.ts';
import type { ChangeContext } from '../ris/ris-context.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { readingConfig, type ReadingSettings } from './config.ts';
import { readingModule, readingOf } from './module.ts';
import { READING_WEBHOOK_JOB, readingWebhookJob } from './notifier.ts';
import { SqlReadingStore } from './sql-reading-store.ts';
import { DEFAULT_SLA } from './sla.ts';
import { emit } from '../adapters/index/sql-event-outbox.ts';

const T0 = Date.parse('2026-03-02T08:00:00Z');
const MIN = 60_000;

async function startWebhook() {
  const received: { path: string; body: any }[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => { received.push({ path: req.url ?? '', body: JSON.parse(text) }); res.writeHead(204).end(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const pid = (id: string) => `PID|1||${id}^^^HOSP^MR||DOE^${id}||19700101|F`;
function orm(accession: string, priority: string, modality: string, procedure: string, controlId: string, ordering = '5678^ORDERER^OSCAR'): Buffer {
  return hl7([pid(`P-${accession}`), seg('PV1', { 1: '1', 2: 'O', 8: '1234^REFERRER^RITA' }),
    `ORC|NW|PL-${accession}|FL-${accession}||||^^^20260302080000^^${priority}||20260302|||${ordering}`,
    seg('OBR', { 1: '1', 2: `PL-${accession}`, 3: `FL-${accession}`, 4: `${procedure}^${procedure}^LOCAL`, 18: accession, 19: `RP-${accession}`, 20: `SPS-${accession}`, 21: `${modality}_1`, 24: modality, 27: `^^^20260302080000^^${priority}` })],
  { type: 'ORM^O01', controlId });
}
function oru(accession: string, status: 'P' | 'F', text: string, controlId: string, critical = false): Buffer {
  return hl7([pid(`P-${accession}`), `ORC|RE|PL-${accession}|FL-${accession}`,
    seg('OBR', { 1: '1', 2: `PL-${accession}`, 3: `FL-${accession}`, 4: 'X^X^LOCAL', 18: accession, 25: status, 32: 'RAD&READER&ROSA' }),
    `OBX|1|TX|REPORT||${text}|||${critical ? 'AA' : 'N'}|||${status}`], { type: 'ORU^R01', controlId });
}

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) test(`reading worklist, turnaround times, SLA alerts and critical results on ${engine}`, { timeout: 180_000 }, async (t) => {
  const ta = await createTestArchive(engine);
  after(() => ta.cleanup());
  const archive = ta.archive;
  const webhook = await startWebhook();
  after(() => webhook.close());
  const current = sectionOf(archive.config, readingConfig);
  const settings: ReadingSettings = {
    ...current, alertDestinations: ['desk'],
    webhooks: ['desk', 'oscar', 'chief', 'fallback'].map((name) => ({ name, url: `${webhook.url}/${name}`, maxAttempts: 3, timeoutSeconds: 5 })),
    critical: { acknowledgeMinutes: 30, defaultDestination: 'fallback', escalationDestination: 'fallback', clinicians: [{ clinician: 'ORDERER^OSCAR', destination: 'oscar', escalation: 'chief' }] },
  };
  (archive.config.sections as Record<string, unknown>).reading = settings;

  let now = T0;
  const at = (minutes: number) => { now = T0 + minutes * MIN; };
  const clock = () => new Date(now);
  const hl7Settings = sectionOf(archive.config, risConfig).hl7;
  const ris = createRis({ database: archive.database, audit: archive.audit, index: archive.index, log: archive.log, clock,
    hl7: { applicationName: hl7Settings.applicationName, facilityName: hl7Settings.facilityName, allowedSenders: [] } });
  const reading = readingOf(archive, { clock });
  // Only the reading module's handlers: the timeline's image entries come from matchStudyToOrder with the clocked RIS below.
  const dispatcher = new EventDispatcher({ outbox: archive.events, handlers: readingModule.eventHandlers!(archive), log: archive.log });
  const dispatch = async () => { for (let i = 0; i < 100; i++) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) return; } };
  const receive = async (frame: Buffer) => {
    const r = await ris.hl7.receive(frame, { address: '127.0.0.1' });
    assert.match(r.ack.toString(), /MSA\|AA/, r.ack.toString());
    await dispatch();
  };
  const mpps: ChangeContext = { source: { kind: 'mpps', ref: '1.2.3' }, principal: { kind: 'dicom-ae', id: 'MOD', displayName: 'MOD' }, interface: 'dimse' };
  const step = async (accessionNumber: string, status: 'IN PROGRESS' | 'COMPLETED') => { await ris.orders.recordStepStatus(mpps, { accessionNumber, status }); await dispatch(); };
  const image = async (accessionNumber: string, modality: string) => {
    const order = (await ris.orders.find({ accessionNumber }))!;
    await archive.ingest.ingest(syntheticInstance({ studyInstanceUid: order.studyInstanceUid, seriesInstanceUid: `${order.studyInstanceUid}.1`, sopInstanceUid: `${order.studyInstanceUid}.1.1`,
      accessionNumber, modality, patientId: order.patient.patientId }), { source: 'test' });
    await matchStudyToOrder({ core: ris.core, orders: ris.orders, index: archive.index }, { id: 1, type: 'InstanceStored', attempt: 1, createdAt: clock().toISOString(),
      payload: { studyInstanceUid: order.studyInstanceUid, sopInstanceUid: `${order.studyInstanceUid}.1.1`, seriesInstanceUid: `${order.studyInstanceUid}.1`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', patientId: order.patient.patientId, source: 'test' } });
    await dispatch();
  };
  const uidOf = async (accessionNumber: string) => (await ris.orders.find({ accessionNumber }))!.studyInstanceUid;

  await t.test('orders of each priority: the timeline times come from the clock', async () => {
    at(0);
    await receive(orm('STAT-CT', 'S', 'CT', 'CTHEAD', 'M1'));
    await receive(orm('STAT-CT2', 'S', 'CT', 'CTCHEST', 'M2'));
    await receive(orm('STAT-NM', 'S', 'NM', 'NMBONE', 'M3'));
    await receive(orm('URG-US', 'U', 'US', 'USABD', 'M4'));
    await receive(orm('ASAP-MR', 'A', 'MR', 'MRBRAIN', 'M5'));
    await receive(orm('RTN-DX', 'R', 'DX', 'DXCHEST', 'M6', '9999^OTHER^OLGA'));
    const tech: ChangeContext = { source: { kind: 'user', ref: 'tech' }, principal: { kind: 'user', id: 'tech', displayName: 'tech' }, interface: 'rest' };
    await ris.patients.upsertPatient(tech, { patientId: 'P-SCR-CT', issuerOfPatientId: '', patientName: 'DOE^SCREENING' });
    await ris.orders.placeOrder(tech, {
      patient: { patientId: 'P-SCR-CT', issuerOfPatientId: '' }, accessionNumber: 'SCR-CT', priority: 'ROUTINE', screening: true, requestedProcedureDescription: 'Low-dose CT lung screening',
      steps: [{ stepId: 'SPS-SCR', modality: 'CT', location: 'SITE-B' }],
    });
    at(10); await step('STAT-CT', 'IN PROGRESS');
    at(12); await image('STAT-CT', 'CT');
    at(20); await step('STAT-CT', 'COMPLETED'); await step('STAT-CT2', 'COMPLETED'); await step('STAT-NM', 'COMPLETED');
    at(30); await step('URG-US', 'COMPLETED'); await step('ASAP-MR', 'COMPLETED');
    at(40); await step('RTN-DX', 'COMPLETED');
    at(42); await step('SCR-CT', 'COMPLETED');
  });

  await t.test('the worklist: most urgent first, then how far into the SLA; the viewer opens the study with its priors', async () => {
    at(44); // STAT-CT2 is 24 min into its 30: about to breach (80 %)
    const list = await reading.worklist({}, null);
    // Stat first: the two CTs (24 of 30 min, 80 %) before the NM (24 of 60, 40 %); then urgent (URGENT and ASAP), routine, screening.
    assert.deepEqual(list.map((e) => e.priority), ['stat', 'stat', 'stat', 'urgent', 'urgent', 'routine', 'screening']);
    assert.deepEqual(list.slice(0, 3).map((e) => [e.modality, e.sla.state, Math.round(e.sla.fraction! * 100)]), [['CT', 'warning', 80], ['CT', 'warning', 80], ['NM', 'ok', 40]]);
    assert.deepEqual(new Set(list.slice(0, 2).map((e) => e.accessionNumber)), new Set(['STAT-CT', 'STAT-CT2']));
    assert.deepEqual(new Set(list.slice(3, 5).map((e) => e.accessionNumber)), new Set(['URG-US', 'ASAP-MR']));
    assert.deepEqual(list.slice(5).map((e) => [e.accessionNumber, Math.round(e.waitingMinutes)]), [['RTN-DX', 4], ['SCR-CT', 2]]);
    assert.equal(list.find((e) => e.accessionNumber === 'SCR-CT')!.site, 'SITE-B');
    assert.equal(list.find((e) => e.accessionNumber === 'STAT-CT')!.readyReason, 'mpps');
    // A triage flag raises a study within its priority.
    await reading.setTriage(await uidOf('STAT-NM'), 'AI: pulmonary embolism suspected');
    const flagged = await reading.worklist({}, null);
    assert.deepEqual(flagged.slice(0, 3).map((e) => e.accessionNumber), ['STAT-NM', ...list.slice(0, 2).map((e) => e.accessionNumber)]);
    // Filters and grouping.
    assert.deepEqual((await reading.worklist({ modality: 'ct' }, null)).map((e) => e.accessionNumber).sort(), ['SCR-CT', 'STAT-CT', 'STAT-CT2']);
    assert.deepEqual((await reading.worklist({ site: 'SITE-B' }, null)).map((e) => e.accessionNumber), ['SCR-CT']);
    assert.deepEqual((await reading.worklist({ priority: 'urgent' }, null)).map((e) => e.modality).sort(), ['MR', 'US']);
    // Priors: another study of STAT-CT's patient in the archive.
    const uid = await uidOf('STAT-CT');
    await archive.ingest.ingest(syntheticInstance({ studyInstanceUid: '1.2.826.0.1.3680043.99.77', seriesInstanceUid: '1.2.826.0.1.3680043.99.77.1', sopInstanceUid: '1.2.826.0.1.3680043.99.77.1.1', modality: 'CT', patientId: 'P-STAT-CT', studyDate: '20250101' }), { source: 'test' });
    const opened = await reading.open(uid, null);
    assert.equal(opened.priors, 1);
    assert.equal(opened.viewerUrl, `/viewer?StudyInstanceUIDs=${uid}&StudyInstanceUIDs=1.2.826.0.1.3680043.99.77`);
  });

  await t.test('StudyStable (emitted by the workflow module) puts a study no order matched on the worklist', async () => {
    at(44);
    const uid = '1.2.826.0.1.3680043.99.88';
    await archive.ingest.ingest(syntheticInstance({ studyInstanceUid: uid, seriesInstanceUid: `${uid}.1`, sopInstanceUid: `${uid}.1.1`, modality: 'CT', patientId: 'P-WALKIN' }), { source: 'test' });
    await archive.database.kysely<any>().transaction().execute((tx) => emit(tx as any, { type: 'StudyStable', payload: { studyInstanceUid: uid, patientId: 'P-WALKIN', accessionNumber: null, instanceCount: 1, lastInstanceAt: new Date(T0 + 40 * MIN).toISOString() } }, clock().toISOString()));
    await dispatch();
    const entry = (await reading.worklist({}, null)).find((e) => e.studyInstanceUid === uid)!;
    assert.deepEqual([entry.readyReason, entry.priority, entry.modality, entry.sla.minutes, Math.round(entry.waitingMinutes)], ['stable', 'routine', 'CT', 1440, 4]);
    // Delivered again: still one entry, its first ready time kept.
    await archive.database.kysely<any>().transaction().execute((tx) => emit(tx as any, { type: 'StudyStable', payload: { studyInstanceUid: uid, patientId: 'P-WALKIN', accessionNumber: null, instanceCount: 1, lastInstanceAt: new Date(T0 + 43 * MIN).toISOString() } }, clock().toISOString()));
    await dispatch();
    assert.equal((await reading.worklist({}, null)).filter((e) => e.studyInstanceUid === uid).length, 1);
    assert.equal((await reading.store.item(uid))!.readyAt, new Date(T0 + 40 * MIN).toISOString());
  });

  await t.test('SLA alerts: the warning at 80 %, the breach past the SLA, each recorded once and notified once', async () => {
    at(44);
    const first = await reading.monitor();
    assert.deepEqual(first, { warnings: 2, breaches: 0, escalations: 0 }, 'the two stat CTs 24 min after completion');
    assert.deepEqual(await reading.monitor(), { warnings: 0, breaches: 0, escalations: 0 }, 'a second scan records nothing more');
    at(45); await receive(oru('STAT-CT', 'P', 'Preliminary: no bleed.', 'R1'));
    at(48); await receive(oru('STAT-CT', 'F', 'No acute intracranial abnormality.', 'R2'));
    at(51);
    assert.deepEqual(await reading.monitor(), { warnings: 0, breaches: 1, escalations: 0 }, 'STAT-CT2 31 min after completion; STAT-CT reported at 28 min');
    at(68);
    assert.deepEqual(await reading.monitor(), { warnings: 1, breaches: 0, escalations: 0 }, 'STAT-NM 48 of 60 min');
    // URG-US reported late (120 min SLA, final at 150 min): the breach is recorded when the report comes, though no scan ran.
    at(180); await receive(oru('URG-US', 'F', 'Normal abdomen.', 'R3'));
    const alerts = (await reading.store.alerts({}, { limit: 100, offset: 0 })).items;
    const summary = alerts.map((a) => `${a.accessionNumber}:${a.kind}`).sort();
    assert.deepEqual(summary, ['STAT-CT:warning', 'STAT-CT2:breach', 'STAT-CT2:warning', 'STAT-NM:warning', 'URG-US:breach', 'URG-US:warning'].sort());
    const breach = alerts.find((a) => a.accessionNumber === 'STAT-CT2' && a.kind === 'breach')!;
    assert.equal(breach.slaMinutes, 30);
    assert.equal(breach.dueAt, new Date(T0 + 50 * MIN).toISOString());
    // Screening CT: warning at 48 h, breach past 72 h (the seed's "48-72 hours").
    at(42 + 48 * 60 + 1);
    await reading.monitor();
    at(42 + 72 * 60 + 1);
    await reading.monitor();
    const scr = (await reading.store.alerts({}, { limit: 100, offset: 0 })).items.filter((a) => a.accessionNumber === 'SCR-CT').map((a) => [a.kind, a.slaMinutes]);
    assert.deepEqual(scr.sort(), [['breach', 4320], ['warning', 4320]]);
    // Routine DX (24 h) breached too by now; ASAP-MR (urgent, 2 h) as well.
    // Each alert handed to the notifier once per destination, POSTed once by the webhook job.
    const runner = new JobRunner({ queue: archive.jobs, log: archive.log, pollIntervalMs: 20 }).registerAll({ [READING_WEBHOOK_JOB]: readingWebhookJob({ store: new SqlReadingStore(archive.database), webhooks: () => settings.webhooks }) });
    await runner.start();
    const all = (await reading.store.alerts({}, { limit: 100, offset: 0 })).items;
    // Warnings found when the study was already in breach are recorded, not sent (ASAP-MR, RTN-DX, URG-US).
    const sent = all.filter((a) => a.kind === 'breach' || !all.some((b) => b.studyInstanceUid === a.studyInstanceUid && b.kind === 'breach' && b.detectedAt === a.detectedAt));
    const deadline = Date.now() + 20_000;
    while (webhook.received.filter((r) => r.path === '/desk').length < sent.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await runner.stop();
    const desk = webhook.received.filter((r) => r.path === '/desk');
    assert.equal(desk.length, sent.length);
    assert.deepEqual(new Set(desk.map((r) => r.body.alertId)).size, sent.length, 'one POST per alert');
    assert.ok(desk.some((r) => r.body.type === 'sla-breach' && r.body.accessionNumber === 'STAT-CT2' && r.body.slaMinutes === 30));
  });

  await t.test('turnaround times: each interval from the timeline, per modality, priority, radiologist, against the SLA', async () => {
    const tat = await reading.turnaround({ from: new Date(T0 - MIN).toISOString(), to: new Date(T0 + 60 * MIN).toISOString(), bucket: 'day' });
    const c = tat.cases.find((x) => x.accessionNumber === 'STAT-CT')!;
    assert.deepEqual(c.minutes, { orderToExamStart: 10, examCompleteToFirstImage: -8, examCompleteToPreliminary: 25, examCompleteToFinal: 28 });
    assert.equal(c.radiologist, 'READER^ROSA');
    assert.equal(c.sla!.state, 'ok');
    const us = tat.cases.find((x) => x.accessionNumber === 'URG-US')!;
    assert.equal(us.minutes.examCompleteToFinal, 150);
    assert.equal(us.sla!.state, 'breach');
    assert.deepEqual(tat.breaches.map((b) => b.accessionNumber).sort(), ['ASAP-MR', 'RTN-DX', 'SCR-CT', 'STAT-CT2', 'STAT-NM', 'URG-US']);
    const ct = tat.summary.modality.find((g) => g.key === 'CT')!;
    assert.deepEqual(ct.intervals.examCompleteToFinal, { count: 1, median: 28, p90: 28 });
    const stat = tat.series.find((s) => s.modality === 'CT' && s.priority === 'stat')!;
    assert.equal(stat.slaMinutes, 30);
    assert.deepEqual(stat.points, [{ at: '2026-03-02T00:00:00.000Z', count: 1, median: 28, p90: 28 }]);
    assert.deepEqual(tat.summary.radiologist.map((g) => g.key), ['(none)', 'READER^ROSA']);
    assert.equal(DEFAULT_SLA.find((r) => r.priority === 'stat' && r.modality === 'NM')!.minutes, 60);
  });

  await t.test('two claims at once: one wins, the other is told who holds it; the holder gives it back; an administrator releases', async () => {
    const uid = await uidOf('STAT-CT2');
    const results = await Promise.allSettled([reading.claim(uid, { id: 'user:ann', name: 'ann' }), reading.claim(uid, { id: 'user:bob', name: 'bob' })]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.match(lost.reason.message, /claimed by (ann|bob)/);
    const holder = (await reading.store.item(uid))!.claimedBy!;
    const other = holder === 'user:ann' ? { id: 'user:bob', name: 'bob' } : { id: 'user:ann', name: 'ann' };
    await assert.rejects(reading.unclaim(uid, other, false), /an administrator may release it/);
    const mine = await reading.worklist({ claim: 'others' }, other);
    assert.deepEqual(mine.map((e) => e.studyInstanceUid), [uid]);
    await reading.unclaim(uid, other, true);
    assert.equal((await reading.store.item(uid))!.claimedBy, null);
    // 20 claims at once by 20 radiologists: exactly one holds it.
    const many = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => reading.claim(uid, { id: `user:r${i}`, name: `r${i}` })));
    assert.equal(many.filter((r) => r.status === 'fulfilled').length, 1);
  });

  await t.test('REST: worklist, claim conflict 409, SLA table edit, breaches; a radiologist may not edit the SLA', async () => {
    const app = await createHttpServer(archive);
    after(() => app.close());
    const radiologist = (await archive.security.createApiKey({ name: 'rad', roles: ['radiologist'] })).key;
    const call = async (method: string, url: string, key?: string, body?: unknown) => {
      const r = await app.inject({ method: method as 'GET', url, headers: { ...(key ? { authorization: `Bearer ${key}` } : ta.authHeaders()), ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { payload: JSON.stringify(body) } : {}) });
      return { status: r.statusCode, json: r.headers['content-type']?.toString().includes('json') ? r.json() : undefined };
    };
    const list = await call('GET', '/api/reading/worklist?groupBy=modality', radiologist);
    assert.equal(list.status, 200);
    assert.ok(list.json.groups.some((g: any) => g.key === 'CT'));
    const uid = await uidOf('STAT-NM');
    assert.equal((await call('POST', `/api/reading/worklist/${uid}/claim`, radiologist)).status, 200);
    const taken = await call('POST', `/api/reading/worklist/${uid}/claim`);
    assert.equal(taken.status, 409);
    assert.match(taken.json.detail, /claimed by rad/);
    assert.equal((await call('POST', `/api/reading/worklist/${uid}/release`, radiologist)).status, 403);
    assert.equal((await call('POST', `/api/reading/worklist/${uid}/release`)).status, 200);
    const sla = await call('GET', '/api/reading/sla', radiologist);
    assert.equal(sla.json.rules.length, DEFAULT_SLA.length);
    assert.equal((await call('PUT', '/api/reading/sla', radiologist, { rules: [] })).status, 403);
    const edited = [...sla.json.rules.map((r: any) => ({ priority: r.priority, modality: r.modality, minutes: r.minutes, warningMinutes: r.warningMinutes })), { priority: 'stat', modality: '*', minutes: 45 }];
    const put = await call('PUT', '/api/reading/sla', undefined, { rules: edited });
    assert.equal(put.status, 200);
    assert.equal(put.json.rules.length, DEFAULT_SLA.length + 1);
    assert.equal((await call('PUT', '/api/reading/sla', undefined, { rules: [{ priority: 'soon', modality: 'CT', minutes: 1 }] })).status, 400);
    const breaches = await call('GET', '/api/reading/breaches?kind=breach');
    assert.equal(breaches.status, 200);
    assert.ok(breaches.json.alerts.items.length >= 4);
    const tat = await call('GET', `/api/reading/tat?from=2026-03-01&to=2026-03-03`, radiologist);
    assert.equal(tat.status, 200);
    assert.ok(tat.json.cases.length >= 7);
  });

  await t.test('critical results: notified to the ordering clinician, acknowledged; another not acknowledged in time escalates', async () => {
    at(5000);
    await receive(oru('STAT-CT2', 'F', 'Large pulmonary embolism.', 'R4', true));
    await receive(oru('RTN-DX', 'P', 'Tension pneumothorax.', 'R5', true));
    const { items } = await reading.store.criticals({}, { limit: 10, offset: 0 });
    const ct2 = items.find((c) => c.accessionNumber === 'STAT-CT2')!;
    const dx = items.find((c) => c.accessionNumber === 'RTN-DX')!;
    assert.equal(ct2.destination, 'oscar', 'ORDERER^OSCAR has his own destination');
    assert.equal(dx.destination, 'fallback', 'OTHER^OLGA has none: the default');
    assert.equal(ct2.acknowledgeBy, new Date(T0 + 5030 * MIN).toISOString());
    assert.deepEqual((await reading.store.notifications(`critical:${ct2.id}`)).map((n) => n.destination), ['oscar']);
    at(5010);
    const acked = await reading.acknowledge(ct2.id, 'oscar');
    assert.equal(acked.state, 'acknowledged');
    assert.equal(acked.acknowledgedAt, new Date(T0 + 5010 * MIN).toISOString());
    await assert.rejects(reading.acknowledge(ct2.id, 'oscar'), /was acknowledged by oscar/);
    at(5029);
    assert.equal((await reading.monitor()).escalations, 0);
    at(5031);
    assert.equal((await reading.monitor()).escalations, 1);
    assert.equal((await reading.monitor()).escalations, 0, 'escalated once');
    const escalated = (await reading.store.critical(dx.id))!;
    assert.equal(escalated.state, 'escalated');
    assert.equal(escalated.escalationDestination, 'fallback');
    assert.deepEqual((await reading.store.notifications(`critical-escalation:${dx.id}`)).map((n) => [n.destination, n.kind]), [['fallback', 'critical-escalation']]);
    assert.equal((await reading.store.critical(ct2.id))!.escalatedAt, null);
  });
});
