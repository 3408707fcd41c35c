/**
 * The Peers page in headless Chromium against real peers: Atrium's own AE, a configured (read-only) peer,
 * adding peers through the validated form, C-ECHO to a DCMTK storescp (ok) and to a closed port (the
 * failure's detail), edit, removal with confirmation, a refusal by the server shown in the form, last
 * contact as the server records it, the error state, a technologist refused, tablet width.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startConsoleFixture, assertAccessible } from '../../../test/support/console.ts';
import { freePort, killAllChildren, startStorescp, type Storescp } from '../../../test/support/dcmtk.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
let storescp: Storescp;
let dir: string;
let closedPort: number;
const CONFIGURED = { aeTitle: 'CONFIGURED', host: '127.0.0.1', port: 11112, description: 'from dicom.peers' };

before(async () => {
  fixture = await startConsoleFixture([], { dicom: true });
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-ui-peers-'));
  storescp = await startStorescp(dir, { aeTitle: 'STORESCP' });
  closedPort = await freePort();
  // As `atrium serve` does at start with the configured peers.
  await fixture.t.archive.peers.syncFromConfig([CONFIGURED]);
});
after(async () => {
  await fixture?.close();
  await storescp?.stop();
  killAllChildren();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function peer(ae: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${fixture.base}/api/dicom/peers/${encodeURIComponent(ae)}`);
  return { status: res.status, body: await res.json() };
}

test('peers: own AE, a read-only configured peer, add with validation, echo ok and failed', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/peers`);
  const own = page.getByRole('region', { name: 'This archive' });
  await own.getByText(fixture.t.archive.config.dicom.aeTitle, { exact: true }).waitFor();
  const configured = page.getByRole('row').filter({ hasText: 'CONFIGURED' });
  await configured.getByText('Read-only').waitFor();
  assert.equal(await configured.getByRole('button', { name: /Edit|Remove/ }).count(), 0, 'no edit of a configured peer');

  await page.getByRole('button', { name: 'Add a peer…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add a DICOM peer' });
  await dialog.getByLabel('AE title').fill('BAD\\AE');
  await dialog.getByLabel('Port').fill('70000');
  await dialog.getByRole('button', { name: 'Add the peer' }).click();
  await dialog.getByText('must not contain a backslash').waitFor();
  await dialog.getByText('Give the host name or IP address').waitFor();
  await dialog.getByText('The port is a whole number from 1 to 65535').waitFor();
  assert.equal(await dialog.getByLabel('AE title').getAttribute('aria-invalid'), 'true');
  await shot('peers-form-invalid');
  await dialog.getByLabel('AE title').fill('CONFIGURED');
  await dialog.getByRole('button', { name: 'Add the peer' }).click();
  await dialog.getByText('A peer CONFIGURED exists already (in the configuration)').waitFor();
  assert.equal((await peer('BAD\\AE')).status, 404, 'nothing was sent');

  await dialog.getByLabel('AE title').fill('STORESCP');
  await dialog.getByLabel('Host').fill('127.0.0.1');
  await dialog.getByLabel('Port').fill(String(storescp.port));
  await dialog.getByLabel('Description').fill('DCMTK storescp');
  await dialog.getByLabel('Storage commitment').uncheck();
  await dialog.getByLabel('Retrieve by get (C-GET)').uncheck();
  await dialog.getByRole('button', { name: 'Add the peer' }).click();
  await page.getByRole('status').getByText('Peer STORESCP added').waitFor();
  const added = await peer('STORESCP');
  assert.equal(added.status, 200);
  assert.equal(added.body.port, storescp.port);
  assert.equal(added.body.tls, false);
  assert.equal(added.body.source, 'api');
  assert.deepEqual(added.body.operations, ['echo', 'store', 'find', 'move']);
  assert.equal(added.body.description, 'DCMTK storescp');

  await page.getByRole('button', { name: 'Add a peer…' }).click();
  await dialog.getByLabel('AE title').fill('CLOSED');
  await dialog.getByLabel('Host').fill('127.0.0.1');
  await dialog.getByLabel('Port').fill(String(closedPort));
  await dialog.getByLabel('Connect with TLS').check();
  await dialog.getByLabel('Connect with TLS').uncheck();
  await dialog.getByRole('button', { name: 'Add the peer' }).click();
  await page.getByRole('status').getByText('Peer CLOSED added').waitFor();
  assert.equal((await peer('CLOSED')).body.port, closedPort);

  const storeRow = page.getByRole('row').filter({ hasText: 'DCMTK storescp' });
  await storeRow.locator('.peer-op').first().waitFor();
  assert.deepEqual(await storeRow.locator('.peer-op').allInnerTexts(), ['echo', 'store', 'find', 'move']);
  await storeRow.getByRole('button', { name: 'Echo STORESCP' }).click();
  await storeRow.locator('.peer-echo-result').getByText('OK', { exact: true }).waitFor();
  const closedRow = page.getByRole('row').filter({ hasText: `127.0.0.1:${closedPort}` });
  await closedRow.getByRole('button', { name: 'Echo CLOSED' }).click();
  await closedRow.locator('.peer-echo-result').getByText('Failed', { exact: true }).waitFor();
  const detail = await closedRow.locator('.peer-echo-result').innerText();
  assert.match(detail, /cannot connect to CLOSED at 127\.0\.0\.1:\d+.*ECONNREFUSED/, 'the failure says why');
  await page.getByRole('alert').filter({ hasText: 'C-ECHO to CLOSED failed' }).waitFor();
  // The toasts said it; the screenshot shows the table.
  await page.evaluate("document.querySelectorAll('.toasts button').forEach((b) => b.click())");
  await page.locator('.toast').first().waitFor({ state: 'detached' });
  await assertAccessible(page, 'peers');
  await shot('peers');
  assert.deepEqual(errors, []);
});

test('peers: edit keeps the AE title, remove asks first', async () => {
  await fetch(`${fixture.base}/api/dicom/peers/EDITME`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ host: 'old.example', port: 104 }) });
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/peers`);
  await page.getByRole('button', { name: 'Edit EDITME' }).click();
  const dialog = page.getByRole('dialog', { name: 'Edit peer EDITME' });
  assert.equal(await dialog.getByLabel('AE title').isDisabled(), true);
  assert.equal(await dialog.getByLabel('Host').inputValue(), 'old.example');
  await dialog.getByLabel('Host').fill('new.example');
  await dialog.getByLabel('Port').fill('11113');
  await dialog.getByLabel('Connect with TLS').check();
  await dialog.getByLabel('Query (C-FIND)').uncheck();
  await dialog.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('status').getByText('Peer EDITME saved').waitFor();
  const edited = (await peer('EDITME')).body;
  assert.equal(edited.host, 'new.example');
  assert.equal(edited.port, 11113);
  assert.equal(edited.tls, true);
  assert.deepEqual(edited.operations, ['echo', 'store', 'move', 'get', 'commit']);
  await page.getByRole('row').filter({ hasText: 'new.example:11113' }).getByText('TLS').waitFor();

  await page.getByRole('button', { name: 'Remove EDITME' }).click();
  const confirm = page.getByRole('dialog', { name: 'Remove peer EDITME' });
  await confirm.getByText('sends and retrieves to or from it will fail').waitFor();
  await shot('peers-remove-dialog');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await peer('EDITME')).status, 200, 'cancel removed nothing');
  await page.getByRole('button', { name: 'Remove EDITME' }).click();
  await confirm.getByRole('button', { name: 'Remove EDITME' }).click();
  await page.getByRole('status').getByText('Peer EDITME removed').waitFor();
  assert.equal((await peer('EDITME')).status, 404);
  await page.getByRole('row').filter({ hasText: 'new.example' }).waitFor({ state: 'detached' });
  assert.deepEqual(errors, []);
});

test('peers: a refusal by the server is shown in the form', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/peers`);
  await page.getByRole('row').filter({ hasText: 'CONFIGURED' }).waitFor();
  await page.getByRole('button', { name: 'Add a peer…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add a DICOM peer' });
  await dialog.getByLabel('AE title').fill('LATE');
  await dialog.getByLabel('Host').fill('late.example');
  // Meanwhile the configuration defines LATE (a restart with a new dicom.peers): the server refuses.
  await fixture.t.archive.peers.syncFromConfig([CONFIGURED, { aeTitle: 'LATE', host: 'config.example', port: 104 }]);
  await dialog.getByRole('button', { name: 'Add the peer' }).click();
  await dialog.getByRole('alert').getByText('peer LATE is defined in the configuration (dicom.peers); change it there').waitFor();
  await shot('peers-form-refused');
  assert.equal((await peer('LATE')).body.host, 'config.example', 'unchanged');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await fixture.t.archive.peers.syncFromConfig([CONFIGURED]);
  assert.deepEqual(errors, []);
});

test('peers: last contact as the server records it (the echoes above), never for an untouched peer; the error state', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  // The first test echoed STORESCP (ok) and CLOSED (refused); CONFIGURED was never contacted.
  const recorded = await peer('CLOSED');
  assert.equal(recorded.body.lastContactOutcome, 'failed');
  await page.goto(`${fixture.base}/admin/peers`);
  await page.getByRole('row').filter({ hasText: 'CONFIGURED' }).locator('td').getByText('never').waitFor();
  await page.getByRole('row').filter({ hasText: 'DCMTK storescp' }).locator('.peer-contact').getByText('ok').waitFor();
  const closed = page.getByRole('row').filter({ hasText: `127.0.0.1:${closedPort}` }).locator('.peer-contact');
  await closed.getByText('failed').waitFor();
  assert.match(await closed.innerText(), /ECONNREFUSED|connect/i, 'the failure detail is shown');

  await page.route('**/api/dicom/peers', (route) => route.fulfill({ status: 503, contentType: 'application/problem+json', body: JSON.stringify({ title: 'unavailable', status: 503, detail: 'the index database is not answering' }) }));
  await page.reload();
  await page.getByRole('alert').getByText('the index database is not answering').waitFor();
  await page.getByRole('button', { name: 'Try again' }).waitFor();
  await shot('peers-error');
  assert.deepEqual(errors, []);
});

