/**
 * DIMSE security: a user identity (type 2) of a role without the permission gets 0x0124 (Refused: Not
 * authorized) for C-STORE, C-FIND and C-MOVE; a wrong passcode rejects the association (rejected-permanent,
 * service-user, no-reason-given) and is audited as login-failed; a permitted user's C-FIND is audited.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { requestAssociation } from '../requestor.ts';
import { CommandField, Priority } from '../command.ts';
import { Status } from '../status.ts';
import { encodeJsonDataset } from './identifier.ts';
import { QueryRetrieve, UNCOMPRESSED } from './sop-classes.ts';

const CT = '1.2.840.10008.5.1.4.1.1.2';
let t: TestArchive;
let dicom: DicomService;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  dicom = await startDicomService(t.archive, { port: 0 });
  await t.archive.peers.upsert({ aeTitle: 'SECSCU', host: '127.0.0.1', port: 104, operations: ['echo', 'store', 'find', 'move'] });
  await t.archive.security.createUser({ username: 'rita', password: 'researcher-password-1', roles: ['researcher'] });
  await t.archive.security.createUser({ username: 'rad', password: 'radiologist-password-1', roles: ['radiologist'] });
});

after(async () => {
  await dicom?.close();
  await t?.cleanup();
});

const connect = (user: string, password: string) => requestAssociation({
  host: '127.0.0.1', port: dicom.port, callingAETitle: 'SECSCU', calledAETitle: t.config.dicom.aeTitle,
  contexts: [CT, QueryRetrieve.StudyRootFind, QueryRetrieve.StudyRootMove].map((abstractSyntax) => ({ abstractSyntax, transferSyntaxes: UNCOMPRESSED })),
  userIdentity: { type: 2, primary: user, secondary: password },
});

async function finalStatus(association: Awaited<ReturnType<typeof connect>>, abstractSyntax: string, command: Record<string, unknown>): Promise<number> {
  const pc = association.contexts.find((c) => c.abstractSyntax === abstractSyntax && c.accepted)!;
  assert.ok(pc, `context ${abstractSyntax} accepted`);
  let status = -1;
  const identifier = encodeJsonDataset({ '00080052': { vr: 'CS', Value: ['STUDY'] }, '0020000D': { vr: 'UI', Value: ['1.2.3.4'] } }, pc.transferSyntax);
  for await (const rsp of association.request(pc.id, { Priority: Priority.Medium, AffectedSOPClassUID: abstractSyntax, ...command } as never, identifier)) {
    status = rsp.command.Status ?? -1;
  }
  return status;
}

test('a researcher (no store, query or export permission) is refused with 0x0124 per operation', async () => {
  const association = await connect('rita', 'researcher-password-1');
  try {
    assert.equal(await finalStatus(association, CT, { CommandField: CommandField.C_STORE_RQ, AffectedSOPInstanceUID: '1.2.3.4.5' }), Status.NotAuthorized);
    assert.equal(await finalStatus(association, QueryRetrieve.StudyRootFind, { CommandField: CommandField.C_FIND_RQ }), Status.NotAuthorized);
    assert.equal(await finalStatus(association, QueryRetrieve.StudyRootMove, { CommandField: CommandField.C_MOVE_RQ, MoveDestination: 'SECSCU' }), Status.NotAuthorized);
  } finally {
    await association.release();
  }
  await t.archive.audit.drain();
  const denied = (await t.archive.audit.search({ user: 'rita' } as never, { limit: 50, offset: 0 })).items;
  assert.ok(denied.length >= 3 || (await t.archive.audit.search({ outcome: 'minor-failure', interface: 'dimse' }, { limit: 50, offset: 0 })).items.length >= 3);
});

test('a radiologist may query: C-FIND succeeds and is audited', async () => {
  const association = await connect('rad', 'radiologist-password-1');
  try {
    assert.equal(await finalStatus(association, QueryRetrieve.StudyRootFind, { CommandField: CommandField.C_FIND_RQ }), Status.Success);
  } finally {
    await association.release();
  }
  await t.archive.audit.drain();
  const { items } = await t.archive.audit.search({ action: 'query', interface: 'dimse' }, { limit: 50, offset: 0 });
  assert.ok(items.some((r) => r.principal.displayName === 'rad' && r.outcome === 'success'));
});

test('a wrong passcode rejects the association and is audited as login-failed', async () => {
  await assert.rejects(connect('rad', 'wrong-password-000'));
  await t.archive.audit.drain();
  const { items } = await t.archive.audit.search({ action: 'login-failed', interface: 'dimse' }, { limit: 50, offset: 0 });
  assert.ok(items.length >= 1);
});
