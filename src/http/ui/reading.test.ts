/**
 * The Reading worklist and Turnaround times pages in headless Chromium. Orders placed by HL7 (ORM^O01) into a
 * RIS whose clock is set back over the last two days, completed by MPPS and reported, so that the turnaround
 * times span days: the TAT charts are drawn (uPlot canvas with pixels on it) with the medians and 90th
 * percentiles computed here; breaches listed; the worklist shows the open studies most urgent first with the
 * ones in breach highlighted, a claim in one click, "Open" in the viewer with the priors, a critical result
 * acknowledged in one click; screenshots saved; accessible; a technologist is not shown the pages.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';
import { hl7, seg } from '../../../test/support/hl7.ts';
import { eventDispatcher } from '../../app.ts';
import { sectionOf } from '../../config/config.ts';
import { risConfig } from '../../ris/config.ts';
import { createRis } from '../../ris/ris.ts';
import type { ChangeContext } from '../../ris/ris-context.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
const MIN = 60_000;
const DAY0 = Math.floor((Date.now() - 2 * 86_400_000) / 86_400_000) * 86_400_000 + 8 * 3_600_000; // 08:00 UTC two days ago
/** accession, HL7 priority, modality, minutes from DAY0 of completion, minutes complete -> final (null: not reported). */
const ORDERS: [string, string, string, number, number | null][] = [
  ['T-CT1', 'S', 'CT', 0, 20], ['T-CT2', 'S', 'CT', 60, 40], ['T-CT3', 'S', 'CT', 1440, 25], ['T-CT4', 'S', 'CT', 1500, 35],
  ['T-MR1', 'R', 'MR', 30, 600], ['T-MR2', 'R', 'MR', 1470, 1200], ['T-US1', 'U', 'US', 90, null], ['T-DX1', 'R', 'DX', 2000, null],
];

before(async () => {
  fixture = await startConsoleFixture([]);
  const archive = fixture.t.archive;
  let now = DAY0;
  const hl7Settings = sectionOf(archive.config, risConfig).hl7;
  const ris = createRis({ database: archive.database, audit: archive.audit, index: archive.index, log: archive.log, clock: () => new Date(now),
    hl7: { applicationName: hl7Settings.applicationName, facilityName: hl7Settings.facilityName, allowedSenders: [] } });
  const mpps: ChangeContext = { source: { kind: 'mpps', ref: '1.2.3' }, principal: { kind: 'dicom-ae', id: 'MOD', displayName: 'MOD' }, interface: 'dimse' };
  const rad: ChangeContext = { source: { kind: 'user', ref: 'rosa' }, principal: { kind: 'user', id: 'rosa', displayName: 'rosa' }, interface: 'rest' };
  const steps: [number, () => Promise<unknown>][] = [];
  for (const [acc, priority, modality, completeAt, toFinal] of ORDERS) {
    now = DAY0 + (completeAt - 30) * MIN;
    const ack = await ris.hl7.receive(hl7([`PID|1||P-${acc}^^^HOSP^MR||DOE^${acc}||19700101|F`, seg('PV1', { 1: '1', 2: 'O', 8: '1234^REFERRER^RITA' }),
      `ORC|NW|PL-${acc}|FL-${acc}||||^^^^^${priority}|||||5678^ORDERER^OSCAR`,
      seg('OBR', { 1: '1', 2: `PL-${acc}`, 3: `FL-${acc}`, 4: `${modality}X^${modality} exam^LOCAL`, 18: acc, 20: `SPS-${acc}`, 24: modality, 27: `^^^^^${priority}` })], { type: 'ORM^O01', controlId: `ORM-${acc}` }), { address: '127.0.0.1' });
    assert.match(ack.ack.toString(), /MSA\|AA/);
    steps.push([completeAt - 15, () => ris.orders.recordStepStatus(mpps, { accessionNumber: acc, status: 'IN PROGRESS' })]);
    steps.push([completeAt, () => ris.orders.recordStepStatus(mpps, { accessionNumber: acc, status: 'COMPLETED' })]);
    if (toFinal !== null) steps.push([completeAt + toFinal, () => ris.reports.receiveReport(rad, { accessionNumber: acc, status: 'F', text: 'Report.', author: 'READER^ROSA' })]);
  }
  for (const [at, run] of steps.sort((a, b) => a[0] - b[0])) { now = DAY0 + at * MIN; await run(); }
  // A critical result waiting for its acknowledgement.
  now = Date.now();
  await ris.reports.receiveReport(rad, { accessionNumber: 'T-US1', status: 'P', text: 'Free air.', author: 'READER^ROSA', critical: true });
  const dispatcher = eventDispatcher(archive);
  for (let i = 0; i < 100; i++) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) break; }
});
after(async () => await fixture?.close());

