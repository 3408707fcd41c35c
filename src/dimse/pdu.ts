// DICOM Upper Layer PDUs (PS3.8 Section 9.3) and the association negotiation items of PS3.7 Annex D.3.3.
// Pure: bytes in, objects out, and back. All multi-byte fields are big endian (PS3.8 9.3.1).

export const PduType = {
  AssociateRQ: 0x01,
  AssociateAC: 0x02,
  AssociateRJ: 0x03,
  PDataTF: 0x04,
  ReleaseRQ: 0x05,
  ReleaseRP: 0x06,
  Abort: 0x07,
} as const;

export const ItemType = {
  ApplicationContext: 0x10,
  PresentationContextRQ: 0x20,
  PresentationContextAC: 0x21,
  AbstractSyntax: 0x30,
  TransferSyntax: 0x40,
  UserInformation: 0x50,
  MaximumLength: 0x51,
  ImplementationClassUID: 0x52,
  AsynchronousOperationsWindow: 0x53,
  RoleSelection: 0x54,
  ImplementationVersionName: 0x55,
  SOPClassExtendedNegotiation: 0x56,
  SOPClassCommonExtendedNegotiation: 0x57,
  UserIdentityRQ: 0x58,
  UserIdentityAC: 0x59,
} as const;

/** The DICOM Application Context Name (PS3.7 A.2.1). */
export const DICOM_APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

/** A-ABORT reasons when the source is the service provider (PS3.8 Table 9-26). */
export const AbortReason = {
  NotSpecified: 0,
  UnrecognizedPdu: 1,
  UnexpectedPdu: 2,
  UnrecognizedPduParameter: 4,
  UnexpectedPduParameter: 5,
  InvalidPduParameterValue: 6,
} as const;

/** A-ABORT sources (PS3.8 Table 9-26). */
export const AbortSource = { ServiceUser: 0, ServiceProvider: 2 } as const;

/** Presentation context results (PS3.8 Table 9-18). */
export const PresentationContextResult = {
  Acceptance: 0,
  UserRejection: 1,
  ProviderRejection: 2,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

/** User Identity Types (PS3.7 Table D.3-14). */
export const UserIdentityType = { Username: 1, UsernamePasscode: 2, Kerberos: 3, Saml: 4, Jwt: 5 } as const;

/** Malformed or unacceptable upper layer input; `reason` is the A-ABORT reason to send (PS3.8 Table 9-26). */
export class PduError extends Error {
  readonly reason: number;
  constructor(message: string, reason: number = AbortReason.InvalidPduParameterValue) {
    super(message);
    this.name = 'PduError';
    this.reason = reason;
  }
}

export interface PresentationContextRQItem { id: number; abstractSyntax: string; transferSyntaxes: string[] }
export interface PresentationContextACItem { id: number; result: number; transferSyntax?: string }
export interface RoleSelection { sopClassUID: string; scuRole: boolean; scpRole: boolean }
export interface ExtendedNegotiation { sopClassUID: string; info: Uint8Array }
export interface CommonExtendedNegotiation { sopClassUID: string; serviceClassUID: string; relatedGeneralSOPClassUIDs: string[] }
export interface UserIdentityRQ { type: number; positiveResponseRequested: boolean; primary: Uint8Array; secondary: Uint8Array }

export interface UserInformation {
  /** (0x51) Maximum length of the P-DATA-TF PDUs the sender can receive; 0 = unlimited. */
  maxLength?: number;
  implementationClassUID?: string;
  implementationVersionName?: string;
  asyncOperationsWindow?: { maxInvoked: number; maxPerformed: number };
  roleSelections?: RoleSelection[];
  extendedNegotiation?: ExtendedNegotiation[];
  commonExtendedNegotiation?: CommonExtendedNegotiation[];
  /** A-ASSOCIATE-RQ only. */
  userIdentity?: UserIdentityRQ;
  /** A-ASSOCIATE-AC only: the server response (empty unless Kerberos/SAML/JWT). */
  userIdentityResponse?: Uint8Array;
}

export interface AssociateRQ {
  type: 'A-ASSOCIATE-RQ';
  protocolVersion: number;
  calledAETitle: string;
  callingAETitle: string;
  applicationContext: string;
  presentationContexts: PresentationContextRQItem[];
  userInformation: UserInformation;
}
export interface AssociateAC {
  type: 'A-ASSOCIATE-AC';
  protocolVersion: number;
  /** Echoed from the request (PS3.8 9.3.3: not tested). */
  calledAETitle: string;
  callingAETitle: string;
  applicationContext: string;
  presentationContexts: PresentationContextACItem[];
  userInformation: UserInformation;
}
export interface AssociateRJ { type: 'A-ASSOCIATE-RJ'; result: number; source: number; reason: number }
export interface Pdv { pcId: number; command: boolean; last: boolean; data: Uint8Array }
export interface PDataTF { type: 'P-DATA-TF'; pdvs: Pdv[] }
export interface ReleaseRQ { type: 'A-RELEASE-RQ' }
export interface ReleaseRP { type: 'A-RELEASE-RP' }
export interface Abort { type: 'A-ABORT'; source: number; reason: number }
export type Pdu = AssociateRQ | AssociateAC | AssociateRJ | PDataTF | ReleaseRQ | ReleaseRP | Abort;

// ---------------------------------------------------------------------------------------------------------
// Encoding

const ascii = (s: string): Uint8Array => {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7e) throw new PduError(`non-ASCII character in ${JSON.stringify(s)}`);
    out[i] = c;
  }
  return out;
};

