/**
 * The Dashboard in headless Chromium: the key figures and charts show what the archive holds and received
 * today, the health of each part, failures and quarantine linked to their pages; a technologist is
 * refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;

before(async () => {
  fixture = await startConsoleFixture(['CT_small.dcm', 'MR_small.dcm', 'MR_truncated.dcm']);
  // A job that failed for good, as the dashboard counts them.
  const job = await fixture.t.archive.jobs.enqueue('dicom.send', { destination: 'NOWHERE', studyInstanceUid: '1.2.3' }, { maxAttempts: 1 });
  const [claimed] = await fixture.t.archive.jobs.claim('test-worker', ['dicom.send']);
  assert.equal(claimed?.id, job.id);
  assert.equal((await fixture.t.archive.jobs.fail(job.id, 'test-worker', 'cannot connect to NOWHERE', { retryable: false })).state, 'failed');
});
after(async () => await fixture?.close());

test('dashboard: figures, health, charts of what was received today, failures linked', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin`);
  await page.waitForURL(/\/admin\/dashboard/);
  const kpis = page.getByRole('region', { name: 'Key figures' });
  await kpis.getByText('studies').waitFor();
  const figures = await kpis.innerText();
  assert.match(figures, /2\s*studies/);
  assert.match(figures, /2\s*instances/);
  assert.match(figures, /1\s*in quarantine/);
  assert.match(figures, /1\s*failed jobs/);

  const health = page.getByRole('region', { name: 'Service health' });
  assert.match(await health.innerText(), /ok\s*index/);
  assert.match(await health.innerText(), /degraded\s*jobs/, 'a failed job degrades the jobs part');

  // Every chart is drawn (uPlot's canvas) and its numbers are in its data table.
  const charts = page.locator('figure.chart');
  assert.equal(await charts.count(), 6);
  for (let i = 0; i < 6; i++) await charts.nth(i).locator('canvas').first().waitFor();
  const today = new Date().toISOString().slice(0, 10);
  const perDay = await page.getByRole('table', { name: 'Instances received per day (data)' }).innerText();
  assert.match(perDay, new RegExp(`${today}[^\\n]*\\t2`), 'the two instances received today');
  const modalities = await page.getByRole('table', { name: 'Instances per modality (data)' }).innerText();
  assert.match(modalities, /CT\t1/);
  assert.match(modalities, /MR\t1/);

  const failures = page.getByRole('region', { name: 'Recent job failures' });
  assert.match(await failures.innerText(), /cannot connect to NOWHERE/);
  await assertAccessible(page, 'the dashboard');
  await shot('dashboard');
  await kpis.getByRole('link', { name: /in quarantine/ }).click();
  await page.waitForURL(/\/admin\/quarantine/);
  await page.getByText('MR_truncated.dcm').waitFor();
  assert.deepEqual(errors, []);
});

test('dashboard: dark mode at tablet width draws the charts in the dark palette', async () => {
  const { page, errors, shot } = await fixture.asAdministrator({ width: 820, height: 1180 });
  await page.goto(`${fixture.base}/admin/dashboard`);
  await page.getByLabel('Theme').selectOption('dark');
  await page.locator('figure.chart canvas').first().waitFor();
  const overflow = await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth - (globalThis as any).document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px)`);
  await assertAccessible(page, 'the dashboard in dark mode');
  await shot('dashboard-tablet-dark');
  assert.deepEqual(errors, []);
});

test('dashboard: a radiologist is not shown it, and the server refuses its data', async () => {
  const { page, errors } = await fixture.as(['radiologist']);
  await page.waitForURL(/\/admin\/studies/);
  assert.doesNotMatch(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Dashboard/);
  await page.goto(`${fixture.base}/admin/dashboard`);
  await page.getByText('Not permitted').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/api/dashboard')).status), 403);
  assert.deepEqual(errors, []);
});

test('the menu keeps every page in sight at laptop width, sections together', async () => {
  const { page, errors, shot } = await fixture.asAdministrator({ width: 1280, height: 800 });
  await page.goto(`${fixture.base}/admin/dashboard`);
  const menu = page.getByRole('navigation', { name: 'Main' });
  await menu.getByRole('link', { name: 'Settings' }).waitFor();
  const links = menu.getByRole('link');
  const count = await links.count();
  assert.ok(count >= 18, `an administrator sees every page (${count} links)`);
  for (let i = 0; i < count; i++) {
    const box = await links.nth(i).boundingBox();
    const name = await links.nth(i).innerText();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 1280 && box.y + box.height <= 800, `${name} is in the window: ${JSON.stringify(box)}`);
  }
  const sections = await menu.locator('li').evaluateAll((items) => items.map((li) => li.getAttribute('data-section')).filter((s) => s !== null));
  const order = sections.filter((s, i) => s !== sections[i - 1]);
  assert.deepEqual(order, [...new Set(sections)], 'each section once, its pages together');
  await shot('menu-1280');
  assert.deepEqual(errors, []);
});
