import type { Logger } from 'pino';
import type { BlobStore } from '../ports/blob-store.ts';
import type { IndexStore } from '../ports/index-store.ts';
import { AtriumError } from '../errors.ts';

export type DeletionLevel = 'study' | 'series' | 'instance';

/**
 * Deletes from the index first, then the blobs: a crash in between leaves unreferenced blobs (which
 * `atrium verify` reports and removes with --repair), never an index row whose bytes are gone.
 */
export class DeletionService {
  readonly #index: IndexStore;
  readonly #blobs: BlobStore;
  readonly #log: Logger;

  constructor(deps: { index: IndexStore; blobs: BlobStore; log: Logger }) {
    this.#index = deps.index;
    this.#blobs = deps.blobs;
    this.#log = deps.log;
  }

  async delete(level: DeletionLevel, uid: string): Promise<{ deletedObjects: number }> {
    const keys = level === 'study' ? await this.#index.deleteStudy(uid)
      : level === 'series' ? await this.#index.deleteSeries(uid)
      : await this.#index.deleteInstance(uid);
    if (keys === null) throw new AtriumError('not-found', `no ${level} with UID ${uid}`);
    for (const key of keys) {
      await this.#blobs.delete(key).catch((error) => this.#log.warn({ err: error, blobKey: key }, 'blob left after delete; verify --repair removes it'));
    }
    this.#log.info({ level, uid, objects: keys.length }, `${level} deleted`);
    return { deletedObjects: keys.length };
  }
}
