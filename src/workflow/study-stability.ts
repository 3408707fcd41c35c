/**
 * StudyStable (docs/workflow.md "StudyStable"): a study that has had no new instance for the quiet time.
 * Each InstanceStored moves the study's due time (`workflow_study_activity`, migration 0028); a sweep, run as
 * the durable job `workflow.study-stable-sweep` on whichever node claims it, takes the due rows (FOR UPDATE SKIP
 * LOCKED on PostgreSQL, the one writer on SQLite), marks them emitted and writes StudyStable into the outbox in
 * the same transaction: one event per quiet period, whatever the number of nodes. Times come from the injected
 * clock, so tests move it instead of sleeping through quiet times.
 */
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database/database.ts';
import { emit } from '../adapters/index/sql-event-outbox.ts';
import type { DeliveredEvent } from '../events/event-map.ts';
import type { JobQueue } from '../ports/job-queue.ts';

export const STUDY_STABLE_SWEEP_JOB = 'workflow.study-stable-sweep';

export interface StudyActivity {
  studyInstanceUid: string;
  patientId: string;
  lastInstanceAt: string;
  dueAt: string;
  state: 'quiet' | 'emitted';
  lastSource: string;
  emittedAt: string | null;
  periods: number;
}

export interface StudyStabilityOptions {
  database: Database;
  jobs: JobQueue;
  quietMs: () => number;
  clock: () => Date;
}

export class StudyStability {
  readonly #db: Kysely<any>;
  readonly #engine: Database['engine'];
  readonly #jobs: JobQueue;
  readonly #quietMs: () => number;
  readonly #clock: () => Date;

  constructor(options: StudyStabilityOptions) {
    this.#db = options.database.kysely<any>();
    this.#engine = options.database.engine;
    this.#jobs = options.jobs;
    this.#quietMs = options.quietMs;
    this.#clock = options.clock;
  }

  /**
   * An instance was stored: the study's quiet period starts again from the time it was stored. A redelivered
   * (or older) event changes nothing. Then a sweep is made sure to be queued for the due time.
   */
  async recordInstance(event: DeliveredEvent<'InstanceStored'>): Promise<void> {
    const p = event.payload;
    const storedAt = new Date(event.createdAt);
    const due = new Date(storedAt.getTime() + this.#quietMs()).toISOString();
    await this.#db.insertInto('workflow_study_activity').values({
      study_instance_uid: p.studyInstanceUid, patient_id: p.patientId, last_instance_at: storedAt.toISOString(), due_at: due, state: 'quiet',
      last_event_pk: event.id, last_source: p.source, emitted_at: null, periods: 0,
    }).onConflict((oc) => oc.column('study_instance_uid').doUpdateSet({
      patient_id: p.patientId, last_instance_at: storedAt.toISOString(), due_at: due, state: 'quiet', last_event_pk: event.id, last_source: p.source,
    }).where('workflow_study_activity.last_event_pk', '<', event.id)).execute();
    await this.ensureSweep(new Date(due));
  }

  async forget(studyInstanceUid: string): Promise<void> {
    await this.#db.deleteFrom('workflow_study_activity').where('study_instance_uid', '=', studyInstanceUid).execute();
  }

  async get(studyInstanceUid: string): Promise<StudyActivity | null> {
    const row = await this.#db.selectFrom('workflow_study_activity').selectAll().where('study_instance_uid', '=', studyInstanceUid).executeTakeFirst();
    return row ? toActivity(row) : null;
  }

  /**
   * Makes sure a sweep job is queued to run by `due`. Two nodes may both queue one: the sweeps share the rows
   * safely, and the spare one finds nothing due. The job's run time is the queue's (wall) clock: the delay
   * until `due` by the injected clock, from now.
   */
  async ensureSweep(due: Date): Promise<void> {
    const delay = Math.max(0, due.getTime() - this.#clock().getTime());
    const runAt = new Date(Date.now() + delay);
    const queued = await this.#db.selectFrom('job').select('pk').where('type', '=', STUDY_STABLE_SWEEP_JOB).where('state', '=', 'queued')
      .where('run_at', '<=', runAt.toISOString()).limit(1).executeTakeFirst();
    if (!queued) await this.#jobs.enqueue(STUDY_STABLE_SWEEP_JOB, { due: due.toISOString() }, { runAt, maxAttempts: 10 });
  }

  /**
   * Emits StudyStable for every study due by the injected clock, `batch` rows per transaction, and queues the
   * next sweep for the earliest study still quiet. Returns how many events were written.
   */
  async sweep(batch = 100): Promise<number> {
    let emitted = 0;
    for (;;) {
      const n = await this.#sweepBatch(batch);
      emitted += n;
      if (n < batch) break;
    }
    const next = await this.#db.selectFrom('workflow_study_activity').select('due_at').where('state', '=', 'quiet').orderBy('due_at').limit(1).executeTakeFirst();
    if (next) await this.ensureSweep(new Date(next.due_at));
    return emitted;
  }

  async #sweepBatch(batch: number): Promise<number> {
    const now = this.#clock().toISOString();
    return await this.#db.transaction().execute(async (tx) => {
      let pick = tx.selectFrom('workflow_study_activity').selectAll().where('state', '=', 'quiet').where('due_at', '<=', now).orderBy('due_at').limit(batch);
      if (this.#engine === 'postgres') pick = pick.forUpdate().skipLocked();
      const rows = await pick.execute();
      for (const row of rows) {
        // The study as the index has it now, read in this transaction (SQLite has one connection).
        const study = await tx.selectFrom('study').innerJoin('patient', 'patient.pk', 'study.patient_pk')
          .select(['study.accession_number', 'study.number_of_instances', 'patient.patient_id']).where('study.study_instance_uid', '=', row.study_instance_uid).executeTakeFirst();
        await tx.updateTable('workflow_study_activity').set({ state: 'emitted', emitted_at: now, periods: Number(row.periods) + 1 })
          .where('study_instance_uid', '=', row.study_instance_uid).execute();
        if (!study) continue; // deleted meanwhile: nothing to announce
        await emit(tx as Transaction<any>, {
          type: 'StudyStable',
          payload: {
            studyInstanceUid: row.study_instance_uid, patientId: study.patient_id, accessionNumber: study.accession_number ?? null,
            instanceCount: Number(study.number_of_instances), lastInstanceAt: row.last_instance_at,
          },
        }, now);
      }
      return rows.length;
    });
  }
}

function toActivity(row: any): StudyActivity {
  return {
    studyInstanceUid: row.study_instance_uid, patientId: row.patient_id, lastInstanceAt: row.last_instance_at, dueAt: row.due_at, state: row.state,
    lastSource: row.last_source, emittedAt: row.emitted_at ?? null, periods: Number(row.periods),
  };
}
