/**
 * The Orders and Order pages in headless Chromium: orders placed through the REST API and through HL7 are in
 * today's schedule per modality, STAT highlighted; an order created by hand (client validation, then the
 * server's refusal of an accession number in use, then success), edited, cancelled after confirmation; one
 * order's detail with its timeline after an image with its accession arrived; an order placed by HL7 whose
 * images carry another Patient ID and whose MPPS names an instance not archived (the wrong-patient alert and
 * the performed series); a researcher refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startConsoleFixture, assertAccessible } from '../../../test/support/console.ts';
import { hl7, seg } from '../../../test/support/hl7.ts';
import { arrive } from '../../../test/support/order-images.ts';
import { sendMpps, nCreate, nSetCompleted } from '../../../test/support/mpps-scu.ts';
import { startDicomService } from '../../dimse/services/dicom-service.ts';
import { generateUid } from '../../dicom/uid.ts';
import { risOf } from '../../ris/module.ts';
import { dicomToday } from './console/format.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
const today = dicomToday();
let restOrder: any;

before(async () => {
  fixture = await startConsoleFixture([]);
  const created = await api('POST', '/api/ris/orders', {
    patient: { patientId: 'UI-P1', issuerOfPatientId: 'HOSP', patientName: 'PARKER^ROSA', patientBirthDate: '19610203', patientSex: 'F' },
    accessionNumber: 'UIACC1', requestedProcedureDescription: 'CT Chest with contrast', priority: 'STAT', reason: 'suspected PE',
    steps: [{ stepId: 'UISPS1', modality: 'CT', stationAeTitle: 'CT_ROOM_1', startDate: today, startTime: '083000' }],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  restOrder = created.body;
  const ris = risOf(fixture.t.archive);
  const send = async (m: Buffer) => assert.match((await ris.hl7.receive(m, { address: '127.0.0.1' })).ack.toString('utf8'), /MSA\|AA/);
  await send(hl7(['PID|1||UI-P2^^^HOSP^MR||NGUYEN^MINH||19880707|M']));
  await send(hl7(['PID|1||UI-P2^^^HOSP^MR||NGUYEN^MINH||19880707|M', 'ORC|NW|PL-UI2|FL-UI2',
    seg('OBR', { 1: '1', 2: 'PL-UI2', 3: 'FL-UI2', 4: 'MRKNEE^MR Knee left^LOCAL', 18: 'UIACC2', 20: 'UISPS2', 21: 'MR_ROOM_2', 24: 'MR', 27: `^^^${today}101500^^R` })], { type: 'ORM^O01' }));
});
after(async () => { await fixture?.close(); });

async function api(method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${fixture.base}${route}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const row = (page: import('playwright-core').Page, accession: string) => page.getByRole('row').filter({ hasText: accession });

test('orders: today\'s schedule per modality with orders from REST and from HL7, STAT highlighted', async () => {
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/orders`);
  await page.getByRole('heading', { name: 'Orders' }).waitFor();
  const ct = page.getByRole('region', { name: 'Modality CT' });
  const mr = page.getByRole('region', { name: 'Modality MR' });
  await row(ct as any, 'UIACC1').waitFor();
  assert.match(await row(ct as any, 'UIACC1').innerText(), /08:30[\s\S]*PARKER, ROSA[\s\S]*CT Chest with contrast[\s\S]*CT_ROOM_1[\s\S]*STAT[\s\S]*Scheduled/);
  assert.match(await row(mr as any, 'UIACC2').innerText(), /10:15[\s\S]*NGUYEN, MINH[\s\S]*MR_ROOM_2[\s\S]*ROUTINE[\s\S]*Scheduled/);
  assert.equal(await row(ct as any, 'UIACC1').locator('.priority-urgent').count(), 1, 'STAT is highlighted');
  assert.equal(await row(mr as any, 'UIACC2').locator('.priority-urgent').count(), 0);
  await assertAccessible(page, 'the Orders page');
  await shot('orders');

  // Filters: modality, then an accession number, then a status that matches nothing.
  await page.getByLabel('Modality', { exact: true }).fill('MR');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByRole('region', { name: 'Modality CT' }).waitFor({ state: 'detached' });
  await row(page, 'UIACC2').waitFor();
  await page.getByLabel('Modality', { exact: true }).fill('');
  await page.getByLabel('Accession').fill('UIACC1');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByRole('region', { name: 'Modality MR' }).waitFor({ state: 'detached' });
  await row(page, 'UIACC1').waitFor();
  await page.getByLabel('From').fill('2024');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByText('A date as YYYYMMDD').waitFor();
  assert.deepEqual(errors, []);
});

test('orders: create by hand (client validation, the server\'s refusal), edit, cancel after confirmation', async () => {
  const { page, errors } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/orders`);
  await page.getByRole('button', { name: 'New order…' }).click();
  const dialog = page.getByRole('dialog', { name: 'New order' });
  await dialog.locator('#field-startDate').fill('tomorrow');
  await dialog.getByRole('button', { name: 'Create the order' }).click();
  await dialog.getByText('The patient ID is required').waitFor();
  await dialog.getByText('The accession number is required').waitFor();
  await dialog.getByText('A scheduled procedure step ID is required').waitFor();
  await dialog.getByText('The date as YYYYMMDD').waitFor();
  // Valid in the browser, refused by the server: the accession number is another order's.
  await dialog.locator('#field-patientId').fill('UI-P3');
  await dialog.locator('#field-patientName').fill('KOWALSKI^JAN');
  await dialog.locator('#field-accessionNumber').fill('UIACC1');
  await dialog.locator('#field-requestedProcedureDescription').fill('US Abdomen');
  await dialog.locator('#field-priority').selectOption('URGENT');
  await dialog.locator('#field-stepId').fill('UISPS3');
  await dialog.locator('#field-modality').fill('US');
  await dialog.locator('#field-stationAeTitle').fill('US_ROOM_1');
  await dialog.locator('#field-startDate').fill(today);
  await dialog.locator('#field-startTime').fill('1400');
  await dialog.getByRole('button', { name: 'Create the order' }).click();
  await dialog.getByRole('alert').getByText(/accession number UIACC1 is another order's/).waitFor();
  await assertAccessible(page, 'the new order form with errors');
  await dialog.locator('#field-accessionNumber').fill('UIACC3');
  await dialog.getByRole('button', { name: 'Create the order' }).click();
  await page.getByRole('status').getByText('Order UIACC3 created').waitFor();
  const us = page.getByRole('region', { name: 'Modality US' });
  await row(us as any, 'UIACC3').waitFor();
  assert.match(await row(us as any, 'UIACC3').innerText(), /14:00[\s\S]*KOWALSKI, JAN[\s\S]*US Abdomen[\s\S]*US_ROOM_1[\s\S]*URGENT/);
  assert.equal(await row(us as any, 'UIACC3').locator('.priority-urgent').count(), 1);

  // Edit: the time moves.
  await page.getByRole('button', { name: 'Edit order UIACC3' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit order UIACC3' });
  await edit.locator('#field-startTime').fill('1530');
  await edit.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('status').getByText('Order UIACC3 saved').waitFor();
  await row(page, 'UIACC3').getByText('15:30').waitFor();

  // Cancel, confirmed; kept when the dialog is dismissed.
  await page.getByRole('button', { name: 'Cancel order UIACC3' }).click();
  await page.getByRole('dialog', { name: 'Cancel order UIACC3' }).getByRole('button', { name: 'Keep it' }).click();
  assert.equal((await api('GET', '/api/ris/orders?accessionNumber=UIACC3')).body.items[0].status, 'scheduled');
  await page.getByRole('button', { name: 'Cancel order UIACC3' }).click();
  await page.getByRole('dialog', { name: 'Cancel order UIACC3' }).getByRole('button', { name: 'Cancel the order' }).click();
  await page.getByRole('status').getByText('Order UIACC3 cancelled').waitFor();
  await row(page, 'UIACC3').getByText('Cancelled').waitFor();
  assert.equal((await api('GET', '/api/ris/orders?accessionNumber=UIACC3')).body.items[0].status, 'cancelled');
  assert.deepEqual(errors, []);
});

test('order detail: patient, steps, the linked study and the timeline after an image arrived', async () => {
  const archive = fixture.t.archive;
  const uid = restOrder.studyInstanceUid as string;
  await arrive(archive, { patientId: 'UI-P1', accessionNumber: 'UIACC1', studyInstanceUid: uid });
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/orders`);
  await page.getByRole('link', { name: 'CT Chest with contrast' }).click();
  await page.getByRole('heading', { name: 'Order UIACC1' }).waitFor();
  await page.getByText('PARKER, ROSA').waitFor();
  const study = page.getByRole('link', { name: uid });
  assert.equal(await study.getAttribute('href'), `/admin/studies/${uid}`);
  const timeline = page.locator('ol.timeline > li');
  await timeline.nth(2).waitFor();
  const entries = await timeline.allInnerTexts();
  assert.match(entries[0]!, /^Ordered[\s\S]*User/);
  assert.match(entries[1]!, /^Scheduled[\s\S]*User/);
  assert.match(entries[2]!, new RegExp(`^Arrived[\\s\\S]*Image arrival ${uid.replace(/\./g, '\\.')}[\\s\\S]*by accession`));
  await page.getByRole('region', { name: 'Patient and procedure' }).getByText('Arrived').waitFor();
  await assertAccessible(page, 'the order detail');
  await shot('order-detail');
  assert.deepEqual(errors, []);
});

test('order detail: the wrong-patient alert with both Patient IDs and the performed series with the instance not archived', async () => {
  const archive = fixture.t.archive;
  const ack = (await risOf(archive).hl7.receive(hl7(['PID|1||UI-P4^^^HOSP^MR||OKAFOR^ADA||19750505|F', 'ORC|NW|PL-UI4|FL-UI4',
    seg('OBR', { 1: '1', 2: 'PL-UI4', 3: 'FL-UI4', 4: 'CTHEAD^CT Head^LOCAL', 18: 'UIACC4', 20: 'SPS-UIACC4', 21: 'CT_ROOM_4', 24: 'CT', 27: `^^^${today}120000^^R` })], { type: 'ORM^O01' }), { address: '127.0.0.1' })).ack.toString('utf8');
  assert.match(ack, /MSA\|AA/);
  const order = (await api('GET', '/api/ris/orders?accessionNumber=UIACC4')).body.items[0];
  const study = order.studyInstanceUid as string;
  const series = generateUid();
  const [archived, notArchived] = [generateUid(), generateUid()];
  // The images of the accession carry another patient; only one of the two instances the MPPS names arrives.
  await arrive(archive, { patientId: 'UI-OTHER4', patientName: 'WRONG^PERSON', accessionNumber: 'UIACC4', studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: archived });
  await archive.peers.upsert({ aeTitle: 'CT_ROOM_4', host: '127.0.0.1', port: 104, operations: ['store'] });
  const dicom = await startDicomService(archive, { port: 0 });
  try {
    const mppsUid = generateUid();
    const answers = await sendMpps(dicom.port, archive.config.dicom.aeTitle, [
      { kind: 'create', uid: mppsUid, elements: nCreate({ accessionNumber: 'UIACC4', studyInstanceUid: study, patientId: 'UI-P4', patientName: 'OKAFOR^ADA', stationAeTitle: 'CT_ROOM_4' }) },
      { kind: 'set', uid: mppsUid, elements: nSetCompleted({ [series]: [archived, notArchived] }) },
    ], 'CT_ROOM_4');
    assert.deepEqual(answers.map((a) => a.status), [0, 0], answers.map((a) => a.errorComment).join('; '));
  } finally {
    await dicom.close();
  }

  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/orders/${order.pk}`);
  await page.getByRole('heading', { name: 'Order UIACC4' }).waitFor();
  const alert = page.getByRole('alert').filter({ hasText: 'Wrong-patient flag' });
  await alert.waitFor();
  const said = await alert.innerText();
  assert.match(said, new RegExp(`Study ${study.replace(/\./g, '\\.')} carries Patient ID UI-OTHER4, WRONG, PERSON, not the order's UI-P4 \\(HOSP\\)\\.`));
  assert.match(said, /The images were not changed/);
  assert.match(await page.getByRole('region', { name: 'Studies' }).getByRole('listitem').filter({ hasText: study }).innerText(), /Wrong patient\? Its images carry Patient ID UI-OTHER4/);
  const performed = page.getByRole('region', { name: 'Performed series' });
  assert.match(await performed.innerText(), /2 instances named by the modality's MPPS, 1 archived\s+1 not archived/);
  assert.equal(await performed.getByText('complete').count(), 0);
  assert.match((await page.locator('ol.timeline > li').allInnerTexts()).join('\n'), /Wrong-patient flag[\s\S]*UI-OTHER4/);
  await assertAccessible(page, 'the order detail with a wrong-patient flag and an instance not archived');
  await shot('order-checks');
  assert.deepEqual(errors, []);
});

test('orders: a researcher and a referring clinician (no order:read) are refused; a radiologist reads but does not edit', async () => {
  for (const role of ['researcher', 'referring-clinician']) {
    const { page } = await fixture.as([role]);
    await page.waitForURL((u) => !u.pathname.startsWith('/login'));
    const refused = await page.request.get(`${fixture.base}/api/ris/orders`);
    assert.equal(refused.status(), 403, role);
    await page.goto(`${fixture.base}/admin/orders`);
    // Signed in and not allowed: Not permitted, never the sign-in page (guard.test.ts covers every page).
    await page.getByRole('alert').getByText('Not permitted', { exact: true }).waitFor();
    assert.equal(await page.locator('form#login').count(), 0);
    assert.equal(await page.getByRole('link', { name: 'Orders' }).count(), 0);
    assert.equal(await page.getByText('UIACC1').count(), 0);
  }
  const { page } = await fixture.as(['radiologist']);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Orders' }).waitFor();
  await page.goto(`${fixture.base}/admin/orders`);
  await row(page, 'UIACC1').waitFor();
  assert.equal(await page.getByRole('button', { name: 'New order…' }).count(), 0);
  assert.equal(await page.getByRole('button', { name: /^Cancel order/ }).count(), 0);
  assert.equal(await page.getByRole('link', { name: 'HL7 messages' }).count(), 0);
});
