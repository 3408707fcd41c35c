import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Archive } from '../../app.ts';
import { AtriumError } from '../../errors.ts';
import type { DicomPeerInput } from '../../ports/peer-registry.ts';
import { found, type Params } from './paging.ts';
import type { DicomClient, QueryLevelName } from '../../dimse/services/scu.ts';
import { RETRIEVE_JOB, SEND_JOB, type JobRequester, type RetrievePayload, type SendPayload } from '../../exchange/dicom-jobs.ts';
import { auditPrincipal } from '../../audit/audit-service.ts';
import { PeerAdministration } from '../../audit/administration.ts';
import { interfaceOf } from '../../audit/http-request-audit.ts';
import { headerUrl } from '../../io/header-value.ts';
import type { RouteRules } from '../../security/index.ts';

/** What the DICOM admin routes use: the transport gets these services, not the whole archive. */
export type DicomRoutesDeps = Pick<Archive, 'config' | 'jobs' | 'peers' | 'audit'>;

export interface DicomRouteOptions {
  /** Atrium as an SCU; without it (tests of the REST alone) the peer operations answer 503. */
  client?: DicomClient;
  /** Called after a job is queued, so a runner in this process starts it at once. */
  onJobQueued?: () => void;
}

const LEVELS: QueryLevelName[] = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'];

/**
 * The access rules of these routes, composed by http/access.ts: the DICOM configuration and the peers
 * need admin:config, a C-FIND query, sends and retrieves study:export.
 */
export const DICOM_ROUTE_RULES: RouteRules = {
  'GET /api/dicom': 'admin:config',
  'GET /api/dicom/peers': 'admin:config',
  'GET /api/dicom/peers/:ae': 'admin:config',
  'PUT /api/dicom/peers/:ae': 'admin:config',
  'DELETE /api/dicom/peers/:ae': 'admin:config',
  'POST /api/dicom/peers/:ae/echo': 'admin:config',
  'POST /api/dicom/peers/:ae/find': 'query',
  'POST /api/dicom/peers/:ae/send': 'study:export',
  'POST /api/dicom/peers/:ae/retrieve': 'study:export',
};

