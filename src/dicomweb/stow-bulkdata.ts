/**
 * STOW-RS, the metadata and bulk data form (PS3.18 10.5.1.4): `multipart/related; type="application/dicom+json"`
 * whose metadata part(s) hold an array of DICOM JSON data sets (PS3.18 F), and whose other parts are the bulk
 * data their BulkDataURIs reference, each identified by its Content-Location. Values may also be InlineBinary.
 *
 * Bulk parts may be GBs: they are spooled to files as they arrive (under the data folder, never in memory),
 * and each data set is then written as a Part-10 object (part10-writer, dataset-stream-writer) straight into
 * the one ingest call of the application/dicom form, so duplicates, validation, quarantine and the response
 * entries are the same. Pixel Data in application/octet-stream is native (the object is stored in Explicit VR
 * Little Endian); in a compressed image or video media type, with its transfer-syntax parameter or the type's
 * default (PS3.18 Table 8.7.3-5), it is stored encapsulated in that syntax, one part per frame (the parts of a
 * multi-frame object share the BulkDataURI, or are at `{BulkDataURI}/frames/{n}`).
 *
 * A reference to bulk data the request lacks fails that instance (A922); metadata that is not JSON, or not an
 * array of objects, is a 400 for the whole request; a data set that does not encode (bad VR, characters
 * outside its character set) fails as C000.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DataElement } from '../dicom/dataset.ts';
import { fromDicomJson, type DicomJsonAttribute, type DicomJsonDataSet } from '../dicom/dicom-json.ts';
import { encodeDatasetStream, type StreamedElementValue, type StreamedValue } from '../dicom/dataset-stream-writer.ts';
import { encodeFileMeta } from '../dicom/part10-writer.ts';
import { ExplicitVRLittleEndian, transferSyntaxInfo } from '../dicom/transfer-syntax.ts';
import { DEFAULT_TRANSFER_SYNTAX_OF, frameMediaType } from './accept.ts';
import { parseMediaType, type MultipartPart } from './multipart-reader.ts';
import { failure, FailureReason, ingestFailure, outcomeOf, type InstanceIds, type StowOutcome } from './stow-outcome.ts';
import type { DicomwebServices } from './context.ts';

/** The request's metadata cannot be understood at all: 400 for the whole request. */
export class MetadataError extends Error {}

/** Metadata is text held in memory to be parsed; bulk data is what may be large. */
const MAX_METADATA_BYTES = 64 * 1024 * 1024;

const PixelData = 0x7fe00010;
// Attributes of the Image Pixel Description Macro (PS3.3 C.7.6.3) an image cannot be decoded without. The
// standard lets a client omit them with compressed bulk data, for the server to read them from the codestream;
// that is not done here, so they are required.
const IMAGE_PIXEL_KEYWORDS: [string, string][] = [
  ['00280002', 'SamplesPerPixel'], ['00280004', 'PhotometricInterpretation'], ['00280010', 'Rows'], ['00280011', 'Columns'],
  ['00280100', 'BitsAllocated'], ['00280101', 'BitsStored'], ['00280102', 'HighBit'], ['00280103', 'PixelRepresentation'],
];
// Available Transfer Syntax UID describes the sender's copy (WADO-RS metadata adds it); it is false of ours.
const AvailableTransferSyntaxUID = '00083002';
// Default transfer syntaxes of video media types (PS3.18 Table 8.7.3-5); image types are in accept.ts.
const DEFAULT_VIDEO_TRANSFER_SYNTAX: Record<string, string> = {
  'video/mpeg2': '1.2.840.10008.1.2.4.100', 'video/mp4': '1.2.840.10008.1.2.4.102', 'video/h265': '1.2.840.10008.1.2.4.107',
};

interface BulkPart {
  file: string;
  length: number;
  /** Lower-cased media type, and its parameters. */
  type: string;
  params: Record<string, string>;
}

