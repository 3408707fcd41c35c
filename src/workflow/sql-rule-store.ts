/**
 * Routing rules and their versions (migration 0029) on SQLite and PostgreSQL. Every change writes a new
 * version row in the transaction that changes the rule; versions are never changed or removed.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../database/database.ts';
import { AtriumError } from '../errors.ts';
import { compileRule, type CompiledRule, type RuleDefinition, type RuleTrigger } from './rule.ts';

export interface RuleRecord {
  id: number;
  name: string;
  version: number;
  enabled: boolean;
  definition: RuleDefinition;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
}

export type RuleChange = 'created' | 'updated' | 'disabled' | 'enabled' | 'deleted';

export interface RuleVersionRecord {
  ruleId: number;
  version: number;
  enabled: boolean;
  deleted: boolean;
  definition: RuleDefinition;
  change: RuleChange;
  changedBy: string;
  createdAt: string;
}

/** A rule as evaluation needs it: its id and the version that matched. */
export interface RuleRef { id: number; name: string; version: number }

export class SqlRuleStore {
  readonly #db: Kysely<any>;
  readonly #engine: Database['engine'];
  #cache: { key: string; rules: Map<RuleTrigger, CompiledRule<RuleRef>[]> } | null = null;

  constructor(database: Database) {
    this.#db = database.kysely<any>();
    this.#engine = database.engine;
  }

  async list(options: { includeDeleted?: boolean } = {}): Promise<RuleRecord[]> {
    let q = this.#db.selectFrom('workflow_rule').selectAll().orderBy('name').orderBy('pk');
    if (!options.includeDeleted) q = q.where('deleted_at', 'is', null);
    return (await q.execute()).map(toRule);
  }

  async get(id: number): Promise<RuleRecord | null> {
    const row = await this.#db.selectFrom('workflow_rule').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? toRule(row) : null;
  }

  async versions(id: number): Promise<RuleVersionRecord[]> {
    return (await this.#db.selectFrom('workflow_rule_version').selectAll().where('rule_pk', '=', id).orderBy('version', 'desc').execute()).map(toVersion);
  }

  async version(id: number, version: number): Promise<RuleVersionRecord | null> {
    const row = await this.#db.selectFrom('workflow_rule_version').selectAll().where('rule_pk', '=', id).where('version', '=', version).executeTakeFirst();
    return row ? toVersion(row) : null;
  }

  async create(definition: RuleDefinition, changedBy: string, now: Date, enabled = true): Promise<RuleRecord> {
    return await this.#db.transaction().execute(async (tx) => {
      await this.#nameFree(tx, definition.name, null);
      const at = now.toISOString();
      const row = await tx.insertInto('workflow_rule').values({
        name: definition.name, version: 1, enabled: enabled ? 1 : 0, definition: JSON.stringify(definition), created_at: at, updated_at: at, deleted_at: null,
      }).returningAll().executeTakeFirstOrThrow();
      await this.#addVersion(tx, Number(row.pk), 1, enabled, false, definition, 'created', changedBy, at);
      return toRule(row);
    });
  }

  /**
   * A change of a live rule: a new definition, or enabled on or off, or deleted. `expectedVersion` (the
   * version the editor started from) refuses a change made on top of someone else's (409).
   */
  async change(id: number, change: Exclude<RuleChange, 'created'>, changedBy: string, now: Date,
    options: { definition?: RuleDefinition; expectedVersion?: number } = {}): Promise<RuleRecord> {
    return await this.#db.transaction().execute(async (tx) => {
      let q = tx.selectFrom('workflow_rule').selectAll().where('pk', '=', id);
      if (this.#engine === 'postgres') q = q.forUpdate();
      const current = await q.executeTakeFirst();
      if (!current || current.deleted_at !== null) throw new AtriumError('not-found', `no routing rule ${id}`);
      const rule = toRule(current);
      if (options.expectedVersion !== undefined && options.expectedVersion !== rule.version) {
        throw new AtriumError('conflict', `rule ${id} is at version ${rule.version}, not ${options.expectedVersion}: someone changed it meanwhile; reload it`);
      }
      const definition = options.definition ?? rule.definition;
      if (options.definition && options.definition.name !== rule.name) await this.#nameFree(tx, options.definition.name, id);
      const enabled = change === 'disabled' ? false : change === 'enabled' ? true : rule.enabled;
      const version = rule.version + 1;
      const at = now.toISOString();
      const row = await tx.updateTable('workflow_rule').set({
        name: definition.name, version, enabled: enabled ? 1 : 0, definition: JSON.stringify(definition), updated_at: at, deleted_at: change === 'deleted' ? at : null,
      }).where('pk', '=', id).returningAll().executeTakeFirstOrThrow();
      await this.#addVersion(tx, id, version, enabled, change === 'deleted', definition, change, changedBy, at);
      return toRule(row);
    });
  }

  /**
   * The live, enabled rules of a trigger, compiled. Reloaded when any rule changed (one small query per
   * call tells), so every node evaluates the rules as they are in the database.
   */
  async active(trigger: RuleTrigger): Promise<CompiledRule<RuleRef>[]> {
    const stamp = await this.#db.selectFrom('workflow_rule_version').select((eb) => [eb.fn.max('pk').as('last'), eb.fn.countAll().as('n')]).executeTakeFirst();
    const key = `${stamp?.last ?? 0}:${stamp?.n ?? 0}`;
    if (this.#cache?.key !== key) {
      const rules = new Map<RuleTrigger, CompiledRule<RuleRef>[]>([['instance', []], ['study-stable', []]]);
      for (const r of await this.list()) {
        if (!r.enabled) continue;
        rules.get(r.definition.trigger)?.push(compileRule(r.definition, { id: r.id, name: r.name, version: r.version }));
      }
      this.#cache = { key, rules };
    }
    return this.#cache.rules.get(trigger) ?? [];
  }

  async #nameFree(tx: Kysely<any>, name: string, except: number | null): Promise<void> {
    let q = tx.selectFrom('workflow_rule').select('pk').where('name', '=', name).where('deleted_at', 'is', null);
    if (except !== null) q = q.where('pk', '!=', except);
    if (await q.executeTakeFirst()) throw new AtriumError('conflict', `a routing rule named "${name}" exists already`, { problems: [{ path: 'name', message: 'this name is taken' }] });
  }

  async #addVersion(tx: Kysely<any>, ruleId: number, version: number, enabled: boolean, deleted: boolean, definition: RuleDefinition, change: RuleChange, changedBy: string, at: string) {
    await tx.insertInto('workflow_rule_version').values({
      rule_pk: ruleId, version, enabled: enabled ? 1 : 0, deleted: deleted ? 1 : 0, definition: JSON.stringify(definition), change, changed_by: changedBy, created_at: at,
    }).execute();
  }
}

function toRule(row: any): RuleRecord {
  return {
    id: Number(row.pk), name: row.name, version: Number(row.version), enabled: Number(row.enabled) === 1, definition: JSON.parse(row.definition),
    createdAt: row.created_at, updatedAt: row.updated_at, deletedAt: row.deleted_at ?? null,
  };
}

function toVersion(row: any): RuleVersionRecord {
  return {
    ruleId: Number(row.rule_pk), version: Number(row.version), enabled: Number(row.enabled) === 1, deleted: Number(row.deleted) === 1,
    definition: JSON.parse(row.definition), change: row.change, changedBy: row.changed_by, createdAt: row.created_at,
  };
}
