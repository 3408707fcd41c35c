/**
 * The Corrections page in headless Chromium: from a study's "Correct…" link, move the study to another patient
 * (the reason is required), see it listed, undo it with a reason; the index follows each step. A radiologist
 * has no Corrections page and the server refuses the action.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
const study = generateUid();

before(async () => {
  fixture = await startConsoleFixture([]);
  for (const [uid, patientId] of [[study, 'UI-WRONG'], [generateUid(), 'UI-RIGHT']]) {
    const r = await fixture.t.archive.ingest.ingest(syntheticInstance({ studyInstanceUid: uid, patientId, patientName: `${patientId}^P`, rows: 8, columns: 8 }), { source: 'test' });
    assert.equal(r.status, 'stored');
  }
});
after(async () => await fixture?.close());

test('corrections: move a study from its page, reason required, listed, undone', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/studies/${study}`);
  await page.getByRole('link', { name: 'Correct…' }).click();
  await page.waitForURL(/\/admin\/corrections\?study=/);
  const form = page.locator('form#correction');
  assert.equal(await form.getByLabel('Study Instance UID').inputValue(), study);
  await form.getByLabel('Move to patient ID').fill('UI-RIGHT');
  await page.getByRole('button', { name: 'Apply the correction' }).click();
  // The browser refuses the form while the reason is missing: nothing is applied.
  assert.equal(await form.getByLabel('Reason').evaluate((el) => (el as unknown as { validity: { valueMissing: boolean } }).validity.valueMissing), true);
  assert.equal((await fixture.t.archive.index.getStudy(study))?.patient.patientId, 'UI-WRONG');
  await form.getByLabel('Reason').fill('images of UI-RIGHT under the wrong ID');
  await page.getByRole('button', { name: 'Apply the correction' }).click();
  const table = page.getByRole('table', { name: 'Corrections' });
  await table.getByText('images of UI-RIGHT under the wrong ID').waitFor();
  assert.equal((await fixture.t.archive.index.getStudy(study))?.patient.patientId, 'UI-RIGHT');
  await assertAccessible(page, 'the corrections page');
  await shot('corrections');

  await table.getByRole('button', { name: 'Undo…' }).click();
  const undo = page.locator('form#undo');
  await undo.getByLabel('Reason for the undo').fill('wrong patient picked');
  await page.getByRole('button', { name: 'Undo the correction' }).click();
  await table.getByText(/undone by .*: wrong patient picked/).waitFor();
  assert.equal((await fixture.t.archive.index.getStudy(study))?.patient.patientId, 'UI-WRONG');
  assert.deepEqual(errors, []);
});

test('corrections: a radiologist has no Corrections page and the server refuses them', async () => {
  const { page, errors } = await fixture.as(['radiologist']);
  await page.waitForURL(/\/admin\/studies/);
  assert.doesNotMatch(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Corrections/);
  const status = await page.evaluate(async (uid) => (await fetch('/api/quality/corrections/move-study', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ studyInstanceUid: uid, to: { patientId: 'UI-RIGHT' }, reason: 'x' }),
  })).status, study);
  assert.equal(status, 403);
  assert.deepEqual(errors, []);
});
