import type { Archive } from '../app.ts';
import type { AtriumModule } from '../modules/module.ts';
import { on } from '../events/event-map.ts';
import { DicomClient } from '../dimse/services/scu.ts';
import { outboundTls } from '../dimse/services/tls.ts';
import { risOf } from '../ris/module.ts';
import { migration as prefetchTables } from './migrations/0036_prefetch_tables.ts';
import { PREFETCH_FETCH_JOB, PREFETCH_SEARCH_JOB, onOrderScheduled, onStudyArrived, prefetchFetchJob, prefetchSearchJob, type PrefetchDeps } from './prefetch-service.ts';
import { RETRIEVE_JOB, dicomJobHandlers } from '../exchange/dicom-jobs.ts';
import { PREFETCH_ROUTE_RULES, prefetchRoutes } from './routes.ts';
import { SqlPrefetchStore } from './sql-prefetch-store.ts';

const built = new WeakMap<Archive, PrefetchDeps>();

function depsOf(archive: Archive): PrefetchDeps {
  let deps = built.get(archive);
  if (!deps) {
    const client = new DicomClient(archive, { tls: outboundTls(archive.config) });
    deps = {
      store: new SqlPrefetchStore(archive.database), jobs: archive.jobs, index: archive.index, ris: risOf(archive),
      find: (aeTitle, level, keys) => client.find(aeTitle, level, keys), log: archive.log.child({ module: 'prefetch' }),
    };
    built.set(archive, deps);
  }
  return deps;
}

/**
 * Prior prefetch (issue 12, docs/prefetch.md): rules as data; an order scheduled or its study arriving
 * queues a durable search of Atrium's index and the remote archives, and the relevant priors are
 * retrieved by the exchange's durable retrieve jobs; the status per order is served under /api/prefetch.
 */
export const prefetchModule: AtriumModule = {
  name: 'prefetch',
  migrations: [prefetchTables],
  eventHandlers: (archive) => [
    on('OrderStatusChanged', 'prefetch.order-scheduled', async (event) => {
      if (event.payload.status === 'scheduled') await onOrderScheduled(depsOf(archive), event.payload.accessionNumber);
    }),
    // The first instance of a study whose order was never searched (an unscheduled walk-in): cheap when
    // the study has no order or its order was searched already, which is every later instance.
    on('InstanceStored', 'prefetch.study-arrived', async (event) => {
      if (event.payload.replaced) return;
      const study = await archive.index.getStudy(event.payload.studyInstanceUid);
      await onStudyArrived(depsOf(archive), event.payload.studyInstanceUid, study?.accessionNumber ?? null, 'study-arrived');
    }),
    on('StudyStable', 'prefetch.study-stable', async (event) => {
      await onStudyArrived(depsOf(archive), event.payload.studyInstanceUid, event.payload.accessionNumber, 'study-stable');
    }),
  ],
  jobHandlers: (archive) => {
    const retrieve = dicomJobHandlers(archive, new DicomClient(archive, { tls: outboundTls(archive.config) }))[RETRIEVE_JOB]!;
    return { [PREFETCH_SEARCH_JOB]: prefetchSearchJob(depsOf(archive)), [PREFETCH_FETCH_JOB]: prefetchFetchJob(depsOf(archive), retrieve) };
  },
  routeRules: PREFETCH_ROUTE_RULES,
  httpRoutes: async (app, archive) => { await prefetchRoutes(app, depsOf(archive), archive.audit); },
};
