/**
 * A few buffers lent out for socket writes and taken back on each write's callback: bytes read from a blob
 * and sent on a socket go through them, so nothing is allocated per chunk. A fresh Buffer per 64 KiB chunk,
 * at hundreds of MB/s, kept V8 in back-to-back full collections (a mark-compact every ~11 MB, 20 to 30% of
 * the event loop in WADO-RS and C-MOVE; see dicomweb/multipart-writer.ts and dimse/association.ts).
 */
export class ReusableBuffers {
  readonly #size: number;
  readonly #count: number;
  readonly #free: Uint8Array[] = [];
  #allocated = 0;
  #waiting: (() => void)[] = [];
  #closed = false;

  constructor(size: number, count = 4) {
    this.#size = size;
    this.#count = count;
  }

  /** A buffer of `size` bytes, once one is free; rejects after close(). */
  async take(): Promise<Uint8Array> {
    for (;;) {
      if (this.#closed) throw new Error('the buffers were released: the transfer ended');
      const free = this.#free.pop();
      if (free) return free;
      if (this.#allocated < this.#count) {
        this.#allocated++;
        return new Uint8Array(this.#size);
      }
      // Every buffer is being written: the first write callback brings one back.
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  giveBack(buffer: Uint8Array): void {
    this.#free.push(buffer);
    this.#waiting.shift()?.();
  }

  /** Wakes whoever waits for a buffer, to fail: the socket is gone and its callbacks may never come. */
  close(): void {
    this.#closed = true;
    for (const wake of this.#waiting.splice(0)) wake();
  }
}
