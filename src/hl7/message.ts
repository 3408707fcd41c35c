/**
 * HL7 v2 messages (ER7 encoding): decoding bytes with the character set MSH-18 names, segments, fields,
 * repetitions, components, subcomponents and escape sequences (HL7 v2.5.1 chapter 2.7), and encoding.
 *
 * Written here rather than taken from @medplum/core's Hl7Message (the FHIR server uses that package for
 * search parsing, and the tests use it as an independent reader of our ACKs): Medplum parses a JavaScript string, so the MSH-18 character
 * set, which must be read from the bytes before they are text, is the caller's problem anyway; its
 * getComponent returns values with their escape sequences still in (`O\T\Brien` for O&Brien), which every
 * caller would have to undo; and the hl7/ transport stays free of a FHIR library (its bundle expects a
 * WebSocket global at import) for ~200 lines of parsing. Versions 2.3 to 2.8 share this
 * encoding; what differs between them (ERR-1 vs ERR-2..8, TQ1 vs OBR-27) is the handlers' concern.
 */

export class Hl7ParseError extends Error {
  /** HL7 table 0357 code (100 segment sequence error, 102 data type error ...). */
  readonly hl7Code: string;
  readonly location: Hl7Location;
  constructor(hl7Code: string, location: Hl7Location, message: string) {
    super(message);
    this.name = 'Hl7ParseError';
    this.hl7Code = hl7Code;
    this.location = location;
  }
}

/** Where in a message: ERR-2 (ERL) segment ID, segment sequence (1-based), field, repetition, component. */
export interface Hl7Location {
  segment: string;
  sequence?: number;
  field?: number;
  repetition?: number;
  component?: number;
}

export interface Delimiters {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
}

export const DEFAULT_DELIMITERS: Delimiters = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };

/** One field's raw text (escapes still in) split lazily on demand. */
export class Hl7Field {
  readonly raw: string;
  readonly #d: Delimiters;
  constructor(raw: string, delimiters: Delimiters) {
    this.raw = raw;
    this.#d = delimiters;
  }

