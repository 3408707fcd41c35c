// The integrity findings store's contract on SQLite and PostgreSQL (reconcile: one active finding per kind
// and subject whatever runs again, resolution only of what the check considered, false positives kept out
// of the way, states and their conflicts), and the quality notifier: a finding told to a test webhook and,
// through a test SMTP server (the smtp-server package as the site's mail server), by e-mail, each by one
// durable job, retried after the SMTP server first refuses with a 4xx; queueing twice queues nothing more.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { createTestArchive } from '../../test/support/archive.ts';
import { jobRunner } from '../app.ts';
import { sectionOf } from '../config/config.ts';
import { qualityConfig } from './config.ts';
import { qualityOf } from './module.ts';
import { QUALITY_NOTIFY_JOB } from './notifier.ts';
import { SqlIntegrityStore, type DetectedFinding } from './integrity/sql-integrity-store.ts';

const finding = (subject: string, extra: Partial<DetectedFinding> = {}): DetectedFinding => ({
  kind: 'orphan-study', subject, severity: 'major', summary: `study ${subject} matches no order`, studyInstanceUid: subject, seriesInstanceUid: null,
  sopInstanceUid: null, accessionNumber: null, patientId: 'P1', objects: {}, evidence: [{ attribute: 'AccessionNumber', expected: 'an order', actual: null }], ...extra,
});

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`integrity findings store on ${engine}`, async () => {
    const ta = await createTestArchive(engine);
    after(() => ta.cleanup());
    const store = new SqlIntegrityStore(ta.archive.database);
    const now = new Date('2026-01-01T00:00:00Z');
    const first = await store.reconcile('orphan-study', ['1.1', '1.2'], [finding('1.1'), finding('1.2')], 'test', now);
    assert.equal(first.opened.length, 2);
    // Found again (by another event, a sweep, another node): updated, never a second.
    const again = await store.reconcile('orphan-study', 'all', [finding('1.1', { severity: 'critical' }), finding('1.2')], 'sweep:1', now);
    assert.deepEqual([again.opened.length, again.redetected, again.resolved], [0, 2, 0]);
    assert.equal((await store.list({}, { limit: 10, offset: 0 })).total, 2);
    const [a] = (await store.list({ studyInstanceUid: '1.1' }, { limit: 10, offset: 0 })).items;
    assert.equal(a!.severity, 'critical');
    // A check that looked at 1.3 only resolves nothing else.
    assert.equal((await store.reconcile('orphan-study', ['1.3'], [], 'test', now)).resolved, 0);
    // A false positive stays out of the way while it holds; a resolved one comes back as a new finding.
    const b = (await store.list({ studyInstanceUid: '1.2' }, { limit: 10, offset: 0 })).items[0]!;
    await store.setState(b.id, 'false-positive', 'alice', now, 'known');
    await assert.rejects(store.setState(b.id, 'acknowledged', 'alice', now, null), /false-positive: it cannot become acknowledged/);
    assert.equal((await store.reconcile('orphan-study', ['1.2'], [finding('1.2')], 'test', now)).opened.length, 0);
    // No longer detected: 1.1 resolved, the false positive lets go of its key.
    const gone = await store.reconcile('orphan-study', 'all', [], 'sweep:2', now, { text: 'resolved by correction #4', correctionId: 4 });
    assert.equal(gone.resolved, 1);
    const resolved = (await store.finding(a!.id))!;
    assert.deepEqual([resolved.state, resolved.resolution, resolved.correctionId, resolved.stateChangedBy], ['resolved', 'resolved by correction #4', 4, 'integrity-monitor']);
    assert.equal((await store.finding(b.id))!.state, 'false-positive');
    const back = await store.reconcile('orphan-study', ['1.1', '1.2'], [finding('1.1'), finding('1.2')], 'test', now);
    assert.equal(back.opened.length, 2, 'each is a new finding once it holds again');
    assert.equal((await store.list({ state: ['open'] }, { limit: 10, offset: 0 })).total, 2);
    assert.deepEqual((await store.activeCounts()).map((c) => [c.kind, c.severity, c.state, c.n]), [['orphan-study', 'major', 'open', 2]]);
    await assert.rejects(store.setState(9999, 'resolved', 'alice', now, 'x'), /no integrity finding 9999/);
  });
}

