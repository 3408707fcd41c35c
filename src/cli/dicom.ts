import type { AtriumConfig } from '../config/config.ts';
import { jobRunner, openArchive } from '../app.ts';
import { DicomClient, type QueryLevelName } from '../dimse/services/scu.ts';
import { RETRIEVE_JOB, SEND_JOB, type JobRequester, type RetrievePayload, type SendPayload } from '../exchange/dicom-jobs.ts';
import { hostname, userInfo } from 'node:os';
import { outboundTls } from '../dimse/services/tls.ts';
import type { Job } from '../ports/job-queue.ts';

/** `atrium echo <AE>`: C-ECHO a known peer. */
export async function echoCommand(config: AtriumConfig, aeTitle: string): Promise<number> {
  const archive = await openArchive({ ...config, log: { level: 'warn' } });
  try {
    const result = await new DicomClient(archive, { tls: outboundTls(config) }).echo(aeTitle);
    console.log(`${aeTitle}: ${result.description}`);
    return result.status === 0 ? 0 : 1;
  } finally {
    await archive.close();
  }
}

/** `atrium query <AE> --level STUDY -k PatientName=DOE*`: C-FIND on a known peer, one line per match. */
export async function queryCommand(config: AtriumConfig, aeTitle: string, level: QueryLevelName, keys: Record<string, string>, json: boolean): Promise<number> {
  const archive = await openArchive({ ...config, log: { level: 'warn' } });
  try {
    const matches = await new DicomClient(archive, { tls: outboundTls(config) }).find(aeTitle, level, keys);
    if (json) console.log(JSON.stringify(matches, null, 2));
    else {
      for (const m of matches) {
        console.log(Object.entries(m).filter(([tag]) => tag !== '00080005' && tag !== '00080052')
          .map(([tag, a]) => `${tag}=${(a.Value ?? []).map((v) => (typeof v === 'object' && v !== null && 'Alphabetic' in v ? v.Alphabetic : String(v))).join('\\')}`).join('  '));
      }
      console.log(`${matches.length} matches`);
    }
    return 0;
  } finally {
    await archive.close();
  }
}

/**
 * `atrium send` and `atrium retrieve`: queued as durable jobs, then run here until done, with progress.
 * Killed half way, the job stays queued and `atrium serve` (or the next command) resumes it.
 */
export async function jobCommand(config: AtriumConfig, type: typeof SEND_JOB | typeof RETRIEVE_JOB, payload: SendPayload | RetrievePayload): Promise<number> {
  const archive = await openArchive({ ...config, log: { level: 'warn' } });
  const runner = jobRunner(archive, { pollIntervalMs: 200 });
  try {
    // One attempt here: a failure is reported at once, and the job stays queued for the server's retries.
    // The audit trail names the operating-system account that ran the command.
    const requester: JobRequester = { requestedBy: { kind: 'anonymous', id: null, displayName: `${userInfo().username}@${hostname()} (atrium CLI)` }, requestedThrough: 'cli' };
    let job: Job | null = await archive.jobs.enqueue(type, { ...payload, ...requester });
    console.error(`job ${job.id} queued (${type})`);
    runner.start();
    let shown = '';
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      job = await archive.jobs.get(job.id);
      if (!job) break;
      const progress = JSON.stringify(job.progress ?? '');
      if (job.state === 'running' && progress !== shown && process.stderr.isTTY) process.stderr.write(`\r${progress}   `);
      shown = progress;
      if (job.state === 'succeeded' || job.state === 'failed' || job.state === 'cancelled') break;
      // The first attempt failed and the job waits for its retry: that is the server's business now.
      if (job.state === 'queued' && job.attempts >= 1) break;
    }
    if (process.stderr.isTTY) process.stderr.write('\n');
    await runner.stop();
    job = job && (await archive.jobs.get(job.id));
    if (job?.state === 'succeeded') {
      console.log(`job ${job.id} succeeded: ${JSON.stringify(job.result)}`);
      return 0;
    }
    console.log(`job ${job?.id} ${job?.state}${job?.lastError ? `: ${job.lastError}` : ''}${job?.state === 'queued' ? ' (will be retried by atrium serve)' : ''}`);
    return 1;
  } finally {
    await runner.stop();
    await archive.close();
  }
}
