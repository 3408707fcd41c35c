/**
 * The message streams of an association (association.ts): the data set of a request handed to its
 * consumer with back-pressure (DatasetSink), the small data set of a response collected whole
 * (Collector), and the responses to one of our requests as they arrive (ResponseQueue). Apart from the
 * state machine so that each can be read and tested on its own.
 */
import type { CloseReason, DimseResponse, IncomingDataset } from './association.ts';
import { statusCategory } from './status.ts';

/** The association ended (or was never usable) while an operation was under way. */
export class DimseError extends Error {
  readonly reason: CloseReason | 'protocol';
  constructor(message: string, reason: CloseReason | 'protocol') {
    super(message);
    this.name = 'DimseError';
    this.reason = reason;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Received data sets

export class DatasetSink implements IncomingDataset {
  buffered = 0;
  maxBuffered = 0;
  received = 0;
  private readonly queue: Uint8Array[] = [];
  private ended = false;
  private error: Error | undefined;
  private discarding = false;
  /** Iteration has started. */
  iterating = false;
  private readerWake: (() => void) | undefined;
  private writerWake: (() => void) | undefined;
  private readonly highWater: number;
  private doneResolve!: () => void;
  /** Resolves when the consumer has taken everything (or discarded, or the association ended). */
  readonly consumed: Promise<void>;
  private endResolve!: () => void;
  private readonly endReached: Promise<void>;

  constructor(highWater: number) {
    this.highWater = highWater;
    this.consumed = new Promise((r) => { this.doneResolve = r; });
    this.endReached = new Promise((r) => { this.endResolve = r; });
  }

  /** Resolves when the consumer is ready for more. */
  push(data: Uint8Array): Promise<void> | undefined {
    this.received += data.length;
    if (this.discarding || this.error) return undefined;
    this.queue.push(data);
    this.buffered += data.length;
    if (this.buffered > this.maxBuffered) this.maxBuffered = this.buffered;
    this.wakeReader();
    if (this.buffered < this.highWater) return undefined;
    return new Promise((r) => { this.writerWake = r; });
  }

  end(): void {
    this.ended = true;
    this.endResolve();
    if (this.discarding) this.doneResolve();
    this.wakeReader();
  }

  fail(error: Error): void {
    if (this.ended && this.queue.length === 0) return;
    this.error = error;
    this.queue.length = 0;
    this.buffered = 0;
    this.endResolve();
    this.doneResolve();
    this.wakeReader();
    this.wakeWriter();
  }

  discard(): Promise<void> {
    this.discarding = true;
    this.queue.length = 0;
    this.buffered = 0;
    this.wakeWriter();
    if (this.ended) this.doneResolve();
    return this.endReached.then(() => this.doneResolve());
  }

  private wakeReader(): void {
    const w = this.readerWake;
    this.readerWake = undefined;
    w?.();
  }

  private wakeWriter(): void {
    const w = this.writerWake;
    this.writerWake = undefined;
    w?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterating) throw new Error('the data set can be iterated only once');
    this.iterating = true;
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        for (;;) {
          if (this.error) throw this.error;
          const chunk = this.queue.shift();
          if (chunk) {
            this.buffered -= chunk.length;
            if (this.buffered < this.highWater) this.wakeWriter();
            return { value: chunk, done: false };
          }
          if (this.ended || this.discarding) {
            if (!this.ended) throw new DimseError('the data set was discarded', 'protocol');
            this.doneResolve();
            return { value: undefined, done: true };
          }
          await new Promise<void>((r) => { this.readerWake = r; });
        }
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        // The consumer stopped early (break, or an exception in its loop): the rest is dropped.
        void this.discard();
        return { value: undefined, done: true };
      },
    };
  }
}

/** Collects a (small) data set of a response. */
export class Collector {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  overflow = false;
  private readonly limit: number;
  constructor(limit: number) { this.limit = limit; }
  push(data: Uint8Array): undefined {
    if (this.overflow) return undefined;
    this.length += data.length;
    if (this.length > this.limit) { this.overflow = true; this.chunks.length = 0; return undefined; }
    this.chunks.push(data.slice());
    return undefined;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.length; }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Responses to our requests

export class ResponseQueue implements AsyncIterable<DimseResponse> {
  private readonly items: DimseResponse[] = [];
  private done = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;

  push(r: DimseResponse): void {
    this.items.push(r);
    if (statusCategory(r.command.Status ?? 0) !== 'pending') this.done = true;
    this.notify();
  }
  fail(e: Error): void {
    if (this.done) return;
    this.error = e;
    this.done = true;
    this.notify();
  }
  get finished(): boolean { return this.done; }
  private notify(): void { const w = this.wake; this.wake = undefined; w?.(); }

  async *[Symbol.asyncIterator](): AsyncIterator<DimseResponse> {
    for (;;) {
      const item = this.items.shift();
      if (item) { yield item; continue; }
      if (this.error) throw this.error;
      if (this.done) return;
      await new Promise<void>((r) => { this.wake = r; });
    }
  }
}
