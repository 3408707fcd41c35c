// Streaming parse of a bare data set that starts at a known position of a larger stream, such as the elements
// after the Pixel Data of a stored object (read by range, without the bytes before them). Offsets of the
// elements are absolute positions in that larger stream, so that bulk values can be read by range later.
import { ByteQueue } from './byte-queue.ts';
import { DatasetParser } from './dataset-parser.ts';
import type { DataSet } from './dataset.ts';
import { transferSyntaxInfo } from './transfer-syntax.ts';

export class DatasetReader {
  readonly #queue: ByteQueue;
  readonly #parser: DatasetParser;
  readonly #root: DataSet = { elements: [] };

  /** `startOffset`: the position of the first byte pushed; values longer than `bulkThreshold` are not kept. */
  constructor(transferSyntaxUID: string, startOffset: number, bulkThreshold = 64 * 1024) {
    const info = transferSyntaxInfo(transferSyntaxUID);
    this.#queue = new ByteQueue(startOffset);
    this.#parser = new DatasetParser(this.#queue, this.#root, { explicitVR: info.explicitVR, littleEndian: info.littleEndian, bulkThreshold });
  }

  push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    this.#parser.pump();
  }

  /** The data set; throws DicomParseError when the bytes stop inside an element. */
  end(): DataSet {
    this.#parser.pump();
    this.#parser.finish();
    return this.#root;
  }
}
