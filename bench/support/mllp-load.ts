/**
 * The HL7 load generator of the RIS benchmark: persistent MLLP connections (plain TCP, TCP_NODELAY), each
 * sending its messages one after the other, the next only once the previous one's ACK is back, as an
 * interface engine does in original mode. Every ACK is checked: MSA-1 must be AA and MSA-2 the message's
 * control ID. Framing is Atrium's own MllpFramer (src/hl7/mllp.ts), the rest raw sockets: the messages are
 * encoded before the clock starts, so the generator costs little CPU beside the server on a small machine.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { MllpFramer, mllpFrame } from '../../src/hl7/mllp.ts';

export interface LoadResult {
  seconds: number;
  sent: number;
  /** ACKs with MSA-1 AA and the right MSA-2. */
  accepted: number;
  /** Up to 5 descriptions of ACKs that were not (code, control ID, ERR text). */
  refused: string[];
  refusedCount: number;
  /** Time from writing a message to its ACK, ms, sorted. */
  latencies: number[];
}

/** MSA-1 and MSA-2 of an ACK, and its ERR/MSA-3 text for the report. */
function readAck(ack: string): { code: string; controlId: string; text: string } {
  const segments = ack.split('\r');
  const msa = segments.find((s) => s.startsWith('MSA|'))?.split('|') ?? [];
  const err = segments.find((s) => s.startsWith('ERR|'))?.split('|') ?? [];
  return { code: msa[1] ?? '', controlId: msa[2] ?? '', text: err[8] ?? msa[3] ?? '' };
}

/**
 * Sends `messages[c]` over connection c (all connections at once), each message after the previous ACK.
 * `controlIds[c][i]` is MSH-10 of `messages[c][i]`. Time runs from the first write to the last ACK.
 */
export async function sendOverConnections(host: string, port: number, messages: Buffer[][], controlIds: string[][], timeoutMs = 60_000): Promise<LoadResult> {
  const sockets = await Promise.all(messages.map(() => new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true }, () => resolve(socket));
    socket.once('error', reject);
  })));
  const result: LoadResult = { seconds: 0, sent: 0, accepted: 0, refused: [], refusedCount: 0, latencies: [] };
  const frames = messages.map((list) => list.map((m) => mllpFrame(m)));
  const start = performance.now();
  try {
    await Promise.all(sockets.map((socket, c) => new Promise<void>((resolve, reject) => {
      const framer = new MllpFramer(1 << 20);
      let i = 0;
      let sentAt = 0;
      const timer = setTimeout(() => reject(new Error(`connection ${c + 1}: no ACK for message ${i + 1} within ${timeoutMs} ms`)), timeoutMs);
      const sendNext = () => {
        if (i === frames[c]!.length) { clearTimeout(timer); resolve(); return; }
        sentAt = performance.now();
        socket.write(frames[c]![i]!);
        result.sent++;
      };
      socket.on('data', (chunk: Buffer) => {
        for (const frame of framer.push(chunk)) {
          result.latencies.push(performance.now() - sentAt);
          const ack = readAck(frame.toString('latin1'));
          const expected = controlIds[c]![i]!;
          if (ack.code === 'AA' && ack.controlId === expected) result.accepted++;
          else {
            result.refusedCount++;
            if (result.refused.length < 5) result.refused.push(`connection ${c + 1}, ${expected}: ${ack.code || '(no MSA)'} ${ack.controlId !== expected ? `for control ID ${ack.controlId} ` : ''}${ack.text}`.trim());
          }
          i++;
          timer.refresh();
          sendNext();
        }
      });
      socket.once('error', (error) => { clearTimeout(timer); reject(error); });
      socket.once('close', () => { if (i < frames[c]!.length) { clearTimeout(timer); reject(new Error(`connection ${c + 1} closed after ${i} ACKs`)); } });
      sendNext();
    })));
    result.seconds = (performance.now() - start) / 1000;
  } finally {
    for (const socket of sockets) socket.destroy();
  }
  result.latencies.sort((a, b) => a - b);
  return result;
}
