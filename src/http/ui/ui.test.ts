/** The built-in UI in headless Chromium: the study list shows what was stored, a study opens, quarantine lists. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { Browser } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { authHeaders, createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { launchBrowser } from '../../../test/support/browser.ts';
import { createHttpServer } from '../server.ts';

const TESTDATA = new URL('../../../../shared/testdata/dicom/', import.meta.url);

let t: TestArchive;
let http: FastifyInstance;
let base: string;
let browser: Browser;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  for (const name of ['CT_small.dcm', 'MR_truncated.dcm']) {
    await t.archive.ingest.ingest([await readFile(new URL(name, TESTDATA))], { source: 'test', originalName: name });
  }
  http = await createHttpServer(t.archive);
  base = await http.listen({ host: '127.0.0.1', port: 0 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await http?.close();
  await t?.cleanup();
});

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
