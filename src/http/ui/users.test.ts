/**
 * The Users and API keys page in headless Chromium: a user created through its form (the browser's
 * checks, then the server's refusal of a short password) signs in in another browser, gets other roles
 * and a new password, is deleted after a confirmation; an API key is shown once, works against /api/me,
 * is revoked and stops working; a technologist has no such page. Every result is checked through REST too.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { startConsoleFixture, assertAccessible } from '../../../test/support/console.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;

before(async () => { fixture = await startConsoleFixture([]); });
after(async () => await fixture?.close());

const anonymous = { 'x-atrium-test-anonymous': '1' };

/** A JSON answer of the REST API, typed by the caller. */
async function json<T = any>(res: Response | Promise<Response>): Promise<T> {
  return await (await res).json() as T;
}

/** How far the page scrolls sideways (in the page: a string, for this file is type-checked without the DOM). */
const sidewaysScroll = 'document.documentElement.scrollWidth - document.documentElement.clientWidth';

/** Signs in through the sign-in form in a new browser context (no test key): the page, or the form's message. */
async function signIn(username: string, password: string): Promise<{ page: Page; ok: boolean; message: string; errors: string[] }> {
  const context = await fixture.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${fixture.base}/login?next=/admin`);
  const form = page.locator('form#login');
  await form.getByLabel('User name').fill(username);
  await form.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const ok = await Promise.race([
    page.waitForURL(/\/admin/).then(() => true),
    page.locator('#message').filter({ hasText: /.+/ }).waitFor().then(() => false),
  ]);
  return { page, ok, errors, message: ok ? '' : await page.locator('#message').innerText() };
}

async function usersOf(): Promise<{ id: number; username: string; roles: string[]; displayName: string | null; dicomPersonName: string | null; lastLoginAt: string | null }[]> {
  return (await json(fetch(`${fixture.base}/api/users`))).items;
}

test('users: create (browser checks, the server refuses a short password), sign in as them, change roles, new password, delete', { timeout: 120_000 }, async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/users`);
  await page.getByRole('heading', { name: 'Users and API keys', level: 1 }).waitFor();
  await page.getByText('No local user yet.').waitFor();
  await shot('users-empty');

  await page.getByRole('button', { name: 'New user…' }).click();
  const dialog = page.getByRole('dialog', { name: 'New user' });
  // Nothing filled: the browser-side checks, tied to their fields.
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await dialog.getByText('Enter a user name').waitFor();
  assert.equal(await dialog.getByLabel('User name').getAttribute('aria-invalid'), 'true');
  await dialog.getByText('Choose at least one role').waitFor();

  await dialog.getByLabel('User name').fill('Alice.Martin');
  await dialog.getByLabel('Full name').fill('Alice Martin');
  await dialog.getByLabel(/^Password( \*)?$/).fill('short');
  await dialog.getByLabel('Password again').fill('shorter');
  await dialog.getByRole('checkbox', { name: /^referring-clinician/ }).check();
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await dialog.getByText('The two passwords differ').waitFor();
  await dialog.getByText('A referring clinician sees the studies referred under this name').waitFor();
  await dialog.getByLabel('DICOM person name').fill('MARTIN^ALICE');
  await dialog.getByLabel('Password again').fill('short');
  await dialog.getByRole('button', { name: 'Create user' }).click();
  // The server's rule, in the server's words.
  await dialog.getByRole('alert').getByText('a password has at least 12 characters').waitFor();
  await shot('users-create-refused');
  assert.deepEqual(await usersOf(), [], 'nothing was created');

  await dialog.getByLabel(/^Password( \*)?$/).fill('correct horse battery staple');
  await dialog.getByLabel('Password again').fill('correct horse battery staple');
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await page.getByText('User alice.martin created').waitFor();
  const table = page.getByRole('table', { name: 'Users' });
  const row = table.getByRole('row').filter({ hasText: 'alice.martin' });
  await row.waitFor();
  assert.match(await row.innerText(), /Alice Martin[\s\S]*referring-clinician[\s\S]*MARTIN, ALICE[\s\S]*active[\s\S]*never/);
  let [alice] = await usersOf();
  assert.equal(alice.username, 'alice.martin');
  assert.deepEqual(alice.roles, ['referring-clinician']);
  assert.equal(alice.dicomPersonName, 'MARTIN^ALICE');

  // Alice signs in in a browser of her own: a referring clinician gets the studies, not this page.
  const asAlice = await signIn('alice.martin', 'correct horse battery staple');
  assert.ok(asAlice.ok, asAlice.message);
  const aliceMenu = asAlice.page.getByRole('navigation', { name: 'Main' });
  await aliceMenu.getByRole('link', { name: 'Studies' }).waitFor();
  assert.doesNotMatch(await aliceMenu.innerText(), /Users/);
  assert.deepEqual(asAlice.errors, []);
  await asAlice.page.context().close();
  await page.reload();
  await row.waitFor();
  assert.doesNotMatch(await row.innerText(), /never/, 'the last sign-in is shown');
  await assertAccessible(page, 'users');
  await shot('users');

  // Other roles (PATCH).
  await page.getByRole('button', { name: 'Edit alice.martin' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit alice.martin' });
  await edit.getByRole('checkbox', { name: /^referring-clinician/ }).uncheck();
  await edit.getByRole('button', { name: 'Save' }).click();
  await edit.getByText('Choose at least one role').waitFor();
  await edit.getByRole('checkbox', { name: /^radiologist/ }).check();
  await edit.getByRole('checkbox', { name: /^administrator/ }).check();
  await shot('users-edit');
  await edit.getByRole('button', { name: 'Save' }).click();
  await page.getByText('User alice.martin saved').waitFor();
  await row.getByText('administrator').waitFor();
  [alice] = await usersOf();
  assert.deepEqual(alice.roles, ['administrator', 'radiologist']);

  // A new password (PUT): the old one stops working, the new one signs in, to this page now.
  await page.getByRole('button', { name: 'Password of alice.martin' }).click();
  const pw = page.getByRole('dialog', { name: 'New password for alice.martin' });
  await pw.getByLabel(/^New password( \*)?$/).fill('tiny');
  await pw.getByLabel('New password again').fill('tiny');
  await pw.getByRole('button', { name: 'Set the password' }).click();
  await pw.getByRole('alert').getByText('a password has at least 12 characters').waitFor();
  await pw.getByLabel(/^New password( \*)?$/).fill('another long passphrase');
  await pw.getByLabel('New password again').fill('another long passphrase');
  await pw.getByRole('button', { name: 'Set the password' }).click();
  await page.getByText('Password of alice.martin changed').waitFor();
  const login = (password: string) => fetch(`${fixture.base}/api/login`, {
    method: 'POST', headers: { ...anonymous, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice.martin', password }),
  });
  assert.equal((await login('correct horse battery staple')).status, 401, 'the old password no longer works');
  const again = await signIn('alice.martin', 'another long passphrase');
  assert.ok(again.ok, again.message);
  await again.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users and API keys' }).waitFor();
  await again.page.goto(`${fixture.base}/admin/users`);
  // Signed in as herself: she may not delete her own account nor drop her administrator role.
  assert.equal(await again.page.getByRole('button', { name: 'Delete alice.martin' }).isDisabled(), true);
  await again.page.getByRole('button', { name: 'Edit alice.martin' }).click();
  const self = again.page.getByRole('dialog', { name: 'Edit alice.martin' });
  await self.getByRole('checkbox', { name: /^administrator/ }).uncheck();
  await self.getByRole('button', { name: 'Save' }).click();
  await self.getByText('Keep administrator on your own account').waitFor();
  assert.deepEqual(again.errors, []);
  await again.page.context().close();

  // Delete, after a confirmation (Cancel first: nothing happens).
  await page.getByRole('button', { name: 'Delete alice.martin' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete user' });
  await confirm.getByText('This cannot be undone').waitFor();
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await usersOf()).length, 1, 'cancel deleted nothing');
  await page.getByRole('button', { name: 'Delete alice.martin' }).click();
  await confirm.getByRole('button', { name: 'Delete alice.martin' }).click();
  await page.getByText('User alice.martin deleted').waitFor();
  await page.getByText('No local user yet.').waitFor();
  assert.deepEqual(await usersOf(), []);
  assert.equal((await login('another long passphrase')).status, 401);
  assert.deepEqual(errors, []);
});

test('API keys: created with roles, prefixes and expiry, the key is shown once and works against /api/me, revoked it no longer works', { timeout: 120_000 }, async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: fixture.base });
  await page.goto(`${fixture.base}/admin/users`);
  const keys = page.getByRole('table', { name: 'API keys' });
  // The key this console is signed in with is listed and marked.
  await keys.getByRole('row').filter({ hasText: 'test administrator' }).getByText('this session').waitFor();

  await page.getByRole('button', { name: 'New API key…' }).click();
  const dialog = page.getByRole('dialog', { name: 'New API key' });
  await dialog.getByRole('button', { name: 'Create the key' }).click();
  await dialog.getByText('Name the key after who uses it').waitFor();
  await dialog.getByText('Choose at least one role').waitFor();
  await dialog.getByLabel('Name').fill('ai-node-1');
  await dialog.getByRole('checkbox', { name: /^radiologist/ }).check();
  await dialog.getByLabel('Route prefixes').fill('dicom-web/');
  await dialog.getByLabel('Expires').selectOption('date');
  await dialog.getByRole('button', { name: 'Create the key' }).click();
  await dialog.getByText('Choose the day the key stops working').waitFor();
  await dialog.getByLabel('Expires').selectOption('30');
  await dialog.getByRole('button', { name: 'Create the key' }).click();
  await dialog.getByRole('alert').getByText('route prefix "dicom-web/" must start with /').waitFor();
  await shot('api-key-create-refused');
  await dialog.getByLabel('Route prefixes').fill('/dicom-web/, /api/studies');
  await dialog.getByRole('button', { name: 'Create the key' }).click();

  const shown = page.getByRole('dialog', { name: 'Copy the new API key now' });
  await shown.getByText('This is the only time the key is shown.').waitFor();
  const key = await shown.getByLabel('API key for ai-node-1').inputValue();
  assert.match(key, /^atr_[0-9a-f]{12}_/);
  await shown.getByRole('button', { name: 'Copy' }).click();
  await shown.getByRole('button', { name: 'Copied' }).waitFor();
  assert.equal(await page.evaluate('navigator.clipboard.readText()'), key);
  await assertAccessible(page, 'api-key-shown');
  await shot('api-key-shown');

  const me = async () => fetch(`${fixture.base}/api/me`, { headers: { authorization: `Bearer ${key}` } });
  const res = await me();
  assert.equal(res.status, 200);
  const body = await json(res);
  assert.equal(body.kind, 'api-key');
  assert.equal(body.name, 'ai-node-1');
  assert.deepEqual(body.roles, ['radiologist']);
  assert.deepEqual(body.routePrefixes, ['/dicom-web/', '/api/studies']);
  // Its route prefixes hold: the studies list is in, the patients list (allowed to its role) is not.
  assert.equal((await fetch(`${fixture.base}/api/studies`, { headers: { authorization: `Bearer ${key}` } })).status, 200);
  assert.equal((await fetch(`${fixture.base}/api/patients`, { headers: { authorization: `Bearer ${key}` } })).status, 403);

  await shown.getByRole('button', { name: 'I have stored the key' }).click();
  assert.doesNotMatch(await page.locator('body').innerText(), new RegExp(key), 'the secret is gone from the page');
  const row = keys.getByRole('row').filter({ hasText: 'ai-node-1' });
  await row.waitFor();
  const keyId = key.slice(4, 16);
  assert.match(await row.innerText(), new RegExp(`${keyId}[\\s\\S]*radiologist[\\s\\S]*/dicom-web/ /api/studies[\\s\\S]*active[\\s\\S]*test administrator`));
  const listed = (await json(fetch(`${fixture.base}/api/api-keys`))).items.find((k: { keyId: string }) => k.keyId === keyId);
  assert.equal(listed.createdBy, 'test administrator');
  const days = (Date.parse(listed.expiresAt) - Date.parse(listed.createdAt)) / 86_400_000;
  assert.ok(days > 29 && days < 31, `expires in 30 days (${days})`);
  await assertAccessible(page, 'api-keys');
  await shot('api-keys');

  // Revoke, after a confirmation.
  await page.getByRole('button', { name: 'Revoke ai-node-1' }).click();
  const confirm = page.getByRole('dialog', { name: 'Revoke API key' });
  await confirm.getByText('cannot be restored').waitFor();
  await shot('api-key-revoke-confirm');
  await confirm.getByRole('button', { name: 'Revoke ai-node-1' }).click();
  await page.getByText('API key ai-node-1 revoked').waitFor();
  await row.waitFor({ state: 'detached' });
  assert.equal((await me()).status, 401, 'a revoked key is refused');
  await page.getByLabel(/Show revoked keys/).check();
  await row.getByText('revoked', { exact: true }).waitFor();
  assert.deepEqual(errors, []);
});

