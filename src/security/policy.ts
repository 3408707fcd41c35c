/**
 * The one authorization policy of every transport (admin REST, DICOMweb, DIMSE, UI): roles grant
 * actions, deny by default. A grant is `full` or `own-studies` (the referring clinician's: only
 * studies whose ReferringPhysicianName is one of the principal's person names). A principal with
 * several roles gets the widest grant any of them gives.
 */
import { ACTIONS, type Action, type Principal, type Role } from './types.ts';

type Grant = 'full' | 'own-studies';

/** Role -> action -> grant. Anything not listed is denied. */
export const PERMISSIONS: Readonly<Record<Role, Partial<Record<Action, Grant>>>> = {
  administrator: Object.fromEntries(ACTIONS.map((a) => [a, 'full'])) as Record<Action, Grant>,
  // Radiologists read the orders they report on; technologists also schedule and edit them by hand. Both
  // read dose reports and alerts; reference levels are set by administrators (the medical physicist's account).
  // Radiologists read from the reading worklist (claim, report, acknowledge a critical result for a colleague);
  // releasing another's claim and the SLA table are administrators'. Both radiologists and technologists see
  // integrity findings; technologists, who fix what the modality sent, also acknowledge and resolve them.
  // Both see which priors were fetched for an order; prefetch rules are set by administrators.
  // Radiologists see what the AI nodes said and record whether their report confirms or overrides it; the
  // AI registry is administrators'.
  radiologist: {
    'study:read': 'full', 'study:write': 'full', 'study:export': 'full', query: 'full', 'order:read': 'full', 'dose:read': 'full', 'integrity:read': 'full', 'prefetch:read': 'full',
    'reading:read': 'full', 'reading:claim': 'full', 'critical:ack': 'full', 'ai:read': 'full', 'ai:review': 'full',
  },
  technologist: {
    'study:read': 'full', 'study:write': 'full', 'study:export': 'full', query: 'full', 'order:read': 'full', 'order:write': 'full', 'dose:read': 'full',
    'integrity:read': 'full', 'integrity:write': 'full', 'prefetch:read': 'full',
  },
  // Referring clinicians acknowledge the critical results they are notified of (the notification carries the link).
  'referring-clinician': { 'study:read': 'own-studies', query: 'own-studies', 'critical:ack': 'full' },
  // De-identified access only. Nothing serves de-identified data yet, so in effect: nothing.
  researcher: { 'study:read-deidentified': 'full' },
  // Machines (AI nodes, integrations): pull studies, send results back; API keys narrow it to routes.
  integration: { 'study:read': 'full', 'study:write': 'full', query: 'full', 'order:read': 'full', 'order:write': 'full' },
};

/** What a study-level check needs to know about the study. */
export interface StudyResource {
  studyInstanceUid?: string;
  /** The study's ReferringPhysicianName (PN), null when absent. */
  referringPhysicianName: string | null;
}

export interface Resource {
  /** The study acted on, for study actions (needed to decide a referring clinician's request). */
  study?: StudyResource;
  /** The HTTP path (or a route name) of the request: checked against an API key's route prefixes. */
  route?: string;
}

export interface Decision {
  allowed: boolean;
  /** Readable, for logs, audit records and error details. */
  reason: string;
}

/**
 * Whether `principal` may do `action` (on `resource`). Deny by default: unknown actions, principals
 * without a role granting the action, route-limited API keys outside their routes (or with no route
 * given), referring clinicians on a study that is not theirs or not described.
 */
export function authorize(principal: Principal, action: Action | string, resource: Resource = {}): Decision {
  if (principal.authMethod === 'security-disabled') return { allowed: true, reason: 'security is disabled' };
  if (!(ACTIONS as readonly string[]).includes(action)) return { allowed: false, reason: `unknown action "${action}": denied by default` };
  const who = describe(principal);
  if (principal.routePrefixes !== null) {
    if (resource.route === undefined) return { allowed: false, reason: `${who} is limited to routes ${principal.routePrefixes.join(', ')}; no route given` };
    if (!routeAllowed(principal, resource.route)) return { allowed: false, reason: `${who} is limited to routes ${principal.routePrefixes.join(', ')}, not ${stripQuery(resource.route)}` };
  }
  const grant = grantFor(principal, action as Action);
  if (grant === null) {
    return { allowed: false, reason: principal.roles.length === 0 ? `${who} has no role` : `no role of ${who} (${principal.roles.join(', ')}) grants ${action}` };
  }
  if (grant.grant === 'full') return { allowed: true, reason: `role ${grant.role} grants ${action}` };
  // own-studies
  if (action === 'query') return { allowed: true, reason: `role ${grant.role} may query its own studies (apply studyFilter)` };
  if (!resource.study) return { allowed: false, reason: `role ${grant.role} may ${action} only its own studies, and no study was given` };
  if (matchesPersonNames(resource.study.referringPhysicianName, principal.personNames)) {
    return { allowed: true, reason: `role ${grant.role}: ${who} is the study's referring physician` };
  }
  return { allowed: false, reason: `role ${grant.role}: ${who} is not the study's referring physician` };
}

