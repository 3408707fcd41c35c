/**
 * The Dose page in headless Chromium, over the six dose files of ../shared/testdata/dose ingested and
 * extracted by the outbox handler: the per-protocol chart is drawn (uPlot canvas with pixels on it) and its
 * data table holds the medians computed here from the REST events, with the reference level set for TAP;
 * the quantity switch and the filters change what is drawn; the highest studies link to their study;
 * accessible; a referring clinician is not shown the page and the server refuses its data.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { assertAccessible, startConsoleFixture } from '../../../test/support/console.ts';
import { eventDispatcher } from '../../app.ts';

const DIR = new URL('../../../../shared/testdata/dose/', import.meta.url);
const FILES = ['CT-RDSR-Siemens_Flash-TAP-SS.dcm', 'CT-RDSR-GEPixelMed.dcm', 'CT-ESR-GE_Optima.dcm', 'DX-RDSR-Canon_CXDI.dcm', 'MG-RDSR-Hologic_2D.dcm', 'RF-RDSR-Philips_Allura.dcm'];

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;

before(async () => {
  fixture = await startConsoleFixture([]);
  const archive = fixture.t.archive;
  for (const f of FILES) assert.equal((await archive.ingest.ingest([readFileSync(new URL(f, DIR))], { source: 'test' })).status, 'stored', f);
  const dispatcher = eventDispatcher(archive);
  for (let i = 0; i < 50; i++) { const r = await dispatcher.runOnce(); if (r.routed + r.delivered + r.failed === 0) break; }
  const level = await fetch(`${fixture.base}/api/quality/dose/reference-levels`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ modality: 'CT', quantity: 'ctdivol', protocol: 'TAP', value: 8, source: 'test' }) });
  assert.equal(level.status, 201, await level.text());
});
after(async () => await fixture?.close());

/** Pixels of a canvas that are not transparent: uPlot drew something. */
async function drawnPixels(page: import('playwright-core').Page, index: number): Promise<number> {
  return await page.evaluate((i) => {
    const canvas = (globalThis as any).document.querySelectorAll('figure.chart canvas')[i];
    const ctx = canvas.getContext('2d');
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let p = 3; p < data.length; p += 4) if (data[p] > 0) n++;
    return n;
  }, index);
}

test('dose: CTDIvol per protocol against its reference level, monthly medians, the highest studies linked', async () => {
  const events = ((await (await fetch(`${fixture.base}/api/quality/dose/events?modality=CT&limit=1000`)).json()) as any).items as { acquisitionProtocol: string | null; ctdivol: number | null }[];
  const tap = events.filter((e) => e.acquisitionProtocol === 'TAP' && e.ctdivol !== null).map((e) => e.ctdivol!);
  assert.deepEqual(tap, [9.91], 'the Siemens TAP acquisition');
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/dose?modality=CT`);
  const charts = page.locator('figure.chart');
  await charts.first().locator('canvas').first().waitFor();
  assert.equal(await charts.count(), 2, 'distribution per protocol and monthly median');
  assert.ok(await drawnPixels(page, 0) > 500, 'the per-protocol chart has been drawn');
  assert.ok(await drawnPixels(page, 1) > 100, 'the trend chart has been drawn');
  const data = await page.getByRole('table', { name: /CTDIvol per protocol .*\(data\)/ }).innerText();
  assert.match(data, /TAP\t8\t9\.91\t9\.91/, 'TAP: its reference level 8 mGy, 75th percentile and median 9.91 mGy');
  assert.match(data, /10\.13 RADIOTHERAPY QA\t\t222\.6\t222\.6/, 'no reference level for the QA protocol');
  // Events without a protocol (the PixelMed head spiral, 60.41 mGy, and the Optima abdomen events) are held
  // against the seeded abdomen example (16 mGy) their region matches: over it too.
  const noProtocol = data.split('\n').find((l) => l.startsWith('(no protocol)'))!.split('\t');
  assert.equal(noProtocol[1], '16');
  assert.ok(Number(noProtocol[2]) > 16, noProtocol.join(' '));
  assert.match(await page.getByTestId('dose-summary').innerText(), /^8 events with CTDIvol; 2 protocols with a 75th percentile over their reference level/);
  const highest = page.getByRole('table', { name: 'Studies with the highest doses' });
  const first = highest.locator('tbody tr').first();
  assert.match(await first.innerText(), /724\.52/, 'the Siemens study (DLP total 724.52 mGy.cm) first');
  await assertAccessible(page, 'the Dose page');
  await shot('dose');
  await first.getByRole('link').click();
  await page.waitForURL(/\/admin\/studies\/1\.3\.6\.1\.4\.1\.5962\.99\.1\.2662687737\.2058515598\.1471541535737\.3\.0/);
  assert.deepEqual(errors, []);
});

test('dose: the quantity switch and the filters change what is drawn; CSV export link', async () => {
  const { page, errors } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/dose`);
  await page.getByRole('group', { name: 'Quantity' }).getByRole('button', { name: 'DAP' }).click();
  await page.waitForURL(/quantity=dap/);
  const dap = await page.getByRole('table', { name: /DAP per protocol .*\(data\)/ }).innerText();
  assert.match(dap, /THORAX AP 90kv-0,9mAs\t0\.1\t0\.107\t0\.107/, 'the Canon chest: the seeded example 0.1 Gy.cm2 for an adult chest');
  const form = page.getByRole('form', { name: 'Filter the dose events' });
  await form.getByLabel('Modality').fill('MG');
  await form.getByRole('button', { name: 'Apply' }).click();
  await page.waitForURL(/modality=MG/);
  const agd = await page.getByRole('table', { name: /AGD per protocol .*\(data\)/ }).innerText();
  assert.match(agd, /\(no protocol\)\t\t1\.295\t1\.29/, 'two views: median 1.29, 75th percentile 1.295 mGy');
  assert.match(await page.getByRole('link', { name: 'Export events (CSV)' }).getAttribute('href') ?? '', /events\.csv\?modality=MG/);
  await form.getByLabel('From').fill('yesterday');
  await form.getByRole('button', { name: 'Apply' }).click();
  await page.getByText('A date as YYYY-MM-DD').first().waitFor();
  assert.deepEqual(errors, []);
});

test('dose: a referring clinician is not shown it, and the server refuses its data', async () => {
  const { page, errors } = await fixture.as(['referring-clinician']);
  assert.doesNotMatch(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Dose/);
  await page.goto(`${fixture.base}/admin/dose`);
  await page.getByText('Not permitted').waitFor();
  assert.equal(await page.evaluate(async () => (await fetch('/api/quality/dose/events')).status), 403);
  assert.deepEqual(errors, []);
});
