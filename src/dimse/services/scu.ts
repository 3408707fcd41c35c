import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { Archive } from '../../app.ts';
import { requestAssociation, type RequestedContext } from '../requestor.ts';
import { echo } from '../echo.ts';
import { CommandField, Priority } from '../command.ts';
import { Status, describeStatus, statusCategory } from '../status.ts';
import { parseDataset } from '../../dicom/parse-dataset.ts';
import { toDicomJson, type DicomJsonDataSet } from '../../dicom/dicom-json.ts';
import { tagOfKeyword, vrOf } from '../../dicom/dictionary.ts';
import { AtriumError } from '../../errors.ts';
import type { DicomPeer } from '../../ports/peer-registry.ts';
import { encodeJsonDataset } from './identifier.ts';
import { handleStore, storeStatus } from './store-scp.ts';
import { getStorageContexts } from './get-contexts.ts';
import { QueryRetrieve, UNCOMPRESSED } from './sop-classes.ts';
import { preparedContexts, storageContexts, storeInstances, storePrepared, type PreparedObject, type SubOperationCounts } from './store-scu.ts';
import { contacting, subOperations } from './peer-contact.ts';
import type { InstanceRecord } from '../../ports/index-store.ts';
import { skipFileMeta } from '../../archive/retrieve.ts';
import { imagingPool, transcodeInstance } from '../../imaging/index.ts';

export type QueryLevelName = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

/**
 * Atrium as an SCU towards a known peer: C-ECHO, C-STORE of stored instances, C-FIND, and retrieval into
 * the archive by C-MOVE (to ourselves) or C-GET (on the same association, through the ingest pipeline).
 */
export class DicomClient {
  readonly #archive: Archive;
  readonly #log: Logger;
  readonly #tls: ConnectionOptions | undefined;

  constructor(archive: Archive, options: { tls?: ConnectionOptions } = {}) {
    this.#archive = archive;
    this.#log = archive.log.child({ transport: 'dimse-scu' });
    this.#tls = options.tls;
  }

  async peer(aeTitle: string): Promise<DicomPeer> {
    const peer = await this.#archive.peers.get(aeTitle);
    if (!peer) throw new AtriumError('not-found', `no DICOM peer ${aeTitle}; add it to the configuration or with PUT /api/dicom/peers/${aeTitle}`);
    return peer;
  }

