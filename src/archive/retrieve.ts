import type { Readable } from 'node:stream';
import type { BlobStore } from '../ports/blob-store.ts';
import type { IndexStore, InstanceRecord } from '../ports/index-store.ts';
import { AtriumError } from '../errors.ts';

/** Reading stored objects back, exactly as they were received. */
export class RetrieveService {
  readonly #index: IndexStore;
  readonly #blobs: BlobStore;

  constructor(deps: { index: IndexStore; blobs: BlobStore }) {
    this.#index = deps.index;
    this.#blobs = deps.blobs;
  }

  async openInstance(sopInstanceUid: string): Promise<{ instance: InstanceRecord; bytes: Readable }> {
    const instance = await this.#index.findInstance(sopInstanceUid);
    if (!instance) throw new AtriumError('not-found', `no instance with SOP Instance UID ${sopInstanceUid}`);
    return { instance, bytes: await this.#blobs.read(instance.blobKey) };
  }

  async openQuarantined(id: number): Promise<Readable> {
    const entry = await this.#index.getQuarantined(id);
    if (!entry) throw new AtriumError('not-found', `no quarantined object ${id}`);
    return await this.#blobs.read(entry.blobKey);
  }
}
