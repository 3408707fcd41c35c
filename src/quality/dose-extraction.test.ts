// Dose extraction from the six vendors' files of ../shared/testdata/dose (OpenREM's test files): every
// numeric content item of each accumulated-dose container and each irradiation event is extracted with its
// value and unit, checked against the file as dcmjs reads it (its own parser, naturalized, the content tree
// walked here: not our codec nor our extraction); the headline values (DLP total, CTDIvol, DAP, AGD...) in
// canonical units against the file's values converted here. A non-dose SR and a CT image are recognised as
// carrying no dose; odd content does not throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import dcmjs from 'dcmjs';
import { readDoseReport } from './dose/read-dose-report.ts';
import { extractDose, type DoseExtraction } from './dose/dose-extraction.ts';
import { toDicomJson } from '../dicom/dicom-json.ts';
import { Part10Reader } from '../dicom/part10-reader.ts';
import { syntheticInstance } from '../synthetic/synthetic-instance.ts';
import { ageBandOf } from './dose/reference-levels.ts';

const DIR = new URL('../../../shared/testdata/dose/', import.meta.url);
const FILES = ['CT-RDSR-Siemens_Flash-TAP-SS.dcm', 'CT-RDSR-GEPixelMed.dcm', 'CT-ESR-GE_Optima.dcm', 'DX-RDSR-Canon_CXDI.dcm', 'MG-RDSR-Hologic_2D.dcm', 'RF-RDSR-Philips_Allura.dcm'];

// ---- the independent reader: dcmjs's parser, naturalized, walked here -------------------------------

interface Item { type: string; concept: string; meaning: string; children: Item[]; raw: any }
const list = (x: unknown): any[] => (x == null ? [] : Array.isArray(x) ? x : [x]);

function dcmjsRoot(file: string): { root: Item; ds: any } {
  const buf = readFileSync(new URL(file, DIR));
  // dcmjs is typed for the dictionary only (src/dicom/vendor.d.ts); its reader is used here as the independent one.
  const { DicomMessage, DicomMetaDictionary } = (dcmjs as any).data;
  const data = DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer, { ignoreErrors: true });
  const ds = DicomMetaDictionary.naturalizeDataset(data.dict);
  const walk = (raw: any): Item => {
    const c = list(raw.ConceptNameCodeSequence)[0];
    return { type: raw.ValueType, concept: c ? `${c.CodeValue}^${c.CodingSchemeDesignator}` : '', meaning: c?.CodeMeaning ?? '', children: list(raw.ContentSequence).map(walk), raw };
  };
  return { root: walk(ds), ds };
}

/** Every NUM under an item, depth first: [concept, value, unit] as dcmjs reads them. */
function nums(item: Item): [string, number | null, string | null][] {
  const out: [string, number | null, string | null][] = [];
  for (const c of item.children) {
    if (c.type === 'NUM') {
      const mv = list(c.raw.MeasuredValueSequence)[0];
      const v = mv ? list(mv.NumericValue)[0] : undefined;
      out.push([c.concept, v === undefined || v === null || v === '' ? null : Number(v), mv ? list(mv.MeasurementUnitsCodeSequence)[0]?.CodeValue ?? null : null]);
    } else if (c.children.length) out.push(...nums(c));
  }
  return out;
}
const containers = (root: Item, concept: string) => root.children.filter((c) => c.concept === concept);
const first = (ms: [string, number | null, string | null][], concept: string) => ms.find((m) => m[0] === concept && m[1] !== null);

async function extract(file: string): Promise<Extract<DoseExtraction, { dose: true }>> {
  const x = await readDoseReport([readFileSync(new URL(file, DIR))]);
  assert.ok(x.dose, `${file}: ${!x.dose && x.reason}`);
  return x;
}

/** Gy.m2, dGy.cm2 ... to Gy.cm2; Gy to mGy: the conversions written out independently of dose-units.ts. */
const toGyCm2: Record<string, number> = { 'Gy.m2': 1e4, 'dGy.cm2': 0.1, 'cGy.cm2': 0.01, 'mGy.cm2': 0.001, 'Gy.cm2': 1 };
const toMGy: Record<string, number> = { Gy: 1000, mGy: 1 };
const close = (actual: number | null, expected: number, what: string) => {
  assert.ok(actual !== null, `${what}: extracted nothing, the file has ${expected}`);
  assert.ok(Math.abs(actual - expected) <= Math.abs(expected) * 1e-9, `${what}: ${actual} vs ${expected} in the file`);
};

