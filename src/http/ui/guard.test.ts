/**
 * Signed in without the role a page needs is "Not permitted", never the sign-in page: a researcher (whose
 * only grant opens no console page) opening every page of the console (read from pages.ts, so a page added
 * later is covered), straight after signing in and by a link from the sign-in page; the REST API behind
 * the Orders page answers 403 (signed in, not allowed), not 401. And the reverse: no session at all is the
 * sign-in page, which then leads back to the page asked for.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startConsoleFixture, assertAccessible } from '../../../test/support/console.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
before(async () => { fixture = await startConsoleFixture([]); });
after(async () => { await fixture?.close(); });

/** The console's pages as pages.ts declares them (path, title, action); `:name` segments get a sample value. */
const PAGES = [...readFileSync(new URL('./console/pages.ts', import.meta.url), 'utf8')
  .matchAll(/\{ path: '([^']+)', title: '([^']+)', action: '([^']+)'/g)]
  .map(([, path, title, action]) => ({ path: path!.replace(/:uid\b/, '1.2.3.4').replace(/:[a-z]+/g, '1'), title: title!, action: action! }));

test('pages.ts lists the console pages this test visits', () => {
  assert.ok(PAGES.length >= 12, `${PAGES.length} pages read from pages.ts`);
  assert.ok(PAGES.some((p) => p.path === '/admin/orders' && p.action === 'order:read'));
});

test('a researcher opening each page: the page title and "Not permitted", not the sign-in page', async () => {
  const { page, errors, shot } = await fixture.as(['researcher']);
  // /admin itself: no page is open to the role, which is said (rather than sending them to one refused page).
  assert.equal(new URL(page.url()).pathname, '/admin');
  await page.getByText('may use no page of the console').waitFor();
  for (const p of PAGES) {
    await page.goto(`${fixture.base}${p.path}`);
    await page.getByRole('heading', { name: p.title, exact: true }).waitFor();
    await page.getByRole('alert').getByText('Not permitted', { exact: true }).waitFor();
    assert.match(await page.getByRole('alert').innerText(), new RegExp(`researcher.*may not use this page: it needs ${p.action.replace(':', '\\:')}`));
    assert.equal(new URL(page.url()).pathname, p.path, `${p.path} stays where it is`);
    assert.equal(await page.locator('form#login').count(), 0, `${p.path} is not the sign-in page`);
  }
  await page.goto(`${fixture.base}/admin/orders`);
  await page.getByRole('alert').getByText('Not permitted', { exact: true }).waitFor();
  await assertAccessible(page, 'the Not permitted state');
  await shot('not-permitted');
  // The API behind the page: signed in (not 401), not allowed (403).
  const refused = await page.request.get(`${fixture.base}/api/ris/orders`);
  assert.equal(refused.status(), 403);
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Orders' }).count(), 0);
  assert.deepEqual(errors, []);
});

test('no session: the sign-in page, and after signing in as a researcher the page asked for, not permitted', async () => {
  const username = 'researcher-direct';
  const password = 'correct horse battery staple';
  const created = await fetch(`${fixture.base}/api/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password, roles: ['researcher'] }) });
  assert.equal(created.status, 201, await created.text());
  const context = await fixture.browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    const page = await context.newPage();
    await page.goto(`${fixture.base}/admin/orders`);
    await page.waitForURL((url) => url.pathname === '/login');
    assert.equal(new URL(page.url()).searchParams.get('next'), '/admin/orders');
    await page.locator('form#login').getByLabel('User name').fill(username);
    await page.locator('form#login').getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.pathname === '/admin/orders');
    await page.getByRole('heading', { name: 'Orders', exact: true }).waitFor();
    await page.getByRole('alert').getByText('Not permitted', { exact: true }).waitFor();
  } finally {
    await context.close();
  }
});

test('a referring clinician: Studies opens, Orders and HL7 messages are not permitted', async () => {
  const { page, errors } = await fixture.as(['referring-clinician']);
  await page.waitForURL((url) => url.pathname === '/admin/studies');
  await page.getByRole('heading', { name: 'Studies', exact: true }).waitFor();
  for (const [path, title] of [['/admin/orders', 'Orders'], ['/admin/hl7-messages', 'HL7 messages']] as const) {
    await page.goto(`${fixture.base}${path}`);
    await page.getByRole('heading', { name: title, exact: true }).waitFor();
    await page.getByRole('alert').getByText('Not permitted', { exact: true }).waitFor();
    assert.equal(new URL(page.url()).pathname, path);
  }
  assert.deepEqual(errors, []);
});
