/**
 * Modality Worklist C-FINDs from Node for the RIS benchmark: one association, the queries one after the
 * other, each timed from the C-FIND-RQ to its final response. Without findscu's process start and
 * association set-up, this is the server's time to answer (plus Node's client side, the same for every
 * server). The client is Atrium's DIMSE requestor (src/dimse); the identifiers come from the same
 * findscu-style keys (`Keyword=value`, `Sequence[0].Keyword=value`) as the findscu runs.
 */
import { performance } from 'node:perf_hooks';
import { requestAssociation } from '../../src/dimse/requestor.ts';
import { CommandField, Priority } from '../../src/dimse/command.ts';
import { statusCategory, describeStatus } from '../../src/dimse/status.ts';
import { encodeJsonDataset } from '../../src/dimse/services/identifier.ts';
import { UNCOMPRESSED } from '../../src/dimse/services/sop-classes.ts';
import { tagOfKeyword, vrOf } from '../../src/dicom/dictionary.ts';
import { hexTag } from '../../src/dicom/query/model.ts';
import type { DicomJsonAttribute, DicomJsonDataSet } from '../../src/dicom/dicom-json.ts';
import type { WorklistQuery } from './worklist-data.ts';

const MODALITY_WORKLIST_FIND = '1.2.840.10008.5.1.4.31';

function attribute(keyword: string, value: string | undefined): [string, DicomJsonAttribute] {
  const tag = tagOfKeyword(keyword);
  if (tag === undefined) throw new Error(`unknown keyword ${keyword}`);
  const vr = vrOf(tag);
  if (!value) return [hexTag(tag), { vr }];
  return [hexTag(tag), { vr, Value: [vr === 'PN' ? { Alphabetic: value } : value] }];
}

/** findscu -k keys as a DICOM JSON identifier (one level of sequence, item 0, as worklist queries use). */
export function identifierOf(keys: string[]): DicomJsonDataSet {
  const out: DicomJsonDataSet = {};
  for (const key of keys) {
    const [path, value] = key.split('=', 2) as [string, string | undefined];
    const nested = /^(\w+)\[0\]\.(\w+)$/.exec(path);
    if (!nested) {
      const [tag, attr] = attribute(path, value);
      out[tag] = attr;
      continue;
    }
    const [sequenceTag] = attribute(nested[1]!, undefined);
    const sequence = (out[sequenceTag] ??= { vr: 'SQ', Value: [{}] });
    const item = (sequence.Value as DicomJsonDataSet[])[0]!;
    const [tag, attr] = attribute(nested[2]!, value);
    item[tag] = attr;
  }
  return out;
}

export interface LoopResult { query: WorklistQuery; ms: number; matches: number; ok: boolean; detail?: string }

export async function worklistLoop(peer: { port: number; calledAe: string; callingAe: string }, queries: WorklistQuery[]): Promise<LoopResult[]> {
  const association = await requestAssociation({
    host: '127.0.0.1', port: peer.port, callingAETitle: peer.callingAe, calledAETitle: peer.calledAe,
    contexts: [{ abstractSyntax: MODALITY_WORKLIST_FIND, transferSyntaxes: UNCOMPRESSED }],
  });
  const results: LoopResult[] = [];
  try {
    const pc = association.findContext(MODALITY_WORKLIST_FIND);
    if (!pc) throw new Error(`${peer.calledAe} refused the Modality Worklist context`);
    for (const query of queries) {
      const identifier = encodeJsonDataset(identifierOf(query.keys), pc.transferSyntax);
      const start = performance.now();
      let matches = 0;
      let final = -1;
      for await (const rsp of association.request(pc.id, { CommandField: CommandField.C_FIND_RQ, AffectedSOPClassUID: MODALITY_WORKLIST_FIND, Priority: Priority.Medium }, identifier)) {
        const status = rsp.command.Status ?? 0;
        if (statusCategory(status) === 'pending') matches++;
        else final = status;
      }
      const ms = performance.now() - start;
      const ok = final === 0;
      results.push({ query, ms, matches, ok, ...(ok ? {} : { detail: `final status ${describeStatus(final)}` }) });
    }
    await association.release();
  } catch (error) {
    if (association.isOpen) association.abort();
    throw error;
  }
  return results;
}
