import type { Hl7Message, Hl7Segment } from '../../hl7/message.ts';
import { splitHl7DateTime } from '../../hl7/message.ts';
import { AtriumError } from '../../errors.ts';
import type { OrderInput, OrderStatus, ReportStatus, StepInput } from '../model.ts';
import type { OrderKey, OrderService } from '../order-service.ts';
import type { PatientService } from '../patient-service.ts';
import type { ReportService } from '../report-service.ts';
import type { RisUnit } from '../ris-context.ts';
import { at, codeOf, Hl7Failure, nonEmpty, patientFromPid, patientIdentifiers, physicianName, priorityOf, required } from './fields.ts';

export interface Hl7Services {
  patients: PatientService;
  orders: OrderService;
  reports: ReportService;
}

/** What a handled message was about, for the message log's filters. */
export interface HandledMessage {
  patientId: string | null;
  accessionNumber: string | null;
}

/** Lookups inside the message's transaction (SQLite has one connection: a lookup outside it would wait forever). */
async function findOrder(unit: RisUnit, key: OrderKey) {
  return 'pk' in key ? await unit.store.getOrder(key.pk) : await unit.store.findOrder(key);
}

type Handler = (message: Hl7Message, unit: RisUnit, services: Hl7Services) => Promise<HandledMessage>;

/**
 * A service error in HL7 terms. The services name the key at fault (`details.key`); `locations` says
 * which field of this message carried it.
 */
export function asHl7Failure(error: unknown, locations: Record<string, Hl7Segment | [Hl7Segment, number] | undefined>, fallbackField: [Hl7Segment, number] | null): unknown {
  if (!(error instanceof AtriumError)) return error;
  const key = String(error.details?.key ?? '');
  const where = locations[key];
  const location = Array.isArray(where) ? at(where[0], where[1]) : where ? at(where, 1) : fallbackField ? at(fallbackField[0], fallbackField[1]) : null;
  switch (error.code) {
    case 'not-found': return new Hl7Failure('AE', '204', location, error.message);
    case 'conflict': return new Hl7Failure('AE', key === 'accessionNumber' || key === 'next' || key === 'studyInstanceUid' ? '205' : '207', location, error.message);
    case 'invalid-input': return new Hl7Failure('AE', '102', location, error.message);
    default: return error;
  }
}

// ------------------------------------------------------------------------------------------------ ADT

const adtPatient: Handler = async (message, unit, { patients }) => {
  const pid = message.segment('PID');
  const input = patientFromPid(pid);
  try {
    await patients.upsert(unit, input);
  } catch (error) {
    throw asHl7Failure(error, {}, [pid!, 3]);
  }
  return { patientId: input.patientId, accessionNumber: null };
};

/** A40 (merge patient: patient identifier list): each PID/MRG pair merges MRG-1 into PID-3. */
const adtMerge: Handler = async (message, unit, { patients }) => {
  const pids = message.all('PID');
  const mrgs = message.all('MRG');
  if (pids.length === 0) patientIdentifiers(undefined);
  if (mrgs.length === 0) throw new Hl7Failure('AE', '101', { segment: 'MRG', sequence: 1, field: 1 }, 'MRG-1 (prior patient identifier list) is required');
  for (const [i, pid] of pids.entries()) {
    const mrg = mrgs[i];
    required(mrg, 'MRG', 1, 'prior patient identifier list');
    const survivor = patientFromPid(pid);
    const prior = { patientId: mrg!.get(1, 1), issuerOfPatientId: mrg!.get(1, 4) };
    try {
      await patients.merge(unit, survivor, prior);
    } catch (error) {
      throw asHl7Failure(error, { prior: [mrg!, 1], patient: [pid, 3] }, [pid, 3]);
    }
  }
  return { patientId: patientFromPid(pids[0]).patientId, accessionNumber: null };
};

