/**
 * The Routing rules page in headless Chromium: a rule with mistakes is refused in the browser with each
 * message at its field, a valid one is created and listed, edited into version 2, disabled; the dry-run of a
 * stored study says which rule would trigger and why another would not; accessible; a technologist is not
 * shown the page and the server refuses its data.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';

const CT_SMALL = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;

before(async () => {
  fixture = await startConsoleFixture(['CT_small.dcm', 'MR_small.dcm']);
  const res = await fetch(`${fixture.base}/api/workflow/rules`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'MR to the research PACS', trigger: 'study-stable', conditions: { modality: ['MR'] }, actions: [{ type: 'dicom', destination: 'RESEARCH' }] }) });
  assert.equal(res.status, 201, await res.text());
});
after(async () => await fixture?.close());

test('rules: validation at the fields, create, edit into a new version, disable, dry-run a study', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/rules`);
  await page.getByRole('row').filter({ hasText: 'MR to the research PACS' }).waitFor();

  await page.getByRole('button', { name: 'New rule…' }).click();
  const dialog = page.getByRole('dialog', { name: 'New routing rule' });
  await dialog.getByLabel('Modality').fill('C T');
  await dialog.getByLabel('From (HH:MM)').fill('25:00');
  await dialog.getByLabel('To (HH:MM)').fill('06:00');
  await dialog.getByLabel('Then').fill('ftp somewhere');
  await dialog.getByRole('button', { name: 'Create the rule' }).click();
  await dialog.getByText('name is required').waitFor();
  await dialog.getByText('"C T" is not a modality').waitFor();
  await dialog.getByText('timeOfDay is').waitFor();
  await dialog.getByText('type must be dicom (C-STORE), dicomweb (STOW-RS) or ai (an AI node)').waitFor();
  assert.equal(await dialog.getByLabel('Modality').getAttribute('aria-invalid'), 'true');
  await shot('rules-form-invalid');

  await dialog.locator('#field-name').fill('CT to the workstation');
  await dialog.getByLabel('Modality').fill('CT');
  await dialog.getByLabel('From (HH:MM)').fill('');
  await dialog.getByLabel('To (HH:MM)').fill('');
  await dialog.getByLabel('Then').fill('dicom WORKSTATION 1.2.840.10008.1.2.1');
  await dialog.getByRole('button', { name: 'Create the rule' }).click();
  const row = page.getByRole('row').filter({ hasText: 'CT to the workstation' });
  await row.waitFor();
  await row.getByText('v1').waitFor();

  // The server's refusal comes back at the field: a name another rule has.
  await row.getByRole('button', { name: 'Edit CT to the workstation' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit rule CT to the workstation' });
  await edit.locator('#field-name').fill('MR to the research PACS');
  await edit.getByRole('button', { name: 'Save as a new version' }).click();
  await edit.getByText('this name is taken').waitFor();
  await edit.locator('#field-name').fill('CT to the workstation');
  await edit.getByLabel('Body part').fill('CHEST, ABDOMEN*');
  await edit.getByRole('button', { name: 'Save as a new version' }).click();
  await row.getByText('v2').waitFor();
  await row.getByText(/body part CHEST or ABDOMEN\*/).waitFor();

  await page.getByRole('row').filter({ hasText: 'MR to the research PACS' }).getByRole('button', { name: 'Disable MR to the research PACS' }).click();
  await page.getByRole('row').filter({ hasText: 'MR to the research PACS' }).getByText('disabled').waitFor();

  await page.getByLabel('Study Instance UID').fill(CT_SMALL);
  await page.getByRole('button', { name: 'Dry-run', exact: true }).click();
  const result = page.getByRole('region', { name: 'Dry-run result' });
  const ctRow = result.getByRole('row').filter({ hasText: 'CT to the workstation' });
  await ctRow.waitFor();
  // CT_small has no Body Part Examined: the edited rule does not trigger, and says why.
  await ctRow.getByText('not trigger').waitFor();
  await ctRow.getByText(/bodyPart \[\] against/).waitFor();
  await shot('rules');
  await assertAccessible(page, 'the routing rules page');

  const versions = await (await fetch(`${fixture.base}/api/workflow/rules`)).json() as { items: { name: string; version: number }[] };
  assert.deepEqual(versions.items.map((r) => `${r.name} v${r.version}`), ['CT to the workstation v2', 'MR to the research PACS v2']);
  assert.deepEqual(errors, []);
});

test('rules: a technologist is not shown the page, and the server refuses its data', async () => {
  const { page } = await fixture.as(['technologist']);
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Routing rules' }).count(), 0);
  await page.goto(`${fixture.base}/admin/rules`);
  await page.getByText('Not permitted').waitFor();
  const refused = await page.evaluate(async () => (await fetch('/api/workflow/rules')).status);
  assert.equal(refused, 403);
});
