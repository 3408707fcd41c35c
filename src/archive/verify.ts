import { createHash } from 'node:crypto';
import type { BlobStore } from '../ports/blob-store.ts';
import type { IndexStore } from '../ports/index-store.ts';

export interface VerifyProblem {
  kind: 'missing' | 'size-mismatch' | 'checksum-mismatch' | 'unreferenced';
  blobKey: string;
  sopInstanceUid: string | null;
  detail: string;
}

export interface VerifyReport {
  checked: number;
  bytes: number;
  problems: VerifyProblem[];
  /** Unreferenced blobs removed (with repair). */
  removed: number;
}

/**
 * Re-reads every stored object and compares size and SHA-256 with what the index recorded at ingest, and
 * lists blobs no index row points at (left by a crash between blob commit and index commit).
 */
export async function verifyArchive(
  index: IndexStore,
  blobs: BlobStore,
  options: { repair?: boolean; graceMs?: number; onProgress?: (checked: number, bytes: number) => void } = {},
): Promise<VerifyReport> {
  const report: VerifyReport = { checked: 0, bytes: 0, problems: [], removed: 0 };
  const referenced = new Set<string>();
  for await (const object of index.storedObjects()) {
    referenced.add(object.blobKey);
    const stat = await blobs.stat(object.blobKey);
    if (!stat) {
      report.problems.push({ kind: 'missing', blobKey: object.blobKey, sopInstanceUid: object.sopInstanceUid, detail: `no blob for ${object.where}` });
    } else if (stat.size !== object.sizeBytes) {
      report.problems.push({ kind: 'size-mismatch', blobKey: object.blobKey, sopInstanceUid: object.sopInstanceUid, detail: `${stat.size} bytes stored, ${object.sizeBytes} indexed` });
    } else {
      const hash = createHash('sha256');
      for await (const chunk of await blobs.read(object.blobKey)) hash.update(chunk as Buffer);
      const actual = hash.digest('hex');
      if (actual !== object.sha256) {
        report.problems.push({ kind: 'checksum-mismatch', blobKey: object.blobKey, sopInstanceUid: object.sopInstanceUid, detail: `sha256 ${actual} != indexed ${object.sha256}` });
      }
      report.bytes += stat.size;
    }
    report.checked++;
    options.onProgress?.(report.checked, report.bytes);
  }
  const graceMs = options.graceMs ?? 60 * 60 * 1000;
  for await (const key of blobs.list()) {
    if (referenced.has(key)) continue;
    const stat = await blobs.stat(key);
    if (!stat) continue;
    // A blob committed moments ago may belong to an ingest whose index commit is still under way (or
    // came after our index scan): only blobs older than the grace period count as left-overs.
    if (Date.now() - stat.modifiedAt.getTime() < graceMs) continue;
    report.problems.push({ kind: 'unreferenced', blobKey: key, sopInstanceUid: null, detail: 'no index row points at this blob' });
    if (options.repair) {
      await blobs.delete(key);
      report.removed++;
    }
  }
  return report;
}
