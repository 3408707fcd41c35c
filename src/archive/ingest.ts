import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { Part10Reader, DicomParseError, type Part10Header } from '../dicom/part10-reader.ts';
import { toDicomJson } from '../dicom/dicom-json.ts';
import { fileMetaLength } from '../dicom/part10-writer.ts';
import type { BlobStore, BlobWriter } from '../ports/blob-store.ts';
import type { DuplicatePolicy, IndexStore, InstanceRecord, InvalidUidPolicy, QualityFinding, NewInstance, PixelDataLayout, StoreOutcome, StoredObject } from '../ports/index-store.ts';
import { transferSyntaxInfo } from '../dicom/transfer-syntax.ts';
import { sourceLabel, type Metrics } from '../observability/metrics.ts';
import { newBlobKey } from './blob-keys.ts';
import { IngestBatch, type IngestBatchOptions } from './ingest-batch.ts';
import { indexedAttributes, isRejection, tagName, type Rejection } from './instance-attributes.ts';
import { attributeDifference, isLossy, type PixelsComparer } from './same-instance.ts';

export interface IngestSource {
  /** Which transport brought the object, e.g. "import", "dimse:CT01", "stow". */
  source: string;
  /** A file name or path, kept with quarantined objects to help find the sender. */
  originalName?: string;
  /**
   * What to do with bytes that are not DICOM at all. A network peer that sends them is quarantined like any
   * malformed object; a folder import skips them (README.TXT and AUTORUN.INF on a CD are not evidence).
   */
  notDicom?: 'quarantine' | 'skip';
  /**
   * 'generated': the object was a bare data set (no File Meta) and the transport put a File Meta it made in
   * front of it (atrium import does, as DCMTK +td and pydicom force read such files); logged and recorded.
   */
  fileMeta?: 'generated';
  /**
   * What becomes of an object that would be quarantined (malformed, a conflicting duplicate): 'quarantine'
   * (default) keeps it there; 'refuse' keeps nothing and answers `rejected` with the reason: a release from
   * quarantine, whose bytes are kept in their quarantine entry already.
   */
  onFailure?: 'quarantine' | 'refuse';
}

export type IngestResult =
  | { status: 'stored'; sopInstanceUid: string; sopClassUid: string; studyInstanceUid: string; seriesInstanceUid: string; transferSyntaxUid: string; blobKey: string; sizeBytes: number; replaced?: 'versioned' | 'overwritten' }
  | { status: 'duplicate'; sopInstanceUid: string; sopClassUid: string; studyInstanceUid: string; blobKey: string; sizeBytes: number }
  | { status: 'quarantined'; quarantineId: number; sopInstanceUid: string | null; sopClassUid: string | null } & Rejection
  /** Refused, nothing kept (ingest.invalidUidPolicy "reject"). */
  | { status: 'rejected'; sopInstanceUid: string | null; sopClassUid: string | null } & Rejection
  | { status: 'skipped'; reasonCode: 'not-dicom'; reason: string };

/** An object in its blob (commit under way) with its index row ready: what remains is to index it. */
export interface ReceivedObject {
  from: IngestSource;
  blobKey: string;
  stored: StoredObject;
  /** The blob's commit, started when the last byte arrived. */
  committed: Promise<void>;
  instance: NewInstance;
}

function isReceived(value: IngestResult | ReceivedObject): value is ReceivedObject {
  return 'committed' in value;
}

/**
 * What an IndexStore may offer to index a batch in one transaction (SqlIndexStore does; the IndexStore port
 * does not require it): the outcomes in order, or a rejection when nothing was committed.
 */
export interface BatchIndexStore {
  storeInstances(inputs: NewInstance[], policy: DuplicatePolicy): Promise<StoreOutcome[]>;
}

export interface IngestOptions {
  duplicatePolicy: DuplicatePolicy;
  /** UIDs breaking PS3.5 9.1: stored with a quality finding ("flag", the default), quarantined, or refused. */
  invalidUidPolicy?: InvalidUidPolicy;
  /** Values longer than this are not held in memory while parsing (default 64 KiB). */
  bulkThreshold?: number;
}

