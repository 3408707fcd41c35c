// DIMSE command sets (PS3.7 Section 6.3 and Annex E): group 0000, always Implicit VR Little Endian.
import { ByteQueue } from '../dicom/byte-queue.ts';
import { DatasetParser } from '../dicom/dataset-parser.ts';
import type { DataElement, DataSet } from '../dicom/dataset.ts';
import { encodeDataset } from '../dicom/part10-writer.ts';
import { ImplicitVRLittleEndian } from '../dicom/transfer-syntax.ts';

/** Command Field values (PS3.7 Annex E). */
export const CommandField = {
  C_STORE_RQ: 0x0001, C_STORE_RSP: 0x8001,
  C_GET_RQ: 0x0010, C_GET_RSP: 0x8010,
  C_FIND_RQ: 0x0020, C_FIND_RSP: 0x8020,
  C_MOVE_RQ: 0x0021, C_MOVE_RSP: 0x8021,
  C_ECHO_RQ: 0x0030, C_ECHO_RSP: 0x8030,
  N_EVENT_REPORT_RQ: 0x0100, N_EVENT_REPORT_RSP: 0x8100,
  N_GET_RQ: 0x0110, N_GET_RSP: 0x8110,
  N_SET_RQ: 0x0120, N_SET_RSP: 0x8120,
  N_ACTION_RQ: 0x0130, N_ACTION_RSP: 0x8130,
  N_CREATE_RQ: 0x0140, N_CREATE_RSP: 0x8140,
  N_DELETE_RQ: 0x0150, N_DELETE_RSP: 0x8150,
  C_CANCEL_RQ: 0x0fff,
} as const;

/** (0000,0800) value meaning "no data set" (PS3.7 E.1); any other value means a data set follows. */
export const NO_DATASET = 0x0101;
/** (0000,0700) Priority values. */
export const Priority = { Medium: 0x0000, High: 0x0001, Low: 0x0002 } as const;

/**
 * A command set by keyword (PS3.7 Table E.1-1). Numbers for US, strings for UI/AE/LO, tag lists (as
 * (group << 16 | element) numbers) for AT. CommandGroupLength is computed on encoding, and
 * CommandDataSetType is set by the association from the presence of a data set.
 */
export interface CommandSet {
  CommandField: number;
  MessageID?: number;
  MessageIDBeingRespondedTo?: number;
  AffectedSOPClassUID?: string;
  AffectedSOPInstanceUID?: string;
  RequestedSOPClassUID?: string;
  RequestedSOPInstanceUID?: string;
  Priority?: number;
  CommandDataSetType?: number;
  Status?: number;
  ErrorComment?: string;
  ErrorID?: number;
  OffendingElement?: number[];
  MoveDestination?: string;
  MoveOriginatorApplicationEntityTitle?: string;
  MoveOriginatorMessageID?: number;
  NumberOfRemainingSuboperations?: number;
  NumberOfCompletedSuboperations?: number;
  NumberOfFailedSuboperations?: number;
  NumberOfWarningSuboperations?: number;
  EventTypeID?: number;
  ActionTypeID?: number;
  AttributeIdentifierList?: number[];
}

type Field = Exclude<keyof CommandSet, never>;
const FIELDS: { tag: number; key: Field; vr: 'UI' | 'US' | 'AE' | 'LO' | 'AT' }[] = [
  { tag: 0x00000002, key: 'AffectedSOPClassUID', vr: 'UI' },
  { tag: 0x00000003, key: 'RequestedSOPClassUID', vr: 'UI' },
  { tag: 0x00000100, key: 'CommandField', vr: 'US' },
  { tag: 0x00000110, key: 'MessageID', vr: 'US' },
  { tag: 0x00000120, key: 'MessageIDBeingRespondedTo', vr: 'US' },
  { tag: 0x00000600, key: 'MoveDestination', vr: 'AE' },
  { tag: 0x00000700, key: 'Priority', vr: 'US' },
  { tag: 0x00000800, key: 'CommandDataSetType', vr: 'US' },
  { tag: 0x00000900, key: 'Status', vr: 'US' },
  { tag: 0x00000901, key: 'OffendingElement', vr: 'AT' },
  { tag: 0x00000902, key: 'ErrorComment', vr: 'LO' },
  { tag: 0x00000903, key: 'ErrorID', vr: 'US' },
  { tag: 0x00001000, key: 'AffectedSOPInstanceUID', vr: 'UI' },
  { tag: 0x00001001, key: 'RequestedSOPInstanceUID', vr: 'UI' },
  { tag: 0x00001002, key: 'EventTypeID', vr: 'US' },
  { tag: 0x00001005, key: 'AttributeIdentifierList', vr: 'AT' },
  { tag: 0x00001008, key: 'ActionTypeID', vr: 'US' },
  { tag: 0x00001020, key: 'NumberOfRemainingSuboperations', vr: 'US' },
  { tag: 0x00001021, key: 'NumberOfCompletedSuboperations', vr: 'US' },
  { tag: 0x00001022, key: 'NumberOfFailedSuboperations', vr: 'US' },
  { tag: 0x00001023, key: 'NumberOfWarningSuboperations', vr: 'US' },
  { tag: 0x00001030, key: 'MoveOriginatorApplicationEntityTitle', vr: 'AE' },
  { tag: 0x00001031, key: 'MoveOriginatorMessageID', vr: 'US' },
];
const BY_TAG = new Map(FIELDS.map((f) => [f.tag, f]));

