import { Kysely, sql, type Transaction, type SelectQueryBuilder, type Expression, type SqlBool } from 'kysely';
import type {
  ArchiveStatistics, DuplicatePolicy, IndexStore, InstanceRecord, ModalityTotals, NewInstance, Page, Paged, ReceivedDay,
  PatientRecord, PixelDataLayout, QualityFindingEntry, QualityFindingRecord, QuarantineEntry, QuarantineRecord, SeriesRecord, StoreOutcome, StoredObject, StudyFilter,
  StudyRecord,
} from '../../ports/index-store.ts';
import type { AtriumDatabase } from './schema.ts';
import type { Database } from '../../database/database.ts';
import type { SqlEngine } from '../../database/migration.ts';
import { emit, undeliveredEvents } from './sql-event-outbox.ts';
import { dateRangeBounds, likePattern, searchableName } from './matching.ts';
import type { IndexQuery, QueryResults } from '../../dicom/query/model.ts';
import { findMatches } from './query/find.ts';

type Db = Kysely<AtriumDatabase>;
type Tx = Transaction<AtriumDatabase>;

/**
 * IndexStore over Kysely, shared by SQLite and PostgreSQL. Concurrency: ingest takes the study row lock
 * first (an upsert that touches the row), so every change to one study's counts is serialized on
 * PostgreSQL; SQLite has a single writer anyway.
 */
export class SqlIndexStore implements IndexStore {
  readonly kind: SqlEngine;
  readonly #db: Db;

  constructor(database: Database) {
    this.#db = database.kysely<AtriumDatabase>();
    this.kind = database.engine;
  }