class Writer {
  private parts: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array): this { this.parts.push(b); this.length += b.length; return this; }
  u8(v: number): this { return this.bytes(Uint8Array.of(v & 0xff)); }
  u16(v: number): this { return this.bytes(Uint8Array.of((v >>> 8) & 0xff, v & 0xff)); }
  u32(v: number): this { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v >>> 0); return this.bytes(b); }
  zeros(n: number): this { return this.bytes(new Uint8Array(n)); }
  item(type: number, body: Uint8Array): this {
    if (body.length > 0xffff) throw new PduError(`item 0x${type.toString(16)} too long (${body.length} bytes)`);
    return this.u8(type).u8(0).u16(body.length).bytes(body);
  }
  /** A 16-bit length followed by the bytes (role selection, extended negotiation, user identity fields). */
  lv(b: Uint8Array): this {
    if (b.length > 0xffff) throw new PduError(`field too long (${b.length} bytes)`);
    return this.u16(b.length).bytes(b);
  }
  done(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

function aeTitle(s: string, what: string): Uint8Array {
  const t = s.trim();
  if (t.length === 0 || t.length > 16) throw new PduError(`${what} AE title ${JSON.stringify(s)} must have 1 to 16 characters`);
  if (/[\\\x00-\x1f]/.test(t)) throw new PduError(`${what} AE title ${JSON.stringify(s)} has a control character or backslash`);
  return ascii(t.padEnd(16, ' '));
}

function uid(s: string): Uint8Array {
  if (s.length === 0 || s.length > 64) throw new PduError(`invalid UID ${JSON.stringify(s)}`);
  return ascii(s);
}

function encodeUserInformation(ui: UserInformation, ac: boolean): Uint8Array {
  const w = new Writer();
  if (ui.maxLength !== undefined) w.item(ItemType.MaximumLength, new Writer().u32(ui.maxLength).done());
  if (ui.implementationClassUID !== undefined) w.item(ItemType.ImplementationClassUID, uid(ui.implementationClassUID));
  if (ui.asyncOperationsWindow) {
    w.item(ItemType.AsynchronousOperationsWindow,
      new Writer().u16(ui.asyncOperationsWindow.maxInvoked).u16(ui.asyncOperationsWindow.maxPerformed).done());
  }
  for (const r of ui.roleSelections ?? []) {
    w.item(ItemType.RoleSelection, new Writer().lv(uid(r.sopClassUID)).u8(r.scuRole ? 1 : 0).u8(r.scpRole ? 1 : 0).done());
  }
  if (ui.implementationVersionName !== undefined) {
    if (ui.implementationVersionName.length < 1 || ui.implementationVersionName.length > 16) {
      throw new PduError(`implementation version name ${JSON.stringify(ui.implementationVersionName)} must have 1 to 16 characters`);
    }
    w.item(ItemType.ImplementationVersionName, ascii(ui.implementationVersionName));
  }
  for (const e of ui.extendedNegotiation ?? []) {
    w.item(ItemType.SOPClassExtendedNegotiation, new Writer().lv(uid(e.sopClassUID)).bytes(e.info).done());
  }
  if (!ac) {
    for (const c of ui.commonExtendedNegotiation ?? []) {
      const related = new Writer();
      for (const r of c.relatedGeneralSOPClassUIDs) related.lv(uid(r));
      w.item(ItemType.SOPClassCommonExtendedNegotiation,
        new Writer().lv(uid(c.sopClassUID)).lv(uid(c.serviceClassUID)).lv(related.done()).done());
    }
    if (ui.userIdentity) {
      const u = ui.userIdentity;
      w.item(ItemType.UserIdentityRQ,
        new Writer().u8(u.type).u8(u.positiveResponseRequested ? 1 : 0).lv(u.primary).lv(u.secondary).done());
    }
  } else if (ui.userIdentityResponse) {
    w.item(ItemType.UserIdentityAC, new Writer().lv(ui.userIdentityResponse).done());
  }
  return w.done();
}

function header(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(6 + body.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(2, body.length);
  out.set(body, 6);
  return out;
}

function encodeAssociate(pdu: AssociateRQ | AssociateAC): Uint8Array {
  const ac = pdu.type === 'A-ASSOCIATE-AC';
  const w = new Writer()
    .u16(pdu.protocolVersion).zeros(2)
    .bytes(aeTitle(pdu.calledAETitle, 'called')).bytes(aeTitle(pdu.callingAETitle, 'calling'))
    .zeros(32)
    .item(ItemType.ApplicationContext, uid(pdu.applicationContext));
  if (pdu.type === 'A-ASSOCIATE-RQ') {
    for (const pc of pdu.presentationContexts) {
      const sub = new Writer().u8(pc.id).zeros(3).item(ItemType.AbstractSyntax, uid(pc.abstractSyntax));
      for (const ts of pc.transferSyntaxes) sub.item(ItemType.TransferSyntax, uid(ts));
      w.item(ItemType.PresentationContextRQ, sub.done());
    }
  } else {
    for (const pc of pdu.presentationContexts) {
      const sub = new Writer().u8(pc.id).u8(0).u8(pc.result).u8(0);
      // PS3.8 9.3.3.2: the transfer syntax sub-item is present but not significant when not accepted.
      sub.item(ItemType.TransferSyntax, pc.transferSyntax ? uid(pc.transferSyntax) : new Uint8Array(0));
      w.item(ItemType.PresentationContextAC, sub.done());
    }
  }
  w.item(ItemType.UserInformation, encodeUserInformation(pdu.userInformation, ac));
  return header(ac ? PduType.AssociateAC : PduType.AssociateRQ, w.done());
}

/** The header (PDU header + PDV item header, 12 bytes) of a P-DATA-TF PDU holding one PDV of `dataLength` bytes. */
export function encodePDataHeader(pcId: number, command: boolean, last: boolean, dataLength: number): Uint8Array {
  const out = new Uint8Array(12);
  const v = new DataView(out.buffer);
  out[0] = PduType.PDataTF;
  v.setUint32(2, dataLength + 6);
  v.setUint32(6, dataLength + 2);
  out[10] = pcId;
  out[11] = (command ? 1 : 0) | (last ? 2 : 0);
  return out;
}

export function encodePdu(pdu: Pdu): Uint8Array {
  switch (pdu.type) {
    case 'A-ASSOCIATE-RQ':
    case 'A-ASSOCIATE-AC':
      return encodeAssociate(pdu);
    case 'A-ASSOCIATE-RJ':
      return header(PduType.AssociateRJ, Uint8Array.of(0, pdu.result, pdu.source, pdu.reason));
    case 'P-DATA-TF': {
      const w = new Writer();
      for (const p of pdu.pdvs) w.u32(p.data.length + 2).u8(p.pcId).u8((p.command ? 1 : 0) | (p.last ? 2 : 0)).bytes(p.data);
      return header(PduType.PDataTF, w.done());
    }
    case 'A-RELEASE-RQ':
      return header(PduType.ReleaseRQ, new Uint8Array(4));
    case 'A-RELEASE-RP':
      return header(PduType.ReleaseRP, new Uint8Array(4));
    case 'A-ABORT':
      return header(PduType.Abort, Uint8Array.of(0, 0, pdu.source, pdu.reason));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

const latin1 = new TextDecoder('latin1');
/** UIDs in items are not padded (PS3.8 Annex F), but some implementations pad with NUL or space. */
const uidText = (b: Uint8Array): string => latin1.decode(b).replace(/[\0 ]+$/, '');

interface Item { type: number; body: Uint8Array; offset: number }

function* items(b: Uint8Array, base: number, where: string): Generator<Item> {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  while (o < b.length) {
    if (b.length - o < 4) throw new PduError(`truncated item header in ${where} at offset ${base + o}`);
    const type = b[o];
    const len = v.getUint16(o + 2);
    if (o + 4 + len > b.length) {
      throw new PduError(`item 0x${type.toString(16).padStart(2, '0')} in ${where} at offset ${base + o} claims ${len} bytes, ` +
        `only ${b.length - o - 4} remain`);
    }
    yield { type, body: b.subarray(o + 4, o + 4 + len), offset: base + o };
    o += 4 + len;
  }
}

class Reader {
  private o = 0;
  private readonly v: DataView;
  private readonly b: Uint8Array;
  private readonly where: string;
  constructor(b: Uint8Array, where: string) {
    this.b = b;
    this.where = where;
    this.v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  need(n: number): void {
    if (this.o + n > this.b.length) throw new PduError(`truncated ${this.where}: needs ${this.o + n} bytes, has ${this.b.length}`);
  }
  u8(): number { this.need(1); return this.b[this.o++]; }
  u16(): number { this.need(2); const x = this.v.getUint16(this.o); this.o += 2; return x; }
  bytes(n: number): Uint8Array { this.need(n); const x = this.b.subarray(this.o, this.o + n); this.o += n; return x; }
  lv(): Uint8Array { return this.bytes(this.u16()); }
  rest(): Uint8Array { const x = this.b.subarray(this.o); this.o = this.b.length; return x; }
  get remaining(): number { return this.b.length - this.o; }
}

function decodeUserInformation(body: Uint8Array, base: number): UserInformation {
  const ui: UserInformation = {};
  for (const it of items(body, base, 'user information item')) {
    const r = new Reader(it.body, `user information sub-item 0x${it.type.toString(16)}`);
    switch (it.type) {
      case ItemType.MaximumLength:
        if (it.body.length !== 4) throw new PduError(`maximum length sub-item has ${it.body.length} bytes, expected 4`);
        ui.maxLength = new DataView(it.body.buffer, it.body.byteOffset, 4).getUint32(0);
        break;
      case ItemType.ImplementationClassUID:
        ui.implementationClassUID = uidText(it.body);
        break;
      case ItemType.ImplementationVersionName:
        ui.implementationVersionName = latin1.decode(it.body).replace(/[\0 ]+$/, '');
        break;
      case ItemType.AsynchronousOperationsWindow:
        ui.asyncOperationsWindow = { maxInvoked: r.u16(), maxPerformed: r.u16() };
        break;
      case ItemType.RoleSelection: {
        const sopClassUID = uidText(r.lv());
        (ui.roleSelections ??= []).push({ sopClassUID, scuRole: r.u8() === 1, scpRole: r.u8() === 1 });
        break;
      }
      case ItemType.SOPClassExtendedNegotiation: {
        const sopClassUID = uidText(r.lv());
        (ui.extendedNegotiation ??= []).push({ sopClassUID, info: r.rest().slice() });
        break;
      }
      case ItemType.SOPClassCommonExtendedNegotiation: {
        const sopClassUID = uidText(r.lv());
        const serviceClassUID = uidText(r.lv());
        const rel = new Reader(r.lv(), 'related general SOP class identification');
        const relatedGeneralSOPClassUIDs: string[] = [];
        while (rel.remaining > 0) relatedGeneralSOPClassUIDs.push(uidText(rel.lv()));
        (ui.commonExtendedNegotiation ??= []).push({ sopClassUID, serviceClassUID, relatedGeneralSOPClassUIDs });
        break;
      }
      case ItemType.UserIdentityRQ: {
        const type = r.u8();
        const positiveResponseRequested = r.u8() === 1;
        const primary = r.lv().slice();
        const secondary = r.remaining >= 2 ? r.lv().slice() : new Uint8Array(0);
        ui.userIdentity = { type, positiveResponseRequested, primary, secondary };
        break;
      }
      case ItemType.UserIdentityAC:
        ui.userIdentityResponse = r.lv().slice();
        break;
      default:
        break; // unknown sub-items are ignored (PS3.7 D.3.3)
    }
  }
  return ui;
}

function decodeAssociate(type: number, body: Uint8Array): AssociateRQ | AssociateAC {
  const ac = type === PduType.AssociateAC;
  const name = ac ? 'A-ASSOCIATE-AC' : 'A-ASSOCIATE-RQ';
  if (body.length < 68) throw new PduError(`${name} too short: ${body.length} bytes, at least 68 needed`);
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const protocolVersion = v.getUint16(0);
  const calledAETitle = latin1.decode(body.subarray(4, 20)).trim();
  const callingAETitle = latin1.decode(body.subarray(20, 36)).trim();
  let applicationContext: string | undefined;
  const rqContexts: PresentationContextRQItem[] = [];
  const acContexts: PresentationContextACItem[] = [];
  let userInformation: UserInformation | undefined;
  for (const it of items(body.subarray(68), 6 + 68, name)) {
    switch (it.type) {
      case ItemType.ApplicationContext:
        applicationContext = uidText(it.body);
        break;
      case ItemType.PresentationContextRQ: {
        if (ac) throw new PduError(`presentation context RQ item in an A-ASSOCIATE-AC`, AbortReason.UnexpectedPduParameter);
        if (it.body.length < 4) throw new PduError(`presentation context item at offset ${it.offset} too short`);
        const id = it.body[0];
        if (id % 2 === 0) throw new PduError(`presentation context ID ${id} is not odd`);
        let abstractSyntax: string | undefined;
        const transferSyntaxes: string[] = [];
        for (const sub of items(it.body.subarray(4), it.offset + 8, `presentation context ${id}`)) {
          if (sub.type === ItemType.AbstractSyntax) abstractSyntax = uidText(sub.body);
          else if (sub.type === ItemType.TransferSyntax) transferSyntaxes.push(uidText(sub.body));
        }
        if (!abstractSyntax) throw new PduError(`presentation context ${id} has no abstract syntax`);
        if (transferSyntaxes.length === 0) throw new PduError(`presentation context ${id} has no transfer syntax`);
        rqContexts.push({ id, abstractSyntax, transferSyntaxes });
        break;
      }
      case ItemType.PresentationContextAC: {
        if (!ac) throw new PduError(`presentation context AC item in an A-ASSOCIATE-RQ`, AbortReason.UnexpectedPduParameter);
        if (it.body.length < 4) throw new PduError(`presentation context item at offset ${it.offset} too short`);
        const id = it.body[0];
        const result = it.body[2];
        let transferSyntax: string | undefined;
        for (const sub of items(it.body.subarray(4), it.offset + 8, `presentation context ${id}`)) {
          if (sub.type === ItemType.TransferSyntax && sub.body.length > 0) transferSyntax = uidText(sub.body);
        }
        if (result === PresentationContextResult.Acceptance && !transferSyntax) {
          throw new PduError(`accepted presentation context ${id} has no transfer syntax`);
        }
        acContexts.push(result === 0 ? { id, result, transferSyntax } : { id, result });
        break;
      }
      case ItemType.UserInformation:
        userInformation = decodeUserInformation(it.body, it.offset + 4);
        break;
      default:
        break; // unknown items are ignored
    }
  }
  if (!applicationContext) throw new PduError(`${name} has no application context item`);
  if (!userInformation) throw new PduError(`${name} has no user information item`);
  const common = { protocolVersion, calledAETitle, callingAETitle, applicationContext, userInformation };
  return ac
    ? { type: 'A-ASSOCIATE-AC', ...common, presentationContexts: acContexts }
    : { type: 'A-ASSOCIATE-RQ', ...common, presentationContexts: rqContexts };
}

/** Decodes the body (the bytes after the 6-byte header) of a PDU of type `type`. */
export function decodePduBody(type: number, body: Uint8Array): Pdu {
  switch (type) {
    case PduType.AssociateRQ:
    case PduType.AssociateAC:
      return decodeAssociate(type, body);
    case PduType.AssociateRJ:
      if (body.length !== 4) throw new PduError(`A-ASSOCIATE-RJ has ${body.length} bytes, expected 4`);
      return { type: 'A-ASSOCIATE-RJ', result: body[1], source: body[2], reason: body[3] };
    case PduType.PDataTF: {
      const pdvs: Pdv[] = [];
      const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
      let o = 0;
      while (o < body.length) {
        if (body.length - o < 6) throw new PduError(`truncated PDV item header at offset ${6 + o}`);
        const len = v.getUint32(o);
        if (len < 2 || o + 4 + len > body.length) throw new PduError(`PDV item at offset ${6 + o} has an invalid length ${len}`);
        const mch = body[o + 5];
        pdvs.push({ pcId: body[o + 4], command: (mch & 1) !== 0, last: (mch & 2) !== 0, data: body.subarray(o + 6, o + 4 + len) });
        o += 4 + len;
      }
      if (pdvs.length === 0) throw new PduError('P-DATA-TF without any PDV item');
      return { type: 'P-DATA-TF', pdvs };
    }
    case PduType.ReleaseRQ:
    case PduType.ReleaseRP:
      if (body.length !== 4) throw new PduError(`A-RELEASE PDU has ${body.length} bytes, expected 4`);
      return { type: type === PduType.ReleaseRQ ? 'A-RELEASE-RQ' : 'A-RELEASE-RP' };
    case PduType.Abort:
      if (body.length !== 4) throw new PduError(`A-ABORT has ${body.length} bytes, expected 4`);
      return { type: 'A-ABORT', source: body[2], reason: body[3] };
    default:
      throw new PduError(`unrecognized PDU type 0x${type.toString(16).padStart(2, '0')}`, AbortReason.UnrecognizedPdu);
  }
}

/** Decodes one complete PDU (header included). */
export function decodePdu(bytes: Uint8Array): Pdu {
  if (bytes.length < 6) throw new PduError(`truncated PDU header: ${bytes.length} bytes`);
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(2);
  if (bytes.length !== 6 + len) throw new PduError(`PDU length ${len} does not match the ${bytes.length - 6} bytes given`);
  return decodePduBody(bytes[0], bytes.subarray(6));
}

// ---------------------------------------------------------------------------------------------------------
// Words for logs and errors (PS3.8 Tables 9-21 and 9-26)

export function describeRejection(result: number, source: number, reason: number): string {
  const r = result === 1 ? 'rejected-permanent' : result === 2 ? 'rejected-transient' : `result ${result}`;
  let s: string;
  let why: string;
  switch (source) {
    case 1:
      s = 'DICOM UL service-user';
      why = ({ 1: 'no-reason-given', 2: 'application-context-name-not-supported', 3: 'calling-AE-title-not-recognized',
        7: 'called-AE-title-not-recognized' } as Record<number, string>)[reason] ?? `reason ${reason}`;
      break;
    case 2:
      s = 'DICOM UL service-provider (ACSE related function)';
      why = ({ 1: 'no-reason-given', 2: 'protocol-version-not-supported' } as Record<number, string>)[reason] ?? `reason ${reason}`;
      break;
    case 3:
      s = 'DICOM UL service-provider (presentation related function)';
      why = ({ 1: 'temporary-congestion', 2: 'local-limit-exceeded' } as Record<number, string>)[reason] ?? `reason ${reason}`;
      break;
    default:
      s = `source ${source}`;
      why = `reason ${reason}`;
  }
  return `${r}, ${s}: ${why}`;
}

export function describeAbort(source: number, reason: number): string {
  if (source === AbortSource.ServiceUser) return 'by the DICOM UL service-user';
  const why = ({ 0: 'reason-not-specified', 1: 'unrecognized-PDU', 2: 'unexpected-PDU', 4: 'unrecognized-PDU-parameter',
    5: 'unexpected-PDU-parameter', 6: 'invalid-PDU-parameter-value' } as Record<number, string>)[reason] ?? `reason ${reason}`;
  return source === AbortSource.ServiceProvider ? `by the DICOM UL service-provider: ${why}` : `source ${source}: ${why}`;
}

export function describeContextResult(result: number): string {
  return ({ 0: 'acceptance', 1: 'user-rejection', 2: 'no-reason (provider rejection)', 3: 'abstract-syntax-not-supported',
    4: 'transfer-syntaxes-not-supported' } as Record<number, string>)[result] ?? `result ${result}`;
}
