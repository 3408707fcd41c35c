import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePdu, encodePdu, encodePDataHeader, PduError, AbortReason, describeRejection } from './pdu.ts';
import type { AssociateAC, AssociateRQ, Pdu } from './pdu.ts';
import { CommandField, decodeCommand, encodeCommand } from './command.ts';
import type { CommandSet } from './command.ts';
import { describeStatus, Status, statusCategory } from './status.ts';

const rq: AssociateRQ = {
  type: 'A-ASSOCIATE-RQ',
  protocolVersion: 1,
  calledAETitle: 'ATRIUM',
  callingAETitle: 'MODALITY_01',
  applicationContext: '1.2.840.10008.3.1.1.1',
  presentationContexts: [
    { id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] },
    { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.1.2', transferSyntaxes: ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.50'] },
  ],
  userInformation: {
    maxLength: 262144,
    implementationClassUID: '1.2.3.4',
    implementationVersionName: 'TEST_1',
    asyncOperationsWindow: { maxInvoked: 4, maxPerformed: 2 },
    roleSelections: [{ sopClassUID: '1.2.840.10008.5.1.4.1.1.2', scuRole: false, scpRole: true }],
    extendedNegotiation: [{ sopClassUID: '1.2.840.10008.5.1.4.1.2.2.1', info: Uint8Array.of(1, 1, 0) }],
    commonExtendedNegotiation: [{ sopClassUID: '1.2.840.10008.5.1.4.1.1.88.22', serviceClassUID: '1.2.840.10008.4.2',
      relatedGeneralSOPClassUIDs: ['1.2.840.10008.5.1.4.1.1.88.11'] }],
    userIdentity: { type: 2, positiveResponseRequested: true, primary: new TextEncoder().encode('alice'), secondary: new TextEncoder().encode('s3cret') },
  },
};

const ac: AssociateAC = {
  type: 'A-ASSOCIATE-AC',
  protocolVersion: 1,
  calledAETitle: 'ATRIUM',
  callingAETitle: 'MODALITY_01',
  applicationContext: '1.2.840.10008.3.1.1.1',
  presentationContexts: [{ id: 1, result: 0, transferSyntax: '1.2.840.10008.1.2' }, { id: 3, result: 4 }],
  userInformation: {
    maxLength: 0, implementationClassUID: '1.2.3.5', implementationVersionName: 'ATRIUM',
    roleSelections: [{ sopClassUID: '1.2.840.10008.5.1.4.1.1.2', scuRole: false, scpRole: true }],
    extendedNegotiation: [{ sopClassUID: '1.2.840.10008.5.1.4.1.2.2.1', info: Uint8Array.of(1) }],
    userIdentityResponse: new TextEncoder().encode('token'),
  },
};

test('every PDU type round-trips', () => {
  const pdus: Pdu[] = [
    rq,
    ac,
    { type: 'A-ASSOCIATE-RJ', result: 2, source: 3, reason: 2 },
    { type: 'P-DATA-TF', pdvs: [
      { pcId: 1, command: true, last: true, data: Uint8Array.of(1, 2, 3, 4) },
      { pcId: 1, command: false, last: false, data: Uint8Array.of(9, 8) },
      { pcId: 3, command: false, last: true, data: new Uint8Array(0) },
    ] },
    { type: 'A-RELEASE-RQ' },
    { type: 'A-RELEASE-RP' },
    { type: 'A-ABORT', source: 2, reason: 6 },
  ];
  for (const pdu of pdus) {
    const bytes = encodePdu(pdu);
    assert.deepEqual(decodePdu(bytes), pdu, pdu.type);
    assert.deepEqual(encodePdu(decodePdu(bytes)), bytes, `${pdu.type} re-encodes identically`);
  }
});

test('user identity types 1, 3, 4, 5 and a JWT round-trip; single-field identities have an empty secondary field', () => {
  for (const type of [1, 3, 4, 5]) {
    const pdu: AssociateRQ = { ...rq, userInformation: { userIdentity: { type, positiveResponseRequested: false,
      primary: new TextEncoder().encode(type === 5 ? 'eyJhbGciOiJIUzI1NiJ9.e30.x' : 'bob'), secondary: new Uint8Array(0) } } };
    assert.deepEqual(decodePdu(encodePdu(pdu)), pdu);
  }
});

test('AE titles are space padded to 16 bytes and trimmed on decoding; AE titles longer than 16 are refused', () => {
  const bytes = encodePdu(rq);
  assert.equal(new TextDecoder().decode(bytes.subarray(10, 26)), 'ATRIUM          ');
  assert.throws(() => encodePdu({ ...rq, calledAETitle: 'A_TITLE_THAT_IS_TOO_LONG' }), PduError);
});

test('P-DATA header encoder matches the generic encoder', () => {
  const data = Uint8Array.of(5, 6, 7);
  const full = encodePdu({ type: 'P-DATA-TF', pdvs: [{ pcId: 5, command: false, last: true, data }] });
  assert.deepEqual(full.subarray(0, 12), encodePDataHeader(5, false, true, 3));
});

