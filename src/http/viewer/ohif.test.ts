/**
 * OHIF, served by Atrium, in headless Chromium: the study list shows an uploaded study, the viewer opens
 * it and draws the image (the screenshot of the viewport is not blank), with nothing refused by its
 * Content-Security-Policy.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import type { Browser } from 'playwright-core';
import { authHeaders } from '../../../test/support/archive.ts';
import { startBrowserFixture } from '../../../test/support/browser.ts';


let fixture: Awaited<ReturnType<typeof startBrowserFixture>>;
let base: string;
let browser: Browser;
let studyInstanceUid: string;

before(async () => {
  fixture = await startBrowserFixture(['CT_small.dcm']);
  ({ base, browser } = fixture);
  const [result] = fixture.stored;
  assert.ok(result.status === 'stored');
  studyInstanceUid = result.studyInstanceUid;
});

after(async () => await fixture?.close());

test('the OHIF study list shows the stored study, and the viewer draws its image', { timeout: 180_000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, extraHTTPHeaders: authHeaders() });
  const failed: string[] = [];
  page.on('response', (r) => { if (r.url().includes('/dicom-web/') && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  // The viewer works under its Content-Security-Policy: nothing it needs is refused.
  const refused: string[] = [];
  page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) refused.push(m.text()); });
  await page.goto(base);
  // OHIF shows names as "Family, Given".
  await page.getByText(/CompressedSamples/).first().waitFor({ timeout: 60_000 });
  if (process.env.ATRIUM_UI_SCREENSHOT) await page.screenshot({ path: `${process.env.ATRIUM_UI_SCREENSHOT}-list.png` });

  await page.goto(`${base}/viewer?StudyInstanceUIDs=${studyInstanceUid}`);
  const canvas = page.locator('canvas').first();
  await canvas.waitFor({ timeout: 60_000 });
  // The image arrives after the canvas: wait until the viewport shows more than a flat background.
  let stdev = 0;
  for (let i = 0; i < 60 && stdev < 5; i++) {
    await page.waitForTimeout(500);
    const shot = await canvas.screenshot();
    const stats = await sharp(shot).stats();
    stdev = Math.max(...stats.channels.map((c) => c.stdev));
  }
  if (process.env.ATRIUM_UI_SCREENSHOT) await page.screenshot({ path: `${process.env.ATRIUM_UI_SCREENSHOT}-viewer.png` });
  assert.ok(stdev >= 5, `the viewport stayed blank (pixel standard deviation ${stdev.toFixed(2)})`);
  assert.deepEqual(failed, []);
  assert.deepEqual(refused, []);
});
