import type { ProposedContext } from '../acceptor.ts';
import type { Association, IncomingRequest } from '../association.ts';
import type { DicomOperation } from '../../ports/peer-registry.ts';
import type { AuditAction, AuditEventInput } from '../../ports/audit-store.ts';
import type { Action, Principal } from '../../security/index.ts';
import type { Logger } from 'pino';
import { UNCOMPRESSED } from './sop-classes.ts';

/**
 * One DIMSE service Atrium offers, as the association acceptor and the dispatcher read it: which presentation
 * contexts are its own, what a peer and a user must be allowed, and the handler of its requests. The core's
 * services (verification, storage, query, move, get, storage commitment) are defined like this in their
 * files; an area adds one (Modality Worklist, MPPS, UPS ...) by listing it in its module's `dimseServices`,
 * with no edit of the dispatcher (docs/architecture.md "Adding a DIMSE service").
 */
export interface DimseService {
  /** For logs: "storage", "query", "worklist" ... */
  name: string;
  /**
   * Whether a proposed presentation context belongs to this service. A predicate rather than a list: storage
   * is a rule over the 1.2.840.10008.5.1.4.1.1 arc, and C-GET claims storage contexts in which the requester
   * asks to be the SCP. The first service that accepts a context gets it.
   */
  accepts(context: Pick<ProposedContext, 'abstractSyntax' | 'scuRole' | 'scpRole'>): boolean;
  /** The requests (CommandField of the -RQ) it answers on its contexts; none for contexts it only sends on. */
  commands: readonly number[];
  /** What the calling AE must be permitted (the AE registry) for its contexts to be accepted. */
  operation: DicomOperation;
  /**
   * What an authenticated user (User Identity negotiation) must be authorized for, checked per request;
   * null when any caller may. AE-only callers were already gated by `operation` at negotiation.
   */
  action: Action | null;
  /** The audit action of a request refused for want of `action`. */
  auditAction: AuditAction | null;
  /** The transfer syntax accepted for a context, chosen among the proposed ones; undefined refuses them all. */
  transferSyntax(proposed: readonly string[]): string | undefined;
  /** The answer to SCP/SCU Role Selection (PS3.7 D.3.3.4) for an accepted context, if the service takes part. */
  roles?(context: ProposedContext): { scuRole: boolean; scpRole: boolean } | undefined;
  /** The answer to SOP Class Extended Negotiation (PS3.7 D.3.3.5), if the service takes part. */
  extendedNegotiation?(sopClass: string, applicationInformation: Uint8Array): Uint8Array | undefined;
  /** Answers one request; the dispatcher has checked `action` already. */
  handle(request: DimseRequest): Promise<void>;
  /** Finishes what the service keeps in flight (audit records) once the listeners have closed. */
  close?(): Promise<void>;
}

/** One request as a service's handler gets it. */
export interface DimseRequest {
  request: IncomingRequest;
  association: Association;
  /** Who is asking: a user (User Identity) or the calling AE. */
  principal: Principal;
  /** The fields every audit record of this association shares (who, through which interface, from where). */
  audit: Pick<AuditEventInput, 'principal' | 'interface' | 'origin'>;
  /** Aborted by a C-CANCEL-RQ for this request. */
  signal: AbortSignal;
}

/** The choice of services whose contexts carry only commands and identifiers. */
export function uncompressedTransferSyntax(proposed: readonly string[]): string | undefined {
  return UNCOMPRESSED.find((ts) => proposed.includes(ts));
}

/**
 * An audit record a service writes beside its work: its failure is logged, never the failure of the request
 * (the audit service keeps its own retry and drain on close).
 */
export function auditAside(written: Promise<unknown>, log: Logger): Promise<void> {
  return written.then(() => {}, (error) => { log.error({ err: error }, 'audit record failed'); });
}

/** The services of one DICOM listener, in the order they claim contexts; negotiation and dispatch read it. */
export class DimseServiceRegistry {
  readonly services: readonly DimseService[];

  constructor(services: readonly DimseService[]) {
    const names = new Set<string>();
    for (const service of services) {
      if (names.has(service.name)) throw new Error(`two DIMSE services are named "${service.name}"`);
      names.add(service.name);
    }
    this.services = services;
  }

  /** The service a proposed presentation context is for, if any. */
  forContext(context: Pick<ProposedContext, 'abstractSyntax' | 'scuRole' | 'scpRole'>): DimseService | undefined {
    return this.services.find((s) => s.accepts(context));
  }

  /** The service that answers a request (its CommandField) on an accepted context of this abstract syntax. */
  forRequest(commandField: number, abstractSyntax: string): DimseService | undefined {
    return this.services.find((s) => s.commands.includes(commandField) && s.accepts({ abstractSyntax }));
  }

  /** The extended negotiation answer for one SOP class, from the service whose contexts it names. */
  extendedNegotiation(sopClass: string, applicationInformation: Uint8Array): Uint8Array | undefined {
    return this.forContext({ abstractSyntax: sopClass })?.extendedNegotiation?.(sopClass, applicationInformation);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.services.map((s) => s.close?.()));
  }
}
