/**
 * A person without a session is sent to the sign-in page; signing in there (a real form in headless
 * Chromium) opens the viewer, whose data requests then carry the session cookie.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import type { TestArchive } from '../../../test/support/archive.ts';
import { startBrowserFixture } from '../../../test/support/browser.ts';

const anonymous = { 'x-atrium-test-anonymous': '1' };

let fixture: Awaited<ReturnType<typeof startBrowserFixture>>;
let t: TestArchive;
let base: string;
let browser: Browser;

before(async () => {
  fixture = await startBrowserFixture(['CT_small.dcm']);
  ({ t, base, browser } = fixture);
});

after(async () => await fixture?.close());

test('pages without a session redirect to the sign-in page; scripts and the sign-in page itself do not', async () => {
  for (const path of ['/', '/admin', '/viewer?StudyInstanceUIDs=1.2.3']) {
    const res = await fetch(`${base}${path}`, { headers: anonymous, redirect: 'manual' });
    assert.equal(res.status, 302, path);
    assert.equal(res.headers.get('location'), `/login?next=${encodeURIComponent(path)}`);
  }
  assert.equal((await fetch(`${base}/login`, { headers: anonymous })).status, 200);
  assert.equal((await fetch(`${base}/app-config.js`, { headers: anonymous })).status, 200);
  assert.equal((await fetch(`${base}/dicom-web/studies`, { headers: anonymous })).status, 401);
  assert.deepEqual(await (await fetch(`${base}/api/setup`, { headers: anonymous })).json(), { needed: true });
});

test('signing in through the form opens the viewer, which then lists the study', { timeout: 120_000 }, async () => {
  await t.archive.security.createUser({ username: 'reader', password: 'correct horse battery', roles: ['radiologist'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(base);
  assert.match(page.url(), /\/login\?next=%2F$/);
  await page.locator('#login input[name=username]').fill('reader');
  await page.locator('#login input[name=password]').fill('wrong password!');
  await page.locator('#login button').click();
  await page.locator('#message').filter({ hasText: /.+/ }).waitFor();
  await page.locator('#login input[name=password]').fill('correct horse battery');
  await page.locator('#login button').click();
  await page.waitForURL(`${base}/`);
  await page.getByText(/CompressedSamples/).first().waitFor({ timeout: 60_000 });
  assert.ok((await context.cookies()).some((c) => c.name === 'atrium_session' && c.httpOnly));
  await context.close();
});
