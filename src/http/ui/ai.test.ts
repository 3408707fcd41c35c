/**
 * The AI parts of the console in headless Chromium: on the Reading worklist a radiologist records in one click
 * that the report confirms the AI flag of a reported study (the AI flag labelled as such); the AI nodes page
 * lists the registry (clinical and research) with each node's metrics, the agreement included; screenshots;
 * accessible; a technologist is not shown the AI page.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';
import { aiOf } from '../../ai/module.ts';
import { readingOf } from '../../reading/module.ts';
import { risOf } from '../../ris/module.ts';
import type { ChangeContext } from '../../ris/ris-context.ts';

const STUDY = '1.2.826.0.1.3680043.10.1447.501';
const OTHER = '1.2.826.0.1.3680043.10.1447.502';
let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;

before(async () => {
  fixture = await startConsoleFixture([]);
  const archive = fixture.t.archive;
  const post = async (url: string, body: unknown) => {
    const res = await fetch(`${fixture.base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    assert.ok(res.status < 300, text);
    return JSON.parse(text);
  };
  const node = await post('/api/ai/nodes', {
    name: 'ich-triage', vendor: 'Test AI Vendor', product: 'ICH Triage', version: '2.1', endpoint: { type: 'dicom', aeTitle: 'AICLEAR' },
    clearance: { kind: 'fda-510k', number: 'K123456', indication: 'Suspected intracranial hemorrhage on head CT', intendedUse: 'Triage and notification', modalities: ['CT'] },
  });
  await post('/api/ai/nodes', { name: 'lab-model', vendor: 'Lab', version: '0.1', endpoint: { type: 'dicom', aeTitle: 'AILAB' } });
  const user: ChangeContext = { source: { kind: 'user', ref: 'tech' }, principal: { kind: 'user', id: 'tech', displayName: 'tech' }, interface: 'rest' };
  const ris = risOf(archive);
  const now = new Date();
  for (const [uid, accession] of [[STUDY, 'UI-AI-1'], [OTHER, 'UI-AI-2']]) {
    await ris.patients.upsertPatient(user, { patientId: `P-${accession}`, issuerOfPatientId: '', patientName: `DOE^${accession}` });
    await ris.orders.placeOrder(user, { patient: { patientId: `P-${accession}`, issuerOfPatientId: '' }, accessionNumber: accession, priority: 'ROUTINE',
      requestedProcedureDescription: 'CT head', studyInstanceUid: uid, steps: [{ stepId: `SPS-${accession}`, modality: 'CT' }] });
    await readingOf(archive).store.markReady({ studyInstanceUid: uid, accessionNumber: accession, patientId: `P-${accession}`, readyAt: new Date(now.getTime() - 600_000).toISOString(), readyReason: 'stable' }, now.toISOString());
  }
  await ris.reports.receiveReport(user, { accessionNumber: 'UI-AI-1', status: 'P', text: 'Acute hemorrhage.', author: 'READER^ROSA' });
  // The node's result, as the linking records it (src/ai/ai-round-trip.test.ts does it with a real node).
  const ai = aiOf(archive);
  const { request } = await ai.store.openRequest({ nodeId: node.id, studyInstanceUid: STUDY, rule: null, jobId: 1, research: false }, new Date(now.getTime() - 300_000));
  await ai.store.recordAttempt(request.id, null, false, new Date(now.getTime() - 300_000));
  await ai.store.recordResult(request.id, { positive: true, flags: ['ICH'], at: new Date(now.getTime() - 120_000) });
  assert.equal(await ai.applyTriage(STUDY), 'AI: ICH (ich-triage)');
});
after(async () => await fixture?.close());

test('reading worklist: one click records that the report confirms the AI flag; the AI page shows the nodes and their metrics', async () => {
  const { page, errors, shot } = await fixture.as(['radiologist']);
  await page.goto(`${fixture.base}/admin/reading`);
  const row = page.getByRole('row').filter({ hasText: 'UI-AI-1' });
  await row.getByText('AI: ICH (ich-triage)').waitFor();
  assert.equal(await page.getByRole('row').filter({ hasText: 'UI-AI-2' }).getByRole('button', { name: 'Report confirms' }).count(), 0, 'no AI flag: no agreement buttons');
  await row.getByRole('button', { name: 'Report confirms' }).click();
  await page.getByText('Recorded: the report confirms the AI flag').waitFor();
  await shot('reading-ai-agreement');
  await assertAccessible(page, 'the reading worklist with an AI flag');
  const studyAi = await (await fetch(`${fixture.base}/api/ai/studies/${STUDY}`)).json() as { requests: { agreement: { value: string; by: string; reportStatus: string } }[] };
  assert.equal(studyAi.requests[0].agreement.value, 'confirms');
  assert.equal(studyAi.requests[0].agreement.reportStatus, 'preliminary-report');
  assert.match(studyAi.requests[0].agreement.by, /^radiologist-/);

  await page.goto(`${fixture.base}/admin/ai`);
  const registry = page.getByRole('table', { name: 'AI nodes' });
  await registry.getByRole('row').filter({ hasText: 'ich-triage' }).getByText('fda-510k K123456').waitFor();
  await registry.getByRole('row').filter({ hasText: 'lab-model' }).getByText('research (results marked)').waitFor();
  const perf = page.getByRole('table', { name: 'AI node performance' }).getByRole('row').filter({ hasText: 'ich-triage' });
  await perf.getByText('100 % (1 confirmed, 0 overridden, 0 awaiting)').waitFor();
  await perf.getByText('3.0 min / 3.0 min').waitFor();
  await shot('ai');
  await assertAccessible(page, 'the AI nodes page');
  assert.deepEqual(errors, []);

  const tech = await fixture.as(['technologist']);
  await tech.page.goto(`${fixture.base}/admin/studies`);
  assert.equal(await tech.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'AI nodes' }).count(), 0);
});