/**
 * The one ingest pipeline behind every transport (import, C-STORE, STOW...). The bytes stream into a new
 * blob while the header is parsed; the blob is made durable before the index commit, and the result is
 * returned only after both, so a success that a caller reports is never lost. Malformed objects are kept
 * whole in quarantine with the reason; nothing already archived is touched on any failure.
 */
export class IngestService {
  readonly #index: IndexStore;
  readonly #blobs: BlobStore;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #options: IngestOptions;
  readonly #samePixels: PixelsComparer | undefined;

  /**
   * `samePixels` decodes and compares two copies' frames (the imaging service, wired by the composition root):
   * without it, a copy in another transfer syntax is told the same instance only when one copy is lossy.
   */
  constructor(deps: { index: IndexStore; blobs: BlobStore; log: Logger; metrics: Metrics; options: IngestOptions; samePixels?: PixelsComparer }) {
    this.#samePixels = deps.samePixels;
    this.#index = deps.index;
    this.#blobs = deps.blobs;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#options = deps.options;
  }

  async ingest(bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, from: IngestSource): Promise<IngestResult> {
    const stopTimer = this.#metrics.ingestSeconds.startTimer({ source: sourceLabel(from.source) });
    this.#metrics.ingestsInFlight.inc();
    try {
      const result = await this.#ingest(bytes, from);
      this.#metrics.ingested.inc({ source: sourceLabel(from.source), outcome: result.status });
      return result;
    } catch (error) {
      this.#metrics.ingested.inc({ source: sourceLabel(from.source), outcome: 'error' });
      throw error;
    } finally {
      this.#metrics.ingestsInFlight.dec();
      stopTimer();
    }
  }

  /**
   * Several objects made durable together, for a caller that answers once for all of them (STOW-RS): see
   * IngestBatch. Each object's blob is committed as soon as its bytes are in, the index takes the objects
   * in one transaction per flush, and results come from commit(): nothing may be acknowledged before.
   */
  batch(from: IngestSource, options: IngestBatchOptions = {}): IngestBatch {
    return new IngestBatch({
      receive: (bytes, part) => this.#receive(bytes, part),
      index: (objects) => this.#indexAll(objects),
      finish: (object, outcome) => this.#finish(object, outcome),
      discard: (object) => this.#blobs.delete(object.blobKey),
      metrics: this.#metrics,
    }, from, options);
  }

