/**
 * The Modality Performed Procedure Step SCP (PS3.4 F.7): N-CREATE makes an instance IN PROGRESS, N-SET
 * updates it and ends it COMPLETED or DISCONTINUED; a final state is final. The instance is kept in
 * ris_mpps with its whole data set as DICOM JSON; its state drives the order it names (Scheduled Step
 * Attributes Sequence: Accession Number, Study Instance UID, Scheduled Procedure Step ID) through
 * OrderService.recordStepStatus, source 'mpps'. An MPPS that names no known order (the unscheduled case) is
 * kept and listed, never refused. See docs/mwl-mpps.md.
 */
import type { Logger } from 'pino';
import { CommandField } from '../dimse/command.ts';
import { Status, describeStatus } from '../dimse/status.ts';
import type { Association, IncomingRequest } from '../dimse/association.ts';
import { readIdentifier } from '../dimse/services/identifier.ts';
import { uncompressedTransferSyntax, type DimseRequest, type DimseService } from '../dimse/services/dimse-service.ts';
import { toDicomJson, type DicomJsonAttribute, type DicomJsonDataSet } from '../dicom/dicom-json.ts';
import { personNameString } from '../dicom/query/matching.ts';
import { tagOfKeyword } from '../dicom/dictionary.ts';
import { formatTagParen, hexTag } from '../dicom/query/model.ts';
import { generateUid, isValidUid } from '../dicom/uid.ts';
import { AtriumError } from '../errors.ts';
import type { OrderService } from './order-service.ts';
import type { ChangeContext } from './ris-context.ts';
import { isUniqueViolation } from './ris-store.ts';
import { MPPS_STATUSES, type MppsScheduledStep, type MppsStatus, type NewMpps, type SqlMppsStore } from './sql-mpps-store.ts';

/** Modality Performed Procedure Step SOP Class (PS3.4 F.7.1). */
export const ModalityPerformedProcedureStep = '1.2.840.10008.3.1.2.3.3';

/** The tag a keyword names in the data dictionary (PS3.6); a keyword it does not know is a programming error. */
function tagOf(keyword: string): number {
  const tag = tagOfKeyword(keyword);
  if (tag === undefined) throw new Error(`${keyword} is not a data dictionary keyword`);
  return tag;
}

/** Type 1 on N-CREATE (PS3.4 Table F.7.2-1): present with a value. */
const CREATE_REQUIRED = [
  'ScheduledStepAttributesSequence', 'PerformedProcedureStepID', 'PerformedStationAETitle', 'PerformedProcedureStepStartDate',
  'PerformedProcedureStepStartTime', 'PerformedProcedureStepStatus', 'Modality',
] as const;
/** Not to be sent in an N-SET ("-" in the N-SET column of Table F.7.2-1): what the procedure was, who it was for, where and when it started. */
const SET_NOT_ALLOWED = new Set<number>([
  'ScheduledStepAttributesSequence', 'PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex', 'ReferencedPatientSequence',
  'PerformedProcedureStepID', 'PerformedStationAETitle', 'PerformedStationName', 'PerformedLocation', 'PerformedProcedureStepStartDate',
  'PerformedProcedureStepStartTime', 'Modality', 'StudyID',
].map(tagOf));

/** A refusal: the status, the text for Error Comment, the attributes at fault (Attribute Identifier List). */
class MppsRefusal extends Error {
  readonly status: number;
  readonly tags: number[];
  readonly errorId: number | undefined;
  constructor(status: number, message: string, tags: number[] = [], errorId?: number) {
    super(message);
    this.status = status;
    this.tags = tags;
    this.errorId = errorId;
  }
}

const attr = (ds: DicomJsonDataSet, keyword: string): DicomJsonAttribute | undefined => ds[hexTag(tagOf(keyword))];
const hasValue = (a: DicomJsonAttribute | undefined) => !!a?.Value?.some((v) => v !== null && v !== '' && (typeof v !== 'object' || Object.keys(v as object).length > 0));
function text(ds: DicomJsonDataSet, keyword: string): string | null {
  const a = attr(ds, keyword);
  const v = a?.Value?.[0];
  if (v === undefined || v === null) return null;
  const s = a!.vr === 'PN' ? personNameString(v) : String(v);
  return s === '' ? null : s;
}
const items = (ds: DicomJsonDataSet, keyword: string): DicomJsonDataSet[] => ((attr(ds, keyword)?.Value ?? []) as DicomJsonDataSet[]).filter((i) => i && typeof i === 'object');

