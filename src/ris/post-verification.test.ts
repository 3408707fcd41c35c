// Post-verification (issue 9, "Images to orders"): a study matched to an order by accession number or by
// the Study Instance UID the worklist gave out, whose images carry another Patient ID (or another issuer),
// is linked with a wrong-patient flag: on the link, as a flagged timeline entry, as `identityMismatch` in
// the order's REST detail, audited and logged as a warning; never fixed, and no study is ever attached by
// patient name. And the Performed Series Sequence of an MPPS (sent by dcmjs-dimse) checked against the
// archived instances: named but not archived, archived but not named, on the MPPS and the order detail,
// updated as images arrive after N-SET COMPLETED. On SQLite and PostgreSQL.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { hl7, seg } from '../../test/support/hl7.ts';
import { createHttpServer } from '../http/server.ts';
import { generateUid } from '../dicom/uid.ts';
import { startDicomService } from '../dimse/services/dicom-service.ts';
import { sendMpps, nCreate, nSetCompleted } from '../../test/support/mpps-scu.ts';
import { arrive } from '../../test/support/order-images.ts';
import { risOf } from './module.ts';
import type { ChangeContext } from './ris-context.ts';

const user: ChangeContext = { source: { kind: 'user', ref: 'post-verification.test' }, principal: { kind: 'user', id: 'post-verification.test', displayName: null }, interface: 'rest' };