  async #ingest(bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, from: IngestSource): Promise<IngestResult> {
    const received = await this.#receive(bytes, from);
    if (!isReceived(received)) return received;
    await received.committed;
    let outcome;
    try {
      outcome = await this.#index.storeInstance(received.instance, this.#options.duplicatePolicy);
    } catch (error) {
      await this.#blobs.delete(received.blobKey).catch(() => {});
      throw error;
    }
    return await this.#finish(received, outcome);
  }

  /**
   * Streams an object into a new blob while hashing and parsing it. Objects that cannot be archived are
   * dealt with here (skipped, or committed to quarantine); the others come back with their blob's commit
   * under way and the index row ready, for the caller to await the commit and store the row.
   */
  async #receive(bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, from: IngestSource): Promise<IngestResult | ReceivedObject> {
    const blobKey = newBlobKey();
    const writer = await this.#blobs.createWriter(blobKey);
    let header: Part10Header | undefined;
    let parseError: DicomParseError | undefined;
    let sha256: string;
    let datasetSha256: string;
    try {
      const hash = createHash('sha256');
      const datasetHash = new DatasetHash();
      const reader = new Part10Reader({ bulkThreshold: this.#options.bulkThreshold });
      for await (const chunk of bytes) {
        hash.update(chunk);
        datasetHash.update(chunk);
        // After a parse error the rest is still written, so that quarantine keeps the object whole.
        if (!parseError) parseError = feed(() => reader.push(chunk));
        await writer.write(chunk);
      }
      if (!parseError) parseError = feed(() => { header = reader.end(); });
      sha256 = hash.digest('hex');
      datasetSha256 = datasetHash.digest();
      this.#metrics.ingestedBytes.inc({ source: sourceLabel(from.source) }, writer.bytesWritten);
    } catch (error) {
      // The sender or the disk failed mid-object: nothing was acknowledged, nothing is kept.
      await writer.abort().catch(() => {});
      throw error;
    }
    const stored: StoredObject = { blobKey, sizeBytes: writer.bytesWritten, sha256 };

    if (parseError || !header) {
      const e = parseError!;
      if (e.code === 'NOT_DICOM' && from.notDicom === 'skip') {
        await writer.abort();
        return { status: 'skipped', reasonCode: 'not-dicom', reason: e.message };
      }
      return await this.#quarantine(writer, stored, from, {
        reasonCode: e.code.toLowerCase().replace(/_/g, '-'), reason: e.message, element: e.tag === undefined ? null : tagName(e.tag), byteOffset: e.offset,
      }, null, null);
    }
    const attributes = indexedAttributes(header, { invalidUidPolicy: this.#options.invalidUidPolicy });
    if (isRejection(attributes)) {
      if (attributes.disposition === 'reject') {
        await writer.abort();
        const { disposition: _, ...rejection } = attributes;
        this.#log.warn({ source: from.source, file: from.originalName, reasonCode: rejection.reasonCode, element: rejection.element }, `refused: ${rejection.reason}`);
        return { status: 'rejected', sopInstanceUid: null, sopClassUid: null, ...rejection };
      }
      return await this.#quarantine(writer, stored, from, attributes, null, null);
    }
    if (from.fileMeta === 'generated') {
      attributes.findings.push({ code: 'generated-file-meta', element: null,
        detail: `received as a bare data set without File Meta Information (PS3.10 7.1); stored after a File Meta generated for it (transfer syntax ${header.transferSyntaxUID}, told from the encoding)` });
    }
    for (const finding of attributes.findings) {
      this.#log.warn({ sopInstanceUid: attributes.instance.sopInstanceUid, studyInstanceUid: attributes.study.studyInstanceUid, source: from.source, code: finding.code, element: finding.element }, `quality finding: ${finding.detail}`);
    }

    // The metadata is built while the blob is being made durable (the fsyncs wait on the disk, not the CPU).
    const committed = writer.commit();
    committed.catch(() => {}); // awaited by the caller; this only keeps an early throw from leaving it unhandled
    const metadataJson = JSON.stringify(toDicomJson(header.dataset, {
      characterSet: attributes.characterSet,
      // Every binary value, however small, is left in the blob: the metadata is text a viewer loads for a
      // whole study at once. DICOMweb resolves these relative URIs against the instance's URL.
      inlineBinaryMax: 0,
      bulkDataUri: (tagPath: number[]) => `bulkdata/${tagPath.map((t: number) => t.toString(16).toUpperCase().padStart(8, '0')).join('/')}`,
    }));
    return {
      from, blobKey, stored, committed,
      instance: {
        ...attributes, ...stored, datasetSha256, metadataJson, pixelData: pixelDataLayout(header), source: from.source, receivedAt: new Date().toISOString(),
      },
    };
  }

  /** One index transaction for a batch when the store offers it (SqlIndexStore does), else one per object. */
  async #indexAll(objects: ReceivedObject[]): Promise<(StoreOutcome | Error)[]> {
    const policy = this.#options.duplicatePolicy;
    const batchIndex = this.#index as IndexStore & Partial<BatchIndexStore>;
    if (objects.length > 1 && typeof batchIndex.storeInstances === 'function') {
      try {
        return await batchIndex.storeInstances(objects.map((o) => o.instance), policy);
      } catch {
        // Nothing of the batch was committed: each object is tried alone, and fails alone.
      }
    }
    const outcomes: (StoreOutcome | Error)[] = [];
    for (const object of objects) {
      outcomes.push(await this.#index.storeInstance(object.instance, policy).catch((error: unknown) => error instanceof Error ? error : new Error(String(error))));
    }
    return outcomes;
  }

  /** What the index said about a received object, turned into the ingest result (and the blobs tidied). */
  async #finish(object: ReceivedObject, outcome: StoreOutcome, conflictDetail?: string): Promise<IngestResult> {
    const { from, blobKey, stored, instance } = object;
    const { sopInstanceUid, sopClassUid, transferSyntaxUid } = instance.instance;
    const ids = { sopInstanceUid, sopClassUid, studyInstanceUid: instance.study.studyInstanceUid };
    const seriesInstanceUid = instance.series.seriesInstanceUid;
    switch (outcome.kind) {
      case 'stored':
        if (from.fileMeta === 'generated') this.#log.info({ ...ids, blobKey, source: from.source, file: from.originalName }, 'bare data set stored with a generated File Meta');
        else this.#log.debug({ ...ids, blobKey, source: from.source }, 'instance stored');
        return { status: 'stored', ...ids, seriesInstanceUid, transferSyntaxUid, ...stored };
      case 'identical':
        // Its own row: a batch retried one by one after a commit whose outcome was unknown. Keep the blob.
        if (outcome.existing.blobKey === blobKey) return { status: 'stored', ...ids, seriesInstanceUid, transferSyntaxUid, ...stored };
        await this.#blobs.delete(blobKey);
        this.#log.info({ ...ids, source: from.source }, 'duplicate instance with identical bytes: kept the stored copy');
        return { status: 'duplicate', ...ids, blobKey: outcome.existing.blobKey, sizeBytes: outcome.existing.sizeBytes };
      case 'conflict': {
        if (from.onFailure === 'refuse') {
          await this.#blobs.delete(blobKey);
          return { status: 'rejected', sopInstanceUid, sopClassUid, reasonCode: 'duplicate-conflict',
            reason: `SOP Instance UID ${sopInstanceUid} is already stored with different content (sha256 ${outcome.existing.sha256.slice(0, 12)}...${conflictDetail ? `; ${conflictDetail}` : ''}); policy "${this.#options.duplicatePolicy}" keeps the stored one`,
            element: tagName(0x00080018), byteOffset: null };
        }
        const quarantineId = await this.#index.quarantine({
          ...stored, source: from.source, reasonCode: 'duplicate-conflict',
          reason: `SOP Instance UID ${sopInstanceUid} is already stored with different content (sha256 ${outcome.existing.sha256.slice(0, 12)}...${conflictDetail ? `; ${conflictDetail}` : ''}); policy "reject" keeps the stored one`,
          element: tagName(0x00080018), byteOffset: null, sopInstanceUid, originalName: from.originalName ?? null, receivedAt: new Date().toISOString(),
        });
        this.#log.warn({ ...ids, source: from.source, quarantineId }, 'conflicting duplicate rejected and quarantined');
        return { status: 'quarantined', quarantineId, sopInstanceUid, sopClassUid, reasonCode: 'duplicate-conflict',
          reason: `SOP Instance UID ${sopInstanceUid} is already stored with different content`, element: tagName(0x00080018), byteOffset: null };
      }
      case 'other-transfer-syntax':
        return await this.#otherTransferSyntax(object, outcome.existing.transferSyntaxUid);
      case 'versioned':
        this.#log.info({ ...ids, previous: outcome.previous.blobKey }, 'new version stored; the previous one is kept as history');
        return { status: 'stored', ...ids, seriesInstanceUid, transferSyntaxUid, ...stored, replaced: 'versioned' };
      case 'overwritten':
        await this.#blobs.delete(outcome.replaced.blobKey).catch((error) =>
          this.#log.warn({ err: error, blobKey: outcome.replaced.blobKey }, 'could not delete the overwritten blob; verify will report it as unreferenced'));
        this.#log.info({ ...ids }, 'instance overwritten by new content');
        return { status: 'stored', ...ids, seriesInstanceUid, transferSyntaxUid, ...stored, replaced: 'overwritten' };
    }
  }

  /**
   * The SOP Instance is stored in another transfer syntax with another data set. The same instance when the
   * attributes agree (apart from the transfer-syntax-dependent ones) and, both copies lossless, the decoded
   * pixels too: the received copy is dropped (an idempotent success). With one copy lossy, the lossless one is
   * kept (replacing a stored lossy copy, as history under the "version" policy). Each is recorded as a quality
   * finding on the study and logged; anything else is a real conflict for the duplicate policy.
   */
  async #otherTransferSyntax(object: ReceivedObject, storedSyntax: string): Promise<IngestResult> {
    const { instance, stored, from } = object;
    const sop = instance.instance.sopInstanceUid;
    const received = instance.instance.transferSyntaxUid;
    const ids = { sopInstanceUid: sop, studyInstanceUid: instance.study.studyInstanceUid, source: from.source };
    const again = async (mode: 'replace' | 'policy', detail: string, finding?: QualityFinding): Promise<IngestResult> => {
      const next = { ...instance, otherTransferSyntax: mode, findings: [...(instance.findings ?? []), ...(finding ? [finding] : [])] };
      if (mode === 'policy') this.#log.warn({ ...ids, storedSyntax, received }, `same SOP Instance in another transfer syntax is a real conflict: ${detail}`);
      const outcome = await this.#index.storeInstance(next, this.#options.duplicatePolicy);
      return await this.#finish({ ...object, instance: next }, outcome, mode === 'policy' ? detail : undefined);
    };
    const existing = await this.#index.findInstance(sop);
    const existingMetadata = existing ? await this.#index.instanceMetadata(sop) : null;
    if (!existing || !existingMetadata) return await again('policy', 'the stored copy went away meanwhile');
    const copies = `stored in ${existing.transferSyntaxUid}, received in ${received} from ${from.source}`;
    const metadata = JSON.parse(instance.metadataJson) as unknown;
    const difference = attributeDifference(existingMetadata, metadata);
    if (difference) return await again('policy', `other attributes (${difference})`);

    const lossyStored = isLossy(existing.transferSyntaxUid, existingMetadata);
    const lossyReceived = isLossy(received, metadata);
    if (lossyReceived && !lossyStored) {
      return await this.#dropCopy(object, existing, { code: 'lossy-copy-dropped', element: null,
        detail: `the same instance again, lossy (${copies}): the stored lossless copy is kept` });
    }
    if (lossyStored && !lossyReceived) {
      const finding = { code: 'lossless-copy-replaced-lossy', element: null,
        detail: `the same instance again, lossless (${copies}): it replaces the stored lossy copy${this.#options.duplicatePolicy === 'version' ? ', kept as history' : ''}` };
      this.#log.info({ ...ids, storedSyntax, received }, finding.detail);
      return await again('replace', finding.detail, finding);
    }
    if (lossyStored && lossyReceived) return await again('policy', 'two lossy copies: their pixels cannot be told the same');
    if (!this.#samePixels) return await again('policy', 'pixels cannot be compared here');
    const record: InstanceRecord = {
      pk: 0, ...instance.instance, ...stored, studyInstanceUid: instance.study.studyInstanceUid, seriesInstanceUid: instance.series.seriesInstanceUid,
      source: from.source, receivedAt: instance.receivedAt,
    };
    const pixels = await this.#samePixels(
      { record: existing, metadata: existingMetadata, pixelData: await this.#index.pixelDataLayout(sop) },
      { record, metadata, pixelData: instance.pixelData });
    if (pixels.result !== 'same') return await again('policy', `${pixels.result === 'different' ? 'other pixels' : 'pixels not comparable'} (${pixels.detail})`);
    return await this.#dropCopy(object, existing, { code: 'same-instance-other-transfer-syntax', element: null,
      detail: `the same instance again (${copies}): same attributes and, decoded, the same pixels (${pixels.frames} frames); the stored copy is kept` });
  }

  /** The received copy is the stored instance again: dropped, recorded, and a success for the sender. */
  async #dropCopy(object: ReceivedObject, existing: InstanceRecord, finding: QualityFinding): Promise<IngestResult> {
    const { instance, from, blobKey } = object;
    await this.#blobs.delete(blobKey);
    await this.#index.recordFindings([{ ...finding, studyInstanceUid: existing.studyInstanceUid, seriesInstanceUid: existing.seriesInstanceUid,
      sopInstanceUid: existing.sopInstanceUid, source: from.source, recordedAt: new Date().toISOString() }]);
    this.#log.info({ sopInstanceUid: existing.sopInstanceUid, studyInstanceUid: existing.studyInstanceUid, source: from.source, code: finding.code }, finding.detail);
    return { status: 'duplicate', sopInstanceUid: existing.sopInstanceUid, sopClassUid: instance.instance.sopClassUid, studyInstanceUid: existing.studyInstanceUid,
      blobKey: existing.blobKey, sizeBytes: existing.sizeBytes };
  }

  async #quarantine(writer: BlobWriter, stored: StoredObject, from: IngestSource, rejection: Rejection,
    sopInstanceUid: string | null, sopClassUid: string | null): Promise<IngestResult> {
    if (from.onFailure === 'refuse') {
      await writer.abort();
      const { disposition: _, ...reason } = rejection;
      return { status: 'rejected', sopInstanceUid, sopClassUid, ...reason };
    }
    await writer.commit();
    const quarantineId = await this.#index.quarantine({
      ...stored, ...rejection, source: from.source, sopInstanceUid, originalName: from.originalName ?? null, receivedAt: new Date().toISOString(),
    });
    this.#log.warn({ quarantineId, source: from.source, file: from.originalName, reasonCode: rejection.reasonCode, element: rejection.element, byteOffset: rejection.byteOffset },
      `quarantined: ${rejection.reason}`);
    return { status: 'quarantined', quarantineId, sopInstanceUid, sopClassUid, ...rejection };
  }
}

