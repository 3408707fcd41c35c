// A FIFO of pushed chunks that tracks the absolute stream position of its first byte. Bytes are copied only
// when a caller asks for them; skipped bytes are dropped without being copied.

const CONSUMED = new Uint8Array(0);

export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private first = 0; // index of the first live chunk (avoids O(n) shift() when fed tiny chunks)
  private head = 0; // bytes of chunks[first] already consumed
  /** Number of buffered bytes. */
  length = 0;
  /** Absolute stream offset of the next unread byte. */
  position: number;

  constructor(position = 0) {
    this.position = position;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The next `n` bytes without consuming them, or undefined if fewer are buffered. */
  peek(n: number): Uint8Array | undefined {
    if (this.length < n) return undefined;
    const first = this.chunks[this.first];
    if (first && first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    return this.copy(n);
  }

  /** Consumes and returns a copy of the next `n` bytes, or undefined if fewer are buffered. */
  read(n: number): Uint8Array | undefined {
    if (this.length < n) return undefined;
    const out = this.copy(n);
    this.skip(n);
    return out;
  }

  /** Drops up to `n` bytes; returns how many were dropped. */
  skip(n: number): number {
    let left = Math.min(n, this.length);
    const dropped = left;
    while (left > 0) {
      const first = this.chunks[this.first];
      const avail = first.length - this.head;
      if (avail <= left) {
        // Drop the reference at once: a multi-GB bulk value streams through here chunk by chunk, and a
        // consumed chunk must become garbage before the next arrives, not at the next compaction.
        this.chunks[this.first] = CONSUMED;
        this.first++;
        this.head = 0;
        left -= avail;
      } else {
        this.head += left;
        left = 0;
      }
    }
    this.length -= dropped;
    this.position += dropped;
    if (this.first > 64 && this.first * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
    return dropped;
  }

  /** Removes and returns every buffered byte (as chunk views, no copy). */
  drain(): Uint8Array[] {
    const out = this.chunks.slice(this.first).map((c, i) => (i === 0 ? c.subarray(this.head) : c));
    this.position += this.length;
    this.chunks = [];
    this.first = 0;
    this.head = 0;
    this.length = 0;
    return out;
  }

  private copy(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    for (let i = this.first; filled < n; i++) {
      const c = i === this.first ? this.chunks[i].subarray(this.head) : this.chunks[i];
      const take = Math.min(c.length, n - filled);
      out.set(c.subarray(0, take), filled);
      filled += take;
    }
    return out;
  }
}
