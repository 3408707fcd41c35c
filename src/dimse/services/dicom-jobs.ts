import type { Archive } from '../../app.ts';
import type { JobContext, JobRunner } from '../../jobs/job-runner.ts';
import type { Job } from '../../ports/job-queue.ts';
import { AtriumError } from '../../errors.ts';
import type { DicomClient, QueryLevelName } from './scu.ts';
import { statusCategory, describeStatus } from '../status.ts';
import { COMMITMENT_REPORT_JOB, reportOnNewAssociation, type CommitmentReport } from './commitment-scp.ts';
import { outboundTls } from './tls.ts';

/** What to send: a study, a series or listed instances, all from the archive. */
export interface SendPayload {
  destination: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUids?: string[];
}

export interface RetrievePayload {
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
export function registerDicomJobs(runner: JobRunner, archive: Archive, client: DicomClient): void {
  runner.register<SendPayload>(SEND_JOB, final(async (job, context) => {
    const uids = await instancesToSend(archive, job.payload);
    const counts = await client.send(job.payload.destination, uids, {
      signal: context.signal,
      onProgress: async (c) => { await context.heartbeat({ remaining: c.remaining, completed: c.completed, failed: c.failed, warning: c.warning }); },
    });
    if (counts.failed > 0) throw new Error(`${counts.failed} of ${uids.length} instances were not stored by ${job.payload.destination}`);
    return { completed: counts.completed, warning: counts.warning };
  }));
  runner.register<RetrievePayload>(RETRIEVE_JOB, final(async (job, context) => {
    const p = job.payload;
    const result = await client.retrieve(p.source, p.level, p.keys, p.method, {
      signal: context.signal, onProgress: async (c) => { await context.heartbeat(c); },
    });
    const category = statusCategory(result.status);
    if (category === 'failure' || result.failed > 0) throw new Error(`C-${p.method.toUpperCase()} from ${p.source}: ${describeStatus(result.status)}, ${result.failed} failed`);
    return result;
  }));
  const tls = outboundTls(archive.config);
  const reportDeps = {
    applicationEntities: archive.applicationEntities, log: archive.log.child({ transport: 'dimse' }), aeTitle: archive.config.dicom.aeTitle,
    outbound: { maxPduLength: archive.config.dicom.maxPduLength, ...(tls ? { tls } : {}) },
  };
  runner.register<CommitmentReport>(COMMITMENT_REPORT_JOB, final(async (job) => {
    await reportOnNewAssociation(job.payload, reportDeps);
    return { delivered: job.payload.requester, transactionUid: job.payload.transactionUid, eventTypeId: job.payload.eventTypeId };
  }));
}

async function instancesToSend(archive: Archive, payload: SendPayload): Promise<string[]> {
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
