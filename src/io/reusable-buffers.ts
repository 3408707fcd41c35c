import type { BlobReader, PositionalSource } from '../ports/blob-store.ts';

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

/**
 * Reads `into` full from `position` (several reads when the store returns fewer bytes); fewer bytes only at
 * the end of the object. Resolves with how many were read.
 */
export async function readFully(reader: BlobReader, into: Uint8Array, position: number): Promise<number> {
  let n = 0;
  for (let r = -1; n < into.length && r !== 0; n += r) r = await reader.read(into.subarray(n), position + n);
  return n;
}

/**
 * The bytes of a positional source read into `buffers`, in order: each chunk fills a buffer (a piece's last
 * may be shorter), and its consumer gives the buffer back (buffers.giveBack) once the socket has written it.
 * The reader is closed at the end, or when the consumer stops; an object shorter than its pieces throws.
 */
export async function* positionalChunks(source: PositionalSource, buffers: ReusableBuffers): AsyncGenerator<{ buffer: Uint8Array; length: number; last: boolean }> {
  const { reader } = source;
  const pieces = source.pieces ?? [[0, reader.size]];
  const total = pieces.reduce((sum, [, length]) => sum + length, 0);
  let read = 0;
  try {
    for (const [offset, length] of pieces) {
      for (let done = 0; done < length;) {
        const buffer = await buffers.take();
        const want = Math.min(buffer.length, length - done);
        const n = await readFully(reader, buffer.subarray(0, want), offset + done);
        if (n < want) {
          buffers.giveBack(buffer);
          throw new Error(`the stored object ended ${length - done - n} bytes early (at ${offset + done + n})`);
        }
        done += n;
        read += n;
        yield { buffer, length: n, last: read === total };
      }
    }
  } finally {
    await reader.close();
  }
}