/** A47 (change patient identifier list): MRG-1's patient is PID-3 from now on. */
const adtChangeIdentifier: Handler = async (message, unit, { patients }) => {
  const pid = message.segment('PID');
  const next = patientIdentifiers(pid).primary;
  const mrg = message.segment('MRG');
  required(mrg, 'MRG', 1, 'prior patient identifier list');
  try {
    await patients.changeIdentifier(unit, { patientId: mrg!.get(1, 1), issuerOfPatientId: mrg!.get(1, 4) }, { patientId: next.id, issuerOfPatientId: next.issuer });
  } catch (error) {
    throw asHl7Failure(error, { prior: [mrg!, 1], next: [pid!, 3] }, [pid!, 3]);
  }
  return { patientId: next.id, accessionNumber: null };
};

// --------------------------------------------------------------------------------------- ORM / OMI

/** One ORC with the segments that follow it (TQ1, OBR, IPC, ZDS, NTE ...). */
interface OrderGroup {
  orc: Hl7Segment;
  tq1?: Hl7Segment;
  obr?: Hl7Segment;
  ipcs: Hl7Segment[];
  zds?: Hl7Segment;
}

function orderGroups(message: Hl7Message): OrderGroup[] {
  const groups: OrderGroup[] = [];
  for (const segment of message.segments) {
    if (segment.id === 'ORC') { groups.push({ orc: segment, ipcs: [] }); continue; }
    const group = groups[groups.length - 1];
    if (!group) continue;
    if (segment.id === 'TQ1' && !group.tq1) group.tq1 = segment;
    else if (segment.id === 'OBR' && !group.obr) group.obr = segment;
    else if (segment.id === 'IPC') group.ipcs.push(segment);
    else if (segment.id === 'ZDS' && !group.zds) group.zds = segment;
  }
  return groups;
}

/** Accession number: IPC-1 (OMI), else OBR-18 (placer field 1, IHE SWF), else the filler order number. */
function accessionOf(g: OrderGroup): { value: string | null; where: [Hl7Segment, number] | undefined } {
  if (g.ipcs[0]?.get(1)) return { value: g.ipcs[0].get(1), where: [g.ipcs[0], 1] };
  if (g.obr?.get(18)) return { value: g.obr.get(18), where: [g.obr, 18] };
  const filler = nonEmpty(g.orc.get(3), g.obr?.get(3) ?? '');
  return { value: filler, where: filler ? (g.orc.get(3) ? [g.orc, 3] : [g.obr!, 3]) : undefined };
}

function orderKeyOf(g: OrderGroup): OrderKey {
  const accession = accessionOf(g).value;
  if (g.ipcs[0]?.get(1) || g.obr?.get(18)) return { accessionNumber: accession! };
  if (g.orc.get(2) || g.obr?.get(2)) return { placerOrderNumber: nonEmpty(g.orc.get(2), g.obr?.get(2) ?? '')! };
  if (accession) return { fillerOrderNumber: accession };
  throw new Hl7Failure('AE', '101', at(g.orc, 2), 'ORC-2 (placer order number), ORC-3 (filler order number) or OBR-18 (accession number) is required');
}

/** DTM of the scheduled start: TQ1-7 (v2.5+), else OBR-27.4 / ORC-7.4 (TQ, before v2.5), else OBR-36. */
function startOf(g: OrderGroup): { date: string | null; time: string | null } {
  const value = nonEmpty(g.tq1?.get(7) ?? '', g.obr?.get(27, 4) ?? '', g.orc.get(7, 4), g.obr?.get(36) ?? '');
  if (!value) return { date: null, time: null };
  const split = splitHl7DateTime(value);
  if (!split.date) {
    const where = g.tq1?.get(7) ? at(g.tq1, 7) : g.obr?.get(27, 4) ? at(g.obr, 27, 4) : g.orc.get(7, 4) ? at(g.orc, 7, 4) : at(g.obr!, 36);
    throw new Hl7Failure('AE', '102', where, `scheduled start "${value}" is not an HL7 date/time`);
  }
  return split;
}

