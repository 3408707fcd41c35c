/**
 * Administrative changes over REST are in the audit trail: each change of a user, an API key, a DICOM peer,
 * a job or a quarantined object makes exactly one record with its action, principal, object and outcome
 * (refusals that reached the service included); reading and exporting the trail is audit-log-used with the
 * filter as its query; the FHIR and DICOM exports carry the Security Alert codes; no secret is anywhere.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { validateFhirAuditEvent } from '../../../test/support/fhir-audit-event.ts';
import { child, childrenNamed, parseXml, type XmlElement } from '../../../test/support/xml.ts';
import type { AuditRecord } from '../../ports/audit-store.ts';
import { createHttpServer } from '../server.ts';

const TESTDATA = new URL('../../../../shared/testdata/dicom/', import.meta.url);
const FIRST_PASSWORD = 'first-Secret-pass-4711';
const SECOND_PASSWORD = 'second-Secret-pass-0815';
const TOO_SHORT = 'short-9';

let t: TestArchive;
let http: FastifyInstance;
let base: string;
/** Secrets handed out or sent during the tests: none may appear in any record or export. */
const secrets: string[] = [FIRST_PASSWORD, SECOND_PASSWORD, TOO_SHORT];
const ADMIN = { kind: 'api-key', id: '000000000a11', displayName: 'test administrator', roles: ['administrator'] };

before(async () => {
  t = await createTestArchive('sqlite+fs');
  secrets.push(t.adminKey);
  http = await createHttpServer(t.archive);
  base = await http.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await http?.close();
  await t?.cleanup();
});

/** Every record, oldest first, read from the service (not over REST: that would be a record itself). */
async function allRecords(): Promise<AuditRecord[]> {
  await t.archive.audit.drain();
  return (await t.archive.audit.search({}, { limit: 10_000, offset: 0 })).items.reverse();
}

