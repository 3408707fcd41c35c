// A critical result end to end on a running archive (SQLite): Debian's mllp_send (python3-hl7) sends the
// ORM^O01 and, after the exam is completed, an ORU^R01 whose OBX-8 is AA (critically abnormal) to Atrium's
// HL7 MLLP listener; the outbox delivers CriticalResult to the reading module, which notifies the ordering
// physician's configured webhook through a durable job (a test HTTP server receives it once); the
// acknowledgement over REST is recorded, and no escalation follows.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestArchive } from '../../test/support/archive.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { mllpSend } from '../../test/support/mllp-send.ts';
import { eventDispatcher, jobRunner } from '../app.ts';
import { sectionOf } from '../config/config.ts';
import { createHttpServer } from '../http/server.ts';
import { risOf, startHl7Listeners } from '../ris/module.ts';
import { readingConfig } from './config.ts';
import { readingOf } from './module.ts';

test('critical result by mllp_send: OBX-8 AA -> the ordering physician notified by webhook -> acknowledged over REST', { timeout: 120_000 }, async () => {
  const ta = await createTestArchive('sqlite+fs');
  after(() => ta.cleanup());
  const archive = ta.archive;
  const received: { path: string; body: any }[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => { received.push({ path: req.url ?? '', body: JSON.parse(text) }); res.writeHead(200).end(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  after(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  (archive.config.sections as Record<string, unknown>).reading = {
    ...sectionOf(archive.config, readingConfig),
    webhooks: [{ name: 'pager-oscar', url: `${url}/oscar`, maxAttempts: 3, timeoutSeconds: 5 }, { name: 'chief', url: `${url}/chief`, maxAttempts: 3, timeoutSeconds: 5 }],
    critical: { acknowledgeMinutes: 30, defaultDestination: null, escalationDestination: 'chief', clinicians: [{ clinician: 'ORDERER^OSCAR', destination: 'pager-oscar', escalation: null }] },
  };
  const [listener] = await startHl7Listeners(archive, { port: 0, tls: null });
  after(() => listener.close());
  const app = await createHttpServer(archive);
  after(() => app.close());
  const dispatcher = eventDispatcher(archive);
  const dispatch = async () => { for (let i = 0; i < 100; i++) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) return; } };
  const runner = jobRunner(archive, { pollIntervalMs: 20 });
  await runner.start();
  after(() => runner.stop());

  const pid = 'PID|1||CRIT-P1^^^HOSP^MR||DOE^JOHN||19600101|M';
  const acks1 = await mllpSend(listener.port, [hl7([pid, seg('PV1', { 1: '1', 2: 'O', 8: '1234^REFERRER^RITA' }),
    'ORC|NW|PL-C1|FL-C1||||^^^^^S|||||5678^ORDERER^OSCAR',
    seg('OBR', { 1: '1', 2: 'PL-C1', 3: 'FL-C1', 4: 'CTCHEST^CT chest^LOCAL', 18: 'CRIT1', 20: 'SPS-C1', 24: 'CT', 27: '^^^^^S' })], { type: 'ORM^O01', controlId: 'CRIT-ORM' })]);
  assert.deepEqual(acks1.map((a) => a.code), ['AA']);
  await risOf(archive).orders.recordStepStatus({ source: { kind: 'mpps', ref: '1.2.3' }, principal: { kind: 'dicom-ae', id: 'CT1', displayName: 'CT1' }, interface: 'dimse' }, { accessionNumber: 'CRIT1', status: 'COMPLETED' });
  await dispatch();
  assert.equal((await readingOf(archive).worklist({}, null)).length, 1);
  const acks2 = await mllpSend(listener.port, [hl7([pid, 'ORC|RE|PL-C1|FL-C1',
    seg('OBR', { 1: '1', 2: 'PL-C1', 3: 'FL-C1', 4: 'CTCHEST^CT chest^LOCAL', 18: 'CRIT1', 25: 'P', 32: 'RAD&READER&ROSA' }),
    'OBX|1|TX|REPORT||Large central pulmonary embolism.|||AA|||P'], { type: 'ORU^R01', controlId: 'CRIT-ORU' })]);
  assert.deepEqual(acks2.map((a) => a.code), ['AA']);
  await dispatch();
  const deadline = Date.now() + 20_000;
  while (!received.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(received.length, 1);
  assert.equal(received[0].path, '/oscar');
  assert.equal(received[0].body.type, 'critical-result');
  assert.equal(received[0].body.accessionNumber, 'CRIT1');
  assert.equal(received[0].body.clinician, 'ORDERER^OSCAR');
  const id = received[0].body.criticalResultId;
  const ack = await app.inject({ method: 'POST', url: `/api/reading/critical-results/${id}/acknowledge`, headers: ta.authHeaders({ 'content-type': 'application/json' }), payload: '{}' });
  assert.equal(ack.statusCode, 200, ack.body);
  assert.equal(ack.json().state, 'acknowledged');
  assert.equal((await app.inject({ method: 'POST', url: `/api/reading/critical-results/${id}/acknowledge`, headers: ta.authHeaders({ 'content-type': 'application/json' }), payload: '{}' })).statusCode, 409);
  // Past the acknowledgement time: acknowledged, so nothing escalates.
  assert.equal((await readingOf(archive).monitor(new Date(Date.now() + 31 * 60_000))).escalations, 0);
  const listed = await app.inject({ method: 'GET', url: '/api/reading/critical-results?accessionNumber=CRIT1', headers: ta.authHeaders() });
  assert.deepEqual(listed.json().items.map((c: any) => [c.state, c.destination, c.reportStatus]), [['acknowledged', 'pager-oscar', 'P']]);
});
