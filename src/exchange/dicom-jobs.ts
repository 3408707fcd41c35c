/**
 * Exchange with other DICOM nodes as jobs: send studies to a peer (C-STORE) and retrieve them from one
 * (C-MOVE/C-GET), queued, retried and audited. An area of its own above the DIMSE transport, which it
 * uses as a client, so that the transport knows nothing of the job queue.
 */
import type { Archive } from '../app.ts';
import type { JobContext, JobHandler } from '../jobs/job-runner.ts';
import type { Job } from '../ports/job-queue.ts';
import { AtriumError } from '../errors.ts';
import type { DicomClient, QueryLevelName } from '../dimse/services/scu.ts';
import { classifyRetrieveError, classifyRetrieveResult, retrieveFailureError } from './retrieve-failures.ts';
import { COMMITMENT_REPORT_JOB, reportOnNewAssociation, type CommitmentReport } from '../dimse/services/commitment-scp.ts';
import { outboundTls } from '../dimse/services/tls.ts';
import type { AuditEventInput, AuditInterface, AuditPrincipal } from '../ports/audit-store.ts';

/** Who asked for a job, and through which interface: the job's audit records name them when it runs. */
export interface JobRequester {
  requestedBy?: AuditPrincipal;
  requestedThrough?: AuditInterface;
}

/** What to send: a study, a series or listed instances, all from the archive. */
export interface SendPayload extends JobRequester {
  destination: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUids?: string[];
  /**
   * Transfer syntaxes the destination may be sent in when it does not accept an object's stored one
   * (routing rules, src/workflow/): the object is transcoded into the first of these the peer accepts.
   * Absent: objects are sent only as stored.
   */
  transferSyntaxes?: string[];
  /**
   * Objects built for this send, not stored in the archive (the rejection notes of identity corrections,
   * src/quality/corrections/rejection-notes.ts): each data set base64, Explicit VR Little Endian without File
   * Meta. Sent first, on the same association, before the archive's instances.
   */
  objects?: BuiltObject[];
}

/** An object to send that the archive does not hold. */
export interface BuiltObject {
  sopClassUid: string;
  sopInstanceUid: string;
  /** base64 of the data set: Explicit VR Little Endian, without File Meta Information. */
  dataset: string;
}

export interface RetrievePayload extends JobRequester {
  source: string;
  level: QueryLevelName;
  keys: Record<string, string>;
  method: 'move' | 'get';
}

export const SEND_JOB = 'dicom.send';
export const RETRIEVE_JOB = 'dicom.retrieve';

/**
 * Sends and retrieves run as durable jobs: queued in the index database, retried with backoff when the peer
 * is down or some sub-operations failed, visible at /api/jobs, and resumed after a restart. So do Storage
 * Commitment results that could not be delivered at once (queued by the commitment SCP).
 */
export function dicomJobHandlers(archive: DicomJobDeps, client: DicomClient): Readonly<Record<string, JobHandler>> {
  // The transfer itself is audited when it happens (what reached the peer, with the outcome); the request
  // was audited when it was made.
  const send = final<SendPayload>(async (job, context) => {
    const uids = await instancesToSend(archive, job.payload);
    const audit = jobAudit(archive, job, 'export', { destination: { aeTitle: job.payload.destination } }, await studiesOf(archive, job.payload, uids));
    try {
      const counts = await client.send(job.payload.destination, uids, {
        signal: context.signal, ...(job.payload.transferSyntaxes?.length ? { transferSyntaxes: job.payload.transferSyntaxes } : {}),
        ...(job.payload.objects?.length ? { objects: job.payload.objects.map((o) => ({ sopClassUid: o.sopClassUid, sopInstanceUid: o.sopInstanceUid, dataset: Buffer.from(o.dataset, 'base64') })) } : {}),
        onProgress: async (c) => { await context.heartbeat({ remaining: c.remaining, completed: c.completed, failed: c.failed, warning: c.warning }); },
      });
      const total = uids.length + (job.payload.objects?.length ?? 0);
      const failure = counts.failed > 0 ? `${counts.failed} of ${total} instances were not stored by ${job.payload.destination}` : null;
      await audit(failure, `job ${job.id}: ${counts.completed + counts.warning} of ${total} instances sent to ${job.payload.destination}`);
      if (failure) throw new Error(failure);
      return { completed: counts.completed, warning: counts.warning };
    } catch (error) {
      await audit((error as Error).message, `job ${job.id}: sending ${uids.length} instances to ${job.payload.destination}`);
      throw error;
    }
  });
  const retrieve = final<RetrievePayload>(async (job, context) => {
    const p = job.payload;
    // What arrives is recorded by C-STORE as it is stored; this record says who asked for it, from where, with which keys.
    const audit = jobAudit(archive, job, 'import', { origin: { aeTitle: p.source }, query: JSON.stringify({ level: p.level, ...p.keys }) }, []);
    let result;
    try {
      result = await client.retrieve(p.source, p.level, p.keys, p.method, {
        signal: context.signal, onProgress: async (c) => { await context.heartbeat(c); },
      });
    } catch (error) {
      if (context.signal.aborted) throw error;
      // Connection refused or a timeout may pass; a rejection or an operation the peer does not offer will not.
      const failure = classifyRetrieveError(error);
      await audit(failure.reason, `job ${job.id}: C-${p.method.toUpperCase()} from ${p.source}`);
      throw failure.kind === 'permanent' || !(error instanceof Error) ? retrieveFailureError(failure) : error;
    }
    const failure = classifyRetrieveResult(p.method, p.source, result);
    await audit(failure?.reason ?? null, `job ${job.id}: C-${p.method.toUpperCase()} from ${p.source}, ${result.completed} completed`);
    if (failure) throw retrieveFailureError(failure);
    return { status: result.status, completed: result.completed, failed: result.failed, warning: result.warning };
  });
  const tls = outboundTls(archive.config);
  const reportDeps = {
    applicationEntities: archive.applicationEntities, log: archive.log.child({ transport: 'dimse' }), aeTitle: archive.config.dicom.aeTitle,
    outbound: { maxPduLength: archive.config.dicom.maxPduLength, ...(tls ? { tls } : {}) },
  };
  const commitmentReport = final<CommitmentReport>(async (job) => {
    await reportOnNewAssociation(job.payload, reportDeps);
    return { delivered: job.payload.requester, transactionUid: job.payload.transactionUid, eventTypeId: job.payload.eventTypeId };
  });
  return { [SEND_JOB]: send, [RETRIEVE_JOB]: retrieve, [COMMITMENT_REPORT_JOB]: commitmentReport };
}

