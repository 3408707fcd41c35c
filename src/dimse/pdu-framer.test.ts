import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PduFramer } from './pdu-framer.ts';
import type { FrameEvent } from './pdu-framer.ts';
import { AbortReason, PduError, encodePDataHeader, encodePdu } from './pdu.ts';

const MiB = 1024 * 1024;

/** A stream: RELEASE-RQ, a 1 MiB data set in one P-DATA PDU, a P-DATA with two PDVs, an A-ABORT. */
function stream(): { bytes: Uint8Array; data: Uint8Array } {
  const data = new Uint8Array(MiB);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >>> 8)) & 0xff;
  const parts = [
    encodePdu({ type: 'A-RELEASE-RQ' }),
    encodePDataHeader(3, false, true, data.length), data,
    encodePdu({ type: 'P-DATA-TF', pdvs: [{ pcId: 1, command: true, last: false, data: Uint8Array.of(1, 2) },
      { pcId: 1, command: true, last: true, data: Uint8Array.of(3) }] }),
    encodePdu({ type: 'A-ABORT', source: 0, reason: 0 }),
  ];
  const total = parts.reduce((n, p) => n + p.length, 0);
  const bytes = new Uint8Array(total);
  let o = 0;
  for (const p of parts) { bytes.set(p, o); o += p.length; }
  return { bytes, data };
}

interface Summary { structure: string[]; dataHash: string; dataBytes: number; maxBuffered: number }

function feed(bytes: Uint8Array, chunkSize: number): Summary {
  const framer = new PduFramer({ maxPduLength: 2 * MiB });
  const events: FrameEvent[] = [];
  for (let o = 0; o < bytes.length; o += chunkSize) events.push(...framer.push(bytes.subarray(o, o + chunkSize)));
  assert.ok(framer.atBoundary);
  const hash = createHash('sha256');
  let dataBytes = 0;
  const structure: string[] = [];
  for (const ev of events) {
    if (ev.kind === 'pdv-data') { hash.update(ev.data); dataBytes += ev.data.length; continue; }
    structure.push(JSON.stringify(ev));
  }
  return { structure, dataHash: hash.digest('hex'), dataBytes, maxBuffered: framer.maxBuffered };
}

test('a 1 MiB P-DATA fed in 1-byte, 7-byte and large chunks yields the same fragments without buffering the PDU body', () => {
  const { bytes, data } = stream();
  const expectedHash = createHash('sha256').update(data).update(Uint8Array.of(1, 2, 3)).digest('hex');
  const results = [1, 7, 64 * 1024, bytes.length].map((n) => feed(bytes, n));
  for (const r of results) {
    assert.deepEqual(r.structure, results[0].structure);
    assert.equal(r.dataHash, expectedHash);
    assert.equal(r.dataBytes, MiB + 3);
    // Only headers (6 bytes) and the 4-byte control PDU bodies (+6) are ever held: never the 1 MiB body.
    assert.ok(r.maxBuffered <= 10, `max buffered ${r.maxBuffered}`);
  }
  assert.deepEqual(results[0].structure.map((s) => JSON.parse(s).kind),
    ['pdu', 'pdv-start', 'pdv-end', 'pdv-start', 'pdv-end', 'pdv-start', 'pdv-end', 'pdu']);
});

test('data events are views of the pushed chunks (no copies)', () => {
  const { bytes } = stream();
  const framer = new PduFramer({ maxPduLength: 0 });
  const events = framer.push(bytes);
  const first = events.find((e) => e.kind === 'pdv-data');
  assert.ok(first && first.kind === 'pdv-data');
  assert.equal(first.data.buffer, bytes.buffer);
});

test('a P-DATA longer than the advertised maximum is refused as soon as its header arrives', () => {
  const framer = new PduFramer({ maxPduLength: 16384 });
  assert.throws(() => framer.push(encodePDataHeader(1, false, true, 16384)),
    (e: unknown) => e instanceof PduError && e.reason === AbortReason.InvalidPduParameterValue && /exceeds the maximum length of 16384/.test(e.message));
  // The framer stays failed.
  assert.throws(() => framer.push(Uint8Array.of(0)), PduError);
});

test('unknown PDU types, oversized control PDUs and inconsistent PDV lengths are refused', () => {
  assert.throws(() => new PduFramer({ maxPduLength: 0 }).push(new TextEncoder().encode('GET / HTTP/1.1\r\n')),
    (e: unknown) => e instanceof PduError && e.reason === AbortReason.UnrecognizedPdu);
  assert.throws(() => new PduFramer({ maxPduLength: 0, maxControlPduLength: 1000 }).push(Uint8Array.of(1, 0, 0, 0, 0x10, 0)),
    /exceeds the limit/);
  // PDV claims 100 bytes in a 10-byte PDU.
  assert.throws(() => new PduFramer({ maxPduLength: 0 }).push(Uint8Array.of(4, 0, 0, 0, 0, 10, 0, 0, 0, 100, 1, 3)), /PDV item length/);
  // A PDU that ends with 3 stray bytes after its PDV.
  assert.throws(() => new PduFramer({ maxPduLength: 0 }).push(Uint8Array.of(4, 0, 0, 0, 0, 10, 0, 0, 0, 3, 1, 3, 9, 0, 0, 0)),
    /cannot hold a PDV item/);
});
