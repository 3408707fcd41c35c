/**
 * The AI tables (migrations 0041-0043) on SQLite and PostgreSQL through one Kysely handle: the node registry,
 * one request per study and node, every result object.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../database/database.ts';
import { AtriumError } from '../errors.ts';
import type { AiNode, AiNodeDefinition } from './node.ts';
import type { ReadFinding } from './findings.ts';

interface Tables {
  ai_node: { pk: number; name: string; enabled: number; mode: string; definition_json: string; created_at: string; updated_at: string; updated_by: string | null };
  ai_request: {
    pk: number; node_pk: number; study_instance_uid: string; rule_id: number | null; rule_name: string | null; job_id: number | null; research: number; state: string;
    queued_at: string; sent_at: string | null; attempts: number; failed_attempts: number; last_error: string | null; first_result_at: string | null; result_count: number;
    positive: number | null; flag: string | null; triage_pending: number; agreement: string | null; agreement_by: string | null; agreement_at: string | null;
    agreement_report_status: string | null; updated_at: string;
  };
  ai_result: {
    pk: number; sop_instance_uid: string; sop_class_uid: string; kind: string; study_instance_uid: string; source: string; node_pk: number | null; request_pk: number | null;
    state: string; reason: string | null; research: number; findings_json: string; positive: number | null; received_at: string;
  };
}

export type RequestState = 'queued' | 'sent' | 'failed' | 'resulted';
export type Agreement = 'confirms' | 'overrides';

export interface AiRequest {
  id: number;
  nodeId: number;
  studyInstanceUid: string;
  rule: { id: number; name: string } | null;
  jobId: number | null;
  /** Sent while the node was in research mode: its results are marked research and raise no triage flag. */
  research: boolean;
  state: RequestState;
  queuedAt: string;
  sentAt: string | null;
  attempts: number;
  failedAttempts: number;
  lastError: string | null;
  firstResultAt: string | null;
  resultCount: number;
  positive: boolean | null;
  flag: string | null;
  triagePending: boolean;
  agreement: { value: Agreement; by: string; at: string; reportStatus: string | null } | null;
}

export interface AiResult {
  id: number;
  sopInstanceUid: string;
  sopClassUid: string;
  kind: string;
  studyInstanceUid: string;
  source: string;
  nodeId: number | null;
  requestId: number | null;
  state: 'linked' | 'unmatched';
  reason: string | null;
  research: boolean;
  findings: ReadFinding[];
  positive: boolean | null;
  receivedAt: string;
}

const bool = (v: number | null) => (v === null ? null : Boolean(Number(v)));

function toNode(r: Tables['ai_node']): AiNode {
  const d = JSON.parse(r.definition_json) as AiNodeDefinition;
  return { ...d, enabled: Boolean(Number(r.enabled)), id: Number(r.pk), createdAt: r.created_at, updatedAt: r.updated_at, updatedBy: r.updated_by };
}

function toRequest(r: Tables['ai_request']): AiRequest {
  return {
    id: Number(r.pk), nodeId: Number(r.node_pk), studyInstanceUid: r.study_instance_uid, rule: r.rule_id === null ? null : { id: Number(r.rule_id), name: r.rule_name ?? '' },
    jobId: r.job_id === null ? null : Number(r.job_id), research: Boolean(Number(r.research)), state: r.state as RequestState, queuedAt: r.queued_at, sentAt: r.sent_at,
    attempts: Number(r.attempts), failedAttempts: Number(r.failed_attempts), lastError: r.last_error, firstResultAt: r.first_result_at, resultCount: Number(r.result_count),
    positive: bool(r.positive), flag: r.flag, triagePending: Boolean(Number(r.triage_pending)),
    agreement: r.agreement ? { value: r.agreement as Agreement, by: r.agreement_by ?? '', at: r.agreement_at ?? '', reportStatus: r.agreement_report_status } : null,
  };
}

function toResult(r: Tables['ai_result']): AiResult {
  return {
    id: Number(r.pk), sopInstanceUid: r.sop_instance_uid, sopClassUid: r.sop_class_uid, kind: r.kind, studyInstanceUid: r.study_instance_uid, source: r.source,
    nodeId: r.node_pk === null ? null : Number(r.node_pk), requestId: r.request_pk === null ? null : Number(r.request_pk), state: r.state as AiResult['state'],
    reason: r.reason, research: Boolean(Number(r.research)), findings: JSON.parse(r.findings_json), positive: bool(r.positive), receivedAt: r.received_at,
  };
}

export class SqlAiStore {
  readonly #db: Kysely<Tables>;

  constructor(database: Database) {
    this.#db = database.kysely<Tables>();
  }

  // ---------------------------------------------------------------------------------------- nodes

