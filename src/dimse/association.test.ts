import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startDicomServer, negotiateContexts, Rejection } from './acceptor.ts';
import type { DicomServerOptions } from './acceptor.ts';
import { requestAssociation } from './requestor.ts';
import { AssociationRejectedError } from './association.ts';
import { DimseError } from './message-streams.ts';
import type { Association, Closed, IncomingRequest } from './association.ts';
import net from 'node:net';
import { CommandField, decodeCommand, encodeCommand } from './command.ts';
import { PduFramer } from './pdu-framer.ts';
import { parseDataset } from '../dicom/parse-dataset.ts';
import { echo, handleEcho, VERIFICATION_SOP_CLASS } from './echo.ts';
import { encodePDataHeader, encodePdu } from './pdu.ts';
import type { AssociateRQ } from './pdu.ts';
import { Status } from './status.ts';
import { captureLogger, rawPeer, run, waitFor } from '../../test/support/dimse-peers.ts';

const CT = '1.2.840.10008.5.1.4.1.1.2';
const IMPLICIT = '1.2.840.10008.1.2';
const EXPLICIT = '1.2.840.10008.1.2.1';
const MiB = 1024 * 1024;

async function server(extra: Partial<DicomServerOptions> = {}) {
  const logger = captureLogger();
  const associations: Association[] = [];
  const srv = await startDicomServer({
    host: '127.0.0.1', port: 0, logger, maxAssociations: 10, timeouts: { artimMs: 300, idleMs: 600 },
    negotiate: (rq) => rq.calledAETitle !== 'ATRIUM'
      ? { ...Rejection.CalledAETitleNotRecognized, detail: `called AE title ${rq.calledAETitle} is not served here` }
      : { accept: true, contexts: negotiateContexts(rq.contexts, new Map([[VERIFICATION_SOP_CLASS, [EXPLICIT, IMPLICIT]], [CT, [EXPLICIT, IMPLICIT]]])) },
    onAssociation: (a) => {
      associations.push(a);
      a.onRequest((r) => handleEcho(r, a));
    },
    ...extra,
  });
  return { srv, logger, associations };
}

