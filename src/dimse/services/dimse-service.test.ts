// The DIMSE service registry: a service the core has never heard of, added by a module, reached by DCMTK.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive, type TestArchive } from '../../../test/support/archive.ts';
import { dumpValues, filesIn, killAllChildren, runTool } from '../../../test/support/dcmtk.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { DimseServiceRegistry, uncompressedTransferSyntax, type DimseService } from './dimse-service.ts';
import { encodeJsonDataset, readIdentifier } from './identifier.ts';
import { CommandField } from '../command.ts';
import { Status } from '../status.ts';
import { stringValue } from '../../dicom/dataset.ts';
import type { AtriumModule } from '../../modules/module.ts';
import type { Archive } from '../../app.ts';

/** Modality Worklist Information Model - FIND (PS3.4 K.6.1.2): no core service knows it. */
const WORKLIST_FIND = '1.2.840.10008.5.1.4.31';

/** A stand-in for the RIS module's worklist: one scheduled step, and the keys each query asked for. */
function worklistModule(queries: (string | undefined)[]): AtriumModule {
  const service: DimseService = {
    name: 'test-worklist',
    accepts: (pc) => pc.abstractSyntax === WORKLIST_FIND,
    commands: [CommandField.C_FIND_RQ],
    operation: 'find',
    action: 'query',
    auditAction: 'query',
    transferSyntax: uncompressedTransferSyntax,
    async handle({ request, association }) {
      const identifier = await readIdentifier(request);
      queries.push(stringValue(identifier, 0x00100020)); // PatientID
      const item = {
        '00100010': { vr: 'PN', Value: [{ Alphabetic: 'WORKLIST^PATIENT' }] },
        '00100020': { vr: 'LO', Value: ['MWL001'] },
        '00080050': { vr: 'SH', Value: ['ACC-MWL-1'] },
        '00400100': { vr: 'SQ', Value: [{ '00080060': { vr: 'CS', Value: ['CT'] }, '00400009': { vr: 'SH', Value: ['SPS-1'] } }] },
      };
      const ts = request.presentationContext.transferSyntax;
      await association.respond(request, { CommandField: CommandField.C_FIND_RSP, Status: Status.Pending }, encodeJsonDataset(item, ts));
      await association.respond(request, { CommandField: CommandField.C_FIND_RSP, Status: Status.Success });
    },
  };
  return { name: 'test-worklist', dimseServices: () => [service] };
}

describe('DIMSE service registry', { timeout: 120_000 }, () => {
  let t: TestArchive;
  let plain: DicomService;
  let withWorklist: DicomService;
  let work: string;
  const queries: (string | undefined)[] = [];

  before(async () => {
    t = await createTestArchive('sqlite+fs');
    work = await mkdtemp(path.join(os.tmpdir(), 'atrium-registry-'));
    await t.archive.peers.upsert({ aeTitle: 'MODALITY', host: '127.0.0.1', port: 104, operations: ['echo', 'find'] });
    await t.archive.peers.upsert({ aeTitle: 'STORE_ONLY', host: '127.0.0.1', port: 104, operations: ['store'] });
    // The archive without the RIS module's own Modality Worklist service (src/ris/worklist-scp.ts), which
    // would otherwise claim the worklist contexts first.
    const core: Archive = { ...t.archive, dimseServices: t.archive.dimseServices.filter((s) => s.name !== 'worklist') };
    plain = await startDicomService(core, { port: 0 });
    // What openArchive does with an installed module: its services join the others.
    const archive: Archive = { ...core, dimseServices: [...core.dimseServices, ...worklistModule(queries).dimseServices!(t.archive)] };
    withWorklist = await startDicomService(archive, { port: 0 });
  });
  after(async () => {
    await plain?.close();
    await withWorklist?.close();
    await t?.cleanup();
    killAllChildren();
    if (work) await rm(work, { recursive: true, force: true });
  });

  let runs = 0;
  async function worklistQuery(port: number, aet: string) {
    const dir = path.join(work, `q${++runs}`);
    await mkdir(dir);
    const r = await runTool('findscu', [
      '-v', '-W', '-X', '-od', dir, '-aet', aet, '-aec', t.archive.config.dicom.aeTitle,
      '-k', 'PatientID=MWL*', '-k', 'PatientName', '-k', 'AccessionNumber', '-k', 'ScheduledProcedureStepSequence[0].Modality=CT',
      '-k', 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepID', '127.0.0.1', String(port),
    ], { timeoutMs: 60_000 });
    const responses = [];
    for (const f of await filesIn(dir)) responses.push(await dumpValues(f, ['PatientName', 'AccessionNumber', 'Modality', 'ScheduledProcedureStepID']));
    return { ...r, responses };
  }

  test('findscu -W reaches a worklist service that only a module registered', async () => {
    const r = await worklistQuery(withWorklist.port, 'MODALITY');
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(r.responses, [{ PatientName: 'WORKLIST^PATIENT', AccessionNumber: 'ACC-MWL-1', Modality: 'CT', ScheduledProcedureStepID: 'SPS-1' }]);
    assert.deepEqual(queries, ['MWL*'], 'the handler read the identifier findscu sent');
  });

  test('without that module the worklist abstract syntax is not supported, and the core services are unchanged', async () => {
    const before = queries.length;
    const r = await worklistQuery(plain.port, 'MODALITY');
    assert.notEqual(r.code, 0);
    assert.match(r.output, /no acceptable presentation contexts|Abstract Syntax Not Supported|rejected/i);
    assert.equal(queries.length, before);
    const echo = await runTool('echoscu', ['-aet', 'MODALITY', '-aec', t.archive.config.dicom.aeTitle, '127.0.0.1', String(withWorklist.port)], { timeoutMs: 30_000 });
    assert.equal(echo.code, 0, echo.output);
  });

  test("the service's operation gates the calling AE at negotiation: a store-only peer may not query the worklist", async () => {
    const before = queries.length;
    const r = await worklistQuery(withWorklist.port, 'STORE_ONLY');
    assert.notEqual(r.code, 0);
    assert.match(r.output, /Calling AE Title Not Recognized|rejected/i);
    assert.equal(queries.length, before);
  });
});

test('the registry gives a context to the first service that accepts it, and a request to the service of its command', () => {
  const service = (name: string, sopClass: string, commands: number[]): DimseService => ({
    name, accepts: (pc) => pc.abstractSyntax === sopClass, commands, operation: 'find', action: null, auditAction: null,
    transferSyntax: uncompressedTransferSyntax, handle: async () => {},
  });
  const a = service('a', '1.2.3', [CommandField.C_FIND_RQ]);
  const b = service('b', '1.2.3', [CommandField.N_ACTION_RQ]);
  const registry = new DimseServiceRegistry([a, b]);
  assert.equal(registry.forContext({ abstractSyntax: '1.2.3' }), a);
  assert.equal(registry.forContext({ abstractSyntax: '9.9' }), undefined);
  assert.equal(registry.forRequest(CommandField.N_ACTION_RQ, '1.2.3'), b);
  assert.equal(registry.forRequest(CommandField.C_STORE_RQ, '1.2.3'), undefined);
  assert.throws(() => new DimseServiceRegistry([a, service('a', '4.5', [])]), /two DIMSE services are named "a"/);
});
