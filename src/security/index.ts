/** The security core: authentication (local users, sessions, API keys, OIDC, DIMSE identities) and one authorization policy. */
export * from './types.ts';
export type { RouteRule, RouteRules } from './route-rule.ts';
export { authorize, grantedActions, studyFilter, studyMatchesFilter, routeAllowed, normalizePersonName, matchesPersonNames, PERMISSIONS } from './policy.ts';
export type { Decision, Resource, StudyFilter, StudyResource } from './policy.ts';
export { SecurityService, SESSION_COOKIE, anonymousPrincipal, normalizeUsername } from './security-service.ts';
export type { ApiKeyView, DicomUserIdentity, LoginResult, NewApiKey, NewUser, SecurityServiceOptions, UserView } from './security-service.ts';
export { OidcVerifier, mapRoles } from './oidc.ts';
export { hashPassword, verifyPassword, DEFAULT_SCRYPT } from './secrets.ts';
export type { ScryptParams } from './secrets.ts';