/** What the DICOM jobs use of the archive. */
export type DicomJobDeps = Pick<Archive, 'config' | 'log' | 'index' | 'audit' | 'applicationEntities'>;

/**
 * The audit record of one run of a job: the returned function writes it (null failure: success); only
 * its first call counts, so a catch-all after a recorded outcome adds nothing.
 */
function jobAudit(archive: DicomJobDeps, job: Job<JobRequester>, action: 'export' | 'import',
  extra: Pick<AuditEventInput, 'origin' | 'destination' | 'query'>, studies: string[]) {
  let done = false;
  return async (failure: string | null, detail: string) => {
    if (done) return;
    done = true;
    await archive.audit.record({
      principal: job.payload.requestedBy ?? { kind: 'anonymous', id: null, displayName: 'unknown requester' },
      action, interface: job.payload.requestedThrough ?? 'rest', ...extra,
      studies: studies.map((studyInstanceUid) => ({ studyInstanceUid })), detail,
      ...(failure ? { outcome: 'serious-failure' as const, outcomeReason: failure } : {}),
    }).catch((error) => archive.log.error({ err: error, job: job.id }, 'audit record failed'));
  };
}

/** The studies a send touches. */
async function studiesOf(archive: DicomJobDeps, payload: SendPayload, uids: string[]): Promise<string[]> {
  if (payload.studyInstanceUid) return [payload.studyInstanceUid];
  if (payload.seriesInstanceUid) {
    const series = await archive.index.getSeries(payload.seriesInstanceUid);
    return series ? [series.studyInstanceUid] : [];
  }
  const studies = new Set<string>();
  for (const uid of uids) {
    const instance = await archive.index.findInstance(uid);
    if (instance) studies.add(instance.studyInstanceUid);
  }
  return [...studies];
}

async function instancesToSend(archive: DicomJobDeps, payload: SendPayload): Promise<string[]> {
  if (payload.sopInstanceUids?.length) return payload.sopInstanceUids;
  const uids: string[] = [];
  const series = payload.seriesInstanceUid ? [payload.seriesInstanceUid]
    : payload.studyInstanceUid ? (await archive.index.listSeries(payload.studyInstanceUid, { limit: 1000, offset: 0 })).items.map((s) => s.seriesInstanceUid)
    : [];
  for (const seriesUid of series) {
    for (let offset = 0; ; offset += 1000) {
      const page = await archive.index.listInstances(seriesUid, { limit: 1000, offset });
      uids.push(...page.items.map((i) => i.sopInstanceUid));
      if (offset + 1000 >= page.total) break;
    }
  }
  if (uids.length === 0) throw new AtriumError('not-found', 'nothing to send: no such study, series or instances');
  return uids;
}

/** A missing peer or an empty selection will not fix itself: such a job fails at once instead of retrying. */
function final<P>(handler: (job: Job<P>, context: JobContext) => Promise<unknown>) {
  return async (job: Job<P>, context: JobContext) => {
    try {
      return await handler(job, context);
    } catch (error) {
      if (error instanceof AtriumError && (error.code === 'not-found' || error.code === 'invalid-input')) {
        Object.assign(error, { retryable: false });
      }
      throw error;
    }
  };
}
