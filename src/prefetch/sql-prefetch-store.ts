/**
 * The prefetch tables (migration 0036) on SQLite and PostgreSQL through one Kysely handle.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../database/database.ts';
import { AtriumError } from '../errors.ts';
import type { PrefetchRule, PrefetchRuleInput } from './rules.ts';

interface Tables {
  prefetch_rule: { pk: number; name: string; enabled: number; definition_json: string; created_at: string; updated_at: string; updated_by: string | null };
  prefetch_order: {
    pk: number; accession_number: string; study_instance_uid: string | null; patient_id: string; issuer_of_patient_id: string; trigger: string;
    search_job_id: number | null; searched_json: string | null; searched_at: string | null; created_at: string; updated_at: string;
  };
  prefetch_prior: {
    pk: number; order_pk: number; study_instance_uid: string; source: string; rule_name: string; study_date: string | null; study_description: string | null;
    modalities: string; job_id: number | null; created_at: string;
  };
}

export type PrefetchTrigger = 'order-scheduled' | 'study-arrived' | 'study-stable' | 'on-demand';

export interface PrefetchOrderRecord {
  id: number;
  accessionNumber: string;
  studyInstanceUid: string | null;
  patientId: string;
  issuerOfPatientId: string;
  trigger: PrefetchTrigger;
  searchJobId: number | null;
  /** What the last finished search did: rules applied and sources asked, with their outcome. */
  searched: SearchSummary | null;
  searchedAt: string | null;
  createdAt: string;
}

export interface SearchSummary {
  rules: string[];
  identities: { patientId: string; issuerOfPatientId: string }[];
  sources: { source: string; candidates: number }[];
}

export interface PrefetchPriorRecord {
  id: number;
  studyInstanceUid: string;
  source: string;
  rule: string;
  studyDate: string | null;
  studyDescription: string | null;
  modalities: string[];
  jobId: number | null;
}

const toNumber = (v: unknown) => (v === null || v === undefined ? null : Number(v));

export class SqlPrefetchStore {
  readonly #db: Kysely<Tables>;

  constructor(database: Database) {
    this.#db = database.kysely<Tables>();
  }