  async listNodes(): Promise<AiNode[]> {
    return (await this.#db.selectFrom('ai_node').selectAll().orderBy('pk').execute()).map(toNode);
  }

  async getNode(id: number): Promise<AiNode | null> {
    const r = await this.#db.selectFrom('ai_node').selectAll().where('pk', '=', id).executeTakeFirst();
    return r ? toNode(r) : null;
  }

  async nodeByName(name: string): Promise<AiNode | null> {
    const r = await this.#db.selectFrom('ai_node').selectAll().where('name', '=', name).executeTakeFirst();
    return r ? toNode(r) : null;
  }

  async #nameTaken(name: string, except: number | null): Promise<void> {
    const r = await this.#db.selectFrom('ai_node').select('pk').where('name', '=', name).executeTakeFirst();
    if (r && Number(r.pk) !== except) throw new AtriumError('conflict', `an AI node named "${name}" exists`);
  }

  async createNode(node: AiNodeDefinition, by: string | null, now: Date): Promise<AiNode> {
    await this.#nameTaken(node.name, null);
    const at = now.toISOString();
    const r = await this.#db.insertInto('ai_node').values({
      name: node.name, enabled: node.enabled ? 1 : 0, mode: node.mode, definition_json: JSON.stringify(node), created_at: at, updated_at: at, updated_by: by,
    } as any).returning('pk').executeTakeFirstOrThrow();
    return (await this.getNode(Number(r.pk)))!;
  }

  async updateNode(id: number, node: AiNodeDefinition, by: string | null, now: Date): Promise<AiNode | null> {
    await this.#nameTaken(node.name, id);
    const r = await this.#db.updateTable('ai_node').set({
      name: node.name, enabled: node.enabled ? 1 : 0, mode: node.mode, definition_json: JSON.stringify(node), updated_at: now.toISOString(), updated_by: by,
    }).where('pk', '=', id).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0 ? await this.getNode(id) : null;
  }

  /** Deletes a node no study was ever sent to (one with requests is disabled instead: its metrics stay). */
  async deleteNode(id: number): Promise<AiNode | null> {
    const node = await this.getNode(id);
    if (!node) return null;
    const used = await this.#db.selectFrom('ai_request').select('pk').where('node_pk', '=', id).limit(1).executeTakeFirst();
    if (used) throw new AtriumError('conflict', `AI node "${node.name}" has requests: disable it instead (its metrics and results stay)`);
    await this.#db.deleteFrom('ai_node').where('pk', '=', id).execute();
    return node;
  }

  // ---------------------------------------------------------------------------------------- requests

  /** The request of a study and node, made once (unique): a second call returns the one there is. */
  async openRequest(input: { nodeId: number; studyInstanceUid: string; rule: { id: number; name: string } | null; jobId: number; research: boolean }, now: Date): Promise<{ request: AiRequest; created: boolean }> {
    const at = now.toISOString();
    const r = await this.#db.insertInto('ai_request').values({
      node_pk: input.nodeId, study_instance_uid: input.studyInstanceUid, rule_id: input.rule?.id ?? null, rule_name: input.rule?.name ?? null, job_id: input.jobId,
      research: input.research ? 1 : 0, state: 'queued', queued_at: at, attempts: 0, failed_attempts: 0, result_count: 0, triage_pending: 0, updated_at: at,
    } as any).onConflict((oc) => oc.columns(['node_pk', 'study_instance_uid']).doNothing()).executeTakeFirst();
    const created = Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
    return { request: (await this.request(input.nodeId, input.studyInstanceUid))!, created };
  }

  async request(nodeId: number, studyInstanceUid: string): Promise<AiRequest | null> {
    const r = await this.#db.selectFrom('ai_request').selectAll().where('node_pk', '=', nodeId).where('study_instance_uid', '=', studyInstanceUid).executeTakeFirst();
    return r ? toRequest(r) : null;
  }

  async requestById(id: number): Promise<AiRequest | null> {
    const r = await this.#db.selectFrom('ai_request').selectAll().where('pk', '=', id).executeTakeFirst();
    return r ? toRequest(r) : null;
  }

  async requestsOfStudy(studyInstanceUid: string): Promise<AiRequest[]> {
    return (await this.#db.selectFrom('ai_request').selectAll().where('study_instance_uid', '=', studyInstanceUid).orderBy('pk').execute()).map(toRequest);
  }

  async requestsOfNode(nodeId: number, limit = 10_000): Promise<AiRequest[]> {
    return (await this.#db.selectFrom('ai_request').selectAll().where('node_pk', '=', nodeId).orderBy('pk', 'desc').limit(limit).execute()).map(toRequest);
  }

  async listRequests(q: { nodeId?: number; state?: string; limit: number; offset: number }): Promise<{ items: AiRequest[]; total: number }> {
    let base = this.#db.selectFrom('ai_request');
    if (q.nodeId !== undefined) base = base.where('node_pk', '=', q.nodeId);
    if (q.state) base = base.where('state', '=', q.state);
    const total = Number((await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const rows = await base.selectAll().orderBy('pk', 'desc').limit(q.limit).offset(q.offset).execute();
    return { items: rows.map(toRequest), total };
  }

  /** One attempt of the send: `error` null when the node took the study (the first success sets sent_at). */
  async recordAttempt(id: number, error: string | null, final: boolean, now: Date): Promise<void> {
    const at = now.toISOString();
    const row = await this.requestById(id);
    if (!row) return;
    await this.#db.updateTable('ai_request').set({
      attempts: row.attempts + 1, failed_attempts: row.failedAttempts + (error ? 1 : 0), last_error: error ?? row.lastError,
      ...(error ? (final && row.state === 'queued' ? { state: 'failed' } : {}) : { state: row.state === 'resulted' ? 'resulted' : 'sent', sent_at: row.sentAt ?? at }),
      updated_at: at,
    }).where('pk', '=', id).execute();
  }

  async setJob(id: number, jobId: number): Promise<void> {
    await this.#db.updateTable('ai_request').set({ job_id: jobId }).where('pk', '=', id).execute();
  }

  /** A result linked to the request: counted, the first one's time kept, the outcome and flag merged. */
  async recordResult(id: number, result: { positive: boolean | null; flags: string[]; at: Date }): Promise<AiRequest> {
    const row = (await this.requestById(id))!;
    const flags = [...new Set([...(row.flag ? row.flag.split(', ') : []), ...result.flags])];
    const positive = result.positive === null ? row.positive : Boolean(row.positive) || result.positive;
    await this.#db.updateTable('ai_request').set({
      state: 'resulted', result_count: row.resultCount + 1, first_result_at: row.firstResultAt ?? result.at.toISOString(),
      positive: positive === null ? null : positive ? 1 : 0, flag: flags.length ? flags.join(', ') : null, updated_at: result.at.toISOString(),
    }).where('pk', '=', id).execute();
    return (await this.requestById(id))!;
  }

  async setTriagePending(id: number, pending: boolean): Promise<void> {
    await this.#db.updateTable('ai_request').set({ triage_pending: pending ? 1 : 0 }).where('pk', '=', id).execute();
  }

  async setAgreement(id: number, value: Agreement, by: string, reportStatus: string | null, now: Date): Promise<void> {
    await this.#db.updateTable('ai_request').set({ agreement: value, agreement_by: by, agreement_at: now.toISOString(), agreement_report_status: reportStatus, updated_at: now.toISOString() })
      .where('pk', '=', id).execute();
  }

  // ---------------------------------------------------------------------------------------- results

  async resultBySop(sopInstanceUid: string): Promise<AiResult | null> {
    const r = await this.#db.selectFrom('ai_result').selectAll().where('sop_instance_uid', '=', sopInstanceUid).executeTakeFirst();
    return r ? toResult(r) : null;
  }

  /** Records a result once per SOP Instance UID; false when it was recorded already (a redelivered event). */
  async saveResult(r: Omit<AiResult, 'id'>): Promise<boolean> {
    const res = await this.#db.insertInto('ai_result').values({
      sop_instance_uid: r.sopInstanceUid, sop_class_uid: r.sopClassUid, kind: r.kind, study_instance_uid: r.studyInstanceUid, source: r.source, node_pk: r.nodeId,
      request_pk: r.requestId, state: r.state, reason: r.reason, research: r.research ? 1 : 0, findings_json: JSON.stringify(r.findings),
      positive: r.positive === null ? null : r.positive ? 1 : 0, received_at: r.receivedAt,
    } as any).onConflict((oc) => oc.column('sop_instance_uid').doNothing()).executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  async resultsOfStudy(studyInstanceUid: string): Promise<AiResult[]> {
    return (await this.#db.selectFrom('ai_result').selectAll().where('study_instance_uid', '=', studyInstanceUid).orderBy('pk').execute()).map(toResult);
  }

  async listResults(q: { nodeId?: number; state?: string; limit: number; offset: number }): Promise<{ items: AiResult[]; total: number }> {
    let base = this.#db.selectFrom('ai_result');
    if (q.nodeId !== undefined) base = base.where('node_pk', '=', q.nodeId);
    if (q.state) base = base.where('state', '=', q.state);
    const total = Number((await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const rows = await base.selectAll().orderBy('pk', 'desc').limit(q.limit).offset(q.offset).execute();
    return { items: rows.map(toResult), total };
  }

  async unmatchedCount(nodeId: number): Promise<number> {
    const r = await this.#db.selectFrom('ai_result').select((eb) => eb.fn.countAll().as('n')).where('node_pk', '=', nodeId).where('state', '=', 'unmatched').executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** Results no node could be found for (an unknown sender is never recorded; these came from a node's AE or by STOW-RS). */
  async unmatchedWithoutNode(): Promise<number> {
    const r = await this.#db.selectFrom('ai_result').select((eb) => eb.fn.countAll().as('n')).where('node_pk', 'is', null).where('state', '=', 'unmatched').executeTakeFirstOrThrow();
    return Number(r.n);
  }
}