function requireValues(ds: DicomJsonDataSet, keywords: readonly string[], why: string): void {
  const missing = keywords.filter((k) => attr(ds, k) === undefined).map(tagOf);
  if (missing.length) throw new MppsRefusal(Status.MissingAttribute, `${missing.map(formatTagParen).join(' ')} missing ${why}`, missing);
  const empty = keywords.filter((k) => !hasValue(attr(ds, k))).map(tagOf);
  if (empty.length) throw new MppsRefusal(Status.MissingAttributeValue, `${empty.map(formatTagParen).join(' ')} empty ${why}`, empty);
}

/** PS3.4 F.7.2.1 (N-CREATE): the Type 1 attributes, the status IN PROGRESS, and a Study Instance UID in every scheduled step item. */
export function checkCreate(ds: DicomJsonDataSet): void {
  requireValues(ds, CREATE_REQUIRED, 'on N-CREATE');
  const status = text(ds, 'PerformedProcedureStepStatus');
  if (status !== 'IN PROGRESS') {
    throw new MppsRefusal(Status.InvalidAttributeValue, `(0040,0252) is "${status}": an N-CREATE is IN PROGRESS`, [tagOf('PerformedProcedureStepStatus')]);
  }
  for (const item of items(ds, 'ScheduledStepAttributesSequence')) {
    requireValues(item, ['StudyInstanceUID'], 'in a Scheduled Step Attributes item');
    const uid = text(item, 'StudyInstanceUID')!;
    if (!isValidUid(uid)) throw new MppsRefusal(Status.InvalidAttributeValue, `(0020,000D) "${uid.slice(0, 30)}" is not a UID`, [tagOf('StudyInstanceUID')]);
  }
}

/** PS3.4 F.7.2.2 (N-SET): only the attributes that may change, a defined status, and the final state's requirements. */
export function checkSet(changes: DicomJsonDataSet, merged: DicomJsonDataSet): MppsStatus {
  const refused = Object.keys(changes).map((k) => Number.parseInt(k, 16)).filter((t) => SET_NOT_ALLOWED.has(t));
  if (refused.length) throw new MppsRefusal(Status.InvalidAttributeValue, `${refused.map(formatTagParen).join(' ')} may not be set by N-SET`, refused);
  const status = text(merged, 'PerformedProcedureStepStatus') as MppsStatus | null;
  if (!status || !MPPS_STATUSES.includes(status)) {
    throw new MppsRefusal(Status.InvalidAttributeValue, `(0040,0252) "${status ?? ''}" is not IN PROGRESS, COMPLETED or DISCONTINUED`, [tagOf('PerformedProcedureStepStatus')]);
  }
  if (status !== 'IN PROGRESS') {
    // Final state (Table F.7.2-1, "Final State" column): when it ended, and for COMPLETED what was made.
    requireValues(merged, ['PerformedProcedureStepEndDate', 'PerformedProcedureStepEndTime'], `for ${status}`);
    if (status === 'COMPLETED') requireValues(merged, ['PerformedSeriesSequence'], 'for COMPLETED');
    for (const series of items(merged, 'PerformedSeriesSequence')) requireValues(series, ['SeriesInstanceUID'], 'in a Performed Series item');
  }
  return status;
}

/** The series and instances a Performed Series Sequence lists. */
export function performedSeries(ds: DicomJsonDataSet): { seriesInstanceUid: string | null; protocolName: string | null; instances: { sopClassUid: string | null; sopInstanceUid: string | null }[] }[] {
  return items(ds, 'PerformedSeriesSequence').map((s) => ({
    seriesInstanceUid: text(s, 'SeriesInstanceUID'), protocolName: text(s, 'ProtocolName'),
    instances: [...items(s, 'ReferencedImageSequence'), ...items(s, 'ReferencedNonImageCompositeSOPInstanceSequence')]
      .map((i) => ({ sopClassUid: text(i, 'ReferencedSOPClassUID'), sopInstanceUid: text(i, 'ReferencedSOPInstanceUID') })),
  }));
}

export interface MppsDeps {
  store: SqlMppsStore;
  orders: OrderService;
  log: Logger;
  clock?: () => Date;
}

/**
 * MPPS as a DIMSE service: N-CREATE and N-SET on the MPPS SOP Class. The calling AE needs the `store`
 * operation in the AE registry (the modality that stores the images reports their procedure); a user
 * (User Identity) needs `order:write`.
 */
