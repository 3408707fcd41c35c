/** The built-in UI in headless Chromium: the study list shows what was stored, a study opens, quarantine lists. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { authHeaders } from '../../../test/support/archive.ts';
import { startBrowserFixture } from '../../../test/support/browser.ts';


let fixture: Awaited<ReturnType<typeof startBrowserFixture>>;
let base: string;
let browser: Browser;

before(async () => {
  fixture = await startBrowserFixture(['CT_small.dcm', 'MR_truncated.dcm']);
  ({ base, browser } = fixture);
});

after(async () => await fixture?.close());

test('studies, a study and the quarantine in the browser', async () => {
  const page = await browser.newPage({ extraHTTPHeaders: authHeaders() });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/admin`);
  await page.getByText('CompressedSamples^CT1').waitFor();
  assert.match(await page.locator('#stats').innerText(), /1 studies · 1 instances/);

  await page.locator('input[name=patientName]').fill('nobody*');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('Nothing here yet.').waitFor();
  await page.locator('input[name=patientName]').fill('compressed*');
  await page.getByRole('button', { name: 'Search' }).click();
  if (process.env.ATRIUM_UI_SCREENSHOT) await page.screenshot({ path: process.env.ATRIUM_UI_SCREENSHOT });
  await page.locator('main table a').first().click();
  await page.getByText('download').waitFor();
  assert.match(await page.locator('main').innerText(), /1\.3\.6\.1\.4\.1\.5962/);

  await page.getByRole('link', { name: 'Quarantine' }).click();
  await page.getByText('MR_truncated.dcm').waitFor();
  assert.match(await page.locator('main').innerText(), /truncated/);
  assert.deepEqual(errors, []);
});
