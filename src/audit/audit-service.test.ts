/**
 * The audit service end to end on both index engines: a scripted session (login, failed login, upload,
 * search, view, move, delete, logout) gives exactly the expected records; its FHIR export validates
 * against the R4 AuditEvent definition; its DICOM XML has the right EventIDs and participant objects;
 * once-per-study de-duplication, the request accumulator and group commit.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SqlAuditStore } from '../adapters/index/sql-audit-store.ts';
import { openTestDatabase, type TestDatabase } from '../../test/support/postgres.ts';
import type { AuditPrincipal, AuditRecord, AuditStore } from '../ports/audit-store.ts';
import { AuditService, type AuditExportFormat } from './audit-service.ts';
import { validateFhirAuditEvent } from '../../test/support/fhir-audit-event.ts';
import { DCM_SYSTEM } from './event-codes.ts';
import { toFhirAuditEvent } from './fhir-audit-event.ts';
import { child, childrenNamed, parseXml } from '../../test/support/xml.ts';
import { AtriumError } from '../errors.ts';

class TestClock {
  #t = Date.parse('2031-03-01T08:00:00.000Z');
  now = (): Date => new Date(this.#t);
  advance(ms: number): void {
    this.#t += ms;
  }
}

const MINUTE = 60_000;
const CT = '1.2.840.10008.5.1.4.1.1.2';
const STUDY = '1.2.826.0.1.3680043.8.498.1';
const alice: AuditPrincipal = { kind: 'user', id: 'alice', displayName: 'Alice Martin', roles: ['radiologist'] };
const browser = { address: '10.1.1.1' };

async function collect(chunks: AsyncIterable<string>): Promise<string> {
  let text = '';
  for await (const chunk of chunks) text += chunk;
  return text;
}

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`AuditService on ${kind}`, () => {
    let engine: TestDatabase;
    let clock: TestClock;
    let audit: AuditService;
    const sunk: AuditRecord[] = [];

    before(async () => {
      engine = await openTestDatabase(kind);
      clock = new TestClock();
      audit = new AuditService({ store: new SqlAuditStore(engine.database), sourceId: 'ATRIUM', clock: clock.now, sinks: [{ sendAudit: (r) => sunk.push(r) }] });

      // The scripted session, one step a minute.
      const steps: Array<() => Promise<unknown>> = [
        () => audit.record({ principal: alice, action: 'login', interface: 'ui', origin: browser }),
        () => audit.record({ principal: { kind: 'user', id: 'mallory' }, action: 'login-failed', interface: 'ui', origin: { address: '203.0.113.9' },
          outcome: 'minor-failure', outcomeReason: 'wrong password' }),
        () => audit.record({ principal: alice, action: 'store', interface: 'rest', origin: browser,
          studies: [{ studyInstanceUid: STUDY, patientId: 'P1', accessionNumber: 'A100', sopClassUids: [CT], numberOfInstances: 1 }] }),
        () => audit.record({ principal: alice, action: 'query', interface: 'ui', origin: browser, query: 'patientName=DOE*&modality=CT' }),
        () => audit.record({ principal: alice, action: 'read', interface: 'dicomweb', origin: browser, studies: [{ studyInstanceUid: STUDY, patientId: 'P1' }],
          detail: 'GET /dicomweb/studies/…/series/…/instances/…/frames/1' }),
        () => audit.record({ principal: { kind: 'dicom-ae', id: 'WS1' }, action: 'export', interface: 'dimse', origin: { address: '10.1.1.50', aeTitle: 'WS1' },
          destination: { aeTitle: 'WS2', address: 'ws2.example', port: 104 }, studies: [{ studyInstanceUid: STUDY, patientId: 'P1', numberOfInstances: 1 }] }),
        () => audit.record({ principal: alice, action: 'delete', interface: 'rest', origin: browser, studies: [{ studyInstanceUid: STUDY, patientId: 'P1' }] }),
        () => audit.record({ principal: alice, action: 'logout', interface: 'ui', origin: browser }),
      ];
      for (const step of steps) {
        await step();
        clock.advance(MINUTE);
      }
    });
    after(async () => await engine?.cleanup());

    test('the session gives exactly the expected records, each also sent to the sinks', async () => {
      const all = await audit.search({}, { limit: 100, offset: 0 });
      assert.equal(all.total, 8);
      const oldestFirst = [...all.items].reverse();
      assert.deepEqual(oldestFirst.map((r) => [r.time.slice(11, 16), r.principal.id, r.action, r.interface, r.outcome]), [
        ['08:00', 'alice', 'login', 'ui', 'success'],
        ['08:01', 'mallory', 'login-failed', 'ui', 'minor-failure'],
        ['08:02', 'alice', 'store', 'rest', 'success'],
        ['08:03', 'alice', 'query', 'ui', 'success'],
        ['08:04', 'alice', 'read', 'dicomweb', 'success'],
        ['08:05', 'WS1', 'export', 'dimse', 'success'],
        ['08:06', 'alice', 'delete', 'rest', 'success'],
        ['08:07', 'alice', 'logout', 'ui', 'success'],
      ]);
      assert.deepEqual(sunk.map((r) => r.id), oldestFirst.map((r) => r.id));
      const store = oldestFirst[2];
      assert.deepEqual(store.patientIds, ['P1']);
      assert.deepEqual(store.principal, { kind: 'user', id: 'alice', displayName: 'Alice Martin', roles: ['radiologist'] });
      assert.deepEqual(store.origin, { address: '10.1.1.1' });
      assert.equal(store.sourceId, 'ATRIUM');
      assert.equal(oldestFirst[1].outcomeReason, 'wrong password');
      assert.equal(oldestFirst[3].query, 'patientName=DOE*&modality=CT');
      assert.deepEqual(oldestFirst[5].destination, { aeTitle: 'WS2', address: 'ws2.example', port: 104 });
    });

    test('search by each filter', async () => {
      const actions = async (filter: Parameters<AuditService['search']>[0]) =>
        (await audit.search(filter, { limit: 100, offset: 0 })).items.map((r) => r.action).reverse();
      assert.deepEqual(await actions({ user: 'alice' }), ['login', 'store', 'query', 'read', 'delete', 'logout']);
      assert.deepEqual(await actions({ patientId: 'P1' }), ['store', 'read', 'export', 'delete']);
      assert.deepEqual(await actions({ studyInstanceUid: STUDY, interface: 'dimse' }), ['export']);
      assert.deepEqual(await actions({ outcome: 'minor-failure' }), ['login-failed']);
      assert.deepEqual(await actions({ action: 'query' }), ['query']);
      // Bounds as dates or date-times in any offset; `to` exclusive.
      assert.deepEqual(await actions({ from: '2031-03-01T09:02:00+01:00', to: '2031-03-01T08:05:00Z' }), ['store', 'query', 'read']);
      await assert.rejects(audit.search({ from: 'yesterday' }, { limit: 1, offset: 0 }), (e: unknown) => e instanceof AtriumError && e.code === 'invalid-input');
      await assert.rejects(audit.search({ action: 'peek' as never }, { limit: 1, offset: 0 }), /action must be one of/);
    });

    test('the FHIR export is a Bundle of AuditEvents that validate against R4', async () => {
      const bundle = JSON.parse(await collect(audit.export({}, 'fhir')));
      assert.equal(bundle.resourceType, 'Bundle');
      assert.equal(bundle.type, 'collection');
      assert.equal(bundle.entry.length, 8);
      for (const entry of bundle.entry) {
        assert.deepEqual(validateFhirAuditEvent(entry.resource), [], JSON.stringify(entry.resource));
        assert.equal(entry.fullUrl, `urn:uuid:${entry.resource.id}`);
        assert.equal(entry.resource.type.system, DCM_SYSTEM);
        assert.equal(entry.resource.agent.filter((a: { requestor: boolean }) => a.requestor).length, 1);
        assert.ok(entry.resource.source.observer);
      }
      const events = bundle.entry.map((e: { resource: any }) => e.resource);
      assert.deepEqual(events.map((e: any) => [e.type.code, e.action, e.outcome, e.subtype?.[0].code ?? null]), [
        ['110114', 'E', '0', '110122'],
        ['110114', 'E', '4', '110122'],
        ['110104', 'C', '0', null],
        ['110112', 'E', '0', null],
        ['110103', 'R', '0', null],
        ['110104', 'R', '0', null],
        ['110105', 'D', '0', null],
        ['110114', 'E', '0', '110123'],
      ]);
      const store = events[2];
      assert.equal(store.recorded, '2031-03-01T08:02:00.000Z');
      assert.deepEqual(store.entity.map((e: any) => [e.what.type, e.what.identifier.value, e.role.code]), [
        ['Patient', 'P1', '1'], ['ImagingStudy', `urn:oid:${STUDY}`, '3'],
      ]);
      const query = events[3].entity[0];
      assert.equal(query.role.code, '24');
      assert.equal(Buffer.from(query.query, 'base64').toString(), 'patientName=DOE*&modality=CT');
      const move = events[5];
      assert.deepEqual(move.agent.map((a: any) => [a.who.identifier.value, a.requestor, a.type?.coding[0].code ?? null]), [
        ['WS1', true, null], ['ATRIUM', false, '110153'], ['WS2', false, '110152'],
      ]);
      assert.equal(events[1].outcomeDesc, 'wrong password');

      const lines = (await collect(audit.export({ user: 'alice' }, 'fhir-ndjson'))).trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(lines.length, 6);
      for (const line of lines) assert.deepEqual(validateFhirAuditEvent(line), []);
    });

    test('the DICOM XML export has the EventIDs, participants and participant objects of PS3.15 A.5', async () => {
      const root = parseXml(await collect(audit.export({}, 'dicom-xml')));
      assert.equal(root.name, 'AuditMessages');
      const messages = childrenNamed(root, 'AuditMessage');
      assert.equal(messages.length, 8);
      const event = (m: (typeof messages)[number]) => child(m, 'EventIdentification');
      assert.deepEqual(messages.map((m) => [child(event(m), 'EventID').attributes['csd-code'], event(m).attributes.EventActionCode,
        event(m).attributes.EventOutcomeIndicator]), [
        ['110114', 'E', '0'], ['110114', 'E', '4'], ['110104', 'C', '0'], ['110112', 'E', '0'],
        ['110103', 'R', '0'], ['110104', 'R', '0'], ['110105', 'D', '0'], ['110114', 'E', '0'],
      ]);
      for (const m of messages) {
        assert.equal(child(event(m), 'EventID').attributes.codeSystemName, 'DCM');
        assert.equal(child(m, 'AuditSourceIdentification').attributes.AuditSourceID, 'ATRIUM');
        assert.equal(childrenNamed(m, 'ActiveParticipant').filter((p) => p.attributes.UserIsRequestor === 'true').length, 1);
      }
      assert.equal(child(event(messages[0]), 'EventTypeCode').attributes['csd-code'], '110122');
      assert.equal(child(event(messages[7]), 'EventTypeCode').attributes['csd-code'], '110123');
      assert.equal(child(event(messages[1]), 'EventOutcomeDescription').text, 'wrong password');

      const [patient, study] = childrenNamed(messages[2], 'ParticipantObjectIdentification');
      assert.deepEqual(patient.attributes, { ParticipantObjectID: 'P1', ParticipantObjectTypeCode: '1', ParticipantObjectTypeCodeRole: '1' });
      assert.equal(child(patient, 'ParticipantObjectIDTypeCode').attributes['csd-code'], '2');
      assert.deepEqual(study.attributes, { ParticipantObjectID: STUDY, ParticipantObjectTypeCode: '2', ParticipantObjectTypeCodeRole: '3' });
      assert.equal(child(study, 'ParticipantObjectIDTypeCode').attributes['csd-code'], '110180');
      assert.deepEqual(child(study, 'SOPClass').attributes, { UID: CT, NumberOfInstances: '1' });
      assert.equal(child(study, 'Accession').attributes.Number, 'A100');
      const requestor = childrenNamed(messages[2], 'ActiveParticipant')[0];
      assert.deepEqual(requestor.attributes, { UserID: 'alice', UserName: 'Alice Martin', UserIsRequestor: 'true', NetworkAccessPointID: '10.1.1.1', NetworkAccessPointTypeCode: '2' });
      assert.deepEqual(childrenNamed(requestor, 'RoleIDCode').map((r) => r.attributes['csd-code']), ['110153', 'radiologist']);

      const query = child(messages[3], 'ParticipantObjectIdentification');
      assert.equal(child(query, 'ParticipantObjectIDTypeCode').attributes['csd-code'], '110181');
      assert.equal(Buffer.from(child(query, 'ParticipantObjectQuery').text, 'base64').toString(), 'patientName=DOE*&modality=CT');

      const [, archive, destination] = childrenNamed(messages[5], 'ActiveParticipant');
      assert.equal(childrenNamed(messages[5], 'ActiveParticipant')[0].attributes.AlternativeUserID, 'AETITLES=WS1');
      assert.equal(child(archive, 'RoleIDCode').attributes['csd-code'], '110153');
      assert.equal(destination.attributes.AlternativeUserID, 'AETITLES=WS2');
      assert.equal(destination.attributes.NetworkAccessPointTypeCode, '1');
      assert.equal(child(destination, 'RoleIDCode').attributes['csd-code'], '110152');
      const deleted = childrenNamed(messages[6], 'ParticipantObjectIdentification')[1];
      assert.equal(deleted.attributes.ParticipantObjectDataLifeCycle, '14');
    });

    test('json and ndjson exports carry the records as stored', async () => {
      const asJson = JSON.parse(await collect(audit.export({ patientId: 'P1' }, 'json')));
      assert.deepEqual(asJson.map((r: AuditRecord) => r.action), ['store', 'read', 'export', 'delete']);
      const ndjson = (await collect(audit.export({}, 'ndjson'))).trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(ndjson.length, 8);
      assert.deepEqual(ndjson[0], (await audit.search({ action: 'login' }, { limit: 1, offset: 0 })).items[0]);
      assert.equal(await collect(audit.export({ user: 'nobody' }, 'json')), '[\n]\n');
      assert.equal(await collect(audit.export({ user: 'nobody' }, 'dicom-xml')), '<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n</AuditMessages>\n');
      await assert.rejects(collect(audit.export({}, 'csv' as AuditExportFormat)), /format must be one of/);
    });

    test('invalid events are refused, not half-written', async () => {
      await assert.rejects(audit.record({ principal: { kind: 'user', id: null }, action: 'read', interface: 'ui' }), /principal.id is required/);
      await assert.rejects(audit.record({ principal: alice, action: 'peek' as never, interface: 'ui' }), /action must be one of/);
      await assert.rejects(audit.record({ principal: alice, action: 'read', interface: 'ui', time: 'not a date' }), /time is not a date/);
      assert.equal((await audit.search({}, { limit: 1, offset: 0 })).total, 8);
    });
  });
}

/** A record with nothing in it, to be completed by a test. */
function store0(): AuditRecord {
  return {
    seq: 1, id: '6f1c3d2e-0000-4000-8000-000000000009', time: '2031-03-01T08:00:00.000Z', principal: { kind: 'user', id: 'root', displayName: null, roles: ['administrator'] },
    action: 'read', interface: 'rest', origin: null, destination: null, patientIds: [], studies: [], objects: [], query: null, outcome: 'success',
    outcomeReason: null, detail: null, sourceId: 'ATRIUM',
  };
}

