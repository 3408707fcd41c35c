/**
 * Known DICOM application entities (peers): who may call us for what, and where C-MOVE may send.
 * Peers come from the configuration (`dicom.peers`, re-synced at every start) or from the admin API.
 */

/** What a DICOM peer may ask of us: C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET, Storage Commitment. */
export type DicomOperation = 'echo' | 'store' | 'find' | 'move' | 'get' | 'commit';

export const DICOM_OPERATIONS: readonly DicomOperation[] = ['echo', 'store', 'find', 'move', 'get', 'commit'];

export interface DicomPeer {
  /** Trimmed (DICOM ignores leading and trailing spaces in an AE title); compared case-sensitively. */
  aeTitle: string;
  host: string;
  port: number;
  tls: boolean;
  operations: DicomOperation[];
  description: string | null;
  source: 'config' | 'api';
  createdAt: string;
  updatedAt: string;
  /** When Atrium last had an association with the peer, either way (ISO-8601 UTC); null before the first. */
  lastContactAt: string | null;
  /** Whether that contact did what was asked (the association, and the operation on it). */
  lastContactOutcome: ContactOutcome | null;
  /** What happened, in one line: "C-ECHO: Success", "connection refused", "inbound association accepted"... */
  lastContactDetail: string | null;
}

export type ContactOutcome = 'ok' | 'failed';

/** One contact with a peer, as recorded by whoever opened or accepted the association. */
export interface PeerContact {
  at: Date;
  outcome: ContactOutcome;
  detail: string;
}

/**
 * A peer as configured or posted: `tls` defaults to false, `description` to null, and `operations` to all of
 * them (listing a peer, in the configuration or through the API, is the decision to trust it; an explicit
 * list, even an empty one, restricts it).
 */
export interface DicomPeerInput {
  aeTitle: string;
  host: string;
  port: number;
  tls?: boolean;
  operations?: DicomOperation[];
  description?: string | null;
}

export interface PeerRegistry {
  /** By AE title. */
  list(): Promise<DicomPeer[]>;
  get(aeTitle: string): Promise<DicomPeer | null>;
  /**
   * Creates or replaces an API-managed peer. Throws AtriumError('invalid-input') for an invalid peer and
   * AtriumError('conflict') for a peer defined in the configuration (change it there).
   */
  upsert(peer: DicomPeerInput): Promise<DicomPeer>;
  /** Deletes an API-managed peer; false when there is none. AtriumError('conflict') for a configured one. */
  delete(aeTitle: string): Promise<boolean>;
  /**
   * Makes the configured peers true at start: each is created or updated and marked source=config (an
   * API peer of the same AE title is taken over); API peers not in the configuration are untouched;
   * configured peers no longer in the configuration are deleted. One transaction.
   */
  syncFromConfig(peers: DicomPeerInput[]): Promise<{ created: number; updated: number; deleted: number }>;
  /**
   * Records the last contact with the peer `aeTitle` (one UPDATE; nothing for an AE title that is no known
   * peer). Called once per association, in or out; callers never let its failure fail the association.
   */
  recordContact(aeTitle: string, contact: PeerContact): Promise<void>;
}

/**
 * Why a value is not a valid AE title (PS3.5 6.2, VR AE: 1 to 16 characters of the default repertoire,
 * no backslash, no control characters, not only spaces), or null when it is one.
 */
export function aeTitleProblem(value: unknown): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return 'must not be empty';
  if (value.length > 16) return `must be at most 16 characters, "${value}" has ${value.length}`;
  if (value.trim() === '') return 'must not be only spaces';
  if (value.includes('\\')) return `must not contain a backslash, got "${value}"`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'must not contain control characters';
  if (/[^\u0020-\u007e]/.test(value)) return `must contain only printable ASCII characters, got "${value}"`;
  return null;
}

/** Why a peer is invalid (every problem, prefixed with `where`), or an empty list. */
export function peerProblems(peer: unknown, where = 'peer'): string[] {
  const problems: string[] = [];
  if (!peer || typeof peer !== 'object') return [`${where} must be an object`];
  const p = peer as Record<string, unknown>;
  const ae = aeTitleProblem(p.aeTitle);
  if (ae) problems.push(`${where}.aeTitle ${ae}`);
  if (typeof p.host !== 'string' || p.host.trim() === '') problems.push(`${where}.host must be a non-empty host name or address`);
  if (!Number.isInteger(p.port) || (p.port as number) < 1 || (p.port as number) > 65535) problems.push(`${where}.port must be a whole number from 1 to 65535, got "${p.port}"`);
  if (p.tls !== undefined && typeof p.tls !== 'boolean') problems.push(`${where}.tls must be true or false`);
  if (p.operations === undefined) { /* all operations: peerOperations() */ }
  else if (!Array.isArray(p.operations)) problems.push(`${where}.operations must be a list of ${DICOM_OPERATIONS.join(', ')} (or left out for all of them)`);
  else for (const op of p.operations) {
    if (!DICOM_OPERATIONS.includes(op)) problems.push(`${where}.operations: "${op}" is not one of ${DICOM_OPERATIONS.join(', ')}`);
  }
  if (p.description !== undefined && p.description !== null && typeof p.description !== 'string') problems.push(`${where}.description must be text`);
  return problems;
}

/** The operations of a peer input, once each in a stable order; all of them when it lists none (one rule for configuration and API). */
export function peerOperations(peer: Pick<DicomPeerInput, 'operations'>): DicomOperation[] {
  const listed = peer.operations ?? DICOM_OPERATIONS;
  return DICOM_OPERATIONS.filter((op) => listed.includes(op));
}
