// Push parser cutting an upper layer byte stream into PDUs (PS3.8 9.3). Pure: no I/O.
//
// Non-P-DATA PDUs are small and are collected whole (one header + its body at most) and decoded. A P-DATA-TF
// PDU is never collected: the framer reports the header of each PDV, then the PDV's bytes as views of the
// chunks pushed (no copy), then its end, so memory does not depend on the negotiated maximum PDU length.
import { AbortReason, PduError, PduType, decodePduBody } from './pdu.ts';
import type { Pdu } from './pdu.ts';

export type FrameEvent =
  | { kind: 'pdu'; pdu: Exclude<Pdu, { type: 'P-DATA-TF' }> }
  | { kind: 'pdv-start'; pcId: number; command: boolean; last: boolean; length: number }
  | { kind: 'pdv-data'; data: Uint8Array }
  | { kind: 'pdv-end'; pcId: number; command: boolean; last: boolean };

export interface PduFramerOptions {
  /** Largest P-DATA-TF PDU (value of its length field) accepted: the maximum we advertised; 0 = unlimited. */
  maxPduLength: number;
  /** Largest other PDU accepted (A-ASSOCIATE-RQ with many contexts, SAML or JWT identities...). Default 1 MiB. */
  maxControlPduLength?: number;
}

const PDU_NAMES: Record<number, string> = {
  1: 'A-ASSOCIATE-RQ', 2: 'A-ASSOCIATE-AC', 3: 'A-ASSOCIATE-RJ', 4: 'P-DATA-TF', 5: 'A-RELEASE-RQ', 6: 'A-RELEASE-RP', 7: 'A-ABORT',
};

export class PduFramer {
  /** Largest number of bytes the framer held at once (partial headers and control PDU bodies). */
  maxBuffered = 0;
  /** Total bytes consumed. */
  position = 0;
  private readonly maxPdu: number;
  private readonly maxControl: number;
  private readonly head = new Uint8Array(6);
  private headFill = 0;
  private state: 'pdu-header' | 'control-body' | 'pdv-header' | 'pdv-data' = 'pdu-header';
  private pduType = 0;
  private body: Uint8Array | undefined;
  private bodyFill = 0;
  /** P-DATA-TF bytes not yet consumed. */
  private pduRemaining = 0;
  private pdvRemaining = 0;
  private pdv = { pcId: 0, command: false, last: false };
  private failed: PduError | undefined;

  constructor(options: PduFramerOptions) {
    this.maxPdu = options.maxPduLength;
    this.maxControl = options.maxControlPduLength ?? 1024 * 1024;
  }

  /** True when the stream may end here (between PDUs). */
  get atBoundary(): boolean {
    return this.state === 'pdu-header' && this.headFill === 0;
  }

  /** Consumes `chunk` and returns what it completed. Throws PduError (with the A-ABORT reason) on bad input. */
  push(chunk: Uint8Array): FrameEvent[] {
    if (this.failed) throw this.failed;
    try {
      return this.consume(chunk);
    } catch (e) {
      if (e instanceof PduError) this.failed = e;
      throw e;
    }
  }

  private note(n: number): void {
    if (n > this.maxBuffered) this.maxBuffered = n;
  }

