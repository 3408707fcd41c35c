/**
 * STOW-RS, the Studies Store Transaction of PS3.18 10.5: `POST /dicom-web/studies[/{StudyInstanceUID}]`
 * with a `multipart/related; type="application/dicom"` body. Each part is a Part-10 object streamed from the
 * request straight into the one ingest pipeline (source "stow"): nothing is buffered beyond a chunk, the
 * request is read only as fast as the blob store takes the bytes, and a part is acknowledged only once
 * ingest has made it durable. The metadata and bulk data form (`type="application/dicom+json"`) is
 * stow-bulkdata.ts: each data set is built into a Part-10 object that goes through the same ingest call.
 *
 * The answer is the Store Instances Response Module (PS3.18 Annex I) as application/dicom+json, or
 * application/dicom+xml (PS3.19 Native DICOM Model) when asked:
 * - 200 every instance stored (identical duplicates count as stored); 202 some stored, some failed;
 *   409 none stored; 400 a body that is not valid multipart, or metadata that is not DICOM JSON; 415 any
 *   other media type (the metadata form with XML metadata, application/dicom+xml, included).
 * - Failure Reason (0008,1197) values (PS3.18 I.2.2): A900 the object lacks what its SOP Class requires
 *   (UIDs, consistent file meta); C000 cannot understand (malformed Part 10); 0122 SOP Class not supported
 *   (DICOMDIR); 0111 duplicate SOP Instance UID with different content ("reject" policy); A700 out of
 *   resources (disk full); 0110 processing failure; C409 Study Instance UID mismatch with the request URL
 *   (the standard leaves it implementation-specific; C409 is the value dcm4chee uses); A922 bulk data that
 *   a BulkDataURI of the metadata form references is not in the request (dcm4chee's value too).
 * - The module has no text attribute: the whole human-readable reason of each failure is in its Failed SOP
 *   Sequence item as a private attribute (creator "ATRIUM", (0009,xx01) LT), and a summary in Atrium's own
 *   words (reason code, element, offset, quarantine id; never text taken from the object or the request) in a
 *   `Warning: 299 atrium "..."` header field, built by io/header-value.ts.
 */
import { auditStored } from '../audit/http-request-audit.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IngestBatch } from '../archive/ingest-batch.ts';
import { Part10Reader, type Part10Header } from '../dicom/part10-reader.ts';
import { stringValue } from '../dicom/dataset.ts';
import * as Tag from '../dicom/tags.ts';
import { boundaryOf, MultipartError, parseMediaType, readMultipart, type MultipartPart } from './multipart-reader.ts';
import { DEFAULT_CORS_ORIGINS, registerCors } from './cors.ts';
import { MetadataError, removeStaleSpool, storeMetadataAndBulkData } from './stow-bulkdata.ts';
import { failure, FailureReason, ingestFailure, outcomeOf, type InstanceIds, type StowOutcome } from './stow-outcome.ts';
import { notAcceptable } from './problem.ts';
import { warningValue } from '../io/header-value.ts';
import { isTolerableUid } from '../dicom/uid.ts';

export { FailureReason, failureReasonOf, type StowOutcome } from './stow-outcome.ts';
import type { DicomwebOptions, DicomwebServices } from './context.ts';


/**
 * Registers the STOW-RS routes in their own Fastify scope (their body handling touches no other route), with
 * the CORS hook of every DICOMweb route (give the options dicomwebRoutes has; only corsOrigins is read here).
 */