for (const file of FILES) test(`${file}: every NUM of the accumulated data and of each event, with its unit`, async () => {
  const x = await extract(file);
  const { root } = dcmjsRoot(file);
  const accumulated = [...containers(root, '113811^DCM'), ...containers(root, '113702^DCM')];
  const expectedTotals = accumulated.flatMap(nums);
  assert.ok(expectedTotals.length > 0, 'the file has accumulated dose values');
  assert.deepEqual(x.totals.measurements.map((m) => [m.concept, m.value, m.unit]), expectedTotals);
  const eventItems = [...containers(root, '113819^DCM'), ...containers(root, '113706^DCM')];
  assert.equal(x.events.length, eventItems.length, 'one event per CT Acquisition / Irradiation Event X-Ray Data');
  for (const [i, item] of eventItems.entries()) {
    assert.deepEqual(x.events[i]!.measurements.map((m) => [m.concept, m.value, m.unit]), nums(item), `event ${i + 1}`);
    const uid = item.children.find((c) => c.concept === '113769^DCM')?.raw.UID ?? null;
    assert.equal(x.events[i]!.irradiationEventUid, uid, `event ${i + 1} Irradiation Event UID`);
    const protocol = item.children.find((c) => c.concept === '125203^DCM')?.raw.TextValue ?? null;
    assert.equal(x.events[i]!.acquisitionProtocol, protocol, `event ${i + 1} Acquisition Protocol`);
  }
});

for (const file of FILES.filter((f) => f.startsWith('CT-'))) test(`${file}: CT totals and event parameters in canonical units`, async () => {
  const x = await extract(file);
  const { root, ds } = dcmjsRoot(file);
  assert.equal(x.kind, 'ct');
  assert.equal(x.modality, 'CT');
  assert.equal(x.header.studyInstanceUid, ds.StudyInstanceUID);
  assert.equal(x.header.stationName, ds.StationName ?? null);
  const total = first(nums(containers(root, '113811^DCM')[0]!), '113813^DCM')!;
  assert.match(total[2]!, /^mGy\.?cm$/, 'DLP total in mGy.cm (or the mGycm some devices write)');
  close(x.totals.dlpTotal, total[1]!, 'DLP total');
  for (const [i, item] of containers(root, '113819^DCM').entries()) {
    const ms = nums(item);
    const e = x.events[i]!;
    const want = (concept: string) => first(ms, concept);
    for (const [concept, got, name] of [['113830^DCM', e.ctdivol, 'CTDIvol'], ['113838^DCM', e.dlp, 'DLP'], ['113825^DCM', e.scanLength, 'scan length'],
      ['113733^DCM', e.kvp, 'kVp'], ['113734^DCM', e.tubeCurrent, 'mA'], ['113828^DCM', e.pitch, 'pitch'], ['113824^DCM', e.exposureTime, 'exposure time']] as const) {
      const m = want(concept);
      if (m) close(got, m[1]!, `event ${i + 1} ${name}`);
      else assert.equal(got, null, `event ${i + 1} ${name}: absent from the file`);
    }
    const time = want('113824^DCM');
    const current = want('113734^DCM');
    if (time && current && time[2] === 's') close(e.exposure, current[1]! * time[1]!, `event ${i + 1} mAs (mA x s)`);
    const phantom = item.children.find((c) => c.concept === '113829^DCM')?.children.find((c) => c.concept === '113835^DCM');
    assert.equal(e.phantomType, phantom ? list(phantom.raw.ConceptCodeSequence)[0].CodeMeaning : null, `event ${i + 1} phantom`);
    const region = item.children.find((c) => c.concept === '123014^DCM');
    assert.equal(e.targetRegion?.meaning ?? null, region ? list(region.raw.ConceptCodeSequence)[0]?.CodeMeaning ?? null : null, `event ${i + 1} target region`);
  }
});

