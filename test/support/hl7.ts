// Builders of HL7 v2 test messages.

let control = 0;

/** An HL7 message: MSH (sender RIS^HOSP, MSH-10 given or a fresh one) and the segments given, as bytes. */
export function hl7(segments: string[], options: { type?: string; controlId?: string; version?: string; charset?: string; sender?: string } = {}): Buffer {
  const id = options.controlId ?? `MSG${process.pid}-${++control}`;
  const msh = `MSH|^~\\&|${options.sender ?? 'RIS'}|HOSP|ATRIUM|RAD|20240301120000||${options.type ?? 'ADT^A04'}|${id}|P|${options.version ?? '2.5.1'}${options.charset ? `||||||${options.charset}` : ''}`;
  const text = [msh, ...segments].join('\r') + '\r';
  return options.charset === '8859/1' ? Buffer.from(text, 'latin1') : Buffer.from(text, 'utf8');
}

/** A segment from its fields by position. */
export function seg(id: string, fields: Record<number, string>): string {
  const max = Math.max(...Object.keys(fields).map(Number));
  return [id, ...Array.from({ length: max }, (_, i) => fields[i + 1] ?? '')].join('|');
}
