// OMI^O23 and ADT^A47 end to end, sent by Debian's mllp_send (python3-hl7) to the MLLP listener, on SQLite
// and PostgreSQL. OMI^O23 (v2.5.1: TQ1 for start and priority, IPC per step with accession, requested
// procedure ID, Study Instance UID, step ID, modality, station) with ORC-1 NW, XO, SC, CA and DC, and the
// same story told as ORM^O01 (v2.3: OBR-27, OBR-18/20/21/24): both end in the same orders, steps and
// timelines (one handler maps both to the same order operations), each message answered with its ACK
// (AA, or AE with ERR-3 and ERR-2 for an unknown order or a bad status). A47: the prior patient's
// orders, worklist items and index studies are under the new identifier (QIDO-RS shows it), and an
// administrator's undo restores them; unknown prior, existing new identifier and missing MRG get AE.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive } from '../../test/support/archive.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { mllpSend, type SentAck } from '../../test/support/mllp-send.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { createHttpServer } from '../http/server.ts';
import { risOf, startHl7Listeners } from './module.ts';
import type { Archive } from '../app.ts';
import type { Order } from './model.ts';

const pid = (id: string, name = 'OMI^OLGA') => `PID|1||${id}^^^HOSP^MR||${name}||19660606|F`;
const PV1 = seg('PV1', { 1: '1', 2: 'O', 8: '1234^REFERRER^RITA' });

interface Step { start: string; priority: string; station: string }
/** One order in both dialects: `n` names it (accession ORM-<n> / OMI-<n>, the same step ID). */
const omi = (n: string, control: string, step: Step | null, extra: { status?: string; reason?: string; steps?: number } = {}) => hl7([
  pid('OMI1'), PV1,
  seg('ORC', { 1: control, 2: `PL-OMI-${n}`, 3: `FL-OMI-${n}`, 5: extra.status ?? '', 12: '5678^ORDERER^OSCAR', 16: extra.reason ? `^${extra.reason}` : '' }),
  ...(step ? [
    seg('TQ1', { 1: '1', 7: step.start, 9: step.priority }),
    seg('OBR', { 1: '1', 2: `PL-OMI-${n}`, 3: `FL-OMI-${n}`, 4: 'CTHEAD^CT Head^LOCAL', 13: 'headache' }),
    ...Array.from({ length: extra.steps ?? 1 }, (_, i) => seg('IPC', { 1: `OMI-${n}`, 2: `RP-${n}`, 3: `1.2.826.0.1.3680043.10.543.${n.length}${n.charCodeAt(0)}`, 4: `SPS-${n}${i ? `.${i + 1}` : ''}`, 5: 'CT', 7: 'CT ROOM', 8: 'RADIOLOGY', 9: step.station })),
  ] : [seg('OBR', { 1: '1', 2: `PL-OMI-${n}`, 3: `FL-OMI-${n}` })]),
], { type: 'OMI^O23^OMI_O23', version: '2.5.1', controlId: `OMI-${n}-${control}${extra.status ?? ''}` });

const orm = (n: string, control: string, step: Step | null, extra: { status?: string; reason?: string } = {}) => hl7([
  pid('ORM1', 'ORM^ORLA'), PV1,
  seg('ORC', { 1: control, 2: `PL-ORM-${n}`, 3: `FL-ORM-${n}`, 5: extra.status ?? '', 12: '5678^ORDERER^OSCAR', 16: extra.reason ? `^${extra.reason}` : '' }),
  step
    ? seg('OBR', { 1: '1', 2: `PL-ORM-${n}`, 3: `FL-ORM-${n}`, 4: 'CTHEAD^CT Head^LOCAL', 13: 'headache', 18: `ORM-${n}`, 19: `RP-${n}`, 20: `SPS-${n}`, 21: step.station, 24: 'CT', 27: `^^^${step.start}^^${step.priority}` })
    : seg('OBR', { 1: '1', 2: `PL-ORM-${n}`, 3: `FL-ORM-${n}`, 18: `ORM-${n}` }),
], { type: 'ORM^O01', version: '2.3', controlId: `ORM-${n}-${control}${extra.status ?? ''}` });