  async storeInstance(input: NewInstance, policy: DuplicatePolicy): Promise<StoreOutcome> {
    // Two first-time ingests of the same SOP Instance UID in two different series can both miss the
    // existence check; the unique index then fails one of them, which simply runs again and sees the other.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#db.transaction().execute((tx) => this.#storeInTransaction(tx, input, policy));
      } catch (error) {
        if (attempt < 3 && isUniqueViolation(error)) continue;
        throw error;
      }
    }
  }

  /**
   * Several instances in one transaction (an ingest batch: one COMMIT, one WAL fsync on SQLite), each with
   * the outcome storeInstance would give it in that order. Rejects with nothing committed; when two ingests
   * raced on a UID (unique violation), the instances are stored one by one instead, with its retries.
   */
  async storeInstances(inputs: NewInstance[], policy: DuplicatePolicy): Promise<StoreOutcome[]> {
    try {
      return await this.#db.transaction().execute(async (tx) => {
        const outcomes: StoreOutcome[] = [];
        for (const input of inputs) outcomes.push(await this.#storeInTransaction(tx, input, policy));
        return outcomes;
      });
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      const outcomes: StoreOutcome[] = [];
      for (const input of inputs) outcomes.push(await this.storeInstance(input, policy));
      return outcomes;
    }
  }

  async #storeInTransaction(tx: Tx, input: NewInstance, policy: DuplicatePolicy): Promise<StoreOutcome> {
    const now = input.receivedAt;
    // Looked up first, so that a new instance (the common case) moves the study and series counters in the
    // upserts themselves: 8 statements per instance instead of 11 (each a round trip on PostgreSQL, a
    // prepared statement run on the event loop on SQLite). Two ingests of one UID can both miss it: the
    // unique index then fails one, which runs again (storeInstance).
    const existing = await tx
      .selectFrom('instance')
      .innerJoin('series', 'series.pk', 'instance.series_pk')
      .select(['instance.pk', 'instance.blob_key', 'instance.size_bytes', 'instance.sha256', 'instance.dataset_sha256', 'instance.transfer_syntax_uid',
        'instance.metadata', 'instance.source', 'instance.received_at', 'instance.series_pk', 'series.study_pk'])
      .where('instance.sop_instance_uid', '=', input.instance.sopInstanceUid)
      .executeTakeFirst();
    if (existing) {
      const stored = { blobKey: existing.blob_key, sizeBytes: Number(existing.size_bytes), sha256: existing.sha256 };
      if (existing.dataset_sha256 === input.datasetSha256) return { kind: 'identical', existing: stored };
      const otherSyntax = existing.transfer_syntax_uid !== input.instance.transferSyntaxUid;
      if (otherSyntax && (input.otherTransferSyntax ?? 'ask') === 'ask') {
        return { kind: 'other-transfer-syntax', existing: { ...stored, transferSyntaxUid: existing.transfer_syntax_uid } };
      }
      if (otherSyntax && input.otherTransferSyntax === 'replace' && policy === 'reject') policy = 'overwrite';
      if (policy === 'reject') return { kind: 'conflict', existing: stored };
    }

    // A new instance counts once, here; a replaced one is recounted below.
    const added = existing ? 0 : 1;
    const addedBytes = existing ? 0 : input.sizeBytes;
    const patientPk = await this.#upsertPatient(tx, input, now);
    const study = await tx
      .insertInto('study')
      .values({
        patient_pk: patientPk,
        study_instance_uid: input.study.studyInstanceUid,
        study_date: input.study.studyDate,
        study_time: input.study.studyTime,
        accession_number: input.study.accessionNumber,
        study_description: input.study.studyDescription,
        referring_physician_name: input.study.referringPhysicianName,
        study_id: input.study.studyId,
        timezone_offset_from_utc: input.study.timezoneOffsetFromUtc,
        patient_age: input.study.patientAge,
        patient_size: input.study.patientSize,
        patient_weight: input.study.patientWeight,
        number_of_instances: added,
        size_bytes: addedBytes,
        created_at: now,
        updated_at: now,
      })
      // The update takes the study row lock on PostgreSQL: every change to one study's counts is serialized.
      .onConflict((oc) => oc.column('study_instance_uid').doUpdateSet((eb) => ({
        number_of_instances: eb('study.number_of_instances', '+', added), size_bytes: eb('study.size_bytes', '+', addedBytes), updated_at: now,
      })))
      .returning(['pk', 'sop_classes_in_study'])
      .executeTakeFirstOrThrow();
    const studyPk = Number(study.pk);

    const series = await tx
      .insertInto('series')
      .values({
        study_pk: studyPk,
        series_instance_uid: input.series.seriesInstanceUid,
        modality: input.series.modality,
        series_number: input.series.seriesNumber,
        series_description: input.series.seriesDescription,
        body_part_examined: input.series.bodyPartExamined,
        series_date: input.series.seriesDate,
        series_time: input.series.seriesTime,
        performed_procedure_step_start_date: input.series.performedProcedureStepStartDate,
        performed_procedure_step_start_time: input.series.performedProcedureStepStartTime,
        institution_name: input.series.institutionName,
        station_name: input.series.stationName,
        manufacturer: input.series.manufacturer,
        laterality: input.series.laterality,
        requested_procedure_id: input.series.requestedProcedureId,
        scheduled_procedure_step_id: input.series.scheduledProcedureStepId,
        number_of_instances: added,
        size_bytes: addedBytes,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('series_instance_uid').doUpdateSet((eb) => ({
        number_of_instances: eb('series.number_of_instances', '+', added), size_bytes: eb('series.size_bytes', '+', addedBytes), updated_at: now,
      })))
      .returning(['pk', 'study_pk', 'created_at'])
      .executeTakeFirstOrThrow();
    const seriesPk = Number(series.pk);

    const row = instanceRow(input, seriesPk);
    if (!existing) {
      const inserted = await tx.insertInto('instance').values(row).returning('pk').executeTakeFirstOrThrow();
      // Counters moved by one above instead of a recount (recounting a series grew with its size and was 7%
      // of ingest CPU). Study-level derived values are recomputed only when the series may be new or the SOP
      // class is new to the study.
      const seriesMayBeNew = series.created_at === now;
      const sopClassIsNew = !study.sop_classes_in_study.split('\\').includes(input.instance.sopClassUid);
      if (seriesMayBeNew || sopClassIsNew) await this.#refreshCounts(tx, [], [studyPk], now);
      await emit(tx, { type: 'InstanceStored', payload: instanceEvent(input) }, now);
      await insertFindings(tx, findingsOf(input));
      return { kind: 'stored', instancePk: Number(inserted.pk) };
    }

    const previous: StoredObject = { blobKey: existing.blob_key, sizeBytes: Number(existing.size_bytes), sha256: existing.sha256 };
    if (policy === 'version') {
      await tx.insertInto('instance_version').values({
        sop_instance_uid: input.instance.sopInstanceUid,
        transfer_syntax_uid: existing.transfer_syntax_uid,
        blob_key: existing.blob_key,
        size_bytes: Number(existing.size_bytes),
        sha256: existing.sha256,
        metadata: existing.metadata,
        source: existing.source,
        received_at: existing.received_at,
        superseded_at: now,
      }).execute();
    }
    await tx.updateTable('instance').set(row).where('pk', '=', existing.pk).execute();
    await this.#refreshCounts(tx, [seriesPk, Number(existing.series_pk)], [studyPk, Number(existing.study_pk)], now);
    await emit(tx, { type: 'InstanceStored', payload: { ...instanceEvent(input), replaced: previous.blobKey, policy } }, now);
    await insertFindings(tx, findingsOf(input));
    const instancePk = Number(existing.pk);
    return policy === 'version'
      ? { kind: 'versioned', instancePk, previous }
      : { kind: 'overwritten', instancePk, replaced: previous };
  }

  async #upsertPatient(tx: Tx, input: NewInstance, now: string): Promise<number> {
    const p = input.patient;
    const find = () => tx
      .selectFrom('patient')
      .select('pk')
      .where('patient_id', '=', p.patientId)
      .where('issuer_of_patient_id', '=', p.issuerOfPatientId)
      .executeTakeFirst();
    // Looked up first: a patient's every instance after the first then costs one statement, not two.
    const known = await find();
    if (known) return Number(known.pk);
    // DO NOTHING + SELECT instead of DO UPDATE: patient rows are shared by many studies and must not become
    // a lock every concurrent ingest of that patient queues on. Demographics are kept as first received:
    // changing identity is a correction with its own audit trail, never a side effect of a store.
    await tx
      .insertInto('patient')
      .values({
        patient_id: p.patientId,
        issuer_of_patient_id: p.issuerOfPatientId,
        patient_name: p.patientName,
        patient_name_search: searchableName(p.patientName),
        patient_birth_date: p.patientBirthDate,
        patient_sex: p.patientSex,
        created_at: now,
      })
      .onConflict((oc) => oc.columns(['patient_id', 'issuer_of_patient_id']).doNothing())
      .execute();
    return Number((await find())!.pk);
  }

  async #refreshCounts(tx: Tx, seriesPks: number[], studyPks: number[], now: string): Promise<void> {
    for (const pk of new Set(seriesPks)) {
      await tx.updateTable('series').set({
        number_of_instances: (eb) => eb.selectFrom('instance').select((e) => e.fn.countAll<number>().as('n')).where('series_pk', '=', pk),
        size_bytes: (eb) => eb.selectFrom('instance').select((e) => e.fn.coalesce(e.fn.sum<number>('size_bytes'), sql<number>`0`).as('s')).where('series_pk', '=', pk),
        updated_at: now,
      }).where('pk', '=', pk).execute();
    }
    for (const pk of new Set(studyPks)) {
      const modalities = await tx.selectFrom('series').select('modality').distinct()
        .where('study_pk', '=', pk).where('modality', 'is not', null).where('number_of_instances', '>', 0)
        .orderBy('modality').execute();
      const sopClasses = await tx.selectFrom('instance').innerJoin('series', 'series.pk', 'instance.series_pk')
        .select('instance.sop_class_uid').distinct().where('series.study_pk', '=', pk).orderBy('instance.sop_class_uid').execute();
      await tx.updateTable('study').set({
        number_of_series: (eb) => eb.selectFrom('series').select((e) => e.fn.countAll<number>().as('n')).where('study_pk', '=', pk).where('number_of_instances', '>', 0),
        number_of_instances: (eb) => eb.selectFrom('series').select((e) => e.fn.coalesce(e.fn.sum<number>('number_of_instances'), sql<number>`0`).as('n')).where('study_pk', '=', pk),
        size_bytes: (eb) => eb.selectFrom('series').select((e) => e.fn.coalesce(e.fn.sum<number>('size_bytes'), sql<number>`0`).as('s')).where('study_pk', '=', pk),
        modalities_in_study: modalities.map((m) => m.modality).join('\\'),
        sop_classes_in_study: sopClasses.map((c) => c.sop_class_uid).join('\\'),
        updated_at: now,
      }).where('pk', '=', pk).execute();
    }
  }

  async findInstance(sopInstanceUid: string): Promise<InstanceRecord | null> {
    const row = await this.#instanceQuery().where('instance.sop_instance_uid', '=', sopInstanceUid).executeTakeFirst();
    return row ? toInstanceRecord(row) : null;
  }

  async instanceMetadata(sopInstanceUid: string): Promise<unknown | null> {
    const row = await this.#db.selectFrom('instance').select('metadata').where('sop_instance_uid', '=', sopInstanceUid).executeTakeFirst();
    return row ? JSON.parse(row.metadata) : null;
  }

  async pixelDataLayout(sopInstanceUid: string): Promise<PixelDataLayout | null> {
    const row = await this.#db.selectFrom('instance').select('pixel_data').where('sop_instance_uid', '=', sopInstanceUid).executeTakeFirst();
    return row?.pixel_data ? JSON.parse(row.pixel_data) : null;
  }

  async quarantine(entry: QuarantineEntry): Promise<number> {
    return await this.#db.transaction().execute(async (tx) => {
      const row = await tx.insertInto('quarantine').values({
        source: entry.source,
        reason_code: entry.reasonCode,
        reason: entry.reason,
        element: entry.element,
        byte_offset: entry.byteOffset,
        sop_instance_uid: entry.sopInstanceUid,
        original_name: entry.originalName,
        blob_key: entry.blobKey,
        size_bytes: entry.sizeBytes,
        sha256: entry.sha256,
        received_at: entry.receivedAt,
      }).returning('pk').executeTakeFirstOrThrow();
      await emit(tx, { type: 'InstanceQuarantined', payload: { quarantinePk: Number(row.pk), reasonCode: entry.reasonCode, sopInstanceUid: entry.sopInstanceUid, source: entry.source } }, entry.receivedAt);
      return Number(row.pk);
    });
  }

  async recordFindings(entries: QualityFindingEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.#db.transaction().execute((tx) => insertFindings(tx, entries));
  }

  async listFindings(filter: { studyInstanceUid?: string; code?: string }, page: Page): Promise<Paged<QualityFindingRecord>> {
    let base = this.#db.selectFrom('quality_finding');
    if (filter.studyInstanceUid) base = base.where('study_instance_uid', '=', filter.studyInstanceUid);
    if (filter.code) base = base.where('code', '=', filter.code);
    const [rows, total] = await Promise.all([
      base.selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      countOf(base),
    ]);
    const items = rows.map((r) => ({
      id: Number(r.pk), studyInstanceUid: r.study_instance_uid, seriesInstanceUid: r.series_instance_uid, sopInstanceUid: r.sop_instance_uid,
      code: r.code, element: r.element, detail: r.detail, source: r.source, recordedAt: r.recorded_at,
    }));
    return { items, total, ...page };
  }

  async listQuarantine(page: Page): Promise<Paged<QuarantineRecord>> {
    const base = this.#db.selectFrom('quarantine');
    const [rows, total] = await Promise.all([
      base.selectAll().orderBy('pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      countOf(base),
    ]);
    return { items: rows.map(toQuarantineRecord), total, ...page };
  }

  async getQuarantined(id: number): Promise<QuarantineRecord | null> {
    const row = await this.#db.selectFrom('quarantine').selectAll().where('pk', '=', id).executeTakeFirst();
    return row ? toQuarantineRecord(row) : null;
  }

  async deleteQuarantined(id: number): Promise<QuarantineRecord | null> {
    if (!Number.isSafeInteger(id)) return null;
    const row = await this.#db.deleteFrom('quarantine').where('pk', '=', id).returningAll().executeTakeFirst();
    return row ? toQuarantineRecord(row) : null;
  }

  async listPatients(filter: { patientId?: string; patientName?: string }, page: Page): Promise<Paged<PatientRecord>> {
    let q = this.#db.selectFrom('patient');
    if (filter.patientId) q = q.where(matchText('patient.patient_id', filter.patientId));
    if (filter.patientName) q = q.where(matchText('patient.patient_name_search', searchableName(filter.patientName) ?? ''));
    const [rows, total] = await Promise.all([
      q.selectAll('patient')
        .select((eb) => eb.selectFrom('study').select((e) => e.fn.countAll<number>().as('n')).whereRef('study.patient_pk', '=', 'patient.pk').as('number_of_studies'))
        .orderBy('patient.pk').limit(page.limit).offset(page.offset).execute(),
      countOf(q),
    ]);
    const items = rows.map((r) => ({
      pk: Number(r.pk), patientId: r.patient_id, issuerOfPatientId: r.issuer_of_patient_id, patientName: r.patient_name,
      patientBirthDate: r.patient_birth_date, patientSex: r.patient_sex, numberOfStudies: Number(r.number_of_studies ?? 0),
    }));
    return { items, total, ...page };
  }

  #studyQuery() {
    return this.#db.selectFrom('study').innerJoin('patient', 'patient.pk', 'study.patient_pk')
      .selectAll('study')
      .select(['patient.patient_id', 'patient.issuer_of_patient_id', 'patient.patient_name', 'patient.patient_birth_date', 'patient.patient_sex']);
  }

  async listStudies(filter: StudyFilter, page: Page): Promise<Paged<StudyRecord>> {
    let q = this.#db.selectFrom('study').innerJoin('patient', 'patient.pk', 'study.patient_pk');
    if (filter.patientId) q = q.where(matchText('patient.patient_id', filter.patientId));
    if (filter.patientName) q = q.where(matchText('patient.patient_name_search', searchableName(filter.patientName) ?? ''));
    if (filter.accessionNumber) q = q.where(matchText('study.accession_number', filter.accessionNumber));
    if (filter.studyInstanceUid) q = q.where('study.study_instance_uid', 'in', filter.studyInstanceUid.split(/[\\,]/));
    if (filter.studyDate) {
      const { from, to } = dateRangeBounds(filter.studyDate);
      if (from) q = q.where('study.study_date', '>=', from);
      if (to) q = q.where('study.study_date', '<=', to);
    }
    if (filter.modality) {
      const modality = filter.modality;
      q = q.where((eb) => eb.exists(eb.selectFrom('series').select('series.pk').whereRef('series.study_pk', '=', 'study.pk').where('series.modality', '=', modality)));
    }
    const [rows, total] = await Promise.all([
      q.selectAll('study')
        .select(['patient.patient_id', 'patient.issuer_of_patient_id', 'patient.patient_name', 'patient.patient_birth_date', 'patient.patient_sex'])
        .orderBy('study.study_date', 'desc').orderBy('study.pk', 'desc').limit(page.limit).offset(page.offset).execute(),
      countOf(q),
    ]);
    return { items: rows.map(toStudyRecord), total, ...page };
  }

  async getStudy(studyInstanceUid: string): Promise<StudyRecord | null> {
    const row = await this.#studyQuery().where('study.study_instance_uid', '=', studyInstanceUid).executeTakeFirst();
    return row ? toStudyRecord(row) : null;
  }

  #seriesQuery() {
    return this.#db.selectFrom('series').innerJoin('study', 'study.pk', 'series.study_pk').selectAll('series').select('study.study_instance_uid');
  }

  async listSeries(studyInstanceUid: string, page: Page): Promise<Paged<SeriesRecord>> {
    const base = this.#db.selectFrom('series').innerJoin('study', 'study.pk', 'series.study_pk').where('study.study_instance_uid', '=', studyInstanceUid);
    const [rows, total] = await Promise.all([
      this.#seriesQuery().where('study.study_instance_uid', '=', studyInstanceUid).orderBy('series.series_number').orderBy('series.pk')
        .limit(page.limit).offset(page.offset).execute(),
      countOf(base),
    ]);
    return { items: rows.map(toSeriesRecord), total, ...page };
  }

  async getSeries(seriesInstanceUid: string): Promise<SeriesRecord | null> {
    const row = await this.#seriesQuery().where('series.series_instance_uid', '=', seriesInstanceUid).executeTakeFirst();
    return row ? toSeriesRecord(row) : null;
  }

  #instanceQuery() {
    return this.#db.selectFrom('instance')
      .innerJoin('series', 'series.pk', 'instance.series_pk')
      .innerJoin('study', 'study.pk', 'series.study_pk')
      .select(['instance.pk', 'instance.sop_instance_uid', 'instance.sop_class_uid', 'instance.instance_number', 'instance.transfer_syntax_uid',
        'instance.number_of_frames', 'instance.rows', 'instance.columns', 'instance.content_date', 'instance.content_time',
        'instance.blob_key', 'instance.size_bytes', 'instance.sha256', 'instance.source', 'instance.received_at',
        'series.series_instance_uid', 'study.study_instance_uid']);
  }

  async listInstances(seriesInstanceUid: string, page: Page): Promise<Paged<InstanceRecord>> {
    const base = this.#db.selectFrom('instance').innerJoin('series', 'series.pk', 'instance.series_pk').where('series.series_instance_uid', '=', seriesInstanceUid);
    const [rows, total] = await Promise.all([
      this.#instanceQuery().where('series.series_instance_uid', '=', seriesInstanceUid)
        .orderBy('instance.instance_number').orderBy('instance.pk').limit(page.limit).offset(page.offset).execute(),
      countOf(base),
    ]);
    return { items: rows.map(toInstanceRecord), total, ...page };
  }

  async deleteStudy(studyInstanceUid: string): Promise<string[] | null> {
    return await this.#db.transaction().execute(async (tx) => {
      const study = await forUpdate(tx.selectFrom('study').select(['pk']).where('study_instance_uid', '=', studyInstanceUid), this.kind).executeTakeFirst();
      if (!study) return null;
      const seriesPks = (await tx.selectFrom('series').select('pk').where('study_pk', '=', study.pk).execute()).map((s) => Number(s.pk));
      const keys = await removeInstances(tx, (qb) => qb.where('series_pk', 'in', seriesPks.length ? seriesPks : [-1]));
      await tx.deleteFrom('series').where('study_pk', '=', study.pk).execute();
      await tx.deleteFrom('study').where('pk', '=', study.pk).execute();
      await emit(tx, { type: 'StudyDeleted', payload: { studyInstanceUid } }, new Date().toISOString());
      return keys;
    });
  }

  async deleteSeries(seriesInstanceUid: string): Promise<string[] | null> {
    return await this.#db.transaction().execute(async (tx) => {
      const series = await tx.selectFrom('series').innerJoin('study', 'study.pk', 'series.study_pk')
        .select(['series.pk', 'series.study_pk', 'study.study_instance_uid']).where('series_instance_uid', '=', seriesInstanceUid).executeTakeFirst();
      if (!series) return null;
      await lockStudy(tx, Number(series.study_pk), this.kind);
      const keys = await removeInstances(tx, (qb) => qb.where('series_pk', '=', series.pk));
      await tx.deleteFrom('series').where('pk', '=', series.pk).execute();
      await this.#refreshCounts(tx, [], [Number(series.study_pk)], new Date().toISOString());
      await emit(tx, { type: 'SeriesDeleted', payload: { seriesInstanceUid, studyInstanceUid: series.study_instance_uid } }, new Date().toISOString());
      return keys;
    });
  }

  async deleteInstance(sopInstanceUid: string): Promise<string[] | null> {
    return await this.#db.transaction().execute(async (tx) => {
      const inst = await tx.selectFrom('instance').innerJoin('series', 'series.pk', 'instance.series_pk').innerJoin('study', 'study.pk', 'series.study_pk')
        .select(['instance.pk', 'instance.series_pk', 'series.study_pk', 'study.study_instance_uid']).where('sop_instance_uid', '=', sopInstanceUid).executeTakeFirst();
      if (!inst) return null;
      await lockStudy(tx, Number(inst.study_pk), this.kind);
      const keys = await removeInstances(tx, (qb) => qb.where('pk', '=', inst.pk));
      await this.#refreshCounts(tx, [Number(inst.series_pk)], [Number(inst.study_pk)], new Date().toISOString());
      await emit(tx, { type: 'InstanceDeleted', payload: { sopInstanceUid, studyInstanceUid: inst.study_instance_uid } }, new Date().toISOString());
      return keys;
    });
  }

  find(query: IndexQuery): QueryResults {
    return findMatches(this.#db, this.kind, query);
  }

  async statistics(): Promise<ArchiveStatistics> {
    const count = async (table: keyof AtriumDatabase) =>
      Number((await this.#db.selectFrom(table).select((e) => e.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const size = await this.#db.selectFrom('instance').select((e) => e.fn.coalesce(e.fn.sum<number>('size_bytes'), sql<number>`0`).as('s')).executeTakeFirstOrThrow();
    return {
      patients: await count('patient'), studies: await count('study'), series: await count('series'), instances: await count('instance'),
      sizeBytes: Number(size.s), quarantined: await count('quarantine'), pendingEvents: await undeliveredEvents(this.#db),
    };
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.#db);
  }

  // Times are ISO-8601 UTC text (toISOString): the first 10 characters are the UTC day, the first 16 the
  // minute, on both engines, and ranges of them are ranges of the received_at index (migration 0008).
  async receivedPerDay(from: string, to: string): Promise<ReceivedDay[]> {
    const day = sql<string>`substr(instance.received_at, 1, 10)`;
    const rows = await this.#db.selectFrom('instance').innerJoin('series', 'series.pk', 'instance.series_pk')
      .select([
        day.as('day'),
        (e) => e.fn.count<number | string>('series.study_pk').distinct().as('studies'),
        (e) => e.fn.countAll<number | string>().as('instances'),
        (e) => e.fn.coalesce(e.fn.sum<number | string>('instance.size_bytes'), sql<number>`0`).as('bytes'),
      ])
      .where('instance.received_at', '>=', from).where('instance.received_at', '<', to)
      .groupBy(day).orderBy(day).execute();
    return rows.map((r) => ({ date: r.day, studies: Number(r.studies), instances: Number(r.instances), bytes: Number(r.bytes) }));
  }

  async bytesReceivedBefore(time: string): Promise<number> {
    const row = await this.#db.selectFrom('instance')
      .select((e) => e.fn.coalesce(e.fn.sum<number | string>('size_bytes'), sql<number>`0`).as('bytes'))
      .where('received_at', '<', time).executeTakeFirstOrThrow();
    return Number(row.bytes);
  }

  async receivedPerMinute(from: string, to: string): Promise<{ minute: string; instances: number }[]> {
    const minute = sql<string>`substr(received_at, 1, 16)`;
    const rows = await this.#db.selectFrom('instance')
      .select([minute.as('minute'), (e) => e.fn.countAll<number | string>().as('instances')])
      .where('received_at', '>=', from).where('received_at', '<', to)
      .groupBy(minute).orderBy(minute).execute();
    return rows.map((r) => ({ minute: r.minute, instances: Number(r.instances) }));
  }

  async countReceived(from: string, to: string): Promise<number> {
    const row = await this.#db.selectFrom('instance').select((e) => e.fn.countAll<number | string>().as('n'))
      .where('received_at', '>=', from).where('received_at', '<', to).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async modalityTotals(): Promise<ModalityTotals[]> {
    // From the series rows' derived counts: one pass over the series, not over the instances.
    const bytes = sql<number | string>`coalesce(sum(series.size_bytes), 0)`;
    const rows = await this.#db.selectFrom('series')
      .select([
        'series.modality',
        (e) => e.fn.count<number | string>('series.study_pk').distinct().as('studies'),
        (e) => e.fn.coalesce(e.fn.sum<number | string>('series.number_of_instances'), sql<number>`0`).as('instances'),
        bytes.as('bytes'),
      ])
      .where('series.number_of_instances', '>', 0)
      .groupBy('series.modality').orderBy(bytes, 'desc').orderBy('series.modality').execute();
    return rows.map((r) => ({ modality: r.modality, studies: Number(r.studies), instances: Number(r.instances), bytes: Number(r.bytes) }));
  }

  async *storedObjects() {
    const sources = [['instance', 'instance'], ['instance_version', 'version'], ['quarantine', 'quarantine']] as const;
    for (const [table, where] of sources) {
      // Keyset pagination: bounded memory whatever the archive size, and no long-held cursor on PostgreSQL.
      for (let after = 0; ;) {
        const rows = await this.#db.selectFrom(table).select(['pk', 'blob_key', 'size_bytes', 'sha256', 'sop_instance_uid'])
          .where('pk', '>', after).orderBy('pk').limit(1000).execute();
        for (const r of rows) yield { blobKey: r.blob_key, sizeBytes: Number(r.size_bytes), sha256: r.sha256, sopInstanceUid: r.sop_instance_uid, where };
        if (rows.length < 1000) break;
        after = Number(rows[rows.length - 1].pk);
      }
    }
  }
}

function instanceRow(input: NewInstance, seriesPk: number) {
  const i = input.instance;
  return {
    series_pk: seriesPk,
    sop_instance_uid: i.sopInstanceUid,
    sop_class_uid: i.sopClassUid,
    instance_number: i.instanceNumber,
    transfer_syntax_uid: i.transferSyntaxUid,
    number_of_frames: i.numberOfFrames,
    rows: i.rows,
    columns: i.columns,
    content_date: i.contentDate,
    content_time: i.contentTime,
    patient_id_received: input.patient.patientId,
    blob_key: input.blobKey,
    size_bytes: input.sizeBytes,
    sha256: input.sha256,
    dataset_sha256: input.datasetSha256,
    pixel_data: input.pixelData ? JSON.stringify(input.pixelData) : null,
    metadata: input.metadataJson,
    source: input.source,
    received_at: input.receivedAt,
  };
}

function instanceEvent(input: NewInstance) {
  return {
    sopInstanceUid: input.instance.sopInstanceUid,
    sopClassUid: input.instance.sopClassUid,
    seriesInstanceUid: input.series.seriesInstanceUid,
    studyInstanceUid: input.study.studyInstanceUid,
    patientId: input.patient.patientId,
    source: input.source,
  };
}

async function removeInstances(tx: Tx, where: (qb: any) => any): Promise<string[]> {
  const rows: { sop_instance_uid: string; blob_key: string }[] = await where(tx.selectFrom('instance').select(['sop_instance_uid', 'blob_key'])).execute();
  if (rows.length === 0) return [];
  const uids = rows.map((r) => r.sop_instance_uid);
  const keys = rows.map((r) => r.blob_key);
  for (let i = 0; i < uids.length; i += 500) {
    const chunk = uids.slice(i, i + 500);
    const versions = await tx.selectFrom('instance_version').select('blob_key').where('sop_instance_uid', 'in', chunk).execute();
    keys.push(...versions.map((v) => v.blob_key));
    await tx.deleteFrom('instance_version').where('sop_instance_uid', 'in', chunk).execute();
    await tx.deleteFrom('instance').where('sop_instance_uid', 'in', chunk).execute();
  }
  return keys;
}

async function lockStudy(tx: Tx, studyPk: number, engine: SqlEngine): Promise<void> {
  await forUpdate(tx.selectFrom('study').select('pk').where('pk', '=', studyPk), engine).execute();
}

/** SQLite has no row locks (and rejects FOR UPDATE); its single writer already serializes transactions. */
function forUpdate<Q extends SelectQueryBuilder<any, any, any>>(query: Q, engine: SqlEngine): Q {
  return engine === 'postgres' ? (query.forUpdate() as Q) : query;
}

function matchText(column: string, value: string): (eb: any) => Expression<SqlBool> {
  return (eb) => (/[*?]/.test(value) ? sql<SqlBool>`${sql.ref(column)} like ${likePattern(value)} escape '\\'` : eb(column, '=', value));
}

async function countOf(q: SelectQueryBuilder<any, any, any>): Promise<number> {
  const row = await q.clearSelect().select((e: any) => e.fn.countAll().as('n')).executeTakeFirstOrThrow();
  return Number((row as { n: number | string }).n);
}

function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; errcode?: number; message?: string };
  return e?.code === '23505' || /UNIQUE constraint failed/.test(e?.message ?? '');
}

function toQuarantineRecord(r: any): QuarantineRecord {
  return {
    id: Number(r.pk), source: r.source, reasonCode: r.reason_code, reason: r.reason, element: r.element,
    byteOffset: r.byte_offset === null ? null : Number(r.byte_offset), sopInstanceUid: r.sop_instance_uid,
    originalName: r.original_name, blobKey: r.blob_key, sizeBytes: Number(r.size_bytes), sha256: r.sha256, receivedAt: r.received_at,
  };
}

function toStudyRecord(r: any): StudyRecord {
  return {
    pk: Number(r.pk), studyInstanceUid: r.study_instance_uid, studyDate: r.study_date, studyTime: r.study_time,
    accessionNumber: r.accession_number, studyDescription: r.study_description, referringPhysicianName: r.referring_physician_name,
    studyId: r.study_id, timezoneOffsetFromUtc: r.timezone_offset_from_utc, patientAge: r.patient_age,
    patientSize: r.patient_size, patientWeight: r.patient_weight,
    patient: { patientId: r.patient_id, issuerOfPatientId: r.issuer_of_patient_id, patientName: r.patient_name, patientBirthDate: r.patient_birth_date, patientSex: r.patient_sex },
    modalitiesInStudy: r.modalities_in_study ? String(r.modalities_in_study).split('\\') : [],
    sopClassesInStudy: r.sop_classes_in_study ? String(r.sop_classes_in_study).split('\\') : [],
    numberOfStudyRelatedSeries: Number(r.number_of_series), numberOfStudyRelatedInstances: Number(r.number_of_instances),
    sizeBytes: Number(r.size_bytes), createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

function toSeriesRecord(r: any): SeriesRecord {
  return {
    pk: Number(r.pk), studyInstanceUid: r.study_instance_uid, seriesInstanceUid: r.series_instance_uid, modality: r.modality,
    seriesNumber: r.series_number, seriesDescription: r.series_description, bodyPartExamined: r.body_part_examined,
    seriesDate: r.series_date, seriesTime: r.series_time, performedProcedureStepStartDate: r.performed_procedure_step_start_date,
    performedProcedureStepStartTime: r.performed_procedure_step_start_time, institutionName: r.institution_name,
    stationName: r.station_name, manufacturer: r.manufacturer, laterality: r.laterality,
    requestedProcedureId: r.requested_procedure_id, scheduledProcedureStepId: r.scheduled_procedure_step_id,
    numberOfSeriesRelatedInstances: Number(r.number_of_instances),
    sizeBytes: Number(r.size_bytes),
  };
}

function toInstanceRecord(r: any): InstanceRecord {
  return {
    pk: Number(r.pk), studyInstanceUid: r.study_instance_uid, seriesInstanceUid: r.series_instance_uid,
    sopInstanceUid: r.sop_instance_uid, sopClassUid: r.sop_class_uid, instanceNumber: r.instance_number,
    transferSyntaxUid: r.transfer_syntax_uid, numberOfFrames: r.number_of_frames, rows: r.rows, columns: r.columns,
    contentDate: r.content_date, contentTime: r.content_time, blobKey: r.blob_key, sizeBytes: Number(r.size_bytes),
    sha256: r.sha256, source: r.source, receivedAt: r.received_at,
  };
}

function findingsOf(input: NewInstance): QualityFindingEntry[] {
  return (input.findings ?? []).map((f) => ({
    ...f, studyInstanceUid: input.study.studyInstanceUid, seriesInstanceUid: input.series.seriesInstanceUid,
    sopInstanceUid: input.instance.sopInstanceUid, source: input.source, recordedAt: input.receivedAt,
  }));
}

async function insertFindings(tx: Tx, entries: QualityFindingEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await tx.insertInto('quality_finding').values(entries.map((e) => ({
    study_instance_uid: e.studyInstanceUid, series_instance_uid: e.seriesInstanceUid, sop_instance_uid: e.sopInstanceUid,
    code: e.code, element: e.element, detail: e.detail, source: e.source, recorded_at: e.recordedAt,
  }))).execute();
}
