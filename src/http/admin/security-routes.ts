import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Archive } from '../../app.ts';
import { AtriumError } from '../../errors.ts';
import { AuthError, grantedActions, isRole, type Role, type RouteRules } from '../../security/index.ts';
import { auditPrincipal } from '../../audit/audit-service.ts';
import type { Params } from './paging.ts';
import { headerUrl } from '../../io/header-value.ts';

/** What the security routes use: the transport gets these services, not the whole archive. */
export type SecurityRoutesDeps = Pick<Archive, 'security' | 'audit'>;

type Body = Record<string, unknown> | undefined;

function str(body: Body, key: string, required = true): string | undefined {
  const value = body?.[key];
  if (value === undefined || value === null) {
    if (required) throw new AtriumError('invalid-input', `${key} is required`);
    return undefined;
  }
  if (typeof value !== 'string') throw new AtriumError('invalid-input', `${key} must be a string`);
  return value;
}

function roles(body: Body, required = true): Role[] | undefined {
  const value = body?.roles;
  if (value === undefined && !required) return undefined;
  if (!Array.isArray(value) || value.some((r) => !isRole(r))) throw new AtriumError('invalid-input', 'roles must be a list of Atrium roles');
  return value as Role[];
}

function userId(req: FastifyRequest<{ Params: Params }>): number {
  const id = Number(req.params.id);
  if (!Number.isInteger(id) || id <= 0) throw new AtriumError('invalid-input', `user id must be a positive integer, got "${req.params.id}"`);
  return id;
}

/**
 * The access rules of these routes, composed by http/access.ts: sign-in and first-run setup are public,
 * the session of the caller needs a principal, users and API keys need admin:users.
 */
export const SECURITY_ROUTE_RULES: RouteRules = {
  'POST /api/login': 'public',
  'GET /api/setup': 'public',
  'POST /api/setup': 'public',
  'POST /api/logout': 'authenticated',
  'GET /api/me': 'authenticated',
  'GET /api/users': 'admin:users',
  'POST /api/users': 'admin:users',
  'GET /api/users/:id': 'admin:users',
  'PATCH /api/users/:id': 'admin:users',
  'DELETE /api/users/:id': 'admin:users',
  'PUT /api/users/:id/password': 'admin:users',
  'GET /api/api-keys': 'admin:users',
  'POST /api/api-keys': 'admin:users',
  'DELETE /api/api-keys/:id': 'admin:users',
};

/**
 * Login, logout, first-run setup, the caller's identity, users and API keys. Access rules: SECURITY_ROUTE_RULES
 * above (login and setup are public, users and keys need admin:users).
 */