/** The same story in either dialect. */
const story = (m: typeof omi | typeof orm) => [
  // 1: placed, changed (priority, start, station), started by the RIS (SC IP).
  m('1', 'NW', { start: '20240310093000', priority: 'S', station: 'CT_SCANNER' }),
  m('1', 'XO', { start: '20240310110000', priority: 'R', station: 'CT_SCANNER2' }),
  m('1', 'SC', null, { status: 'IP' }),
  // 2: placed, cancelled.
  m('2', 'NW', { start: '20240311080000', priority: 'A', station: 'CT_SCANNER' }),
  m('2', 'CA', null, { reason: 'patient declined' }),
  // 3: placed, started, discontinued.
  m('3', 'NW', { start: '20240312080000', priority: 'R', station: 'CT_SCANNER' }),
  m('3', 'SC', null, { status: 'IP' }),
  m('3', 'DC', null, { reason: 'contrast reaction' }),
  // Refused: a cancel of an order that does not exist, a status not in table 0038, a change of a cancelled order.
  m('9', 'CA', null),
  m('1', 'SC', null, { status: 'XX' }),
  m('2', 'XO', { start: '20240311090000', priority: 'R', station: 'CT_SCANNER' }),
];

/** An order as both dialects must leave it: everything but the numbers that name it. */
function comparable(order: Order, timeline: string[]) {
  return {
    status: order.status, priority: order.priority, requestedProcedureCode: order.requestedProcedureCode, description: order.requestedProcedureDescription,
    reason: order.reason, referring: order.referringPhysician, ordering: order.orderingPhysician,
    steps: order.steps.map((s) => [s.stepId, s.modality, s.stationAeTitle, s.startDate, s.startTime, s.status]), timeline,
  };
}

async function ingestStudy(archive: Archive, options: { patientId: string; accessionNumber: string; studyInstanceUid: string }) {
  const result = await archive.ingest.ingest(syntheticInstance({ ...options, seriesInstanceUid: `${options.studyInstanceUid}.1`, sopInstanceUid: `${options.studyInstanceUid}.1.1`, modality: 'CT' }), { source: 'test' });
  assert.equal(result.status, 'stored');
  const handler = archive.eventHandlers.find((h) => h.name === 'ris.match-order')!;
  await handler.handle({ id: 1, type: 'InstanceStored', attempt: 1, createdAt: new Date().toISOString(),
    payload: { studyInstanceUid: options.studyInstanceUid, seriesInstanceUid: `${options.studyInstanceUid}.1`, sopInstanceUid: `${options.studyInstanceUid}.1.1`, sopClassUid: '1.2.840.10008.5.1.4.1.1.2', patientId: options.patientId, source: 'test' } } as any);
}

