import type { Logger } from 'pino';
import type { Association } from '../association.ts';
import type { RequestedContext } from '../requestor.ts';
import { CommandField, Priority } from '../command.ts';
import { Status, describeStatus, statusCategory } from '../status.ts';
import type { RetrieveService } from '../../archive/retrieve.ts';
import type { IndexStore, InstanceRecord } from '../../ports/index-store.ts';

export interface SubOperationCounts {
  remaining: number;
  completed: number;
  failed: number;
  warning: number;
  failedSopInstanceUids: string[];
}

/**
 * The presentation contexts to propose for sending these instances: one per (SOP class, transfer syntax)
 * pair, each in the syntax the object is stored in. Atrium sends what it stored, unchanged; a peer that
 * does not take that syntax gets a failed sub-operation rather than silently altered pixel data.
 */
export function storageContexts(instances: Pick<InstanceRecord, 'sopClassUid' | 'transferSyntaxUid'>[], options: { scpRole?: boolean; fallback?: string[] } = {}): RequestedContext[] {
  const pairs = new Map<string, RequestedContext>();
  for (const i of instances) {
    const key = `${i.sopClassUid}|${i.transferSyntaxUid}`;
    if (!pairs.has(key)) pairs.set(key, { abstractSyntax: i.sopClassUid, transferSyntaxes: [i.transferSyntaxUid], ...(options.scpRole ? { scuRole: false, scpRole: true } : {}) });
  }
  // Asked for (routing rules): one more context per SOP class with the syntaxes an object may be transcoded
  // into, used only for objects whose stored syntax the peer did not accept.
  if (options.fallback?.length) {
    for (const sopClassUid of new Set(instances.map((i) => i.sopClassUid))) {
      pairs.set(`${sopClassUid}|fallback`, { abstractSyntax: sopClassUid, transferSyntaxes: options.fallback });
    }
  }
  // PS3.8 allows 128 presentation contexts per association.
  return [...pairs.values()].slice(0, 128);
}

/** An object that is not in the archive, sent as given: its data set in Explicit VR Little Endian, without File Meta. */
export interface PreparedObject {
  sopClassUid: string;
  sopInstanceUid: string;
  dataset: Uint8Array;
}

export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

/** The presentation contexts for prepared objects: one per SOP class, Explicit VR Little Endian. */
export function preparedContexts(objects: Pick<PreparedObject, 'sopClassUid'>[]): RequestedContext[] {
  return [...new Set(objects.map((o) => o.sopClassUid))].map((abstractSyntax) => ({ abstractSyntax, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] }));
}

/** C-STORE of prepared objects over an open association, counted as `storeInstances` counts. */
export async function storePrepared(association: Association, objects: PreparedObject[], log: Logger, counts: SubOperationCounts): Promise<void> {
  for (const object of objects) {
    if (!association.isOpen) break;
    counts.remaining--;
    const context = { association: association.id, peer: association.calledAETitle, sopInstanceUid: object.sopInstanceUid };
    const pc = association.findContext(object.sopClassUid, [EXPLICIT_VR_LITTLE_ENDIAN]);
    let outcome: 'success' | 'warning' | 'failure' = 'failure';
    if (!pc) log.warn({ ...context, sopClassUid: object.sopClassUid }, 'C-STORE failed: the peer accepted no presentation context for this SOP class in Explicit VR Little Endian');
    else {
      try {
        let status: number | undefined;
        const data = object.dataset.length % 2 === 1 ? Buffer.concat([object.dataset, new Uint8Array(1)]) : object.dataset;
        for await (const rsp of association.request(pc.id, {
          CommandField: CommandField.C_STORE_RQ, AffectedSOPClassUID: object.sopClassUid, AffectedSOPInstanceUID: object.sopInstanceUid, Priority: Priority.Medium,
        }, (async function* () { yield data; })())) status = rsp.command.Status;
        const category = statusCategory(status ?? Status.ProcessingFailure);
        outcome = category === 'success' ? 'success' : category === 'warning' ? 'warning' : 'failure';
        if (outcome !== 'success') log.warn({ ...context, status: describeStatus(status ?? Status.ProcessingFailure) }, `C-STORE ${category}`);
      } catch (error) {
        log.warn({ ...context, err: error }, 'C-STORE failed');
      }
    }
    if (outcome === 'success') counts.completed++;
    else if (outcome === 'warning') counts.warning++;
    else {
      counts.failed++;
      counts.failedSopInstanceUids.push(object.sopInstanceUid);
    }
  }
}

interface StoreDeps {
  index: IndexStore;
  retrieve: RetrieveService;
  log: Logger;
  /** Told each instance about to be sent. */
  onInstance?: (instance: InstanceRecord) => void;
  /**
   * Syntaxes an object may be sent in when the peer did not accept its stored one, and how: its data set
   * (no File Meta) transcoded into `transferSyntaxUid`. Absent: objects are sent only as stored.
   */
  fallback?: { transferSyntaxes: string[]; transcode(instance: InstanceRecord, transferSyntaxUid: string): Promise<AsyncIterable<Uint8Array>> };
}

