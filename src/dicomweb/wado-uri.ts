/**
 * WADO-URI (PS3.18 9): GET ?requestType=WADO&studyUID=&seriesUID=&objectUID=&contentType=&transferSyntax=.
 * application/dicom is the stored object, streamed, or transcoded into the transferSyntax asked (the choice is
 * WADO-RS's, retrieve-transfer-syntax.ts); image types are rendering, delegated to the renderer plugged in
 * through `options.render` (406 with a problem detail while there is none).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseMediaType, rangeCovers } from './accept.ts';
import { badRequest, notAcceptable } from './problem.ts';
import type { DicomwebContext } from './context.ts';
import { instanceOf } from './wado.ts';
import { bodyStream } from './multipart-writer.ts';
import { chooseTransferSyntax, instanceBytes, instanceEtag, instanceLength, storedSyntaxOf } from './retrieve-transfer-syntax.ts';
import { attachmentDisposition } from '../io/header-value.ts';

const UID = /^[0-9]+(\.[0-9]+)*$/;

export function wadoUriHandler(ctx: DicomwebContext) {
  return async (request: FastifyRequest<{ Querystring: Record<string, string | string[]> }>, reply: FastifyReply) => {
    const q = request.query ?? {};
    const one = (name: string): string | undefined => {
      const v = q[name];
      if (Array.isArray(v)) throw badRequest(`query parameter ${name} is given more than once`);
      return v === undefined ? undefined : String(v).trim();
    };
    if (one('requestType') !== 'WADO') throw badRequest('query parameter requestType must be WADO (PS3.18 9.1.2.1.1)');
    const ids: Record<string, string> = {};
    for (const name of ['studyUID', 'seriesUID', 'objectUID']) {
      const v = one(name);
      if (!v) throw badRequest(`query parameter ${name} is required`);
      if (v.length > 64 || !UID.test(v)) throw badRequest(`query parameter ${name}: "${v}" is not a UID`);
      ids[name] = v;
    }
    // contentType is a list of acceptable types; absent means image/jpeg for images (PS3.18 9.1.2.2.1).
    const types = (one('contentType') ?? 'image/jpeg').split(',').map((t) => parseMediaType(t)).filter((m) => m.type !== '');
    const rec = await instanceOf(ctx, { study: ids.studyUID, series: ids.seriesUID, sop: ids.objectUID });
    const stored = storedSyntaxOf(rec);
    const tsParam = one('transferSyntax');
    if (tsParam !== undefined && tsParam !== '*' && !UID.test(tsParam)) throw badRequest(`query parameter transferSyntax: "${tsParam}" is not a UID`);

    for (const m of types) {
      if (m.type === 'application/dicom' || m.type === '*/*') {
        // Absent transferSyntax means Explicit VR Little Endian (PS3.18 9), with the same exceptions as WADO-RS.
        const delivery = await chooseTransferSyntax(ctx, rec, [tsParam]);
        if ('refusal' in delivery) {
          throw notAcceptable(`the object is stored in ${stored} and cannot be sent in ${delivery.refusal}. Omit transferSyntax, or ask for ${stored}`);
        }
        reply.type('application/dicom').header('etag', instanceEtag(rec, delivery))
          .header('content-disposition', attachmentDisposition(`${rec.sopInstanceUid}.dcm`));
        const bytes = bodyStream(await instanceBytes(ctx, rec, delivery));
        const length = instanceLength(rec, delivery);
        if (length === undefined) return reply.send(bytes);
        return reply.header('content-length', length).send(bytes);
      }
    }
    const renderable = types.find((m) => rangeCovers(m.type, 'image/jpeg') || m.type.startsWith('image/') || m.type.startsWith('video/') || m.type === 'text/html' || m.type === 'text/plain' || m.type === 'application/pdf');
    if (!renderable) throw notAcceptable(`contentType ${types.map((m) => m.type).join(', ')} is not supported; use application/dicom or an image type`);
    if (!ctx.options.render) {
      throw notAcceptable(`rendering to ${renderable.type} is not available on this server yet; ask for contentType=application/dicom`);
    }
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries(q)) params[k] = Array.isArray(v) ? v.join(',') : String(v);
    params.contentType = types.map((m) => m.type).join(',');
    const frame = one('frameNumber');
    if (frame !== undefined && !/^[1-9]\d*$/.test(frame)) throw badRequest(`query parameter frameNumber: "${frame}" is not a frame number`);
    const rendered = await ctx.options.render(rec.sopInstanceUid, frame === undefined ? undefined : Number(frame), params);
    return reply.type(rendered.contentType).send(rendered.body);
  };
}
