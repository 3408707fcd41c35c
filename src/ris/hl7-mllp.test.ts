// HL7 over MLLP against real peers: Debian's mllp_send (python3-hl7) sends an ADT A04 then an ORM^O01 NW
// and gets AA for both; raw sockets check the framing (several frames in one write, one frame byte by byte,
// garbage between frames, an oversize frame closing the connection with nothing applied, a disconnect
// mid-frame, ACKs in order on a persistent connection, the idle timeout) and a restart mid-stream losing no
// acknowledged message.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestArchive } from '../../test/support/archive.ts';
import { MllpFramer, mllpFrame } from '../hl7/mllp.ts';
import { risOf, startHl7Listeners } from './module.ts';
import { hl7, seg } from '../../test/support/hl7.ts';


const pid = (id: string) => `PID|1||${id}^^^HOSP^MR||DOE^JANE||19800202|F`;
const orm = (id: string, accession: string) => [pid(id), 'ORC|NW|PL1|FL1',
  seg('OBR', { 1: '1', 2: `PL-${accession}`, 4: 'MRBRAIN^MR Brain^LOCAL', 18: accession, 20: `SPS-${accession}`, 21: 'MR_SCANNER', 24: 'MR', 27: '^^^20240305101500^^R' })];

/** A client that sends frames and reads ACK frames (MSA-1, MSA-2) as they come. */
async function connect(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const framer = new MllpFramer(1 << 20);
  const acks: { code: string; controlId: string }[] = [];
  const waiters: (() => void)[] = [];
  socket.on('data', (chunk) => {
    for (const frame of framer.push(chunk)) {
      const msa = frame.toString('utf8').split('\r').find((s) => s.startsWith('MSA|'))!.split('|');
      acks.push({ code: msa[1]!, controlId: msa[2]! });
      for (const w of waiters.splice(0)) w();
    }
  });
  socket.on('error', () => {});
  const closed = once(socket, 'close');
  // A closed connection brings no more ACKs: wake the waiters so that waitFor fails at once instead of hanging.
  void closed.then(() => { for (const w of waiters.splice(0)) w(); });
  return {
    socket, acks, closed,
    async waitFor(n: number) {
      while (acks.length < n) {
        if (socket.destroyed) throw new Error(`the connection closed after ${acks.length} of ${n} ACKs`);
        await new Promise<void>((resolve) => { waiters.push(resolve); });
      }
      return acks;
    },
  };
}

