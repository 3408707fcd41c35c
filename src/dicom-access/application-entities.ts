import type { ContactOutcome, DicomOperation, DicomPeer, PeerRegistry } from '../ports/peer-registry.ts';

export interface ApplicationEntitiesConfig {
  /** Our own AE title. */
  aeTitle: string;
  /** What a calling AE title that is not a known peer may do. */
  unknownCallers: readonly DicomOperation[];
}

export interface Permission {
  allowed: boolean;
  /** Readable, for the association log and the audit record. */
  reason: string;
}

/**
 * Our DICOM identity and our peers: whether a calling AE may do an operation (a known peer: its own
 * operations; anyone else: `unknownCallers`), and where C-MOVE may send (known peers only: a C-MOVE
 * destination is never taken from the request alone).
 */
export class ApplicationEntities {
  readonly #peers: PeerRegistry;
  readonly #config: ApplicationEntitiesConfig;
  readonly #onContactError: (error: unknown, aeTitle: string) => void;
  readonly #clock: () => Date;

  /** `onContactError`: told when the last contact of a peer could not be recorded (which fails nothing else). */
  constructor(deps: { peers: PeerRegistry; config: ApplicationEntitiesConfig; onContactError?: (error: unknown, aeTitle: string) => void; clock?: () => Date }) {
    this.#peers = deps.peers;
    this.#config = deps.config;
    this.#onContactError = deps.onContactError ?? (() => {});
    this.#clock = deps.clock ?? (() => new Date());
  }

  /** Our AE title. */
  get aeTitle(): string {
    return this.#config.aeTitle.trim();
  }

  /** Whether an association's Called AE Title is ours (leading and trailing spaces do not count). */
  isCalled(calledAETitle: string): boolean {
    return calledAETitle.trim() === this.aeTitle;
  }

  async findPeer(aeTitle: string): Promise<DicomPeer | null> {
    const title = aeTitle.trim();
    return title === '' ? null : await this.#peers.get(title);
  }

  async permits(callingAETitle: string, operation: DicomOperation): Promise<Permission> {
    const title = callingAETitle.trim();
    const peer = await this.findPeer(title);
    if (peer) {
      return peer.operations.includes(operation)
        ? { allowed: true, reason: `known peer ${title} may ${operation}` }
        : { allowed: false, reason: `known peer ${title} may not ${operation} (allowed: ${list(peer.operations)})` };
    }
    const unknown = this.#config.unknownCallers;
    return unknown.includes(operation)
      ? { allowed: true, reason: `unknown calling AE ${title || '(empty)'}: unknown callers may ${operation}` }
      : { allowed: false, reason: `unknown calling AE ${title || '(empty)'} may not ${operation} (unknown callers may: ${list(unknown)})` };
  }

  /**
   * Records an association with `aeTitle` (ours to it or its to us) as the peer's last contact: one UPDATE,
   * nothing when it is no known peer. Never rejects: an index that cannot take the row must not fail the
   * association it describes (the error goes to `onContactError`).
   */
  async recordContact(aeTitle: string, outcome: ContactOutcome, detail: string): Promise<void> {
    const title = aeTitle.trim();
    if (title === '' || title === this.aeTitle) return;
    try {
      await this.#peers.recordContact(title, { at: this.#clock(), outcome, detail });
    } catch (error) {
      try { this.#onContactError(error, title); } catch { /* a logger that throws changes nothing */ }
    }
  }

  /** Where a C-MOVE to `aeTitle` goes: a known peer, or null (the move is refused: move destination unknown). */
  async destination(aeTitle: string): Promise<DicomPeer | null> {
    return await this.findPeer(aeTitle);
  }
}

function list(operations: readonly string[]): string {
  return operations.length ? operations.join(', ') : 'nothing';
}
