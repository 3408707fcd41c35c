import type { BlobWriter } from '../../ports/blob-store.ts';

/** What write() returns when the engine took the chunk at once. */
const TAKEN: Promise<void> = Promise.resolve();

type BlobWriterState = 'open' | 'committing' | 'committed' | 'aborted' | 'failed';

/**
 * The life of a blob writer, whatever engine stores the bytes: write until commit or abort, commit once,
 * abort after anything. Engines plug in three steps and keep only their storage code, so that a misused or
 * failing writer behaves the same on a folder and on a bucket (blob-store.contract.ts checks both):
 *
 * - chunks reach `put` one at a time, in the order write() was called, even when callers do not await each
 *   write (a chunk passed to write() before commit() is part of the object);
 * - the first failure of `put` or `finalize` fails the writer: later writes are refused, commit() rejects
 *   with that failure, and whatever was written is discarded at once (a failed write is discarded by abort());
 * - commit() runs `finalize` once, after every accepted chunk; calling it again returns the same promise;
 * - abort() is a no-op once committed, waits for a commit under way to decide, and runs `discard` at most
 *   once however often it is called (again only when discarding itself failed).
 */
export abstract class BlobWriterBase implements BlobWriter {
  #state: BlobWriterState = 'open';
  #bytesWritten = 0;
  /** Settles after the last accepted chunk's put; never rejects (failures are kept in #failure). */
  #tail: Promise<void> = TAKEN;
  /** Accepted chunks whose put has not settled yet. */
  #queued = 0;
  /** Boxed: an engine may reject with any value, undefined included. */
  #failure: { error: unknown } | undefined;
  #commit: Promise<void> | undefined;
  #discard: Promise<void> | undefined;

  /**
   * Takes the next chunk; resolves when the engine can take more (backpressure), or returns undefined when
   * it took the chunk at once. It may keep the chunk until `finalize` (the caller does not modify it). Never
   * runs concurrently with itself or the other steps.
   */
  protected abstract put(chunk: Uint8Array): Promise<void> | undefined;
  /** Stores what `put` kept and makes the object visible under its key and durable. Called at most once. */
  protected abstract finalize(): Promise<void>;
  /**
   * Removes whatever the writer stored (temp file, multipart upload; the object itself when `finalize`
   * failed after making it visible). Called after `put` and `finalize` have settled.
   */
  protected abstract discard(): Promise<void>;

  /** Bytes accepted by write() so far; the object's size once commit() resolves. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== 'open') return Promise.reject(this.#refusal('write'));
    this.#bytesWritten += chunk.byteLength;
    if (this.#queued === 0) {
      // Nothing ahead of this chunk, the usual case (callers await each write): hand it over now rather
      // than a microtask later, as every 16 KiB PDU fragment of a C-STORE is a write of its own.
      let putting: Promise<void> | undefined;
      try {
        putting = this.put(chunk);
      } catch (error) {
        this.#fail(error);
        return Promise.reject(error);
      }
      return putting === undefined ? TAKEN : this.#follow(putting);
    }
    return this.#follow(this.#tail.then(() => {
      // Chunks queued behind a failed write or an abort are not stored.
      if (this.#failure !== undefined || this.#state === 'aborted') throw this.#refusal('write');
      return this.put(chunk);
    }));
  }

  /** Makes `putting` the one that later chunks, commit and abort wait for. */
  #follow(putting: Promise<void>): Promise<void> {
    this.#queued++;
    this.#tail = putting.then(
      () => { this.#queued--; },
      (error: unknown) => {
        this.#queued--;
        this.#fail(error);
      },
    );
    return putting;
  }

  #fail(error: unknown): void {
    if (this.#failure !== undefined || this.#state === 'aborted') return;
    this.#failure = { error };
    if (this.#state === 'open') this.#state = 'failed';
  }

  commit(): Promise<void> {
    this.#commit ??= this.#commitOnce();
    return this.#commit;
  }

  async #commitOnce(): Promise<void> {
    if (this.#state !== 'open') throw this.#failure ? this.#failure.error : this.#refusal('commit');
    this.#state = 'committing';
    try {
      await this.#tail;
      if (this.#failure !== undefined) throw this.#failure.error;
      await this.finalize();
      this.#state = 'committed';
    } catch (error) {
      this.#failure ??= { error };
      this.#state = 'failed';
      // The commit's own failure is what the caller needs; a discard that failed too is retried by abort().
      await this.#discardOnce().catch(() => {});
      throw error;
    }
  }

  async abort(): Promise<void> {
    if (this.#state === 'committing') await this.#commit!.catch(() => {});
    if (this.#state === 'committed') return;
    this.#state = 'aborted';
    await this.#tail;
    await this.#discardOnce();
  }

  #discardOnce(): Promise<void> {
    this.#discard ??= this.discard().catch((error: unknown) => {
      this.#discard = undefined;
      throw error;
    });
    return this.#discard;
  }

  #refusal(operation: 'write' | 'commit'): Error {
    return new Error(`cannot ${operation}: blob writer is ${this.#state}`, this.#failure ? { cause: this.#failure.error } : undefined);
  }
}
