import { Readable } from 'node:stream';
import { attributeChanges, correctedStream } from '../dicom/corrected-stream.ts';
import { fileMetaLength } from '../dicom/part10-writer.ts';
import type { BlobStore, ByteRange, PositionalSource } from '../ports/blob-store.ts';
import { readFully } from '../io/reusable-buffers.ts';
import type { IndexStore, InstanceRecord } from '../ports/index-store.ts';
import type { InstanceRef, StoredBytes, StoredInstanceReader } from '../ports/stored-instance-reader.ts';
import type { ServedCorrection, ServedCorrections } from '../ports/served-corrections.ts';
import { AtriumError } from '../errors.ts';

/** Enough for any File Meta Information we store (ours are a few hundred bytes). */
const META_HEAD_BYTES = 64 * 1024;

/**
 * Reading stored objects back, exactly as they were received: the one read path of stored bytes. Every
 * transport reads instances here (WADO-RS, WADO-URI, rendered and thumbnails through imaging/, C-MOVE and
 * C-GET, admin downloads), by instance, never by blob key, so that where the bytes come from (a storage
 * tier) and what is done to them on the way out is decided in one place.
 */
export class RetrieveService implements StoredInstanceReader {
  readonly #index: IndexStore;
  readonly #blobs: BlobStore;
  readonly #corrections: ServedCorrections | undefined;
  readonly #modifyingSystem: string;

  /**
   * `corrections`: the identity corrections to serve (docs/corrections.md). Whole objects (openInstance,
   * readInstance without a range, openInstanceBytes without pieces, openDataset) of a corrected study or series
   * carry the corrected values and an Original Attributes Sequence item with the stored ones, spliced in while
   * streaming; ranges and pieces (frames, bulk data) are the stored bytes, which a correction never touches.
   */
  constructor(deps: { index: IndexStore; blobs: BlobStore; corrections?: ServedCorrections; modifyingSystem?: string }) {
    this.#index = deps.index;
    this.#blobs = deps.blobs;
    this.#corrections = deps.corrections;
    this.#modifyingSystem = deps.modifyingSystem ?? 'ATRIUM';
  }