test('echoscu (DCMTK) gets Success from our C-ECHO SCP; an unknown called AE title is rejected and logged', async () => {
  const { srv, logger } = await server();
  try {
    const ok = await run('echoscu', ['-aec', 'ATRIUM', '-aet', 'TESTSCU', '127.0.0.1', String(srv.port)]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(logger.find(/^association accepted/));
    await waitFor(() => !!logger.find(/^association released by the peer/), 'release log');
    const accepted = logger.find(/^association accepted/)!;
    assert.equal(accepted.fields.callingAE, 'TESTSCU');
    assert.equal(accepted.fields.calledAE, 'ATRIUM');

    const bad = await run('echoscu', ['-aec', 'WRONG', '-aet', 'TESTSCU', '127.0.0.1', String(srv.port)]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout + bad.stderr, /Called AE Title Not Recognized/i);
    const rejected = logger.find(/^association rejected/);
    assert.ok(rejected);
    assert.match(rejected.msg, /called-AE-title-not-recognized \(called AE title WRONG is not served here\)/);
    assert.equal(rejected.fields.calledAE, 'WRONG');
    assert.match(String(rejected.fields.remote), /127\.0\.0\.1/);
  } finally {
    await srv.close();
  }
});

test('our requestor against our acceptor: C-ECHO, negotiated values, rejection in words', async () => {
  const { srv, associations } = await server();
  try {
    assert.equal(await echo({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM' }), Status.Success);
    await assert.rejects(echo({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'NOPE' }),
      (e: unknown) => e instanceof AssociationRejectedError && e.result === 1 && e.source === 1 && e.reason === 7 &&
        /rejected-permanent, DICOM UL service-user: called-AE-title-not-recognized/.test(e.message));

    const a = await requestAssociation({
      host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM', maxPduLength: 32768,
      contexts: [
        { abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT] },
        { abstractSyntax: '1.2.3.4.5', transferSyntaxes: [IMPLICIT] },
        { abstractSyntax: CT, transferSyntaxes: ['1.2.840.10008.1.2.4.50'] },
      ],
      userIdentity: { type: 2, primary: 'alice', secondary: 'pw' },
      extendedNegotiation: new Map([[CT, Uint8Array.of(1)]]),
    });
    assert.deepEqual(a.contexts.map((c) => [c.id, c.accepted, c.result, c.transferSyntax]),
      [[1, true, 0, IMPLICIT], [3, false, 3, ''], [5, false, 4, '']]);
    const peer = associations.at(-1)!;
    assert.equal(peer.peerMaxPduLength, 32768);
    assert.deepEqual(peer.userIdentity, { type: 2, primary: 'alice', secondary: 'pw', positiveResponseRequested: false });
    assert.deepEqual(peer.requestedExtendedNegotiation.get(CT), Uint8Array.of(1));
    assert.equal(peer.callingAETitle, 'SCU');
    const rsps = [];
    for await (const r of a.request(1, { CommandField: CommandField.C_ECHO_RQ, AffectedSOPClassUID: VERIFICATION_SOP_CLASS })) rsps.push(r);
    assert.equal(rsps.length, 1);
    assert.equal(rsps[0].command.Status, 0);
    await a.release();
    assert.deepEqual(await a.closed, { reason: 'released', detail: 'released' });
    assert.equal((await peer.closed).reason, 'released');
  } finally {
    await srv.close();
  }
});

test('a 20 MiB data set streams chunk by chunk to a slow consumer with memory bounded on both sides', async (t) => {
  const highWater = 256 * 1024;
  let received: IncomingRequest | undefined;
  const gate = { open: false };
  const hash = createHash('sha256');
  let consumed = 0;
  let chunks = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => { done = r; });
  const { srv, associations } = await server({
    datasetHighWaterMark: highWater,
    onAssociation: (a) => {
      associations.push(a);
      a.onRequest(async (request) => {
        received = request;
        for await (const chunk of request.dataset!) {
          while (!gate.open) await new Promise((r) => setTimeout(r, 20)); // the slow consumer: stalled until the gate opens
          hash.update(chunk);
          consumed += chunk.length;
          chunks++;
          if (chunks % 16 === 0) await new Promise((r) => setTimeout(r, 1)); // and still slow afterwards
        }
        await a.respond(request, { Status: Status.Success, AffectedSOPInstanceUID: request.command.AffectedSOPInstanceUID });
        done();
      });
    },
  });
  const associations2 = associations;
  try {
    const a = await requestAssociation({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM',
      contexts: [{ abstractSyntax: CT, transferSyntaxes: [EXPLICIT] }] });
    const total = 20 * MiB;
    let produced = 0;
    const sent = createHash('sha256');
    async function* source(): AsyncGenerator<Uint8Array> {
      while (produced < total) {
        const chunk = new Uint8Array(Math.min(100_000, total - produced));
        for (let i = 0; i < chunk.length; i += 97) chunk[i] = (produced + i) & 0xff;
        produced += chunk.length;
        sent.update(chunk);
        yield chunk;
      }
    }
    const responses = a.request(a.contexts[0].id,
      { CommandField: CommandField.C_STORE_RQ, AffectedSOPClassUID: CT, AffectedSOPInstanceUID: '1.2.3.4', Priority: 0 }, source());

    // While the consumer is stalled, the sender must stall too: only socket buffers and the receiver's high-water
    // mark are in flight, not the object.
    let last = -1;
    await waitFor(() => { const stable = produced === last && produced > 0; last = produced; return stable; }, 'the sender to stall', 20_000);
    await new Promise((r) => setTimeout(r, 200));
    const inFlightWhileStalled = produced - consumed;
    t.diagnostic(`stalled consumer: ${produced} bytes produced by the sender, ${consumed} consumed, acceptor buffered at most ` +
      `${associations2.at(-1)!.stats.maxDatasetBuffered}`);
    assert.ok(produced < total, `the sender read the whole object (${produced} bytes) while the receiver was stalled`);
    const acceptor = associations2.at(-1)!;
    assert.ok(acceptor.stats.maxDatasetBuffered <= highWater + 64 * 1024,
      `acceptor buffered ${acceptor.stats.maxDatasetBuffered} bytes of the data set`);
    assert.ok(received?.dataset, 'the handler got the request before the data set arrived');

    gate.open = true;
    const rsps = [];
    for await (const r of responses) rsps.push(r);
    await finished;
    assert.equal(rsps.length, 1);
    assert.equal(rsps[0].command.Status, Status.Success);
    assert.equal(rsps[0].command.AffectedSOPInstanceUID, '1.2.3.4');
    assert.equal(consumed, total);
    assert.equal(hash.digest('hex'), sent.digest('hex'));
    assert.ok(chunks > 80, `data set delivered in ${chunks} chunks`);
    assert.ok(acceptor.stats.maxDatasetBuffered <= highWater + 64 * 1024);
    assert.ok(acceptor.stats.maxFramerBuffered <= 1024, `framer held ${acceptor.stats.maxFramerBuffered} bytes`);
    // P-DATA PDUs respect the peer's maximum (256 KiB default): 20 MiB needs more than 80 of them.
    assert.ok(a.stats.pdusSent > 80);
    await a.release();
    // Kernel socket buffers on loopback can hold a few MiB; the point is that it is far from the object size.
    assert.ok(inFlightWhileStalled < 14 * MiB, `${inFlightWhileStalled} bytes in flight while the consumer was stalled`);
  } finally {
    await srv.close();
  }
});

test('a peer aborting in the middle of a data set: the dataset iteration rejects and closed is peer-aborted', async () => {
  let iterationError: unknown;
  let acceptorClosed: Closed | undefined;
  let got = 0;
  const { srv } = await server({
    onAssociation: (a) => {
      a.onRequest(async (request) => {
        try {
          for await (const chunk of request.dataset!) got += chunk.length;
        } catch (e) {
          iterationError = e;
        }
      });
      void a.closed.then((c) => { acceptorClosed = c; });
    },
  });
  try {
    const a = await requestAssociation({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM',
      contexts: [{ abstractSyntax: CT, transferSyntaxes: [EXPLICIT] }] });
    let release!: () => void;
    const hang = new Promise<void>((r) => { release = r; });
    async function* source(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 8; i++) yield new Uint8Array(128 * 1024);
      await hang;
    }
    const responses = a.request(a.contexts[0].id, { CommandField: CommandField.C_STORE_RQ, AffectedSOPClassUID: CT, AffectedSOPInstanceUID: '1.2.9' }, source());
    await waitFor(() => got >= 512 * 1024, 'part of the data set');
    a.abort();
    release();
    await assert.rejects(async () => { for await (const r of responses) void r; }, DimseError);
    await waitFor(() => iterationError !== undefined && acceptorClosed !== undefined, 'the abort to reach the acceptor');
    assert.ok(iterationError instanceof DimseError);
    assert.match((iterationError as Error).message, /aborted by the peer while receiving the data set \(\d+ bytes received\)/);
    assert.equal(acceptorClosed!.reason, 'peer-aborted');
    assert.equal((await a.closed).reason, 'aborted');
  } finally {
    await srv.close();
  }
});

test('garbage bytes get an A-ABORT (unrecognized PDU) and the connection is closed', async () => {
  const { srv, logger } = await server();
  try {
    const peer = await rawPeer(srv.port);
    peer.send(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const ev = await peer.nextPdu();
    assert.deepEqual(ev.pdu, { type: 'A-ABORT', source: 2, reason: 1 });
    await peer.closed;
    assert.match(logger.find(/^association aborted/)!.msg, /unrecognized PDU type 0x47/);
  } finally {
    await srv.close();
  }
});

function rawRQ(): Uint8Array {
  const rq: AssociateRQ = {
    type: 'A-ASSOCIATE-RQ', protocolVersion: 1, calledAETitle: 'ATRIUM', callingAETitle: 'RAW', applicationContext: '1.2.840.10008.3.1.1.1',
    presentationContexts: [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT] }],
    userInformation: { maxLength: 16384, implementationClassUID: '1.2.3' },
  };
  return encodePdu(rq);
}

