/**
 * QIDO-RS (PS3.18 10.6): search for studies, series and instances, answered from the index alone through
 * the one query model (dicom/query `queryFromQidoParams` -> `IndexStore.find`).
 */
import { studyFilter, studyMatchesFilter } from '../security/index.ts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { queryFromQidoParams } from '../dicom/query/index.ts';
import type { DicomJsonAttribute, DicomJsonDataSet } from '../dicom/dicom-json.ts';
import { keywordOf } from '../dicom/dictionary.ts';
import { rangeCovers, requestAccept, sendText } from './accept.ts';
import { multipartContentType, multipartStream, newBoundary } from './multipart-writer.ts';
import { badRequest, notAcceptable } from './problem.ts';
import type { DicomwebContext } from './context.ts';
import { serviceWarningValue } from '../io/header-value.ts';

export type SearchLevel = 'STUDY' | 'SERIES' | 'IMAGE';

const RETRIEVE_URL = '00081190';
const QUERY_RETRIEVE_LEVEL = '00080052';
/** Parameters of PS3.18 8.3.4 this server does not implement: ignored with a Warning (8.3.4.5, 8.3.4.6). */
const UNSUPPORTED_FLAGS: Record<string, string> = {
  emptyvaluematching: 'The emptyvaluematching parameter is not supported. Empty Value Matching has not been performed.',
  multiplevaluematching: 'The multiplevaluematching parameter is not supported. Multiple Value Matching has not been performed.',
};
/** Parameters that are not match keys and are handled here or harmlessly ignored. */
const TRANSPORT_PARAMS = new Set(['accept', 'charset']);

type Format = 'json' | 'xml';

function negotiateSearch(request: FastifyRequest): Format {
  for (const m of requestAccept(request.headers, request.query as Record<string, unknown>, 'application/dicom+json')) {
    if (m.type === 'application/dicom+json' || m.type === 'application/json' || rangeCovers(m.type, 'application/dicom+json')) return 'json';
    if (m.type === 'multipart/related' && (m.params.type ?? 'application/dicom+xml') === 'application/dicom+xml') return 'xml';
    if (m.type === 'application/dicom+xml') return 'xml';
  }
  throw notAcceptable('QIDO-RS answers application/dicom+json or multipart/related; type="application/dicom+xml"');
}

/** The search handler of one resource; `pathKeys` maps route params to the parent UIDs they fix. */
export function searchHandler(ctx: DicomwebContext, level: SearchLevel) {
  return async (request: FastifyRequest<{ Params: Record<string, string> }>, reply: FastifyReply) => {
    const format = negotiateSearch(request);
    const url = new URL(request.url, 'http://localhost');
    const params = new URLSearchParams();
    const warnings: string[] = [];
    const base = ctx.baseUrl(request);
    let limitGiven = false;
    for (const [name, value] of url.searchParams) {
      const lower = name.trim().toLowerCase();
      if (TRANSPORT_PARAMS.has(lower)) continue;
      if (UNSUPPORTED_FLAGS[lower]) {
        if (value.toLowerCase() === 'true') warnings.push(UNSUPPORTED_FLAGS[lower]);
        continue;
      }
      if (lower === 'limit') limitGiven = true;
      // The UIDs of the path fix the parent; the same attribute as a parameter would contradict it.
      if ((request.params.study && isAttribute(name, 'StudyInstanceUID', '0020000D'))
        || (request.params.series && isAttribute(name, 'SeriesInstanceUID', '0020000E'))) continue;
      params.append(name, value);
    }
    if (request.params.study) params.append('StudyInstanceUID', request.params.study);
    if (request.params.series) params.append('SeriesInstanceUID', request.params.series);

    const maxLimit = ctx.options.maxLimit ?? 1000;
    const askedLimit = url.searchParams.get('limit');
    if (askedLimit !== null && /^\d+$/.test(askedLimit.trim()) && Number(askedLimit) > maxLimit) {
      warnings.push(`The number of results exceeded the maximum supported by the server (${maxLimit}). Additional results can be requested.`);
    }
    const query = queryFromQidoParams(level, params, {
      maxLimit, caseInsensitivePersonNames: ctx.archive.config.dicom.caseInsensitivePersonNames,
    });
    if (!limitGiven) query.limit = ctx.options.defaultLimit ?? 100;
    const limit = query.limit!;
    if (limit === 0) throw badRequest('query parameter limit: must be at least 1');
    // One more than asked tells whether more results remain, without counting them all.
    query.limit = limit + 1;

    let matches: DicomJsonDataSet[] = [];
    for await (const ds of ctx.archive.index.find(query)) matches.push(ds);
    // Principals limited to their own studies (referring clinicians): study-level results are filtered in
    // memory after the query (a page may then hold fewer than `limit`); other levels name their study in
    // the path, checked by the access hook (src/http/access.ts).
    const filter = request.principal ? studyFilter(request.principal) : { kind: 'all' as const };
    if (filter.kind !== 'all' && level === 'STUDY') {
      matches = matches.filter((ds) => studyMatchesFilter(filter, { referringPhysicianName: personName(ds['00080090']) }));
    }
    if (matches.length > limit) {
      matches.length = limit;
      if (!warnings.some((w) => w.startsWith('The number of results exceeded'))) {
        warnings.push('There are additional results that can be requested.');
      }
    }
    // Query/Retrieve Level is C-FIND's, not part of a QIDO-RS answer; RetrieveURL is QIDO's.
    for (let i = 0; i < matches.length; i++) matches[i] = withRetrieveUrl(matches[i], level, base);
    if (warnings.length > 0) reply.header('warning', warnings.map((w) => serviceWarningValue(base, w)));

    if (format === 'json') return await sendText(request, reply, 'application/dicom+json', JSON.stringify(matches));
    // PS3.18 10.6.3.3.2: one XML part per match.
    const boundary = newBoundary();
    return reply.type(multipartContentType('application/dicom+xml', boundary))
      .send(multipartStream(matches.map((ds) => ({ contentType: 'application/dicom+xml; charset=utf-8', body: Buffer.from(nativeDicomModel(ds), 'utf8') })), boundary));
  };
}

