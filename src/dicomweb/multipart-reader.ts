// Streaming reader for multipart/related bodies (RFC 2387) with the multipart syntax of RFC 2046 5.1.
//
// Written by hand: the npm multipart parsers either buffer whole parts (dicer-less "multipart/related"
// helpers, dicomweb-client's own parser, most STOW examples) or only speak multipart/form-data (busboy,
// formidable), and a STOW-RS part can be a multi-GB Part-10 object. This reader never holds more than the
// current chunk plus a window of the delimiter's length (and, while reading part headers, at most
// `maxHeaderBytes`).
//
// Two layers:
// - `MultipartParser`: a pure push state machine. `push(chunk)` returns the events found in that chunk
//   (`part` with the headers, `data` with slices of the chunk, `partEnd`, `end`); `end()` checks that the
//   closing delimiter was seen. No I/O, no timers.
// - `readMultipart(source, boundary)`: an async iterable of parts over an async iterable of chunks. A part's
//   body is itself an async iterable, and the source is read only when a body (or the next part) is pulled:
//   backpressure reaches the sender. The next part is produced only after the current body was consumed (an
//   abandoned body is read through and discarded first).
//
// Syntax handled (RFC 2046 5.1.1): the first delimiter may start the body (no preceding CRLF); a preamble
// before it and an epilogue after the close delimiter are ignored; transport padding (spaces, tabs) after a
// delimiter; the CRLF before a delimiter belongs to the delimiter, not to the preceding body; header fields
// may be folded.

export type MultipartErrorCode = 'MISSING_BOUNDARY' | 'INVALID_BOUNDARY' | 'NO_DELIMITER' | 'TRUNCATED' | 'HEADERS_TOO_LARGE' | 'MALFORMED';

export class MultipartError extends Error {
  readonly code: MultipartErrorCode;
  /** Position in the body (bytes fed so far) where the problem was found. */
  readonly offset: number | undefined;

  constructor(code: MultipartErrorCode, message: string, offset?: number) {
    super(message);
    this.name = 'MultipartError';
    this.code = code;
    this.offset = offset;
  }
}

export interface MediaType {
  /** Lower-cased "type/subtype". */
  type: string;
  /** Parameter names lower-cased; values unquoted, case kept. */
  params: Record<string, string>;
}