export function mppsService(deps: MppsDeps): DimseService {
  // One request at a time per instance: an N-SET waits for the N-CREATE (or N-SET) of the same instance.
  const busy = new Map<string, Promise<unknown>>();
  const serially = async (uid: string, fn: () => Promise<void>) => {
    const previous = busy.get(uid) ?? Promise.resolve();
    const mine = previous.then(fn, fn);
    const settled = mine.catch(() => {});
    busy.set(uid, settled);
    try { await mine; } finally { if (busy.get(uid) === settled) busy.delete(uid); }
  };
  return {
    name: 'mpps',
    accepts: (pc) => pc.abstractSyntax === ModalityPerformedProcedureStep,
    commands: [CommandField.N_CREATE_RQ, CommandField.N_SET_RQ],
    operation: 'store',
    action: 'order:write',
    auditAction: 'order-record',
    transferSyntax: uncompressedTransferSyntax,
    async handle(rq) {
      const { request } = rq;
      const create = request.command.CommandField === CommandField.N_CREATE_RQ;
      const uid = (create ? request.command.AffectedSOPInstanceUID : request.command.RequestedSOPInstanceUID) || (create ? generateUid() : '');
      await serially(uid, () => (create ? nCreate(rq, uid, deps) : nSet(rq, uid, deps)));
    },
  };
}

async function respond(association: Association, request: IncomingRequest, uid: string, status: number, refusal?: MppsRefusal): Promise<void> {
  const field = request.command.CommandField === CommandField.N_CREATE_RQ ? CommandField.N_CREATE_RSP : CommandField.N_SET_RSP;
  await association.respond(request, {
    CommandField: field, Status: status, AffectedSOPClassUID: ModalityPerformedProcedureStep, AffectedSOPInstanceUID: uid,
    ...(refusal ? { ErrorComment: refusal.message.slice(0, 64) } : {}),
    ...(refusal?.errorId !== undefined ? { ErrorID: refusal.errorId } : {}),
    ...(refusal?.tags.length && [Status.MissingAttribute, Status.MissingAttributeValue, Status.InvalidAttributeValue].includes(refusal.status as never) ? { AttributeIdentifierList: refusal.tags } : {}),
  });
}

async function readChanges(request: IncomingRequest): Promise<DicomJsonDataSet> {
  if (!request.dataset) return {};
  return toDicomJson(await readIdentifier(request));
}

function contextOf(rq: DimseRequest, uid: string): ChangeContext {
  return { source: { kind: 'mpps', ref: uid }, principal: rq.audit.principal, interface: 'dimse', origin: rq.audit.origin ?? null };
}

function scheduledSteps(ds: DicomJsonDataSet): MppsScheduledStep[] {
  return items(ds, 'ScheduledStepAttributesSequence').map((i) => ({
    accessionNumber: text(i, 'AccessionNumber'), studyInstanceUid: text(i, 'StudyInstanceUID'), requestedProcedureId: text(i, 'RequestedProcedureID'),
    stepId: text(i, 'ScheduledProcedureStepID'), order: null, note: null,
  }));
}

/** Moves each order the scheduled steps name; a step no order matches is noted, not refused (the unscheduled case). */
async function driveOrders(rq: DimseRequest, uid: string, steps: MppsScheduledStep[], status: MppsStatus, detail: string, deps: MppsDeps): Promise<MppsScheduledStep[]> {
  const out: MppsScheduledStep[] = [];
  for (const step of steps) {
    if (status !== 'IN PROGRESS' && !step.order) { out.push(step); continue; }
    try {
      const order = await deps.orders.recordStepStatus(contextOf(rq, uid), {
        ...(step.accessionNumber ? { accessionNumber: step.accessionNumber } : {}), ...(step.studyInstanceUid ? { studyInstanceUid: step.studyInstanceUid } : {}),
        stepId: step.stepId, status, detail,
      });
      out.push({ ...step, order: order.accessionNumber, note: null });
    } catch (error) {
      if (!(error instanceof AtriumError) || (error.code !== 'not-found' && error.code !== 'conflict' && error.code !== 'invalid-input')) throw error;
      deps.log.info({ association: rq.association.id, mpps: uid, accessionNumber: step.accessionNumber, reason: error.message }, `MPPS ${status} not applied to an order`);
      out.push({ ...step, order: status === 'IN PROGRESS' ? null : step.order, note: error.message });
    }
  }
  return out;
}

function record(uid: string, ds: DicomJsonDataSet, steps: MppsScheduledStep[], callingAe: string): NewMpps {
  const reason = items(ds, 'PerformedProcedureStepDiscontinuationReasonCodeSequence')[0];
  return {
    sopInstanceUid: uid, status: text(ds, 'PerformedProcedureStepStatus') as MppsStatus, ppsId: text(ds, 'PerformedProcedureStepID'),
    stationAeTitle: text(ds, 'PerformedStationAETitle'), callingAeTitle: callingAe.trim(), modality: text(ds, 'Modality'),
    patientId: text(ds, 'PatientID'), patientName: text(ds, 'PatientName'), accessionNumber: steps[0]?.accessionNumber ?? null,
    studyInstanceUid: steps[0]?.studyInstanceUid ?? null, startDate: text(ds, 'PerformedProcedureStepStartDate'), startTime: text(ds, 'PerformedProcedureStepStartTime'),
    endDate: text(ds, 'PerformedProcedureStepEndDate'), endTime: text(ds, 'PerformedProcedureStepEndTime'), scheduledSteps: steps,
    matched: steps.some((s) => s.order !== null), discontinuationReason: reason ? text(reason, 'CodeMeaning') ?? text(reason, 'CodeValue') : null, dataset: ds,
  };
}

