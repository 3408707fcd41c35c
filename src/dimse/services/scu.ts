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
import * as TS from '../../dicom/transfer-syntax.ts';
import { encodeJsonDataset } from './identifier.ts';
import { handleStore } from './store-scp.ts';
import { QueryRetrieve, UNCOMPRESSED } from './sop-classes.ts';
import { storageContexts, storeInstances, type SubOperationCounts } from './store-scu.ts';

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

  async echo(aeTitle: string): Promise<{ status: number; description: string }> {
    const status = await echo(this.#connection(await this.peer(aeTitle)));
    return { status, description: describeStatus(status) };
  }

  /** C-STORE of stored instances to the peer, each in its stored transfer syntax. */
  async send(aeTitle: string, sopInstanceUids: string[], options: { signal?: AbortSignal; onProgress?: (c: SubOperationCounts) => Promise<void> | void } = {}): Promise<SubOperationCounts> {
    const peer = await this.peer(aeTitle);
    const instances = (await Promise.all(sopInstanceUids.map((u) => this.#archive.index.findInstance(u)))).filter((i) => i !== null);
    const missing = sopInstanceUids.length - instances.length;
    if (instances.length === 0) throw new AtriumError('not-found', 'none of the instances to send is in the archive');
    const association = await requestAssociation({ ...this.#connection(peer), contexts: storageContexts(instances) });
    try {
      const counts = await storeInstances(association, instances.map((i) => i.sopInstanceUid),
        { index: this.#archive.index, retrieve: this.#archive.retrieve, log: this.#log }, options);
      await association.release();
      counts.failed += missing;
      return counts;
    } catch (error) {
      if (association.isOpen) association.abort();
      throw error;
    }
  }

  /** C-FIND on the peer (Study Root, or Patient Root for PATIENT level); keys by keyword or 8-hex tag. */
  async find(aeTitle: string, level: QueryLevelName, keys: Record<string, string>): Promise<DicomJsonDataSet[]> {
    const sopClass = level === 'PATIENT' ? QueryRetrieve.PatientRootFind : QueryRetrieve.StudyRootFind;
    const association = await requestAssociation({ ...this.#connection(await this.peer(aeTitle)), contexts: [{ abstractSyntax: sopClass, transferSyntaxes: UNCOMPRESSED }] });
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
   * title and address); C-GET receives on the same association, offering to be the storage SCP for the
   * usual image, SR and document classes.
   */
  async retrieve(aeTitle: string, level: Exclude<QueryLevelName, 'PATIENT'> | 'PATIENT', keys: Record<string, string>, method: 'move' | 'get',
    options: { signal?: AbortSignal; onProgress?: (c: Partial<SubOperationCounts>) => Promise<void> | void } = {}): Promise<{ status: number; completed: number; failed: number; warning: number }> {
    const peer = await this.peer(aeTitle);
    const patientRoot = level === 'PATIENT';
    const sopClass = method === 'move'
      ? (patientRoot ? QueryRetrieve.PatientRootMove : QueryRetrieve.StudyRootMove)
      : (patientRoot ? QueryRetrieve.PatientRootGet : QueryRetrieve.StudyRootGet);
    const contexts: RequestedContext[] = [{ abstractSyntax: sopClass, transferSyntaxes: UNCOMPRESSED }];
    if (method === 'get') contexts.push(...GET_STORAGE_CLASSES.map((c) => ({ abstractSyntax: c, transferSyntaxes: GET_TRANSFER_SYNTAXES, scuRole: false, scpRole: true })));
    const association = await requestAssociation({ ...this.#connection(peer), contexts });
    if (method === 'get') {
      association.onRequest(async (request) => {
        if (request.command.CommandField === CommandField.C_STORE_RQ) {
          await handleStore(request, association, { ingest: this.#archive.ingest, log: this.#log });
          return;
        }
        await request.dataset?.discard();
        await association.respond(request, { Status: Status.UnrecognizedOperation });
      });
    }
    try {
      const pc = association.findContext(sopClass);
      if (!pc) throw new AtriumError('unavailable', `${aeTitle} does not accept C-${method.toUpperCase()} (${sopClass})`);
      const command = {
        CommandField: method === 'move' ? CommandField.C_MOVE_RQ : CommandField.C_GET_RQ, AffectedSOPClassUID: sopClass, Priority: Priority.Medium,
        MessageID: association.nextMessageId(),
        ...(method === 'move' ? { MoveDestination: this.#archive.config.dicom.aeTitle } : {}),
      };
      let last = { status: Status.ProcessingFailure as number, completed: 0, failed: 0, warning: 0 };
      const abort = () => {
        // The peer stops between sub-operations and answers with Cancel.
        association.cancel(pc.id, command.MessageID).catch(() => {});
      };
      options.signal?.addEventListener('abort', abort, { once: true });
      for await (const rsp of association.request(pc.id, command, encodeJsonDataset(identifier(level, keys), pc.transferSyntax))) {
        const c = rsp.command;
        last = { status: c.Status ?? Status.ProcessingFailure, completed: c.NumberOfCompletedSuboperations ?? last.completed,
          failed: c.NumberOfFailedSuboperations ?? last.failed, warning: c.NumberOfWarningSuboperations ?? last.warning };
        await options.onProgress?.({ remaining: c.NumberOfRemainingSuboperations, completed: last.completed, failed: last.failed, warning: last.warning });
      }
      options.signal?.removeEventListener('abort', abort);
      await association.release();
      return last;
    } catch (error) {
      if (association.isOpen) association.abort();
      throw error;
    }
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

/** Storage classes offered for C-GET (at most 127 contexts remain beside the C-GET one). */
const GET_STORAGE_CLASSES = [
  '1.2.840.10008.5.1.4.1.1.1', '1.2.840.10008.5.1.4.1.1.1.1', '1.2.840.10008.5.1.4.1.1.1.2', '1.2.840.10008.5.1.4.1.1.1.3',
  '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.2.1', '1.2.840.10008.5.1.4.1.1.3.1', '1.2.840.10008.5.1.4.1.1.4',
  '1.2.840.10008.5.1.4.1.1.4.1', '1.2.840.10008.5.1.4.1.1.6.1', '1.2.840.10008.5.1.4.1.1.7', '1.2.840.10008.5.1.4.1.1.7.1',
  '1.2.840.10008.5.1.4.1.1.7.2', '1.2.840.10008.5.1.4.1.1.7.3', '1.2.840.10008.5.1.4.1.1.7.4', '1.2.840.10008.5.1.4.1.1.12.1',
  '1.2.840.10008.5.1.4.1.1.12.2', '1.2.840.10008.5.1.4.1.1.20', '1.2.840.10008.5.1.4.1.1.128', '1.2.840.10008.5.1.4.1.1.130',
  '1.2.840.10008.5.1.4.1.1.481.1', '1.2.840.10008.5.1.4.1.1.481.2', '1.2.840.10008.5.1.4.1.1.481.3', '1.2.840.10008.5.1.4.1.1.481.5',
  '1.2.840.10008.5.1.4.1.1.88.11', '1.2.840.10008.5.1.4.1.1.88.22', '1.2.840.10008.5.1.4.1.1.88.33', '1.2.840.10008.5.1.4.1.1.88.67',
  '1.2.840.10008.5.1.4.1.1.104.1', '1.2.840.10008.5.1.4.1.1.66.4', '1.2.840.10008.5.1.4.1.1.11.1', '1.2.840.10008.5.1.4.1.1.9.1.1',
  '1.2.840.10008.5.1.4.1.1.77.1.6', '1.2.840.10008.5.1.4.1.1.13.1.3',
];
const GET_TRANSFER_SYNTAXES = [
  TS.ExplicitVRLittleEndian, TS.ImplicitVRLittleEndian, TS.JPEGLossless, TS.JPEGLosslessSV1, TS.JPEGBaseline8Bit, TS.JPEG2000Lossless,
  TS.JPEG2000, TS.JPEGLSLossless, TS.RLELossless, TS.DeflatedExplicitVRLittleEndian,
];