test('unknown items and user information sub-items are skipped', () => {
  const bytes = encodePdu(rq);
  // Append an unknown item (0x7f) to the variable items: patch the PDU length.
  const extra = Uint8Array.of(0x7f, 0, 0, 2, 0xaa, 0xbb);
  const out = new Uint8Array(bytes.length + extra.length);
  out.set(bytes);
  out.set(extra, bytes.length);
  new DataView(out.buffer).setUint32(2, out.length - 6);
  assert.deepEqual(decodePdu(out), rq);
});

test('malformed input fails with PduError and an A-ABORT reason', () => {
  const good = encodePdu(rq);
  const cases: [string, Uint8Array, number][] = [
    ['unknown PDU type', Uint8Array.of(0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0), AbortReason.UnrecognizedPdu],
    ['truncated header', Uint8Array.of(1, 0, 0), AbortReason.InvalidPduParameterValue],
    ['length mismatch', good.subarray(0, good.length - 3), AbortReason.InvalidPduParameterValue],
    ['A-ABORT too short', Uint8Array.of(7, 0, 0, 0, 0, 2, 0, 0), AbortReason.InvalidPduParameterValue],
    ['RQ too short', Uint8Array.of(1, 0, 0, 0, 0, 4, 0, 1, 0, 0), AbortReason.InvalidPduParameterValue],
    ['PDV length past the PDU', Uint8Array.of(4, 0, 0, 0, 0, 6, 0, 0, 0, 9, 1, 3), AbortReason.InvalidPduParameterValue],
  ];
  // An item whose length runs past the end of the PDU.
  const badItem = good.slice();
  badItem[6 + 68 + 2] = 0xff; // application context item length high byte
  cases.push(['item length overflow', badItem, AbortReason.InvalidPduParameterValue]);
  // Even presentation context ID.
  const evenId = encodePdu({ ...rq, presentationContexts: [{ id: 1, abstractSyntax: '1.2', transferSyntaxes: ['1.2.840.10008.1.2'] }] });
  const pcOffset = evenId.indexOf(0x20, 6 + 68 + 4 + 21);
  evenId[pcOffset + 4] = 2;
  cases.push(['even presentation context ID', evenId, AbortReason.InvalidPduParameterValue]);
  // Presentation context without a transfer syntax.
  const noTs = encodePdu({ ...rq, presentationContexts: [{ id: 1, abstractSyntax: '1.2', transferSyntaxes: [] }] });
  cases.push(['context without transfer syntax', noTs, AbortReason.InvalidPduParameterValue]);
  // Maximum length sub-item of 3 bytes.
  const ui = encodePdu({ ...rq, presentationContexts: [], userInformation: { maxLength: 1 } });
  const maxItem = ui.indexOf(0x51, 6 + 68);
  const broken = ui.slice();
  broken[maxItem + 3] = 3;
  cases.push(['max length sub-item of 3 bytes', broken, AbortReason.InvalidPduParameterValue]);
  for (const [what, bytes, reason] of cases) {
    assert.throws(() => decodePdu(bytes), (e: unknown) => e instanceof PduError && e.reason === reason, what);
  }
});

test('command sets round-trip in Implicit VR LE with a correct group length', () => {
  const cmd: CommandSet = {
    CommandField: CommandField.C_MOVE_RSP, MessageIDBeingRespondedTo: 7, AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.2.2.2',
    CommandDataSetType: 0x0101, Status: Status.Pending, NumberOfRemainingSuboperations: 3, NumberOfCompletedSuboperations: 10,
    NumberOfFailedSuboperations: 1, NumberOfWarningSuboperations: 0, ErrorComment: 'odd', OffendingElement: [0x00100010, 0x00100020],
    MoveDestination: 'DEST', MoveOriginatorApplicationEntityTitle: 'ORIG', MoveOriginatorMessageID: 65535,
    AffectedSOPInstanceUID: '1.2.3', RequestedSOPClassUID: '1.2.4', RequestedSOPInstanceUID: '1.2.5', Priority: 2, ErrorID: 4,
    EventTypeID: 1, ActionTypeID: 2, AttributeIdentifierList: [0x00080018],
  };
  const bytes = encodeCommand(cmd);
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  assert.equal(v.getUint32(0, true), 0); // (0000,0000)
  assert.equal(v.getUint32(8, true), bytes.length - 12); // group length value
  assert.deepEqual(decodeCommand(bytes), cmd);
  assert.throws(() => decodeCommand(bytes.subarray(0, bytes.length - 3)), /malformed command set/);
});

test('describeStatus names the codes as the standard does', () => {
  assert.equal(describeStatus(Status.OutOfResources), '0xA700 Refused: Out of Resources');
  assert.equal(describeStatus(0xa7ff), '0xA7FF Refused: Out of Resources');
  assert.equal(describeStatus(0xc123), '0xC123 Error: Cannot understand');
  assert.equal(describeStatus(Status.Success), '0x0000 Success');
  assert.equal(describeStatus(Status.DuplicateSOPInstance), '0x0111 Failure: Duplicate SOP Instance');
  assert.equal(statusCategory(Status.PendingWarning), 'pending');
  assert.equal(statusCategory(Status.ElementsDiscarded), 'warning');
  assert.equal(statusCategory(Status.MoveDestinationUnknown), 'failure');
  assert.equal(describeRejection(2, 3, 2), 'rejected-transient, DICOM UL service-provider (presentation related function): local-limit-exceeded');
});
