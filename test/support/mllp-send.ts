// Debian's mllp_send (python3-hl7) as the HL7 sender: an independent MLLP client, none of Atrium's code.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** One acknowledgment as mllp_send printed it, read with a plain split (not Atrium's parser). */
export interface SentAck {
  /** MSH-9 of the ACK. */
  type: string;
  /** MSA-1, MSA-2. */
  code: string;
  controlId: string;
  /** ERR-3.1 and ERR-2 (segment^sequence^field^repetition^component), null without ERR. */
  errCode: string | null;
  errLocation: string | null;
  /** MSA-3. */
  text: string;
  /** The ACK's bytes. */
  raw: Buffer;
}

/**
 * Sends `messages` (each the bytes of one message, in any character set) in order on one connection with
 * `mllp_send` and returns their ACKs. The messages go in MLLP frames in a file (mllp_send's framed input
 * mode, which takes bytes as they are), so nothing is re-encoded on the way.
 */
export async function mllpSend(port: number, messages: Buffer[], host = '127.0.0.1'): Promise<SentAck[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-mllp-send-'));
  try {
    const file = path.join(dir, 'messages.mllp');
    await writeFile(file, Buffer.concat(messages.map((m) => Buffer.concat([Buffer.from([0x0b]), m, Buffer.from([0x1c, 0x0d])]))));
    const stdout = await new Promise<Buffer>((resolve, reject) => {
      execFile('mllp_send', ['-f', file, '-p', String(port), host], { timeout: 30_000, encoding: 'buffer' }, (error, out, err) => (error ? reject(new Error(`mllp_send: ${error.message}\n${err.toString()}`)) : resolve(out)));
    });
    // Each ACK is printed as it came (in its MLLP frame) and a line feed; one MSH each.
    const acks: SentAck[] = [];
    let start = stdout.indexOf('MSH|');
    while (start >= 0) {
      const next = stdout.indexOf('MSH|', start + 4);
      const end = stdout.indexOf(0x1c, start);
      const raw = stdout.subarray(start, end >= 0 && (next < 0 || end < next) ? end : next < 0 ? stdout.length : next);
      const lines = raw.toString('latin1').split(/[\r\n]+/);
      const fields = (id: string) => lines.find((l) => l.startsWith(`${id}|`))?.split('|') ?? null;
      const msh = fields('MSH')!;
      const msa = fields('MSA') ?? [];
      const err = fields('ERR');
      acks.push({ type: msh[8] ?? '', code: msa[1] ?? '', controlId: msa[2] ?? '', text: msa[3] ?? '', errCode: err ? (err[3] ?? '').split('^')[0]! || null : null, errLocation: err ? err[2] || null : null, raw: Buffer.from(raw) });
      start = next;
    }
    if (acks.length !== messages.length) throw new Error(`mllp_send sent ${messages.length} messages and printed ${acks.length} ACKs:\n${stdout.toString('latin1')}`);
    return acks;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
