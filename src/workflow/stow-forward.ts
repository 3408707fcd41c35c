/**
 * The STOW-RS forward job (`workflow.stow`): the instances of a study (or the listed ones) POSTed to a
 * configured DICOMweb destination as one multipart/related request (PS3.18 10.5), streamed from the blob
 * store, each transcoded first when the destination lists the transfer syntaxes it takes and the stored one
 * is not among them. Retried with the queue's backoff while the destination is down or answers 5xx; a 4xx
 * other than 408/429 fails the job at once. Audited as an export to the destination.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Archive } from '../app.ts';
import type { JobHandler } from '../jobs/job-runner.ts';
import type { InstanceRecord } from '../ports/index-store.ts';
import { AtriumError } from '../errors.ts';
import { imagingPool, instanceTranscodeRefusal, transcodeInstance } from '../imaging/index.ts';
import { ruleRequester, type StowPayload } from './routing.ts';
import type { DicomwebDestination, WorkflowSettings } from './config.ts';

const clean = (uid: string) => uid.replace(/[\0 ]+$/, '');

export interface StowDeps {
  archive: Pick<Archive, 'index' | 'retrieve' | 'audit' | 'log'>;
  settings: () => WorkflowSettings;
}

/** The instances of a payload: the listed ones, or every instance of the study. */
export async function instancesOf(index: Archive['index'], payload: { studyInstanceUid: string; sopInstanceUids?: string[] }): Promise<InstanceRecord[]> {
  if (payload.sopInstanceUids?.length) {
    return (await Promise.all(payload.sopInstanceUids.map((u) => index.findInstance(u)))).filter((i): i is InstanceRecord => i !== null);
  }
  const out: InstanceRecord[] = [];
  for (const s of (await index.listSeries(payload.studyInstanceUid, { limit: 1000, offset: 0 })).items) {
    for (let offset = 0; ; offset += 1000) {
      const page = await index.listInstances(s.seriesInstanceUid, { limit: 1000, offset });
      out.push(...page.items);
      if (offset + 1000 >= page.total) break;
    }
  }
  return out;
}

/** Which transfer syntax to send an instance in: as stored, or the first listed one it can be transcoded into. */
async function sendAs(deps: StowDeps, destination: DicomwebDestination, instance: InstanceRecord): Promise<string | null> {
  const stored = clean(instance.transferSyntaxUid);
  if (destination.transferSyntaxes.length === 0 || destination.transferSyntaxes.includes(stored)) return null;
  for (const ts of destination.transferSyntaxes) {
    if (!(await instanceTranscodeRefusal(deps.archive, instance, ts))) return ts;
  }
  throw Object.assign(new AtriumError('not-acceptable',
    `instance ${instance.sopInstanceUid} is stored in ${stored}, which ${destination.name} does not take, and cannot be transcoded into ${destination.transferSyntaxes.join(', ')}`), { retryable: false });
}

async function* multipart(deps: StowDeps, destination: DicomwebDestination, instances: InstanceRecord[], boundary: string, signal: AbortSignal): AsyncIterable<Uint8Array> {
  for (const instance of instances) {
    if (signal.aborted) throw signal.reason;
    const ts = await sendAs(deps, destination, instance);
    yield Buffer.from(`--${boundary}\r\nContent-Type: application/dicom${ts ? `; transfer-syntax=${ts}` : ''}\r\n\r\n`);
    const body = ts ? await transcodeInstance(deps.archive, instance, ts, { pool: imagingPool() }) : await deps.archive.retrieve.readInstance(instance);
    for await (const chunk of body) yield chunk as Uint8Array;
    yield Buffer.from('\r\n');
  }
  yield Buffer.from(`--${boundary}--\r\n`);
}

export function stowJob(deps: StowDeps): JobHandler<StowPayload> {
  return async (job, context) => {
    const p = job.payload;
    const destination = deps.settings().dicomwebDestinations.find((d) => d.name === p.destination);
    if (!destination) throw Object.assign(new AtriumError('not-found', `no DICOMweb destination ${p.destination} is configured (workflow.dicomwebDestinations)`), { retryable: false });
    const instances = await instancesOf(deps.archive.index, p);
    if (instances.length === 0) throw Object.assign(new AtriumError('not-found', `nothing to send: study ${p.studyInstanceUid} has none of the instances`), { retryable: false });
    const url = `${destination.url}/studies`;
    const audit = async (failure: string | null, detail: string) => {
      await deps.archive.audit.record({
        principal: p.rule ? ruleRequester(p.rule) : { kind: 'anonymous', id: null, displayName: 'unknown requester' }, action: 'export', interface: 'dicomweb',
        destination: { address: new URL(url).host }, studies: [{ studyInstanceUid: p.studyInstanceUid }], detail,
        ...(failure ? { outcome: 'serious-failure' as const, outcomeReason: failure } : {}),
      }).catch((error) => deps.archive.log.error({ err: error, job: job.id }, 'audit record failed'));
    };
    const boundary = `atrium-${randomBytes(12).toString('hex')}`;
    const headers: Record<string, string> = { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, accept: 'application/dicom+json' };
    const token = destination.tokenEnv ? process.env[destination.tokenEnv] : undefined;
    if (token) headers.authorization = `Bearer ${token}`;
    const timeout = AbortSignal.timeout(destination.timeoutSeconds * 1000);
    const signal = AbortSignal.any([context.signal, timeout]);
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST', headers, signal, duplex: 'half',
        body: Readable.toWeb(Readable.from(multipart(deps, destination, instances, boundary, signal))) as ReadableStream<Uint8Array>,
      } as RequestInit);
    } catch (error) {
      const message = `STOW-RS to ${url} failed: ${(error as Error).message}${(error as Error).cause ? ` (${((error as Error).cause as Error).message ?? ''})` : ''}`;
      await audit(message, `job ${job.id}: ${instances.length} instances to ${destination.name}`);
      if ((error as { retryable?: boolean }).retryable === false) throw error;
      throw new Error(message, { cause: error });
    }
    const text = await response.text().catch(() => '');
    if (response.status === 200) {
      await audit(null, `job ${job.id}: ${instances.length} instances sent to ${destination.name} (${url}) by STOW-RS`);
      return { stored: instances.length, status: 200 };
    }
    const failure = `STOW-RS to ${url} answered ${response.status}: ${text.slice(0, 500)}`;
    await audit(failure, `job ${job.id}: ${instances.length} instances to ${destination.name}`);
    // 202 (some not stored) and 5xx, 408, 429 may pass on a later attempt; other refusals will not.
    const transient = response.status === 202 || response.status >= 500 || response.status === 408 || response.status === 429;
    throw Object.assign(new Error(failure), transient ? {} : { retryable: false });
  };
}