  /** Repetitions of the field, each as a field of its own (one when the field does not repeat). */
  repetitions(): Hl7Field[] {
    if (this.raw === '') return [];
    return this.raw.split(this.#d.repetition).map((r) => new Hl7Field(r, this.#d));
  }

  /** Decoded component (1-based) of the first repetition, subcomponent 1 unless given; '' when absent. */
  component(component = 1, subcomponent = 1): string {
    const first = this.raw.split(this.#d.repetition)[0] ?? '';
    const comp = first.split(this.#d.component)[component - 1] ?? '';
    const sub = comp.split(this.#d.subcomponent)[subcomponent - 1] ?? '';
    return unescapeHl7(sub, this.#d);
  }

  /** The whole first repetition's component, with its subcomponents joined back by `&` and decoded per piece. */
  componentRaw(component = 1): string {
    const first = this.raw.split(this.#d.repetition)[0] ?? '';
    return first.split(this.#d.component)[component - 1] ?? '';
  }

  /** The first repetition decoded as text (components kept with their separators). */
  text(): string {
    return unescapeHl7(this.raw.split(this.#d.repetition)[0] ?? '', this.#d);
  }

  get empty(): boolean {
    return this.raw === '' || this.raw === '""';
  }
}

export class Hl7Segment {
  readonly id: string;
  /** 1-based sequence among the message's segments of this ID (ERR-2.2). */
  readonly sequence: number;
  /** fields[n] is field n (MSH: fields[1] is the field separator, fields[2] the encoding characters). */
  readonly #fields: string[];
  readonly #d: Delimiters;

  constructor(id: string, sequence: number, fields: string[], delimiters: Delimiters) {
    this.id = id;
    this.sequence = sequence;
    this.#fields = fields;
    this.#d = delimiters;
  }

  field(n: number): Hl7Field {
    return new Hl7Field(this.#fields[n] ?? '', this.#d);
  }

  /** Shorthand: decoded component of field n. */
  get(n: number, component = 1, subcomponent = 1): string {
    return this.field(n).component(component, subcomponent);
  }

  get fieldCount(): number {
    return this.#fields.length - 1;
  }
}

export class Hl7Message {
  readonly segments: Hl7Segment[];
  readonly delimiters: Delimiters;
  /** The decoded text, segments separated by \r. */
  readonly text: string;
  /** The MSH-18 value the bytes were decoded with ('' when none was given). */
  readonly characterSet: string;

  constructor(segments: Hl7Segment[], delimiters: Delimiters, text: string, characterSet: string) {
    this.segments = segments;
    this.delimiters = delimiters;
    this.text = text;
    this.characterSet = characterSet;
  }

  segment(id: string): Hl7Segment | undefined {
    return this.segments.find((s) => s.id === id);
  }

  all(id: string): Hl7Segment[] {
    return this.segments.filter((s) => s.id === id);
  }

  get msh(): Hl7Segment {
    return this.segments[0]!;
  }

  /** MSH-9.1, MSH-9.2 */
  get messageType(): string { return this.msh.get(9, 1); }
  get triggerEvent(): string { return this.msh.get(9, 2); }
  get controlId(): string { return this.msh.get(10); }
  get version(): string { return this.msh.get(12); }
  /** MSH-3.1 (and MSH-4.1): who sent it, the namespace its control IDs are unique in. */
  get sendingApplication(): string { return this.msh.get(3); }
  get sendingFacility(): string { return this.msh.get(4); }
}

/**
 * Parses one message from its bytes: MSH is read as ASCII to find MSH-18, then the whole message is
 * decoded with that character set. Throws Hl7ParseError for what is not an HL7 message at all.
 */
export function parseHl7(bytes: Uint8Array): Hl7Message {
  const head = Buffer.from(bytes.subarray(0, Math.min(bytes.length, 4096))).toString('latin1');
  if (!head.startsWith('MSH') || head.length < 8) throw new Hl7ParseError('100', { segment: 'MSH', sequence: 1 }, 'the message does not start with an MSH segment');
  const fieldSep = head[3]!;
  const mshEnd = head.search(/[\r\n]/);
  const mshText = mshEnd < 0 ? head : head.slice(0, mshEnd);
  const encoding = mshText.slice(4).split(fieldSep)[0] ?? '';
  if (encoding.length < 4 || /[A-Za-z0-9\r\n]/.test(fieldSep + encoding.slice(0, 4)) || new Set(fieldSep + encoding.slice(0, 4)).size !== 5) {
    throw new Hl7ParseError('102', { segment: 'MSH', sequence: 1, field: 2 }, `MSH-1/MSH-2 encoding characters "${fieldSep}${encoding}" are not valid`);
  }
  const d: Delimiters = { field: fieldSep, component: encoding[0]!, repetition: encoding[1]!, escape: encoding[2]!, subcomponent: encoding[3]! };
  const mshFields = mshText.split(fieldSep);
  const characterSet = (mshFields[17] ?? '').split(d.repetition)[0]!.split(d.component)[0]!.trim();
  const text = decodeCharacterSet(bytes, characterSet);
  return parseHl7Text(text, d, characterSet);
}

function parseHl7Text(text: string, d: Delimiters, characterSet: string): Hl7Message {
  // \r is the segment terminator; \n and \r\n are tolerated (files, some senders).
  const lines = text.split(/\r\n|\r|\n/).filter((l) => l.length > 0);
  const counts = new Map<string, number>();
  const segments: Hl7Segment[] = [];
  for (const [i, line] of lines.entries()) {
    const id = line.slice(0, 3);
    if (!/^[A-Z][A-Z0-9]{2}$/.test(id) || (line.length > 3 && line[3] !== d.field)) {
      throw new Hl7ParseError('100', { segment: id.replace(/[^A-Z0-9]/g, '') || '?', sequence: i + 1 }, `segment ${i + 1} does not start with a segment ID`);
    }
    const sequence = (counts.get(id) ?? 0) + 1;
    counts.set(id, sequence);
    let fields: string[];
    if (id === 'MSH') {
      // MSH-1 is the field separator itself, MSH-2 the encoding characters (not split further).
      const rest = line.slice(4).split(d.field);
      fields = ['MSH', d.field, ...rest];
    } else {
      fields = line.split(d.field);
    }
    segments.push(new Hl7Segment(id, sequence, fields, d));
  }
  if (segments[0]?.id !== 'MSH') throw new Hl7ParseError('100', { segment: 'MSH', sequence: 1 }, 'the message does not start with an MSH segment');
  return new Hl7Message(segments, d, lines.join('\r'), characterSet);
}

/** MSH-18 values (HL7 table 0211) Atrium decodes. '' (none given) reads UTF-8, or ISO 8859/1 when the bytes are not UTF-8. */
export const CHARACTER_SETS: Readonly<Record<string, string>> = {
  ASCII: 'latin1',
  '8859/1': 'latin1',
  '8859/2': 'iso-8859-2',
  '8859/3': 'iso-8859-3',
  '8859/4': 'iso-8859-4',
  '8859/5': 'iso-8859-5',
  '8859/6': 'iso-8859-6',
  '8859/7': 'iso-8859-7',
  '8859/8': 'iso-8859-8',
  '8859/9': 'windows-1254',
  '8859/15': 'iso-8859-15',
  'UNICODE UTF-8': 'utf-8',
  // Seen in the field instead of the table's "UNICODE UTF-8".
  'UTF-8': 'utf-8',
  'UTF8': 'utf-8',
};

export class Hl7CharsetError extends Hl7ParseError {}

export function decodeCharacterSet(bytes: Uint8Array, characterSet: string): string {
  if (characterSet === '') {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return Buffer.from(bytes).toString('latin1');
    }
  }
  const name = CHARACTER_SETS[characterSet.toUpperCase()];
  if (!name) throw new Hl7CharsetError('103', { segment: 'MSH', sequence: 1, field: 18 }, `character set "${characterSet}" (MSH-18) is not supported`);
  if (name === 'latin1') return Buffer.from(bytes).toString('latin1');
  return new TextDecoder(name).decode(bytes);
}

/** Encodes an outgoing message (an ACK) in the character set of the message it answers. */
export function encodeCharacterSet(text: string, characterSet: string): Buffer {
  const name = characterSet === '' ? 'utf-8' : CHARACTER_SETS[characterSet.toUpperCase()] ?? 'utf-8';
  return name === 'utf-8' ? Buffer.from(text, 'utf8') : Buffer.from(text, 'latin1');
}

/** HL7 v2.5.1 2.7: \F\ \S\ \T\ \R\ \E\, \Xhh\ (bytes, read as UTF-8 or Latin-1), \.br\ and \.sp\ as line breaks; highlighting (\H\ \N\) and other formatting dropped. */
export function unescapeHl7(value: string, d: Delimiters = DEFAULT_DELIMITERS): string {
  const e = d.escape;
  if (!value.includes(e)) return value;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    if (c !== e) { out += c; i++; continue; }
    const end = value.indexOf(e, i + 1);
    if (end < 0) { out += value.slice(i); break; }
    const seq = value.slice(i + 1, end);
    i = end + 1;
    switch (seq) {
      case 'F': out += d.field; continue;
      case 'S': out += d.component; continue;
      case 'T': out += d.subcomponent; continue;
      case 'R': out += d.repetition; continue;
      case 'E': out += d.escape; continue;
      case 'H': case 'N': continue;
      case '.br': case '.sp': out += '\n'; continue;
    }
    if (/^X([0-9A-Fa-f]{2})+$/.test(seq)) {
      const bytes = Buffer.from(seq.slice(1), 'hex');
      try { out += new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { out += bytes.toString('latin1'); }
      continue;
    }
    // \Zxx\, \.in\, \.ti\, \.sk\, \.ce\, \.fi\, \.nf\: local or formatting commands, no text.
  }
  return out;
}

export function escapeHl7(value: string, d: Delimiters = DEFAULT_DELIMITERS): string {
  let out = '';
  for (const c of value) {
    if (c === d.escape) out += `${d.escape}E${d.escape}`;
    else if (c === d.field) out += `${d.escape}F${d.escape}`;
    else if (c === d.component) out += `${d.escape}S${d.escape}`;
    else if (c === d.subcomponent) out += `${d.escape}T${d.escape}`;
    else if (c === d.repetition) out += `${d.escape}R${d.escape}`;
    else if (c === '\r' || c === '\n') out += `${d.escape}.br${d.escape}`;
    else out += c;
  }
  return out;
}

/** HL7 TS/DTM (YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]) -> DICOM DA and TM; null parts when absent or malformed. */
export function splitHl7DateTime(value: string): { date: string | null; time: string | null } {
  const m = /^(\d{8})(\d{2,6}(?:\.\d+)?)?([+-]\d{4})?$/.exec(value.trim());
  if (!m) return { date: null, time: null };
  return { date: m[1]!, time: m[2] ? m[2].split('.')[0]!.padEnd(6, '0') : null };
}
