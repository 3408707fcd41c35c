/**
 * DICOMweb rendered resources and thumbnails (PS3.18 8.3.5 and 9.5.1.2): instances and frames rendered to
 * image/jpeg (default) or image/png with the window, viewport and quality parameters; series and studies
 * as multipart/related of their instances' renderings. Thin: the imaging service (src/imaging) reads,
 * decodes and encodes, in its worker pool.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AtriumError } from '../errors.ts';
import type { InstanceRecord } from '../ports/index-store.ts';
import { chooseMediaType, imagingPool, parseRenderParams, renderInstance, type RenderRequest } from '../imaging/index.ts';
import { randomUUID } from 'node:crypto';
import { DEFAULT_CORS_ORIGINS, registerCors } from './cors.ts';
import type { DicomwebOptions, DicomwebServices } from './context.ts';

export const THUMBNAIL_SIZE = 128;
/** Instances rendered into one series/study multipart answer at most. */
export const MAX_MULTIPART_INSTANCES = 1000;

type Params = { study: string; series?: string; instance?: string; frames?: string };
type Query = Record<string, string | undefined>;

/** Media ranges of the `accept` query parameter (PS3.18 8.3.3.1) or the Accept header, best first. */
export function acceptedTypes(request: FastifyRequest): string[] {
  const query = (request.query as Query).accept;
  const header = query ?? request.headers.accept;
  if (!header || header.trim() === '') return ['image/jpeg'];
  return header.split(',').map((part, index) => {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    const q = params.find((p) => /^q=/i.test(p));
    return { type, q: q ? Number(q.slice(2)) : 1, index };
  }).filter((m) => m.type !== '' && m.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index).map((m) => m.type);
}

function renderRequest(request: FastifyRequest, thumbnail: boolean): RenderRequest {
  const query = { ...(request.query as Query) };
  delete query.contentType; // WADO-URI only
  const parsed = parseRenderParams(query, chooseMediaType(acceptedTypes(request)));
  if (thumbnail && !parsed.viewport) parsed.viewport = { width: THUMBNAIL_SIZE, height: THUMBNAIL_SIZE };
  return parsed;
}

function frameNumber(text: string | undefined): number {
  if (text === undefined) return 1;
  const list = text.split(',').map((s) => s.trim());
  if (list.length !== 1 || !/^[1-9]\d*$/.test(list[0])) {
    throw new AtriumError('invalid-input', `frame list "${text}": one frame number is rendered at a time as ${'image/jpeg or image/png'}`);
  }
  return Number(list[0]);
}

async function instanceIn(archive: DicomwebServices, params: Params): Promise<InstanceRecord> {
  const instance = await archive.index.findInstance(params.instance!);
  if (!instance || instance.studyInstanceUid !== params.study || instance.seriesInstanceUid !== params.series) {
    throw new AtriumError('not-found', `no instance ${params.instance} in series ${params.series} of study ${params.study}`);
  }
  return instance;
}

async function seriesInstances(archive: DicomwebServices, study: string, series: string): Promise<InstanceRecord[]> {
  const record = await archive.index.getSeries(series);
  if (!record || record.studyInstanceUid !== study) throw new AtriumError('not-found', `no series ${series} in study ${study}`);
  const page = await archive.index.listInstances(series, { limit: MAX_MULTIPART_INSTANCES, offset: 0 });
  return page.items;
}

async function studySeries(archive: DicomwebServices, study: string): Promise<string[]> {
  if (!(await archive.index.getStudy(study))) throw new AtriumError('not-found', `no study ${study}`);
  const page = await archive.index.listSeries(study, { limit: 10_000, offset: 0 });
  return page.items.map((s) => s.seriesInstanceUid);
}

function send(reply: FastifyReply, rendered: { contentType: string; body: Buffer }): FastifyReply {
  return reply.type(rendered.contentType).header('cache-control', 'private, max-age=3600').header('vary', 'accept').send(rendered.body);
}

/**
 * Renders instances into one multipart/related body (PS3.18 8.7.3.5), a few at a time so that the pool's
 * threads are all busy without flooding its queue. Instances that are not images are left out.
 */
