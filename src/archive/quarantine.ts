import type { Logger } from 'pino';
import type { BlobStore } from '../ports/blob-store.ts';
import type { IndexStore, QuarantineRecord } from '../ports/index-store.ts';
import { AtriumError } from '../errors.ts';
import { HeaderDumper, type HeaderDump } from '../dicom/header-dump.ts';
import { DicomParseError, Part10Reader, type Part10Header } from '../dicom/part10-reader.ts';
import { attributeChanges, AttributeCorrectionError, correctAttributes, type AppliedChange } from '../dicom/attribute-correction.ts';
import { fileMetaForBareDataset, isBareDataset } from '../dicom/bare-dataset.ts';
import type { IngestResult, IngestService } from './ingest.ts';
import type { RetrieveService } from './retrieve.ts';

/** Attributes are set in memory (the object is spliced, src/dicom/attribute-correction.ts): up to this size. */
export const MAX_CORRECTED_BYTES = 256 * 1024 * 1024;

export interface ReleaseOutcome {
  /** The ingest result: `stored`, or `duplicate` when the archive had the object already. */
  result: Extract<IngestResult, { status: 'stored' | 'duplicate' }>;
  /** The attributes set before the ingest (recorded in the object's Original Attributes Sequence). */
  corrections: AppliedChange[];
  /** The quarantine entry that was released (and is gone now). */
  entry: QuarantineRecord;
}

/** A release that did not go through: the entry and its bytes are kept. */
export class ReleaseRefused extends AtriumError {
  readonly entry: QuarantineRecord;
  readonly result: IngestResult | null;
  constructor(entry: QuarantineRecord, message: string, result: IngestResult | null, details: Record<string, unknown> = {}) {
    super('unprocessable', message, { quarantineId: entry.id, ...details });
    this.entry = entry;
    this.result = result;
  }
}

export interface QuarantineDeps {
  index: IndexStore;
  /** For deletions only: reads go through the RetrieveService (the one read path). */
  blobs: Pick<BlobStore, 'delete'>;
  retrieve: Pick<RetrieveService, 'openQuarantined'>;
  ingest: Pick<IngestService, 'ingest'>;
  log: Logger;
  /** Modifying System (0400,0563) of the corrections made here, e.g. "ATRIUM ARCHIVE_1". */
  modifyingSystem: string;
  clock?: () => Date;
}

/**
 * What an operator does with a quarantined object: look inside it (a lenient header dump), release it into
 * the archive once its cause is fixed (the configuration, or attributes set here), or delete it. The bytes in
 * quarantine are never changed: a release ingests a new copy, and the entry goes only once that is stored.
 */
export class QuarantineService {
  readonly #index: IndexStore;
  readonly #blobs: Pick<BlobStore, 'delete'>;
  readonly #retrieve: Pick<RetrieveService, 'openQuarantined'>;
  readonly #ingest: Pick<IngestService, 'ingest'>;
  readonly #log: Logger;
  readonly #modifyingSystem: string;
  readonly #clock: () => Date;

  constructor(deps: QuarantineDeps) {
    this.#index = deps.index;
    this.#blobs = deps.blobs;
    this.#retrieve = deps.retrieve;
    this.#ingest = deps.ingest;
    this.#log = deps.log;
    this.#modifyingSystem = deps.modifyingSystem;
    this.#clock = deps.clock ?? (() => new Date());
  }