/** Parses a Content-Type value (RFC 9110 8.3.1): token/token *( OWS ";" OWS name=(token|quoted-string) ). */
export function parseMediaType(value: string | undefined): MediaType | undefined {
  if (!value) return undefined;
  const match = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*/.exec(value);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  let i = match[0].length;
  while (i < value.length) {
    if (value[i] !== ';') return undefined;
    i++;
    while (value[i] === ' ' || value[i] === '\t') i++;
    if (i >= value.length) break; // a trailing ";" is tolerated
    const name = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(value.slice(i));
    if (!name || value[i + name[0].length] !== '=') return undefined;
    i += name[0].length + 1;
    let paramValue = '';
    if (value[i] === '"') {
      i++;
      for (;;) {
        if (i >= value.length) return undefined; // unterminated quoted-string
        const c = value[i++];
        if (c === '"') break;
        if (c === '\\' && i < value.length) paramValue += value[i++];
        else paramValue += c;
      }
    } else {
      // A token; "/" and other separators are tolerated as clients send type=application/dicom unquoted.
      const token = /^[^\s;"]*/.exec(value.slice(i))![0];
      paramValue = token;
      i += token.length;
    }
    params[name[0].toLowerCase()] ??= paramValue;
    while (value[i] === ' ' || value[i] === '\t') i++;
  }
  return { type: match[1].toLowerCase(), params };
}

/** RFC 2046 5.1.1: 1 to 70 of bchars, not ending with a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/** The boundary of a multipart Content-Type, or a MultipartError saying why there is none. */
export function boundaryOf(contentType: string | undefined): string {
  const media = parseMediaType(contentType);
  if (!media || !media.type.startsWith('multipart/')) throw new MultipartError('MISSING_BOUNDARY', `not a multipart content type: ${contentType ?? '(none)'}`);
  const boundary = media.params.boundary;
  if (boundary === undefined) throw new MultipartError('MISSING_BOUNDARY', `the content type has no boundary parameter: ${contentType}`);
  if (!BOUNDARY.test(boundary)) throw new MultipartError('INVALID_BOUNDARY', `invalid multipart boundary "${boundary}" (RFC 2046: 1 to 70 characters of a restricted set)`);
  return boundary;
}

export type MultipartEvent =
  | { type: 'part'; headers: Record<string, string> }
  | { type: 'data'; bytes: Uint8Array }
  | { type: 'partEnd' }
  | { type: 'end' };

export interface MultipartOptions {
  /** Largest header block of one part, in bytes (default 16 KiB). */
  maxHeaderBytes?: number;
}

type State = 'preamble' | 'afterDelimiter' | 'closeDash' | 'padding' | 'expectLf' | 'headers' | 'body' | 'epilogue' | 'ended';

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const HEADER_END = Buffer.from('\r\n\r\n');

/** The pure multipart state machine: bytes in, events out. */
export class MultipartParser {
  readonly #delimiter: Buffer;
  readonly #maxHeaderBytes: number;
  #state: State = 'preamble';
  /** Bytes held back because they may be the start of a delimiter (always shorter than it). */
  #carry: Buffer;
  #headerBytes: Buffer = Buffer.alloc(0);
  #offset = 0;
  #parts = 0;

  constructor(boundary: string, options: MultipartOptions = {}) {
    if (!BOUNDARY.test(boundary)) throw new MultipartError('INVALID_BOUNDARY', `invalid multipart boundary "${boundary}"`);
    this.#delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
    this.#maxHeaderBytes = options.maxHeaderBytes ?? 16 * 1024;
    // The first delimiter may open the body without a CRLF before it: act as if one came first.
    this.#carry = Buffer.from('\r\n');
  }

  /** Number of parts whose headers have been read. */
  get parts(): number {
    return this.#parts;
  }

  push(chunk: Uint8Array): MultipartEvent[] {
    if (this.#state === 'ended') throw new MultipartError('MALFORMED', 'push() after end()', this.#offset);
    const events: MultipartEvent[] = [];
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.#offset += buf.length;
    while (buf.length > 0) buf = this.#step(buf, events);
    return events;
  }

  end(): MultipartEvent[] {
    const state = this.#state;
    this.#state = 'ended';
    switch (state) {
      case 'epilogue':
        return [{ type: 'end' }];
      case 'preamble':
        throw new MultipartError('NO_DELIMITER', 'the body contains no multipart boundary delimiter', this.#offset);
      case 'body':
        throw new MultipartError('TRUNCATED', `the body ends inside part ${this.#parts} without a closing boundary delimiter`, this.#offset);
      case 'ended':
        throw new MultipartError('MALFORMED', 'end() called twice', this.#offset);
      default:
        throw new MultipartError('TRUNCATED', 'the body ends after a boundary delimiter without a part or a close delimiter', this.#offset);
    }
  }

  /** Consumes some of `buf` and returns what is left of it. */
  #step(buf: Buffer, events: MultipartEvent[]): Buffer {
    switch (this.#state) {
      case 'preamble':
      case 'body':
        return this.#scan(buf, events);
      case 'afterDelimiter': {
        const c = buf[0];
        if (c === DASH) this.#state = 'closeDash';
        else if (c === 0x20 || c === 0x09) this.#state = 'padding';
        else if (c === CR) this.#state = 'expectLf';
        else throw this.#malformed('unexpected byte after a boundary delimiter (expected CRLF or "--")', buf.length);
        return buf.subarray(1);
      }
      case 'closeDash':
        if (buf[0] !== DASH) throw this.#malformed('a boundary delimiter followed by a single "-"', buf.length);
        this.#state = 'epilogue';
        events.push({ type: 'end' });
        return buf.subarray(1);
      case 'padding': {
        const c = buf[0];
        if (c === CR) this.#state = 'expectLf';
        else if (c !== 0x20 && c !== 0x09) throw this.#malformed('unexpected byte in the transport padding after a boundary delimiter', buf.length);
        return buf.subarray(1);
      }
      case 'expectLf':
        if (buf[0] !== LF) throw this.#malformed('a boundary delimiter line not ended by CRLF', buf.length);
        this.#state = 'headers';
        this.#headerBytes = Buffer.from('\r\n'); // so that an empty header block is found as CRLF CRLF
        return buf.subarray(1);
      case 'headers':
        return this.#headers(buf, events);
      case 'epilogue':
        return Buffer.alloc(0);
      case 'ended':
        throw new MultipartError('MALFORMED', 'push() after end()', this.#offset);
    }
  }

  /** Looks for the delimiter; in a body, everything before it (or before a possible partial match) is data. */
  #scan(chunk: Buffer, events: MultipartEvent[]): Buffer {
    const buf = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    this.#carry = Buffer.alloc(0);
    const inBody = this.#state === 'body';
    const at = buf.indexOf(this.#delimiter);
    if (at >= 0) {
      if (inBody) {
        if (at > 0) events.push({ type: 'data', bytes: buf.subarray(0, at) });
        events.push({ type: 'partEnd' });
      }
      this.#state = 'afterDelimiter';
      return buf.subarray(at + this.#delimiter.length);
    }
    // Hold back the longest tail that could begin a delimiter completed by the next chunk.
    const d = this.#delimiter;
    let keep = buf.length;
    for (let start = Math.max(0, buf.length - d.length + 1); start < buf.length; start++) {
      if (buf[start] !== CR) continue;
      if (buf.subarray(start).equals(d.subarray(0, buf.length - start))) {
        keep = start;
        break;
      }
    }
    if (inBody && keep > 0) {
      events.push({ type: 'data', bytes: buf.subarray(0, keep) });
    }
    this.#carry = Buffer.from(buf.subarray(keep));
    return Buffer.alloc(0);
  }

  #headers(chunk: Buffer, events: MultipartEvent[]): Buffer {
    const room = this.#maxHeaderBytes + 4 - this.#headerBytes.length;
    const take = chunk.subarray(0, Math.max(0, room));
    const joined = Buffer.concat([this.#headerBytes, take]);
    const end = joined.indexOf(HEADER_END);
    if (end < 0) {
      if (joined.length >= this.#maxHeaderBytes + 4) {
        throw new MultipartError('HEADERS_TOO_LARGE', `the header block of part ${this.#parts + 1} is longer than ${this.#maxHeaderBytes} bytes`, this.#offset);
      }
      this.#headerBytes = joined;
      return chunk.subarray(take.length);
    }
    const used = end + HEADER_END.length - this.#headerBytes.length; // bytes of this chunk in the header block
    const text = joined.subarray(2, end).toString('latin1'); // skip the CRLF of the delimiter line
    this.#headerBytes = Buffer.alloc(0);
    this.#parts++;
    events.push({ type: 'part', headers: parseHeaderBlock(text, this.#parts, this.#offset) });
    this.#state = 'body';
    return chunk.subarray(used);
  }

  #malformed(message: string, remaining: number): MultipartError {
    return new MultipartError('MALFORMED', message, this.#offset - remaining);
  }
}

function parseHeaderBlock(text: string, part: number, offset: number): Record<string, string> {
  const headers: Record<string, string> = {};
  if (text === '') return headers;
  // Unfold (RFC 5322 2.2.3): a CRLF followed by whitespace continues the previous field.
  const lines = text.replace(/\r\n(?=[ \t])/g, '').split('\r\n');
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(line.slice(0, colon))) {
      throw new MultipartError('MALFORMED', `part ${part} has a malformed header line: ${JSON.stringify(line.slice(0, 80))}`, offset);
    }
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return headers;
}

export interface MultipartPart {
  /** Header field names lower-cased. */
  headers: Record<string, string>;
  /** The part's content, streamed: read it (or leave it) before asking for the next part. */
  body: AsyncIterable<Uint8Array>;
}

/**
 * The parts of a multipart body read from `source`. Errors (MultipartError for bad syntax, or whatever the
 * source throws) surface from whichever iterator is being pulled: a part's body or the part sequence.
 */
export async function* readMultipart(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, boundary: string,
  options: MultipartOptions = {}): AsyncGenerator<MultipartPart, void, undefined> {
  const parser = new MultipartParser(boundary, options);
  const iterator = (Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()) as
    AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  const queue: MultipartEvent[] = [];
  let head = 0;
  let sourceDone = false;

  const next = async (): Promise<MultipartEvent> => {
    while (head >= queue.length) {
      queue.length = 0;
      head = 0;
      if (sourceDone) throw new MultipartError('MALFORMED', 'read past the end of the body');
      const step = await iterator.next();
      if (step.done) {
        sourceDone = true;
        queue.push(...parser.end());
      } else {
        queue.push(...parser.push(step.value as Uint8Array));
      }
    }
    return queue[head++];
  };

  let finished = false;
  try {
    for (;;) {
      const event = await next();
      if (event.type === 'end') {
        finished = true;
        // The epilogue is ignored, but the rest of the body is read so the connection can be reused.
        while (!sourceDone) {
          const step = await iterator.next();
          if (step.done) sourceDone = true;
        }
        return;
      }
      if (event.type !== 'part') throw new MultipartError('MALFORMED', `unexpected ${event.type} event`);
      let bodyDone = false;
      let bodyStarted = false;
      const body = async function* (): AsyncGenerator<Uint8Array> {
        if (bodyStarted) throw new Error('a multipart part body can be read only once');
        bodyStarted = true;
        while (!bodyDone) {
          const e = await next();
          if (e.type === 'data') yield e.bytes;
          else if (e.type === 'partEnd') bodyDone = true;
          else throw new MultipartError('MALFORMED', `unexpected ${e.type} event inside a part`);
        }
      };
      yield { headers: event.headers, body: body() };
      // Whatever the consumer left of this body is read through and discarded.
      while (!bodyDone) {
        const e = await next();
        if (e.type === 'partEnd') bodyDone = true;
        else if (e.type !== 'data') throw new MultipartError('MALFORMED', `unexpected ${e.type} event inside a part`);
      }
    }
  } finally {
    if (!finished && !sourceDone) await iterator.return?.();
  }
}
