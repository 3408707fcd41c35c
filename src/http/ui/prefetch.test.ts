/**
 * The Prefetch page in headless Chromium: a rule made over REST is listed; an order scheduled over the RIS
 * REST for a patient with a relevant prior in Atrium (and an irrelevant one) is searched by the outbox
 * handler and the job runner, and the page shows it found, with the prior in Atrium; a technologist sees
 * the page, a referring clinician is not shown it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';
import { eventDispatcher, jobRunner } from '../../app.ts';
import { generateUid } from '../../dicom/uid.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
const da = (daysAgo: number) => new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');

before(async () => {
  fixture = await startConsoleFixture([]);
  const archive = fixture.t.archive;
  for (const [description, daysAgo] of [['CT CHEST', 100], ['CT HEAD', 50]] as const) {
    const studyInstanceUid = generateUid();
    const bytes = Buffer.concat([...syntheticInstance({ patientId: 'UI-PF', patientName: 'PAGE^PREFETCH', studyInstanceUid, studyDate: da(daysAgo), modality: 'CT', studyDescription: description, rows: 8, columns: 8 })]);
    assert.equal((await archive.ingest.ingest([bytes], { source: 'test' })).status, 'stored');
  }
  const post = async (url: string, body: unknown) => {
    const r = await fetch(`${fixture.base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 201, await r.text());
  };
  await post('/api/prefetch/rules', { name: 'CT chest', order: { modalities: ['CT'] }, priors: { modalities: ['CT'], bodyRegions: ['CHEST'], lookbackDays: 365, maxStudies: 3 } });
  await post('/api/ris/orders', {
    patient: { patientId: 'UI-PF', issuerOfPatientId: '', patientName: 'PAGE^PREFETCH' }, accessionNumber: 'UI-PF-1',
    steps: [{ stepId: 'S1', modality: 'CT', startDate: da(-1), description: 'CT CHEST' }],
  });
  const dispatcher = eventDispatcher(archive);
  const runner = jobRunner(archive, { pollIntervalMs: 20 });
  runner.start();
  try {
    for (let i = 0; i < 400; i++) {
      await dispatcher.runOnce();
      const r = await fetch(`${fixture.base}/api/prefetch/orders/UI-PF-1`);
      if (r.status === 200 && ((await r.json()) as { status: string }).status === 'fetched') break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    await runner.stop();
  }
});
after(async () => await fixture?.close());

test('prefetch: the rules, the orders with their status, and one order\'s priors', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/prefetch`);
  const rules = page.getByRole('table', { name: 'Prefetch rules' });
  await rules.waitFor();
  assert.match(await rules.innerText(), /CT chest\tyes\tmodality CT; region any; code any\tCT of CHEST, last 365 days, at most 3\tnone \(Atrium only\)/);
  const orders = page.getByRole('table', { name: 'Orders searched for priors' });
  assert.match(await orders.innerText(), /UI-PF-1\tUI-PF\torder-scheduled\tfetched\t1\t1\t0\t0/);
  await orders.getByRole('link', { name: 'UI-PF-1' }).click();
  const priors = page.getByRole('table', { name: 'Priors of order UI-PF-1' });
  await priors.waitFor();
  const text = await priors.innerText();
  assert.match(text, new RegExp(`${da(100).slice(0, 4)}-${da(100).slice(4, 6)}-${da(100).slice(6)}\\tCT CHEST\\tCT\\tAtrium\\tCT chest\\tpresent`));
  assert.doesNotMatch(text, /CT HEAD/);
  await assertAccessible(page, 'the Prefetch page');
  await shot('prefetch');
  assert.deepEqual(errors, []);
});

test('prefetch: a technologist is shown the page, a referring clinician is not', async () => {
  const tech = await fixture.as(['technologist']);
  assert.equal(await tech.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Prefetch' }).count(), 1);
  const clinician = await fixture.as(['referring-clinician']);
  assert.equal(await clinician.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Prefetch' }).count(), 0);
});
