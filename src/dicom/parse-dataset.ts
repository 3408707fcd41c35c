import { inflateRawSync } from 'node:zlib';
import { ByteQueue } from './byte-queue.ts';
import { DatasetParser } from './dataset-parser.ts';
import type { DataSet } from './dataset.ts';
import { transferSyntaxInfo } from './transfer-syntax.ts';

/**
 * Parses a bare data set (no preamble, no file meta) in a known transfer syntax, as DIMSE carries them
 * (PS3.7 6.3.1: C-FIND identifiers, N-ACTION information). Small by nature, so parsed in one piece;
 * a deflated one is inflated first (PS3.5 A.5).
 */
export function parseDataset(bytes: Uint8Array, transferSyntaxUID: string, bulkThreshold = 1 << 20): DataSet {
  const info = transferSyntaxInfo(transferSyntaxUID);
  const q = new ByteQueue();
  q.push(info.deflated ? new Uint8Array(inflateRawSync(bytes)) : bytes);
  const root: DataSet = { elements: [] };
  const parser = new DatasetParser(q, root, { explicitVR: info.explicitVR, littleEndian: info.littleEndian, bulkThreshold });
  parser.pump();
  parser.finish();
  return root;
}
