import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { areaGraph, cycles, importGraph } from './import-graph.ts';

const SRC = fileURLToPath(new URL('..', import.meta.url));

/**
 * The layers of src/, lowest first. An area imports (at run time) only areas of lower layers: the codec
 * and the ports know no transport, domain services know no transport, transports do not import each
 * other, and only the composition (app.ts) and the CLI see everything. A new area must be placed here.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'io', 'observability', 'ports', 'jobs', 'dicom-access', 'architecture', 'database', 'modules'],
  ['dicom', 'security', 'events'],
  ['imaging', 'audit', 'adapters', 'archive', 'config', 'synthetic'],
  ['dimse', 'dicomweb', 'hl7'],
  ['exchange', 'ris'],
  // Over the RIS's services: FHIR writes orders and reports through them; quality's corrections merge through
  // the RIS's merge; the reading worklist over the RIS's orders; the prior prefetch over the RIS's orders and
  // the exchange's retrieve jobs; workflow routes over the exchange's send jobs and reads the RIS's orders.
  ['fhir', 'quality', 'reading', 'prefetch', 'workflow'],
  // AI integration: studies sent by workflow's routing rules, flags on the reading worklist, reports from the RIS.
  ['ai'],
  ['http'],
  ['app.ts'],
  ['cli'],
];
const layerOf = new Map(LAYERS.flatMap((areas, layer) => areas.map((area) => [area, layer] as const)));

test('no two source files import each other, directly or through others', () => {
  assert.deepEqual(cycles(importGraph(SRC)), []);
});

test('production code imports nothing from outside src/ (test support lives in test/support/)', () => {
  const outside = [...importGraph(SRC)].flatMap(([file, targets]) =>
    targets.filter((target) => target.startsWith('..')).map((target) => `${file} -> ${target}`));
  assert.deepEqual(outside, []);
});

test('every area imports only areas below it', () => {
  const upward: string[] = [];
  for (const [area, targets] of areaGraph(importGraph(SRC))) {
    const from = layerOf.get(area);
    assert.ok(from !== undefined, `area ${area} has no layer in LAYERS`);
    for (const target of targets) {
      const to = layerOf.get(target);
      if (to === undefined || to >= from) upward.push(`${area} -> ${target}`);
    }
  }
  assert.deepEqual(upward, []);
});

test('the checker sees a cycle and skips type-only imports', () => {
  const graph = new Map([['a/x.ts', ['b/y.ts']], ['b/y.ts', ['a/x.ts']], ['c/z.ts', []]]);
  assert.deepEqual(cycles(graph), [['a/x.ts', 'b/y.ts']]);
  assert.deepEqual(areaGraph(graph).get('a'), ['b']);
  // This file type-imports nothing, but ingest-batch.ts type-imports ingest.ts, which imports it back.
  const real = importGraph(SRC);
  assert.ok(real.get('archive/ingest.ts')?.includes('archive/ingest-batch.ts'));
  assert.ok(!real.get('archive/ingest-batch.ts')?.includes('archive/ingest.ts'));
});