export async function securityRoutes(app: FastifyInstance, archive: SecurityRoutesDeps): Promise<void> {
  const { security, audit } = archive;
  const origin = (req: FastifyRequest) => ({ address: req.ip });

  app.post<{ Body: Body }>('/api/login', async (req, reply) => {
    const username = str(req.body, 'username')!;
    const result = await security.login(username, str(req.body, 'password')!, req.ip);
    if (result instanceof AuthError) {
      await audit.record({
        principal: { kind: 'user', id: username, displayName: username }, action: 'login-failed', interface: 'rest', origin: origin(req),
        outcome: 'minor-failure', outcomeReason: result.code,
      });
      if (result.retryAfterSeconds !== null) reply.header('retry-after', String(result.retryAfterSeconds));
      return reply.status(result.httpStatus).type('application/problem+json')
        .send({ type: 'about:blank', title: result.httpStatus === 429 ? 'Too Many Requests' : 'Unauthorized', status: result.httpStatus, detail: result.message });
    }
    await audit.record({ principal: auditPrincipal(result.principal), action: 'login', interface: 'rest', origin: origin(req) });
    return reply.header('set-cookie', security.sessionCookie(result)).header('cache-control', 'no-store')
      .send({ user: result.principal.name, roles: result.principal.roles, expiresAt: result.expiresAt });
  });

  app.post('/api/logout', async (req, reply) => {
    const principal = req.principal!;
    if (principal.authMethod === 'session') {
      const m = /(?:^|;\s*)atrium_session=([^;]+)/.exec(req.headers.cookie ?? '');
      if (m) await security.logout(m[1]);
    }
    await audit.record({ principal: auditPrincipal(principal), action: 'logout', interface: 'rest', origin: origin(req) });
    return reply.header('set-cookie', security.clearSessionCookie()).status(204).send();
  });

  // Whether the first administrator is still to be created (the login page then shows the setup form).
  app.get('/api/setup', async () => ({ needed: await security.needsSetup() }));
  app.post<{ Body: Body }>('/api/setup', async (req, reply) => {
    const user = await security.createFirstAdmin({
      username: str(req.body, 'username')!, password: str(req.body, 'password')!,
      displayName: str(req.body, 'displayName', false) ?? null, setupToken: str(req.body, 'setupToken', false),
    });
    return reply.status(201).send(user);
  });

  app.get('/api/me', async (req) => {
    const p = req.principal!;
    // actions: what the roles grant (an own-studies grant included), so that a console hides what this caller may never use.
    return {
      kind: p.kind, id: p.id, name: p.name, roles: p.roles, authMethod: p.authMethod, routePrefixes: p.routePrefixes, personNames: p.personNames,
      actions: grantedActions(p),
    };
  });

  // Users.
  app.get('/api/users', async () => ({ items: await security.listUsers() }));
  app.post<{ Body: Body }>('/api/users', async (req, reply) => {
    const user = await security.createUser({
      username: str(req.body, 'username')!, password: str(req.body, 'password')!, roles: roles(req.body)!,
      displayName: str(req.body, 'displayName', false) ?? null, dicomPersonName: str(req.body, 'dicomPersonName', false) ?? null,
    });
    return reply.status(201).header('location', headerUrl(`/api/users/${encodeURIComponent(user.id)}`)).send(user);
  });
  app.get<{ Params: Params }>('/api/users/:id', async (req) => {
    const user = await security.getUser(userId(req));
    if (!user) throw new AtriumError('not-found', `no user ${req.params.id}`);
    return user;
  });
  app.patch<{ Params: Params; Body: Body }>('/api/users/:id', async (req) => {
    const body = req.body ?? {};
    const disabled = body.disabled;
    if (disabled !== undefined && typeof disabled !== 'boolean') throw new AtriumError('invalid-input', 'disabled must be true or false');
    const user = await security.updateUser(userId(req), {
      ...(body.roles !== undefined ? { roles: roles(body) } : {}),
      ...('displayName' in body ? { displayName: str(body, 'displayName', false) ?? null } : {}),
      ...('dicomPersonName' in body ? { dicomPersonName: str(body, 'dicomPersonName', false) ?? null } : {}),
      ...(disabled !== undefined ? { disabled } : {}),
    });
    if (!user) throw new AtriumError('not-found', `no user ${req.params.id}`);
    return user;
  });
  app.put<{ Params: Params; Body: Body }>('/api/users/:id/password', async (req, reply) => {
    if (!(await security.setPassword(userId(req), str(req.body, 'password')!))) throw new AtriumError('not-found', `no user ${req.params.id}`);
    return reply.status(204).send();
  });
  app.delete<{ Params: Params }>('/api/users/:id', async (req, reply) => {
    if (!(await security.deleteUser(userId(req)))) throw new AtriumError('not-found', `no user ${req.params.id}`);
    return reply.status(204).send();
  });

  // API keys: the secret is in the creation answer only.
  app.get('/api/api-keys', async () => ({ items: await security.listApiKeys() }));
  app.post<{ Body: Body }>('/api/api-keys', async (req, reply) => {
    const body = req.body ?? {};
    const prefixes = body.routePrefixes;
    if (prefixes !== undefined && prefixes !== null && (!Array.isArray(prefixes) || prefixes.some((p) => typeof p !== 'string'))) {
      throw new AtriumError('invalid-input', 'routePrefixes must be a list of paths, or null');
    }
    const expires = body.expiresAt;
    let expiresAt: Date | null | undefined;
    if (expires === null) expiresAt = null;
    else if (expires !== undefined) {
      expiresAt = new Date(String(expires));
      if (Number.isNaN(expiresAt.getTime())) throw new AtriumError('invalid-input', 'expiresAt must be an ISO-8601 date-time, or null');
    }
    const created = await security.createApiKey({
      name: str(body, 'name')!, roles: roles(body)!, routePrefixes: (prefixes as string[] | null | undefined) ?? null,
      ...(expiresAt !== undefined ? { expiresAt } : {}), createdBy: req.principal?.name ?? null,
    });
    return reply.status(201).header('cache-control', 'no-store').send(created);
  });
  app.delete<{ Params: Params }>('/api/api-keys/:id', async (req, reply) => {
    if (!(await security.revokeApiKey(req.params.id))) throw new AtriumError('not-found', `no API key ${req.params.id}`);
    return reply.status(204).send();
  });
}