  #connection(peer: DicomPeer) {
    return {
      host: peer.host, port: peer.port, callingAETitle: this.#archive.config.dicom.aeTitle, calledAETitle: peer.aeTitle,
      maxPduLength: this.#archive.config.dicom.maxPduLength, logger: this.#log,
      ...(peer.tls ? { tls: { ...this.#tls, minVersion: 'TLSv1.2' as const } } : {}),
    };
  }

  /** Runs an operation on a known peer's association and records it as the peer's last contact. */
  #contacting<T>(peer: DicomPeer, operation: string, run: () => Promise<T>, summary: (result: T) => { ok: boolean; detail: string }): Promise<T> {
    return contacting(this.#archive.applicationEntities, peer.aeTitle, operation, run, summary);
  }

  async echo(aeTitle: string): Promise<{ status: number; description: string }> {
    const peer = await this.peer(aeTitle);
    const status = await this.#contacting(peer, 'C-ECHO', () => echo(this.#connection(peer)),
      (s) => ({ ok: statusCategory(s) === 'success', detail: describeStatus(s) }));
    return { status, description: describeStatus(status) };
  }

  /** C-STORE of stored instances to the peer, each in its stored transfer syntax. */
  async send(aeTitle: string, sopInstanceUids: string[], options: {
    signal?: AbortSignal; onProgress?: (c: SubOperationCounts) => Promise<void> | void; transferSyntaxes?: string[];
    /** Objects not in the archive (rejection notes), sent first on the same association. */
    objects?: PreparedObject[];
  } = {}): Promise<SubOperationCounts> {
    const peer = await this.peer(aeTitle);
    const instances = (await Promise.all(sopInstanceUids.map((u) => this.#archive.index.findInstance(u)))).filter((i) => i !== null);
    const missing = sopInstanceUids.length - instances.length;
    if (instances.length === 0) throw new AtriumError('not-found', 'none of the instances to send is in the archive');
    return await this.#contacting(peer, 'C-STORE', async () => {
      const fallbackSyntaxes = options.transferSyntaxes ?? [];
      const prepared = options.objects ?? [];
      const association = await requestAssociation({ ...this.#connection(peer), contexts: [...preparedContexts(prepared), ...storageContexts(instances, { fallback: fallbackSyntaxes })].slice(0, 128) });
      // Transcoding only when asked (routing rules): by default Atrium sends what it stored, unchanged.
      const fallback = fallbackSyntaxes.length ? {
        transferSyntaxes: fallbackSyntaxes,
        transcode: async (instance: InstanceRecord, ts: string) => skipFileMeta(await transcodeInstance(this.#archive, instance, ts, { pool: imagingPool() })),
      } : undefined;
      try {
        const before = { remaining: prepared.length, completed: 0, failed: 0, warning: 0, failedSopInstanceUids: [] as string[] };
        if (prepared.length) await storePrepared(association, prepared, this.#log, before);
        const counts = await storeInstances(association, instances.map((i) => i.sopInstanceUid),
          { index: this.#archive.index, retrieve: this.#archive.retrieve, log: this.#log, ...(fallback ? { fallback } : {}) }, options);
        counts.completed += before.completed;
        counts.warning += before.warning;
        counts.failed += before.failed;
        counts.failedSopInstanceUids.unshift(...before.failedSopInstanceUids);
        await association.release();
        return counts;
      } catch (error) {
        if (association.isOpen) association.abort();
        throw error;
      }
    }, (counts) => ({ ok: counts.failed === 0, detail: subOperations(counts) })).then((counts) => {
      // Instances not in the archive count as failed for the caller, not against the peer.
      counts.failed += missing;
      return counts;
    });
  }

  /** C-FIND on the peer (Study Root, or Patient Root for PATIENT level); keys by keyword or 8-hex tag. */
  async find(aeTitle: string, level: QueryLevelName, keys: Record<string, string>): Promise<DicomJsonDataSet[]> {
    const sopClass = level === 'PATIENT' ? QueryRetrieve.PatientRootFind : QueryRetrieve.StudyRootFind;
    const peer = await this.peer(aeTitle);
    return await this.#contacting(peer, 'C-FIND', () => this.#find(peer, sopClass, level, keys),
      (results) => ({ ok: true, detail: `${results.length} match${results.length === 1 ? '' : 'es'}` }));
  }

  async #find(peer: DicomPeer, sopClass: string, level: QueryLevelName, keys: Record<string, string>): Promise<DicomJsonDataSet[]> {
    const aeTitle = peer.aeTitle;
    const association = await requestAssociation({ ...this.#connection(peer), contexts: [{ abstractSyntax: sopClass, transferSyntaxes: UNCOMPRESSED }] });
    try {
      const pc = association.findContext(sopClass);
      if (!pc) throw new AtriumError('unavailable', `${aeTitle} does not accept C-FIND (${sopClass})`);
      const results: DicomJsonDataSet[] = [];
      let final: number | undefined;
      for await (const rsp of association.request(pc.id, { CommandField: CommandField.C_FIND_RQ, AffectedSOPClassUID: sopClass, Priority: Priority.Medium },
        encodeJsonDataset(identifier(level, keys), pc.transferSyntax))) {
        if (statusCategory(rsp.command.Status ?? 0) === 'pending' && rsp.dataset) results.push(toDicomJson(parseDataset(rsp.dataset, pc.transferSyntax)));
        else final = rsp.command.Status;
      }
      await association.release();
      if (final !== undefined && statusCategory(final) === 'failure') throw new AtriumError('unavailable', `C-FIND on ${aeTitle}: ${describeStatus(final)}`);
      return results;
    } catch (error) {
      if (association.isOpen) association.abort();
      throw error;
    }
  }

  /**
   * Retrieves from the peer into the archive. C-MOVE asks the peer to send to us (the peer must know our AE
   * title and address); C-GET receives on the same association, as the storage SCP for the classes the study
   * holds (SOP Classes in Study, asked by a C-FIND first when the keys name one study and the peer answers)
   * or else the usual image, SR and document classes, each compressed syntax in a context of its own
   * (get-contexts.ts) so that objects come back as they are stored.
   */
  async retrieve(aeTitle: string, level: Exclude<QueryLevelName, 'PATIENT'> | 'PATIENT', keys: Record<string, string>, method: 'move' | 'get',
    options: { signal?: AbortSignal; onProgress?: (c: Partial<SubOperationCounts>) => Promise<void> | void } = {}): Promise<RetrieveResult> {
    const peer = await this.peer(aeTitle);
    const classes = method === 'get' ? await this.#classesToCome(aeTitle, level, keys) : undefined;
    return await this.#contacting(peer, `C-${method.toUpperCase()}`, () => this.#retrieve(peer, level, keys, method, classes, options),
      (r) => ({ ok: statusCategory(r.status) === 'success', detail: `${describeStatus(r.status)} (${subOperations(r)})` }));
  }

  async #retrieve(peer: DicomPeer, level: QueryLevelName, keys: Record<string, string>, method: 'move' | 'get', classes: string[] | undefined,
    options: { signal?: AbortSignal; onProgress?: (c: Partial<SubOperationCounts>) => Promise<void> | void }): Promise<RetrieveResult> {
    const aeTitle = peer.aeTitle;
    const patientRoot = level === 'PATIENT';
    const sopClass = method === 'move'
      ? (patientRoot ? QueryRetrieve.PatientRootMove : QueryRetrieve.StudyRootMove)
      : (patientRoot ? QueryRetrieve.PatientRootGet : QueryRetrieve.StudyRootGet);
    const contexts: RequestedContext[] = [{ abstractSyntax: sopClass, transferSyntaxes: UNCOMPRESSED }];
    if (method === 'get') contexts.push(...getStorageContexts(classes));
    const association = await requestAssociation({ ...this.#connection(peer), contexts });
    // What the sub-operations of a C-GET did on our side: an object that never arrived was not sent by the peer.
    const stores = { received: 0, failedTransient: 0, failedPermanent: 0 };
    if (method === 'get') {
      association.onRequest(async (request) => {
        if (request.command.CommandField === CommandField.C_STORE_RQ) {
          stores.received++;
          const result = await handleStore(request, association, { ingest: this.#archive.ingest, log: this.#log });
          const status = result ? storeStatus(result) : Status.OutOfResources;
          if (statusCategory(status) === 'failure') {
            // Out of resources (our storage or index failed) may pass; a malformed or conflicting object will not.
            if (status === Status.OutOfResources) stores.failedTransient++;
            else stores.failedPermanent++;
          }
          return;
        }
        await request.dataset?.discard();
        await association.respond(request, { Status: Status.UnrecognizedOperation });
      });
    }
    try {
      const pc = association.findContext(sopClass);
      if (!pc) {
        throw new OperationNotAcceptedError(`${aeTitle} does not accept C-${method.toUpperCase()} (${sopClass}): presentation context rejected` +
          `${association.contexts[0] ? ` (result ${association.contexts[0].result})` : ''}`);
      }
      const command = {
        CommandField: method === 'move' ? CommandField.C_MOVE_RQ : CommandField.C_GET_RQ, AffectedSOPClassUID: sopClass, Priority: Priority.Medium,
        MessageID: association.nextMessageId(),
        ...(method === 'move' ? { MoveDestination: this.#archive.config.dicom.aeTitle } : {}),
      };
      const last: RetrieveResult = { status: Status.ProcessingFailure, completed: 0, failed: 0, warning: 0 };
      const abort = () => {
        // The peer stops between sub-operations and answers with Cancel.
        association.cancel(pc.id, command.MessageID).catch(() => {});
      };
      options.signal?.addEventListener('abort', abort, { once: true });
      for await (const rsp of association.request(pc.id, command, encodeJsonDataset(identifier(level, keys), pc.transferSyntax))) {
        const c = rsp.command;
        last.status = c.Status ?? Status.ProcessingFailure;
        last.completed = c.NumberOfCompletedSuboperations ?? last.completed;
        last.failed = c.NumberOfFailedSuboperations ?? last.failed;
        last.warning = c.NumberOfWarningSuboperations ?? last.warning;
        if (c.ErrorComment) last.errorComment = c.ErrorComment;
        if (rsp.dataset && statusCategory(last.status) !== 'pending') {
          const failed = failedSopInstanceUids(rsp.dataset, rsp.datasetTransferSyntax ?? pc.transferSyntax);
          if (failed.length) last.failedSopInstanceUids = failed;
        }
        await options.onProgress?.({ remaining: c.NumberOfRemainingSuboperations, completed: last.completed, failed: last.failed, warning: last.warning });
      }
      options.signal?.removeEventListener('abort', abort);
      await association.release();
      if (method === 'get') last.stores = stores;
      return last;
    } catch (error) {
      if (association.isOpen) association.abort();
      throw error;
    }
  }

  /**
   * The SOP classes a C-GET may bring: those of the study (SOP Classes in Study from the peer), for a retrieve
   * of one study or of series or instances of one study (Study Root keys name it); undefined when not known.
   */
  async #classesToCome(aeTitle: string, level: QueryLevelName, keys: Record<string, string>): Promise<string[] | undefined> {
    const study = keys.StudyInstanceUID ?? keys['0020000D'] ?? keys['0020000d'];
    if (level === 'PATIENT' || !study || study.includes('\\') || /[*?]/.test(study)) return undefined;
    try {
      const [match] = await this.find(aeTitle, 'STUDY', { StudyInstanceUID: study, SOPClassesInStudy: '' });
      const classes = (match?.['00080062']?.Value ?? []).filter((v): v is string => typeof v === 'string' && /^[0-9.]+$/.test(v));
      return classes.length ? classes : undefined;
    } catch (error) {
      this.#log.debug({ peer: aeTitle, err: (error as Error).message }, 'C-GET: SOP Classes in Study not known; proposing the default storage classes');
      return undefined;
    }
  }
}

/** The outcome of a C-MOVE or C-GET: the final status and sub-operation counts, and what the peer said failed. */
export interface RetrieveResult {
  status: number;
  completed: number;
  failed: number;
  warning: number;
  /** The Failed SOP Instance UID List (0008,0058) of the final response. */
  failedSopInstanceUids?: string[];
  /** Error Comment (0000,0902) of the last response, when the peer gave one. */
  errorComment?: string;
  /** C-GET: the C-STORE sub-operations that reached Atrium, and those Atrium failed (transiently: out of resources; or not). */
  stores?: { received: number; failedTransient: number; failedPermanent: number };
}

/** The peer does not accept the operation (its presentation context was rejected): asking again will not change that. */
export class OperationNotAcceptedError extends AtriumError {
  constructor(message: string) {
    super('unavailable', message);
    this.name = 'OperationNotAcceptedError';
  }
}

function failedSopInstanceUids(dataset: Uint8Array, transferSyntax: string): string[] {
  try {
    const el = parseDataset(dataset, transferSyntax).elements.find((e) => e.tag === 0x00080058);
    if (!el?.value) return [];
    return new TextDecoder('latin1').decode(el.value).replace(/[\0 ]+$/, '').split('\\').map((u) => u.trim()).filter(Boolean);
  } catch {
    return [];
  }
}

/** Keys by keyword ("PatientName") or tag ("00100010"), values as DICOM text; '' asks for a return key. */
function identifier(level: QueryLevelName, keys: Record<string, string>): DicomJsonDataSet {
  const ds: DicomJsonDataSet = { '00080052': { vr: 'CS', Value: [level] } };
  for (const [name, value] of Object.entries(keys)) {
    const tag = /^[0-9A-Fa-f]{8}$/.test(name) ? Number.parseInt(name, 16) : tagOfKeyword(name);
    if (tag === undefined) throw new AtriumError('invalid-input', `unknown attribute "${name}"`);
    const vr = vrOf(tag);
    const hex = tag.toString(16).toUpperCase().padStart(8, '0');
    ds[hex] = value === '' ? { vr } : { vr, Value: vr === 'PN' ? [{ Alphabetic: value }] : value.split('\\') };
  }
  return ds;
}