export async function stowRoutes(app: FastifyInstance, archive: DicomwebServices, options: DicomwebOptions = {}): Promise<void> {
  await removeStaleSpool(archive);
  await app.register(async (scope) => {
    registerCors(scope, options.corsOrigins ?? DEFAULT_CORS_ORIGINS);
    // The body is read by the route from the raw request, as it arrives: no parser may consume it.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    const log = archive.log.child({ transport: 'stow-rs' });

    const handler = async (req: FastifyRequest<{ Params: { study?: string } }>, reply: FastifyReply) => {
      const study = req.params.study;
      const format = responseFormat(req.headers.accept);
      if (!format) {
        throw notAcceptable('the Store Instances Response is available as application/dicom+json or application/dicom+xml');
      }
      // Not PS3.5 9.1 itself: the archive may hold UIDs that break it (ingest.invalidUidPolicy "flag").
      if (study !== undefined && !isTolerableUid(study)) {
        return problem(reply, req, 400, 'Bad Request', `"${study}" is not a valid Study Instance UID`);
      }
      const media = parseMediaType(req.headers['content-type']);
      if (!media || media.type !== 'multipart/related') {
        return problem(reply, req, 415, 'Unsupported Media Type',
          `STOW-RS takes multipart/related; type="application/dicom" (got ${req.headers['content-type'] ?? 'no content type'})`);
      }
      const rootType = media.params.type?.toLowerCase();
      if (rootType === 'application/dicom+xml') {
        return problem(reply, req, 415, 'Unsupported Media Type',
          'the metadata and bulk data form is taken with DICOM JSON metadata, not XML: send type="application/dicom+json" (or Part-10 objects as type="application/dicom")');
      }
      if (rootType !== undefined && rootType !== 'application/dicom' && rootType !== 'application/dicom+json') {
        return problem(reply, req, 415, 'Unsupported Media Type',
          `multipart/related parts of type ${rootType} are not supported; send Part-10 objects as type="application/dicom", or metadata and bulk data as type="application/dicom+json"`);
      }
      let boundary: string;
      try {
        boundary = boundaryOf(req.headers['content-type']);
      } catch (error) {
        return problem(reply, req, 400, 'Bad Request', (error as Error).message);
      }

      const outcomes: StowOutcome[] = [];
      // The request's instances are made durable and indexed together; the answer waits for all of them.
      const batch = archive.ingest.batch({ source: 'stow' });
      const slots: Slot[] = [];
      try {
        if (rootType === 'application/dicom+json') {
          const requestUrl = `${req.protocol}://${req.host}${req.url}`;
          outcomes.push(...await storeMetadataAndBulkData(archive, readMultipart(req.raw, boundary), study, requestUrl));
        } else {
          let part = 0;
          for await (const p of readMultipart(req.raw, boundary)) {
            slots.push(await addPart(archive, batch, p, ++part, study));
          }
          outcomes.push(...await settle(archive, batch, slots.splice(0)));
        }
      } catch (error) {
        // The parts complete before the failure are stored, as they would be had they come alone.
        outcomes.push(...await settle(archive, batch, slots.splice(0)).catch(async (settling) => {
          log.error({ err: settling }, 'STOW-RS: the parts received before the failure could not be stored');
          await batch.abort();
          return [];
        }));
        if (error instanceof MetadataError) {
          await auditStored(archive, req, outcomes);
          log.warn({ err: error }, 'STOW-RS request with metadata that cannot be understood');
          return problem(reply, req, 400, 'Bad Request', error.message);
        }
        if (error instanceof MultipartError) {
          const stored = outcomes.filter((o) => o.stored);
          await auditStored(archive, req, outcomes);
          log.warn({ err: error, stored: stored.length }, 'STOW-RS request with a malformed multipart body');
          // Instances of complete parts before the error are durable (sending them again is harmless:
          // identical duplicates are a success); the truncated part was discarded by ingest.
          return problem(reply, req, 400, 'Bad Request', `malformed multipart/related body: ${error.message}`, {
            stored: stored.map((o) => ({ sopInstanceUid: o.sopInstanceUid, studyInstanceUid: o.studyInstanceUid })),
          });
        }
        if (req.raw.destroyed || req.raw.readableAborted || (error as NodeJS.ErrnoException).code === 'ECONNRESET') {
          // The client went away mid-upload: the part being received was discarded, there is no one to answer.
          log.warn({ stored: outcomes.filter((o) => o.stored).length, err: error }, 'STOW-RS client aborted the upload');
          await auditStored(archive, req, outcomes);
          reply.hijack();
          req.raw.destroy();
          return;
        }
        throw error;
      }
      if (outcomes.length === 0) return problem(reply, req, 400, 'Bad Request', 'the multipart body contains no instance');
      await auditStored(archive, req, outcomes);

      const base = `${req.protocol}://${req.host}/dicom-web`;
      const body = storeInstancesResponse(outcomes, base, study);
      const storedCount = outcomes.filter((o) => o.stored).length;
      const status = storedCount === outcomes.length ? 200 : storedCount > 0 ? 202 : 409;
      const warnings = outcomes.filter((o) => !o.stored).slice(0, 50).map((o) => warningValue(
        `${o.label ?? `part ${o.part}`}${isUid(o.sopInstanceUid) ? ` (${o.sopInstanceUid})` : ''}: ${o.warning ?? 'failed'}`));
      if (warnings.length > 0) reply.header('warning', warnings);
      log.info({ parts: outcomes.length, stored: storedCount, failed: outcomes.length - storedCount, status }, 'STOW-RS request');
      // Buffers, so that no charset parameter is added: both media types are UTF-8 by definition.
      if (format === 'xml') return reply.status(status).type('application/dicom+xml').send(Buffer.from(toNativeDicomXml(body)));
      return reply.status(status).type('application/dicom+json').send(Buffer.from(JSON.stringify(body)));
    };
    scope.post('/dicom-web/studies', handler);
    scope.post('/dicom-web/studies/:study', handler);
  });
}

