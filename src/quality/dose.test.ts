// Radiation dose monitoring against the running archive, on SQLite and on PostgreSQL: the six dose files
// sent by DCMTK storescu to Atrium's C-STORE SCP (a CT image of the Siemens study before its RDSR, and one
// after), extracted by the outbox handler into the dose tables and served by REST; a redelivered
// InstanceStored extracts nothing more and queues no second notification; a DRL set by REST (audited) that
// a study exceeds raises exactly one alert and one webhook POST to a test HTTP server, retried after the
// server first answers 503; CTDIvol alert value; CSV export; bad input refused.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { createTestArchive } from '../../test/support/archive.ts';
import { runTool, killAllChildren } from '../../test/support/dcmtk.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';
import { createHttpServer } from '../http/server.ts';
import { eventDispatcher, jobRunner } from '../app.ts';
import { sectionOf } from '../config/config.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { qualityConfig, type DoseSettings } from './config.ts';
import { DOSE_ALERT_WEBHOOK_JOB } from './dose/dose-alert-webhook.ts';
import { DOSE_RECHECK_JOB } from './dose/dose-recheck.ts';
import { QUALITY_NOTIFY_JOB, QualityNotifier } from './notifier.ts';
import { extractOnStore } from './dose/dose-service.ts';
import { SqlDoseStore } from './dose/sql-dose-store.ts';
import type { Job } from '../ports/job-queue.ts';

const DIR = new URL('../../../shared/testdata/dose/', import.meta.url);
const FILES = ['CT-RDSR-Siemens_Flash-TAP-SS.dcm', 'CT-RDSR-GEPixelMed.dcm', 'CT-ESR-GE_Optima.dcm', 'DX-RDSR-Canon_CXDI.dcm', 'MG-RDSR-Hologic_2D.dcm', 'RF-RDSR-Philips_Allura.dcm'];
const SIEMENS_STUDY = '1.3.6.1.4.1.5962.99.1.2662687737.2058515598.1471541535737.3.0';

