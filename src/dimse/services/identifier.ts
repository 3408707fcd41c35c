import type { IncomingRequest } from '../association.ts';
import { parseDataset } from '../../dicom/parse-dataset.ts';
import { fromDicomJson, type DicomJsonDataSet } from '../../dicom/dicom-json.ts';
import { encodeDataset } from '../../dicom/part10-writer.ts';
import type { DataSet } from '../../dicom/dataset.ts';

/** The largest identifier accepted: identifiers are keys, not images. */
const MAX_IDENTIFIER_BYTES = 1024 * 1024;

/** Reads a request's identifier (C-FIND/C-MOVE/C-GET keys, N-ACTION information) in the context's syntax. */
export async function readIdentifier(request: IncomingRequest): Promise<DataSet> {
  if (!request.dataset) throw new Error('the request carries no identifier');
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.dataset) {
    size += chunk.length;
    if (size > MAX_IDENTIFIER_BYTES) {
      await request.dataset.discard();
      throw new Error(`identifier larger than ${MAX_IDENTIFIER_BYTES} bytes`);
    }
    parts.push(chunk);
  }
  return parseDataset(Buffer.concat(parts), request.presentationContext.transferSyntax);
}

/** A DICOM JSON data set encoded in a transfer syntax, for a C-FIND response or an N-EVENT-REPORT. */
export function encodeJsonDataset(json: DicomJsonDataSet, transferSyntaxUid: string): Uint8Array {
  return encodeDataset(fromDicomJson(json), transferSyntaxUid);
}
