/**
 * The baseline the ingest benchmark compares against: a plain, durable file copy, done the way a
 * careful store writes a file and nothing more (no parsing, hashing or indexing). Per file:
 *   1. open `<dest>/.incoming/<uuid>.tmp` (O_EXCL) and stream the source into it (1 MiB reads, as
 *      `importPaths` reads with createReadStream's highWaterMark of 1 MiB);
 *   2. fsync the temp file, close it;
 *   3. mkdir -p the destination folder (`<dest>/<study-folder>/`), rename the temp file into place;
 *   4. fsync the destination folder, and the folders mkdir created (so the rename is durable): one
 *      directory fsync per file, plus one per newly created folder.
 * The same number of files are in flight at once as in the Atrium run.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { forEachLimit } from './corpus.ts';

export interface CopySummary {
  files: number;
  copied: number;
  bytes: number;
}

export async function durableCopy(sourceRoot: string, files: readonly string[], destRoot: string, concurrency: number): Promise<CopySummary> {
  const incoming = join(destRoot, '.incoming');
  await mkdir(incoming, { recursive: true });
  const summary: CopySummary = { files: files.length, copied: 0, bytes: 0 };
  await forEachLimit(files, concurrency, async (source) => {
    const temp = join(incoming, `${randomUUID()}.tmp`);
    const target = join(destRoot, relative(sourceRoot, source));
    const out = await open(temp, 'wx', 0o644);
    let bytes = 0;
    try {
      for await (const chunk of createReadStream(source, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
        let offset = 0;
        while (offset < chunk.byteLength) {
          const { bytesWritten } = await out.write(chunk, offset, chunk.byteLength - offset);
          offset += bytesWritten;
        }
        bytes += chunk.byteLength;
      }
      await out.sync();
    } finally {
      await out.close();
    }
    const parent = dirname(target);
    const firstCreated = await mkdir(parent, { recursive: true });
    await rename(temp, target);
    await fsyncDir(parent);
    if (firstCreated !== undefined) await fsyncDir(dirname(firstCreated));
    summary.copied++;
    summary.bytes += bytes;
  });
  return summary;
}

async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
