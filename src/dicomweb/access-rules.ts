/**
 * The access rules of every DICOMweb route (routes.ts, stow.ts, rendered.ts, the preflights of cors.ts),
 * composed with the other areas' tables by src/http/access.ts. A DICOMweb route added without a rule here
 * is denied (403), and the security matrix test (src/http/security-matrix.test.ts) fails.
 */
import type { RouteRules } from '../security/index.ts';
import { DICOMWEB_PREFIX as DW } from './context.ts';

const DW_STUDY = `${DW}/studies/:study`;
const DW_INSTANCE = `${DW_STUDY}/series/:series/instances/:sop`;
const DW_RENDERED_INSTANCE = `${DW_STUDY}/series/:series/instances/:instance`;

export const DICOMWEB_ROUTE_RULES: RouteRules = {
  // CORS preflights of every /dicom-web path (cors.ts).
  [`OPTIONS ${DW}/*`]: 'public',
  // QIDO-RS.
  [`GET ${DW}/studies`]: 'query',
  [`GET ${DW}/series`]: 'query',
  [`GET ${DW}/instances`]: 'query',
  [`GET ${DW_STUDY}/series`]: 'query',
  [`GET ${DW_STUDY}/instances`]: 'query',
  [`GET ${DW_STUDY}/series/:series/instances`]: 'query',
  // WADO-RS, WADO-URI (also at the root /wado), rendered (rendered.ts).
  [`GET ${DW_STUDY}`]: 'study:read',
  [`GET ${DW_STUDY}/series/:series`]: 'study:read',
  [`GET ${DW_INSTANCE}`]: 'study:read',
  [`GET ${DW_STUDY}/metadata`]: 'study:read',
  [`GET ${DW_STUDY}/series/:series/metadata`]: 'study:read',
  [`GET ${DW_INSTANCE}/metadata`]: 'study:read',
  [`GET ${DW_INSTANCE}/frames/:frames`]: 'study:read',
  [`GET ${DW_INSTANCE}/bulkdata/*`]: 'study:read',
  [`GET ${DW}/wado`]: 'study:read',
  'GET /wado': 'study:read',
  [`GET ${DW_RENDERED_INSTANCE}/rendered`]: 'study:read',
  [`GET ${DW_RENDERED_INSTANCE}/frames/:frames/rendered`]: 'study:read',
  [`GET ${DW_RENDERED_INSTANCE}/thumbnail`]: 'study:read',
  [`GET ${DW_RENDERED_INSTANCE}/frames/:frames/thumbnail`]: 'study:read',
  [`GET ${DW_STUDY}/series/:series/rendered`]: 'study:read',
  [`GET ${DW_STUDY}/rendered`]: 'study:read',
  [`GET ${DW_STUDY}/series/:series/thumbnail`]: 'study:read',
  [`GET ${DW_STUDY}/thumbnail`]: 'study:read',
  // STOW-RS (stow.ts).
  [`POST ${DW}/studies`]: 'study:write',
  [`POST ${DW_STUDY}`]: 'study:write',
};