function priorityOfGroup(g: OrderGroup) {
  if (g.tq1?.get(9)) return priorityOf(g.tq1.get(9), at(g.tq1, 9));
  if (g.obr?.get(27, 6)) return priorityOf(g.obr.get(27, 6), at(g.obr, 27, 6));
  if (g.orc.get(7, 6)) return priorityOf(g.orc.get(7, 6), at(g.orc, 7, 6));
  if (g.obr?.get(5)) return priorityOf(g.obr.get(5), at(g.obr, 5));
  return 'ROUTINE' as const;
}

function stepsOf(g: OrderGroup, accession: string, requestedProcedureId: string | null): StepInput[] {
  const start = startOf(g);
  const description = g.obr?.get(4, 2) || null;
  if (g.ipcs.length > 0) {
    return g.ipcs.map((ipc, i) => ({
      stepId: ipc.get(4) || `${requestedProcedureId ?? accession}.${i + 1}`, modality: ipc.get(5) || null,
      protocolCodes: ipc.field(6).repetitions().map((r) => ({ code: r.component(1), meaning: r.component(2) || r.component(1), scheme: r.component(3) })).filter((c) => c.code),
      stationName: ipc.get(7) || null, location: ipc.get(8) || null, stationAeTitle: ipc.get(9) || null,
      startDate: start.date, startTime: start.time, description,
    }));
  }
  // ORM (IHE SWF): OBR-20 the step ID, OBR-24 the modality, OBR-21 (filler field 2) the scheduled station AE title.
  return [{
    stepId: g.obr?.get(20) || `${requestedProcedureId ?? accession}.1`, modality: g.obr?.get(24) || null, stationAeTitle: g.obr?.get(21) || null,
    startDate: start.date, startTime: start.time, description, performingPhysician: g.obr ? physicianName(g.obr.field(34)) : null,
    protocolCodes: g.obr?.field(44).repetitions().map((r) => ({ code: r.component(1), meaning: r.component(2) || r.component(1), scheme: r.component(3) })).filter((c) => c.code) ?? [],
  }];
}

/** ORC-5 (table 0038) of a status change (SC). */
const ORDER_STATUS: Record<string, OrderStatus> = { SC: 'scheduled', IP: 'in-progress', CM: 'completed', DC: 'discontinued', CA: 'cancelled' };