test('the quality notifier: a finding to a webhook and by e-mail through SMTP, one job each, retried', { timeout: 120_000 }, async () => {
  const ta = await createTestArchive('sqlite+fs');
  after(() => ta.cleanup());
  const received: any[] = [];
  const web = createServer((req, res) => { let t = ''; req.on('data', (c) => (t += c)); req.on('end', () => { received.push({ headers: req.headers, body: JSON.parse(t) }); res.writeHead(204).end(); }); });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  after(() => new Promise<void>((r) => web.close(() => r())));
  const mails: { from: string; to: string[]; text: string }[] = [];
  let refusals = 1;
  const smtp = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS'], logger: false,
    onRcptTo(_address, _session, callback) {
      if (refusals-- > 0) return callback(Object.assign(new Error('mailbox busy, try later'), { responseCode: 451 }));
      callback();
    },
    onData(stream, session, callback) {
      let t = '';
      stream.on('data', (c) => (t += c));
      stream.on('end', () => { mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), text: t }); callback(); });
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
  after(() => new Promise<void>((r) => smtp.close(() => r())));
  const current = sectionOf(ta.archive.config, qualityConfig);
  (ta.archive.config.sections as Record<string, unknown>).quality = {
    ...current,
    notifications: {
      minSeverity: 'major',
      webhooks: [{ name: 'pacs-admin', url: `http://127.0.0.1:${(web.address() as AddressInfo).port}/hook`, maxAttempts: 3, timeoutSeconds: 5, subjects: ['integrity-finding'] }],
      email: { name: 'email', host: '127.0.0.1', port: (smtp.server.address() as AddressInfo).port, secure: false, requireTls: false, user: null, password: null,
        from: 'atrium@hospital.example', to: ['pacs-admin@hospital.example'], subjects: ['integrity-finding', 'dose-alert'], maxAttempts: 5, timeoutSeconds: 5 },
    },
  };
  const parts = qualityOf(ta.archive);
  const { opened } = await parts.integrityStore.reconcile('orphan-study', ['9.9'], [finding('9.9', { accessionNumber: 'A9' })], 'test', new Date());
  assert.equal(await parts.notifier.notify('integrity-finding', [opened[0]!.id]), 2);
  assert.equal(await parts.notifier.notify('integrity-finding', [opened[0]!.id]), 0, 'queued once');
  const runner = jobRunner(ta.archive, { pollIntervalMs: 20 });
  runner.start();
  after(() => runner.stop());
  const deadline = Date.now() + 60_000;
  for (;;) {
    const jobs = (await ta.archive.jobs.list({ type: QUALITY_NOTIFY_JOB }, { limit: 10, offset: 0 })).items;
    if (jobs.length === 2 && jobs.every((j) => j.state === 'succeeded')) break;
    // The refused attempt waits for its backoff: make it due now.
    for (const j of jobs) if (j.state === 'queued' && j.attempts > 0) await ta.archive.jobs.retry(j.id);
    if (Date.now() > deadline) throw new Error(JSON.stringify(jobs.map((j) => [j.state, j.attempts, j.lastError])));
    runner.wake();
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(received.length, 1);
  assert.deepEqual([received[0].body.type, received[0].body.kind, received[0].body.accessionNumber], ['integrity-finding', 'orphan-study', 'A9']);
  assert.equal(received[0].headers['idempotency-key'], `atrium-integrity-finding-${opened[0]!.id}-pacs-admin`);
  assert.equal(mails.length, 1, 'one e-mail, after the 451');
  assert.deepEqual([mails[0]!.from, mails[0]!.to], ['atrium@hospital.example', ['pacs-admin@hospital.example']]);
  assert.match(mails[0]!.text, /Subject: \[Atrium\] major integrity finding: orphan-study \(accession A9\)/);
  const jobs = (await ta.archive.jobs.list({ type: QUALITY_NOTIFY_JOB }, { limit: 10, offset: 0 })).items;
  assert.deepEqual(jobs.map((j) => j.attempts).sort(), [1, 2]);
});