/**
 * Every action some role of `principal` grants, fully or for its own studies only, in ACTIONS order (all of
 * them when security is disabled). For a user interface to leave out what the principal may never do; each
 * request is still decided by `authorize` (an own-studies grant, an API key's route prefixes).
 */
export function grantedActions(principal: Principal): Action[] {
  if (principal.authMethod === 'security-disabled') return [...ACTIONS];
  return ACTIONS.filter((action) => grantFor(principal, action) !== null);
}

/**
 * What a query (C-FIND, QIDO, UI lists) must be narrowed to for this principal:
 * - `all`: no restriction;
 * - `none`: nothing (the principal may not query at all);
 * - `referring-physician`: studies whose ReferringPhysicianName matches one of `personNames`
 *   (use `studyMatchesFilter` on rows, or match `normalizedPersonNames` against the normalized column:
 *   `normalizePersonName(referring_physician_name) IN normalizedPersonNames`).
 */
export type StudyFilter =
  | { kind: 'all' }
  | { kind: 'none'; reason: string }
  | { kind: 'referring-physician'; personNames: string[]; normalizedPersonNames: string[] };

export function studyFilter(principal: Principal): StudyFilter {
  if (principal.authMethod === 'security-disabled') return { kind: 'all' };
  const grant = grantFor(principal, 'query');
  if (grant === null) return { kind: 'none', reason: `no role of ${describe(principal)} grants query` };
  if (grant.grant === 'full') return { kind: 'all' };
  const normalized = [...new Set(principal.personNames.map(normalizePersonName).filter((n) => n !== ''))];
  if (normalized.length === 0) return { kind: 'none', reason: `${describe(principal)} has no DICOM person name to match referring physicians against` };
  return { kind: 'referring-physician', personNames: [...principal.personNames], normalizedPersonNames: normalized };
}

/** Whether a study (its ReferringPhysicianName) passes a filter from `studyFilter`. */
export function studyMatchesFilter(filter: StudyFilter, study: { referringPhysicianName: string | null }): boolean {
  if (filter.kind === 'all') return true;
  if (filter.kind === 'none') return false;
  return matchesPersonNames(study.referringPhysicianName, filter.personNames);
}

/** Whether an API key's route prefixes allow `route` (prefixes end at a path segment boundary). */
export function routeAllowed(principal: Pick<Principal, 'routePrefixes'>, route: string): boolean {
  if (principal.routePrefixes === null) return true;
  const path = normalizePath(stripQuery(route));
  return principal.routePrefixes.some((prefix) => {
    const p = normalizePath(prefix);
    if (p === '/') return true;
    const base = p.endsWith('/') ? p.slice(0, -1) : p;
    return path === base || path.startsWith(`${base}/`);
  });
}

/**
 * A person name reduced for comparison: the alphabetic group (before any `=`), upper case, each
 * component trimmed, trailing empty components dropped (`Doe^Jane^^` = `DOE^JANE`). A multi-valued
 * ReferringPhysicianName is split by the caller (see matchesPersonNames).
 */
export function normalizePersonName(name: string): string {
  const alphabetic = name.split('=')[0] ?? '';
  const components = alphabetic.split('^').map((c) => c.trim().replace(/\s+/g, ' ').toUpperCase());
  while (components.length > 0 && components[components.length - 1] === '') components.pop();
  return components.join('^');
}

/** Whether any value of a (possibly multi-valued, backslash-separated) PN matches any of `names`. */
export function matchesPersonNames(value: string | null, names: readonly string[]): boolean {
  if (value === null || value === '') return false;
  const wanted = new Set(names.map(normalizePersonName).filter((n) => n !== ''));
  return value.split('\\').some((v) => {
    const n = normalizePersonName(v);
    return n !== '' && wanted.has(n);
  });
}

function grantFor(principal: Principal, action: Action): { role: Role; grant: Grant } | null {
  let best: { role: Role; grant: Grant } | null = null;
  for (const role of principal.roles) {
    const grant = PERMISSIONS[role]?.[action];
    if (grant === 'full') return { role, grant };
    if (grant && !best) best = { role, grant };
  }
  return best;
}

function describe(p: Principal): string {
  return p.kind === 'anonymous' ? 'an anonymous caller' : `${p.kind} ${p.name || p.id}`;
}

function stripQuery(route: string): string {
  const i = route.search(/[?#]/);
  return i === -1 ? route : route.slice(0, i);
}

function normalizePath(path: string): string {
  // Collapse duplicate slashes and resolve dot segments so `/dicomweb/../api` cannot pass a prefix.
  const out: string[] = [];
  for (const raw of path.split('/')) {
    let seg = raw;
    try { seg = decodeURIComponent(raw); } catch { /* keep it as it is */ }
    if (seg.includes('/')) return '/\u0000invalid';
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}${path.endsWith('/') && out.length ? '/' : ''}`;
}
