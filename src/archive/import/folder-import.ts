import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileMetaForBareDataset, isBareDataset } from '../../dicom/bare-dataset.ts';
import { DicomParseError, Part10Reader } from '../../dicom/part10-reader.ts';
import type { IngestService, IngestResult } from '../ingest.ts';
import { dicomdirReferencedFiles } from './dicomdir.ts';

export interface ImportOutcome {
  file: string;
  status: IngestResult['status'] | 'failed';
  sopInstanceUid: string | null;
  reasonCode: string | null;
  /** 'generated': the file was a bare data set, stored after a File Meta made for it. */
  fileMeta?: 'generated';
}

export interface ImportSummary {
  files: number;
  stored: number;
  duplicates: number;
  /** Files that were a bare data set (no preamble, no File Meta): stored with a File Meta generated for them. */
  generatedFileMeta: number;
  /** Files that are not DICOM at all (text, archives...): not imported, not quarantined. */
  skipped: { file: string; reason: string }[];
  quarantined: { file: string; reasonCode: string; reason: string }[];
  /** Refused and not kept (ingest.invalidUidPolicy "reject"). */
  rejected: { file: string; reasonCode: string; reason: string }[];
  failed: { file: string; error: string }[];
  /** DICOMDIR files read; they index media and are not archived themselves. */
  dicomdirs: number;
  /** Files a DICOMDIR refers to that are not on the media. */
  missingFromDicomdir: string[];
  bytes: number;
  /** Per file, only when asked for (`recordOutcomes`): a large import would otherwise hold them all. */
  outcomes?: ImportOutcome[];
}

export interface ImportProgress {
  onDiscovered?(files: number): void;
  onFileDone?(file: string, result: IngestResult | Error): void;
}

const IGNORED = new Set(['.DS_Store', 'Thumbs.db', 'desktop.ini']);

/**
 * Imports files and folders through the ingest pipeline, `concurrency` files at a time. Folders are
 * walked recursively; a DICOMDIR is read for the files it references (which may sit outside the walk,
 * or be missing), and is not archived itself.
 */
export async function importPaths(ingest: IngestService, paths: string[], options: { concurrency: number; recordOutcomes?: boolean } & ImportProgress): Promise<ImportSummary> {
  const summary: ImportSummary = { files: 0, stored: 0, duplicates: 0, generatedFileMeta: 0, skipped: [], quarantined: [], rejected: [], failed: [], dicomdirs: 0, missingFromDicomdir: [], bytes: 0 };
  if (options.recordOutcomes) summary.outcomes = [];
  const queue = new Set<string>();
  for (const path of paths) await collect(resolve(path), queue, summary);
  options.onDiscovered?.(queue.size);

  const files = [...queue];
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next++];
      summary.files++;
      try {
        const meta = await generatedFileMeta(file);
        const bytes = createReadStream(file, { highWaterMark: 1024 * 1024 });
        const result = await ingest.ingest(meta ? prepend(meta, bytes) : bytes,
          { source: 'import', originalName: file, notDicom: 'skip', ...(meta ? { fileMeta: 'generated' as const } : {}) });
        if (meta && (result.status === 'stored' || result.status === 'duplicate')) summary.generatedFileMeta++;
        if (result.status === 'stored') { summary.stored++; summary.bytes += result.sizeBytes; }
        else if (result.status === 'duplicate') summary.duplicates++;
        else if (result.status === 'skipped') summary.skipped.push({ file, reason: result.reason });
        else if (result.status === 'rejected') summary.rejected.push({ file, reasonCode: result.reasonCode, reason: result.reason });
        else summary.quarantined.push({ file, reasonCode: result.reasonCode, reason: result.reason });
        summary.outcomes?.push({
          file, status: result.status, sopInstanceUid: 'sopInstanceUid' in result ? result.sopInstanceUid : null,
          reasonCode: 'reasonCode' in result ? result.reasonCode : null, ...(meta ? { fileMeta: 'generated' as const } : {}),
        });
        options.onFileDone?.(file, result);
      } catch (error) {
        summary.failed.push({ file, error: (error as Error).message });
        summary.outcomes?.push({ file, status: 'failed', sopInstanceUid: null, reasonCode: null });
        options.onFileDone?.(file, error as Error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  return summary;
}

async function collect(path: string, queue: Set<string>, summary: ImportSummary): Promise<void> {
  const info = await stat(path);
  if (info.isDirectory()) {
    const entries = await readdir(path, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      if (IGNORED.has(entry.name)) continue;
      if (entry.isDirectory() || entry.isFile()) await collect(join(path, entry.name), queue, summary);
    }
    return;
  }
  if (basename(path).toUpperCase() === 'DICOMDIR') {
    summary.dicomdirs++;
    let referenced: string[] = [];
    try {
      referenced = dicomdirReferencedFiles(await readFile(path));
    } catch (error) {
      summary.failed.push({ file: path, error: `unreadable DICOMDIR: ${(error as Error).message}` });
      return;
    }
    for (const relative of referenced) {
      const file = join(dirname(path), relative);
      try {
        if ((await stat(file)).isFile()) queue.add(file);
      } catch {
        summary.missingFromDicomdir.push(file);
      }
    }
    return;
  }
  queue.add(path);
}

/**
 * A File Meta for a file that is a bare data set (no preamble, no "DICM", no group 0002: PS3.10 wants them,
 * old equipment and export tools omit them), as DCMTK (+td) and pydicom (force) read such files. The file is
 * read once more to find its SOP Class and Instance UIDs. Undefined for Part-10 files, for files that do not
 * parse (the ingest quarantines or skips them with the reason), and for bare data sets that cannot get one
 * (compressed pixel data: the ingest quarantines them as missing-file-meta and says why).
 */
async function generatedFileMeta(file: string): Promise<Uint8Array | undefined> {
  const handle = await open(file, 'r');
  let head: Buffer;
  try {
    head = Buffer.alloc(132);
    const { bytesRead } = await handle.read(head, 0, 132, 0);
    head = head.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
  if (head.length === 132 && head.toString('latin1', 128, 132) === 'DICM') return undefined;
  if (head.length >= 4 && head.toString('latin1', 0, 4) === 'DICM') return undefined;
  if (head.length >= 2 && head[0] === 0x02 && head[1] === 0x00) return undefined; // group 0002 without preamble
  const reader = new Part10Reader();
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) reader.push(chunk as Uint8Array);
    const header = reader.end();
    if (!isBareDataset(header)) return undefined;
    const made = fileMetaForBareDataset(header);
    return 'meta' in made ? made.meta : undefined;
  } catch (error) {
    if (error instanceof DicomParseError) return undefined;
    throw error;
  }
}

async function* prepend(first: Uint8Array, rest: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  yield first;
  yield* rest;
}