const orders: Handler = async (message, unit, services) => {
  const groups = orderGroups(message);
  if (groups.length === 0) throw new Hl7Failure('AE', '101', { segment: 'ORC', sequence: 1, field: 1 }, 'an ORC segment is required');
  const pid = message.segment('PID');
  const pv1 = message.segment('PV1');
  let patientId: string | null = null;
  let firstAccession: string | null = null;
  for (const g of groups) {
    const control = required(g.orc, 'ORC', 1, 'order control');
    const accession = accessionOf(g);
    firstAccession ??= accession.value;
    const locations = { order: [g.orc, 2] as [Hl7Segment, number], accessionNumber: accession.where, patient: pid ? [pid, 3] as [Hl7Segment, number] : undefined, studyInstanceUid: g.ipcs[0] ? [g.ipcs[0], 3] as [Hl7Segment, number] : g.zds ? [g.zds, 1] as [Hl7Segment, number] : undefined };
    try {
      switch (control) {
        case 'NW': {
          const patient = patientFromPid(pid);
          patientId = patient.patientId;
          if (!g.obr) throw new Hl7Failure('AE', '101', { segment: 'OBR', sequence: 1, field: 4 }, 'an OBR segment is required for a new order');
          if (!accession.value) throw new Hl7Failure('AE', '101', at(g.obr, 18), 'OBR-18 (accession number), IPC-1 or ORC-3 (filler order number) is required');
          const known = await services.patients.upsert(unit, patient);
          const requestedProcedureId = nonEmpty(g.ipcs[0]?.get(2) ?? '', g.obr.get(19)) ?? accession.value;
          const input: OrderInput = {
            patient: { patientId: patient.patientId, issuerOfPatientId: patient.issuerOfPatientId },
            placerOrderNumber: nonEmpty(g.orc.get(2), g.obr.get(2)), fillerOrderNumber: nonEmpty(g.orc.get(3), g.obr.get(3)),
            accessionNumber: accession.value, requestedProcedureId,
            requestedProcedureCode: codeOf(g.obr.field(44)) ?? codeOf(g.obr.field(4)), requestedProcedureDescription: g.obr.get(4, 2) || g.obr.get(4, 1) || null,
            priority: priorityOfGroup(g), reason: nonEmpty(g.obr.get(31, 2), g.obr.get(31, 1), g.obr.get(13)),
            referringPhysician: pv1 ? physicianName(pv1.field(8)) : null,
            orderingPhysician: physicianName(g.orc.field(12)) ?? physicianName(g.obr.field(16)),
            studyInstanceUid: nonEmpty(g.ipcs[0]?.get(3) ?? '', g.zds?.get(1) ?? ''),
            steps: stepsOf(g, accession.value, requestedProcedureId),
          };
          await services.orders.place(unit, input, known);
          break;
        }
        case 'XO': {
          const key = orderKeyOf(g);
          if (pid) patientId = patientFromPid(pid).patientId;
          const existing = await findOrder(unit, key);
          if (!existing) throw new Hl7Failure('AE', '204', at(g.orc, 2), `no order with ${Object.entries(key).map(([k, v]) => `${k} ${v}`).join(', ')} to change`);
          const obr = g.obr;
          await services.orders.change(unit, { pk: existing.pk }, {
            ...(obr ? {
              requestedProcedureCode: codeOf(obr.field(44)) ?? codeOf(obr.field(4)) ?? undefined,
              requestedProcedureDescription: obr.get(4, 2) || undefined, priority: priorityOfGroup(g),
              reason: nonEmpty(obr.get(31, 2), obr.get(31, 1), obr.get(13)) ?? undefined,
              orderingPhysician: physicianName(g.orc.field(12)) ?? physicianName(obr.field(16)) ?? undefined,
              steps: stepsOf(g, existing.accessionNumber, existing.requestedProcedureId),
            } : {}),
            ...(pv1 && physicianName(pv1.field(8)) ? { referringPhysician: physicianName(pv1.field(8)) } : {}),
          });
          break;
        }
        case 'CA': case 'OC': case 'DC': case 'OD': case 'SC': {
          const key = orderKeyOf(g);
          const existing = await findOrder(unit, key);
          if (!existing) throw new Hl7Failure('AE', '204', at(g.orc, 2), `no order with ${Object.entries(key).map(([k, v]) => `${k} ${v}`).join(', ')}`);
          patientId = existing.patient.patientId;
          firstAccession = existing.accessionNumber;
          const reason = nonEmpty(g.orc.get(16, 2), g.orc.get(16, 1));
          if (control === 'CA' || control === 'OC') await services.orders.cancel(unit, { pk: existing.pk }, reason);
          else if (control === 'DC' || control === 'OD') await services.orders.discontinue(unit, { pk: existing.pk }, reason);
          else {
            const code = required(g.orc, 'ORC', 5, 'order status');
            const status = ORDER_STATUS[code];
            if (!status) throw new Hl7Failure('AE', '103', at(g.orc, 5), `ORC-5 (order status) "${code}" is not one of SC, IP, CM, DC, CA`);
            await services.orders.reportStatus(unit, { pk: existing.pk }, status, `ORC-5 ${code}`);
          }
          break;
        }
        default:
          throw new Hl7Failure('AE', '103', at(g.orc, 1), `ORC-1 (order control) "${control}" is not one Atrium applies (NW, XO, CA, DC, SC)`);
      }
    } catch (error) {
      throw asHl7Failure(error, locations, [g.orc, 2]);
    }
  }
  return { patientId, accessionNumber: firstAccession };
};

// ------------------------------------------------------------------------------------------------ ORU

