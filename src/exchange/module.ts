import type { AtriumModule } from '../modules/module.ts';
import { migration as jobsAndPeers } from './migrations/0002_exchange_jobs_and_peers.ts';

/** Exchange with other DICOM nodes: the peers registry and the durable job queue its sends and retrieves run on. */
export const exchangeModule: AtriumModule = { name: 'exchange', migrations: [jobsAndPeers] };
