// DIMSE-N requests of the normalized services (N-CREATE, N-SET) through the association layer: the request's
// instance and data set reach the handler, and a response that names only its status carries the Affected
// SOP Class and Instance UIDs PS3.7 10.1.1 and 10.1.3 want (an N-SET names them "Requested" in the request).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDicomServer, negotiateContexts } from './acceptor.ts';
import { requestAssociation } from './requestor.ts';
import type { IncomingRequest } from './association.ts';
import { CommandField } from './command.ts';
import { Status } from './status.ts';
import { encodeDataset } from '../dicom/part10-writer.ts';
import { fromDicomJson } from '../dicom/dicom-json.ts';
import { parseDataset } from '../dicom/parse-dataset.ts';
import { stringValue } from '../dicom/dataset.ts';
import { captureLogger } from '../../test/support/dimse-peers.ts';

const MPPS = '1.2.840.10008.3.1.2.3.3';
const EXPLICIT = '1.2.840.10008.1.2.1';

test('N-CREATE and N-SET: instance and data set reach the handler; the responses carry the Affected SOP Class and Instance UIDs', async () => {
  const seen: { command: IncomingRequest['command']; status?: string }[] = [];
  const srv = await startDicomServer({
    host: '127.0.0.1', port: 0, logger: captureLogger(), maxAssociations: 2, timeouts: { artimMs: 1000, idleMs: 5000 },
    negotiate: (rq) => ({ accept: true, contexts: negotiateContexts(rq.contexts, new Map([[MPPS, [EXPLICIT]]])) }),
    onAssociation: (a) => a.onRequest(async (request) => {
      const parts: Uint8Array[] = [];
      for await (const chunk of request.dataset ?? []) parts.push(chunk);
      const ds = parseDataset(Buffer.concat(parts), request.presentationContext.transferSyntax);
      seen.push({ command: request.command, status: stringValue(ds, 0x00400252) });
      // Only the status: the association fills in what the response must carry.
      await a.respond(request, { Status: Status.Success });
    }),
  });
  try {
    const a = await requestAssociation({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM', contexts: [{ abstractSyntax: MPPS, transferSyntaxes: [EXPLICIT] }] });
    const pc = a.findContext(MPPS)!;
    const data = (status: string) => encodeDataset(fromDicomJson({ '00400252': { vr: 'CS', Value: [status] } }), EXPLICIT);
    const responses = [];
    for await (const r of a.request(pc.id, { CommandField: CommandField.N_CREATE_RQ, AffectedSOPClassUID: MPPS, AffectedSOPInstanceUID: '1.2.3.4' }, data('IN PROGRESS'))) responses.push(r.command);
    for await (const r of a.request(pc.id, { CommandField: CommandField.N_SET_RQ, RequestedSOPClassUID: MPPS, RequestedSOPInstanceUID: '1.2.3.4' }, data('COMPLETED'))) responses.push(r.command);
    await a.release();
    assert.deepEqual(seen.map((s) => [s.command.CommandField, s.command.AffectedSOPInstanceUID ?? s.command.RequestedSOPInstanceUID, s.status]),
      [[CommandField.N_CREATE_RQ, '1.2.3.4', 'IN PROGRESS'], [CommandField.N_SET_RQ, '1.2.3.4', 'COMPLETED']]);
    assert.deepEqual(responses.map((c) => [c.CommandField, c.Status, c.AffectedSOPClassUID, c.AffectedSOPInstanceUID]),
      [[CommandField.N_CREATE_RSP, 0, MPPS, '1.2.3.4'], [CommandField.N_SET_RSP, 0, MPPS, '1.2.3.4']]);
  } finally {
    await srv.close();
  }
});
