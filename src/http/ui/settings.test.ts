/**
 * The Settings page in headless Chromium over PostgreSQL and S3 (so that real secrets are configured):
 * the configuration in force by section, every secret hidden (its value nowhere in the page), a search,
 * a technologist refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;

before(async () => { fixture = await startConsoleFixture([], { engines: 'postgres+s3' }); });
after(async () => await fixture?.close());

test('settings: the configuration in force, secrets hidden, searchable', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/settings`);
  const dicom = page.getByRole('region', { name: 'dicom' });
  await dicom.waitFor();
  assert.match(await dicom.innerText(), new RegExp(`aeTitle\\s+${fixture.t.archive.config.dicom.aeTitle}`));
  assert.match(await page.locator('main').innerText(), /Modules installed:[\s\S]*archive[\s\S]*dicom/);

  const text = await page.locator('main').innerText();
  const html = await page.content();
  const config = fixture.t.archive.config as unknown as { s3?: { secretAccessKey?: string; accessKeyId?: string }; blobs?: { s3?: { secretAccessKey?: string } } };
  const secrets = [JSON.stringify(config).match(/"secretAccessKey":"([^"]+)"/)?.[1], JSON.stringify(config).match(/"accessKeyId":"([^"]+)"/)?.[1]];
  assert.ok(secrets.every((s) => s && s.length > 3), 'the test archive has S3 credentials configured');
  for (const secret of secrets) assert.ok(!html.includes(secret!), `the secret ${secret!.slice(0, 2)}… is not in the page`);
  assert.match(text, /secretAccessKey\s+hidden/);
  await assertAccessible(page, 'the settings');
  await shot('settings');

  await page.getByLabel('Find a setting').fill('aetitle');
  await page.getByRole('region', { name: 'index' }).waitFor({ state: 'detached' });
  await dicom.waitFor();
  assert.deepEqual(errors, []);
});

test('settings: a technologist has no Settings page and the server refuses them', async () => {
  const { page, errors } = await fixture.as(['technologist']);
  await page.waitForURL(/\/admin\/studies/);
  assert.doesNotMatch(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Settings/);
  await page.goto(`${fixture.base}/admin/settings`);
  await page.getByText('Not permitted').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/api/settings')).status), 403);
  assert.deepEqual(errors, []);
});