test('a P-DATA longer than our maximum PDU length gets an A-ABORT', async () => {
  const { srv, logger } = await server({ maxPduLength: 16384 });
  try {
    const peer = await rawPeer(srv.port);
    peer.send(rawRQ());
    assert.equal((await peer.nextPdu()).pdu.type, 'A-ASSOCIATE-AC');
    peer.send(encodePDataHeader(1, true, true, 100_000));
    assert.deepEqual((await peer.nextPdu()).pdu, { type: 'A-ABORT', source: 2, reason: 6 });
    await peer.closed;
    assert.match(logger.find(/^association aborted/)!.msg, /exceeds the maximum length of 16384 bytes/);
  } finally {
    await srv.close();
  }
});

test('a connection that sends nothing is closed after ARTIM', async () => {
  const { srv, logger } = await server();
  try {
    const peer = await rawPeer(srv.port);
    await peer.closed;
    assert.equal(peer.events.length, 0);
    assert.match(logger.find(/^association timed out/)!.msg, /no A-ASSOCIATE-RQ within 300 ms \(ARTIM\)/);
  } finally {
    await srv.close();
  }
});

test('an association that goes silent after A-ASSOCIATE-RQ is aborted after the idle timeout', async () => {
  const { srv, logger, associations } = await server();
  try {
    const peer = await rawPeer(srv.port);
    peer.send(rawRQ());
    assert.equal((await peer.nextPdu()).pdu.type, 'A-ASSOCIATE-AC');
    assert.deepEqual((await peer.nextPdu()).pdu, { type: 'A-ABORT', source: 2, reason: 0 });
    await peer.closed;
    assert.deepEqual(await associations[0].closed, { reason: 'timeout', detail: 'no PDU for 600 ms (idle timeout)' });
    assert.ok(logger.find(/^association timed out: no PDU for 600 ms/));
  } finally {
    await srv.close();
  }
});

