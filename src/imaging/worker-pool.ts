// A fixed pool of worker threads with a bounded queue. Decoding and encoding images is CPU work of tens of
// milliseconds (a 512x512 JPEG 2000 frame: ~22 ms); on the event loop it would stall every other request.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { AtriumError } from '../errors.ts';
import type { ImagingResult, ImagingTask, CrashTask } from './worker.ts';

export interface WorkerPoolOptions {
  /** Threads; default one per CPU. */
  size?: number;
  /** Tasks waiting for a thread beyond which `run` rejects at once with `unavailable` (default 64 per thread). */
  maxQueue?: number;
  /** A task running longer than this has its thread terminated (default 60 s). */
  taskTimeoutMs?: number;
  /** The worker script (default ./worker.ts). */
  script?: URL;
}

interface Job {
  task: ImagingTask | CrashTask;
  transfer: ArrayBuffer[];
  resolve: (result: ImagingResult) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  job?: Job;
  timer?: NodeJS.Timeout;
}

type Reply =
  | { id: number; ok: true; result: ImagingResult }
  | { id: number; ok: false; kind: 'unsupported' | 'corrupt' | 'too-large' | 'internal'; message: string; recycle: boolean };

export interface WorkerPoolStats {
  size: number;
  busy: number;
  queued: number;
  completed: number;
  failed: number;
  restarts: number;
}

export class WorkerPool {
  readonly size: number;
  readonly maxQueue: number;
  readonly #timeoutMs: number;
  readonly #script: URL;
  readonly #slots: (Slot | undefined)[];
  readonly #queue: Job[] = [];
  #nextId = 1;
  #closed = false;
  #completed = 0;
  #failed = 0;
  #restarts = 0;

  constructor(options: WorkerPoolOptions = {}) {
    this.size = Math.max(1, options.size ?? availableParallelism());
    this.maxQueue = options.maxQueue ?? 64 * this.size;
    this.#timeoutMs = options.taskTimeoutMs ?? 60_000;
    this.#script = options.script ?? new URL('./worker.ts', import.meta.url);
    this.#slots = new Array(this.size).fill(undefined);
  }

  get stats(): WorkerPoolStats {
    return {
      size: this.size, busy: this.#slots.filter((s) => s?.job).length, queued: this.#queue.length,
      completed: this.#completed, failed: this.#failed, restarts: this.#restarts,
    };
  }

  /** Runs a task on the next free thread. The buffers in `transfer` are moved, not copied: do not reuse them. */
  run(task: ImagingTask | CrashTask, transfer: ArrayBuffer[] = []): Promise<ImagingResult> {
    if (this.#closed) return Promise.reject(new AtriumError('unavailable', 'the imaging worker pool is closed'));
    if (this.#queue.length >= this.maxQueue) {
      return Promise.reject(new AtriumError('unavailable', `imaging is busy (${this.#queue.length} tasks waiting); retry later`, { retryAfterSeconds: 1 }));
    }
    return new Promise<ImagingResult>((resolve, reject) => {
      this.#queue.push({ task, transfer, resolve, reject });
      this.#dispatch();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.reject(new AtriumError('unavailable', 'the imaging worker pool is closed'));
    await Promise.all(this.#slots.map(async (slot, i) => {
      if (!slot) return;
      this.#slots[i] = undefined;
      clearTimeout(slot.timer);
      slot.job?.reject(new AtriumError('unavailable', 'the imaging worker pool is closed'));
      await slot.worker.terminate();
    }));
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let index = this.#slots.findIndex((s) => s !== undefined && !s.job);
      if (index < 0) index = this.#slots.findIndex((s) => s === undefined);
      if (index < 0) return;
      const slot = this.#slots[index] ?? this.#spawn(index);
      const job = this.#queue.shift()!;
      slot.job = job;
      const id = this.#nextId++;
      slot.worker.ref();
      slot.timer = setTimeout(() => this.#fail(index, slot, new AtriumError('unavailable', `imaging task took longer than ${this.#timeoutMs} ms and was stopped`)), this.#timeoutMs);
      slot.worker.postMessage({ id, task: job.task }, job.transfer);
    }
  }

  #spawn(index: number): Slot {
    const worker = new Worker(this.#script);
    const slot: Slot = { worker };
    this.#slots[index] = slot;
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const job = slot.job;
      if (!job) return;
      clearTimeout(slot.timer);
      slot.job = undefined;
      worker.unref();
      if (reply.ok) {
        this.#completed++;
        job.resolve(reply.result);
      } else {
        this.#failed++;
        job.reject(toAtriumError(reply.kind, reply.message));
        if (reply.recycle) this.#replace(index, slot);
      }
      this.#dispatch();
    });
    worker.on('error', (error) => this.#fail(index, slot, new AtriumError('internal', `imaging worker failed: ${error.message}`, undefined, { cause: error })));
    worker.on('exit', (code) => this.#fail(index, slot, new AtriumError('internal', `imaging worker exited with code ${code}`)));
    return slot;
  }

  /** The thread died or hung: fail its task, put a new thread in its place. */
  #fail(index: number, slot: Slot, error: AtriumError): void {
    if (this.#slots[index] !== slot) return;
    clearTimeout(slot.timer);
    const job = slot.job;
    slot.job = undefined;
    if (job) {
      this.#failed++;
      job.reject(error);
    }
    this.#replace(index, slot);
    this.#dispatch();
  }

  #replace(index: number, slot: Slot): void {
    if (this.#slots[index] !== slot) return;
    this.#slots[index] = undefined;
    this.#restarts++;
    slot.worker.removeAllListeners('exit');
    slot.worker.on('exit', () => {});
    slot.worker.on('error', () => {});
    void slot.worker.terminate();
  }
}

function toAtriumError(kind: string, message: string): AtriumError {
  switch (kind) {
    case 'unsupported': return new AtriumError('invalid-input', message, { reason: 'unsupported' });
    case 'too-large': return new AtriumError('invalid-input', message, { reason: 'too-large' });
    case 'corrupt': return new AtriumError('internal', `stored pixel data is corrupt: ${message}`, { reason: 'corrupt-pixel-data' });
    default: return new AtriumError('internal', `imaging failed: ${message}`);
  }
}

/** A buffer can be moved to the worker only when the view covers all of it (else it is copied). */
export function transferable(bytes: Uint8Array): ArrayBuffer[] {
  const buffer = bytes.buffer;
  return buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength ? [buffer] : [];
}
