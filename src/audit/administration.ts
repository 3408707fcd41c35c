/**
 * Administrative changes with their audit records: users and API keys (security-change), DICOM peers
 * (network-config), durable jobs (job-control). Every transport that changes these (the admin REST API,
 * the `atrium user` / `atrium api-key` commands) calls these classes rather than the services beneath,
 * so that each change makes exactly one record, whoever asks and however, with its outcome: a refused
 * change (a weak password, an unknown user, a read-only peer) is recorded as a failure and rethrown.
 *
 * A record names what changed (user name, key id and name, AE title, job id) and which attributes were
 * set, never a secret: no password, no API key, no hash of either.
 */
import { AtriumError } from '../errors.ts';
import { normalizeUsername } from '../security/index.ts';
import type { ApiKeyView, NewApiKey, NewUser, Role, SecurityService, UserView } from '../security/index.ts';
import type {
  AuditAction, AuditObjectRef, AuditOutcome,
} from '../ports/audit-store.ts';
import type { DicomPeer, DicomPeerInput, PeerRegistry } from '../ports/peer-registry.ts';
import type { Job, JobQueue } from '../ports/job-queue.ts';
import type { AuditActor, AuditService } from './audit-service.ts';

export type { AuditActor };

/** A refusal the caller could fix (minor) or a failure of the archive (serious), as the record's outcome. */
function failureOf(error: unknown): { outcome: AuditOutcome; outcomeReason: string } {
  const minor = error instanceof AtriumError && ['invalid-input', 'not-found', 'conflict', 'forbidden', 'unprocessable'].includes(error.code);
  const message = error instanceof Error ? error.message : String(error);
  return { outcome: minor ? 'minor-failure' : 'serious-failure', outcomeReason: message.slice(0, 500) };
}

interface Change<T> {
  action: AuditAction;
  /** The object as recorded, from the result (undefined when the change threw). */
  object: (result: T | undefined) => AuditObjectRef;
  run: () => Promise<T>;
  /** Why a result is a failure (an operation that answers null or false for "no such thing"). */
  missing?: (result: T) => string | null;
  detail?: (result: T | undefined) => string | null;
}

/**
 * Runs one change and records it (success, or the failure, then rethrown). The record is written after
 * the change: a failing audit store fails the request (the change is made, and the caller is told that
 * its record is not).
 */
async function audited<T>(audit: AuditService, actor: AuditActor, change: Change<T>): Promise<T> {
  const base = { principal: actor.principal, interface: actor.interface, origin: actor.origin ?? null, action: change.action };
  let result: T;
  try {
    result = await change.run();
  } catch (error) {
    await audit.record({ ...base, objects: [change.object(undefined)], detail: change.detail?.(undefined) ?? null, ...failureOf(error) });
    throw error;
  }
  const missing = change.missing?.(result) ?? null;
  await audit.record({
    ...base, objects: [change.object(result)], detail: change.detail?.(result) ?? null,
    ...(missing ? { outcome: 'minor-failure' as const, outcomeReason: missing } : {}),
  });
  return result;
}

/** Names of the attributes a patch sets (its keys with a value given). */
function attributesOf(patch: object): string[] {
  return Object.entries(patch).filter(([, v]) => v !== undefined).map(([k]) => k);
}

const rolesText = (roles: readonly Role[] | undefined): string | null => roles === undefined ? null : `roles: ${roles.length ? roles.join(', ') : '(none)'}`;

/** Users and API keys (SecurityService), recorded as security-change. */
export class SecurityAdministration {
  readonly #security: SecurityService;
  readonly #audit: AuditService;

  constructor(deps: { security: SecurityService; audit: AuditService }) {
    this.#security = deps.security;
    this.#audit = deps.audit;
  }