async function drawnPixels(page: import('playwright-core').Page, index: number): Promise<number> {
  return await page.evaluate((i) => {
    const canvas = (globalThis as any).document.querySelectorAll('figure.chart canvas')[i];
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let p = 3; p < data.length; p += 4) if (data[p] > 0) n++;
    return n;
  }, index);
}

test('turnaround times: median and 90th percentile per modality and priority over time against the SLA, breaches listed', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/turnaround`);
  const charts = page.locator('figure.chart');
  await charts.first().locator('canvas').first().waitFor();
  assert.equal(await charts.count(), 2, 'CT stat and MR routine (the US and DX are not reported)');
  assert.ok(await drawnPixels(page, 0) > 500, 'the CT chart is drawn');
  assert.ok(await drawnPixels(page, 1) > 500, 'the MR chart is drawn');
  const ct = await page.getByRole('table', { name: /CT stat: median, 90th percentile and SLA \(30 min\).*\(data\)/ }).innerText();
  // Day 1: 20 and 40 min (median 30, p90 38); day 2: 25 and 35 (median 30, p90 34); the SLA 30 min.
  assert.match(ct, /\t30\t38\t30/);
  assert.match(ct, /\t30\t34\t30/);
  const breaches = await page.getByRole('table', { name: 'Studies in breach of their SLA' }).innerText();
  for (const acc of ['T-CT2', 'T-CT4', 'T-US1', 'T-DX1']) assert.match(breaches, new RegExp(acc), acc);
  assert.doesNotMatch(breaches, /T-CT1|T-CT3|T-MR1|T-MR2/);
  const perModality = await page.getByRole('table', { name: 'Turnaround per modality' }).innerText();
  assert.match(perModality, /CT\t4\t30\t38\.5\t2/, "CT: 4 studies, median 30, p90 38.5, 2 breaches");
  await assertAccessible(page, 'the Turnaround times page');
  await shot('turnaround');
  assert.deepEqual(errors, []);
});

test('reading worklist: most urgent first, breaches highlighted, claim in one click, open in the viewer with priors, acknowledge a critical result', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/reading`);
  const table = page.getByRole('table', { name: 'Studies to read' });
  await table.locator('tbody tr').first().waitFor();
  const rows = await table.locator('tbody tr').allInnerTexts();
  assert.equal(rows.length, 2, 'the US and the DX are not finally reported');
  assert.match(rows[0], /urgent[\s\S]*T-US1[\s\S]*in breach/);
  assert.match(rows[1], /routine[\s\S]*T-DX1/);
  assert.equal(await table.locator('[data-sla="breach"]').count(), 2);
  const critical = page.getByRole('region', { name: 'Critical results waiting for acknowledgement' });
  assert.match(await critical.innerText(), /T-US1: notified to ORDERER\^OSCAR/);
  await shot('reading-worklist');
  await page.getByRole('button', { name: 'Claim T-US1' }).click();
  await page.getByRole('button', { name: 'Give back T-US1' }).waitFor();
  assert.match(await table.locator('tbody tr').first().innerText(), /you/);
  await critical.getByRole('button', { name: 'Acknowledge' }).click();
  await critical.waitFor({ state: 'detached' });
  await assertAccessible(page, 'the Reading worklist page');
  await page.getByRole('button', { name: 'Open T-US1 in the viewer' }).click();
  await page.waitForURL(/\/viewer\?StudyInstanceUIDs=/);
  assert.deepEqual(errors.filter((e) => !/viewer/i.test(e)), []);
});

test('reading: a technologist is not shown the pages, and the server refuses their data', async () => {
  const { page, errors } = await fixture.as(['technologist']);
  assert.doesNotMatch(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Reading worklist|Turnaround/);
  await page.goto(`${fixture.base}/admin/reading`);
  await page.getByText('Not permitted').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/api/reading/worklist')).status), 403);
  assert.deepEqual(errors, []);
});
