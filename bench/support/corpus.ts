/**
 * The benchmark corpus: N synthetic CT slices (512x512, 16-bit, ~525 KB each) as Part-10 files in a
 * folder, one study (and one series, one patient) per `perStudy` instances:
 *   <root>/study-000/IM00001.dcm ... <root>/study-009/IM01000.dcm
 * Generated and made durable before anything is timed.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { syntheticSeries } from '../../src/synthetic/synthetic-instance.ts';
import { generateUid } from '../../src/dicom/uid.ts';

export interface Corpus {
  root: string;
  /** Absolute file paths, in the order `importPaths` visits them (sorted folder walk). */
  files: string[];
  bytes: number;
  studies: number;
}

export async function generateCorpus(root: string, count: number, perStudy: number, onProgress?: (done: number) => void): Promise<Corpus> {
  await mkdir(root, { recursive: true });
  const studies = Math.ceil(count / perStudy);
  let written = 0;
  for (let s = 0; s < studies; s++) {
    const dir = join(root, `study-${String(s).padStart(3, '0')}`);
    await mkdir(dir);
    const inStudy = Math.min(perStudy, count - written);
    const series = syntheticSeries(inStudy, {
      patientId: `BENCH${String(s).padStart(4, '0')}`,
      patientName: `BENCH^PATIENT${s}`,
      accessionNumber: `BACC${String(s).padStart(5, '0')}`,
      studyInstanceUid: generateUid(),
      seriesInstanceUid: generateUid(),
      seed: written,
    });
    for (const instance of series) {
      written++;
      const handle = await open(join(dir, `IM${String(written).padStart(5, '0')}.dcm`), 'wx');
      try {
        await handle.writev([...instance]);
      } finally {
        await handle.close();
      }
      if (written % 100 === 0) onProgress?.(written);
    }
  }
  const files = await listFiles(root);
  // Flush the corpus to disk now, so that its write-back never lands inside a timed run.
  await forEachLimit(files, 8, async (file) => {
    const handle = await open(file, 'r');
    try { await handle.sync(); } finally { await handle.close(); }
  });
  let bytes = 0;
  for (const file of files) bytes += (await stat(file)).size;
  return { root, files, bytes, studies };
}

/** The files under `root`, walked like `importPaths` walks a folder (entries sorted by localeCompare). */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) out.push(path);
    }
  };
  await walk(root);
  return out;
}

/** Reads every file once, start to end, so that all timed runs find the corpus in the page cache. */
export async function warmPageCache(files: string[]): Promise<void> {
  await forEachLimit(files, 4, (file) => new Promise<void>((resolve, reject) => {
    createReadStream(file, { highWaterMark: 1024 * 1024 }).on('data', () => {}).on('end', resolve).on('error', reject);
  }));
}

/** Runs `fn` over `items`, `limit` at a time, in order of start (the same worker pattern as importPaths). */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
}