  async #entry(id: number | string): Promise<QuarantineRecord> {
    const n = typeof id === 'number' ? id : /^\d{1,15}$/.test(id) ? Number(id) : NaN;
    const entry = Number.isSafeInteger(n) ? await this.#index.getQuarantined(n) : null;
    if (!entry) throw new AtriumError('not-found', `no quarantined object ${id}`);
    return entry;
  }

  /** The header of the quarantined object, read as far as it goes (see HeaderDumper), with where and why reading stopped. */
  async dump(id: number | string): Promise<HeaderDump> {
    const entry = await this.#entry(id);
    const dumper = new HeaderDumper();
    const bytes = await this.#retrieve.openQuarantined(entry.id);
    try {
      for await (const chunk of bytes) if (!dumper.push(chunk as Uint8Array)) break;
    } finally {
      bytes.destroy();
    }
    return dumper.end();
  }

  /**
   * Runs the quarantined object through the ingest pipeline again, with `attributes` (keyword -> value) set
   * first when given. Stored (or already in the archive): the entry and its blob are removed. Anything else
   * throws ReleaseRefused (422) with the reason, and the entry stays as it was; nothing else is kept.
   */
  async release(id: number | string, attributes: Record<string, unknown> = {}): Promise<ReleaseOutcome> {
    const entry = await this.#entry(id);
    let changes;
    try {
      changes = attributeChanges(attributes);
    } catch (error) {
      if (error instanceof AttributeCorrectionError) throw new AtriumError('invalid-input', `attributes: ${error.message}`);
      throw error;
    }
    if (changes.length > 0 && entry.sizeBytes > MAX_CORRECTED_BYTES) {
      throw new ReleaseRefused(entry, `attributes are set on objects of up to ${MAX_CORRECTED_BYTES / 1024 / 1024} MiB; this one has ${entry.sizeBytes} bytes`, null);
    }
    // Read once: the header decides whether a File Meta is to be made (a bare data set, as `atrium import`
    // does for files) and where the attributes go; the bytes are kept only when they are to be changed.
    const kept: Uint8Array[] | null = changes.length > 0 ? [] : null;
    const read = await this.#read(entry, kept);
    let corrections: AppliedChange[] = [];
    let body: Uint8Array | null = kept ? concat(kept) : null;
    let header = read.header;
    if (changes.length > 0) {
      if (!header) throw new ReleaseRefused(entry, `attributes cannot be set: the object cannot be read (${read.error!.message})`, null, { reasonCode: reasonCode(read.error!) });
      try {
        const corrected = correctAttributes(body!, header, changes, { modifyingSystem: this.#modifyingSystem, at: this.#clock() });
        body = corrected.bytes;
        corrections = corrected.applied;
      } catch (error) {
        if (error instanceof AttributeCorrectionError) {
          if (error.kind === 'invalid') throw new AtriumError('invalid-input', `attributes: ${error.message}`);
          throw new ReleaseRefused(entry, `attributes cannot be set: ${error.message}`, null);
        }
        throw error;
      }
      // Read again: what is ingested must be what was checked (and a splice gone wrong is caught here, not stored).
      try {
        header = parseWhole(body);
      } catch (error) {
        if (!(error instanceof DicomParseError)) throw error;
        throw new ReleaseRefused(entry, `the corrected object cannot be read (${error.message}); nothing was changed`, null);
      }
    }
    let meta: Uint8Array | undefined;
    if (header && isBareDataset(header)) {
      const made = fileMetaForBareDataset(header);
      if ('meta' in made) meta = made.meta;
    }
    const chunks = body ? [body] : await this.#retrieve.openQuarantined(entry.id);
    const source = meta ? prepend(meta, chunks) : chunks;
    const result = await this.#ingest.ingest(source, {
      source: entry.source, ...(entry.originalName ? { originalName: entry.originalName } : {}), onFailure: 'refuse', ...(meta ? { fileMeta: 'generated' as const } : {}),
    });
    if (result.status !== 'stored' && result.status !== 'duplicate') {
      this.#log.info({ quarantineId: entry.id, reasonCode: result.reasonCode }, `quarantined object not released: ${result.reason}`);
      throw new ReleaseRefused(entry, `not released: ${result.reason}`, result, {
        reasonCode: result.reasonCode, ...('element' in result ? { element: result.element, byteOffset: result.byteOffset } : {}),
      });
    }
    await this.#remove(entry);
    this.#log.info({ quarantineId: entry.id, sopInstanceUid: result.sopInstanceUid, status: result.status, corrected: corrections.map((c) => c.keyword) },
      'quarantined object released into the archive');
    return { result, corrections, entry };
  }

  /** Removes the entry and its bytes. */
  async delete(id: number | string): Promise<QuarantineRecord> {
    const entry = await this.#entry(id);
    if (!(await this.#remove(entry))) throw new AtriumError('not-found', `no quarantined object ${id}`);
    return entry;
  }

  /** Index first, then the blob: a crash between leaves an unreferenced blob (`atrium verify` reports it), never an entry without bytes. */
  async #remove(entry: QuarantineRecord): Promise<boolean> {
    const removed = await this.#index.deleteQuarantined(entry.id);
    if (!removed) return false;
    await this.#blobs.delete(removed.blobKey).catch((error) =>
      this.#log.warn({ err: error, blobKey: removed.blobKey }, 'blob left after a quarantine entry was removed; verify --repair removes it'));
    return true;
  }

  /** Parses the quarantined object (keeping its bytes in `kept` when given): its header, or why it cannot be read. */
  async #read(entry: QuarantineRecord, kept: Uint8Array[] | null): Promise<{ header: Part10Header | null; error: DicomParseError | null }> {
    const reader = new Part10Reader();
    let error: DicomParseError | null = null;
    const bytes = await this.#retrieve.openQuarantined(entry.id);
    try {
      for await (const raw of bytes) {
        const chunk = raw as Uint8Array;
        kept?.push(chunk);
        if (!error) error = step(() => reader.push(chunk));
        if (error && !kept) break;
      }
    } finally {
      bytes.destroy();
    }
    let header: Part10Header | null = null;
    if (!error) error = step(() => { header = reader.end(); });
    return { header, error };
  }
}

function step(fn: () => void): DicomParseError | null {
  try {
    fn();
    return null;
  } catch (error) {
    if (error instanceof DicomParseError) return error;
    throw error;
  }
}

function parseWhole(bytes: Uint8Array): Part10Header {
  const reader = new Part10Reader();
  reader.push(bytes);
  return reader.end();
}

function reasonCode(error: DicomParseError): string {
  return error.code.toLowerCase().replace(/_/g, '-');
}

async function* prepend(first: Uint8Array, rest: AsyncIterable<unknown> | Iterable<Uint8Array>): AsyncIterable<Uint8Array> {
  yield first;
  for await (const chunk of rest) yield chunk as Uint8Array;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