test('DX (Canon CXDI): DAP total and event DAP in Gy.cm2, kVp, mA, exposure time, plane, region', async () => {
  const file = 'DX-RDSR-Canon_CXDI.dcm';
  const x = await extract(file);
  const { root } = dcmjsRoot(file);
  assert.deepEqual([x.kind, x.modality], ['projection', 'DX']);
  const total = first(nums(containers(root, '113702^DCM')[0]!), '113722^DCM')!;
  close(x.totals.dapTotal, total[1]! * toGyCm2[total[2]!]!, 'DAP total');
  const ev = containers(root, '113706^DCM')[0]!;
  const dap = first(nums(ev), '122130^DCM')!;
  close(x.events[0]!.dap, dap[1]! * toGyCm2[dap[2]!]!, 'event DAP');
  close(x.events[0]!.kvp, first(nums(ev), '113733^DCM')![1]!, 'kVp');
  close(x.events[0]!.tubeCurrent, first(nums(ev), '113734^DCM')![1]!, 'mA');
  const time = first(nums(ev), '113824^DCM')!;
  close(x.events[0]!.exposureTime, time[1]! * (time[2] === 'ms' ? 0.001 : 1), 'exposure time in s');
  assert.equal(x.events[0]!.acquisitionPlane, list(ev.children.find((c) => c.concept === '113764^DCM')!.raw.ConceptCodeSequence)[0].CodeMeaning);
  assert.equal(x.events[0]!.targetRegion?.meaning, 'Chest');
  assert.equal(x.totals.doseRpTotal, null, 'Dose (RP) Total is an empty NUM in this file');
  assert.equal(x.totals.measurements.find((m) => m.concept === '113725^DCM')?.value, null);
});

test('MG (Hologic): accumulated AGD per breast, AGD per view, entrance dose, compressed thickness', async () => {
  const file = 'MG-RDSR-Hologic_2D.dcm';
  const x = await extract(file);
  const { root } = dcmjsRoot(file);
  assert.deepEqual([x.kind, x.modality], ['mammography', 'MG']);
  const accumulated = containers(root, '113702^DCM')[0]!.children.filter((c) => c.concept === '111637^DCM');
  assert.equal(accumulated.length, 2, 'one accumulated AGD per breast in the file');
  for (const a of accumulated) {
    const laterality = list(a.children[0]!.raw.ConceptCodeSequence)[0].CodeMeaning;
    const value = Number(list(list(a.raw.MeasuredValueSequence)[0].NumericValue)[0]);
    const m = x.totals.measurements.find((t) => t.concept === '111637^DCM' && t.laterality === laterality);
    assert.ok(m, `accumulated AGD of ${laterality}`);
    assert.deepEqual([m.value, m.unit], [value, 'mGy']);
  }
  const events = containers(root, '113706^DCM');
  let entrance = 0;
  for (const [i, ev] of events.entries()) {
    const ms = nums(ev);
    const agd = first(ms, '111631^DCM')!;
    close(x.events[i]!.agd, agd[1]! * toMGy[agd[2]!]!, `event ${i + 1} AGD`);
    const ent = first(ms, '111636^DCM')!;
    close(x.events[i]!.entranceDose, ent[1]! * toMGy[ent[2]!]!, `event ${i + 1} entrance dose`);
    entrance += ent[1]! * toMGy[ent[2]!]!;
    const thickness = first(ms, '111633^DCM')!;
    assert.equal(thickness[2], 'mm');
    close(x.events[i]!.compressionThickness, thickness[1]!, `event ${i + 1} compressed thickness`);
    const view = ev.children.find((c) => c.concept === '111031^DCM')!;
    assert.equal(x.events[i]!.imageView, list(view.raw.ConceptCodeSequence)[0].CodeMeaning);
    const anatomy = ev.children.find((c) => c.concept === 'T-D0005^SRT')!;
    assert.equal(x.events[i]!.laterality, list(anatomy.children[0]!.raw.ConceptCodeSequence)[0].CodeMeaning, `event ${i + 1} laterality`);
  }
  close(x.totals.entranceDoseTotal, entrance, 'entrance dose over the events');
});

