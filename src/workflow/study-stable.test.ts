/**
 * StudyStable on SQLite and PostgreSQL with a moved clock: not before the quiet time, once per quiet period, a
 * later instance starts another, a redelivered InstanceStored starts none, and the sweep job queued by the
 * InstanceStored handler emits it by itself. Then the rule language: validation and evaluation.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { workflowNode, eventually, type WorkflowNode } from '../../test/support/workflow.ts';
import { syntheticSeries } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { workflowOf } from './module.ts';
import { compileRule, evaluateRule, validateRule, type RoutingFacts } from './rule.ts';

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  describe(`StudyStable (${engine})`, () => {
    let t: TestArchive;
    let node: WorkflowNode;
    before(async () => {
      t = await createTestArchive(engine);
      node = workflowNode(t.archive);
    });
    after(async () => {
      await node?.stop();
      await t?.cleanup();
    });

    const stableEvents = async (study: string) => {
      const rows = await t.archive.database.kysely<any>().selectFrom('outbox').select('payload').where('event_type', '=', 'StudyStable').where('ordering_key', '=', study).execute();
      return rows.map((r) => JSON.parse(r.payload));
    };
    const store = async (study: string, n: number, seed: number) => {
      for (const instance of syntheticSeries(n, { rows: 8, columns: 8, studyInstanceUid: study, seed })) {
        assert.equal((await t.archive.ingest.ingest([Buffer.concat([...instance])], { source: 'dimse:CT1' })).status, 'stored');
      }
    };

    test('once per quiet period, by the moved clock; a later instance starts another', async () => {
      const study = generateUid();
      await store(study, 3, 1);
      await node.dispatch();
      const wf = workflowOf(t.archive);
      node.advance(60_000);
      assert.equal(await wf.stability.sweep(), 0, 'not before the quiet time (120 s)');
      node.advance(61_000);
      await wf.stability.sweep();
      await eventually(async () => (await stableEvents(study)).length === 1, 'StudyStable');
      const [event] = await stableEvents(study);
      assert.equal(event.instanceCount, 3);
      assert.equal(event.studyInstanceUid, study);
      assert.equal(await wf.stability.sweep(), 0);

      // The same InstanceStored delivered again (a node died before recording it) starts no new period.
      const activity = await wf.stability.get(study);
      await wf.stability.recordInstance({ id: 1, type: 'InstanceStored', attempt: 2, createdAt: new Date().toISOString(),
        payload: { sopInstanceUid: '1.2.3', sopClassUid: '1.2', seriesInstanceUid: '1.2', studyInstanceUid: study, patientId: 'x', source: 'dimse:CT1' } });
      assert.equal((await wf.stability.get(study))?.state, 'emitted');
      assert.equal((await wf.stability.get(study))?.dueAt, activity?.dueAt);

      await store(study, 1, 50);
      // One dispatch may deliver other handlers' work first (several modules subscribe to InstanceStored).
      await eventually(async () => { await node.dispatch(); return (await wf.stability.get(study))?.state === 'quiet'; }, 'the new instance starting a quiet period');
      node.advance(121_000);
      // The sweep job queued by the handler is due by the moved clock: the job runner emits it by itself.
      await eventually(async () => (await stableEvents(study)).length === 2, 'a second StudyStable from the sweep job');
      assert.equal((await stableEvents(study))[1].instanceCount, 4);
      assert.equal((await wf.stability.get(study))?.periods, 2);
    });
  });
}

const facts = (over: Partial<RoutingFacts> = {}): RoutingFacts => ({
  studyInstanceUid: '1.2.3', modalities: ['CT', 'SR'], source: 'dimse:CT_ROOM_2', studyDescription: 'CT Chest with contrast', procedureCodes: ['CTCHEST'],
  bodyParts: ['CHEST'], priority: 'STAT', stations: ['CTSTATION1'], at: new Date(2026, 0, 1, 23, 30), ...over,
});

test('rules: every condition must hold, lists are any-of, patterns are DICOM wildcards, case-insensitive', () => {
  const rule = (conditions: object) => compileRule(validateRule({ name: 'r', trigger: 'study-stable', conditions, actions: [{ type: 'dicom', destination: 'PACS' }] }).rule!, 1);
  const matches = (conditions: object, f = facts()) => evaluateRule(rule(conditions), f).matched;
  assert.ok(matches({}));
  assert.ok(matches({ modality: ['mr', 'ct'] }));
  assert.ok(!matches({ modality: ['MR'] }));
  assert.ok(matches({ sourceAe: ['CT_ROOM_?'] }));
  assert.ok(!matches({ sourceAe: ['CT_ROOM'] }), 'the whole value');
  assert.ok(matches({ studyDescription: ['*chest*'] }));
  assert.ok(matches({ procedureCode: ['CT*'], bodyPart: ['CHEST'], priority: ['stat', 'urgent'], station: ['CTSTATION*'] }));
  assert.ok(!matches({ priority: ['ROUTINE'] }));
  assert.ok(!matches({ priority: ['STAT'] }, facts({ priority: null })), 'no matched order, no priority');
  assert.ok(matches({ timeOfDay: { from: '22:00', to: '06:00' } }), 'a range over midnight');
  assert.ok(!matches({ timeOfDay: { from: '08:00', to: '18:00' } }));
  assert.ok(matches({ timeOfDay: { from: '08:00', to: '18:00' } }, facts({ at: new Date(2026, 0, 1, 8, 0) })));
  assert.ok(!matches({ timeOfDay: { from: '08:00', to: '18:00' } }, facts({ at: new Date(2026, 0, 1, 18, 0) })), 'to is excluded');
  const explained = evaluateRule(rule({ modality: ['MR'], station: ['X*'] }), facts(), true);
  assert.deepEqual(explained.unmet.map((u) => u.condition), ['modality', 'station']);
});

test('rules: validation lists every problem with its field', () => {
  const r = validateRule({ name: 'x', trigger: 'instance', conditions: { timeOfDay: { from: '25:00', to: '01:00' }, priority: ['SOON'] },
    actions: [{ type: 'dicom', destination: 'A_VERY_LONG_AE_TITLE_X' }, { type: 'dicomweb' }, { type: 'dicom', destination: 'OK', transferSyntaxes: ['not a uid'] }] });
  assert.deepEqual(r.problems.map((p) => p.path), ['conditions.priority.0', 'conditions.timeOfDay', 'actions.0.destination', 'actions.1.destination', 'actions.2.transferSyntaxes']);
  assert.deepEqual(validateRule({ name: 'ok', trigger: 'instance', actions: [] }).problems.map((p) => p.path), ['actions']);
});