/** A command set that cannot be decoded or encoded. */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandError';
  }
}

const latin1 = new TextDecoder('latin1');

export function encodeCommand(command: CommandSet): Uint8Array {
  const elements: DataElement[] = [];
  const rec = command as unknown as Record<string, unknown>;
  for (const f of FIELDS) {
    const v = rec[f.key];
    if (v === undefined) continue;
    let value: Uint8Array;
    if (f.vr === 'US') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) {
        throw new CommandError(`${f.key} must be an integer from 0 to 65535, got ${String(v)}`);
      }
      value = Uint8Array.of(v & 0xff, v >>> 8);
    } else if (f.vr === 'AT') {
      if (!Array.isArray(v)) throw new CommandError(`${f.key} must be a list of tags`);
      value = new Uint8Array(v.length * 4);
      const dv = new DataView(value.buffer);
      v.forEach((t: number, i) => { dv.setUint16(i * 4, t >>> 16, true); dv.setUint16(i * 4 + 2, t & 0xffff, true); });
    } else {
      if (typeof v !== 'string') throw new CommandError(`${f.key} must be a string`);
      value = new TextEncoder().encode(v);
    }
    elements.push({ tag: f.tag, vr: f.vr, length: value.length, offset: 0, value });
  }
  const body = encodeDataset(elements, ImplicitVRLittleEndian);
  const len = Uint8Array.of(0, 0, 0, 0);
  new DataView(len.buffer).setUint32(0, body.length, true);
  const groupLength = encodeDataset([{ tag: 0x00000000, vr: 'UL', length: 4, offset: 0, value: len }], ImplicitVRLittleEndian);
  const out = new Uint8Array(groupLength.length + body.length);
  out.set(groupLength);
  out.set(body, groupLength.length);
  return out;
}

/** A command set as received: the command, and the elements of other groups that followed it in the same PDVs. */
export interface DecodedCommand {
  command: CommandSet;
  /**
   * Elements after group 0000 in the command PDVs, as their bytes (Implicit VR Little Endian, the command set's
   * encoding); undefined when there were none. DCMTK-based SCPs (Orthanc's C-GET and C-MOVE SCP among them)
   * append the identifier of a final C-GET-RSP/C-MOVE-RSP there, the Failed SOP Instance UID List (0008,0058),
   * with CommandDataSetType 0x0101, instead of sending it as a data set.
   */
  trailing?: Uint8Array;
}

/** The command set alone; elements outside group 0000 are a CommandError. */
export function decodeCommand(bytes: Uint8Array): CommandSet {
  const { command, trailing } = decodeCommandMessage(bytes);
  if (trailing) {
    const tag = new DataView(trailing.buffer, trailing.byteOffset, trailing.byteLength);
    throw new CommandError(`command set holds element (${tag.getUint16(0, true).toString(16).padStart(4, '0')},` +
      `${tag.getUint16(2, true).toString(16).padStart(4, '0')}) outside group 0000`);
  }
  return command;
}

/**
 * The command set, and the elements of other groups after it (see DecodedCommand.trailing): the caller decides
 * whether they may be there (a response's identifier) or not (a request).
 */
export function decodeCommandMessage(bytes: Uint8Array): DecodedCommand {
  const q = new ByteQueue();
  q.push(bytes);
  const root: DataSet = { elements: [] };
  const parser = new DatasetParser(q, root, { explicitVR: false, littleEndian: true, bulkThreshold: 1 << 20 });
  try {
    parser.pump();
    parser.finish();
  } catch (e) {
    throw new CommandError(`malformed command set: ${(e as Error).message}`);
  }
  const out: Record<string, unknown> = {};
  let trailingStart: number | undefined;
  for (const el of root.elements) {
    if (el.tag >>> 16 !== 0) {
      // Implicit VR: every element header is 8 bytes. Elements are in ascending order, so the rest is not group 0000.
      trailingStart = el.offset - 8;
      break;
    }
    const f = BY_TAG.get(el.tag);
    if (!f || !el.value) continue; // group length and retired elements
    const b = el.value;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (f.vr === 'US') {
      if (b.length < 2) throw new CommandError(`${f.key} has ${b.length} bytes, expected 2`);
      out[f.key] = dv.getUint16(0, true);
    } else if (f.vr === 'AT') {
      const tags: number[] = [];
      for (let i = 0; i + 4 <= b.length; i += 4) tags.push(((dv.getUint16(i, true) << 16) | dv.getUint16(i + 2, true)) >>> 0);
      out[f.key] = tags;
    } else {
      const s = latin1.decode(b);
      out[f.key] = f.vr === 'UI' ? s.replace(/[\0 ]+$/, '') : s.trim();
    }
  }
  if (typeof out.CommandField !== 'number') throw new CommandError('command set has no Command Field (0000,0100)');
  const command = out as unknown as CommandSet;
  return trailingStart === undefined ? { command } : { command, trailing: bytes.slice(trailingStart) };
}

/** A short name for logs: "C-STORE-RQ", "C-FIND-RSP"... */
export function commandName(field: number): string {
  for (const [k, v] of Object.entries(CommandField)) if (v === field) return k.replace(/_/g, '-');
  return `command 0x${field.toString(16).padStart(4, '0')}`;
}

/** True for every command that is a response (bit 15 of the Command Field). */
export function isResponse(command: CommandSet): boolean {
  return (command.CommandField & 0x8000) !== 0;
}