test('users: a technologist has no Users page in the menu, is refused it by address, and by the server', async () => {
  const { page, errors, shot } = await fixture.as(['technologist']);
  const menu = page.getByRole('navigation', { name: 'Main' });
  await menu.getByRole('link', { name: 'Studies' }).waitFor();
  assert.doesNotMatch(await menu.innerText(), /Users/);
  await page.goto(`${fixture.base}/admin/users`);
  await page.getByText('Not permitted').waitFor();
  assert.match(await page.locator('main').innerText(), /needs admin:users/);
  await shot('users-refused');
  assert.equal(await page.evaluate(async () => (await fetch('/api/users')).status), 403);
  assert.equal(await page.evaluate(async () => (await fetch('/api/api-keys', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"x","roles":["administrator"]}' })).status), 403);
  assert.deepEqual(errors, []);
});

test('users: at tablet width, in dark mode, the page does not scroll sideways', async () => {
  const { page, errors, shot } = await fixture.asAdministrator({ width: 820, height: 1180 });
  await page.goto(`${fixture.base}/admin/users`);
  await page.getByRole('table', { name: 'API keys' }).getByRole('row').nth(1).waitFor();
  await page.getByLabel('Theme').selectOption('dark');
  const overflow = await page.evaluate<number>(sidewaysScroll);
  assert.ok(overflow <= 0, `no sideways scrolling of the page (${overflow}px)`);
  await page.getByRole('button', { name: 'New API key…' }).click();
  await page.getByRole('dialog', { name: 'New API key' }).getByLabel('Name').waitFor();
  await shot('users-tablet-dark');
  assert.deepEqual(errors, []);
});