async function nCreate(rq: DimseRequest, uid: string, deps: MppsDeps): Promise<void> {
  const { request, association } = rq;
  const log = { association: association.id, callingAE: association.callingAETitle, mpps: uid };
  try {
    if (!isValidUid(uid)) throw new MppsRefusal(Status.InvalidObjectInstance, `Affected SOP Instance UID "${uid.slice(0, 30)}" is not a UID`);
    const ds = await readChanges(request);
    if (await deps.store.get(uid)) throw new MppsRefusal(Status.DuplicateSOPInstance, `MPPS ${uid.slice(0, 40)} exists already`);
    checkCreate(ds);
    const steps = await driveOrders(rq, uid, scheduledSteps(ds), 'IN PROGRESS',
      `MPPS ${text(ds, 'PerformedProcedureStepID')} in progress at ${text(ds, 'PerformedStationAETitle')}`, deps);
    try {
      await deps.store.insert(record(uid, ds, steps, association.callingAETitle), (deps.clock?.() ?? new Date()).toISOString());
    } catch (error) {
      if (isUniqueViolation(error)) throw new MppsRefusal(Status.DuplicateSOPInstance, `MPPS ${uid.slice(0, 40)} exists already`);
      throw error;
    }
    deps.log.info({ ...log, matched: steps.filter((s) => s.order).map((s) => s.order) }, 'MPPS created IN PROGRESS');
    await respond(association, request, uid, Status.Success);
  } catch (error) {
    await refuse(rq, uid, error, 'N-CREATE', log, deps);
  }
}

async function nSet(rq: DimseRequest, uid: string, deps: MppsDeps): Promise<void> {
  const { request, association } = rq;
  const log = { association: association.id, callingAE: association.callingAETitle, mpps: uid };
  try {
    const changes = await readChanges(request);
    const current = uid ? await deps.store.get(uid) : null;
    if (!current) throw new MppsRefusal(Status.NoSuchSOPInstance, `no MPPS ${uid.slice(0, 50)}`);
    if (current.status !== 'IN PROGRESS') {
      // PS3.4 F.7.2.2.2: Processing failure, Error ID A710 "Performed Procedure Step Object may no longer be updated".
      throw new MppsRefusal(Status.ProcessingFailure, 'Performed Procedure Step Object may no longer be updated', [], 0xa710);
    }
    const merged: DicomJsonDataSet = { ...current.dataset, ...changes };
    const status = checkSet(changes, merged);
    let steps = current.scheduledSteps;
    if (status !== 'IN PROGRESS') {
      const series = performedSeries(merged);
      const reason = items(merged, 'PerformedProcedureStepDiscontinuationReasonCodeSequence')[0];
      const detail = status === 'COMPLETED'
        ? `MPPS ${current.ppsId} completed: ${series.length} series, ${series.reduce((n, s) => n + s.instances.length, 0)} instances`
        : `MPPS ${current.ppsId} discontinued${reason ? `: ${text(reason, 'CodeMeaning') ?? text(reason, 'CodeValue')}` : ''}`;
      steps = await driveOrders(rq, uid, steps, status, detail, deps);
    }
    const updated = await deps.store.update(record(uid, merged, steps, current.callingAeTitle ?? association.callingAETitle), (deps.clock?.() ?? new Date()).toISOString());
    if (!updated) throw new MppsRefusal(Status.ProcessingFailure, 'Performed Procedure Step Object may no longer be updated', [], 0xa710);
    deps.log.info({ ...log, status }, `MPPS N-SET: ${status}`);
    await respond(association, request, uid, Status.Success);
  } catch (error) {
    await refuse(rq, uid, error, 'N-SET', log, deps);
  }
}

async function refuse(rq: DimseRequest, uid: string, error: unknown, what: string, log: Record<string, unknown>, deps: MppsDeps): Promise<void> {
  if (error instanceof MppsRefusal) {
    deps.log.warn({ ...log, reason: error.message }, `MPPS ${what} refused: ${describeStatus(error.status)}`);
    await respond(rq.association, rq.request, uid, error.status, error);
    return;
  }
  deps.log.error({ ...log, err: error }, `MPPS ${what} failed`);
  if (rq.association.isOpen) await respond(rq.association, rq.request, uid, Status.ProcessingFailure, new MppsRefusal(Status.ProcessingFailure, 'the MPPS could not be recorded'));
}