test('RF (Philips Allura): DAP total, fluoro DAP, dose at RP, fluoro time, each event\'s DAP and dose at RP', async () => {
  const file = 'RF-RDSR-Philips_Allura.dcm';
  const x = await extract(file);
  const { root } = dcmjsRoot(file);
  assert.deepEqual([x.kind, x.modality], ['fluoroscopy', 'RF']);
  const acc = nums(containers(root, '113702^DCM')[0]!);
  for (const [concept, got, conv] of [['113722^DCM', x.totals.dapTotal, toGyCm2], ['113726^DCM', x.totals.fluoroDapTotal, toGyCm2],
    ['113727^DCM', x.totals.acquisitionDapTotal, toGyCm2], ['113725^DCM', x.totals.doseRpTotal, toMGy]] as const) {
    const m = first(acc, concept)!;
    close(got, m[1]! * conv[m[2]!]!, concept);
  }
  const fluoroTime = first(acc, '113730^DCM')!;
  assert.equal(fluoroTime[2], 's');
  close(x.totals.fluoroTimeTotal, fluoroTime[1]!, 'total fluoro time');
  for (const [i, ev] of containers(root, '113706^DCM').entries()) {
    const dap = first(nums(ev), '122130^DCM')!;
    close(x.events[i]!.dap, dap[1]! * toGyCm2[dap[2]!]!, `event ${i + 1} DAP`);
    const rp = first(nums(ev), '113738^DCM')!;
    close(x.events[i]!.doseRp, rp[1]! * toMGy[rp[2]!]!, `event ${i + 1} dose RP`);
    const kvp = first(nums(ev), '113733^DCM');
    if (kvp) close(x.events[i]!.kvp, kvp[1]!, `event ${i + 1} kVp`);
  }
  assert.equal(x.events[0]!.eventType, 'Fluoroscopy');
});

test('the GE Optima "ESR" is an Enhanced SR carrying TID 10011: recognised by its title and extracted, events without CT Dose kept without CTDIvol', async () => {
  const x = await extract('CT-ESR-GE_Optima.dcm');
  const { ds } = dcmjsRoot('CT-ESR-GE_Optima.dcm');
  assert.equal(ds.SOPClassUID, '1.2.840.10008.5.1.4.1.1.88.22', 'Enhanced SR, not an X-Ray Radiation Dose SR');
  assert.equal(x.kind, 'ct');
  const withDose = x.events.filter((e) => e.ctdivol !== null);
  assert.ok(withDose.length > 0 && withDose.length < x.events.length, 'the constant-angle (scout) events of this file have no CT Dose container');
});

function jsonOf(bytes: Uint8Array) {
  const reader = new Part10Reader();
  reader.push(bytes);
  return toDicomJson(reader.end().dataset);
}

test('an SR with another document title, a CT image and odd content are "no dose", without throwing', () => {
  const esr = jsonOf(readFileSync(new URL('CT-ESR-GE_Optima.dcm', DIR)));
  // The same Enhanced SR retitled as an Imaging Measurement Report (126000, TID 1500): not a dose report.
  const retitled = structuredClone(esr);
  (retitled['0040A043']!.Value![0] as any)['00080100'].Value = ['126000'];
  const r = extractDose(retitled);
  assert.equal(r.dose, false);
  assert.match(!r.dose ? r.reason : '', /126000\^DCM .*not a radiation dose report/);
  const ct = extractDose(jsonOf(Buffer.concat([...syntheticInstance({ modality: 'CT' })])));
  assert.equal(ct.dose, false);
  // A dose report whose containers hold garbage: values that are not numbers, items without concept names.
  const odd = structuredClone(jsonOf(readFileSync(new URL('CT-RDSR-GEPixelMed.dcm', DIR))));
  const acquisitions = (odd['0040A730']!.Value as any[]).filter((i) => i['0040A043']?.Value?.[0]?.['00080100']?.Value?.[0] === '113819');
  for (const a of acquisitions) { delete a['0040A043']; }
  (odd['0040A730']!.Value as any[]).push({ '0040A040': { vr: 'CS', Value: ['NUM'] }, '0040A300': { vr: 'SQ', Value: [{ '0040A30A': { vr: 'DS', Value: ['x'] } }] } });
  const oddResult = extractDose(odd);
  assert.ok(oddResult.dose);
  assert.equal(oddResult.events.length, 0, 'acquisitions without a concept name are not events');
  assert.equal(extractDose({}).dose, false);
});

test('age bands', () => {
  assert.deepEqual([0.5, 1, 4.9, 5, 12, 15, 17.9, 18, 67, null].map(ageBandOf), ['0-1y', '1-5y', '1-5y', '5-10y', '10-15y', '15-18y', '15-18y', 'adult', 'adult', 'unknown']);
});