/** Where bulk data parts wait until their data sets are stored: one folder per request under the data folder. */
const spoolRoot = (archive: DicomwebServices) => join(archive.config.dataDir, '.stow-spool');

/**
 * Removes what requests cut short by a crash left in the spool. Only folders older than a day: another
 * server process on the same data folder may have requests under way.
 */
export async function removeStaleSpool(archive: DicomwebServices): Promise<void> {
  const root = spoolRoot(archive);
  const dayAgo = Date.now() - 86_400_000;
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const folder = join(root, name);
    const info = await stat(folder).catch(() => null);
    if (info && info.mtimeMs < dayAgo) await rm(folder, { recursive: true, force: true });
  }
}

/**
 * Reads the whole request (metadata kept, bulk data spooled), then stores each data set in order. Rejects with
 * MetadataError (400) or what the multipart reader throws; otherwise one outcome per data set.
 */
export async function storeMetadataAndBulkData(archive: DicomwebServices, parts: AsyncIterable<MultipartPart>, expectedStudy: string | undefined,
  requestUrl: string): Promise<StowOutcome[]> {
  const root = spoolRoot(archive);
  await mkdir(root, { recursive: true });
  const spool = await mkdtemp(join(root, 'request-'));
  try {
    const datasets: DicomJsonDataSet[] = [];
    const bulk = new Map<string, BulkPart[]>();
    let index = 0;
    for await (const part of parts) {
      index++;
      const media = parseMediaType(part.headers['content-type']) ?? { type: 'application/octet-stream', params: {} };
      if (media.type === 'application/dicom+json' || media.type === 'application/json') {
        datasets.push(...parseMetadata(await readText(part.body, index), index));
        continue;
      }
      const location = part.headers['content-location'];
      if (!location) {
        // Nothing can reference a part without a location: read through and ignored.
        for await (const _ of part.body);
        continue;
      }
      const file = join(spool, String(index));
      let length = 0;
      await pipeline(Readable.from((async function* () {
        for await (const chunk of part.body) {
          length += chunk.length;
          yield chunk;
        }
      })()), createWriteStream(file));
      const spooled: BulkPart = { file, length, type: media.type, params: media.params };
      for (const key of new Set([location, resolved(location, requestUrl)])) bulk.set(key, [...(bulk.get(key) ?? []), spooled]);
    }
    if (datasets.length === 0) throw new MetadataError('the request has no application/dicom+json part: the metadata of the instances is missing');
    const outcomes: StowOutcome[] = [];
    for (let i = 0; i < datasets.length; i++) {
      const outcome = await storeDataset(archive, datasets[i], i + 1, (uri) => bulk.get(uri) ?? bulk.get(resolved(uri, requestUrl)), expectedStudy);
      outcomes.push({ ...outcome, label: `data set ${i + 1} of the metadata` });
    }
    return outcomes;
  } finally {
    await rm(spool, { recursive: true, force: true });
  }
}

/** A URI made absolute against the request's URL, so that "bulk/1", "./bulk/1" and the absolute form meet. */
function resolved(uri: string, base: string): string {
  try {
    return new URL(uri, base).href;
  } catch {
    return uri;
  }
}

async function readText(body: AsyncIterable<Uint8Array>, index: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length > MAX_METADATA_BYTES) throw new MetadataError(`part ${index}: metadata of more than ${MAX_METADATA_BYTES} bytes; send fewer instances per request`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseMetadata(text: string, index: number): DicomJsonDataSet[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new MetadataError(`part ${index}: the metadata is not valid JSON (${(error as Error).message})`);
  }
  // PS3.18 F.2: an array of DICOM JSON data sets; a lone data set is taken too.
  const list = Array.isArray(json) ? json : [json];
  if (list.length === 0 || !list.every((ds) => ds !== null && typeof ds === 'object' && !Array.isArray(ds))) {
    throw new MetadataError(`part ${index}: the metadata is not an array of DICOM JSON data sets (PS3.18 F)`);
  }
  return list as DicomJsonDataSet[];
}