test('HL7 over MLLP', async (t) => {
  const ta = await createTestArchive('sqlite+fs');
  after(() => ta.cleanup());
  let archive = ta.archive;
  let [listener] = await startHl7Listeners(archive, { port: 0, host: '127.0.0.1', maxFrameKiB: 64, idleTimeoutSeconds: 2 });
  after(() => listener!.close());
  const ris = () => risOf(archive);

  await t.test('mllp_send (python3-hl7) sends ADT A04 then ORM^O01 NW: two AA', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-mllp-'));
    try {
      const file = path.join(dir, 'messages.hl7');
      const messages = [hl7([pid('E2E1')], { controlId: 'E2E-A04' }), hl7(orm('E2E1', 'E2EACC1'), { type: 'ORM^O01', controlId: 'E2E-ORM' })];
      await writeFile(file, Buffer.concat(messages.map((m) => Buffer.concat([m, Buffer.from('\n')]))));
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile('mllp_send', ['--loose', '-f', file, '-p', String(listener!.port), '127.0.0.1'], { timeout: 20_000 }, (error, out) => (error ? reject(error) : resolve(out)));
      });
      const msas = stdout.split(/[\r\n]+/).filter((l) => l.startsWith('MSA|')).map((l) => l.split('|').slice(1, 3));
      assert.deepEqual(msas, [['AA', 'E2E-A04'], ['AA', 'E2E-ORM']]);
      const order = (await ris().orders.find({ accessionNumber: 'E2EACC1' }))!;
      assert.equal(order.patient.patientId, 'E2E1');
      assert.deepEqual(order.steps.map((s) => [s.modality, s.stationAeTitle, s.startDate, s.startTime]), [['MR', 'MR_SCANNER', '20240305', '101500']]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  await t.test('several frames in one write, one frame byte by byte, garbage between frames: ACKs in order', async () => {
    const c = await connect(listener!.port);
    const frames = [1, 2, 3].map((n) => mllpFrame(hl7([pid(`F${n}`)], { controlId: `FRAME-${n}` })));
    c.socket.write(Buffer.concat([Buffer.from('noise\r\n'), frames[0]!, Buffer.from('\x00\x01 junk '), frames[1]!]));
    for (const byte of frames[2]!) { c.socket.write(Buffer.from([byte])); await new Promise((r) => setImmediate(r)); }
    const acks = await c.waitFor(3);
    assert.deepEqual(acks.map((a) => [a.code, a.controlId]), [['AA', 'FRAME-1'], ['AA', 'FRAME-2'], ['AA', 'FRAME-3']]);
    // The same connection goes on (persistent).
    c.socket.write(mllpFrame(hl7([pid('F4')], { controlId: 'FRAME-4' })));
    assert.deepEqual((await c.waitFor(4))[3], { code: 'AA', controlId: 'FRAME-4' });
    c.socket.destroy();
  });

  await t.test('an oversize frame closes the connection and applies nothing; earlier data intact', async () => {
    const c = await connect(listener!.port);
    const big = hl7([pid('BIG1'), `NTE|1||${'x'.repeat(70 * 1024)}`], { controlId: 'BIG-1' });
    c.socket.write(mllpFrame(big));
    await c.closed;
    assert.equal(c.acks.length, 0);
    assert.equal(await ris().patients.get({ patientId: 'BIG1', issuerOfPatientId: 'HOSP' }), null);
    assert.equal((await ris().core.store.findMessage('RIS^HOSP', 'BIG-1')), null);
    assert.ok(await ris().patients.get({ patientId: 'F1', issuerOfPatientId: 'HOSP' }));
  });

  await t.test('a client that disconnects mid-frame: the partial message is dropped', async () => {
    const c = await connect(listener!.port);
    const frame = mllpFrame(hl7([pid('HALF1')], { controlId: 'HALF-1' }));
    c.socket.end(frame.subarray(0, frame.length - 10));
    await c.closed;
    assert.equal(await ris().patients.get({ patientId: 'HALF1', issuerOfPatientId: 'HOSP' }), null);
  });

  await t.test('random bytes only get nothing; an idle connection is closed', async () => {
    const c = await connect(listener!.port);
    c.socket.write(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251 === 11 ? 0x20 : ((i * 31) % 255) + 1).filter((b) => b !== 0x0b)));
    await c.closed; // idle timeout (2 s)
    assert.equal(c.acks.length, 0);
  });

  await t.test('restart mid-stream loses no acknowledged message', async () => {
    const c = await connect(listener!.port);
    const count = 40;
    for (let i = 0; i < count; i++) c.socket.write(mllpFrame(hl7(orm('R1', `RST${i}`), { type: 'ORM^O01', controlId: `RST-${i}` })));
    await c.waitFor(5);
    // Stop mid-stream: the connection is cut and the archive closed while messages are in flight.
    c.socket.destroy();
    await listener!.close();
    await archive.close();
    const acked = c.acks.filter((a) => a.code === 'AA').map((a) => a.controlId);
    assert.ok(acked.length >= 5);
    archive = await ta.reopen();
    [listener] = await startHl7Listeners(archive, { port: 0, host: '127.0.0.1' });
    for (const controlId of acked) {
      const n = controlId.slice('RST-'.length);
      assert.ok(await risOf(archive).orders.find({ accessionNumber: `RST${n}` }), `acknowledged ${controlId} is there after the restart`);
      assert.equal((await risOf(archive).core.store.findMessage('RIS^HOSP', controlId))?.ackCode, 'AA');
    }
    // The sender retransmits everything unacknowledged (and some acknowledged): each applied once.
    const again = await connect(listener!.port);
    for (let i = 0; i < count; i++) again.socket.write(mllpFrame(hl7(orm('R1', `RST${i}`), { type: 'ORM^O01', controlId: `RST-${i}` })));
    const acks = await again.waitFor(count);
    assert.ok(acks.every((a) => a.code === 'AA'));
    const orders = await risOf(archive).orders.list({ accessionNumber: 'RST*' }, { limit: 100, offset: 0 });
    assert.equal(orders.total, count);
    again.socket.destroy();
  });
});