/** The records `run` makes (waiting a little for those written once a response has ended). */
async function recordsOf(run: () => Promise<void>, expected = 1): Promise<AuditRecord[]> {
  const last = (await allRecords()).at(-1)?.seq ?? 0;
  await run();
  let made: AuditRecord[] = [];
  for (let i = 0; i < 50; i++) {
    made = (await allRecords()).filter((r) => r.seq > last);
    if (made.length >= expected) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return made;
}

/** The one record `run` makes, checked to be the only one. */
async function recordOf(run: () => Promise<void>): Promise<AuditRecord> {
  const made = await recordsOf(run);
  assert.equal(made.length, 1, `one record, got ${JSON.stringify(made.map((r) => [r.action, r.objects]))}`);
  return made[0];
}

async function call(method: string, url: string, body?: unknown, status?: number): Promise<any> {
  const response = await fetch(`${base}${url}`, {
    method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  const text = await response.text();
  if (status !== undefined) assert.equal(response.status, status, `${method} ${url}: ${text}`);
  return text ? JSON.parse(text) : null;
}

function assertBy(record: AuditRecord, action: string, outcome = 'success'): void {
  assert.equal(record.action, action);
  assert.equal(record.outcome, outcome, record.outcomeReason ?? '');
  assert.deepEqual(record.principal, ADMIN);
  assert.equal(record.interface, 'rest');
  assert.equal(record.origin?.address, '127.0.0.1');
}

let userId: number;

test('users: create, a refused create, roles and disabled, password set and refused, unknown user, delete', async () => {
  let created: any;
  const create = await recordOf(async () => {
    created = await call('POST', '/api/users', { username: 'Rita', password: FIRST_PASSWORD, roles: ['radiologist'], displayName: 'Rita R.' }, 201);
  });
  userId = created.id;
  assertBy(create, 'security-change');
  assert.deepEqual(create.objects, [{ type: 'user', id: 'rita', change: 'created', attributes: ['password', 'roles', 'displayName'] }]);
  assert.equal(create.detail, 'roles: radiologist');

  const weak = await recordOf(async () => { await call('POST', '/api/users', { username: 'weak', password: TOO_SHORT, roles: ['radiologist'] }, 400); });
  assertBy(weak, 'security-change', 'minor-failure');
  assert.match(weak.outcomeReason!, /at least 12 characters/);
  assert.deepEqual(weak.objects.map((o) => [o.type, o.id, o.change]), [['user', 'weak', 'created']]);

  const patched = await recordOf(async () => { await call('PATCH', `/api/users/${userId}`, { roles: ['radiologist', 'technologist'], disabled: true }, 200); });
  assertBy(patched, 'security-change');
  assert.deepEqual(patched.objects, [{ type: 'user', id: 'rita', change: 'disabled', attributes: ['roles', 'disabled'] }]);
  assert.equal(patched.detail, 'roles: radiologist, technologist (were radiologist)');

  const named = await recordOf(async () => { await call('PATCH', `/api/users/${userId}`, { dicomPersonName: 'R^Rita', disabled: false }, 200); });
  assert.deepEqual(named.objects, [{ type: 'user', id: 'rita', change: 'enabled', attributes: ['dicomPersonName', 'disabled'] }]);

  const password = await recordOf(async () => { await call('PUT', `/api/users/${userId}/password`, { password: SECOND_PASSWORD }, 204); });
  assertBy(password, 'security-change');
  assert.deepEqual(password.objects, [{ type: 'user', id: 'rita', change: 'password-set', attributes: ['password'] }]);

  const shortPassword = await recordOf(async () => { await call('PUT', `/api/users/${userId}/password`, { password: TOO_SHORT }, 400); });
  assertBy(shortPassword, 'security-change', 'minor-failure');
  assert.equal(shortPassword.objects[0].id, 'rita');

  const unknown = await recordOf(async () => { await call('PATCH', '/api/users/99999', { disabled: true }, 404); });
  assertBy(unknown, 'security-change', 'minor-failure');
  assert.equal(unknown.outcomeReason, 'no user 99999');
  assert.equal(unknown.objects[0].id, '#99999');

  // A request refused before the service (a malformed id) changes nothing, and is not an administrative change.
  assert.deepEqual(await recordsOf(async () => { await call('DELETE', '/api/users/abc', undefined, 400); }, 0), []);
});

test('API keys: create (the key in the answer only), revoke, revoke an unknown key', async () => {
  let created: any;
  const create = await recordOf(async () => {
    created = await call('POST', '/api/api-keys', { name: 'pacs bridge', roles: ['technologist'], routePrefixes: ['/dicom-web/'] }, 201);
  });
  secrets.push(created.key);
  assertBy(create, 'security-change');
  assert.deepEqual(create.objects, [{ type: 'api-key', id: created.apiKey.keyId, name: 'pacs bridge', change: 'created', attributes: ['roles', 'routePrefixes'] }]);

  const refused = await recordOf(async () => { await call('POST', '/api/api-keys', { name: 'bad', roles: ['technologist'], routePrefixes: ['dicom-web'] }, 400); });
  assertBy(refused, 'security-change', 'minor-failure');
  assert.deepEqual(refused.objects.map((o) => [o.id, o.name]), [['(none)', 'bad']]);

  const revoke = await recordOf(async () => { await call('DELETE', `/api/api-keys/${created.apiKey.keyId}`, undefined, 204); });
  assertBy(revoke, 'security-change');
  assert.deepEqual(revoke.objects, [{ type: 'api-key', id: created.apiKey.keyId, name: 'pacs bridge', change: 'revoked' }]);

  const unknown = await recordOf(async () => { await call('DELETE', '/api/api-keys/ffffffffffff', undefined, 404); });
  assertBy(unknown, 'security-change', 'minor-failure');
  assert.equal(unknown.objects[0].id, 'ffffffffffff');

  const deleted = await recordOf(async () => { await call('DELETE', `/api/users/${userId}`, undefined, 204); });
  assertBy(deleted, 'security-change');
  assert.deepEqual(deleted.objects, [{ type: 'user', id: 'rita', change: 'deleted' }]);
});

test('DICOM peers: added, changed, removed, an unknown one removed', async () => {
  const added = await recordOf(async () => { await call('PUT', '/api/dicom/peers/MODALITY7', { host: '127.0.0.1', port: 11112 }, 200); });
  assertBy(added, 'network-config');
  assert.deepEqual(added.objects, [{ type: 'dicom-peer', id: 'MODALITY7', change: 'created', attributes: ['host', 'port'] }]);
  const changed = await recordOf(async () => { await call('PUT', '/api/dicom/peers/MODALITY7', { host: '127.0.0.1', port: 11113, operations: ['echo'] }, 200); });
  assert.deepEqual(changed.objects, [{ type: 'dicom-peer', id: 'MODALITY7', change: 'updated', attributes: ['host', 'port', 'operations'] }]);
  assert.equal(changed.detail, '127.0.0.1:11113; operations: echo');
  const bad = await recordOf(async () => { await call('PUT', '/api/dicom/peers/MODALITY8', { host: '127.0.0.1', port: 'many' }, 400); });
  assertBy(bad, 'network-config', 'minor-failure');
  const removed = await recordOf(async () => { await call('DELETE', '/api/dicom/peers/MODALITY7', undefined, 204); });
  assertBy(removed, 'network-config');
  assert.deepEqual(removed.objects, [{ type: 'dicom-peer', id: 'MODALITY7', change: 'deleted' }]);
  const unknown = await recordOf(async () => { await call('DELETE', '/api/dicom/peers/MODALITY7', undefined, 404); });
  assertBy(unknown, 'network-config', 'minor-failure');
});

test('jobs: cancelled, retried, an unknown one', async () => {
  const job = await t.archive.jobs.enqueue('audit-test-job', {});
  const cancelled = await recordOf(async () => { await call('POST', `/api/jobs/${job.id}/cancel`, undefined, 200); });
  assertBy(cancelled, 'job-control');
  assert.deepEqual(cancelled.objects, [{ type: 'job', id: String(job.id), name: 'audit-test-job', change: 'cancelled' }]);
  const retried = await recordOf(async () => { await call('POST', `/api/jobs/${job.id}/retry`, undefined, 200); });
  assert.deepEqual(retried.objects, [{ type: 'job', id: String(job.id), name: 'audit-test-job', change: 'retried' }]);
  const unknown = await recordOf(async () => { await call('POST', '/api/jobs/999999/cancel', undefined, 404); });
  assertBy(unknown, 'job-control', 'minor-failure');
  assert.equal(unknown.objects[0].id, '999999');
  await t.archive.jobs.cancel(job.id);
});

test('quarantined objects: deleted, and an unknown one', async () => {
  const upload = await fetch(`${base}/api/instances`, {
    method: 'POST', body: await readFile(new URL('rtplan_truncated.dcm', TESTDATA)), headers: { 'content-type': 'application/dicom', 'x-file-name': 'rtplan_truncated.dcm' },
  });
  assert.equal(upload.status, 422);
  const { quarantineId } = await upload.json() as { quarantineId: number };
  const deleted = await recordOf(async () => { await call('DELETE', `/api/quarantine/${quarantineId}`, undefined, 204); });
  assertBy(deleted, 'delete');
  assert.deepEqual(deleted.objects, [{ type: 'quarantined-object', id: String(quarantineId), name: 'rtplan_truncated.dcm', change: 'deleted' }]);
  const unknown = await recordOf(async () => { await call('DELETE', `/api/quarantine/${quarantineId}`, undefined, 404); });
  assertBy(unknown, 'delete', 'minor-failure');
  assert.equal(unknown.objects[0].id, String(quarantineId));
});

test('reading and exporting the trail is audit-log-used with the filter as the query, a refused filter too', async () => {
  const read = await recordOf(async () => { await call('GET', '/api/audit?action=security-change&limit=5', undefined, 200); });
  assertBy(read, 'audit-log-used');
  assert.equal(read.query, 'action=security-change&limit=5&offset=0');
  assert.deepEqual(read.objects, [{ type: 'audit-trail', id: 'urn:atrium:audit-trail:ATRIUM', name: 'Security Audit Log', change: 'read' }]);

  const refused = await recordOf(async () => { await call('GET', '/api/audit?action=peek', undefined, 400); });
  assertBy(refused, 'audit-log-used', 'minor-failure');
  assert.equal(refused.query, 'action=peek');

  const exported = await recordOf(async () => { await call('GET', '/api/audit/export?format=json&user=000000000a11', undefined, 200); });
  assertBy(exported, 'audit-log-used');
  assert.equal(exported.query, 'user=000000000a11&format=json');
  assert.equal(exported.objects[0].change, 'exported');

  const badFormat = await recordOf(async () => { await call('GET', '/api/audit/export?format=csv', undefined, 400); });
  assertBy(badFormat, 'audit-log-used', 'minor-failure');
});

const codes = (element: XmlElement, name: string) => childrenNamed(element, name).map((c) => c.attributes['csd-code']);

test('the FHIR and DICOM exports carry the Security Alert codes and the objects; no secret in any export', async () => {
  const fhir: any = await (await fetch(`${base}/api/audit/export?format=fhir`)).json();
  const events = fhir.entry.map((e: any) => e.resource);
  for (const event of events) assert.deepEqual(validateFhirAuditEvent(event), [], JSON.stringify(event));
  const byObject = (type: string, change: string) => events.filter((e: any) => e.entity?.some((x: any) =>
    x.what?.identifier?.system === `urn:atrium:${type}` && x.detail?.some((d: any) => d.type === 'change' && d.valueString === change)));

  const [userCreated] = byObject('user', 'created');
  assert.equal(userCreated.type.code, '110113');
  assert.equal(userCreated.action, 'E');
  assert.deepEqual(userCreated.subtype.map((c: any) => c.code), ['110137', '110136']);
  const entity = userCreated.entity.find((x: any) => x.what.identifier.system === 'urn:atrium:user');
  assert.deepEqual([entity.what.identifier.value, entity.type.code, entity.role.code], ['rita', '1', '11']);
  const [passwordSet] = byObject('user', 'password-set');
  assert.deepEqual(passwordSet.subtype.map((c: any) => c.code), ['110137'], 'no roles changed: no 110136');
  assert.deepEqual(byObject('dicom-peer', 'created')[0].subtype.map((c: any) => c.code), ['110128']);
  assert.deepEqual(byObject('job', 'cancelled')[0].subtype.map((c: any) => c.code), ['110132']);
  const [used] = byObject('audit-trail', 'read');
  assert.equal(used.type.code, '110101');
  const trail = used.entity.find((x: any) => x.what.identifier.system === 'urn:atrium:audit-trail');
  assert.equal(Buffer.from(trail.query, 'base64').toString(), 'action=security-change&limit=5&offset=0');
  assert.equal(trail.role.code, '13');
  assert.ok(!used.entity.some((x: any) => x.role?.code === '24'), 'the filter is the audit log\'s query, not a Study Root query');
  const [deletedKey] = byObject('api-key', 'revoked');
  assert.equal(deletedKey.outcome, '0');
  assert.deepEqual(byObject('user', 'password-set').map((e: any) => e.outcome), ['0', '4'], 'the password set, then refused');
  assert.ok(events.some((e: any) => e.type.code === '110113' && e.outcome === '4' && /at least 12 characters/.test(e.outcomeDesc)));

  const xml = await (await fetch(`${base}/api/audit/export?format=dicom-xml`)).text();
  const messages = childrenNamed(parseXml(xml), 'AuditMessage');
  const objectsOf = (m: XmlElement) => childrenNamed(m, 'ParticipantObjectIdentification');
  const alerts = messages.filter((m) => codes(child(m, 'EventIdentification'), 'EventID')[0] === '110113');
  assert.ok(alerts.length >= 15, `${alerts.length} security alerts`);
  for (const m of alerts) assert.equal(child(m, 'EventIdentification').attributes.EventActionCode, 'E');
  const created = alerts.find((m) => objectsOf(m).some((o) => o.attributes.ParticipantObjectID === 'rita'))!;
  assert.deepEqual(codes(child(created, 'EventIdentification'), 'EventTypeCode'), ['110137', '110136']);
  const rita = objectsOf(created).find((o) => o.attributes.ParticipantObjectID === 'rita')!;
  assert.deepEqual([rita.attributes.ParticipantObjectTypeCode, rita.attributes.ParticipantObjectTypeCodeRole], ['1', '11']);
  assert.deepEqual(codes(rita, 'ParticipantObjectIDTypeCode'), ['11']);
  const peer = alerts.find((m) => objectsOf(m).some((o) => o.attributes.ParticipantObjectID === 'MODALITY7'))!;
  assert.deepEqual(codes(child(peer, 'EventIdentification'), 'EventTypeCode'), ['110128']);
  const job = alerts.find((m) => codes(child(m, 'EventIdentification'), 'EventTypeCode')[0] === '110132')!;
  assert.equal(objectsOf(job)[0].attributes.ParticipantObjectTypeCodeRole, '20');
  const logUsed = messages.find((m) => codes(child(m, 'EventIdentification'), 'EventID')[0] === '110101')!;
  const log = objectsOf(logUsed);
  assert.equal(log.length, 1);
  assert.deepEqual([log[0].attributes.ParticipantObjectID, log[0].attributes.ParticipantObjectTypeCodeRole], ['urn:atrium:audit-trail:ATRIUM', '13']);
  assert.deepEqual(codes(log[0], 'ParticipantObjectIDTypeCode'), ['12']);
  assert.ok(child(log[0], 'ParticipantObjectQuery').text.length > 0);

  const exports = [JSON.stringify(fhir), xml, ...await Promise.all(['ndjson', 'fhir-ndjson'].map(async (f) => await (await fetch(`${base}/api/audit/export?format=${f}`)).text()))];
  for (const secret of secrets) {
    for (const text of exports) {
      assert.ok(!text.includes(secret), 'a secret is in an export');
      assert.ok(!text.includes(Buffer.from(secret).toString('base64')), 'a secret is in an export, base64-encoded');
    }
  }
});
