import { escapeHl7, parseHl7, Hl7ParseError, type Hl7Location, type Hl7Message } from './message.ts';

/** MSA-1 acknowledgment codes of original mode (HL7 table 0008). */
export type AckCode = 'AA' | 'AE' | 'AR';

/** One error of an ACK: HL7 table 0357 code, where (ERR-2), and readable text (ERR-8, MSA-3). */
export interface Hl7ErrorDetail {
  code: string;
  location: Hl7Location | null;
  text: string;
}

/** HL7 table 0357 (message error condition codes) as far as Atrium uses them. */
export const HL7_ERROR_CODES: Readonly<Record<string, string>> = {
  '0': 'Message accepted',
  '100': 'Segment sequence error',
  '101': 'Required field missing',
  '102': 'Data type error',
  '103': 'Table value not found',
  '200': 'Unsupported message type',
  '201': 'Unsupported event code',
  '202': 'Unsupported processing id',
  '203': 'Unsupported version id',
  '204': 'Unknown key identifier',
  '205': 'Duplicate key identifier',
  '206': 'Application record locked',
  '207': 'Application internal error',
};

export interface AckOptions {
  code: AckCode;
  error?: Hl7ErrorDetail | null;
  /** MSH-3 / MSH-4 of the acknowledgment (ours). */
  sendingApplication: string;
  sendingFacility: string;
  controlId: string;
  time: Date;
}

/** What an ACK answers when the message could not even be parsed: nothing to echo but defaults. */
export interface AckedHeader {
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication?: string;
  receivingFacility?: string;
  controlId: string;
  triggerEvent: string;
  version: string;
  processingId: string;
  characterSet: string;
}

export function headerOf(message: Hl7Message): AckedHeader {
  const msh = message.msh;
  return {
    sendingApplication: msh.field(3).raw, sendingFacility: msh.field(4).raw, controlId: message.controlId,
    triggerEvent: message.triggerEvent, version: message.version || '2.5.1', processingId: msh.field(11).raw || 'P',
    characterSet: message.characterSet,
  };
}

export const FALLBACK_HEADER: AckedHeader = {
  sendingApplication: '', sendingFacility: '', controlId: '', triggerEvent: '', version: '2.5.1', processingId: 'P', characterSet: '',
};

function hl7Time(t: Date): string {
  return t.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/**
 * An original-mode ACK (HL7 v2.5.1 2.9.2): MSH with the sender and receiver swapped, MSA with the code and
 * the control ID acknowledged, and for an error an ERR segment. ERR-1 (ELD, the only field before v2.5) and
 * ERR-2 (ERL), ERR-3 (the 0357 code), ERR-4 (severity), ERR-8 (user message) are all given, so a v2.3
 * receiver and a v2.5 one both find the error where they look.
 */
export function buildAck(acked: AckedHeader, options: AckOptions): string {
  const esc = (s: string) => escapeHl7(s);
  const msh = [
    'MSH', '^~\\&', esc(options.sendingApplication), esc(options.sendingFacility), acked.sendingApplication, acked.sendingFacility,
    hl7Time(options.time), '', `ACK^${acked.triggerEvent}^ACK`, esc(options.controlId), acked.processingId, acked.version,
    '', '', '', '', '', acked.characterSet,
  ];
  // Trailing empty fields are not sent.
  while (msh.length > 12 && msh[msh.length - 1] === '') msh.pop();
  const segments = [msh.join('|')];
  const error = options.error;
  segments.push(['MSA', options.code, acked.controlId, error ? esc(error.text).slice(0, 80) : ''].join('|').replace(/\|+$/, ''));
  if (error) {
    const loc = error.location;
    const meaning = HL7_ERROR_CODES[error.code] ?? '';
    const eld = loc ? `${loc.segment}^${loc.sequence ?? 1}^${loc.field ?? ''}^${error.code}&${meaning}&HL70357` : `^^^${error.code}&${meaning}&HL70357`;
    const erl = loc ? [loc.segment, loc.sequence ?? 1, loc.field ?? '', loc.field ? loc.repetition ?? 1 : '', loc.component ?? ''].join('^').replace(/\^+$/, '') : '';
    segments.push(['ERR', eld, erl, `${error.code}^${meaning}^HL70357`, 'E', '', '', '', esc(error.text)].join('|'));
  }
  return segments.join('\r') + '\r';
}

/** Reads MSA-1 and the ERR fields of an ACK (tests, and the message log's listing). */
export function locationText(location: Hl7Location | null): string {
  if (!location) return '';
  let text = `${location.segment}`;
  if (location.field) text += `-${location.field}`;
  if (location.component) text += `.${location.component}`;
  return text;
}

/** An acknowledgment as a sender reads it: MSA-1 (original or enhanced mode), MSA-2, and the first ERR. */
export interface ParsedAck {
  code: 'AA' | 'AE' | 'AR' | 'CA' | 'CE' | 'CR';
  controlId: string;
  /** MSA-3, else ERR-8, else ''. */
  text: string;
  /** ERR-3.1 (v2.5+), else ERR-1.4.1 (v2.3/2.4); null without ERR. */
  errorCode: string | null;
  /** ERR-2 (segment^sequence^field...), else ERR-1.1..3; null without ERR. */
  errorLocation: string | null;
}

/** Reads an acknowledgment (the answer to a message Atrium sent). Throws Hl7ParseError when it is not one. */
export function parseAck(bytes: Uint8Array): ParsedAck {
  const message = parseHl7(bytes);
  const msa = message.segment('MSA');
  if (!msa) throw new Hl7ParseError('100', { segment: 'MSA' }, 'the answer has no MSA segment');
  const code = msa.get(1).toUpperCase();
  if (!['AA', 'AE', 'AR', 'CA', 'CE', 'CR'].includes(code)) throw new Hl7ParseError('103', { segment: 'MSA', sequence: 1, field: 1 }, `MSA-1 "${code}" is not an acknowledgment code`);
  const err = message.segment('ERR');
  let errorCode: string | null = null;
  let errorLocation: string | null = null;
  if (err) {
    errorCode = err.get(3, 1) || err.get(1, 4, 1) || null;
    errorLocation = err.field(2).raw ? err.field(2).text() : [err.get(1, 1), err.get(1, 2), err.get(1, 3)].filter(Boolean).join('^') || null;
  }
  return { code: code as ParsedAck['code'], controlId: msa.get(2), text: msa.get(3) || err?.get(8) || '', errorCode, errorLocation };
}
