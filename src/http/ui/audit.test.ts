/**
 * The Audit page in headless Chromium: what was done earlier through REST (a study read, a study
 * deleted, a failed sign-in, a refused deletion) is found by filtering on user, action and study; a
 * record's details open; the export links carry the filter and download FHIR AuditEvents and NDJSON; a
 * wrong range is caught in the browser and a wrong filter refused by the server with its reason; a
 * radiologist is refused the page and the data.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startConsoleFixture, assertAccessible } from '../../../test/support/console.ts';
import { AUDIT_ACTIONS, AUDIT_INTERFACES, AUDIT_OUTCOMES } from '../../ports/audit-store.ts';
import { AUDIT_EXPORT_FORMATS } from '../../audit/audit-service.ts';
import * as vocabulary from './console/pages/audit-vocabulary.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
let ct: string;
let mr: string;

const anonymous = { 'x-atrium-test-anonymous': '1' };
const sidewaysScroll = 'document.documentElement.scrollWidth - document.documentElement.clientWidth';

async function json<T = any>(res: Response | Promise<Response>): Promise<T> {
  return await (await res).json() as T;
}

before(async () => {
  fixture = await startConsoleFixture(['CT_small.dcm', 'MR_small.dcm']);
  const studies = (await json(fetch(`${fixture.base}/api/studies`))).items as { studyInstanceUid: string; modalitiesInStudy: string[] }[];
  ct = studies.find((s) => s.modalitiesInStudy.includes('CT'))!.studyInstanceUid;
  mr = studies.find((s) => s.modalitiesInStudy.includes('MR'))!.studyInstanceUid;
  // What the trail is to show: the test administrator (an API key) reads one study and deletes the
  // other; someone fails to sign in as "mallory".
  assert.equal((await fetch(`${fixture.base}/api/studies/${ct}`)).status, 200);
  assert.ok((await fetch(`${fixture.base}/api/studies/${mr}`, { method: 'DELETE' })).ok);
  const login = await fetch(`${fixture.base}/api/login`, {
    method: 'POST', headers: { ...anonymous, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'mallory', password: 'not the password' }),
  });
  assert.equal(login.status, 401);
});
after(async () => await fixture?.close());

test('the console lists the audit vocabularies of the server', () => {
  assert.deepEqual([...vocabulary.AUDIT_ACTIONS], [...AUDIT_ACTIONS]);
  assert.deepEqual([...vocabulary.AUDIT_INTERFACES], [...AUDIT_INTERFACES]);
  assert.deepEqual([...vocabulary.AUDIT_OUTCOMES], [...AUDIT_OUTCOMES]);
  assert.deepEqual(Object.keys(vocabulary.ACTION_LABELS), [...AUDIT_ACTIONS]);
  for (const e of vocabulary.EXPORTS) assert.ok(AUDIT_EXPORT_FORMATS.includes(e.format), e.format);
});

test('audit: earlier actions are found by user, action and study; details open; exports carry the filter', { timeout: 120_000 }, async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/audit`);
  const table = page.getByRole('table', { name: 'Audit records' });
  await table.getByRole('row').filter({ hasText: 'login-failed' }).first().waitFor();
  const total = (await json(fetch(`${fixture.base}/api/audit?limit=1`))).total as number;
  assert.match(await page.locator('.page-header').innerText(), new RegExp(`${total} records, newest first`));
  // Newest first: the failed sign-in came last.
  assert.match(await table.locator('tbody tr').first().innerText(), /mallory[\s\S]*login-failed[\s\S]*minor-failure[\s\S]*bad-credentials/);
  await assertAccessible(page, 'audit');
  await shot('audit');

  // By user: the failed sign-in of mallory, from the loopback address.
  await page.getByLabel('User', { exact: true }).fill('mallory');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/user=mallory/);
  await page.locator('.page-header').getByText('1 record match').waitFor();
  assert.match(await table.locator('tbody tr').innerText(), /mallory[\s\S]*login-failed[\s\S]*minor-failure[\s\S]*rest[\s\S]*127\.0\.0\.1/);

  // By action: the deletion, by the test administrator's key, of the MR study.
  await page.getByRole('button', { name: 'Clear' }).first().click();
  await page.waitForURL((url) => url.search === '');
  await page.getByLabel('Action').selectOption('delete');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/action=delete/);
  await page.locator('.page-header').getByText('1 record match').waitFor();
  const deletion = table.locator('tbody tr');
  assert.match(await deletion.innerText(), new RegExp(`test administrator[\\s\\S]*api-key 000000000a11[\\s\\S]*delete[\\s\\S]*success[\\s\\S]*${mr.replaceAll('.', '\\.')}`));
  assert.equal(await page.getByLabel('Action').inputValue(), 'delete', 'the form shows the filter of the address');

  // By study: the read of the CT study; its details open.
  await page.getByLabel('Action').selectOption('');
  await page.getByLabel('Study Instance UID').fill(ct);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/studyInstanceUid=/);
  const read = table.getByRole('row').filter({ hasText: /\bread\b/ });
  await read.first().waitFor();
  const apiView = await json(fetch(`${fixture.base}/api/audit?studyInstanceUid=${ct}`));
  assert.ok(apiView.items.some((r: { action: string }) => r.action === 'read'), 'the REST API has the read too');
  assert.equal(await table.locator('tbody tr').count(), apiView.total);
  for (const row of await table.locator('tbody tr').all()) assert.match(await row.innerText(), new RegExp(ct.replaceAll('.', '\\.')));
  await read.first().getByText('Details').click();
  const details = read.first().locator('details[open]');
  await details.getByText('Record', { exact: true }).waitFor();
  assert.match(await details.innerText(), new RegExp(`Study\\s+${ct.replaceAll('.', '\\.')}[\\s\\S]*Roles\\s+administrator[\\s\\S]*Record\\s+${apiView.items.find((r: { action: string }) => r.action === 'read').id}`));
  await assertAccessible(page, 'audit-details');
  await shot('audit-details');

  // The export links carry the current filter: a FHIR Bundle of AuditEvents, and NDJSON records.
  const fhirLink = page.getByRole('link', { name: 'FHIR AuditEvent bundle' });
  const fhirHref = (await fhirLink.getAttribute('href'))!;
  assert.match(fhirHref, /^\/api\/audit\/export\?format=fhir&/);
  assert.equal(new URL(fhirHref, fixture.base).searchParams.get('studyInstanceUid'), ct);
  const fhirRes = await fetch(new URL(fhirHref, fixture.base));
  assert.match(fhirRes.headers.get('content-disposition') ?? '', /audit\.fhir\.json/, 'the server names the file as the link does');
  const bundle = await json(fhirRes);
  assert.equal(bundle.resourceType, 'Bundle');
  assert.equal(bundle.entry.length, apiView.total);
  for (const e of bundle.entry) assert.equal(e.resource.resourceType, 'AuditEvent');
  const ndjsonHref = (await page.getByRole('link', { name: 'NDJSON', exact: true }).getAttribute('href'))!;
  const lines = (await (await fetch(new URL(ndjsonHref, fixture.base))).text()).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, apiView.total);
  for (const r of lines) assert.equal(r.studies[0].studyInstanceUid, ct);
  // And the browser downloads it as a file.
  const [download] = await Promise.all([page.waitForEvent('download'), fhirLink.click()]);
  assert.equal(download.suggestedFilename(), 'audit.fhir.json');

  // A name in the Who column filters on that principal.
  await page.getByRole('button', { name: 'Clear' }).first().click();
  await page.waitForURL((url) => url.search === '');
  await table.getByRole('link', { name: 'mallory' }).first().click();
  await page.waitForURL(/user=mallory/);
  assert.equal(await page.getByLabel('User', { exact: true }).inputValue(), 'mallory');
  assert.deepEqual(errors, []);
});

test('audit: pages through the records; a reversed range is caught, a wrong filter refused with the server\'s reason, nothing found says so', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  const total = (await json(fetch(`${fixture.base}/api/audit?limit=1`))).total as number;
  assert.ok(total >= 4, `enough records to page (${total})`);
  await page.goto(`${fixture.base}/admin/audit?limit=2`);
  const pager = page.getByRole('navigation', { name: 'Pages' });
  await pager.getByText(`1–2 of ${total}`).waitFor();
  const first = await page.locator('tbody tr').first().innerText();
  await pager.getByRole('button', { name: 'Next' }).click();
  await pager.getByText(`3–4 of ${total}`).waitFor();
  assert.match(page.url(), /offset=2/);
  assert.notEqual(await page.locator('tbody tr').first().innerText(), first);
  await pager.getByRole('button', { name: 'Previous' }).click();
  await pager.getByText(`1–2 of ${total}`).waitFor();

  await page.getByLabel('From').fill('2030-01-02T10:00');
  await page.getByLabel('To', { exact: true }).fill('2030-01-01T10:00');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('The end of the range must come after its start').waitFor();
  assert.equal(await page.getByLabel('To', { exact: true }).getAttribute('aria-invalid'), 'true');
  assert.doesNotMatch(page.url(), /from=/, 'nothing was searched');
  await page.getByLabel('To', { exact: true }).fill('2030-01-03T10:00');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('No audit record matches.').waitFor();
  // The range went to the server as ISO instants of the browser's time zone.
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('from'), new Date('2030-01-02T10:00').toISOString());
  assert.equal(url.searchParams.get('to'), new Date('2030-01-03T10:00').toISOString());
  await shot('audit-empty');
  await page.getByRole('button', { name: 'Clear the filters' }).click();
  await page.locator('tbody tr').nth(1).waitFor();

  await page.goto(`${fixture.base}/admin/audit?outcome=bogus`);
  await page.getByRole('alert').getByText('outcome must be one of success, minor-failure').waitFor();
  await shot('audit-error');
  assert.deepEqual(errors, []);
});

test('audit: a radiologist has no Audit page, is refused it by address, and the server refuses the trail', async () => {
  const { page, errors, shot } = await fixture.as(['radiologist']);
  const menu = page.getByRole('navigation', { name: 'Main' });
  await menu.getByRole('link', { name: 'Studies' }).waitFor();
  assert.doesNotMatch(await menu.innerText(), /Audit/);
  await page.goto(`${fixture.base}/admin/audit`);
  await page.getByText('Not permitted').waitFor();
  assert.match(await page.locator('main').innerText(), /needs audit:read/);
  await shot('audit-refused');
  assert.equal(await page.evaluate(async () => (await fetch('/api/audit')).status), 403);
  assert.equal(await page.evaluate(async () => (await fetch('/api/audit/export?format=fhir')).status), 403);
  assert.deepEqual(errors, []);
});

test('audit: at tablet width with details open, the page does not scroll sideways', async () => {
  const { page, errors, shot } = await fixture.asAdministrator({ width: 820, height: 1180 });
  await page.goto(`${fixture.base}/admin/audit?studyInstanceUid=${ct}`);
  await page.locator('tbody tr').first().getByText('Details').click();
  await page.locator('details[open]').waitFor();
  const overflow = await page.evaluate<number>(sidewaysScroll);
  assert.ok(overflow <= 0, `no sideways scrolling of the page (${overflow}px)`);
  await shot('audit-tablet');
  assert.deepEqual(errors, []);
});
