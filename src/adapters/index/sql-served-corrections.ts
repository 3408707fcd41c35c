import type { Kysely } from 'kysely';
import type { Database } from '../../database/database.ts';
import type { InstanceRecord } from '../../ports/index-store.ts';
import type { ServedAttribute, ServedCorrection, ServedCorrections } from '../../ports/served-corrections.ts';

/** ServedCorrections over table served_correction (migration 0025): the study's row, then the series' row over it. */
export class SqlServedCorrections implements ServedCorrections {
  readonly #db: Kysely<any>;

  constructor(database: Database) {
    this.#db = database.kysely<any>();
  }

  async correctionOf(instance: Pick<InstanceRecord, 'studyInstanceUid' | 'seriesInstanceUid'>): Promise<ServedCorrection | null> {
    const rows = await this.#db.selectFrom('served_correction').select(['series_instance_uid', 'attributes', 'correction_pk', 'corrected_at'])
      .where((eb) => eb.or([
        eb.and([eb('study_instance_uid', '=', instance.studyInstanceUid), eb('series_instance_uid', '=', '')]),
        eb('series_instance_uid', '=', instance.seriesInstanceUid),
      ])).execute();
    if (rows.length === 0) return null;
    rows.sort((a, b) => (a.series_instance_uid === '' ? 0 : 1) - (b.series_instance_uid === '' ? 0 : 1));
    const byTag = new Map<string, ServedAttribute>();
    let correctionId = 0;
    let correctedAt = '';
    for (const row of rows) {
      for (const a of JSON.parse(String(row.attributes)) as ServedAttribute[]) byTag.set(a.tag, a);
      if (Number(row.correction_pk) > correctionId) {
        correctionId = Number(row.correction_pk);
        correctedAt = String(row.corrected_at);
      }
    }
    if (byTag.size === 0) return null;
    return { attributes: [...byTag.values()].sort((a, b) => a.tag.localeCompare(b.tag)), correctionId, correctedAt };
  }
}