function isAttribute(name: string, keyword: string, tag: string): boolean {
  const n = name.trim();
  return n === keyword || n.toUpperCase() === tag;
}

function uidOf(ds: DicomJsonDataSet, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

/**
 * The match without Query/Retrieve Level and with its RetrieveURL (0008,1190), the WADO-RS resource of the
 * study, series or instance, in tag order as the JSON model lists it. A new object, not deletes and
 * re-inserts: that turned each data set into a slow dictionary-mode object (7% of a study search).
 */
function withRetrieveUrl(ds: DicomJsonDataSet, level: SearchLevel, base: string): DicomJsonDataSet {
  const study = uidOf(ds, '0020000D');
  const series = uidOf(ds, '0020000E');
  const sop = uidOf(ds, '00080018');
  let url: string | undefined;
  if (level === 'STUDY' && study) url = `${base}/studies/${study}`;
  else if (level === 'SERIES' && study && series) url = `${base}/studies/${study}/series/${series}`;
  else if (level === 'IMAGE' && study && series && sop) url = `${base}/studies/${study}/series/${series}/instances/${sop}`;
  const out: DicomJsonDataSet = {};
  let placed = url === undefined;
  for (const key of Object.keys(ds)) {
    if (!placed && key > RETRIEVE_URL) {
      out[RETRIEVE_URL] = { vr: 'UR', Value: [url!] };
      placed = true;
    }
    if (key !== QUERY_RETRIEVE_LEVEL && key !== RETRIEVE_URL) out[key] = ds[key];
  }
  if (!placed) out[RETRIEVE_URL] = { vr: 'UR', Value: [url!] };
  return out;
}

// ---- PS3.19 Native DICOM Model (application/dicom+xml) ----

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' }[c]!));

/** A DICOM JSON data set as a PS3.19 NativeDicomModel document. */
export function nativeDicomModel(ds: DicomJsonDataSet): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">${attributesXml(ds)}</NativeDicomModel>\n`;
}

function attributesXml(ds: DicomJsonDataSet): string {
  let out = '';
  for (const [tag, attr] of Object.entries(ds)) out += attributeXml(tag, attr);
  return out;
}

const PN_PARTS = ['FamilyName', 'GivenName', 'MiddleName', 'NamePrefix', 'NameSuffix'];

function attributeXml(tag: string, attr: DicomJsonAttribute): string {
  const keyword = keywordOf(parseInt(tag, 16) >>> 0);
  let out = `<DicomAttribute tag="${tag}" vr="${attr.vr}"${keyword ? ` keyword="${keyword}"` : ''}>`;
  if (attr.BulkDataURI !== undefined) out += `<BulkData uri="${escapeXml(attr.BulkDataURI)}"/>`;
  else if (attr.InlineBinary !== undefined) out += `<InlineBinary>${attr.InlineBinary}</InlineBinary>`;
  else {
    (attr.Value ?? []).forEach((v, i) => {
      const n = i + 1;
      if (attr.vr === 'SQ') {
        out += `<Item number="${n}">${v && typeof v === 'object' ? attributesXml(v as DicomJsonDataSet) : ''}</Item>`;
      } else if (attr.vr === 'PN') {
        out += `<PersonName number="${n}">`;
        const pn = (v ?? {}) as Record<string, string>;
        for (const group of ['Alphabetic', 'Ideographic', 'Phonetic']) {
          if (!pn[group]) continue;
          const parts = pn[group].split('^');
          out += `<${group}>${parts.map((p, j) => (j < 5 && p !== '' ? `<${PN_PARTS[j]}>${escapeXml(p)}</${PN_PARTS[j]}>` : '')).join('')}</${group}>`;
        }
        out += '</PersonName>';
      } else if (v === null) {
        out += `<Value number="${n}"/>`;
      } else {
        out += `<Value number="${n}">${escapeXml(String(v))}</Value>`;
      }
    });
  }
  return out + '</DicomAttribute>';
}

/** The PN value(s) of a DICOM JSON attribute as one backslash-separated string (Alphabetic groups). */
function personName(attr: { Value?: unknown[] } | undefined): string | null {
  const values = (attr?.Value ?? []).map((v) => typeof v === 'string' ? v : (v as { Alphabetic?: string } | null)?.Alphabetic ?? '').filter((v) => v !== '');
  return values.length ? values.join('\\') : null;
}