function firstString(json: DicomJsonDataSet, key: string): string | null {
  const value = json[key]?.Value?.[0];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
}

/** Every BulkDataURI of a data set, by the path of its element (tags and item indexes, as the writer gives them). */
function bulkDataUris(json: DicomJsonDataSet, path: number[] = [], out = new Map<string, { uri: string; vr: string }>()): Map<string, { uri: string; vr: string }> {
  for (const [key, attr] of Object.entries(json) as [string, DicomJsonAttribute][]) {
    if (!/^[0-9A-Fa-f]{8}$/.test(key) || !attr || typeof attr !== 'object') continue;
    const tag = parseInt(key, 16) >>> 0;
    if (typeof attr.BulkDataURI === 'string') out.set(pathKey([...path, tag]), { uri: attr.BulkDataURI, vr: attr.vr });
    if (attr.vr === 'SQ' && Array.isArray(attr.Value)) {
      attr.Value.forEach((item, i) => {
        if (item && typeof item === 'object') bulkDataUris(item as DicomJsonDataSet, [...path, tag, i], out);
      });
    }
  }
  return out;
}

const pathKey = (path: number[]) => path.join('/');

function fileValue(parts: BulkPart[]): StreamedValue {
  return {
    length: parts.reduce((n, p) => n + p.length, 0),
    bytes: async function* () {
      for (const p of parts) yield* createReadStream(p.file) as AsyncIterable<Uint8Array>;
    },
  };
}

async function storeDataset(archive: DicomwebServices, json: DicomJsonDataSet, n: number, lookup: (uri: string) => BulkPart[] | undefined,
  expectedStudy: string | undefined): Promise<StowOutcome> {
  const ids: InstanceIds = {
    sopClassUid: firstString(json, '00080016'), sopInstanceUid: firstString(json, '00080018'),
    studyInstanceUid: firstString(json, '0020000D'), seriesInstanceUid: firstString(json, '0020000E'),
  };
  if (expectedStudy !== undefined && ids.studyInstanceUid && ids.studyInstanceUid !== expectedStudy) {
    return failure(n, ids, FailureReason.StudyInstanceUidMismatch, `Study Instance UID ${ids.studyInstanceUid} differs from the ${expectedStudy} of the request URL; not stored`,
      `Study Instance UID differs from the ${expectedStudy} of the request URL; not stored`);
  }

  let elements: DataElement[];
  try {
    const own: DicomJsonDataSet = { ...json };
    delete own[AvailableTransferSyntaxUID];
    // File Meta Information is written here, for this object; group 0002 in the metadata describes another file.
    elements = fromDicomJson(own, { resolveBulkData: () => undefined }).filter((el) => el.tag >>> 16 !== 0x0002);
  } catch (error) {
    return failure(n, ids, FailureReason.CannotUnderstand, `the data set cannot be encoded: ${(error as Error).message}`, 'the data set cannot be encoded');
  }

  // Bulk data: each BulkDataURI to its spooled part(s).
  const references = bulkDataUris(json);
  const values = new Map<string, StreamedElementValue>();
  const missing: string[] = [];
  let transferSyntaxUid = ExplicitVRLittleEndian;
  for (const [key, { uri }] of references) {
    if (key === pathKey([PixelData])) continue;
    const parts = lookup(uri);
    if (parts) values.set(key, fileValue(parts));
    else missing.push(uri);
  }
  const pixelReference = references.get(pathKey([PixelData]));
  if (pixelReference) {
    const frames = Math.max(1, Number(json['00280008']?.Value?.[0] ?? 1) || 1);
    const parts = lookup(pixelReference.uri)
      ?? (Array.from({ length: frames }, (_, i) => lookup(`${pixelReference.uri}/frames/${i + 1}`)).every((p) => p)
        ? Array.from({ length: frames }, (_, i) => lookup(`${pixelReference.uri}/frames/${i + 1}`)![0]) : undefined);
    if (!parts) {
      missing.push(pixelReference.uri);
    } else {
      const pixel = pixelValue(parts, frames);
      if ('refusal' in pixel) return failure(n, ids, FailureReason.CannotUnderstand, pixel.refusal, 'the Pixel Data parts cannot be stored as sent');
      transferSyntaxUid = pixel.transferSyntaxUid;
      values.set(pathKey([PixelData]), pixel.value);
    }
  }
  if (missing.length > 0) {
    return failure(n, ids, FailureReason.MissingBulkData, `missing bulk data: no part has the Content-Location ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` (and ${missing.length - 3} more)` : ''}`,
      `missing bulk data: ${missing.length} BulkDataURI(s) name no part of the request`);
  }
  if (json['7FE00010']) {
    const absent = IMAGE_PIXEL_KEYWORDS.filter(([key]) => json[key]?.Value === undefined || json[key].Value!.length === 0).map(([, keyword]) => keyword);
    if (absent.length > 0) {
      const reason = `Pixel Data without ${absent.join(', ')} (Image Pixel module)`;
      return failure(n, ids, FailureReason.DataSetDoesNotMatchSopClass, reason, reason);
    }
  }

  const meta = encodeFileMeta({ mediaStorageSOPClassUID: ids.sopClassUid ?? '', mediaStorageSOPInstanceUID: ids.sopInstanceUid ?? '', transferSyntaxUID: transferSyntaxUid });
  const bytes = (async function* () {
    yield meta;
    yield* encodeDatasetStream(elements, transferSyntaxUid, { bulkValue: (_el, path) => values.get(pathKey(path)) });
  })();
  let result;
  try {
    result = await archive.ingest.ingest(bytes, { source: 'stow', originalName: `STOW-RS metadata data set ${n}` });
  } catch (error) {
    return ingestFailure(archive, error, n, ids);
  }
  return await outcomeOf(archive, result, n, ids);
}