const REPORT_STATUS: Record<string, ReportStatus> = { P: 'P', F: 'F', C: 'C' };
const CRITICAL_FLAGS = new Set(['AA', 'HH', 'LL']);
const TEXT_TYPES = new Set(['TX', 'FT', 'ST', 'CE', 'CWE', 'ED', '']);

const report: Handler = async (message, unit, services) => {
  const obrs = message.all('OBR');
  if (obrs.length === 0) throw new Hl7Failure('AE', '101', { segment: 'OBR', sequence: 1, field: 18 }, 'an OBR segment is required');
  let accessionNumber: string | null = null;
  let patientId: string | null = message.segment('PID') ? patientIdentifiers(message.segment('PID')).primary.id : null;
  // The OBX of each OBR are those between it and the next OBR.
  const segments = message.segments;
  for (const obr of obrs) {
    const start = segments.indexOf(obr);
    const next = segments.findIndex((s, i) => i > start && s.id === 'OBR');
    const obxs = segments.slice(start + 1, next < 0 ? undefined : next).filter((s) => s.id === 'OBX');
    const accession = nonEmpty(obr.get(18));
    const filler = nonEmpty(obr.get(3), message.segment('ORC')?.get(3) ?? '');
    const placer = nonEmpty(obr.get(2), message.segment('ORC')?.get(2) ?? '');
    if (!accession && !filler && !placer) throw new Hl7Failure('AE', '101', at(obr, 18), 'OBR-18 (accession number), OBR-3 or OBR-2 (order numbers) is required');
    const order = accession ? await findOrder(unit, { accessionNumber: accession })
      : filler ? await findOrder(unit, { fillerOrderNumber: filler }) : await findOrder(unit, { placerOrderNumber: placer! });
    if (!order) throw new Hl7Failure('AE', '204', at(obr, accession ? 18 : filler ? 3 : 2), `no order with ${accession ? `accession number ${accession}` : filler ? `filler order number ${filler}` : `placer order number ${placer}`}`);
    const statusCode = required(obr, 'OBR', 25, 'result status');
    const status = REPORT_STATUS[statusCode];
    if (!status) throw new Hl7Failure('AE', '103', at(obr, 25), `OBR-25 (result status) "${statusCode}" is not one of P, F, C`);
    const lines = obxs.filter((o) => TEXT_TYPES.has(o.get(2))).flatMap((o) => o.field(5).repetitions().map((r) => r.text()));
    if (lines.length === 0) throw new Hl7Failure('AE', '101', obxs[0] ? at(obxs[0], 5) : { segment: 'OBX', sequence: 1, field: 5 }, 'OBX-5 (the report text) is required');
    const authorField = obr.field(32);
    const author = [authorField.component(1, 2), authorField.component(1, 3)].filter(Boolean).join('^') || authorField.component(1, 1) || null;
    try {
      // OBX-8 abnormal flags (HL7 table 0078): AA critically abnormal, HH/LL above/below the panic limits.
      const critical = obxs.some((o) => o.field(8).repetitions().some((r) => CRITICAL_FLAGS.has(r.text().trim().toUpperCase())));
      await services.reports.receive(unit, { accessionNumber: order.accessionNumber, status, text: lines.join('\n'), author, observedAt: obr.get(7) || null, ...(critical ? { critical } : {}) });
    } catch (error) {
      throw asHl7Failure(error, { order: [obr, accession ? 18 : 3] }, [obr, 18]);
    }
    accessionNumber ??= order.accessionNumber;
    patientId ??= order.patient.patientId;
  }
  return { patientId, accessionNumber };
};

/** MSH-9 message type -> trigger event -> handler. */
export const HL7_HANDLERS: Readonly<Record<string, Readonly<Record<string, Handler>>>> = {
  ADT: { A01: adtPatient, A04: adtPatient, A05: adtPatient, A08: adtPatient, A40: adtMerge, A47: adtChangeIdentifier },
  ORM: { O01: orders },
  OMI: { O23: orders },
  ORU: { R01: report },
};