  async createUser(actor: AuditActor, input: NewUser): Promise<UserView> {
    return await audited(this.#audit, actor, {
      action: 'security-change',
      run: () => this.#security.createUser(input),
      object: (user) => ({
        type: 'user', id: user?.username ?? (normalizeUsername(String(input.username ?? '')) || '(none)'), change: 'created',
        attributes: ['password', ...attributesOf({ roles: input.roles, displayName: input.displayName ?? undefined, dicomPersonName: input.dicomPersonName ?? undefined })],
      }),
      detail: (user) => rolesText(user?.roles ?? input.roles),
    });
  }

  /** The first administrator (POST /api/setup: the caller holds the setup token, or is the local CLI). */
  async createFirstAdmin(actor: AuditActor, input: Parameters<SecurityService['createFirstAdmin']>[0]): Promise<UserView> {
    return await audited(this.#audit, actor, {
      action: 'security-change',
      run: () => this.#security.createFirstAdmin(input),
      object: (user) => ({
        type: 'user', id: user?.username ?? (normalizeUsername(String(input.username ?? '')) || '(none)'), change: 'created',
        attributes: ['password', 'roles', ...(input.displayName ? ['displayName'] : [])],
      }),
      detail: () => 'first administrator (first-run setup); roles: administrator',
    });
  }

  async updateUser(actor: AuditActor, id: number, patch: Parameters<SecurityService['updateUser']>[1]): Promise<UserView | null> {
    const before = await this.#security.getUser(id);
    const attributes = attributesOf(patch);
    const change = patch.disabled === true ? 'disabled' : patch.disabled === false ? 'enabled' : 'updated';
    return await audited(this.#audit, actor, {
      action: 'security-change',
      run: () => this.#security.updateUser(id, patch),
      object: () => ({ type: 'user', id: before?.username ?? `#${id}`, change, attributes }),
      missing: (user) => user ? null : `no user ${id}`,
      detail: () => patch.roles !== undefined ? `${rolesText(patch.roles)} (were ${before?.roles.join(', ') || '(none)'})` : null,
    });
  }

  async setPassword(actor: AuditActor, id: number, password: string): Promise<boolean> {
    const before = await this.#security.getUser(id);
    return await audited(this.#audit, actor, {
      action: 'security-change',
      run: () => this.#security.setPassword(id, password),
      object: () => ({ type: 'user', id: before?.username ?? `#${id}`, change: 'password-set', attributes: ['password'] }),
      missing: (done) => done ? null : `no user ${id}`,
    });
  }

  async deleteUser(actor: AuditActor, id: number): Promise<boolean> {
    const before = await this.#security.getUser(id);
    return await audited(this.#audit, actor, {
      action: 'security-change',
      run: () => this.#security.deleteUser(id),
      object: () => ({ type: 'user', id: before?.username ?? `#${id}`, change: 'deleted' }),
      missing: (done) => done ? null : `no user ${id}`,
      detail: () => before ? rolesText(before.roles) : null,
    });
  }

  /** The key itself is in the answer only; the record has its id and name. */
  async createApiKey(actor: AuditActor, input: NewApiKey): Promise<{ key: string; apiKey: ApiKeyView }> {
    return await audited(this.#audit, actor, {
      action: 'security-change',
      run: () => this.#security.createApiKey(input),
      object: (created) => ({
        type: 'api-key', id: created?.apiKey.keyId ?? '(none)', name: created?.apiKey.name ?? (typeof input.name === 'string' ? input.name : null), change: 'created',
        attributes: attributesOf({ roles: input.roles, routePrefixes: input.routePrefixes ?? undefined, expiresAt: input.expiresAt }),
      }),
      detail: (created) => [rolesText(created?.apiKey.roles ?? input.roles),
        created ? `expires ${created.apiKey.expiresAt ?? 'never'}` : null,
        created?.apiKey.routePrefixes ? `routes ${created.apiKey.routePrefixes.join(', ')}` : null].filter((s) => s !== null).join('; ') || null,
    });
  }

  async revokeApiKey(actor: AuditActor, keyId: string): Promise<boolean> {
    const before = (await this.#security.listApiKeys()).find((k) => k.keyId === keyId) ?? null;
    return await audited(this.#audit, actor, {
      action: 'security-change',
      run: () => this.#security.revokeApiKey(keyId),
      object: () => ({ type: 'api-key', id: keyId || '(none)', name: before?.name ?? null, change: 'revoked' }),
      missing: (done) => done ? null : `no API key ${keyId}`,
    });
  }
}

/** DICOM peers (PeerRegistry), recorded as network-config. */
export class PeerAdministration {
  readonly #peers: PeerRegistry;
  readonly #audit: AuditService;

  constructor(deps: { peers: PeerRegistry; audit: AuditService }) {
    this.#peers = deps.peers;
    this.#audit = deps.audit;
  }

  async upsert(actor: AuditActor, input: DicomPeerInput): Promise<DicomPeer> {
    const before = await this.#peers.get(input.aeTitle);
    return await audited(this.#audit, actor, {
      action: 'network-config',
      run: () => this.#peers.upsert(input),
      object: (peer) => ({
        type: 'dicom-peer', id: peer?.aeTitle ?? (String(input.aeTitle ?? '').trim() || '(none)'), change: before ? 'updated' : 'created',
        attributes: attributesOf({ ...input, aeTitle: undefined }),
      }),
      detail: (peer) => peer ? `${peer.host}:${peer.port}${peer.tls ? ' (TLS)' : ''}; operations: ${peer.operations.join(', ') || '(none)'}` : null,
    });
  }

  async delete(actor: AuditActor, aeTitle: string): Promise<boolean> {
    const before = await this.#peers.get(aeTitle);
    return await audited(this.#audit, actor, {
      action: 'network-config',
      run: () => this.#peers.delete(aeTitle),
      object: () => ({ type: 'dicom-peer', id: aeTitle || '(none)', change: 'deleted' }),
      missing: (done) => done ? null : `no DICOM peer ${aeTitle}`,
      detail: () => before ? `${before.host}:${before.port}` : null,
    });
  }
}

/** Durable jobs (JobQueue): cancel and retry, recorded as job-control. */
export class JobAdministration {
  readonly #jobs: JobQueue;
  readonly #audit: AuditService;

  constructor(deps: { jobs: JobQueue; audit: AuditService }) {
    this.#jobs = deps.jobs;
    this.#audit = deps.audit;
  }

  async cancel(actor: AuditActor, id: string | number): Promise<Job | null> {
    return await this.#control(actor, id, 'cancelled', (n) => this.#jobs.cancel(n));
  }

  async retry(actor: AuditActor, id: string | number): Promise<Job | null> {
    return await this.#control(actor, id, 'retried', (n) => this.#jobs.retry(n));
  }

  async #control(actor: AuditActor, id: string | number, change: string, run: (id: number) => Promise<Job | null>): Promise<Job | null> {
    const n = Number(id);
    return await audited(this.#audit, actor, {
      action: 'job-control',
      run: async () => Number.isInteger(n) && n > 0 ? await run(n) : null,
      object: (job) => ({ type: 'job', id: String(id) || '(none)', name: job?.type ?? null, change }),
      missing: (job) => job ? null : `no job ${id}`,
      detail: (job) => job ? `state now ${job.state}` : null,
    });
  }
}