  /** The correction served for this instance, null when it is served as stored. */
  async correctionOf(ref: InstanceRef): Promise<ServedCorrection | null> {
    if (!this.#corrections) return null;
    return await this.#corrections.correctionOf(typeof ref === 'string' ? await this.#find(ref) : ref);
  }

  /**
   * `bytes` (the whole object as stored, or a transcoding of it) as served: with the instance's correction applied,
   * if it has one. Nothing but the head is held in memory.
   */
  async applyCorrection(ref: InstanceRef, bytes: AsyncIterable<Uint8Array>, correction?: ServedCorrection | null): Promise<AsyncIterable<Uint8Array>> {
    const served = correction === undefined ? await this.correctionOf(ref) : correction;
    if (!served) return bytes;
    const changes = attributeChanges(Object.fromEntries(served.attributes.map((a) => [a.tag, a.value])));
    return correctedStream(bytes, changes, { modifyingSystem: this.#modifyingSystem, at: new Date(served.correctedAt), reason: 'CORRECT' });
  }

  async openInstance(sopInstanceUid: string): Promise<{ instance: InstanceRecord; bytes: Readable }> {
    const instance = await this.#find(sopInstanceUid);
    const correction = await this.correctionOf(instance);
    const stored = await this.#blobs.read(instance.blobKey);
    return { instance, bytes: correction ? Readable.from(await this.applyCorrection(instance, stored, correction), { objectMode: false }) : stored };
  }

  async readInstance(ref: InstanceRef, range?: ByteRange): Promise<Readable> {
    if (range || !this.#corrections) return await this.#blobs.read(await this.#keyOf(ref), range);
    const instance = typeof ref === 'string' ? await this.#find(ref) : ref;
    const correction = await this.correctionOf(instance);
    const stored = await this.#blobs.read(instance.blobKey);
    return correction ? Readable.from(await this.applyCorrection(instance, stored, correction), { objectMode: false }) : stored;
  }

  async *readInstancePieces(ref: InstanceRef, pieces: [number, number][]): AsyncIterable<Uint8Array> {
    const key = await this.#keyOf(ref);
    for (const [offset, length] of pieces) {
      if (length === 0) continue;
      for await (const chunk of await this.#blobs.read(key, { start: offset, end: offset + length })) yield chunk as Uint8Array;
    }
  }

  async openInstanceBytes(ref: InstanceRef, pieces?: [number, number][]): Promise<StoredBytes> {
    if (!pieces && this.#corrections) {
      const instance = typeof ref === 'string' ? await this.#find(ref) : ref;
      const correction = await this.correctionOf(instance);
      if (correction) return await this.applyCorrection(instance, await this.#blobs.read(instance.blobKey), correction);
    }
    if (this.#blobs.openReader) return { reader: await this.#blobs.openReader(await this.#keyOf(ref)), pieces };
    if (pieces) return this.readInstancePieces(typeof ref === 'string' ? await this.#find(ref) : ref, pieces);
    return await this.readInstance(ref);
  }

  async #find(sopInstanceUid: string): Promise<InstanceRecord> {
    const instance = await this.#index.findInstance(sopInstanceUid);
    if (!instance) throw new AtriumError('not-found', `no instance with SOP Instance UID ${sopInstanceUid}`);
    return instance;
  }

  async #keyOf(ref: InstanceRef): Promise<string> {
    return (typeof ref === 'string' ? await this.#find(ref) : ref).blobKey;
  }

  /**
   * The data set of a stored instance without its File Meta Information, as DIMSE sends it (PS3.7 6.3.1:
   * a C-STORE carries the bare data set in the presentation context's transfer syntax). The meta's own
   * group length tells where the data set starts, so nothing but the first bytes is parsed.
   */
  async openDataset(sopInstanceUid: string): Promise<{ instance: InstanceRecord; dataset: AsyncIterable<Uint8Array> | PositionalSource }> {
    const instance = await this.#find(sopInstanceUid);
    const correction = await this.correctionOf(instance);
    if (correction) return { instance, dataset: skipFileMeta(await this.applyCorrection(instance, await this.#blobs.read(instance.blobKey), correction)) };
    if (!this.#blobs.openReader) return { instance, dataset: skipFileMeta(await this.#blobs.read(instance.blobKey)) };
    // Read by position where the store can (no buffer allocated per chunk): the meta's length from its head.
    const reader = await this.#blobs.openReader(instance.blobKey);
    try {
      const head = new Uint8Array(Math.min(reader.size, META_HEAD_BYTES));
      const metaLength = fileMetaLength(head.subarray(0, await readFully(reader, head, 0)));
      if (metaLength === undefined) throw new AtriumError('internal', `the stored object of ${sopInstanceUid} has no readable File Meta Information`);
      return { instance, dataset: { reader, pieces: [[metaLength, reader.size - metaLength]] } };
    } catch (error) {
      await reader.close();
      throw error;
    }
  }

  async openQuarantined(id: number): Promise<Readable> {
    const entry = await this.#index.getQuarantined(id);
    if (!entry) throw new AtriumError('not-found', `no quarantined object ${id}`);
    return await this.#blobs.read(entry.blobKey);
  }
}

/** The data set of a Part-10 stream: its bytes after the File Meta Information (the C-STORE payload). */
export async function* skipFileMeta(bytes: AsyncIterable<unknown>): AsyncIterable<Uint8Array> {
  let head = new Uint8Array(0);
  let skip: number | undefined;
  for await (const raw of bytes) {
    let chunk = raw as Uint8Array;
    if (skip === undefined) {
      const joined = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      skip = fileMetaLength(joined);
      if (skip === undefined) {
        head = joined;
        continue;
      }
      chunk = joined;
    }
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    yield skip > 0 ? chunk.subarray(skip) : chunk;
    skip = 0;
  }
}