  #rule(row: Tables['prefetch_rule']): PrefetchRule {
    return {
      id: Number(row.pk), name: row.name, enabled: Boolean(row.enabled), ...JSON.parse(row.definition_json),
      createdAt: row.created_at, updatedAt: row.updated_at, updatedBy: row.updated_by,
    };
  }

  async listRules(): Promise<PrefetchRule[]> {
    return (await this.#db.selectFrom('prefetch_rule').selectAll().orderBy('pk').execute()).map((r) => this.#rule(r));
  }

  async getRule(id: number): Promise<PrefetchRule | null> {
    const row = await this.#db.selectFrom('prefetch_rule').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? this.#rule(row) : null;
  }

  async #nameTaken(name: string, except: number | null): Promise<void> {
    const row = await this.#db.selectFrom('prefetch_rule').select('pk').where('name', '=', name).executeTakeFirst();
    if (row && Number(row.pk) !== except) throw new AtriumError('conflict', `a prefetch rule is named "${name}" already`, { key: 'name' });
  }

  async createRule(input: PrefetchRuleInput, by: string | null, now: Date): Promise<PrefetchRule> {
    await this.#nameTaken(input.name, null);
    const { name, enabled, ...definition } = input;
    const at = now.toISOString();
    const row = await this.#db.insertInto('prefetch_rule').values({
      name, enabled: enabled ? 1 : 0, definition_json: JSON.stringify(definition), created_at: at, updated_at: at, updated_by: by,
    } as any).returning('pk').executeTakeFirstOrThrow();
    return (await this.getRule(Number(row.pk)))!;
  }

  async updateRule(id: number, input: PrefetchRuleInput, by: string | null, now: Date): Promise<PrefetchRule | null> {
    await this.#nameTaken(input.name, id);
    const { name, enabled, ...definition } = input;
    const r = await this.#db.updateTable('prefetch_rule').set({
      name, enabled: enabled ? 1 : 0, definition_json: JSON.stringify(definition), updated_at: now.toISOString(), updated_by: by,
    }).where('pk', '=', id).executeTakeFirst();
    return Number(r.numUpdatedRows) ? await this.getRule(id) : null;
  }

  async deleteRule(id: number): Promise<PrefetchRule | null> {
    const rule = await this.getRule(id);
    if (rule) await this.#db.deleteFrom('prefetch_rule').where('pk', '=', id).execute();
    return rule;
  }

  #order(row: Tables['prefetch_order']): PrefetchOrderRecord {
    return {
      id: Number(row.pk), accessionNumber: row.accession_number, studyInstanceUid: row.study_instance_uid, patientId: row.patient_id,
      issuerOfPatientId: row.issuer_of_patient_id, trigger: row.trigger as PrefetchTrigger, searchJobId: toNumber(row.search_job_id),
      searched: row.searched_json ? JSON.parse(row.searched_json) : null, searchedAt: row.searched_at, createdAt: row.created_at,
    };
  }

  /** The order's row, made on first sight (unique accession: two nodes or two deliveries make one). */
  async ensureOrder(order: { accessionNumber: string; studyInstanceUid: string | null; patientId: string; issuerOfPatientId: string; trigger: PrefetchTrigger }, now: Date): Promise<{ order: PrefetchOrderRecord; created: boolean }> {
    const at = now.toISOString();
    const inserted = await this.#db.insertInto('prefetch_order').values({
      accession_number: order.accessionNumber, study_instance_uid: order.studyInstanceUid, patient_id: order.patientId,
      issuer_of_patient_id: order.issuerOfPatientId, trigger: order.trigger, search_job_id: null, searched_json: null, searched_at: null, created_at: at, updated_at: at,
    } as any).onConflict((oc) => oc.column('accession_number').doNothing()).returning('pk').executeTakeFirst();
    return { order: (await this.getOrder(order.accessionNumber))!, created: Boolean(inserted) };
  }

  async getOrder(accessionNumber: string): Promise<PrefetchOrderRecord | null> {
    const row = await this.#db.selectFrom('prefetch_order').selectAll().where('accession_number', '=', accessionNumber).executeTakeFirst();
    return row ? this.#order(row) : null;
  }

  async listOrders(page: { limit: number; offset: number }): Promise<{ items: PrefetchOrderRecord[]; total: number }> {
    const rows = await this.#db.selectFrom('prefetch_order').selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute();
    const total = await this.#db.selectFrom('prefetch_order').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return { items: rows.map((r) => this.#order(r)), total: Number(total.n) };
  }

  async setSearchJob(orderId: number, jobId: number, now: Date): Promise<void> {
    await this.#db.updateTable('prefetch_order').set({ search_job_id: jobId, updated_at: now.toISOString() }).where('pk', '=', orderId).execute();
  }

  async recordSearch(orderId: number, summary: SearchSummary, now: Date): Promise<void> {
    await this.#db.updateTable('prefetch_order').set({ searched_json: JSON.stringify(summary), searched_at: now.toISOString(), updated_at: now.toISOString() })
      .where('pk', '=', orderId).execute();
  }

  /** Records a prior of the order once; returns it as stored (the first search's row when found again). */
  async ensurePrior(orderId: number, prior: Omit<PrefetchPriorRecord, 'id' | 'jobId'>, now: Date): Promise<PrefetchPriorRecord> {
    await this.#db.insertInto('prefetch_prior').values({
      order_pk: orderId, study_instance_uid: prior.studyInstanceUid, source: prior.source, rule_name: prior.rule, study_date: prior.studyDate,
      study_description: prior.studyDescription, modalities: prior.modalities.join('\\'), job_id: null, created_at: now.toISOString(),
    } as any).onConflict((oc) => oc.columns(['order_pk', 'study_instance_uid']).doNothing()).execute();
    return (await this.priors(orderId)).find((p) => p.studyInstanceUid === prior.studyInstanceUid)!;
  }

  async setPriorJob(priorId: number, jobId: number): Promise<void> {
    await this.#db.updateTable('prefetch_prior').set({ job_id: jobId }).where('pk', '=', priorId).execute();
  }

  async priors(orderId: number): Promise<PrefetchPriorRecord[]> {
    const rows = await this.#db.selectFrom('prefetch_prior').selectAll().where('order_pk', '=', orderId).orderBy('study_date', 'desc').orderBy('pk').execute();
    return rows.map((r) => ({
      id: Number(r.pk), studyInstanceUid: r.study_instance_uid, source: r.source, rule: r.rule_name, studyDate: r.study_date,
      studyDescription: r.study_description, modalities: r.modalities ? r.modalities.split('\\') : [], jobId: toNumber(r.job_id),
    }));
  }
}
