/**
 * The Integrity page in headless Chromium: an orphan study without a referring physician (a synthetic image
 * ingested, its InstanceStored delivered) makes two findings; the summary table counts them by kind and
 * severity and filters the list; a finding's dialog shows its evidence and the link to its correction;
 * acknowledge, then resolve with a note (a note is asked for first); accessible; a referring clinician is not
 * shown the page and the server refuses its data.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';
import { eventDispatcher } from '../../app.ts';
import { sectionOf } from '../../config/config.ts';
import { generateUid } from '../../dicom/uid.ts';
import { qualityConfig } from '../../quality/config.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
const study = generateUid();

before(async () => {
  fixture = await startConsoleFixture([]);
  const archive = fixture.t.archive;
  const current = sectionOf(archive.config, qualityConfig);
  (archive.config.sections as Record<string, unknown>).quality = { ...current, integrity: { ...current.integrity, orphanGraceMinutes: 0 } };
  const stored = await archive.ingest.ingest(syntheticInstance({ studyInstanceUid: study, seriesInstanceUid: `${study}.1`, sopInstanceUid: `${study}.1.1`, patientId: 'UI-P1', accessionNumber: 'UIACC1', rows: 8, columns: 8 }), { source: 'test' });
  assert.equal(stored.status, 'stored');
  const dispatcher = eventDispatcher(archive);
  for (let i = 0; i < 50; i++) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) break; }
  const listed = await (await fetch(`${fixture.base}/api/quality/integrity/findings?study=${study}`)).json() as { items: { kind: string }[] };
  assert.deepEqual(listed.items.map((f) => f.kind).sort(), ['key-attributes', 'orphan-study']);
});
after(async () => await fixture?.close());

test('integrity: the summary by kind and severity, a finding\'s evidence, acknowledge and resolve with a note', async () => {
  const { page, errors, shot } = await fixture.as(['technologist']);
  await page.goto(`${fixture.base}/admin/integrity`);
  await page.getByText('2 open findings').waitFor();
  const summary = page.getByRole('table', { name: 'Open findings by kind and severity' });
  assert.match(await summary.getByRole('row').filter({ hasText: 'orphan-study' }).innerText(), /orphan-study\s+0\s+1\s+0/);
  await assertAccessible(page, 'the integrity page');
  await shot('integrity');
  await summary.getByRole('button', { name: '1 major orphan-study' }).click();
  await page.getByText('1 open finding of kind orphan-study, major').waitFor();
  await page.getByRole('button', { name: /matches no order/ }).click();
  const dialog = page.getByRole('dialog', { name: /Integrity finding/ });
  const evidence = dialog.getByRole('table', { name: 'Evidence' });
  assert.match(await evidence.innerText(), /AccessionNumber[\s\S]*UIACC1[\s\S]*no matching order/);
  assert.match(await dialog.locator('a[data-correction="link-order"]').getAttribute('href') ?? '', /^\/admin\/corrections\?action=link-order&study=/);
  await assertAccessible(page, 'a finding');
  await shot('integrity-finding');
  await dialog.getByRole('button', { name: 'Acknowledge' }).click();
  await dialog.getByText(/^acknowledged \(tech/).waitFor().catch(async () => await dialog.getByText(/acknowledged/).first().waitFor());
  await dialog.getByRole('button', { name: 'Resolve' }).click();
  await dialog.getByRole('alert').getByText(/Write a note/).waitFor();
  await dialog.getByLabel('Note').fill('order placed by hand in the RIS');
  await dialog.getByRole('button', { name: 'Resolve' }).click();
  await dialog.getByText(/resolved.*: order placed by hand in the RIS/).waitFor();
  const f = await (await fetch(`${fixture.base}/api/quality/integrity/findings?study=${study}&state=resolved`)).json() as { items: { kind: string; resolution: string }[] };
  assert.deepEqual(f.items.map((x) => [x.kind, x.resolution]), [['orphan-study', 'order placed by hand in the RIS']]);
  assert.deepEqual(errors, []);
});

test('integrity: a referring clinician is not shown it, and the server refuses its data', async () => {
  const { page, errors } = await fixture.as(['referring-clinician']);
  assert.doesNotMatch(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Integrity/);
  await page.goto(`${fixture.base}/admin/integrity`);
  await page.getByText('Not permitted').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/api/quality/integrity/findings')).status), 403);
  assert.deepEqual(errors, []);
});