class StudyMismatch extends Error {}

/** Wraps an error of the request stream so that it is told apart from an error of the archive. */
class SourceFailure extends Error {}

/** A part's outcome: known at once (refused before anything was kept), or once the batch is committed. */
type Slot = StowOutcome | { pending: true; index: number; ids: InstanceIds };

async function addPart(archive: DicomwebServices, batch: IngestBatch, part: MultipartPart, index: number, expectedStudy: string | undefined): Promise<Slot> {
  const partType = parseMediaType(part.headers['content-type']);
  if (part.headers['content-type'] !== undefined && partType?.type !== 'application/dicom') {
    for await (const _ of part.body); // skipped
    return failure(index, NO_IDS, FailureReason.CannotUnderstand, `part content type ${part.headers['content-type']} is not application/dicom`,
      'the part content type is not application/dicom');
  }
  // A second, header-only parse beside ingest's: it tells the UIDs of objects ingest rejects or finds
  // duplicate, and the study of the object before its last bytes are handed over, so that an instance of
  // another study is abandoned by ingest (nothing stored, nothing quarantined) rather than stored.
  const reader = new Part10Reader();
  let readerFailed = false;
  let header: Part10Header | undefined;
  let mismatch: string | undefined;
  async function* checked(): AsyncGenerator<Uint8Array> {
    let pending: Uint8Array | undefined;
    try {
      for await (const chunk of part.body) {
        if (!readerFailed) {
          try {
            reader.push(chunk);
          } catch {
            readerFailed = true;
          }
        }
        if (pending) yield pending;
        pending = chunk;
      }
    } catch (error) {
      throw new SourceFailure('the request body failed', { cause: error });
    }
    if (!readerFailed) {
      try {
        header = reader.end();
      } catch {
        readerFailed = true;
      }
    }
    if (header && expectedStudy !== undefined) {
      const study = uid(header, Tag.StudyInstanceUID);
      if (study && study !== expectedStudy) {
        mismatch = study;
        throw new StudyMismatch();
      }
    }
    if (pending) yield pending;
  }

  try {
    await batch.add(checked(), { originalName: part.headers['content-location'] || undefined });
  } catch (error) {
    if (error instanceof SourceFailure) throw error.cause;
    if (error instanceof StudyMismatch) {
      return failure(index, idsOf(header), FailureReason.StudyInstanceUidMismatch, `Study Instance UID ${mismatch} differs from the ${expectedStudy} of the request URL; not stored`,
        `Study Instance UID differs from the ${expectedStudy} of the request URL; not stored`);
    }
    return ingestFailure(archive, error, index, idsOf(header));
  }
  return { pending: true, index, ids: idsOf(header) };
}

/** Commits the batch and gives every part its outcome, in the order of the parts. */
async function settle(archive: DicomwebServices, batch: IngestBatch, slots: Slot[]): Promise<StowOutcome[]> {
  const results = await batch.commit();
  let next = 0;
  return await Promise.all(slots.map(async (slot) => {
    if (!('pending' in slot)) return slot;
    const result = results[next++];
    return result.status === 'failed' ? ingestFailure(archive, result.error, slot.index, slot.ids) : await outcomeOf(archive, result, slot.index, slot.ids);
  }));
}

const NO_IDS: InstanceIds = { sopClassUid: null, sopInstanceUid: null, studyInstanceUid: null, seriesInstanceUid: null };

function idsOf(header: Part10Header | undefined): InstanceIds {
  if (!header) return NO_IDS;
  return {
    sopClassUid: uid(header, Tag.SOPClassUID), sopInstanceUid: uid(header, Tag.SOPInstanceUID),
    studyInstanceUid: uid(header, Tag.StudyInstanceUID), seriesInstanceUid: uid(header, Tag.SeriesInstanceUID),
  };
}

function uid(header: Part10Header, tag: number): string | null {
  try {
    const value = stringValue(header.dataset, tag)?.replace(/[\0 ]+$/, '');
    return value || null;
  } catch {
    return null;
  }
}

/** The private block of the failure reason text in a Failed SOP Sequence item (PS3.5 7.8.1). */
export const REASON_CREATOR = 'ATRIUM';
export const REASON_CREATOR_TAG = '00090010';
export const REASON_TAG = '00091001';

type JsonAttribute = { vr: string; Value?: unknown[] };
type JsonDataset = Record<string, JsonAttribute>;