const codes = (acks: SentAck[]) => acks.map((a) => [a.controlId, a.code, a.errCode, a.errLocation]);

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`OMI^O23 and ADT^A47 over MLLP (mllp_send) on ${engine}`, async (t) => {
    const ta = await createTestArchive(engine);
    after(() => ta.cleanup());
    const archive = ta.archive;
    const [listener] = await startHl7Listeners(archive, { port: 0, host: '127.0.0.1' });
    after(() => listener!.close());
    const port = listener!.port;
    const ris = risOf(archive);
    const order = async (accession: string) => (await ris.orders.find({ accessionNumber: accession }))!;
    const timeline = async (o: Order) => (await ris.orders.detail(o.pk))!.timeline.map((e) => `${e.status}${e.stepId ? ` ${e.stepId}` : ''}`);

    await t.test('OMI^O23 NW, XO, SC, CA, DC: the ACKs, and the orders ORM^O01 leaves for the same story', async () => {
      const [omiAcks, ormAcks] = [await mllpSend(port, [hl7([pid('OMI1')], { controlId: 'OMI-A04' }), ...story(omi)]),
        await mllpSend(port, [hl7([pid('ORM1', 'ORM^ORLA')], { controlId: 'ORM-A04' }), ...story(orm)])];
      const expected = (p: string) => [
        [`${p}-A04`, 'AA', null, null],
        [`${p}-1-NW`, 'AA', null, null], [`${p}-1-XO`, 'AA', null, null], [`${p}-1-SCIP`, 'AA', null, null],
        [`${p}-2-NW`, 'AA', null, null], [`${p}-2-CA`, 'AA', null, null],
        [`${p}-3-NW`, 'AA', null, null], [`${p}-3-SCIP`, 'AA', null, null], [`${p}-3-DC`, 'AA', null, null],
        [`${p}-9-CA`, 'AE', '204', 'ORC^1^2^1'], [`${p}-1-SCXX`, 'AE', '103', 'ORC^1^5^1'], [`${p}-2-XO`, 'AE', '207', 'ORC^1^2^1'],
      ];
      assert.deepEqual(codes(omiAcks), expected('OMI'));
      assert.deepEqual(codes(ormAcks), expected('ORM'));
      assert.deepEqual([...new Set(omiAcks.slice(1).map((a) => a.type))], ['ACK^O23^ACK']);
      assert.deepEqual([...new Set(ormAcks.slice(1).map((a) => a.type))], ['ACK^O01^ACK']);
      assert.match(omiAcks[9]!.text, /no order with placerOrderNumber PL-OMI-9/);

      for (const n of ['1', '2', '3']) {
        const [a, b] = [await order(`OMI-${n}`), await order(`ORM-${n}`)];
        assert.deepEqual(comparable(a, await timeline(a)), comparable(b, await timeline(b)), `order ${n}: OMI and ORM leave the same order`);
      }
      const first = await order('OMI-1');
      assert.deepEqual(comparable(first, await timeline(first)), {
        status: 'in-progress', priority: 'ROUTINE', requestedProcedureCode: { code: 'CTHEAD', scheme: 'LOCAL', meaning: 'CT Head' }, description: 'CT Head',
        reason: 'headache', referring: 'REFERRER^RITA', ordering: 'ORDERER^OSCAR',
        steps: [['SPS-1', 'CT', 'CT_SCANNER2', '20240310', '110000', 'IN PROGRESS']], timeline: ['ordered', 'scheduled', 'in-progress'],
      });
      assert.equal(first.studyInstanceUid, '1.2.826.0.1.3680043.10.543.149', 'IPC-3: the placer\'s Study Instance UID');
      assert.equal(first.requestedProcedureId, 'RP-1');
      assert.deepEqual([(await order('OMI-2')).status, (await order('OMI-2')).steps[0]!.status], ['cancelled', 'CANCELLED']);
      assert.deepEqual([(await order('OMI-3')).status, (await order('OMI-3')).steps[0]!.status], ['discontinued', 'DISCONTINUED']);
      // Only the open step of order 1 is offered by the worklist, under its new station.
      assert.deepEqual((await ris.orders.listScheduledSteps({ patientId: 'OMI1' })).map((w) => [w.order.accessionNumber, w.step.stationAeTitle]), [['OMI-1', 'CT_SCANNER2']]);
    });

    await t.test('OMI^O23 with two IPC: one order, two scheduled procedure steps with their station, name and location', async () => {
      const [ack] = await mllpSend(port, [omi('4', 'NW', { start: '20240313080000', priority: 'S', station: 'CT_SCANNER' }, { steps: 2 })]);
      assert.equal(ack!.code, 'AA', ack!.text);
      const o = await order('OMI-4');
      assert.equal(o.priority, 'STAT');
      assert.deepEqual(o.steps.map((s) => [s.stepId, s.modality, s.stationAeTitle, s.stationName, s.location, s.startDate, s.startTime]),
        [['SPS-4', 'CT', 'CT_SCANNER', 'CT ROOM', 'RADIOLOGY', '20240313', '080000'], ['SPS-4.2', 'CT', 'CT_SCANNER', 'CT ROOM', 'RADIOLOGY', '20240313', '080000']]);
      // A retransmission of the same message (same MSH-10): the same ACK, no second order.
      const [again] = await mllpSend(port, [omi('4', 'NW', { start: '20240313080000', priority: 'S', station: 'CT_SCANNER' }, { steps: 2 })]);
      assert.deepEqual(again!.raw, ack!.raw);
    });

    await t.test('ADT^A47: orders, worklist items and index studies follow the new identifier; undo restores them', async () => {
      const place = hl7([pid('A47OLD', 'IDENT^IRIS'), PV1, 'ORC|NW|PL-A47|FL-A47',
        seg('OBR', { 1: '1', 2: 'PL-A47', 3: 'FL-A47', 4: 'CTHEAD^CT Head^LOCAL', 18: 'A47ACC', 20: 'SPS-A47', 21: 'CT_SCANNER', 24: 'CT', 27: '^^^20240314080000^^R' })], { type: 'ORM^O01', controlId: 'A47-ORM' });
      const before = await mllpSend(port, [hl7([pid('A47OLD', 'IDENT^IRIS')], { controlId: 'A47-A04' }), place, hl7([pid('A47TAKEN', 'OTHER^OTTO')], { controlId: 'A47-A04-2' })]);
      assert.deepEqual(before.map((a) => a.code), ['AA', 'AA', 'AA']);
      await ingestStudy(archive, { patientId: 'A47OLD', accessionNumber: 'A47ACC', studyInstanceUid: '1.2.3.47' });

      const a47 = (next: string, prior: string | null, controlId: string) => hl7([pid(next, 'IDENT^IRIS'), ...(prior ? [`MRG|${prior}^^^HOSP^MR`] : [])], { type: 'ADT^A47^ADT_A30', controlId });
      const acks = await mllpSend(port, [
        a47('A47NEW', 'A47OLD', 'A47-1'),
        a47('A47NEW2', 'NOSUCH', 'A47-UNKNOWN'),
        a47('A47TAKEN', 'A47NEW', 'A47-TAKEN'),
        a47('A47NEW3', null, 'A47-NOMRG'),
      ]);
      assert.deepEqual(codes(acks), [['A47-1', 'AA', null, null], ['A47-UNKNOWN', 'AE', '204', 'MRG^1^1^1'], ['A47-TAKEN', 'AE', '205', 'PID^1^3^1'], ['A47-NOMRG', 'AE', '101', 'MRG^1^1^1']]);
      assert.equal(acks[0]!.type, 'ACK^A47^ACK');

      assert.equal(await ris.patients.get({ patientId: 'A47OLD', issuerOfPatientId: 'HOSP' }), null);
      const renamed = (await ris.patients.get({ patientId: 'A47NEW', issuerOfPatientId: 'HOSP' }))!;
      assert.equal(renamed.patientName, 'IDENT^IRIS');
      const change = renamed.history.find((h) => h.kind === 'identifier-change')!;
      assert.ok(change);
      assert.equal((await order('A47ACC')).patient.patientId, 'A47NEW');
      assert.deepEqual((await ris.orders.listScheduledSteps({ accessionNumber: 'A47ACC' })).map((w) => w.patient.patientId), ['A47NEW']);
      for (const id of ['A47NEW2', 'A47NEW3']) assert.equal(await ris.patients.get({ patientId: id, issuerOfPatientId: 'HOSP' }), null, 'nothing of a refused A47 applied');
      assert.equal((await ris.patients.get({ patientId: 'A47TAKEN', issuerOfPatientId: 'HOSP' }))?.patientName, 'OTHER^OTTO');

      const app = await createHttpServer(archive);
      const qido = async (patientId: string) => ((await app.inject({ url: `/dicom-web/studies?PatientID=${patientId}`, headers: ta.authHeaders() })).json() as any[] | undefined ?? []).map((s) => s['0020000D'].Value[0]);
      try {
        assert.deepEqual(await qido('A47NEW'), ['1.2.3.47']);
        assert.deepEqual(await qido('A47OLD'), []);
        const undo = await app.inject({ method: 'POST', url: `/api/ris/patient-changes/${change.id}/undo`, headers: ta.authHeaders() });
        assert.equal(undo.statusCode, 200, undo.body);
        assert.deepEqual(await qido('A47OLD'), ['1.2.3.47']);
        assert.equal((await order('A47ACC')).patient.patientId, 'A47OLD');
        assert.equal(await ris.patients.get({ patientId: 'A47NEW', issuerOfPatientId: 'HOSP' }), null);
        const audits = await archive.audit.search({ action: 'update' }, { limit: 100, offset: 0 });
        assert.ok(audits.items.some((a) => /identifier A47OLD changed to A47NEW/.test(a.detail ?? '')));
        assert.ok(audits.items.some((a) => /identifier-change of A47OLD .*undone/.test(a.detail ?? '')));
      } finally {
        await app.close();
      }
    });
  });
}