/** A store that counts appends, over an in-memory list. */
class CountingStore implements AuditStore {
  appends = 0;
  readonly records: AuditRecord[] = [];
  async append(records: Parameters<AuditStore['append']>[0]): Promise<AuditRecord[]> {
    this.appends++;
    await new Promise((resolve) => setImmediate(resolve));
    const stored = records.map((r) => ({ seq: this.records.length + 1, ...r }));
    for (const r of stored) this.records.push({ ...r, seq: this.records.length + 1 });
    return stored;
  }
  async search(): Promise<never> { throw new Error('unused'); }
  async *scan(): AsyncIterable<AuditRecord> { yield* this.records; }
}

describe('AuditService without a database', () => {
  test('100 frame reads of one study make one record; another study, principal or a later window make more', async () => {
    const clock = new TestClock();
    const store = new CountingStore();
    const audit = new AuditService({ store, sourceId: 'ATRIUM', clock: clock.now });
    const frame = () => audit.auditOncePerStudy(alice, 'read', STUDY, 10 * MINUTE, { interface: 'dicomweb', origin: browser, study: { patientId: 'P1' } });
    const concurrent = await Promise.all(Array.from({ length: 50 }, frame));
    for (let i = 0; i < 50; i++) {
      clock.advance(1_000);
      await frame();
    }
    assert.equal(store.records.length, 1);
    assert.ok(concurrent.every((r) => r.id === store.records[0].id));
    assert.deepEqual(store.records[0].patientIds, ['P1']);

    await audit.auditOncePerStudy(alice, 'read', '1.2.3.999', 10 * MINUTE, { origin: browser });
    await audit.auditOncePerStudy({ kind: 'user', id: 'bob' }, 'read', STUDY, 10 * MINUTE, { origin: browser });
    assert.equal(store.records.length, 3);
    clock.advance(10 * MINUTE);
    await frame();
    assert.equal(store.records.length, 4);
  });

  test('a request accumulator writes one record per study with its counts', async () => {
    const store = new CountingStore();
    const audit = new AuditService({ store, sourceId: 'ATRIUM', clock: new TestClock().now });
    const move = audit.accumulator({ principal: { kind: 'dicom-ae', id: 'WS1' }, action: 'export', interface: 'dimse', destination: { aeTitle: 'WS2' } });
    for (let i = 0; i < 30; i++) move.add({ studyInstanceUid: i % 3 === 0 ? '1.2.3.1' : '1.2.3.2', patientId: 'P1', seriesInstanceUid: `1.2.3.${i % 2}.9`, sopClassUid: CT });
    assert.equal(move.size, 2);
    const records = await move.flush({ outcome: 'minor-failure', outcomeReason: '1 of 30 sub-operations failed' });
    assert.deepEqual(records.map((r) => [r.studies[0].studyInstanceUid, r.studies[0].numberOfInstances, r.outcome]).sort(), [
      ['1.2.3.1', 10, 'minor-failure'], ['1.2.3.2', 20, 'minor-failure'],
    ]);
    assert.equal(move.size, 0);
    for (const r of records) assert.deepEqual(validateFhirAuditEvent(toFhirAuditEvent(r)), []);
  });

  test('records arriving during a commit are written together by the next one (group commit)', async () => {
    const store = new CountingStore();
    const audit = new AuditService({ store, sourceId: 'ATRIUM', clock: new TestClock().now });
    const records = await Promise.all(Array.from({ length: 50 }, (_, i) => audit.record({ principal: alice, action: 'read', interface: 'dicomweb', detail: `#${i}` })));
    assert.equal(store.appends, 2);
    assert.deepEqual(records.map((r) => r.detail), Array.from({ length: 50 }, (_, i) => `#${i}`));
  });

  test('a failed commit fails the records of that batch, and the next ones still go through', async () => {
    const store = new CountingStore();
    let fail = true;
    const original = store.append.bind(store);
    store.append = async (records) => {
      if (fail) { fail = false; throw new Error('disk full'); }
      return await original(records);
    };
    const audit = new AuditService({ store, sourceId: 'ATRIUM', clock: new TestClock().now });
    await assert.rejects(audit.record({ principal: alice, action: 'read', interface: 'ui' }), /disk full/);
    await audit.record({ principal: alice, action: 'read', interface: 'ui' });
    assert.equal(store.records.length, 1);
  });

  test('an export read to its end is recorded as audit-log-used with its filter; an abandoned one as a failure; a record without objects still exports', async () => {
    const store = new CountingStore();
    const audit = new AuditService({ store, sourceId: 'ATRIUM', clock: new TestClock().now });
    await audit.record({ principal: alice, action: 'read', interface: 'ui', studies: [{ studyInstanceUid: STUDY }] });
    // As written before records had objects.
    store.records.push({ ...store.records[0], seq: 2, id: '6f1c3d2e-0000-4000-8000-000000000002', objects: undefined as never });
    const auditor = { principal: { kind: 'user' as const, id: 'olga', roles: ['auditor'] }, interface: 'rest' as const, origin: browser };
    const xml = await collect(await audit.exportAs(auditor, { user: 'alice' }, 'dicom-xml'));
    assert.equal(childrenNamed(parseXml(xml), 'AuditMessage').length, 2);
    const used = store.records.at(-1)!;
    assert.deepEqual([used.action, used.outcome, used.query, used.principal.id], ['audit-log-used', 'success', 'user=alice&format=dicom-xml', 'olga']);
    assert.deepEqual(used.objects, [{ type: 'audit-trail', id: 'urn:atrium:audit-trail:ATRIUM', name: 'Security Audit Log', change: 'exported' }]);
    for (const r of store.records) assert.deepEqual(validateFhirAuditEvent(toFhirAuditEvent(r)), []);

    const chunks = (await audit.exportAs(auditor, {}, 'ndjson'))[Symbol.asyncIterator]();
    await chunks.next();
    await chunks.return!();
    assert.deepEqual([store.records.at(-1)!.outcome, store.records.at(-1)!.outcomeReason], ['serious-failure', 'the export was abandoned before its end']);
    await assert.rejects(audit.exportAs(auditor, { from: 'yesterday' }, 'json'), /from must be an ISO-8601/);
    assert.deepEqual([store.records.at(-1)!.outcome, store.records.at(-1)!.query], ['minor-failure', 'from=yesterday&format=json']);
  });

  test('a security change is a Security Alert with 110137, and 110136 when roles were set', () => {
    const base = store0();
    const created = toFhirAuditEvent({ ...base, action: 'security-change', objects: [{ type: 'user', id: 'rita', change: 'created', attributes: ['password', 'roles'] }] });
    assert.deepEqual([created.type.code, created.action, created.subtype!.map((c) => c.code)], ['110113', 'E', ['110137', '110136']]);
    assert.deepEqual(validateFhirAuditEvent(created), []);
    const password = toFhirAuditEvent({ ...base, action: 'security-change', objects: [{ type: 'user', id: 'rita', change: 'password-set', attributes: ['password'] }] });
    assert.deepEqual(password.subtype!.map((c) => c.code), ['110137']);
    assert.deepEqual(toFhirAuditEvent({ ...base, action: 'network-config', objects: [{ type: 'dicom-peer', id: 'CT1', change: 'deleted' }] }).subtype!.map((c) => c.code), ['110128']);
    assert.deepEqual(toFhirAuditEvent({ ...base, action: 'job-control', objects: [{ type: 'job', id: '7', change: 'cancelled' }] }).subtype!.map((c) => c.code), ['110132']);
  });

  test('the validator catches what R4 forbids', () => {
    const good = toFhirAuditEvent({
      seq: 1, id: '6f1c3d2e-0000-4000-8000-000000000001', time: '2031-03-01T08:00:00.000Z', principal: { kind: 'anonymous', id: null, displayName: null, roles: [] },
      action: 'read', interface: 'ui', origin: null, destination: null, patientIds: [], studies: [], objects: [], query: null, outcome: 'success',
      outcomeReason: null, detail: null, sourceId: 'ATRIUM',
    });
    assert.deepEqual(validateFhirAuditEvent(good), []);
    const broken: any = structuredClone(good);
    broken.action = 'X';
    broken.outcome = '1';
    broken.recorded = '2031-03-01 08:00';
    broken.agent[0].requestor = 'yes';
    delete broken.source.observer;
    broken.entity = [{ name: 'n', query: 'not base64!' }];
    broken.colour = 'blue';
    const problems = validateFhirAuditEvent(broken);
    for (const expected of [/action: "X"/, /outcome: "1"/, /recorded: must be an instant/, /requestor: must be a boolean/, /observer: required/,
      /query: must be base64Binary/, /sev-1/, /colour: not an element/]) {
      assert.ok(problems.some((p) => expected.test(p)), `${expected} in ${problems.join('; ')}`);
    }
    assert.ok(validateFhirAuditEvent({ resourceType: 'AuditEvent' }).some((p) => /agent: required/.test(p)));
  });
});