/** Our application entity and the known DICOM peers (config-defined ones are read-only here). */
export async function dicomRoutes(app: FastifyInstance, archive: DicomRoutesDeps, options: DicomRouteOptions = {}): Promise<void> {
  const { peers } = archive;
  const dicom = archive.config.dicom;
  // Adding, changing and removing peers is recorded (network-config).
  const admin = new PeerAdministration({ peers, audit: archive.audit });
  const actor = (req: FastifyRequest) => ({ principal: auditPrincipal(req.principal), interface: interfaceOf(req), origin: { address: req.ip } });

  app.get('/api/dicom', async () => ({
    aeTitle: dicom.aeTitle, host: dicom.host, port: dicom.port, tlsPort: dicom.tls?.port ?? null,
    maxAssociations: dicom.maxAssociations, unknownCallers: dicom.unknownCallers,
  }));
  app.get('/api/dicom/peers', async () => ({ items: await peers.list() }));
  app.get<{ Params: Params }>('/api/dicom/peers/:ae', async (req) => found(await peers.get(req.params.ae), `DICOM peer ${req.params.ae}`));
  app.put<{ Params: Params; Body: Partial<DicomPeerInput> }>('/api/dicom/peers/:ae', async (req) => {
    const body = req.body ?? {};
    if (body.aeTitle !== undefined && body.aeTitle !== req.params.ae) {
      throw new AtriumError('invalid-input', `aeTitle in the body ("${body.aeTitle}") differs from the one in the path ("${req.params.ae}")`);
    }
    return await admin.upsert(actor(req), { ...body, aeTitle: req.params.ae } as DicomPeerInput);
  });
  app.delete<{ Params: Params }>('/api/dicom/peers/:ae', async (req, reply) => {
    if (!(await admin.delete(actor(req), req.params.ae))) throw new AtriumError('not-found', `no DICOM peer ${req.params.ae}`);
    return reply.status(204).send();
  });

  const client = () => {
    if (!options.client) throw new AtriumError('unavailable', 'the DICOM client is not running in this process');
    return options.client;
  };
  const level = (value: unknown): QueryLevelName => {
    const l = String(value ?? 'STUDY').toUpperCase() as QueryLevelName;
    if (!LEVELS.includes(l)) throw new AtriumError('invalid-input', `level must be one of ${LEVELS.join(', ')}`);
    return l;
  };
  const keys = (value: unknown): Record<string, string> => {
    if (value === undefined) return {};
    if (typeof value !== 'object' || value === null || Object.values(value).some((v) => typeof v !== 'string')) {
      throw new AtriumError('invalid-input', 'keys must be an object of attribute keyword (or tag) to string value');
    }
    return value as Record<string, string>;
  };

  const requester = (req: FastifyRequest): JobRequester => ({ requestedBy: auditPrincipal(req.principal), requestedThrough: interfaceOf(req) });
  // The peer not answering (refused, timed out, association rejected, a failure status) is the answer an
  // administrator asks for: a 503 whose detail says what happened, not an opaque 500.
  const unavailable = (operation: string, ae: string) => (error: unknown): never => {
    if (error instanceof AtriumError || !(error instanceof Error)) throw error;
    throw new AtriumError('unavailable', `${operation} to ${ae} failed: ${error.message}`);
  };
  app.post<{ Params: Params }>('/api/dicom/peers/:ae/echo', async (req) => await client().echo(req.params.ae).catch(unavailable('C-ECHO', req.params.ae)));
  app.post<{ Params: Params; Body: { level?: string; keys?: Record<string, string> } }>('/api/dicom/peers/:ae/find', async (req) =>
    ({ items: await client().find(req.params.ae, level(req.body?.level), keys(req.body?.keys)).catch(unavailable('C-FIND', req.params.ae)) }));
  app.post<{ Params: Params; Body: Omit<SendPayload, 'destination'> }>('/api/dicom/peers/:ae/send', async (req, reply) => {
    found(await peers.get(req.params.ae), `DICOM peer ${req.params.ae}`);
    // Objects built by Atrium itself (rejection notes) are not taken from a request: only what the archive holds is sent.
    const { objects, ...body } = req.body ?? {};
    if (objects !== undefined) throw new AtriumError('invalid-input', 'objects are not sent from a request: send what the archive holds');
    if (!body.studyInstanceUid && !body.seriesInstanceUid && !body.sopInstanceUids?.length) {
      throw new AtriumError('invalid-input', 'say what to send: studyInstanceUid, seriesInstanceUid or sopInstanceUids');
    }
    const job = await archive.jobs.enqueue<SendPayload>(SEND_JOB, { ...body, destination: req.params.ae, ...requester(req) });
    options.onJobQueued?.();
    return reply.status(202).header('location', headerUrl(`/api/jobs/${encodeURIComponent(job.id)}`)).send(job);
  });
  app.post<{ Params: Params; Body: { level?: string; keys?: Record<string, string>; method?: string } }>('/api/dicom/peers/:ae/retrieve', async (req, reply) => {
    found(await peers.get(req.params.ae), `DICOM peer ${req.params.ae}`);
    const method = req.body?.method ?? 'move';
    if (method !== 'move' && method !== 'get') throw new AtriumError('invalid-input', 'method must be move or get');
    const job = await archive.jobs.enqueue<RetrievePayload>(RETRIEVE_JOB, {
      source: req.params.ae, level: level(req.body?.level), keys: keys(req.body?.keys), method, ...requester(req),
    });
    options.onJobQueued?.();
    return reply.status(202).header('location', headerUrl(`/api/jobs/${encodeURIComponent(job.id)}`)).send(job);
  });
}
