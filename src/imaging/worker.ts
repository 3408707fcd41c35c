// One imaging worker thread: decodes frames and renders them, so that codecs and encoders never run on the
// event loop. Speaks the protocol of worker-pool.ts.
import { parentPort } from 'node:worker_threads';
import { decodeFrameBytes, ImagingError, type DecodedFrame } from './decode.ts';
import { encodeFrame } from './encode.ts';
import type { ImageInfo } from './image-info.ts';
import { renderFrame, type RenderParams } from './render.ts';

export type ImagingTask =
  | { op: 'decode'; info: ImageInfo; bytes: Uint8Array; bitOffset: number }
  | { op: 'render'; info: ImageInfo; bytes: Uint8Array; bitOffset: number; params: RenderParams }
  /** Decode, then encode into `encodeAs` (a compressed transfer syntax of encode.ts). */
  | { op: 'encode'; info: ImageInfo; bytes: Uint8Array; bitOffset: number; encodeAs: string };

export interface ImagingResult {
  bytes: Uint8Array;
  /** For decode and encode: the attributes of the pixels returned (decoded, or before encoding). */
  frame?: Omit<DecodedFrame, 'bytes'>;
}

/** Testing aid: a task that crashes the thread, to prove the pool survives it. */
export type CrashTask = { op: 'crash' };

async function run(task: ImagingTask | CrashTask): Promise<ImagingResult> {
  if (task.op === 'crash') {
    setImmediate(() => { throw new Error('worker crash requested'); });
    return await new Promise(() => {});
  }
  const decoded = await decodeFrameBytes(task.info, task.bytes, task.bitOffset);
  if (task.op === 'decode') {
    const { bytes, ...frame } = decoded;
    return { bytes, frame };
  }
  if (task.op === 'encode') {
    const pixels = colorByPixel(decoded);
    const { bytes: _, ...frame } = pixels;
    return { bytes: await encodeFrame(pixels, task.encodeAs), frame };
  }
  return { bytes: await renderFrame(task.info, decoded, task.params) };
}

/** Colour-by-plane native pixels interleaved (Planar Configuration 0), the order the encoders take. */
function colorByPixel(frame: DecodedFrame): DecodedFrame {
  if (frame.planarConfiguration !== 1 || frame.samplesPerPixel === 1) return frame;
  const sampleBytes = frame.bitsAllocated / 8;
  const pixels = frame.rows * frame.columns;
  const plane = pixels * sampleBytes;
  const out = new Uint8Array(plane * frame.samplesPerPixel);
  for (let p = 0; p < pixels; p++) {
    for (let s = 0; s < frame.samplesPerPixel; s++) {
      for (let b = 0; b < sampleBytes; b++) out[(p * frame.samplesPerPixel + s) * sampleBytes + b] = frame.bytes[s * plane + p * sampleBytes + b];
    }
  }
  return { ...frame, bytes: out, planarConfiguration: 0 };
}

parentPort!.on('message', async (message: { id: number; task: ImagingTask | CrashTask }) => {
  try {
    const result = await run(message.task);
    // Hand the buffer over without copying when it is ours alone.
    const owned = result.bytes.byteOffset === 0 && result.bytes.byteLength === result.bytes.buffer.byteLength && result.bytes.buffer instanceof ArrayBuffer;
    parentPort!.postMessage({ id: message.id, ok: true, result }, owned ? [result.bytes.buffer as ArrayBuffer] : []);
  } catch (error) {
    const imaging = error instanceof ImagingError;
    parentPort!.postMessage({
      id: message.id, ok: false,
      kind: imaging ? error.kind : 'internal',
      message: (error as Error)?.message ?? String(error),
      // A codec that failed may have left its WebAssembly heap in a bad state: start a fresh thread.
      recycle: !imaging || error.kind === 'corrupt',
    });
  }
});