/**
 * SHA-256 of what follows the File Meta Information, found from the first bytes as they stream by. Objects
 * without a (parsable) meta are quarantined anyway; their data set hash is that of the whole stream.
 */
class DatasetHash {
  readonly #hash = createHash('sha256');
  #head: Uint8Array | undefined = new Uint8Array(0);
  #skip = 0;

  update(chunk: Uint8Array): void {
    if (this.#head) {
      const joined = Buffer.concat([this.#head, chunk]);
      let length: number | undefined;
      try {
        length = fileMetaLength(joined);
      } catch {
        length = 0;
      }
      if (length === undefined && joined.length < 64 * 1024) {
        this.#head = joined;
        return;
      }
      this.#head = undefined;
      this.#skip = length ?? 0;
      chunk = joined;
    }
    if (this.#skip >= chunk.length) {
      this.#skip -= chunk.length;
      return;
    }
    this.#hash.update(this.#skip > 0 ? chunk.subarray(this.#skip) : chunk);
    this.#skip = 0;
  }

  digest(): string {
    if (this.#head) {
      this.#hash.update(this.#head);
      this.#head = undefined;
    }
    return this.#hash.digest('hex');
  }
}

const PIXEL_DATA_TAGS = new Set([0x7fe00010, 0x7fe00008, 0x7fe00009]); // Pixel Data, Float, Double Float

function pixelDataLayout(header: Part10Header): PixelDataLayout | null {
  if (transferSyntaxInfo(header.transferSyntaxUID).deflated) return null;
  const el = header.dataset.elements.find((e) => PIXEL_DATA_TAGS.has(e.tag));
  if (!el) return null;
  const layout: PixelDataLayout = { tag: el.tag, vr: el.vr, offset: el.offset, length: el.length };
  if (el.encapsulated) {
    layout.fragments = el.encapsulated.fragments.map((f) => [f.offset, f.length]);
    const table = el.encapsulated.basicOffsetTable;
    if (table.length >= 4) {
      const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
      layout.basicOffsetTable = Array.from({ length: table.length >> 2 }, (_, i) => view.getUint32(i * 4, true));
    }
  }
  return layout;
}

function feed(step: () => void): DicomParseError | undefined {
  try {
    step();
    return undefined;
  } catch (error) {
    if (error instanceof DicomParseError) return error;
    throw error;
  }
}
