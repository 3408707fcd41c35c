/**
 * The last contact of each DICOM peer, as GET /api/dicom/peers shows it, with DCMTK as the real peers: echoscu
 * and storescu calling Atrium (accepted, and rejected), Atrium echoing and sending to storescp, Atrium failing
 * to reach a peer that is down, and a C-MOVE whose sub-operations go to a peer. A store that cannot record the
 * contact fails no association.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { freePort, killAllChildren, runTool, startStorescp, type Storescp } from '../../../test/support/dcmtk.ts';
import { waitFor } from '../../../test/support/dimse-peers.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { DicomClient } from './scu.ts';
import { createHttpServer } from '../../http/server.ts';
import { syntheticInstance } from '../../synthetic/synthetic-instance.ts';
import { generateUid } from '../../dicom/uid.ts';
import type { DicomPeer } from '../../ports/peer-registry.ts';

const CORPUS = new URL('../../../../shared/testdata/dicom/', import.meta.url);

let t: TestArchive;
let dicom: DicomService;
let http: FastifyInstance;
let base: string;
let dir: string;
let scp: Storescp;
let ae: string;

before(async () => {
  t = await createTestArchive('sqlite+fs');
  ae = t.archive.config.dicom.aeTitle;
  dicom = await startDicomService(t.archive, { port: 0 });
  http = await createHttpServer(t.archive, { client: new DicomClient(t.archive) });
  base = await http.listen({ host: '127.0.0.1', port: 0 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-contact-'));
  await mkdir(path.join(dir, 'received'));
  scp = await startStorescp(path.join(dir, 'received'));
  await t.archive.peers.upsert({ aeTitle: scp.aeTitle, host: '127.0.0.1', port: scp.port });
  for (const [aeTitle, operations] of [['ECHOSCU', ['echo']], ['STORESCU', ['echo', 'store']], ['FINDONLY', ['find']]] as const) {
    await t.archive.peers.upsert({ aeTitle, host: '127.0.0.1', port: 104, operations: [...operations] });
  }
});

after(async () => {
  killAllChildren();
  await scp?.stop();
  await http?.close();
  await dicom?.close();
  await t?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function peer(aeTitle: string): Promise<DicomPeer> {
  const r = await fetch(`${base}/api/dicom/peers/${aeTitle}`);
  assert.equal(r.status, 200);
  return await r.json() as DicomPeer;
}

/** The peer once its last contact is later than `since` (inbound contacts are recorded aside, a moment after). */
async function contactAfter(aeTitle: string, since: string): Promise<DicomPeer> {
  let last: DicomPeer | undefined;
  await waitFor(async () => {
    last = await peer(aeTitle);
    return last.lastContactAt !== null && last.lastContactAt > since;
  }, `a contact of ${aeTitle}`);
  return last!;
}

test('a peer never contacted has no last contact; the listing carries the fields', async () => {
  const listed = (await (await fetch(`${base}/api/dicom/peers`)).json() as { items: DicomPeer[] }).items.find((p) => p.aeTitle === 'ECHOSCU')!;
  assert.deepEqual({ at: listed.lastContactAt, outcome: listed.lastContactOutcome, detail: listed.lastContactDetail }, { at: null, outcome: null, detail: null });
});

test('inbound: echoscu and storescu calling Atrium are contacts; a refused association is a failed one', async () => {
  let since = new Date().toISOString();
  let r = await runTool('echoscu', ['-aet', 'ECHOSCU', '-aec', ae, '127.0.0.1', String(dicom.port)]);
  assert.equal(r.code, 0, r.output);
  let p = await contactAfter('ECHOSCU', since);
  assert.equal(p.lastContactOutcome, 'ok');
  assert.match(p.lastContactDetail!, /^inbound association from 127\.0\.0\.1 accepted \(1 of 1 presentation contexts\)$/);

  since = new Date().toISOString();
  r = await runTool('storescu', ['-aet', 'STORESCU', '-aec', ae, '127.0.0.1', String(dicom.port), new URL('CT_small.dcm', CORPUS).pathname]);
  assert.equal(r.code, 0, r.output);
  p = await contactAfter('STORESCU', since);
  assert.equal(p.lastContactOutcome, 'ok');
  assert.match(p.lastContactDetail!, /inbound association from 127\.0\.0\.1 accepted/);

  // FINDONLY may not store: every context it proposes is refused, and so is the association.
  since = new Date().toISOString();
  r = await runTool('storescu', ['-aet', 'FINDONLY', '-aec', ae, '127.0.0.1', String(dicom.port), new URL('CT_small.dcm', CORPUS).pathname]);
  assert.notEqual(r.code, 0);
  p = await contactAfter('FINDONLY', since);
  assert.equal(p.lastContactOutcome, 'failed');
  assert.match(p.lastContactDetail!, /inbound association from 127\.0\.0\.1 rejected: "FINDONLY" may not use any of the \d+ proposed contexts/);
  // An updated_at is about the peer's definition: a contact leaves it alone.
  assert.ok(p.updatedAt < since);
});

