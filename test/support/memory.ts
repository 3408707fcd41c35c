import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { syntheticInstance, type SyntheticInstanceOptions } from '../../src/synthetic/synthetic-instance.ts';

/** The memory ceiling of the bounded-memory tests: an instance of several GB goes through in less. */
export const PEAK_RSS_LIMIT = 300 * 1024 * 1024;

/**
 * Samples a child's VmHWM (the kernel's resident-set high-water mark) until it exits; the returned function
 * gives the highest value seen, in bytes. Measured, not estimated.
 */
export function watchPeakRss(child: ChildProcess): () => number {
  let peak = 0;
  const sample = async () => {
    try {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024);
    } catch {
      // the process exited between two samples
    }
  };
  const timer = setInterval(sample, 25);
  child.once('exit', () => clearInterval(timer));
  return () => peak;
}

/** Writes a synthetic instance to `file` frame by frame (never whole in memory); its size and SHA-256. */
export async function writeSyntheticFile(file: string, options: SyntheticInstanceOptions): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  let size = 0;
  for (const chunk of syntheticInstance(options)) {
    hash.update(chunk);
    size += chunk.length;
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return { size, sha256: hash.digest('hex') };
}
