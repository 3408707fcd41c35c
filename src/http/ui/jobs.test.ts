/**
 * The Jobs page in headless Chromium with a job runner and real peers: a send to a DCMTK storescp seen
 * going from queued to done without reloading, a send to a closed port retrying with its error shown,
 * retried now and cancelled from the page, a failed job's details and retry, filters and counts, the job
 * number form (client check and the server's refusal), the error state, a technologist refused, tablet.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startConsoleFixture, assertAccessible } from '../../../test/support/console.ts';
import { freePort, killAllChildren, startStorescp, type Storescp } from '../../../test/support/dcmtk.ts';
import { SEND_JOB } from '../../exchange/dicom-jobs.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
let storescp: Storescp;
let dir: string;
let ct: string;
let mr: string;
/** The send of the first test, done. */
let doneId: number;

before(async () => {
  fixture = await startConsoleFixture(['CT_small.dcm', 'MR_small.dcm'], { dicom: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-ui-jobs-'));
  storescp = await startStorescp(dir, { aeTitle: 'STORESCP' });
  for (const [ae, port] of [['STORESCP', storescp.port], ['CLOSED', await freePort()]] as const) {
    const res = await fetch(`${fixture.base}/api/dicom/peers/${ae}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ host: '127.0.0.1', port }) });
    assert.equal(res.status, 200);
  }
  ct = (await api('GET', '/api/studies?modality=CT')).body.items[0].studyInstanceUid;
  mr = (await api('GET', '/api/studies?modality=MR')).body.items[0].studyInstanceUid;
});
after(async () => {
  await fixture?.close();
  await storescp?.stop();
  killAllChildren();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function api(method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${fixture.base}${route}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Polls the REST API until the job satisfies `until` (the runner works in the background). */
async function jobUntil(id: number, until: (job: any) => boolean, what: string): Promise<any> {
  for (let i = 0; i < 300; i++) {
    const job = (await api('GET', `/api/jobs/${id}`)).body;
    if (until(job)) return job;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} never became ${what}`);
}

const row = (page: import('playwright-core').Page, id: number) => page.getByRole('row').filter({ has: page.getByRole('button', { name: `Details of job ${id}`, exact: true }) });

test('jobs: a send to storescp is seen going from queued to done, live', async () => {
  // The runner is paused so that the page sees the job queued first.
  await fixture.runner!.stop();
  const sent = await api('POST', '/api/dicom/peers/STORESCP/send', { studyInstanceUid: ct });
  assert.equal(sent.status, 202);
  const id: number = sent.body.id;
  doneId = id;
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/jobs`);
  await row(page, id).getByText('Queued', { exact: true }).waitFor();
  await row(page, id).getByText('STORESCP').waitFor();
  assert.match(await row(page, id).innerText(), /test administrator/);
  await page.getByRole('status').getByText('Live: updating every 2 s').waitFor();
  await page.getByRole('group', { name: 'State' }).getByRole('button', { name: 'Queued 1' }).waitFor();
  await shot('jobs-queued');

  await fixture.runner!.start();
  // No reload: the page polls while something is in progress.
  await row(page, id).getByText('Succeeded', { exact: true }).waitFor();
  await row(page, id).getByText('1 sent').waitFor();
  await page.getByRole('status').getByText('Nothing in progress').waitFor();
  const job = (await api('GET', `/api/jobs/${id}`)).body;
  assert.equal(job.state, 'succeeded');
  assert.deepEqual(job.result, { completed: 1, warning: 0 });
  assert.equal((await readdir(dir)).length, 1, 'storescp received the instance');
  assert.deepEqual(errors, []);
});

test('jobs: a send to a closed port shows its error, is retried now and cancelled from the page', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/jobs`);
  await page.getByRole('status').getByText('Nothing in progress').waitFor();
  const sent = await api('POST', '/api/dicom/peers/CLOSED/send', { studyInstanceUid: mr });
  const id: number = sent.body.id;
  await page.getByRole('button', { name: 'Refresh' }).click();
  const r = row(page, id);
  // The first attempt fails; the job waits for its next one with the error shown.
  await r.getByText('Retrying', { exact: true }).waitFor();
  await r.locator('.job-error').getByText(/cannot connect to CLOSED at 127\.0\.0\.1:\d+/).waitFor();
  await r.getByText('attempt 1 of 5 failed').waitFor();
  await shot('jobs-retrying');

  await r.getByRole('button', { name: `Retry now job ${id}` }).click();
  await page.getByRole('status').getByText(`Job ${id} is due now`).waitFor();
  await jobUntil(id, (j) => j.attempts >= 2 && j.state === 'queued', 'tried twice');
  await r.getByText('attempt 2 of 5 failed').waitFor();

  await r.getByRole('button', { name: `Cancel job ${id}` }).click();
  const confirm = page.getByRole('dialog', { name: `Cancel job ${id}` });
  await confirm.getByText('The send to CLOSED stops').waitFor();
  await shot('jobs-cancel-dialog');
  await confirm.getByRole('button', { name: 'Keep it' }).click();
  assert.equal((await api('GET', `/api/jobs/${id}`)).body.state, 'queued', 'kept');
  await r.getByRole('button', { name: `Cancel job ${id}` }).click();
  await confirm.getByRole('button', { name: 'Cancel the job' }).click();
  await page.getByRole('status').getByText(`Job ${id} cancelled`).waitFor();
  assert.equal((await api('GET', `/api/jobs/${id}`)).body.state, 'cancelled');
  await r.getByText('Cancelled', { exact: true }).waitFor();

  // A cancelled job is retried with a fresh set of attempts.
  await r.getByRole('button', { name: `Retry job ${id}` }).click();
  await page.getByRole('status').getByText(`Job ${id} queued again`).waitFor();
  const again = await jobUntil(id, (j) => j.state !== 'cancelled', 'queued again');
  assert.ok(['queued', 'running'].includes(again.state));
  assert.equal((await api('POST', `/api/jobs/${id}/cancel`)).body.state, 'cancelled');
  assert.deepEqual(errors, []);
});

test('jobs: a failed job, its details, retry from the details', async () => {
  // Queued as another part of Atrium would (a forwarding rule): one attempt only.
  const queued = await fixture.t.archive.jobs.enqueue(SEND_JOB, {
    destination: 'CLOSED', studyInstanceUid: ct, requestedBy: { kind: 'user', id: 'pat', displayName: 'Pat Example' }, requestedThrough: 'rest',
  }, { maxAttempts: 1 });
  fixture.runner!.wake();
  const failed = await jobUntil(queued.id, (j) => j.state === 'failed', 'failed');

  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/jobs`);
  await page.getByRole('group', { name: 'State' }).getByRole('button', { name: 'Failed 1' }).click();
  await page.waitForURL(/state=failed/);
  const r = row(page, queued.id);
  await r.locator('.job-error').getByText(/cannot connect to CLOSED/).waitFor();
  await r.getByText('after 1 of 1 attempt').waitFor();
  assert.equal(await page.locator('tbody tr').count(), 1, 'only the failed job');
  await shot('jobs-failed');

  await r.getByRole('button', { name: `Details of job ${queued.id}` }).click();
  await page.waitForURL(new RegExp(`job=${queued.id}`));
  const dialog = page.getByRole('dialog', { name: `Job ${queued.id}` });
  const props = dialog.locator('dl');
  await props.getByText('Pat Example').waitFor();
  const text = await props.innerText();
  assert.match(text, /Destination\s+CLOSED/);
  assert.match(text, new RegExp(`What\\s+study ${ct.replace(/\./g, '\\.')}`));
  assert.match(text, /Requested by\s+Pat Example \(user pat\) through rest/);
  assert.match(text, /cannot connect to CLOSED/);
  await assertAccessible(page, 'jobs-detail');
  await shot('jobs-detail');
  await dialog.getByRole('button', { name: 'Retry' }).click();
  await page.getByRole('status').getByText(`Job ${queued.id} queued again`).waitFor();
  const after = await jobUntil(queued.id, (j) => j.state === 'failed' && j.updatedAt !== failed.updatedAt, 'failed again');
  assert.match(after.lastError, /cannot connect to CLOSED/);
  await dialog.getByRole('button', { name: 'Close' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.doesNotMatch(page.url(), /job=/);
  assert.deepEqual(errors, []);
});

test('jobs: filters by type, the job number form, the list of all', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/jobs`);
  await page.locator('tbody tr').first().waitFor();
  await page.getByLabel('Type').selectOption('dicom.retrieve');
  await page.waitForURL(/type=dicom\.retrieve/);
  await page.getByText('No job matches.').waitFor();
  await page.getByRole('button', { name: 'Show all jobs' }).click();
  await page.waitForURL((url) => !url.search.includes('type='));
  await page.getByLabel('Type').selectOption('dicom.send');
  await page.getByRole('group', { name: 'State' }).getByRole('button', { name: 'Succeeded 1' }).waitFor();
  const total = (await api('GET', '/api/jobs?type=dicom.send')).body.total;
  assert.equal(await page.locator('tbody tr').count(), total);

  const form = page.getByRole('form', { name: 'Open a job by number' });
  await form.getByLabel('Job number').fill('twelve');
  await form.getByRole('button', { name: 'Open' }).click();
  await form.getByText('A job number, such as 42').waitFor();
  await form.getByLabel('Job number').fill('999999');
  await form.getByRole('button', { name: 'Open' }).click();
  await form.getByRole('alert').getByText('no job 999999').waitFor();
  await shot('jobs-form-refused');
  await form.getByLabel('Job number').fill(String(doneId));
  await form.getByRole('button', { name: 'Open' }).click();
  await page.getByRole('dialog', { name: `Job ${doneId}` }).getByText('STORESCP').first().waitFor();
  await page.keyboard.press('Escape');

  await page.goto(`${fixture.base}/admin/jobs`);
  await page.locator('tbody tr').nth(2).waitFor();
  await assertAccessible(page, 'jobs');
  await shot('jobs');
  assert.deepEqual(errors, []);
});

test('jobs: the error state, and no page for a technologist (nor its actions)', async () => {
  const admin = await fixture.asAdministrator();
  await admin.page.route('**/api/jobs?*', (route) => route.fulfill({ status: 503, contentType: 'application/problem+json', body: JSON.stringify({ title: 'unavailable', status: 503, detail: 'the index database is not answering' }) }));
  await admin.page.goto(`${fixture.base}/admin/jobs`);
  await admin.page.getByRole('alert').getByText('the index database is not answering').waitFor();
  await admin.shot('jobs-error');
  assert.deepEqual(admin.errors, []);

  const { page, errors } = await fixture.as(['technologist']);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Studies' }).waitFor();
  assert.doesNotMatch(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Jobs/);
  await page.goto(`${fixture.base}/admin/jobs`);
  await page.getByText('Not permitted').waitFor();
  const status = await page.evaluate(async () => [
    (await fetch('/api/jobs')).status, (await fetch('/api/jobs/1/cancel', { method: 'POST' })).status, (await fetch('/api/jobs/1/retry', { method: 'POST' })).status,
  ]);
  assert.deepEqual(status, [403, 403, 403]);
  assert.deepEqual(errors, []);
});

test('jobs: tablet width in dark mode', async () => {
  const { page, errors, shot } = await fixture.asAdministrator({ width: 820, height: 1180 });
  await page.goto(`${fixture.base}/admin/jobs`);
  await page.locator('tbody tr').first().waitFor();
  await page.getByLabel('Theme').selectOption('dark');
  const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
  assert.ok(overflow <= 0, `no sideways scrolling of the page at tablet width (${overflow}px)`);
  await shot('jobs-tablet-dark');
  assert.deepEqual(errors, []);
});