async function sendMultipart(reply: FastifyReply, archive: DicomwebServices, instances: InstanceRecord[], render: RenderRequest): Promise<FastifyReply> {
  if (instances.length > MAX_MULTIPART_INSTANCES) throw new AtriumError('invalid-input', `more than ${MAX_MULTIPART_INSTANCES} instances to render; ask for them by series or instance`);
  const parts: ({ contentType: string; body: Buffer } | null)[] = new Array(instances.length).fill(null);
  const width = Math.max(1, imagingPool().size * 2);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, instances.length) }, async () => {
    while (next < instances.length) {
      const i = next++;
      try {
        parts[i] = await renderInstance(archive, instances[i].sopInstanceUid, 1, render);
      } catch (error) {
        // Not an image (SR, RT plan...): not part of a rendered series. Other failures fail the request.
        if (error instanceof AtriumError && error.code === 'not-acceptable' && error.details?.reason === 'not-an-image') continue;
        throw error;
      }
    }
  }));
  const rendered = parts.filter((p): p is { contentType: string; body: Buffer } => p !== null);
  if (rendered.length === 0) throw new AtriumError('not-found', 'nothing renderable: no instance here has pixel data');
  const boundary = randomUUID();
  const chunks: Buffer[] = [];
  for (const part of rendered) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${part.contentType}\r\nContent-Length: ${part.body.length}\r\n\r\n`, 'latin1'), part.body, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return reply.type(`multipart/related; type="${render.mediaType}"; boundary=${boundary}`).send(Buffer.concat(chunks));
}

/**
 * Registers the rendered and thumbnail resources under /dicom-web, in a scope of their own with the CORS hook
 * of every DICOMweb route (give the options dicomwebRoutes has; only corsOrigins is read here).
 */
export async function renderedRoutes(parent: FastifyInstance, archive: DicomwebServices, options: DicomwebOptions = {}): Promise<void> {
  await parent.register(async (app) => {
    registerCors(app, options.corsOrigins ?? DEFAULT_CORS_ORIGINS);
    routes(app, archive);
  });
}

function routes(app: FastifyInstance, archive: DicomwebServices): void {
  const base = '/dicom-web/studies/:study';
  const instancePath = `${base}/series/:series/instances/:instance`;

  const instanceHandler = (thumbnail: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
    const params = request.params as Params;
    const render = renderRequest(request, thumbnail);
    const frame = frameNumber(params.frames);
    const instance = await instanceIn(archive, params);
    return send(reply, await renderInstance(archive, instance.sopInstanceUid, frame, render));
  };
  app.get(`${instancePath}/rendered`, instanceHandler(false));
  app.get(`${instancePath}/frames/:frames/rendered`, instanceHandler(false));
  app.get(`${instancePath}/thumbnail`, instanceHandler(true));
  app.get(`${instancePath}/frames/:frames/thumbnail`, instanceHandler(true));

  app.get(`${base}/series/:series/rendered`, async (request, reply) => {
    const params = request.params as Params;
    const render = renderRequest(request, false);
    return sendMultipart(reply, archive, await seriesInstances(archive, params.study, params.series!), render);
  });
  app.get(`${base}/rendered`, async (request, reply) => {
    const params = request.params as Params;
    const render = renderRequest(request, false);
    const instances: InstanceRecord[] = [];
    for (const series of await studySeries(archive, params.study)) instances.push(...(await seriesInstances(archive, params.study, series)));
    return sendMultipart(reply, archive, instances, render);
  });

  // Series thumbnail: its middle instance (by Instance Number), the one most representative of a stack.
  const seriesThumbnail = async (study: string, series: string, render: RenderRequest) => {
    const instances = await seriesInstances(archive, study, series);
    // Start from the middle, then try the others, so that a series with a non-image still has a thumbnail.
    const middle = Math.floor((instances.length - 1) / 2);
    const order = [...instances.slice(middle), ...instances.slice(0, middle).reverse()];
    for (const instance of order) {
      try {
        return await renderInstance(archive, instance.sopInstanceUid, 1, render);
      } catch (error) {
        if ((error as { details?: { reason?: string } }).details?.reason !== 'not-an-image') throw error;
      }
    }
    return null;
  };
  app.get(`${base}/series/:series/thumbnail`, async (request, reply) => {
    const params = request.params as Params;
    const rendered = await seriesThumbnail(params.study, params.series!, renderRequest(request, true));
    if (!rendered) throw new AtriumError('not-found', `series ${params.series} has no image to make a thumbnail of`);
    return send(reply, rendered);
  });
  // Study thumbnail: the thumbnail of its first series that has an image.
  app.get(`${base}/thumbnail`, async (request, reply) => {
    const params = request.params as Params;
    const render = renderRequest(request, true);
    for (const series of await studySeries(archive, params.study)) {
      const rendered = await seriesThumbnail(params.study, series, render);
      if (rendered) return send(reply, rendered);
    }
    throw new AtriumError('not-found', `study ${params.study} has no image to make a thumbnail of`);
  });
}
