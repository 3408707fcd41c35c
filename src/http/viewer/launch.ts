/**
 * Viewer launch in context (IHE Invoke Image Display style): an EHR opens `/launch?...` with a patient, an
 * accession number or a Study Instance UID (launch-request.ts); after sign-in (the access hook sends a
 * browser without a session to /login and back), the person lands in OHIF on that study, or on the
 * patient's study list. Refusals and misses are pages a person can read: 400 (the URL names nothing),
 * 403 (no role, or not their patient), 404 (no such study), 409 (two patients under that ID, or a study of
 * another patient). Every launch is in the audit trail. See docs/ehr.md.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Archive } from '../../app.ts';
import { auditPrincipal } from '../../audit/audit-service.ts';
import { AtriumError } from '../../errors.ts';
import type { AuditEventInput } from '../../ports/audit-store.ts';
import type { StudyRecord } from '../../ports/index-store.ts';
import { authorize, PERMISSIONS, type Principal, type RouteRules } from '../../security/index.ts';
import { sendNoticePage, type NoticePage } from '../page.ts';
import { parseLaunchRequest, resolveLaunch, type LaunchMiss, type LaunchRequest } from './launch-request.ts';
import { OHIF_EXACT_DATA_SOURCE } from './routes.ts';

/**
 * study:read, checked by the access hook (no role: 403); a referring clinician's own-studies grant is
 * checked here, study by study (the route's `checksOwnStudies`), since a patient launch names no study.
 */
export const LAUNCH_ROUTE_RULES: RouteRules = {
  'GET /launch': 'study:read',
};

/** Studies one launch opens in the viewer at most when they are not shown as the patient's study list. */
export const MAX_VIEWER_STUDIES = 50;

/** Where OHIF shows what a launch names. */
export function viewerTarget(request: LaunchRequest, studies: StudyRecord[], wholePatient: boolean): string {
  if (request.requestType === 'PATIENT' && studies.length > 1 && wholePatient) {
    // The study list, filtered on the Patient ID by the data source that matches it exactly.
    return `/?mrn=${encodeURIComponent(request.patient!.id)}&datasources=${OHIF_EXACT_DATA_SOURCE}`;
  }
  // OHIF's viewer takes a list; it shows the first and lists the others in its studies panel.
  return `/viewer?StudyInstanceUIDs=${studies.slice(0, MAX_VIEWER_STUDIES).map((s) => s.studyInstanceUid).join(',')}`;
}

/** Whether the principal reaches study:read only through an own-studies grant (a referring clinician). */
function ownStudiesOnly(principal: Principal): boolean {
  if (principal.authMethod === 'security-disabled') return false;
  const grants = principal.roles.map((r) => PERMISSIONS[r]?.['study:read']);
  return !grants.includes('full') && grants.includes('own-studies');
}

function missPage(miss: LaunchMiss): NoticePage {
  switch (miss.kind) {
    case 'not-found':
      return {
        status: 404, title: 'Study not found',
        message: 'The archive holds no images for what this link asks for. The study may not have been sent yet, or the link names another archive.',
        details: miss.missing.map((m) => `No study for ${m}`),
      };
    case 'ambiguous-patient':
      return {
        status: 409, title: 'Which patient?',
        message: `Patient ID ${miss.patientId} belongs to patients of several issuers. Open the link with the issuer (patientID=${miss.patientId}^^^<issuer>, or issuer=<issuer>).`,
        details: miss.issuers.map((i) => `Issuer ${i}`),
      };
    case 'other-patient':
      return {
        status: 409, title: 'Study of another patient',
        message: 'The link names a patient and a study that is not that patient\'s. Nothing is shown, so that no images are shown under the wrong patient.',
        details: miss.studies.map((s) => `Study ${s.studyInstanceUid} is patient ${s.patientId}${s.issuer ? ` (issuer ${s.issuer})` : ''}'s`),
      };
  }
}

const studyRef = (s: StudyRecord) => ({ studyInstanceUid: s.studyInstanceUid, patientId: s.patient.patientId, accessionNumber: s.accessionNumber });

export async function launchRoutes(app: FastifyInstance, archive: Pick<Archive, 'index' | 'audit'>): Promise<void> {
  app.get('/launch', { config: { page: true, checksOwnStudies: true, auditsItself: true } }, async (request: FastifyRequest, reply: FastifyReply) => {
    const principal = request.principal!;
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '';
    const record = async (input: Partial<AuditEventInput>) => {
      await archive.audit.record({
        principal: auditPrincipal(principal), action: 'read', interface: 'ui', origin: { address: request.ip }, query, ...input,
      }).catch((error) => request.log.error({ err: error }, 'audit record failed'));
    };
    const refuse = async (page: NoticePage, outcomeReason: string, detail: string, patientIds?: string[]) => {
      await record({ outcome: 'minor-failure', outcomeReason, detail, ...(patientIds ? { patientIds } : {}) });
      return sendNoticePage(reply, page);
    };

    let launch: LaunchRequest;
    try {
      launch = parseLaunchRequest(request.query as Record<string, unknown>);
    } catch (error) {
      if (!(error instanceof AtriumError) || error.code !== 'invalid-input') throw error;
      return await refuse({ status: 400, title: 'This link names no study', message: error.message,
        details: ['A launch needs patientID (and issuer), studyUID or accessionNumber: see Atrium\'s docs/ehr.md'] }, `invalid: ${error.message}`, 'viewer launch');
    }
    const what = `viewer launch (${launch.requestType})`;
    const patientIds = launch.patient ? [launch.patient.id] : undefined;
    const resolved = await resolveLaunch(archive.index, launch);
    // A referring clinician is told the same whether nothing matches or nothing matching is theirs: the
    // difference would tell them which patients have images here.
    const restricted = ownStudiesOnly(principal);
    const notTheirs: NoticePage = {
      status: 403, title: 'Not allowed',
      message: 'None of what this link asks for is a study you may view: you see the studies you are the referring physician of. It may also not be in the archive yet.',
    };
    if (resolved.miss) {
      if (restricted) return await refuse(notTheirs, `not found or not the principal's: ${resolved.miss.kind}`, what, patientIds);
      return await refuse(missPage(resolved.miss), `${resolved.miss.kind === 'not-found' ? 'not found' : resolved.miss.kind}`, what, patientIds);
    }
    const decisions = resolved.studies.map((study) => ({
      study, decision: authorize(principal, 'study:read', { route: request.url, study: { studyInstanceUid: study.studyInstanceUid, referringPhysicianName: study.referringPhysicianName } }),
    }));
    const allowed = decisions.filter((d) => d.decision.allowed).map((d) => d.study);
    const denied = decisions.filter((d) => !d.decision.allowed);
    // A patient launch shows the studies the person may see; a study launch shows all it names, or none.
    if (allowed.length === 0 || (launch.requestType === 'STUDY' && denied.length > 0)) {
      const reason = denied[0]?.decision.reason ?? 'no study';
      return await refuse(restricted ? notTheirs : { status: 403, title: 'Not allowed', message: 'You may not view these images.', details: [reason] },
        `denied: ${reason}`, what, patientIds);
    }
    const target = viewerTarget(launch, allowed, resolved.wholePatient);
    await record({
      outcome: 'success', studies: allowed.map(studyRef), ...(patientIds ? { patientIds } : {}),
      detail: `${what}: ${allowed.length} ${allowed.length === 1 ? 'study' : 'studies'}, ${target.startsWith('/viewer') ? 'in the viewer' : 'the patient\'s study list'}`,
    });
    return reply.header('cache-control', 'no-store').redirect(target);
  });
}
