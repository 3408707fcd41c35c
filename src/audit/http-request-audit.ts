/**
 * Audit records of HTTP requests that the access hook (http/access.ts) cannot write alone: the stores of
 * STOW-RS and POST /api/instances, whose outcome per study is known only to the route. Here, not in
 * http/, so that the DICOMweb transport does not import the HTTP host that registers it.
 */
import type { FastifyRequest } from 'fastify';
import type { Archive } from '../app.ts';
import { auditPrincipal } from './audit-service.ts';

/** What the record of a store needs: the transport gets these services, not the whole archive. */
export type StoredAuditDeps = Pick<Archive, 'audit'>;

/**
 * The interface an HTTP request came through, as the audit trail names it. The DICOMweb and FHIR paths are
 * spelled here rather than imported: dicomweb/ and fhir/ sit above audit/ in the layers.
 */
export function interfaceOf(request: FastifyRequest): 'dicomweb' | 'fhir' | 'rest' {
  const url = request.routeOptions.url ?? request.url;
  if (url.startsWith('/fhir/')) return 'fhir';
  return url.startsWith('/dicom-web') || url === '/wado' ? 'dicomweb' : 'rest';
}

/** What a store request (STOW-RS, POST /api/instances) stored: one audit record per study, with its counts. */
export async function auditStored(archive: StoredAuditDeps, request: FastifyRequest,
  items: { studyInstanceUid: string | null; seriesInstanceUid?: string | null; sopClassUid?: string | null; stored: boolean }[]): Promise<void> {
  const principal = request.principal;
  if (!principal) return; // a server without the access hook (test fixtures)
  const base = { principal: auditPrincipal(principal), action: 'store' as const, interface: interfaceOf(request), origin: { address: request.ip } };
  try {
    const ok = archive.audit.accumulator(base);
    const failed = archive.audit.accumulator(base);
    for (const item of items) {
      if (!item.studyInstanceUid) continue;
      (item.stored ? ok : failed).add({
        studyInstanceUid: item.studyInstanceUid, ...(item.seriesInstanceUid ? { seriesInstanceUid: item.seriesInstanceUid } : {}),
        ...(item.sopClassUid ? { sopClassUid: item.sopClassUid } : {}),
      });
    }
    await ok.flush();
    await failed.flush({ outcome: 'minor-failure', outcomeReason: 'some instances were not stored' });
    if (ok.size === 0 && failed.size === 0 && items.every((i) => !i.studyInstanceUid)) {
      await archive.audit.record({ ...base, outcome: 'minor-failure', outcomeReason: 'nothing was stored', detail: `${request.method} ${request.url}` });
    }
  } catch (error) {
    request.log.error({ err: error }, 'audit record failed');
  }
}
