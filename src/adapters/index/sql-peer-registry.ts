import type { Kysely, Selectable, Transaction } from 'kysely';
import { peerOperations, peerProblems, type ContactOutcome, type DicomOperation, type DicomPeer, type DicomPeerInput, type PeerContact, type PeerRegistry } from '../../ports/peer-registry.ts';
import { AtriumError } from '../../errors.ts';
import type { AePeerTable, AtriumDatabase } from './schema.ts';
import type { Database } from '../../database/database.ts';

type Db = Kysely<AtriumDatabase> | Transaction<AtriumDatabase>;

/** PeerRegistry over the index database (table `ae_peer`, migration 0002). */
export class SqlPeerRegistry implements PeerRegistry {
  readonly #db: Kysely<AtriumDatabase>;
  readonly #now: () => Date;

  constructor(database: Database, clock: () => Date = () => new Date()) {
    const db = database.kysely<AtriumDatabase>();
    this.#db = db;
    this.#now = clock;
  }

  async list(): Promise<DicomPeer[]> {
    const rows = await this.#db.selectFrom('ae_peer').selectAll().orderBy('ae_title').execute();
    return rows.map(toPeer);
  }

  async get(aeTitle: string): Promise<DicomPeer | null> {
    const row = await this.#db.selectFrom('ae_peer').selectAll().where('ae_title', '=', aeTitle.trim()).executeTakeFirst();
    return row ? toPeer(row) : null;
  }

  async upsert(peer: DicomPeerInput): Promise<DicomPeer> {
    const normalized = normalize(peer);
    return await this.#db.transaction().execute(async (tx) => {
      const existing = await tx.selectFrom('ae_peer').select('source').where('ae_title', '=', normalized.aeTitle).executeTakeFirst();
      if (existing?.source === 'config') {
        throw new AtriumError('conflict', `peer ${normalized.aeTitle} is defined in the configuration (dicom.peers); change it there`, { aeTitle: normalized.aeTitle });
      }
      return await write(tx, normalized, 'api', this.#now().toISOString());
    });
  }

  async delete(aeTitle: string): Promise<boolean> {
    const title = aeTitle.trim();
    return await this.#db.transaction().execute(async (tx) => {
      const existing = await tx.selectFrom('ae_peer').select('source').where('ae_title', '=', title).executeTakeFirst();
      if (!existing) return false;
      if (existing.source === 'config') {
        throw new AtriumError('conflict', `peer ${title} is defined in the configuration (dicom.peers); remove it there`, { aeTitle: title });
      }
      await tx.deleteFrom('ae_peer').where('ae_title', '=', title).execute();
      return true;
    });
  }

  async syncFromConfig(peers: DicomPeerInput[]): Promise<{ created: number; updated: number; deleted: number }> {
    const normalized = peers.map(normalize);
    const titles = normalized.map((p) => p.aeTitle);
    const duplicate = titles.find((t, i) => titles.indexOf(t) !== i);
    if (duplicate) throw new AtriumError('invalid-input', `peer ${duplicate} is configured twice`, { aeTitle: duplicate });
    const now = this.#now().toISOString();
    return await this.#db.transaction().execute(async (tx) => {
      const existing = new Map((await tx.selectFrom('ae_peer').selectAll().execute()).map((r) => [r.ae_title, r]));
      let created = 0;
      let updated = 0;
      for (const peer of normalized) {
        const before = existing.get(peer.aeTitle);
        if (!before) created++;
        else if (before.source !== 'config' || !samePeer(toPeer(before), peer)) updated++;
        else continue;
        await write(tx, peer, 'config', now);
      }
      const gone = [...existing.values()].filter((r) => r.source === 'config' && !titles.includes(r.ae_title)).map((r) => r.ae_title);
      if (gone.length) await tx.deleteFrom('ae_peer').where('ae_title', 'in', gone).execute();
      return { created, updated, deleted: gone.length };
    });
  }

  async recordContact(aeTitle: string, contact: PeerContact): Promise<void> {
    // updated_at is left alone: it says when the peer's definition last changed, not when it was last seen.
    await this.#db.updateTable('ae_peer').set({
      last_contact_at: contact.at.toISOString(), last_contact_outcome: contact.outcome, last_contact_detail: contact.detail.slice(0, 500),
    }).where('ae_title', '=', aeTitle.trim()).execute();
  }
}

type Normalized = Required<DicomPeerInput>;

function normalize(peer: DicomPeerInput): Normalized {
  const problems = peerProblems(peer);
  if (problems.length) throw new AtriumError('invalid-input', `invalid DICOM peer: ${problems.join('; ')}`, { problems });
  // Operations in a stable order, once each; all of them when the peer lists none.
  const operations = peerOperations(peer);
  return {
    aeTitle: peer.aeTitle.trim(), host: peer.host.trim(), port: peer.port, tls: peer.tls ?? false, operations,
    description: peer.description ?? null,
  };
}

function samePeer(a: DicomPeer, b: Normalized): boolean {
  return a.host === b.host && a.port === b.port && a.tls === b.tls && a.description === b.description
    && a.operations.join() === b.operations.join();
}

async function write(db: Db, peer: Normalized, source: 'config' | 'api', now: string): Promise<DicomPeer> {
  const values = {
    host: peer.host, port: peer.port, tls: peer.tls ? 1 : 0, operations: JSON.stringify(peer.operations),
    description: peer.description, source, updated_at: now,
  };
  const row = await db.insertInto('ae_peer')
    .values({ ae_title: peer.aeTitle, ...values, created_at: now })
    .onConflict((oc) => oc.column('ae_title').doUpdateSet(values))
    .returningAll()
    .executeTakeFirstOrThrow();
  return toPeer(row);
}

function toPeer(r: Selectable<AePeerTable>): DicomPeer {
  return {
    aeTitle: r.ae_title, host: r.host, port: Number(r.port), tls: Number(r.tls) === 1,
    operations: JSON.parse(r.operations) as DicomOperation[], description: r.description,
    source: r.source as 'config' | 'api', createdAt: r.created_at, updatedAt: r.updated_at,
    lastContactAt: r.last_contact_at ?? null, lastContactOutcome: (r.last_contact_outcome as ContactOutcome | null) ?? null,
    lastContactDetail: r.last_contact_detail ?? null,
  };
}
