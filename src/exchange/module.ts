import type { AtriumModule } from '../modules/module.ts';
import { migration as jobsAndPeers } from './migrations/0002_exchange_jobs_and_peers.ts';
import { migration as peerLastContact } from './migrations/0009_exchange_peer_last_contact.ts';
import { dicomJobHandlers } from './dicom-jobs.ts';
import { DicomClient } from '../dimse/services/scu.ts';
import { outboundTls } from '../dimse/services/tls.ts';

/**
 * Exchange with other DICOM nodes: the peers registry, the durable job queue, and the jobs that run on it
 * (sends, retrieves, storage commitment results delivered later).
 */
export const exchangeModule: AtriumModule = {
  name: 'exchange',
  migrations: [jobsAndPeers, peerLastContact],
  jobHandlers: (archive) => dicomJobHandlers(archive, new DicomClient(archive, { tls: outboundTls(archive.config) })),
};