test('peers: a technologist has no Peers page, and the server refuses the data', async () => {
  const { page, errors } = await fixture.as(['technologist']);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Studies' }).waitFor();
  assert.doesNotMatch(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Peers/);
  await page.goto(`${fixture.base}/admin/peers`);
  await page.getByText('Not permitted').waitFor();
  assert.match(await page.locator('main').innerText(), /needs admin:config/);
  const status = await page.evaluate(async () => [
    (await fetch('/api/dicom/peers')).status,
    (await fetch('/api/dicom/peers/STORESCP/echo', { method: 'POST' })).status,
    (await fetch('/api/dicom/peers/X', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"host":"h","port":104}' })).status,
  ]);
  assert.deepEqual(status, [403, 403, 403]);
  assert.equal((await peer('X')).status, 404);
  assert.deepEqual(errors, []);
});

test('peers: tablet width, dark mode, keyboard', async () => {
  const { page, errors, shot } = await fixture.asAdministrator({ width: 820, height: 1180 });
  await page.goto(`${fixture.base}/admin/peers`);
  await page.getByRole('row').filter({ hasText: 'STORESCP' }).waitFor();
  await page.getByLabel('Theme').selectOption('dark');
  const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth');
  assert.ok(overflow <= 0, `no sideways scrolling of the page at tablet width (${overflow}px)`);
  await assertAccessible(page, 'peers-tablet-dark');
  await shot('peers-tablet-dark');
  // The add dialog opens from the keyboard and its first field has the focus; Escape closes it.
  await page.getByRole('button', { name: 'Add a peer…' }).focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Add a DICOM peer' });
  await dialog.waitFor();
  assert.equal(await page.evaluate<string | undefined>('document.activeElement?.id'), 'field-aeTitle');
  await shot('peers-add-dialog');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.deepEqual(errors, []);
});
