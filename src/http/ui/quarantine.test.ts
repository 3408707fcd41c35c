/**
 * The Quarantine page in headless Chromium: the list with reasons, an object's header dump (read as far
 * as it goes), a release that fails again (the server's reason in the form, the entry kept), a release
 * with an attribute set (a missing Series Instance UID: the object is then archived), deletion after
 * confirmation, a technologist refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
const studyInstanceUid = generateUid();

async function upload(bytes: Uint8Array, name: string): Promise<any> {
  const res = await fetch(`${fixture.base}/api/instances`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/dicom', 'x-file-name': name } });
  return await res.json();
}

async function quarantined(): Promise<{ id: number; originalName: string; reasonCode: string }[]> {
  return ((await (await fetch(`${fixture.base}/api/quarantine`)).json()) as { items: { id: number; originalName: string; reasonCode: string }[] }).items;
}

before(async () => {
  fixture = await startConsoleFixture(['MR_truncated.dcm']);
  for (const name of ['no-series.dcm', 'to-delete.dcm']) {
    const bytes = Buffer.concat([...syntheticInstance({ rows: 8, columns: 8, studyInstanceUid, seriesInstanceUid: '', patientId: 'Q-1', patientName: 'Quarantine^Test' })]);
    assert.equal((await upload(bytes, name)).status, 'quarantined');
  }
});
after(async () => await fixture?.close());

test('quarantine: the list, a header dump, a release refused again keeps the entry', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/quarantine`);
  await page.getByText('3 objects received but not archived').waitFor();
  const truncated = page.getByRole('row').filter({ hasText: 'MR_truncated.dcm' });
  assert.match(await truncated.innerText(), /truncated/);
  assert.match(await page.getByRole('row').filter({ hasText: 'no-series.dcm' }).innerText(), /missing-uid/);
  await assertAccessible(page, 'the quarantine list');
  await shot('quarantine');

  await truncated.getByRole('button', { name: 'MR_truncated.dcm' }).click();
  const dialog = page.getByRole('dialog', { name: /Quarantined object/ });
  const header = dialog.getByRole('table', { name: 'Header elements' });
  await header.getByText('(0010,0010)').waitFor();
  assert.match(await header.innerText(), /PatientName/);
  await dialog.getByText(/Reading stopped/).waitFor();
  await assertAccessible(page, 'a quarantined object');
  await shot('quarantine-dump');

  await dialog.getByRole('button', { name: 'Release…' }).click();
  const release = page.getByRole('dialog', { name: 'Release from quarantine' });
  await release.getByRole('button', { name: 'Release', exact: true }).click();
  await release.getByRole('alert').getByText(/not released: .*truncated/).waitFor();
  await shot('quarantine-release-refused');
  assert.ok((await quarantined()).some((q) => q.originalName === 'MR_truncated.dcm'), 'the entry stays');
  assert.deepEqual(errors, []);
});

test('quarantine: release with a corrected attribute archives the object; delete asks first', async () => {
  const { page, errors } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/quarantine`);
  await page.getByRole('button', { name: 'no-series.dcm' }).click();
  const dialog = page.getByRole('dialog', { name: /Quarantined object/ });
  await dialog.getByRole('button', { name: 'Release…' }).click();
  const release = page.getByRole('dialog', { name: 'Release from quarantine' });
  await release.getByRole('button', { name: 'Add an attribute' }).click();
  await release.getByLabel('Keyword').fill('0020,000E');
  await release.getByRole('button', { name: 'Release', exact: true }).click();
  await release.getByText('A DICOM attribute keyword, e.g. PatientID').waitFor();
  await release.getByLabel('Keyword').fill('SeriesInstanceUID');
  await release.getByLabel('Value').fill(generateUid());
  await release.getByRole('button', { name: 'Release', exact: true }).click();
  await page.getByRole('status').getByText(/Released: stored/).waitFor();
  const studies = await (await fetch(`${fixture.base}/api/studies?studyInstanceUid=${studyInstanceUid}`)).json() as { total: number };
  assert.equal(studies.total, 1, 'the released object is archived');
  assert.ok(!(await quarantined()).some((q) => q.originalName === 'no-series.dcm'), 'and out of quarantine');

  await page.getByRole('button', { name: 'to-delete.dcm' }).click();
  await dialog.getByRole('button', { name: 'Delete…' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete the quarantined object' });
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  assert.ok((await quarantined()).some((q) => q.originalName === 'to-delete.dcm'), 'cancel deletes nothing');
  await dialog.getByRole('button', { name: 'Delete…' }).click();
  await confirm.getByRole('button', { name: 'Delete it' }).click();
  await page.getByRole('status').getByText(/deleted/).waitFor();
  assert.ok(!(await quarantined()).some((q) => q.originalName === 'to-delete.dcm'));
  await page.getByText('1 object received but not archived').waitFor();
  assert.deepEqual(errors, []);
});

test('quarantine: a technologist has no Quarantine page and the server refuses the data', async () => {
  const { page, errors } = await fixture.as(['technologist']);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Studies' }).waitFor();
  assert.doesNotMatch(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Quarantine/);
  await page.goto(`${fixture.base}/admin/quarantine`);
  await page.getByText('Not permitted').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/api/quarantine/1/dump')).status), 403);
  assert.deepEqual(errors, []);
});
