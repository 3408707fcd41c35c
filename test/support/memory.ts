import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';

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