test('outbound: an echo and a send to storescp are contacts; a peer that is down is a failed one', async () => {
  let since = new Date().toISOString();
  const echo = await fetch(`${base}/api/dicom/peers/${scp.aeTitle}/echo`, { method: 'POST' });
  assert.equal(echo.status, 200);
  let p = await peer(scp.aeTitle);
  assert.ok(p.lastContactAt! >= since);
  assert.equal(p.lastContactOutcome, 'ok');
  assert.equal(p.lastContactDetail, 'C-ECHO: 0x0000 Success');

  const stored = await t.archive.ingest.ingest([...syntheticInstance({ rows: 8, columns: 8 })], { source: 'test' });
  assert.ok(stored.status === 'stored');
  since = new Date().toISOString();
  const counts = await new DicomClient(t.archive).send(scp.aeTitle, [stored.sopInstanceUid]);
  assert.equal(counts.completed, 1);
  p = await peer(scp.aeTitle);
  assert.ok(p.lastContactAt! >= since);
  assert.deepEqual([p.lastContactOutcome, p.lastContactDetail], ['ok', 'C-STORE: 1 completed, 0 failed, 0 warning']);

  const closed = await freePort();
  await t.archive.peers.upsert({ aeTitle: 'GONE', host: '127.0.0.1', port: closed });
  since = new Date().toISOString();
  const failed = await fetch(`${base}/api/dicom/peers/GONE/echo`, { method: 'POST' });
  assert.ok(failed.status >= 400);
  p = await peer('GONE');
  assert.ok(p.lastContactAt! >= since);
  assert.equal(p.lastContactOutcome, 'failed');
  assert.match(p.lastContactDetail!, /^C-ECHO: .*(ECONNREFUSED|refused)/i);
});

test('a C-MOVE to a peer: its sub-operations association is the destination\'s contact', async () => {
  const studyInstanceUid = generateUid();
  const stored = await t.archive.ingest.ingest([...syntheticInstance({ rows: 8, columns: 8, studyInstanceUid })], { source: 'test' });
  assert.equal(stored.status, 'stored');
  await t.archive.peers.upsert({ aeTitle: 'MOVESCU', host: '127.0.0.1', port: 104, operations: ['move'] });
  const since = new Date().toISOString();
  const r = await runTool('movescu', ['-S', '-aet', 'MOVESCU', '-aec', ae, '-aem', scp.aeTitle, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyInstanceUid}`,
    '127.0.0.1', String(dicom.port)]);
  assert.equal(r.code, 0, r.output);
  const p = await peer(scp.aeTitle);
  assert.ok(p.lastContactAt! >= since);
  assert.deepEqual([p.lastContactOutcome, p.lastContactDetail], ['ok', 'C-STORE (C-MOVE from MOVESCU): 1 completed, 0 failed, 0 warning']);
  assert.equal((await contactAfter('MOVESCU', since)).lastContactOutcome, 'ok');
});

test('when the contact cannot be recorded, the associations go on as if nothing happened', async () => {
  const peers = t.archive.peers;
  const original = peers.recordContact;
  let attempts = 0;
  peers.recordContact = async () => {
    attempts++;
    throw new Error('the index is read-only right now');
  };
  try {
    const r = await runTool('echoscu', ['-aet', 'ECHOSCU', '-aec', ae, '127.0.0.1', String(dicom.port)]);
    assert.equal(r.code, 0, r.output);
    const echo = await fetch(`${base}/api/dicom/peers/${scp.aeTitle}/echo`, { method: 'POST' });
    assert.equal(echo.status, 200);
    assert.equal((await echo.json() as { status: number }).status, 0);
    await waitFor(() => attempts >= 2, 'both contacts to be attempted');
  } finally {
    peers.recordContact = original;
  }
});
