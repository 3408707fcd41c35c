import type { IncomingRequest } from '../association.ts';
import { parseDataset } from '../../dicom/parse-dataset.ts';
import { fromDicomJson, type DicomJsonDataSet } from '../../dicom/dicom-json.ts';
import { encodeDataset } from '../../dicom/part10-writer.ts';
import type { DataSet } from '../../dicom/dataset.ts';
import { CHARSET_VRS } from '../../dicom/vr.ts';

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

function fitsLatin1(json: DicomJsonDataSet): boolean {
  for (const attribute of Object.values(json)) {
    if (attribute.vr === 'SQ') {
      if ((attribute.Value ?? []).some((item) => item && !fitsLatin1(item as DicomJsonDataSet))) return false;
      continue;
    }
    if (!CHARSET_VRS.has(attribute.vr)) continue;
    for (const value of attribute.Value ?? []) {
      const texts = value !== null && typeof value === 'object' ? Object.values(value as Record<string, unknown>) : [value];
      for (const text of texts) if (typeof text === 'string' && /[^\u0000-\u00ff]/.test(text)) return false;
    }
  }
  return true;
}

/**
 * The Specific Character Set of one C-FIND response (the archive's and the worklist's): the request's when
 * it asked in ISO_IR 100 (Latin-1) and every text of this response fits Latin-1, so that a modality that
 * knows only Latin-1 gets the names it can show; otherwise ISO_IR 192 (UTF-8), which holds every name.
 * PS3.4 C.4.1.1.3.2 lets the SCP answer in another character set than the request's; each response
 * declares its own. Requests in the default repertoire or in ISO_IR 192 are answered in ISO_IR 192.
 * `json` carries (0008,0005) ISO_IR 192 as built; the text is encoded by fromDicomJson per the value set here.
 */
export function answerCharacterSet(json: DicomJsonDataSet, requested: readonly string[] | undefined): DicomJsonDataSet {
  const key = '00080005';
  if (!json[key] || requested?.length !== 1 || requested[0] !== 'ISO_IR 100' || !fitsLatin1(json)) return json;
  return { ...json, [key]: { vr: 'CS', Value: ['ISO_IR 100'] } };
}