/** A webhook receiver: answers `statuses` in turn (then 200) and keeps what it received. */
async function startWebhook(statuses: number[]) {
  const received: { headers: IncomingMessage['headers']; body: any; status: number }[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const status = statuses.shift() ?? 200;
      received.push({ headers: req.headers, body: JSON.parse(text), status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/dose`, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) test(`dose monitoring end to end on ${engine}`, { timeout: 300_000 }, async (t) => {
  const ta = await createTestArchive(engine);
  after(() => ta.cleanup());
  const archive = ta.archive;
  const webhook = await startWebhook([503]);
  after(() => webhook.close());
  const setDose = (change: Partial<DoseSettings>) => {
    const current = sectionOf(archive.config, qualityConfig);
    (archive.config.sections as Record<string, unknown>).quality = { ...current, dose: { ...current.dose, ...change } };
  };
  setDose({ webhooks: [{ name: 'physics', url: webhook.url, maxAttempts: 5, timeoutSeconds: 5 }] });
  const dicom = await startDicomService(archive, { port: 0 });
  after(async () => { await dicom.close(); killAllChildren(); });
  const app = await createHttpServer(archive);
  after(() => app.close());
  const api = async (method: string, url: string, body?: unknown) => {
    const r = await app.inject({ method: method as 'GET', url, headers: ta.authHeaders(body ? { 'content-type': 'application/json' } : {}), ...(body ? { payload: JSON.stringify(body) } : {}) });
    return { status: r.statusCode, json: r.headers['content-type']?.toString().includes('json') ? r.json() : undefined, text: r.body, headers: r.headers };
  };
  const dispatcher = eventDispatcher(archive);
  const dispatch = async () => { for (let i = 0; i < 100; i++) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) return; } };
  const runner = jobRunner(archive, { pollIntervalMs: 50 });
  const store = new SqlDoseStore(archive.database);
  const storescu = async (file: string) => {
    const r = await runTool('storescu', ['-aet', 'MODALITY', '-aec', archive.config.dicom.aeTitle, '127.0.0.1', String(dicom.port), file], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.output);
  };

  await t.test('a CT image before the RDSR, the six files by storescu, an image after: each dose file extracted once, the image ignored', async () => {
    // A CT image of the Siemens study stored first, another after the dose SRs: the report does not wait for, nor mind, the images.
    await archive.ingest.ingest(syntheticInstance({ studyInstanceUid: SIEMENS_STUDY, seriesInstanceUid: `${SIEMENS_STUDY}.77`, sopInstanceUid: `${SIEMENS_STUDY}.77.1`, modality: 'CT', patientId: '123456' }), { source: 'test' });
    await dispatch();
    // A DRL the Siemens study exceeds (its DLP total is 724.52 mGy.cm; the seeded example for abdomen is 781), set by REST.
    const created = await api('POST', '/api/quality/dose/reference-levels', { modality: 'CT', quantity: 'dlp-total', protocol: 'TAP', ageBand: 'adult', value: 700, unit: 'mGy.cm', source: 'site audit 2026' });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.example, false);
    for (const f of FILES) await storescu(new URL(f, DIR).pathname);
    await archive.ingest.ingest(syntheticInstance({ studyInstanceUid: SIEMENS_STUDY, seriesInstanceUid: `${SIEMENS_STUDY}.78`, sopInstanceUid: `${SIEMENS_STUDY}.78.1`, modality: 'CT', patientId: '123456' }), { source: 'test' });
    await dispatch();
    const reports = await api('GET', '/api/quality/dose/reports?limit=100');
    assert.equal(reports.status, 200);
    assert.equal(reports.json.total, 6, 'six dose reports (the Optima Enhanced SR carries TID 10011)');
    assert.deepEqual(reports.json.items.map((r: any) => r.modality).sort(), ['CT', 'CT', 'CT', 'DX', 'MG', 'RF']);
    const events = await api('GET', '/api/quality/dose/events?limit=1000');
    assert.equal(events.json.total, 4 + 2 + 6 + 1 + 2 + 3);
    const study = await api('GET', `/api/quality/dose/studies/${SIEMENS_STUDY}`);
    assert.equal(study.status, 200);
    assert.equal(study.json.totals.dlpTotal, 724.52);
    assert.equal(study.json.units.dlpTotal, 'mGy.cm');
    assert.deepEqual(study.json.events.map((e: any) => e.ctdivol), [0.14, 1.2, 3.61, 9.91]);
    assert.equal(study.json.reports[0].ageBand, 'adult');
    assert.equal((await api('GET', '/api/quality/dose/studies/1.2.3.4.5')).status, 404);
  });

  await t.test('filters: modality, station, protocol, date range, age band', async () => {
    const count = async (q: string) => (await api('GET', `/api/quality/dose/events?${q}`)).json.total;
    assert.equal(await count('modality=CT'), 12);
    assert.equal(await count('modality=mg'), 2);
    assert.equal(await count('station=CANONDaRt'), 1);
    assert.equal(await count('protocol=TAP'), 1);
    assert.equal(await count('from=2015-01-01&to=20160331'), 2 + 3, 'the MG (2015-03-22) and RF (2016-03-15) studies');
    assert.equal(await count('ageBand=adult'), 18);
    for (const bad of ['from=yesterday', 'ageBand=teen', 'limit=0', 'limit=5000']) assert.equal((await api('GET', `/api/quality/dose/events?${bad}`)).status, 400, bad);
  });

  await t.test('a redelivered InstanceStored extracts once and queues nothing more', async () => {
    const siemens = await store.reportBySopInstanceUid('1.3.6.1.4.1.5962.99.1.2662687737.2058515598.1471541535737.8.0');
    assert.ok(siemens);
    const jobsBefore = (await archive.jobs.list({ type: QUALITY_NOTIFY_JOB }, { limit: 100, offset: 0 })).total;
    const redelivered = {
      id: 999_999, type: 'InstanceStored' as const, createdAt: new Date().toISOString(), attempt: 2,
      payload: { sopInstanceUid: siemens.sopInstanceUid, sopClassUid: siemens.sopClassUid, studyInstanceUid: siemens.studyInstanceUid, seriesInstanceUid: siemens.seriesInstanceUid!, patientId: '123456', source: 'dimse:MODALITY' },
    };
    for (let i = 0; i < 2; i++) {
      const notifier = new QualityNotifier(archive.database, archive.jobs, () => sectionOf(archive.config, qualityConfig));
      const r = await extractOnStore({ store, notify: (ids) => notifier.notify('dose-alert', ids), log: archive.log, settings: () => sectionOf(archive.config, qualityConfig).dose,
        openInstance: (uid) => archive.retrieve.openInstance(uid) }, redelivered);
      assert.equal(r.outcome, 'already-extracted');
    }
    assert.equal((await api('GET', '/api/quality/dose/reports')).json.total, 6);
    assert.equal((await api('GET', `/api/quality/dose/events?study=${SIEMENS_STUDY}`)).json.total, 4);
    assert.equal((await archive.jobs.list({ type: QUALITY_NOTIFY_JOB }, { limit: 100, offset: 0 })).total, jobsBefore);
  });

  await t.test('the DRL breach: exactly one alert for the study, one webhook notification (after a 503, retried), a metric', async () => {
    const alerts = (await api('GET', `/api/quality/dose/alerts?study=${SIEMENS_STUDY}`)).json.items;
    assert.equal(alerts.length, 1, JSON.stringify(alerts));
    const [alert] = alerts;
    assert.deepEqual([alert.kind, alert.quantity, alert.value, alert.threshold, alert.unit, alert.state], ['drl-exceeded', 'dlp-total', 724.52, 700, 'mGy.cm', 'open']);
    // The seeded example for an adult chest radiograph (0.1 Gy.cm2) is exceeded by the Canon DX (0.107 Gy.cm2); nothing else alerts.
    const all = (await api('GET', '/api/quality/dose/alerts')).json;
    assert.equal(all.total, 2, JSON.stringify(all.items.map((a: any) => a.message)));
    assert.deepEqual(all.items.map((a: any) => a.modality).sort(), ['CT', 'DX']);
    runner.start();
    after(() => runner.stop());
    const deadline = Date.now() + 60_000;
    let jobs: Job[] = [];
    while (Date.now() < deadline) {
      jobs = (await archive.jobs.list({ type: QUALITY_NOTIFY_JOB }, { limit: 100, offset: 0 })).items;
      if (jobs.length === 2 && jobs.every((j) => j.state === 'succeeded')) break;
      if (jobs.some((j) => j.state === 'queued' && j.attempts > 0)) await archive.jobs.retry(jobs.find((j) => j.state === 'queued' && j.attempts > 0)!.id);
      runner.wake();
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(jobs.map((j) => j.state), ['succeeded', 'succeeded'], JSON.stringify(jobs.map((j) => [j.state, j.attempts, j.lastError])));
    const delivered = webhook.received.filter((r) => r.status === 200);
    assert.equal(delivered.length, 2, 'one notification per alert');
    assert.equal(webhook.received.length, 3, 'one attempt answered 503, retried');
    const ct = delivered.filter((r) => r.body.studyInstanceUid === SIEMENS_STUDY);
    assert.equal(ct.length, 1);
    assert.deepEqual([ct[0]!.body.type, ct[0]!.body.id, ct[0]!.body.value, ct[0]!.body.threshold], ['dose-alert', alert.id, 724.52, 700]);
    assert.equal(ct[0]!.headers['content-type'], 'application/json');
    const metrics = await app.inject({ url: '/metrics', headers: ta.authHeaders() });
    assert.match(metrics.body, /atrium_dose_alerts_open\{kind="drl-exceeded",modality="CT"\} 1/);
    assert.match(metrics.body, /atrium_dose_reports_extracted_total\{modality="CT"\} 3/);
    const ack = await api('POST', `/api/quality/dose/alerts/${alert.id}/acknowledge`);
    assert.equal(ack.json.state, 'acknowledged');
    assert.equal((await api('GET', '/api/quality/dose/alerts?state=open')).json.total, 1);
  });

  await t.test('CTDIvol above the alert value: a ctdivol-alert on the event (GE PixelMed, 222.59 mGy)', async () => {
    setDose({ ctdivolAlertMgy: 200, webhooks: [] });
    const bytes = readFileSync(new URL('CT-RDSR-GEPixelMed.dcm', DIR));
    // The same report under another SOP Instance UID of the same length (file meta and data set): a new report, compared with the new alert value.
    const original = '1.3.6.1.4.1.5962.99.1.3581082065.863539667.1365085747665.7.0';
    const text = bytes.toString('latin1').split(original).join(original.replace(/\.7\.0$/, '.7.9'));
    const stored = await archive.ingest.ingest([Buffer.from(text, 'latin1')], { source: 'test' });
    assert.equal(stored.status, 'stored', JSON.stringify(stored));
    await dispatch();
    const alerts = (await api('GET', '/api/quality/dose/alerts?kind=ctdivol-alert')).json.items;
    assert.equal(alerts.length, 1, JSON.stringify(alerts));
    assert.deepEqual([alerts[0].value, alerts[0].threshold, alerts[0].unit], [222.59, 200, 'mGy']);
  });

  await t.test('CSV export of the events table, with units in the header', async () => {
    const csv = await api('GET', '/api/quality/dose/events.csv?modality=CT');
    assert.equal(csv.status, 200);
    assert.match(String(csv.headers['content-type']), /^text\/csv/);
    const lines = csv.text.trimEnd().split('\r\n');
    const header = lines[0]!.split(',');
    assert.ok(header.includes('ctdivol_mGy') && header.includes('dlp_mGy.cm') && header.includes('dap_Gy.cm2'));
    const total = (await api('GET', '/api/quality/dose/events?modality=CT')).json.total;
    assert.equal(lines.length - 1, total);
    const tap = lines.find((l) => l.includes(',TAP,'))!.split(',');
    assert.equal(tap[header.indexOf('ctdivol_mGy')], '9.91');
    assert.equal(tap[header.indexOf('dlp_mGy.cm')], '708.2');
  });

  await t.test('reference levels: the seeded examples, edit audited, bad input refused', async () => {
    const levels = (await api('GET', '/api/quality/dose/reference-levels')).json.items;
    assert.ok(levels.filter((l: any) => l.example).length >= 8, 'seeded examples, marked as such');
    assert.ok(levels.every((l: any) => l.source.length > 0));
    const site = levels.find((l: any) => !l.example);
    const put = await api('PUT', `/api/quality/dose/reference-levels/${site.id}`, { ...site, value: 800 });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.json.value, 800);
    const trail = await archive.audit.search({ action: 'update' }, { limit: 50, offset: 0 });
    const objects = trail.items.flatMap((r) => r.objects).filter((o) => o.type === 'dose-reference-level');
    assert.deepEqual(objects.map((o) => o.change).sort(), ['created', 'updated']);
    assert.deepEqual(objects.find((o) => o.change === 'updated')!.attributes, ['value']);
    for (const bad of [{ quantity: 'dlp-total', value: 1 }, { modality: 'CT', quantity: 'dose', value: 1 }, { modality: 'CT', quantity: 'dlp-total', value: -1 },
      { modality: 'CT', quantity: 'dlp-total', value: 1, unit: 'Gy.cm' }, { modality: 'MG', quantity: 'agd', value: 2, breastThicknessMinMm: 60, breastThicknessMaxMm: 40 }]) {
      assert.equal((await api('POST', '/api/quality/dose/reference-levels', bad)).status, 400, JSON.stringify(bad));
    }
    assert.equal((await api('PUT', '/api/quality/dose/reference-levels/99999', { modality: 'CT', quantity: 'dlp-total', value: 1 })).status, 404);
    assert.equal((await api('DELETE', `/api/quality/dose/reference-levels/${site.id}`)).status, 204);
    assert.equal((await api('DELETE', `/api/quality/dose/reference-levels/${site.id}`)).status, 404);
  });
  /** Waits until every re-check job queued so far has succeeded (a runner of its own: the breach test's stopped with it). */
  const recheckRunner = jobRunner(archive, { pollIntervalMs: 50 });
  const rechecked = async () => {
    await recheckRunner.start();
    const deadline = Date.now() + 60_000;
    for (;;) {
      const jobs = (await archive.jobs.list({ type: DOSE_RECHECK_JOB }, { limit: 100, offset: 0 })).items;
      if (jobs.length && jobs.every((j) => j.state === 'succeeded')) { await recheckRunner.stop(); return jobs; }
      assert.ok(Date.now() < deadline, JSON.stringify(jobs.map((j) => [j.state, j.lastError])));
      recheckRunner.wake();
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  await t.test('a cumulative report sent again under a new SOP Instance UID replaces the earlier one: each irradiation event counted once', async () => {
    const before = (await api('GET', `/api/quality/dose/studies/${SIEMENS_STUDY}`)).json;
    assert.equal(before.reports.length, 1);
    const reportsBefore = (await api('GET', '/api/quality/dose/reports?limit=100')).json.total;
    const bytes = readFileSync(new URL('CT-RDSR-Siemens_Flash-TAP-SS.dcm', DIR));
    const original = before.reports[0].sopInstanceUid as string;
    const resent = original.replace(/.$/, (d) => String((Number(d) + 1) % 10));
    const stored = await archive.ingest.ingest([Buffer.from(bytes.toString('latin1').split(original).join(resent), 'latin1')], { source: 'test' });
    assert.equal(stored.status, 'stored', JSON.stringify(stored));
    await dispatch();
    const after = (await api('GET', `/api/quality/dose/studies/${SIEMENS_STUDY}`)).json;
    assert.deepEqual(after.reports.map((r: any) => [r.sopInstanceUid, r.supersededBy]), [[original, after.reports[1].id], [resent, null]]);
    assert.equal(after.totals.dlpTotal, 724.52, 'not 1449.04: the resend replaces, it does not add');
    assert.equal(after.totals.eventCount, 4);
    assert.deepEqual(after.events.map((e: any) => e.ctdivol), [0.14, 1.2, 3.61, 9.91]);
    assert.equal((await api('GET', '/api/quality/dose/reports?limit=100')).json.total, reportsBefore, 'one current report for the study, as before');
    assert.equal((await api('GET', `/api/quality/dose/events?study=${SIEMENS_STUDY}`)).json.total, 4);
    // The earlier copy arriving again later (an older partial report) is superseded at once and raises nothing.
    const older = original.replace(/.$/, (d) => String((Number(d) + 2) % 10));
    await archive.ingest.ingest([Buffer.from(bytes.toString('latin1').split(original).join(older), 'latin1')], { source: 'test' });
    await dispatch();
    const third = (await api('GET', `/api/quality/dose/studies/${SIEMENS_STUDY}`)).json;
    assert.equal(third.totals.dlpTotal, 724.52);
    assert.equal(third.reports.filter((r: any) => r.supersededBy === null).length, 1);
  });

  await t.test('a reference level changed re-checks the stored reports: a lowered one alerts, a raised one withdraws its alert', async () => {
    const current = (await api('GET', `/api/quality/dose/studies/${SIEMENS_STUDY}`)).json.reports.find((r: any) => r.supersededBy === null);
    const openOf = async () => (await api('GET', `/api/quality/dose/alerts?study=${SIEMENS_STUDY}&state=open`)).json.items.filter((a: any) => a.reportId === current.id);
    assert.deepEqual(await openOf(), []);
    const level = (await api('POST', '/api/quality/dose/reference-levels', { modality: 'CT', quantity: 'dlp-total', protocol: 'TAP', ageBand: 'adult', value: 500, unit: 'mGy.cm', source: 'site audit 2027' })).json;
    await rechecked();
    const raised = await openOf();
    assert.deepEqual(raised.map((a: any) => [a.quantity, a.value, a.threshold, a.referenceLevelId]), [['dlp-total', 724.52, 500, level.id]]);
    // The job again changes nothing (alert keys).
    await archive.jobs.enqueue(DOSE_RECHECK_JOB, { modality: 'CT', reason: 'test' });
    await rechecked();
    assert.equal((await openOf()).length, 1);
    assert.equal((await api('PUT', `/api/quality/dose/reference-levels/${level.id}`, { ...level, value: 2000 })).status, 200);
    await rechecked();
    assert.deepEqual(await openOf(), []);
    const withdrawn = (await api('GET', `/api/quality/dose/alerts?study=${SIEMENS_STUDY}&state=withdrawn`)).json.items.find((a: any) => a.id === raised[0].id);
    assert.match(withdrawn.withdrawnReason, new RegExp(`DRL #${level.id} updated`));
  });
});
