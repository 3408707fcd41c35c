/**
 * The console's shell and Studies page in headless Chromium: the menu follows the role, the list
 * filters and pages, a study opens, bulk delete asks first and deletes, a technologist has no Users page
 * and is refused it by address.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;

before(async () => { fixture = await startConsoleFixture(['CT_small.dcm', 'MR_small.dcm', 'MR_truncated.dcm']); });
after(async () => await fixture?.close());

test('studies: today is empty, all dates lists, filters, opens a study', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/studies`);
  await page.getByText('No study dated today.').waitFor();
  await page.getByRole('button', { name: 'Show all dates' }).click();
  await page.getByText('CompressedSamples^CT1'.split('^').join(', ')).waitFor();
  assert.match(await page.locator('.page-header').innerText(), /2 studies/);
  await assertAccessible(page, 'the study list');
  await shot('studies');

  await page.getByLabel('Patient name').fill('nobody*');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('No study matches.').waitFor();
  await page.getByLabel('Patient name').fill('compressed*');
  await page.getByLabel('Modality').fill('CT');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/patientName=compressed.*modality=CT|modality=CT.*patientName=compressed/);
  await page.locator('.page-header').getByText('1 study').waitFor();
  assert.equal(await page.locator('tbody tr').count(), 1);
  await page.getByRole('textbox', { name: 'Study date' }).fill('2024-01-01');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('A date (YYYYMMDD) or a range').waitFor();

  await page.getByRole('link', { name: 'CompressedSamples, CT1' }).click();
  await page.getByText('download').first().waitFor();
  assert.match(await page.locator('main').innerText(), /1\.3\.6\.1\.4\.1\.5962/);
  assert.match(await page.locator('main').innerText(), /Series 1/);
  await assertAccessible(page, 'a study');
  await shot('study');
  assert.deepEqual(errors, []);
});

test('studies: bulk delete asks for confirmation, then deletes', async () => {
  const { page, errors } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/studies?range=all&modality=MR`);
  await page.getByRole('link', { name: 'CompressedSamples, MR1' }).waitFor();
  assert.equal(await page.locator('tbody tr').count(), 1);
  await page.getByLabel('Select all rows').click();
  await page.getByText('1 selected').waitFor();
  await page.getByRole('button', { name: 'Delete…' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText('cannot be undone').waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await (await fetch(`${fixture.base}/api/studies?modality=MR`)).json() as { total: number }).total, 1, 'cancel deleted nothing');
  await page.getByRole('button', { name: 'Delete…' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete 1 study' }).click();
  await page.getByText('1 study deleted').waitFor();
  assert.equal((await (await fetch(`${fixture.base}/api/studies?modality=MR`)).json() as { total: number }).total, 0);
  assert.deepEqual(errors, []);
});

test('a technologist sees no administration pages and is refused them by address', async () => {
  const { page, errors, shot } = await fixture.as(['technologist']);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Studies' }).waitFor();
  const menu = await page.getByRole('navigation', { name: 'Main' }).innerText();
  assert.doesNotMatch(menu, /Users|Peers|Audit|Settings|Dashboard/);
  assert.match(page.url(), /\/admin\/studies/, 'the first page a technologist may use');
  await page.goto(`${fixture.base}/admin/users`);
  await page.getByText('Not permitted').waitFor();
  assert.match(await page.locator('main').innerText(), /needs admin:users/);
  await shot('refused-technologist');
  const users = await page.evaluate(async () => (await fetch('/api/users')).status);
  assert.equal(users, 403, 'and the server refuses the data as it does for any client');
  assert.deepEqual(errors, []);
});

test('the console works at tablet width and in dark mode', async () => {
  const { page, errors, shot } = await fixture.asAdministrator({ width: 820, height: 1180 });
  await page.goto(`${fixture.base}/admin/studies?range=all`);
  await page.locator('tbody tr').first().waitFor();
  await page.getByLabel('Theme').selectOption('dark');
  assert.equal(await page.evaluate<string | undefined>('document.documentElement.dataset.theme'), 'dark');
  const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
  assert.ok(overflow <= 0, `no sideways scrolling of the page at tablet width (${overflow}px)`);
  await assertAccessible(page, 'the study list in dark mode');
  await shot('studies-tablet-dark');
  assert.deepEqual(errors, []);
});