/**
 * The Pixel Data of the parts: native (application/octet-stream, the frames one after the other) or
 * encapsulated in the transfer syntax of their media type, one fragment per part.
 */
function pixelValue(parts: BulkPart[], frames: number): { transferSyntaxUid: string; value: StreamedElementValue } | { refusal: string } {
  const type = parts[0].type;
  if (parts.some((p) => p.type !== type || p.params['transfer-syntax'] !== parts[0].params['transfer-syntax'])) {
    return { refusal: 'the Pixel Data parts are not all of one media type and transfer syntax' };
  }
  if (type === 'application/octet-stream') {
    const ts = parts[0].params['transfer-syntax'];
    if (ts !== undefined && ts !== ExplicitVRLittleEndian && ts !== '1.2.840.10008.1.2') {
      return { refusal: `application/octet-stream Pixel Data in ${ts}: uncompressed bulk data is little endian (PS3.18 8.7.3.3.1)` };
    }
    return { transferSyntaxUid: ExplicitVRLittleEndian, value: fileValue(parts) };
  }
  const ts = parts[0].params['transfer-syntax'] ?? DEFAULT_TRANSFER_SYNTAX_OF[type] ?? DEFAULT_VIDEO_TRANSFER_SYNTAX[type];
  if (!ts || !transferSyntaxInfo(ts).encapsulated || frameMediaType(ts)?.toLowerCase() !== type) {
    return { refusal: `Pixel Data of media type ${type}${ts ? ` with transfer-syntax=${ts}` : ''} is not a compressed pixel data type this transfer syntax has (PS3.18 Table 8.7.3-5)` };
  }
  const video = type.startsWith('video/');
  if (!video && parts.length !== frames) {
    return { refusal: `${frames} frame(s) (Number of Frames) but ${parts.length} compressed Pixel Data part(s): one part per frame` };
  }
  return {
    transferSyntaxUid: ts,
    value: { fragments: parts.map((p) => ({ length: p.length, bytes: () => createReadStream(p.file) as AsyncIterable<Uint8Array> })) },
  };
}
