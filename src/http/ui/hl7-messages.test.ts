/**
 * The HL7 messages page in headless Chromium: a change (XO) for an order not yet known is logged with AE,
 * highlighted with its ERR code, location and text; its raw message shown; once the order exists (the cause
 * fixed) it is replayed after confirmation and the log shows AA. A technologist (no admin:config) is refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startConsoleFixture, assertAccessible } from '../../../test/support/console.ts';
import { hl7, seg } from '../../../test/support/hl7.ts';
import { risOf } from '../../ris/module.ts';

let fixture: Awaited<ReturnType<typeof startConsoleFixture>>;
const pid = 'PID|1||HL7UI-1^^^HOSP^MR||LINDQVIST^EVA||19790909|F';
const obr = (control: string) => [pid, `ORC|${control}|PL-HL7UI|FL-HL7UI`, seg('OBR', { 1: '1', 2: 'PL-HL7UI', 3: 'FL-HL7UI', 4: 'CTABD^CT Abdomen^LOCAL', 18: 'HL7UIACC', 20: 'HL7UISPS', 21: 'CT_ROOM_1', 24: 'CT', 27: '^^^20240301090000^^R' })];

before(async () => { fixture = await startConsoleFixture([]); });
after(async () => { await fixture?.close(); });

test('HL7 messages: an AE is highlighted with its error, shown raw, and replayed after the cause is fixed', async () => {
  const ris = risOf(fixture.t.archive);
  const send = async (m: Buffer) => (await ris.hl7.receive(m, { address: '127.0.0.1' })).ack.toString('utf8');
  assert.match(await send(hl7([pid], { controlId: 'UI-A04' })), /MSA\|AA/);
  assert.match(await send(hl7(obr('XO'), { type: 'ORM^O01', controlId: 'UI-XO-1' })), /MSA\|AE/);
  const { page, errors, shot } = await fixture.asAdministrator();
  await page.goto(`${fixture.base}/admin/hl7-messages`);
  const row = page.getByRole('row').filter({ has: page.getByRole('button', { name: 'Message UI-XO-1', exact: true }) });
  await row.waitFor();
  assert.match(await row.innerText(), /RIS[\s\S]*ORM\^O01[\s\S]*UI-XO-1[\s\S]*AE[\s\S]*204/);
  assert.equal(await row.locator('.ack-bad').innerText(), 'AE');
  const ok = page.getByRole('row').filter({ has: page.getByRole('button', { name: 'Message UI-A04', exact: true }) });
  assert.equal(await ok.locator('.ack-ok').innerText(), 'AA');
  assert.equal(await ok.getByRole('button', { name: /^Replay/ }).count(), 0);
  await assertAccessible(page, 'the HL7 messages page');
  await shot('hl7-messages');

  await page.getByRole('button', { name: 'Message UI-XO-1', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'HL7 message UI-XO-1' });
  await dialog.getByLabel('The message as received').getByText(/ORC\|XO\|PL-HL7UI/).waitFor();
  await dialog.getByLabel('The acknowledgment sent').getByText(/MSA\|AE\|UI-XO-1/).waitFor();
  await dialog.getByRole('button', { name: 'Close' }).click();

  // The cause: the order did not exist. It is placed now; the change is replayed.
  assert.match(await send(hl7(obr('NW'), { type: 'ORM^O01', controlId: 'UI-NW-1' })), /MSA\|AA/);
  await page.getByRole('button', { name: 'Replay message UI-XO-1' }).click();
  await page.getByRole('dialog', { name: 'Replay message UI-XO-1' }).getByRole('button', { name: 'Replay the message' }).click();
  await page.getByRole('status').getByText('Message UI-XO-1 replayed: accepted (AA)').waitFor();
  await row.locator('.ack-ok').getByText('AA').waitFor();
  assert.equal(await row.getByRole('button', { name: /^Replay/ }).count(), 0);
  assert.deepEqual(errors, []);
});

test('HL7 messages: a technologist (order:read, no admin:config) is refused the log', async () => {
  const { page } = await fixture.as(['technologist']);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Orders' }).waitFor();
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'HL7 messages' }).count(), 0);
  await page.goto(`${fixture.base}/admin/hl7-messages`);
  await page.getByText('Not permitted').waitFor();
  assert.equal((await page.request.get(`${fixture.base}/api/ris/hl7/messages`)).status(), 403);
});