  private consume(chunk: Uint8Array): FrameEvent[] {
    const out: FrameEvent[] = [];
    let o = 0;
    while (o < chunk.length) {
      switch (this.state) {
        case 'pdu-header': {
          const n = Math.min(6 - this.headFill, chunk.length - o);
          this.head.set(chunk.subarray(o, o + n), this.headFill);
          this.headFill += n;
          o += n;
          this.note(this.headFill);
          if (this.headFill < 6) break;
          this.headFill = 0;
          this.startPdu(out);
          break;
        }
        case 'control-body': {
          const body = this.body!;
          const n = Math.min(body.length - this.bodyFill, chunk.length - o);
          body.set(chunk.subarray(o, o + n), this.bodyFill);
          this.bodyFill += n;
          o += n;
          this.note(6 + this.bodyFill);
          if (this.bodyFill === body.length) this.endControl(out);
          break;
        }
        case 'pdv-header': {
          const n = Math.min(6 - this.headFill, chunk.length - o);
          this.head.set(chunk.subarray(o, o + n), this.headFill);
          this.headFill += n;
          o += n;
          this.note(this.headFill);
          if (this.headFill < 6) break;
          this.headFill = 0;
          this.pduRemaining -= 6;
          const len = new DataView(this.head.buffer).getUint32(0);
          if (len < 2 || len - 2 > this.pduRemaining) {
            throw new PduError(`PDV item length ${len} is invalid (${this.pduRemaining + 2} bytes left in the P-DATA-TF PDU) at offset ` +
              `${this.position + o - 6}`, AbortReason.InvalidPduParameterValue);
          }
          const mch = this.head[5];
          this.pdv = { pcId: this.head[4], command: (mch & 1) !== 0, last: (mch & 2) !== 0 };
          this.pdvRemaining = len - 2;
          out.push({ kind: 'pdv-start', ...this.pdv, length: len - 2 });
          if (this.pdvRemaining === 0) this.endPdv(out);
          else this.state = 'pdv-data';
          break;
        }
        case 'pdv-data': {
          const n = Math.min(this.pdvRemaining, chunk.length - o);
          out.push({ kind: 'pdv-data', data: chunk.subarray(o, o + n) });
          o += n;
          this.pdvRemaining -= n;
          this.pduRemaining -= n;
          if (this.pdvRemaining === 0) this.endPdv(out);
          break;
        }
      }
    }
    this.position += chunk.length;
    return out;
  }

  private startPdu(out: FrameEvent[]): void {
    const type = this.head[0];
    const len = new DataView(this.head.buffer).getUint32(2);
    const name = PDU_NAMES[type];
    if (!name) {
      throw new PduError(`unrecognized PDU type 0x${type.toString(16).padStart(2, '0')} at offset ${this.position}`,
        AbortReason.UnrecognizedPdu);
    }
    this.pduType = type;
    if (type === PduType.PDataTF) {
      if (this.maxPdu > 0 && len > this.maxPdu) {
        throw new PduError(`P-DATA-TF PDU of ${len} bytes exceeds the maximum length of ${this.maxPdu} bytes we advertised`,
          AbortReason.InvalidPduParameterValue);
      }
      if (len < 6) throw new PduError(`P-DATA-TF PDU of ${len} bytes cannot hold a PDV item`, AbortReason.InvalidPduParameterValue);
      this.pduRemaining = len;
      this.state = 'pdv-header';
      return;
    }
    if (len > this.maxControl) {
      throw new PduError(`${name} PDU of ${len} bytes exceeds the limit of ${this.maxControl} bytes`, AbortReason.InvalidPduParameterValue);
    }
    this.body = new Uint8Array(len);
    this.bodyFill = 0;
    this.state = 'control-body';
    if (len === 0) this.endControl(out);
  }

  private endControl(out: FrameEvent[]): void {
    const pdu = decodePduBody(this.pduType, this.body!);
    this.body = undefined;
    this.state = 'pdu-header';
    out.push({ kind: 'pdu', pdu: pdu as Exclude<Pdu, { type: 'P-DATA-TF' }> });
  }

  private endPdv(out: FrameEvent[]): void {
    out.push({ kind: 'pdv-end', ...this.pdv });
    if (this.pduRemaining > 0 && this.pduRemaining < 6) {
      throw new PduError(`P-DATA-TF PDU ends with ${this.pduRemaining} bytes that cannot hold a PDV item`,
        AbortReason.InvalidPduParameterValue);
    }
    this.state = this.pduRemaining === 0 ? 'pdu-header' : 'pdv-header';
  }
}