test('an unexpected PDU (A-ASSOCIATE-RQ twice) gets an A-ABORT (unexpected PDU)', async () => {
  const { srv } = await server();
  try {
    const peer = await rawPeer(srv.port);
    peer.send(rawRQ());
    assert.equal((await peer.nextPdu()).pdu.type, 'A-ASSOCIATE-AC');
    peer.send(rawRQ());
    assert.deepEqual((await peer.nextPdu()).pdu, { type: 'A-ABORT', source: 2, reason: 2 });
    await peer.closed;
  } finally {
    await srv.close();
  }
});

test('over maxAssociations the extra association is rejected (transient, local limit exceeded)', async () => {
  const { srv, logger } = await server({ maxAssociations: 1 });
  try {
    const first = await requestAssociation({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM',
      contexts: [{ abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT] }] });
    const r = await run('echoscu', ['-aec', 'ATRIUM', '-aet', 'TESTSCU', '127.0.0.1', String(srv.port)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /Local Limit Exceeded/i);
    assert.match(logger.find(/^association rejected/)!.msg, /rejected-transient.*local-limit-exceeded \(1 associations already open \(maxAssociations 1\)\)/);
    await assert.rejects(echo({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM' }),
      (e: unknown) => e instanceof AssociationRejectedError && e.result === 2 && e.source === 3 && e.reason === 2);
    await first.release();
    await waitFor(() => srv.associations.size === 0, 'the first association to end');
    assert.equal(await echo({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM' }), 0);
  } finally {
    await srv.close();
  }
});

test('a handler that throws gets a Processing Failure response sent for it', async () => {
  const { srv } = await server({
    onAssociation: (a) => a.onRequest(() => { throw new Error('boom'); }),
  });
  try {
    const a = await requestAssociation({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM',
      contexts: [{ abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT] }] });
    const rsps = [];
    for await (const r of a.request(1, { CommandField: CommandField.C_ECHO_RQ, AffectedSOPClassUID: VERIFICATION_SOP_CLASS })) rsps.push(r);
    assert.equal(rsps[0].command.Status, Status.ProcessingFailure);
    assert.equal(rsps[0].command.ErrorComment, 'boom');
    await a.release();
  } finally {
    await srv.close();
  }
});

/** Implicit VR LE encoding of one UI element (as DCMTK appends the Failed SOP Instance UID List to a command set). */
function implicitUi(group: number, element: number, value: string): Uint8Array {
  const text = value.length % 2 ? `${value}\0` : value;
  const out = new Uint8Array(8 + text.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, group, true);
  v.setUint16(2, element, true);
  v.setUint32(4, text.length, true);
  out.set(new TextEncoder().encode(text), 8);
  return out;
}

function groupLength(group: number, length: number): Uint8Array {
  const out = new Uint8Array(12);
  const v = new DataView(out.buffer);
  v.setUint16(0, group, true);
  v.setUint32(4, 4, true);
  v.setUint32(8, length, true);
  return out;
}

/**
 * A scripted SCP on a raw socket: accepts context 1 (Explicit VR LE), and answers the first complete request
 * (command, and data set when one is announced) with the bytes `answer` gives as command PDVs.
 */
async function scriptedScp(answer: (messageId: number) => Uint8Array[]) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const framer = new PduFramer({ maxPduLength: 0 });
    let command: Uint8Array[] = [];
    let messageId = 0;
    let awaitingDataset = false;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const ev of framer.push(chunk)) {
        if (ev.kind === 'pdu' && ev.pdu.type === 'A-ASSOCIATE-RQ') {
          socket.write(encodePdu({
            type: 'A-ASSOCIATE-AC', protocolVersion: 1, calledAETitle: ev.pdu.calledAETitle, callingAETitle: ev.pdu.callingAETitle,
            applicationContext: ev.pdu.applicationContext, presentationContexts: [{ id: 1, result: 0, transferSyntax: EXPLICIT }],
            userInformation: { maxLength: 16384, implementationClassUID: '1.2.3.4' },
          }));
        } else if (ev.kind === 'pdu' && ev.pdu.type === 'A-RELEASE-RQ') {
          socket.write(encodePdu({ type: 'A-RELEASE-RP' }));
          socket.end();
        } else if (ev.kind === 'pdv-data' && !awaitingDataset) {
          command.push(ev.data.slice());
        } else if (ev.kind === 'pdv-end' && ev.last && ev.command) {
          const rq = decodeCommand(Buffer.concat(command));
          command = [];
          messageId = rq.MessageID!;
          awaitingDataset = rq.CommandDataSetType !== 0x0101;
          if (!awaitingDataset) for (const c of answer(messageId)) socket.write(c);
        } else if (ev.kind === 'pdv-end' && ev.last && !ev.command) {
          awaitingDataset = false;
          for (const c of answer(messageId)) socket.write(c);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

test('a C-GET-RSP whose Failed SOP Instance UID List follows the command set in the command PDVs (DCMTK, Orthanc) is a response with an identifier', async () => {
  const GET = '1.2.840.10008.5.1.4.1.2.2.3';
  const failedUid = '1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457';
  const identifier = Buffer.concat([groupLength(0x0008, 8 + failedUid.length + (failedUid.length % 2)), implicitUi(0x0008, 0x0058, failedUid)]);
  const scp = await scriptedScp((messageId) => {
    // What Orthanc 1.10 sends when it cannot transcode: status C000, no data set announced, group 0008 appended.
    const command = Buffer.concat([encodeCommand({
      CommandField: CommandField.C_GET_RSP, MessageIDBeingRespondedTo: messageId, AffectedSOPClassUID: GET, CommandDataSetType: 0x0101,
      Status: 0xc000, NumberOfRemainingSuboperations: 0, NumberOfCompletedSuboperations: 0, NumberOfFailedSuboperations: 1, NumberOfWarningSuboperations: 0,
    }), identifier]);
    return [encodePDataHeader(1, true, true, command.length), command];
  });
  try {
    const a = await requestAssociation({ host: '127.0.0.1', port: scp.port, callingAETitle: 'SCU', calledAETitle: 'ANY',
      contexts: [{ abstractSyntax: GET, transferSyntaxes: [EXPLICIT] }] });
    const rq = Buffer.concat([groupLength(0x0008, 10), Buffer.from([0x52, 0x00, 0x08, 0x00, 0x06, 0, 0, 0]), Buffer.from('STUDY ')]);
    const rsps = [];
    for await (const r of a.request(1, { CommandField: CommandField.C_GET_RQ, AffectedSOPClassUID: GET, Priority: 0 }, rq)) rsps.push(r);
    assert.equal(rsps.length, 1);
    assert.equal(rsps[0].command.Status, 0xc000);
    assert.equal(rsps[0].command.NumberOfFailedSuboperations, 1);
    assert.ok(Buffer.from(rsps[0].dataset!).equals(identifier), 'the identifier is the elements after group 0000');
    assert.equal(rsps[0].datasetTransferSyntax, IMPLICIT, 'encoded like the command set, not in the context\'s syntax');
    const ds = parseDataset(rsps[0].dataset!, rsps[0].datasetTransferSyntax!);
    const list = ds.elements.find((e) => e.tag === 0x00080058)!;
    assert.equal(new TextDecoder().decode(list.value).replace(/\0+$/, ''), failedUid);
    assert.ok(a.isOpen, 'the association is not aborted');
    await a.release();
  } finally {
    await scp.close();
  }
});

test('a request whose command PDVs hold elements outside group 0000 is still a protocol error (A-ABORT)', async () => {
  const { srv, logger } = await server();
  try {
    const peer = await rawPeer(srv.port);
    peer.send(rawRQ());
    assert.equal((await peer.nextPdu()).pdu.type, 'A-ASSOCIATE-AC');
    const command = Buffer.concat([encodeCommand({ CommandField: CommandField.C_ECHO_RQ, MessageID: 1, AffectedSOPClassUID: VERIFICATION_SOP_CLASS, CommandDataSetType: 0x0101 }),
      implicitUi(0x0008, 0x0058, '1.2.3')]);
    peer.send(Buffer.concat([encodePDataHeader(1, true, true, command.length), command]));
    assert.deepEqual((await peer.nextPdu()).pdu, { type: 'A-ABORT', source: 2, reason: 6 });
    await peer.closed;
    assert.match(logger.find(/^association aborted/)!.msg, /command set holds element \(0008,0058\) outside group 0000/);
  } finally {
    await srv.close();
  }
});