/** A logger that keeps what is logged at warn and above, as JSON objects. */
function capturingLogger() {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({ write(chunk, _encoding, done) { for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l)); done(); } });
  return { log: pino({ level: 'warn' }, stream), lines };
}

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`post-verification on ${engine}`, async (t) => {
    const captured = capturingLogger();
    const ta: TestArchive = await createTestArchive(engine, { log: captured.log });
    after(() => ta.cleanup());
    const archive = ta.archive;
    const ris = risOf(archive);
    const app = await createHttpServer(archive);
    after(() => app.close());
    const radiologist = (await archive.security.createApiKey({ name: 'reader', roles: ['radiologist'] })).key;
    const detail = async (accession: string) => {
      const list = (await app.inject({ url: `/api/ris/orders?accessionNumber=${accession}`, headers: { authorization: `Bearer ${radiologist}` } })).json();
      const r = await app.inject({ url: `/api/ris/orders/${list.items[0].pk}`, headers: { authorization: `Bearer ${radiologist}` } });
      assert.equal(r.statusCode, 200, r.body);
      return r.json();
    };
    await ris.patients.upsertPatient(user, { patientId: 'PV1', issuerOfPatientId: 'HOSP', patientName: 'RIGHT^PATIENT' });
    const place = async (accession: string) => await ris.orders.placeOrder(user, {
      patient: { patientId: 'PV1', issuerOfPatientId: 'HOSP' }, accessionNumber: accession,
      steps: [{ stepId: `SPS-${accession}`, modality: 'CT', stationAeTitle: 'CT1', startDate: '20240301', startTime: '090000' }],
    });

    await t.test('another Patient ID, matched by accession: linked with the flag, on the timeline, in the REST detail, logged and audited', async () => {
      const order = await place('PVACC1');
      const uid = generateUid();
      await arrive(archive, { patientId: 'OTHER1', patientName: 'WRONG^PATIENT', accessionNumber: 'PVACC1', studyInstanceUid: uid });
      const d = await detail('PVACC1');
      assert.equal(d.status, 'arrived', 'the study is the order\'s procedure: it arrived');
      assert.deepEqual(d.studies.map((s: any) => [s.studyInstanceUid, s.matchedBy, s.patientMismatch, s.studyPatientId, s.studyIssuerOfPatientId, s.studyPatientName]),
        [[uid, 'accession', true, 'OTHER1', null, 'WRONG^PATIENT']]);
      assert.equal(d.identityMismatch.length, 1);
      const m = d.identityMismatch[0];
      assert.deepEqual({ ...m, linkedAt: undefined }, {
        studyInstanceUid: uid, matchedBy: 'accession', differs: ['patientId'], linkedAt: undefined,
        order: { patientId: 'PV1', issuerOfPatientId: 'HOSP', patientName: 'RIGHT^PATIENT' },
        study: { patientId: 'OTHER1', issuerOfPatientId: null, patientName: 'WRONG^PATIENT' },
      });
      assert.deepEqual(d.timeline.map((e: any) => [e.status, e.source.kind, e.flag]), [['ordered', 'user', null], ['scheduled', 'user', null], ['arrived', 'image', null], ['arrived', 'image', 'identity-mismatch']]);
      assert.equal(d.timeline[3].detail, `study ${uid}, matched by accession number, carries Patient ID OTHER1 WRONG^PATIENT; the order's patient is Patient ID PV1 (issuer HOSP)`);
      assert.equal(d.timeline[3].at, m.linkedAt);
      assert.equal(d.patient.patientId, 'PV1', 'nothing re-attributed: the order keeps its patient');
      assert.equal((await archive.index.getStudy(uid))?.patient.patientId, 'OTHER1', 'and the study its own');
      const warning = captured.lines.find((l) => l.studyInstanceUid === uid);
      assert.ok(warning, 'a warning is logged');
      assert.equal(warning.level, 40);
      assert.equal(warning.accessionNumber, 'PVACC1');
      assert.deepEqual(warning.differs, ['patientId']);
      assert.match(warning.msg, /^wrong-patient flag: study .* matched order PVACC1 by accession but carries another patient$/);
      const audits = await archive.audit.search({ action: 'order-record' }, { limit: 100, offset: 0 });
      assert.ok(audits.items.some((a) => /PVACC1: wrong-patient flag/.test(a.detail ?? '')), 'audited');
      assert.ok(order);
    });

    await t.test('the same Patient ID with another issuer is flagged; with no issuer in the images it is not', async () => {
      await place('PVACC2');
      const other = generateUid();
      await arrive(archive, { patientId: 'PV1', issuerOfPatientId: 'OTHERHOSP', patientName: 'RIGHT^PATIENT', accessionNumber: 'PVACC2', studyInstanceUid: other });
      const d = await detail('PVACC2');
      assert.deepEqual(d.identityMismatch.map((m: any) => [m.studyInstanceUid, m.differs, m.study.issuerOfPatientId, m.order.issuerOfPatientId]), [[other, ['issuerOfPatientId'], 'OTHERHOSP', 'HOSP']]);
      assert.equal(d.timeline.filter((e: any) => e.flag === 'identity-mismatch').length, 1);

      await place('PVACC3');
      await arrive(archive, { patientId: 'PV1', patientName: 'RIGHT^PATIENT', accessionNumber: 'PVACC3', studyInstanceUid: generateUid() });
      const fine = await detail('PVACC3');
      assert.equal(fine.identityMismatch, null);
      assert.deepEqual(fine.studies.map((s: any) => [s.patientMismatch, s.studyPatientId]), [[false, 'PV1']]);
      assert.ok(fine.timeline.every((e: any) => e.flag === null));
    });

    await t.test('matched by the Study Instance UID the worklist gave out (no accession in the images): flagged too', async () => {
      const order = await place('PVACC4');
      await arrive(archive, { patientId: 'OTHER4', accessionNumber: '', studyInstanceUid: order.studyInstanceUid });
      const d = await detail('PVACC4');
      assert.deepEqual(d.identityMismatch.map((m: any) => [m.studyInstanceUid, m.matchedBy, m.differs]), [[order.studyInstanceUid, 'study-uid', ['patientId']]]);
      assert.match(d.timeline.at(-1).detail, /matched by Study Instance UID, carries Patient ID OTHER4/);
    });

    await t.test('images before their order (HL7 ORM NW links them): flagged at the link, in the HL7 message\'s transaction', async () => {
      const uid = generateUid();
      await arrive(archive, { patientId: 'OTHER5', accessionNumber: 'PVACC5', studyInstanceUid: uid });
      assert.ok((await ris.core.store.listUnmatched({ limit: 100, offset: 0 })).items.some((s) => s.studyInstanceUid === uid));
      const ack = (await ris.hl7.receive(hl7(['PID|1||PV1^^^HOSP^MR||RIGHT^PATIENT', 'ORC|NW|PL5|FL5', seg('OBR', { 1: '1', 2: 'PL5', 4: 'CT^CT', 18: 'PVACC5', 20: 'SPS5', 21: 'CT1', 24: 'CT' })], { type: 'ORM^O01' }), { address: '127.0.0.1' })).ack.toString('utf8');
      assert.match(ack, /MSA\|AA/);
      const d = await detail('PVACC5');
      assert.deepEqual(d.identityMismatch.map((m: any) => [m.studyInstanceUid, m.study.patientId, m.order.patientId]), [[uid, 'OTHER5', 'PV1']]);
      assert.deepEqual(d.timeline.slice(-2).map((e: any) => [e.status, e.source.kind, e.flag]), [['arrived', 'image', null], ['arrived', 'image', 'identity-mismatch']]);
    });

    await t.test('a second study of an order already arrived: the flag has its own entry, the arrival is not repeated', async () => {
      const second = generateUid();
      await arrive(archive, { patientId: 'OTHER3', accessionNumber: 'PVACC3', studyInstanceUid: second });
      const d = await detail('PVACC3');
      assert.equal(d.studies.length, 2);
      assert.deepEqual(d.identityMismatch.map((m: any) => m.studyInstanceUid), [second]);
      assert.equal(d.timeline.filter((e: any) => e.status === 'arrived' && e.flag === null).length, 1);
      assert.deepEqual(d.timeline.at(-1).flag, 'identity-mismatch');
    });

    const aet = archive.config.dicom.aeTitle;
    await archive.peers.upsert({ aeTitle: 'CT1', host: '127.0.0.1', port: 104, operations: ['store'] });
    const dicom = await startDicomService(archive, { port: 0 });
    after(() => dicom.close());
    const mppsDetail = async (uid: string) => {
      const r = await app.inject({ url: `/api/ris/mpps/${uid}`, headers: { authorization: `Bearer ${radiologist}` } });
      assert.equal(r.statusCode, 200, r.body);
      return r.json();
    };
    const counts = (c: any) => c && { named: c.named, archived: c.archived, missing: c.missing, unnamed: c.unnamed, complete: c.complete };

    await t.test('performed series against the archive: missing and unnamed instances on the MPPS and the order, updated as images arrive', async () => {
      const order = await place('PVACC10');
      const study = order.studyInstanceUid;
      const mppsUid = generateUid();
      const [a, b] = [generateUid(), generateUid()];
      const named = [generateUid(), generateUid(), generateUid()];
      const localizer = generateUid();
      const [created] = await sendMpps(dicom.port, aet, [{ kind: 'create', uid: mppsUid, elements: nCreate({ ...order, patientId: 'PV1', patientName: 'RIGHT^PATIENT', stationAeTitle: 'CT1' }) }], 'CT1');
      assert.equal(created!.status, 0, created!.errorComment);
      assert.equal((await mppsDetail(mppsUid)).performedSeriesCheck, null, 'nothing named yet');
      assert.equal((await detail('PVACC10')).performedSeriesCheck, null, 'no final MPPS yet');
      // Two of the three named instances, and a localizer series the MPPS will not name.
      for (const sop of named.slice(0, 2)) await arrive(archive, { patientId: 'PV1', accessionNumber: 'PVACC10', studyInstanceUid: study, seriesInstanceUid: a, sopInstanceUid: sop });
      await arrive(archive, { patientId: 'PV1', accessionNumber: 'PVACC10', studyInstanceUid: study, seriesInstanceUid: b, sopInstanceUid: localizer });
      const [set] = await sendMpps(dicom.port, aet, [{ kind: 'set', uid: mppsUid, elements: nSetCompleted({ [a]: named }) }], 'CT1');
      assert.equal(set!.status, 0, set!.errorComment);

      const check = (await mppsDetail(mppsUid)).performedSeriesCheck;
      assert.deepEqual(check, {
        mpps: [mppsUid], studies: [study], named: 3, archived: 2, missing: 1, unnamed: 1, complete: false,
        series: [
          { seriesInstanceUid: a, performed: true, named: 3, archived: 2, missing: [named[2]], unnamed: [] },
          { seriesInstanceUid: b, performed: false, named: 0, archived: 0, missing: [], unnamed: [localizer] },
        ],
      });
      const orderCheck = (await detail('PVACC10')).performedSeriesCheck;
      assert.deepEqual(orderCheck, check, 'the order detail shows the same, from its final MPPS');

      // The last image arrives after N-SET COMPLETED (a modality's store queue lagging its MPPS).
      await arrive(archive, { patientId: 'PV1', accessionNumber: 'PVACC10', studyInstanceUid: study, seriesInstanceUid: a, sopInstanceUid: named[2]! });
      assert.deepEqual(counts((await mppsDetail(mppsUid)).performedSeriesCheck), { named: 3, archived: 3, missing: 0, unnamed: 1, complete: false });
      assert.deepEqual(counts((await detail('PVACC10')).performedSeriesCheck), { named: 3, archived: 3, missing: 0, unnamed: 1, complete: false });
      // An instance deleted from the archive is missing again.
      await archive.deletion.delete('instance', named[0]!);
      const afterDelete = (await mppsDetail(mppsUid)).performedSeriesCheck;
      assert.deepEqual([afterDelete.missing, afterDelete.series[0].missing], [1, [named[0]]]);
    });

    await t.test('a modality that made its own Study Instance UID: the named series says where its images are', async () => {
      const order = await place('PVACC11');
      const mppsUid = generateUid();
      const own = generateUid();
      const series = generateUid();
      const sops = [generateUid(), generateUid()];
      // No accession and another Study Instance UID: the study stays unmatched (never attached by name) ...
      for (const sop of sops) await arrive(archive, { patientId: 'PV1', patientName: 'RIGHT^PATIENT', accessionNumber: '', studyInstanceUid: own, seriesInstanceUid: series, sopInstanceUid: sop });
      assert.equal((await detail('PVACC11')).studies.length, 0);
      const answers = await sendMpps(dicom.port, aet, [
        { kind: 'create', uid: mppsUid, elements: nCreate({ ...order, patientId: 'PV1', patientName: 'RIGHT^PATIENT', stationAeTitle: 'CT1' }) }, { kind: 'set', uid: mppsUid, elements: nSetCompleted({ [series]: sops }) },
      ], 'CT1');
      assert.deepEqual(answers.map((x) => x.status), [0, 0]);
      // ... but the MPPS's check finds its instances archived, in that study.
      const check = (await mppsDetail(mppsUid)).performedSeriesCheck;
      assert.deepEqual([check.studies, counts(check)], [[own], { named: 2, archived: 2, missing: 0, unnamed: 0, complete: true }]);
      assert.deepEqual(counts((await detail('PVACC11')).performedSeriesCheck), { named: 2, archived: 2, missing: 0, unnamed: 0, complete: true });
    });

    await t.test('never attached by patient name: the order patient\'s name and ID with an unknown accession stays unmatched', async () => {
      const uid = generateUid();
      await arrive(archive, { patientId: 'PV1', patientName: 'RIGHT^PATIENT', accessionNumber: 'NOT-AN-ORDER', studyInstanceUid: uid });
      const unmatched = (await app.inject({ url: '/api/ris/unmatched-studies', headers: { authorization: `Bearer ${radiologist}` } })).json();
      assert.ok(unmatched.items.some((s: any) => s.studyInstanceUid === uid && s.patientId === 'PV1'));
      for (const accession of ['PVACC1', 'PVACC2', 'PVACC3', 'PVACC4', 'PVACC5', 'PVACC10', 'PVACC11']) assert.ok((await detail(accession)).studies.every((s: any) => s.studyInstanceUid !== uid));
    });
  });
}