/** The Store Instances Response Module (PS3.18 Table I.1-1) in the DICOM JSON model. */
export function storeInstancesResponse(outcomes: StowOutcome[], base: string, study: string | undefined): JsonDataset {
  const ok = outcomes.filter((o) => o.stored);
  const failed = outcomes.filter((o) => !o.stored);
  const studies = new Set(ok.map((o) => o.studyInstanceUid));
  const studyUid = study ?? (studies.size === 1 ? [...studies][0] : undefined);
  const ui = (value: string | null): JsonAttribute => (value ? { vr: 'UI', Value: [value] } : { vr: 'UI' });
  const response: JsonDataset = {
    // Type 2: empty when the instances stored belong to more than one study (or none was stored).
    '00081190': studyUid && (ok.length > 0 || study) ? { vr: 'UR', Value: [`${base}/studies/${studyUid}`] } : { vr: 'UR' },
  };
  if (failed.length > 0) {
    response['00081198'] = {
      vr: 'SQ',
      Value: failed.map((o) => ({
        '00081150': ui(o.sopClassUid), '00081155': ui(o.sopInstanceUid), '00081197': { vr: 'US', Value: [o.failureReason ?? FailureReason.ProcessingFailure] },
        // Private: the reason in words, which the module has no attribute for (LT: at most 10240 characters).
        [REASON_CREATOR_TAG]: { vr: 'LO', Value: [REASON_CREATOR] }, [REASON_TAG]: { vr: 'LT', Value: [(o.reason ?? 'failed').slice(0, 10240)] },
      })),
    };
  }
  if (ok.length > 0) {
    response['00081199'] = {
      vr: 'SQ',
      Value: ok.map((o) => ({
        '00081150': ui(o.sopClassUid),
        '00081155': ui(o.sopInstanceUid),
        '00081190': o.seriesInstanceUid
          ? { vr: 'UR', Value: [`${base}/studies/${o.studyInstanceUid}/series/${o.seriesInstanceUid}/instances/${o.sopInstanceUid}`] }
          : { vr: 'UR' },
      })),
    };
  }
  return response;
}

const KEYWORDS: Record<string, string> = {
  '00081150': 'ReferencedSOPClassUID', '00081155': 'ReferencedSOPInstanceUID', '00081190': 'RetrieveURL', '00081196': 'WarningReason',
  '00081197': 'FailureReason', '00081198': 'FailedSOPSequence', '00081199': 'ReferencedSOPSequence',
};

/** The same data set in the Native DICOM Model (PS3.19 A.1), for clients that ask for application/dicom+xml. */
export function toNativeDicomXml(dataset: JsonDataset): string {
  // Characters XML 1.0 cannot carry even escaped (controls, lone surrogates, U+FFFE/U+FFFF) become "?".
  const escape = (s: string) => s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '?')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const encode = (ds: JsonDataset): string => Object.keys(ds).sort().map((tag) => {
    const { vr, Value } = ds[tag];
    const keyword = KEYWORDS[tag] ? ` keyword="${KEYWORDS[tag]}"` : tag === REASON_TAG ? ` privateCreator="${REASON_CREATOR}"` : '';
    const inner = (Value ?? []).map((v, i) => vr === 'SQ'
      ? `<Item number="${i + 1}">${encode(v as JsonDataset)}</Item>`
      : `<Value number="${i + 1}">${escape(String(v))}</Value>`).join('');
    return `<DicomAttribute tag="${tag}" vr="${vr}"${keyword}>${inner}</DicomAttribute>`;
  }).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">${encode(dataset)}</NativeDicomModel>\n`;
}

/** 'json', 'xml', or undefined when the Accept header allows neither. */
function responseFormat(accept: string | undefined): 'json' | 'xml' | undefined {
  if (!accept || !accept.trim()) return 'json';
  const ranges = accept.split(',').map((range, order) => {
    const media = parseMediaType(range.trim());
    const q = media?.params.q === undefined ? 1 : Number(media.params.q);
    return { media, q: Number.isFinite(q) ? q : 0, order };
  }).filter((r) => r.media && r.q > 0).sort((a, b) => b.q - a.q || a.order - b.order);
  for (const { media } of ranges) {
    const type = media!.type;
    if (type === 'application/dicom+json' || type === 'application/json' || type === 'application/*' || type === '*/*') return 'json';
    if (type === 'application/dicom+xml') return 'xml';
    if (type === 'multipart/related') {
      const inner = media!.params.type?.toLowerCase();
      if (inner === 'application/dicom+xml') return 'xml';
      if (inner === 'application/dicom+json') return 'json';
    }
  }
  return undefined;
}

/** A well-formed UID (PS3.5 9.1), which alone of what the object says may be named in a header field. */
const UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

function isUid(value: string | null): value is string {
  return value !== null && value.length <= 64 && UID_PATTERN.test(value);
}

function problem(reply: FastifyReply, req: FastifyRequest, status: number, title: string, detail: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply.status(status).type('application/problem+json').send({ type: 'about:blank', title, status, detail, instance: req.url, ...extra });
}
