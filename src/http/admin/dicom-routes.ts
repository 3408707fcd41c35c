import type { FastifyInstance } from 'fastify';
import type { Archive } from '../../app.ts';
import { AtriumError } from '../../errors.ts';
import type { DicomPeerInput } from '../../ports/peer-registry.ts';
import { found, type Params } from './paging.ts';

/** Our application entity and the known DICOM peers (config-defined ones are read-only here). */
export async function dicomRoutes(app: FastifyInstance, archive: Archive): Promise<void> {
  const { peers } = archive;
  const dicom = archive.config.dicom;

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
    return await peers.upsert({ ...body, aeTitle: req.params.ae } as DicomPeerInput);
  });
  app.delete<{ Params: Params }>('/api/dicom/peers/:ae', async (req, reply) => {
    if (!(await peers.delete(req.params.ae))) throw new AtriumError('not-found', `no DICOM peer ${req.params.ae}`);
    return reply.status(204).send();
  });
}
