import type { Hl7Field, Hl7Location, Hl7Segment } from '../../hl7/message.ts';
import { splitHl7DateTime } from '../../hl7/message.ts';
import type { AckCode } from '../../hl7/ack.ts';
import type { Code, Identifier, PatientInput, Priority } from '../model.ts';

/** A message Atrium will not apply: the ACK code, the table 0357 code, the field at fault and why. */
export class Hl7Failure extends Error {
  readonly ackCode: AckCode;
  readonly hl7Code: string;
  readonly location: Hl7Location | null;
  constructor(ackCode: AckCode, hl7Code: string, location: Hl7Location | null, message: string) {
    super(message);
    this.name = 'Hl7Failure';
    this.ackCode = ackCode;
    this.hl7Code = hl7Code;
    this.location = location;
  }
}

export function at(segment: Hl7Segment, field: number, component?: number): Hl7Location {
  return { segment: segment.id, sequence: segment.sequence, field, ...(component ? { component } : {}) };
}

export function required(segment: Hl7Segment | undefined, segmentId: string, field: number, what: string, component = 1): string {
  const value = segment?.get(field, component) ?? '';
  if (!value) {
    throw new Hl7Failure('AE', '101', segment ? at(segment, field, component > 1 ? component : undefined) : { segment: segmentId, sequence: 1, field },
      `${segmentId}-${field}${component > 1 ? `.${component}` : ''} (${what}) is required`);
  }
  return value;
}

export function nonEmpty(...values: string[]): string | null {
  for (const v of values) if (v) return v;
  return null;
}

/** CX -> identifier: ID (CX-1), assigning authority namespace (CX-4.1), type (CX-5). */
function identifierOf(field: Hl7Field): Identifier {
  return { id: field.component(1), issuer: field.component(4, 1), type: field.component(5) };
}

/**
 * PID-3's identifier of the patient: the repetition of type MR (medical record number) if any, else the
 * first; the others are kept as other identifiers.
 */
export function patientIdentifiers(pid: Hl7Segment | undefined): { primary: Identifier; others: Identifier[] } {
  const reps = pid?.field(3).repetitions().map(identifierOf).filter((i) => i.id) ?? [];
  if (!pid || reps.length === 0) throw new Hl7Failure('AE', '101', pid ? at(pid, 3) : { segment: 'PID', sequence: 1, field: 3 }, 'PID-3 (patient identifier list) is required');
  const primary = reps.find((r) => r.type === 'MR') ?? reps[0]!;
  return { primary, others: reps.filter((r) => r !== primary) };
}

/** XPN (family^given^middle^suffix^prefix) -> DICOM PN (family^given^middle^prefix^suffix). */
export function personName(field: Hl7Field, offset = 0): string | null {
  const c = (n: number) => field.component(n + offset);
  const pn = [c(1), c(2), c(3), c(5), c(4)].join('^').replace(/\^+$/, '');
  return pn || null;
}

/** XCN (ID^family^given^middle^suffix^prefix) -> DICOM PN. */
export function physicianName(field: Hl7Field): string | null {
  return personName(field, 1) ?? (field.component(1) || null);
}

const SEX: Record<string, string | null> = { M: 'M', F: 'F', O: 'O', A: 'O', N: 'O', U: null };

export function patientFromPid(pid: Hl7Segment | undefined): PatientInput {
  const { primary, others } = patientIdentifiers(pid);
  const segment = pid!;
  const sexCode = segment.get(8).toUpperCase();
  if (sexCode && !(sexCode in SEX)) throw new Hl7Failure('AE', '103', at(segment, 8), `PID-8 (administrative sex) "${sexCode}" is not in HL7 table 0001`);
  const birth = segment.get(7);
  const birthDate = birth ? splitHl7DateTime(birth).date : null;
  if (birth && !birthDate) throw new Hl7Failure('AE', '102', at(segment, 7), `PID-7 (date of birth) "${birth}" is not an HL7 date`);
  return {
    patientId: primary.id, issuerOfPatientId: primary.issuer, otherIdentifiers: others,
    patientName: personName(segment.field(5)), patientBirthDate: birthDate, patientSex: sexCode ? SEX[sexCode] ?? null : null,
  };
}

/** CE/CWE -> code (code^text^scheme); null when empty. */
export function codeOf(field: Hl7Field): Code | null {
  const code = field.component(1);
  const meaning = field.component(2);
  if (!code && !meaning) return null;
  return { code: code || meaning, scheme: field.component(3), meaning: meaning || code };
}

/** HL7 table 0027 priority -> ours. */
const PRIORITY: Record<string, Priority> = { S: 'STAT', A: 'ASAP', R: 'ROUTINE', T: 'URGENT', U: 'URGENT', C: 'URGENT', P: 'URGENT', STAT: 'STAT', ASAP: 'ASAP', ROUTINE: 'ROUTINE', URGENT: 'URGENT' };

export function priorityOf(value: string, location: Hl7Location): Priority {
  if (!value) return 'ROUTINE';
  const p = PRIORITY[value.toUpperCase()];
  if (!p) throw new Hl7Failure('AE', '103', location, `priority "${value}" is not in HL7 table 0027 (S, A, R, T)`);
  return p;
}
