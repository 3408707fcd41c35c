/**
 * The viewer launch in headless Chromium, as a person coming from the EHR meets it: without a session the
 * link goes to the sign-in page, and signing in lands on OHIF showing that study (its image drawn, the
 * OHIF URL naming it); a patient with several studies lands on OHIF's study list of exactly that patient
 * (not the one whose ID contains it); without the role, a 403 page; an unknown study, a 404 page. The
 * launch is audited; the pages pass axe-core's WCAG 2.1 AA rules. Screenshots are kept in .test-work/artifacts/ui (docs/ehr.md shows them).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Browser, Page } from 'playwright-core';
import type { TestArchive } from '../../../test/support/archive.ts';
import { startBrowserFixture } from '../../../test/support/browser.ts';
import { ARTIFACTS, assertAccessible } from '../../../test/support/console.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';

let fixture: Awaited<ReturnType<typeof startBrowserFixture>>;
let t: TestArchive;
let base: string;
let browser: Browser;
let ctStudy: string;
const twoA = generateUid();
const twoB = generateUid();
const lookalike = generateUid();
const password = 'correct horse battery staple';

before(async () => {
  fixture = await startBrowserFixture(['CT_small.dcm']);
  ({ t, base, browser } = fixture);
  const [ct] = fixture.stored;
  assert.ok(ct.status === 'stored');
  ctStudy = ct.studyInstanceUid;
  const store = async (o: Parameters<typeof syntheticInstance>[0]) => assert.equal((await t.archive.ingest.ingest(syntheticInstance(o), { source: 'test' })).status, 'stored');
  await store({ patientId: 'LB2', patientName: 'LAUNCH^TWO', studyInstanceUid: twoA, accessionNumber: 'LBACC1', studyDate: '20240110', studyDescription: 'Launch study A' });
  await store({ patientId: 'LB2', patientName: 'LAUNCH^TWO', studyInstanceUid: twoB, accessionNumber: 'LBACC2', studyDate: '20240220', studyDescription: 'Launch study B' });
  await store({ patientId: 'LB22', patientName: 'LAUNCH^OTHER', studyInstanceUid: lookalike, accessionNumber: 'LBACC3', studyDescription: 'Launch study C' });
  await t.archive.security.createUser({ username: 'reader', password, roles: ['radiologist'] });
  await t.archive.security.createUser({ username: 'scientist', password, roles: ['researcher'] });
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => await fixture?.close());

/** A browser with no session opens `path`, is sent to the sign-in page, signs in as `username`. */
async function launchSigningIn(path: string, username: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${base}${path}`);
  assert.equal(new URL(page.url()).pathname, '/login', 'no session: the sign-in page first');
  assert.equal(new URL(page.url()).searchParams.get('next'), path);
  await page.locator('#login input[name=username]').fill(username);
  await page.locator('#login input[name=password]').fill(password);
  await page.locator('#login button').click();
  return page;
}

test('no session: the launch goes to sign-in, then lands on OHIF with that study, its image drawn', { timeout: 180_000 }, async () => {
  const requests: string[] = [];
  const path = `/launch?requestType=STUDY&studyUID=${ctStudy}&viewerType=IHE_BIR&diagnosticQuality=true`;
  const page = await launchSigningIn(path, 'reader');
  page.on('request', (r) => requests.push(r.url()));
  await page.waitForURL((url) => url.pathname === '/viewer', { timeout: 30_000 });
  assert.equal(new URL(page.url()).searchParams.get('StudyInstanceUIDs'), ctStudy, 'the OHIF URL names the study');
  const canvas = page.locator('canvas').first();
  await canvas.waitFor({ timeout: 60_000 });
  let stdev = 0;
  for (let i = 0; i < 60 && stdev < 5; i++) {
    await page.waitForTimeout(500);
    stdev = Math.max(...(await sharp(await canvas.screenshot()).stats()).channels.map((c) => c.stdev));
  }
  assert.ok(stdev >= 5, `the viewport stayed blank (pixel standard deviation ${stdev.toFixed(2)})`);
  assert.ok(requests.some((u) => u.includes(`/dicom-web/studies/${ctStudy}/`)), 'OHIF loaded the study from Atrium');
  await page.screenshot({ path: join(ARTIFACTS, 'launch-study.png') });
  await t.archive.audit.drain();
  const { items } = await t.archive.audit.search({ action: 'read' }, { limit: 100, offset: 0 });
  const record = items.find((r) => r.principal.id === 'reader' && r.interface === 'ui' && r.outcome === 'success');
  assert.ok(record, 'the launch is audited');
  assert.deepEqual(record.studies.map((s) => s.studyInstanceUid), [ctStudy]);
  assert.ok(items.some((r) => r.principal.id === 'reader' && r.interface === 'dicomweb' && r.studies.some((s) => s.studyInstanceUid === ctStudy)), 'and so is the viewer\'s reading of it');
  await page.context().close();
});

test('a patient with several studies: OHIF\'s study list of exactly that patient', { timeout: 180_000 }, async () => {
  const queries: string[] = [];
  const page = await launchSigningIn('/launch?requestType=PATIENT&patientID=LB2', 'reader');
  page.on('request', (r) => { if (/\/dicom-web\/studies\?/.test(r.url())) queries.push(decodeURIComponent(r.url())); });
  await page.waitForURL((url) => url.pathname === '/' && url.searchParams.get('mrn') === 'LB2', { timeout: 30_000 });
  await page.getByText('Launch study A').first().waitFor({ timeout: 60_000 });
  await page.getByText('Launch study B').first().waitFor({ timeout: 10_000 });
  assert.equal(await page.getByText('Launch study C').count(), 0, 'LB22 is another patient');
  assert.ok(queries.some((q) => /00100020=LB2(&|$)/.test(q)), `the study list asked for Patient ID LB2 exactly: ${queries.join(' ')}`);
  await page.screenshot({ path: join(ARTIFACTS, 'launch-patient-list.png') });
  // A study opened from that list is opened through the same data source (OHIF puts its name in the path).
  const failed: string[] = [];
  page.on('response', (r) => { if (r.url().includes('/dicom-web/') && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  const metadata = page.waitForResponse((r) => r.url().includes(`/dicom-web/studies/${twoA}/`) && r.ok(), { timeout: 60_000 });
  await page.goto(`${base}/viewer/atrium-exact?StudyInstanceUIDs=${twoA}`);
  await metadata;
  await page.locator('canvas').first().waitFor({ timeout: 60_000 });
  assert.deepEqual(failed, []);
  await page.context().close();
});

test('without the role: a 403 page; an unknown study: a 404 page saying so, not an empty viewer', { timeout: 120_000 }, async () => {
  const refused = await launchSigningIn(`/launch?studyUID=${ctStudy}`, 'scientist');
  await refused.getByRole('heading', { name: 'Not allowed' }).waitFor({ timeout: 30_000 });
  assert.equal(new URL(refused.url()).pathname, '/launch');
  assert.match(await refused.locator('main').innerText(), /grants study:read/);
  await refused.screenshot({ path: join(ARTIFACTS, 'launch-forbidden.png') });
  await assertAccessible(refused, 'the 403 page');
  const status = (await refused.goto(`${base}/launch?studyUID=${ctStudy}`))!.status();
  assert.equal(status, 403);
  await refused.context().close();

  const reader = await launchSigningIn('/launch?accessionNumber=NO-SUCH-ACCESSION', 'reader');
  await reader.getByRole('heading', { name: 'Study not found' }).waitFor({ timeout: 30_000 });
  assert.match(await reader.locator('main').innerText(), /No study for accession number NO-SUCH-ACCESSION/);
  assert.equal(await reader.locator('canvas').count(), 0);
  assert.equal((await reader.goto(`${base}/launch?accessionNumber=NO-SUCH-ACCESSION`))!.status(), 404);
  await reader.screenshot({ path: join(ARTIFACTS, 'launch-not-found.png') });
  await assertAccessible(reader, 'the 404 page');
  await reader.context().close();
});