/**
 * C-STORE sub-operations (or a plain send) of stored instances over an open association, streaming each
 * data set from the blob store. Counts are reported after each instance; a cancelled signal stops before
 * the next one.
 */
export async function storeInstances(
  association: Association,
  sopInstanceUids: string[],
  deps: StoreDeps,
  options: { signal?: AbortSignal; moveOriginator?: { aeTitle: string; messageId: number }; onProgress?: (counts: SubOperationCounts) => Promise<void> | void } = {},
): Promise<SubOperationCounts> {
  const counts: SubOperationCounts = { remaining: sopInstanceUids.length, completed: 0, failed: 0, warning: 0, failedSopInstanceUids: [] };
  for (const uid of sopInstanceUids) {
    if (options.signal?.aborted || !association.isOpen) break;
    counts.remaining--;
    const outcome = await storeOne(association, uid, deps, options.moveOriginator);
    if (outcome === 'success') counts.completed++;
    else if (outcome === 'warning') counts.warning++;
    else {
      counts.failed++;
      counts.failedSopInstanceUids.push(uid);
    }
    await options.onProgress?.(counts);
  }
  // The association ended under us (the peer aborted): the sub-operations never attempted failed too, so that
  // completed + failed + warning add up to what matched, and the originator learns which.
  // A cancel, in contrast, leaves them remaining.
  if (!options.signal?.aborted && counts.remaining > 0) {
    const notAttempted = sopInstanceUids.slice(sopInstanceUids.length - counts.remaining);
    counts.failed += notAttempted.length;
    counts.failedSopInstanceUids.push(...notAttempted);
    counts.remaining = 0;
  }
  return counts;
}

/**
 * A data set of odd length (a Deflated Explicit VR LE stream is one, legitimately, PS3.5 A.5) cannot be sent as
 * is: PDV fragments have even lengths (DCMTK aborts with "Odd Fragment Length"). It gets one trailing NUL byte,
 * which an inflater ignores after the end of the deflate stream.
 */
async function* evenLength(dataset: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  let length = 0;
  for await (const chunk of dataset) {
    length += chunk.length;
    yield chunk;
  }
  if (length % 2 === 1) yield new Uint8Array(1);
}

async function storeOne(association: Association, uid: string, deps: StoreDeps,
  moveOriginator?: { aeTitle: string; messageId: number }): Promise<'success' | 'warning' | 'failure'> {
  const context = { association: association.id, peer: association.calledAETitle, sopInstanceUid: uid };
  const instance = await deps.index.findInstance(uid);
  if (!instance) {
    deps.log.warn(context, 'C-STORE sub-operation failed: the instance is no longer in the archive');
    return 'failure';
  }
  deps.onInstance?.(instance);
  let pc = association.findContext(instance.sopClassUid, [instance.transferSyntaxUid]);
  let transcoded: AsyncIterable<Uint8Array> | null = null;
  if (!pc && deps.fallback) {
    pc = association.findContext(instance.sopClassUid, deps.fallback.transferSyntaxes);
    if (pc) {
      try {
        transcoded = await deps.fallback.transcode(instance, pc.transferSyntax);
        deps.log.info({ ...context, from: instance.transferSyntaxUid, to: pc.transferSyntax }, 'C-STORE sub-operation: transcoded, the peer does not take the stored transfer syntax');
      } catch (error) {
        deps.log.warn({ ...context, err: error, from: instance.transferSyntaxUid, to: pc.transferSyntax }, 'C-STORE sub-operation failed: the instance cannot be transcoded into the syntax the peer accepted');
        return 'failure';
      }
    }
  }
  if (!pc) {
    deps.log.warn({ ...context, sopClassUid: instance.sopClassUid, transferSyntaxUid: instance.transferSyntaxUid },
      'C-STORE sub-operation failed: the peer accepted no presentation context for this SOP class in its stored transfer syntax');
    return 'failure';
  }
  try {
    const dataset = transcoded ?? (await deps.retrieve.openDataset(uid)).dataset;
    let status: number | undefined;
    for await (const rsp of association.request(pc.id, {
      CommandField: CommandField.C_STORE_RQ, AffectedSOPClassUID: instance.sopClassUid, AffectedSOPInstanceUID: uid, Priority: Priority.Medium,
      ...(moveOriginator ? { MoveOriginatorApplicationEntityTitle: moveOriginator.aeTitle, MoveOriginatorMessageID: moveOriginator.messageId } : {}),
    }, 'reader' in dataset ? dataset : evenLength(dataset))) {
      status = rsp.command.Status;
    }
    const category = statusCategory(status ?? Status.ProcessingFailure);
    if (category === 'success') return 'success';
    deps.log.warn({ ...context, status: describeStatus(status ?? Status.ProcessingFailure) }, `C-STORE sub-operation ${category}`);
    return category === 'warning' ? 'warning' : 'failure';
  } catch (error) {
    deps.log.warn({ ...context, err: error }, 'C-STORE sub-operation failed');
    return 'failure';
  }
}
