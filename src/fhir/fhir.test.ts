// The FHIR R4 server on SQLite and PostgreSQL, over the shared DICOM corpus, synthetic studies and the
// orders, reports and merge of the RIS made through HL7: every resource served validates against the R4
// StructureDefinitions; each search parameter and date prefix answers what expectations computed here
// from the index and RIS records say; paging walks every result once; bad input is an OperationOutcome
// with nothing changed; writes go through the RIS; roles, a referring clinician's view and the audit trail.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { SYNTHETIC, buildFhirFixtures, r4Problems } from '../../test/support/fhir.ts';
import { createHttpServer } from '../http/server.ts';
import { risOf } from '../ris/module.ts';
import { matchesPersonNames } from '../security/index.ts';
import type { StudyRecord } from '../ports/index-store.ts';

type Json = Record<string, any>;
const B = '/fhir/R4';
const PREFIXES = ['eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb'] as const;

// ---- an independent reading of R4 date search (search.html "date"), for the expectations ----

/** The range [start, end] in ms of a FHIR date search value (local time when it has no zone). */
function valueRange(v: string): [number, number] {
  const m = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(v)!;
  const [y, mo, d, h, mi, s, f, z] = [Number(m[1]), m[2] ? Number(m[2]) : null, m[3] ? Number(m[3]) : null, m[4], m[5], m[6], m[7], m[8]];
  if (h === undefined) {
    const start = new Date(y, (mo ?? 1) - 1, d ?? 1).getTime();
    const end = d !== null ? new Date(y, mo! - 1, d + 1).getTime() : mo !== null ? new Date(y, mo, 1).getTime() : new Date(y + 1, 0, 1).getTime();
    return [start, end - 1];
  }
  const fields = [y, (mo ?? 1) - 1, d ?? 1, Number(h), Number(mi), Number(s ?? 0), f ? Math.floor(Number(`0${f}`) * 1000) : 0] as const;
  const start = z ? Date.UTC(...fields) - (z === 'Z' ? 0 : (z[0] === '-' ? -1 : 1) * (Number(z.slice(1, 3)) * 60 + Number(z.slice(4))) * 60_000) : new Date(...fields).getTime();
  return [start, start + (s === undefined ? 60_000 : f ? 1 : 1000) - 1];
}

/** A stored DICOM DA (+TM) or HL7 TS as a range in ms, local time; null without a date. */
function storedRange(date: string | null, time: string | null): [number, number] | null {
  if (!date || !/^\d{8}$/.test(date)) return null;
  const [y, mo, d] = [Number(date.slice(0, 4)), Number(date.slice(4, 6)), Number(date.slice(6, 8))];
  const t = /^(\d{2})(\d{2})?(\d{2})?/.exec(time ?? '');
  if (!t) return [new Date(y, mo - 1, d).getTime(), new Date(y, mo - 1, d + 1).getTime() - 1];
  const start = new Date(y, mo - 1, d, Number(t[1]), Number(t[2] ?? 0), Number(t[3] ?? 0)).getTime();
  return [start, start + 999];
}

function dateMatches(prefix: string, [rs, re]: [number, number], [ps, pe]: [number, number]): boolean {
  const contained = rs >= ps && re <= pe;
  switch (prefix) {
    case 'eq': return contained;
    case 'ne': return !contained;
    case 'gt': return re > pe;
    case 'lt': return rs < ps;
    case 'ge': return re > pe || contained;
    case 'le': return rs < ps || contained;
    case 'sa': return rs > pe;
    case 'eb': return re < ps;
    default: throw new Error(prefix);
  }
}

const sorted = (values: Iterable<string>) => [...values].sort();

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`FHIR R4 on ${engine}`, { timeout: 600_000 }, async (t) => {
    const ta: TestArchive = await createTestArchive(engine);
    let app: FastifyInstance | undefined;
    after(async () => { await app?.close(); await ta.cleanup(); });
    const archive = ta.archive;
    await buildFhirFixtures(archive);
    app = await createHttpServer(archive);
    await app.ready();
    const ris = risOf(archive);

    const call = async (method: string, url: string, options: { headers?: Record<string, string>; body?: unknown; raw?: string; as?: Record<string, string> } = {}) => {
      const r = await app!.inject({
        method: method as 'GET', url,
        headers: { ...(options.as ?? ta.authHeaders()), ...(options.body !== undefined || options.raw !== undefined ? { 'content-type': 'application/fhir+json' } : {}), ...options.headers },
        ...(options.raw !== undefined ? { payload: options.raw } : options.body !== undefined ? { payload: JSON.stringify(options.body) } : {}),
      });
      const type = String(r.headers['content-type'] ?? '');
      return { status: r.statusCode, type, headers: r.headers, body: (type.includes('json') ? r.json() : r.body) as Json };
    };
    const get = (url: string, headers?: Record<string, string>) => call('GET', url, { headers });
    /** Every resource of a search, following the next links; asserts each page is a searchset with the same total. */
    const walk = async (url: string, headers?: Record<string, string>): Promise<{ total: number; resources: Json[]; included: Json[]; pages: number }> => {
      const resources: Json[] = [];
      const included: Json[] = [];
      let next: string | undefined = url;
      let total = -1;
      let pages = 0;
      while (next) {
        const page = await get(next, headers);
        assert.equal(page.status, 200, `${next}: ${JSON.stringify(page.body)}`);
        assert.equal(page.body.type, 'searchset');
        if (total === -1) total = page.body.total;
        else assert.equal(page.body.total, total, 'the total stays the same from page to page');
        for (const e of page.body.entry ?? []) (e.search.mode === 'match' ? resources : included).push(e.resource);
        const link = (page.body.link as Json[]).find((l) => l.relation === 'next')?.url as string | undefined;
        next = link ? link.replace(/^https?:\/\/[^/]+/, '') : undefined;
        pages++;
        assert.ok(pages < 500, 'paging ends');
      }
      return { total, resources, included, pages };
    };
    const ids = (resources: Json[]) => resources.map((r) => r.id as string);
    const search = async (url: string) => sorted(ids((await walk(url)).resources));

    const studies: StudyRecord[] = (await archive.index.listStudies({}, { limit: 1000, offset: 0 })).items;
    const orders = (await ris.orders.list({}, { limit: 1000, offset: 0 })).items;
    const orderOf = (accession: string) => orders.find((o) => o.accessionNumber === accession)!;
    const uid = (i: number) => SYNTHETIC[i - 1]!.uid;

    const everything: Json[] = [];

    await t.test('the CapabilityStatement lists what is served, without credentials', async () => {
      const r = await call('GET', `${B}/metadata`, { as: {} });
      assert.equal(r.status, 200);
      assert.match(r.type, /^application\/fhir\+json/);
      assert.equal(r.body.fhirVersion, '4.0.1');
      const rest = r.body.rest[0];
      assert.deepEqual(rest.resource.map((x: Json) => x.type), ['Patient', 'ImagingStudy', 'Endpoint', 'ServiceRequest', 'DiagnosticReport', 'AuditEvent']);
      const imaging = rest.resource.find((x: Json) => x.type === 'ImagingStudy');
      assert.deepEqual(imaging.searchParam.map((p: Json) => p.name), ['_id', 'patient', 'subject', 'identifier', 'started', 'modality', 'status', 'basedon']);
      assert.deepEqual(imaging.interaction.map((i: Json) => i.code), ['read', 'search-type']);
      assert.deepEqual(rest.resource.find((x: Json) => x.type === 'DiagnosticReport').interaction.map((i: Json) => i.code), ['read', 'vread', 'search-type', 'create', 'update']);
      everything.push(r.body);
    });

    await t.test('paging walks every result exactly once, totals right', async () => {
      const all = await walk(`${B}/ImagingStudy?_count=4`);
      assert.equal(all.total, studies.length);
      assert.equal(all.resources.length, studies.length);
      assert.deepEqual(sorted(ids(all.resources)), sorted(studies.map((s) => s.studyInstanceUid)), 'every study once');
      assert.ok(all.pages >= Math.ceil(studies.length / 4));
      const one = await walk(`${B}/ImagingStudy?_count=1`);
      assert.deepEqual(ids(one.resources), ids(all.resources), 'the same order whatever the page size');
      const patients = await walk(`${B}/Patient?_count=3`);
      assert.equal(new Set(ids(patients.resources)).size, patients.resources.length);
      assert.equal(patients.resources.length, patients.total);
      const requests = await walk(`${B}/ServiceRequest?_count=1`);
      assert.deepEqual(sorted(ids(requests.resources)), sorted(orders.map((o) => String(o.pk))));
      const reports = await walk(`${B}/DiagnosticReport?_count=2`);
      assert.equal(reports.resources.length, 3);
      everything.push(...all.resources, ...patients.resources, ...requests.resources, ...reports.resources);
      const endpoints = await walk(`${B}/Endpoint`);
      everything.push(...endpoints.resources);
      // Reads give what searches gave.
      for (const r of [...all.resources.slice(0, 5), ...patients.resources, ...requests.resources, ...reports.resources, ...endpoints.resources]) {
        const read = await get(`${B}/${r.resourceType}/${r.id}`);
        assert.equal(read.status, 200, `${r.resourceType}/${r.id}`);
        assert.deepEqual(read.body, r);
      }
    });

    await t.test('every resource served validates against the R4 StructureDefinitions', async () => {
      assert.ok(r4Problems({ resourceType: 'ImagingStudy', status: 'bogus' }).length > 0, 'the validator does find problems');
      const more = [
        (await get(`${B}/Patient/PFHIR3--HOSP`)).body, (await get(`${B}/Patient/PFHIR1`)).body,
        (await get(`${B}/DiagnosticReport/${orderOf('FACC1').pk}/_history/1`)).body,
        ...(await walk(`${B}/ImagingStudy?_include=ImagingStudy:subject&_count=50`)).included,
        (await get(`${B}/ImagingStudy?_summary=count`)).body, (await get(`${B}/Nothing`)).body, (await get(`${B}/Patient/NOPE`)).body,
      ];
      const problems = [...everything, ...more].flatMap((r) => r4Problems(r).map((p) => `${r.resourceType}/${r.id ?? ''} ${p}`));
      assert.deepEqual(problems, []);
      assert.ok(everything.filter((r) => r.resourceType === 'ImagingStudy').length === studies.length);
    });

    await t.test('ImagingStudy: what it says of a study', async () => {
      const study = (await get(`${B}/ImagingStudy/${uid(1)}`)).body;
      assert.deepEqual(study.identifier, [
        { use: 'official', system: 'urn:dicom:uid', value: `urn:oid:${uid(1)}` },
        { use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN' }] }, value: 'FACC1' },
      ]);
      assert.equal(study.status, 'available');
      assert.equal(study.subject.reference, 'Patient/PFHIR1--HOSP', 'the RIS patient, whose ID the images carry without an issuer');
      assert.deepEqual(study.basedOn, [{ reference: `ServiceRequest/${orderOf('FACC1').pk}` }]);
      assert.deepEqual(study.referrer, { display: 'RITA REFERRER' });
      assert.deepEqual(study.endpoint, [{ reference: 'Endpoint/dicomweb' }, { reference: 'Endpoint/iid' }]);
      assert.equal(study.numberOfSeries, 3);
      assert.equal(study.numberOfInstances, 3);
      assert.deepEqual(study.modality.map((m: Json) => m.code).sort(), ['CT', 'SR']);
      assert.equal(study.procedureCode[0].coding[0].code, 'CTHEAD');
      assert.deepEqual(study.series.map((s: Json) => [s.uid, s.number, s.modality.code, s.instance.map((i: Json) => [i.uid, i.sopClass.code, i.number])]), [1, 2, 3].map((n) =>
        [`${uid(1)}.${n}`, n, n === 3 ? 'SR' : 'CT', [[`${uid(1)}.${n}.1`, 'urn:oid:1.2.840.10008.5.1.4.1.1.2', 1]]]));
      assert.match(study.started, /^2024-03-01T08:30:00[+-]\d{2}:\d{2}$/);
      assert.equal((await get(`${B}/ImagingStudy/${uid(3)}`)).body.started, '2024-03-02', 'a date without a time is a date');
      const summary = (await get(`${B}/ImagingStudy?_id=${uid(1)}&_summary=true`)).body.entry[0].resource;
      assert.equal(summary.series.length, 3);
      assert.ok(summary.series.every((s: Json) => s.instance === undefined), '_summary=true leaves the instance lists out');
      const endpoint = (await get(`${B}/Endpoint/dicomweb`)).body;
      assert.equal(endpoint.address, 'http://localhost:80/dicom-web');
      assert.equal(endpoint.connectionType.code, 'dicom-wado-rs');
    });

    await t.test('ImagingStudy search: each parameter and prefix', async () => {
      const all = sorted(studies.map((s) => s.studyInstanceUid));
      const expect = (pred: (s: StudyRecord) => boolean) => sorted(studies.filter(pred).map((s) => s.studyInstanceUid));
      assert.deepEqual(await search(`${B}/ImagingStudy?patient=Patient/PFHIR1--HOSP`), sorted([uid(1), uid(2), uid(3)]));
      assert.deepEqual(await search(`${B}/ImagingStudy?subject=PFHIR2--HOSP`), sorted([uid(4), uid(5), uid(6)]), 'the merged patient\'s study is the survivor\'s');
      assert.deepEqual(await search(`${B}/ImagingStudy?patient=http://localhost:80/fhir/R4/Patient/PFHIR4,Patient/PFHIR1--HOSP`), sorted([uid(1), uid(2), uid(3), uid(7)]));
      assert.deepEqual(await search(`${B}/ImagingStudy?patient=Patient/PFHIR3--HOSP`), []);
      // Every patient's studies are those whose subject it is.
      const byPatient = new Map<string, string[]>();
      for (const s of everything.filter((r) => r.resourceType === 'ImagingStudy' && r.subject.reference)) byPatient.set(s.subject.reference, [...(byPatient.get(s.subject.reference) ?? []), s.id]);
      for (const [ref, expected] of byPatient) assert.deepEqual(await search(`${B}/ImagingStudy?patient=${encodeURIComponent(ref)}&_count=100`), sorted(expected), ref);

      assert.deepEqual(await search(`${B}/ImagingStudy?identifier=urn:dicom:uid|urn:oid:${uid(2)}`), [uid(2)]);
      assert.deepEqual(await search(`${B}/ImagingStudy?identifier=urn:oid:${uid(2)}`), [uid(2)]);
      assert.deepEqual(await search(`${B}/ImagingStudy?identifier=FACC1`), [uid(1)]);
      assert.deepEqual(await search(`${B}/ImagingStudy?identifier=|FACC4,|FACC5`), sorted([uid(4), uid(5)]));
      assert.deepEqual(await search(`${B}/ImagingStudy?identifier:of-type=${encodeURIComponent('http://terminology.hl7.org/CodeSystem/v2-0203|ACSN|FACC6')}`), [uid(6)]);
      assert.deepEqual(await search(`${B}/ImagingStudy?identifier=http://other|FACC1`), []);
      assert.deepEqual(await search(`${B}/ImagingStudy?_id=${uid(7)}`), [uid(7)]);

      const values = ['2024', '2024-03', '2024-03-01', '2024-02-29', '2024-03-01T08:30', '2024-03-01T08:30:00', '2024-03-01T17:05:00Z', '2024-02-29T23:59:59+00:00', '2024-03-02', '2023-12-31T12:00:00'];
      for (const value of values) {
        for (const prefix of PREFIXES) {
          const range = valueRange(value);
          const expected = expect((s) => { const r = storedRange(s.studyDate, s.studyTime); return r !== null && dateMatches(prefix, r, range); });
          assert.deepEqual(await search(`${B}/ImagingStudy?started=${prefix}${encodeURIComponent(value)}&_count=100`), expected, `started=${prefix}${value}`);
        }
      }
      assert.deepEqual(await search(`${B}/ImagingStudy?started=${encodeURIComponent('2024-03-01')}`), sorted([uid(1), uid(2)]), 'no prefix is eq');
      assert.deepEqual(await search(`${B}/ImagingStudy?started=ge2024-03-01&started=lt2024-03-02`), sorted([uid(1), uid(2)]), 'AND of two');
      assert.deepEqual(await search(`${B}/ImagingStudy?started=eq2024-03-02,eq2025`), sorted([uid(3), uid(7)]), 'OR of values');

      assert.deepEqual(await search(`${B}/ImagingStudy?modality=CT&_count=100`), expect((s) => s.modalitiesInStudy.includes('CT')));
      assert.deepEqual(await search(`${B}/ImagingStudy?modality=${encodeURIComponent('http://dicom.nema.org/resources/ontology/DCM|MR')},US&_count=100`),
        expect((s) => s.modalitiesInStudy.includes('MR') || s.modalitiesInStudy.includes('US')));
      assert.deepEqual(await search(`${B}/ImagingStudy?modality=http://other|CT`), []);
      assert.deepEqual(await search(`${B}/ImagingStudy?status=available&_count=100`), all);
      assert.deepEqual(await search(`${B}/ImagingStudy?status=cancelled`), []);
      assert.deepEqual(await search(`${B}/ImagingStudy?basedon=ServiceRequest/${orderOf('FACC1').pk}`), [uid(1)]);
      assert.deepEqual(await search(`${B}/ImagingStudy?basedon=${orderOf('FACC2').pk},ServiceRequest/${orderOf('FACC4').pk}`), sorted([uid(2), uid(4)]));
      assert.deepEqual(await search(`${B}/ImagingStudy?basedon=ServiceRequest/${orderOf('FNOIMAGES').pk}`), []);

      // _sort on the date, both ways; studies without a date last.
      const key = (s: StudyRecord) => storedRange(s.studyDate, s.studyTime)?.[0] ?? null;
      for (const [param, descending] of [['started', false], ['-started', true]] as const) {
        const got = ids((await walk(`${B}/ImagingStudy?_sort=${param}&_count=7`)).resources).map((id) => key(studies.find((s) => s.studyInstanceUid === id)!));
        const dated = got.filter((k) => k !== null) as number[];
        assert.deepEqual(dated, [...dated].sort((a, b) => descending ? b - a : a - b), `_sort=${param}`);
        const missing = ids((await walk(`${B}/ImagingStudy?_sort=${param}&_count=7`)).resources).map((id) => studies.find((s) => s.studyInstanceUid === id)!.studyDate === null);
        assert.ok(missing.indexOf(true) === -1 || missing.slice(missing.indexOf(true)).every(Boolean), 'studies without a Study Date last');
      }
      const count = await get(`${B}/ImagingStudy?modality=CT&_summary=count`);
      assert.equal(count.body.total, expect((s) => s.modalitiesInStudy.includes('CT')).length);
      assert.equal(count.body.entry, undefined);

      const included = await walk(`${B}/ImagingStudy?patient=Patient/PFHIR1--HOSP,Patient/PFHIR4&_include=ImagingStudy:subject`);
      assert.deepEqual(sorted(ids(included.included)), ['PFHIR1--HOSP', 'PFHIR4']);
      assert.ok(included.included.every((p) => p.resourceType === 'Patient'));
    });

    await t.test('Patient: identifiers, merge history and search', async () => {
      const one = (await get(`${B}/Patient/PFHIR1--HOSP`)).body;
      assert.deepEqual(one.identifier[0], { use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
        system: 'urn:atrium:issuer:HOSP', value: 'PFHIR1', assigner: { display: 'HOSP' } });
      assert.deepEqual([one.name[0].family, one.name[0].given, one.birthDate, one.gender, one.active], ['FHIR', ['PATIENT', 'ONE'], '1970-01-01', 'female', true]);
      const merged = (await get(`${B}/Patient/PFHIR3--HOSP`)).body;
      assert.equal(merged.active, false);
      assert.deepEqual(merged.link, [{ other: { reference: 'Patient/PFHIR2--HOSP' }, type: 'replaced-by' }]);
      assert.deepEqual((await get(`${B}/Patient/PFHIR2--HOSP`)).body.link, [{ other: { reference: 'Patient/PFHIR3--HOSP' }, type: 'replaces' }]);
      const alias = (await get(`${B}/Patient/PFHIR1`)).body;
      assert.deepEqual(alias.link, [{ other: { reference: 'Patient/PFHIR1--HOSP' }, type: 'replaced-by' }], 'the images\' issuer-less identity points to the RIS patient');
      const indexOnly = (await get(`${B}/Patient/PFHIR4`)).body;
      assert.equal(indexOnly.active, true);
      assert.equal(indexOnly.identifier[0].system, undefined);

      const patients = (await walk(`${B}/Patient?_count=100`)).resources;
      assert.ok(!patients.some((p) => p.id === 'PFHIR1'), 'an alias is not listed');
      assert.deepEqual(await search(`${B}/Patient?identifier=PFHIR1`), ['PFHIR1--HOSP']);
      assert.deepEqual(await search(`${B}/Patient?identifier=urn:atrium:issuer:HOSP|PFHIR2`), ['PFHIR2--HOSP']);
      assert.deepEqual(await search(`${B}/Patient?identifier=|PFHIR2`), []);
      assert.deepEqual(await search(`${B}/Patient?identifier=|PFHIR4`), ['PFHIR4']);
      assert.deepEqual(await search(`${B}/Patient?identifier=urn:atrium:issuer:HOSP|`), ['PFHIR1--HOSP', 'PFHIR2--HOSP', 'PFHIR3--HOSP']);
      assert.deepEqual(await search(`${B}/Patient?_id=PFHIR3--HOSP`), ['PFHIR3--HOSP']);
      const named = (needle: string, contains = false) => sorted(patients.filter((p) => (p.name ?? []).some((n: Json) =>
        [n.family, ...(n.given ?? [])].filter(Boolean).some((part: string) => contains ? part.toUpperCase().includes(needle.toUpperCase()) : part.toUpperCase().startsWith(needle.toUpperCase())))).map((p) => p.id));
      for (const needle of ['fhir', 'thr', 'Pat', 'x']) assert.deepEqual(await search(`${B}/Patient?name=${needle}&_count=100`), named(needle), `name=${needle}`);
      assert.deepEqual(await search(`${B}/Patient?name:contains=HRE&_count=100`), named('HRE', true));
      for (const value of ['1970', '1970-01-01', '1985-12', '1990-06-15T00:00']) {
        for (const prefix of PREFIXES) {
          const range = valueRange(value);
          const expected = sorted(patients.filter((p) => {
            if (!p.birthDate) return false;
            const r = storedRange(p.birthDate.replace(/-/g, ''), null)!;
            return dateMatches(prefix, r, range);
          }).map((p) => p.id));
          assert.deepEqual(await search(`${B}/Patient?birthdate=${prefix}${encodeURIComponent(value)}&_count=100`), expected, `birthdate=${prefix}${value}`);
        }
      }
      const bySort = ids((await walk(`${B}/Patient?_sort=-birthdate&_count=100`)).resources).map((id) => patients.find((p) => p.id === id)!.birthDate).filter(Boolean);
      assert.deepEqual(bySort, [...bySort].sort().reverse());
    });

    await t.test('ServiceRequest: from the orders, and search', async () => {
      const facc1 = (await get(`${B}/ServiceRequest/${orderOf('FACC1').pk}`)).body;
      assert.deepEqual([facc1.status, facc1.intent, facc1.priority, facc1.subject.reference, facc1.code.coding[0].code], ['completed', 'order', 'stat', 'Patient/PFHIR1--HOSP', 'CTHEAD']);
      assert.deepEqual(facc1.identifier.map((i: Json) => [i.type.coding[0].code, i.value]), [['ACSN', 'FACC1'], ['PLAC', 'PL-FACC1'], ['FILL', 'FL-FACC1']]);
      assert.match(facc1.occurrenceDateTime, /^2024-03-01T08:30:00/);
      const requests = everything.filter((r) => r.resourceType === 'ServiceRequest');
      const status = { ordered: 'active', scheduled: 'active', arrived: 'active', 'in-progress': 'active', completed: 'completed', 'preliminary-report': 'completed',
        'final-report': 'completed', amended: 'completed', cancelled: 'revoked', discontinued: 'revoked' } as const;
      for (const o of orders) assert.equal(requests.find((r) => r.id === String(o.pk))!.status, status[o.status], o.accessionNumber);
      const pks = (accessions: string[]) => sorted(accessions.map((a) => String(orderOf(a).pk)));
      assert.deepEqual(await search(`${B}/ServiceRequest?patient=Patient/PFHIR1--HOSP`), pks(['FACC1', 'FACC2']));
      assert.deepEqual(await search(`${B}/ServiceRequest?subject=PFHIR2--HOSP`), pks(['FACC4', 'FNOIMAGES']));
      assert.deepEqual(await search(`${B}/ServiceRequest?identifier=FACC4`), pks(['FACC4']));
      assert.deepEqual(await search(`${B}/ServiceRequest?identifier=PL-FACC2,|FL-FNOIMAGES`), pks(['FACC2', 'FNOIMAGES']));
      assert.deepEqual(await search(`${B}/ServiceRequest?identifier:of-type=${encodeURIComponent('http://terminology.hl7.org/CodeSystem/v2-0203|PLAC|PL-FACC1')}`), pks(['FACC1']));
      assert.deepEqual(await search(`${B}/ServiceRequest?identifier:of-type=${encodeURIComponent('http://terminology.hl7.org/CodeSystem/v2-0203|ACSN|PL-FACC1')}`), []);
      for (const code of ['active', 'completed', 'revoked']) {
        assert.deepEqual(await search(`${B}/ServiceRequest?status=${code}`), sorted(orders.filter((o) => status[o.status] === code).map((o) => String(o.pk))), `status=${code}`);
      }
      const times = [...new Set(orders.map((o) => o.createdAt))].sort();
      const values = [times[1]!, times[0]!.slice(0, 10), times[0]!.slice(0, 19) + 'Z', '2024'];
      for (const value of values) {
        for (const prefix of PREFIXES) {
          const range = valueRange(value);
          const expected = sorted(orders.filter((o) => { const ms = Date.parse(o.createdAt); return dateMatches(prefix, [ms, ms], range); }).map((o) => String(o.pk)));
          assert.deepEqual(await search(`${B}/ServiceRequest?authored=${prefix}${encodeURIComponent(value)}`), expected, `authored=${prefix}${value}`);
        }
      }
      const asc = ids((await walk(`${B}/ServiceRequest?_sort=authored`)).resources);
      assert.deepEqual(asc, [...orders].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.pk - b.pk).map((o) => String(o.pk)));
      const withPatients = await walk(`${B}/ServiceRequest?_include=ServiceRequest:patient`);
      assert.deepEqual(sorted(ids(withPatients.included)), ['PFHIR1--HOSP', 'PFHIR2--HOSP']);
    });

    await t.test('DiagnosticReport: from the reports, versions, and search', async () => {
      const facc1 = (await get(`${B}/DiagnosticReport/${orderOf('FACC1').pk}`)).body;
      assert.deepEqual([facc1.status, facc1.meta.versionId, facc1.conclusion], ['amended', '2', 'No acute findings. Addendum: small cyst.']);
      assert.equal(Buffer.from(facc1.presentedForm[0].data, 'base64').toString('utf8'), facc1.conclusion);
      assert.deepEqual(facc1.imagingStudy, [{ reference: `ImagingStudy/${uid(1)}` }]);
      assert.deepEqual(facc1.basedOn, [{ reference: `ServiceRequest/${orderOf('FACC1').pk}` }]);
      assert.deepEqual(facc1.resultsInterpreter, [{ display: 'ROSA READER' }]);
      const first = (await get(`${B}/DiagnosticReport/${orderOf('FACC1').pk}/_history/1`)).body;
      assert.deepEqual([first.status, first.meta.versionId, first.conclusion], ['final', '1', 'No acute findings.']);
      assert.equal((await get(`${B}/DiagnosticReport/${orderOf('FACC1').pk}/_history/9`)).status, 404);
      const pks = (accessions: string[]) => sorted(accessions.map((a) => String(orderOf(a).pk)));
      assert.deepEqual(await search(`${B}/DiagnosticReport?patient=Patient/PFHIR1--HOSP`), pks(['FACC1', 'FACC2']));
      assert.deepEqual(await search(`${B}/DiagnosticReport?subject=PFHIR2--HOSP`), pks(['FACC4']));
      assert.deepEqual(await search(`${B}/DiagnosticReport?based-on=ServiceRequest/${orderOf('FACC2').pk}`), pks(['FACC2']));
      assert.deepEqual(await search(`${B}/DiagnosticReport?based-on=ServiceRequest/${orderOf('FNOIMAGES').pk}`), []);
      assert.deepEqual(await search(`${B}/DiagnosticReport?status=final`), pks(['FACC4']));
      assert.deepEqual(await search(`${B}/DiagnosticReport?status=amended`), pks(['FACC1']));
      assert.deepEqual(await search(`${B}/DiagnosticReport?status=preliminary,final`), pks(['FACC2', 'FACC4']));
      const observed: Record<string, [string, string | null]> = { FACC1: ['20240301', '113000'], FACC2: ['20240302', null], FACC4: ['20240301', '090000'] };
      for (const value of ['2024-03-01', '2024-03-01T11:30', '2024-03-02', '2024-03-01T09:00:00', '2024']) {
        for (const prefix of PREFIXES) {
          const range = valueRange(value);
          const expected = pks(Object.entries(observed).filter(([, [d, tm]]) => dateMatches(prefix, storedRange(d, tm)!, range)).map(([a]) => a));
          assert.deepEqual(await search(`${B}/DiagnosticReport?date=${prefix}${encodeURIComponent(value)}`), expected, `date=${prefix}${value}`);
        }
      }
      const byDate = ids((await walk(`${B}/DiagnosticReport?_sort=date`)).resources);
      assert.deepEqual(byDate, pks(['FACC4', 'FACC1', 'FACC2']).length ? ['FACC4', 'FACC1', 'FACC2'].map((a) => String(orderOf(a).pk)) : []);
    });

    await t.test('search syntax: lenient and strict handling, unsupported modifiers, prefixes, values', async () => {
      const lenient = await get(`${B}/ImagingStudy?foo=1&patient=Patient/PFHIR4`);
      assert.equal(lenient.status, 200);
      assert.deepEqual(ids(lenient.body.entry.map((e: Json) => e.resource)), [uid(7)]);
      assert.ok(!lenient.body.link[0].url.includes('foo'), 'the self link leaves out what was ignored');
      const outcomeOf = async (url: string, status: number, pattern: RegExp, headers?: Record<string, string>) => {
        const r = await get(url, headers);
        assert.equal(r.status, status, `${url}: ${JSON.stringify(r.body)}`);
        assert.match(r.type, /^application\/fhir\+json/);
        assert.equal(r.body.resourceType, 'OperationOutcome');
        assert.match(r.body.issue[0].diagnostics, pattern);
        assert.deepEqual(r4Problems(r.body), []);
      };
      await outcomeOf(`${B}/ImagingStudy?foo=1`, 400, /unknown search parameter "foo"/, { prefer: 'handling=strict' });
      await outcomeOf(`${B}/Patient?name:exact=X`, 400, /modifier :exact is not supported/);
      await outcomeOf(`${B}/ImagingStudy?started=ap2024`, 400, /prefix "ap" is not supported/);
      await outcomeOf(`${B}/ImagingStudy?started=2024-13-01`, 400, /Invalid format|not a/);
      await outcomeOf(`${B}/ImagingStudy?_sort=modality`, 400, /_sort=modality is not supported/);
      await outcomeOf(`${B}/ImagingStudy?_include=ImagingStudy:basedon`, 400, /_include=ImagingStudy:basedon is not supported/);
      await outcomeOf(`${B}/ImagingStudy?_count=many`, 400, /_count must be a whole number/);
      await outcomeOf(`${B}/ImagingStudy?_format=xml`, 406, /only JSON/);
      await outcomeOf(`${B}/ImagingStudy?patient=Patient/a_b`, 400, /not a Patient reference/);
      await outcomeOf(`${B}/Observation`, 404, /not served here/);
      await outcomeOf(`${B}/ImagingStudy/1.2.3.999`, 404, /not known here/);
      await outcomeOf(`${B}/ServiceRequest/abc`, 404, /not known here/);
    });

    await t.test('writes through the RIS: ServiceRequest and DiagnosticReport, bad input changes nothing', async () => {
      const counts = async () => [(await ris.orders.list({}, { limit: 1, offset: 0 })).total, (await ris.reports.list({}, { limit: 1, offset: 0 })).total];
      const before = await counts();
      const post = (type: string, body: unknown, raw?: string, headers?: Record<string, string>) => call('POST', `${B}/${type}`, raw !== undefined ? { raw, headers } : { body, headers });
      const order = {
        resourceType: 'ServiceRequest', status: 'active', intent: 'order', priority: 'urgent', subject: { reference: 'Patient/PFHIR4' },
        identifier: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'ACSN' }] }, value: 'FACC7' }],
        code: { coding: [{ system: 'http://loinc.org', code: '24627-2', display: 'CT Chest' }], text: 'CT chest' },
        occurrenceDateTime: '2025-01-10T10:00:00', requester: { display: 'Oscar Orderer' }, reasonCode: [{ text: 'cough' }],
      };
      const bad: [string, number, RegExp, () => Promise<{ status: number; body: Json }>][] = [
        ['malformed JSON', 400, /not valid JSON/, () => post('ServiceRequest', undefined, '{"resourceType": "ServiceRequest",')],
        ['empty body', 400, /empty/, () => post('ServiceRequest', undefined, '')],
        ['not JSON at all', 415, /application\/fhir\+json/, () => post('ServiceRequest', undefined, 'hello', { 'content-type': 'text/plain' })],
        ['wrong resource type', 400, /a Patient, not a ServiceRequest/, () => post('ServiceRequest', { ...order, resourceType: 'Patient' })],
        ['no resource type', 400, /no FHIR resource/, () => post('ServiceRequest', { status: 'active' })],
        ['unknown subject', 422, /Patient\/NOPE is not known here/, () => post('ServiceRequest', { ...order, subject: { reference: 'Patient/NOPE' } })],
        ['subject of another type', 422, /not a Patient of this server/, () => post('ServiceRequest', { ...order, subject: { reference: 'Group/1' } })],
        ['unknown priority code', 400, /priority "whenever" is not a request-priority code/, () => post('ServiceRequest', { ...order, priority: 'whenever' })],
        ['unknown status', 400, /status must be "active"/, () => post('ServiceRequest', { ...order, status: 'on-hold' })],
        ['an element Atrium does not keep', 400, /ServiceRequest\.note is not kept/, () => post('ServiceRequest', { ...order, note: [{ text: 'x' }] })],
        ['no accession', 400, /accession number .* is required/, () => post('ServiceRequest', { ...order, identifier: [] })],
        ['a bad date', 400, /not a FHIR date/, () => post('ServiceRequest', { ...order, occurrenceDateTime: 'tomorrow' })],
        ['accession in use', 409, /another order's/, () => post('ServiceRequest', { ...order, identifier: [{ ...order.identifier[0], value: 'FACC1' }] })],
        ['report of no order', 422, /ServiceRequest\/999999 is not known here/, () => post('DiagnosticReport', { resourceType: 'DiagnosticReport', status: 'final', basedOn: [{ reference: 'ServiceRequest/999999' }], code: { text: 'x' }, conclusion: 'x' })],
        ['report status unknown', 400, /status "registered"/, () => post('DiagnosticReport', { resourceType: 'DiagnosticReport', status: 'registered', basedOn: [{ reference: `ServiceRequest/${orderOf('FACC2').pk}` }], code: { text: 'x' }, conclusion: 'x' })],
        ['report without text', 400, /report text is required/, () => post('DiagnosticReport', { resourceType: 'DiagnosticReport', status: 'final', basedOn: [{ reference: `ServiceRequest/${orderOf('FACC2').pk}` }], code: { text: 'x' } })],
        ['report of another patient', 422, /not the patient/, () => post('DiagnosticReport', { resourceType: 'DiagnosticReport', status: 'final', basedOn: [{ reference: `ServiceRequest/${orderOf('FACC2').pk}` }], subject: { reference: 'Patient/PFHIR2--HOSP' }, code: { text: 'x' }, conclusion: 'x' })],
      ];
      for (const [what, status, pattern, send] of bad) {
        const r = await send();
        assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.resourceType, 'OperationOutcome', what);
        assert.match(r.body.issue[0].diagnostics, pattern, what);
        assert.deepEqual(r4Problems(r.body), [], what);
      }
      assert.deepEqual(await counts(), before, 'nothing changed');

      const created = await post('ServiceRequest', order);
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.headers.location, `http://localhost:80${B}/ServiceRequest/${created.body.id}`);
      assert.deepEqual(r4Problems(created.body), []);
      const placed = (await ris.orders.find({ accessionNumber: 'FACC7' }))!;
      assert.equal(String(placed.pk), created.body.id);
      assert.deepEqual([placed.priority, placed.requestedProcedureCode?.code, placed.requestedProcedureCode?.scheme, placed.reason, placed.orderingPhysician, placed.steps[0]?.startDate, placed.steps[0]?.startTime],
        ['URGENT', '24627-2', 'LN', 'cough', 'Oscar Orderer', '20250110', '100000']);
      assert.equal((await ris.patients.get({ patientId: 'PFHIR4', issuerOfPatientId: '' }))?.patientName, 'FHIR^PATIENT4', 'the index-only patient came into the RIS');
      assert.equal(placed.status, 'arrived', 'the study archived before its order was linked to it (post-verification)');
      assert.deepEqual((await get(`${B}/ImagingStudy/${uid(7)}`)).body.basedOn, [{ reference: `ServiceRequest/${placed.pk}` }]);

      const report = { resourceType: 'DiagnosticReport', status: 'final', basedOn: [{ reference: `ServiceRequest/${placed.pk}` }], subject: { reference: 'Patient/PFHIR4' },
        code: { text: 'CT chest' }, effectiveDateTime: '2025-01-10T12:00:00', resultsInterpreter: [{ display: 'READER^ROSA' }],
        presentedForm: [{ contentType: 'text/plain', data: Buffer.from('Clear lungs.').toString('base64') }] };
      const reported = await post('DiagnosticReport', report);
      assert.equal(reported.status, 201, JSON.stringify(reported.body));
      assert.equal(reported.headers.location, `http://localhost:80${B}/DiagnosticReport/${placed.pk}/_history/1`);
      assert.deepEqual([reported.body.status, reported.body.conclusion, reported.body.imagingStudy], ['final', 'Clear lungs.', [{ reference: `ImagingStudy/${uid(7)}` }]]);
      assert.equal((await ris.orders.find({ pk: placed.pk }))!.status, 'final-report', 'a report like one from ORU');
      assert.equal((await ris.core.store.currentReport(placed.pk))?.observedAt, '20250110120000');
      const again = await call('PUT', `${B}/DiagnosticReport/${placed.pk}`, { body: { ...report, id: String(placed.pk) } });
      assert.equal(again.body.meta.versionId, '1', 'the same report again is no new version');
      const amended = await call('PUT', `${B}/DiagnosticReport/${placed.pk}`, { body: { ...report, id: String(placed.pk), status: 'amended', presentedForm: undefined, conclusion: 'Clear lungs. Correction: a nodule.' } });
      assert.equal(amended.status, 200, JSON.stringify(amended.body));
      assert.deepEqual([amended.body.status, amended.body.meta.versionId], ['amended', '2']);
      assert.equal((await ris.orders.find({ pk: placed.pk }))!.status, 'amended');
      const mismatch = await call('PUT', `${B}/DiagnosticReport/${placed.pk}`, { body: { ...report, id: '1' } });
      assert.equal(mismatch.status, 400);

      // Update: the order's fields, then its status.
      const sr = (await get(`${B}/ServiceRequest/${placed.pk}`)).body;
      const updated = await call('PUT', `${B}/ServiceRequest/${placed.pk}`, { body: { ...sr, priority: 'stat', reasonCode: [{ text: 'fever' }] } });
      assert.equal(updated.status, 200, JSON.stringify(updated.body));
      assert.deepEqual([updated.body.priority, updated.body.reasonCode], ['stat', [{ text: 'fever' }]]);
      const revokeReported = await call('PUT', `${B}/ServiceRequest/${placed.pk}`, { body: { ...sr, status: 'revoked' } });
      assert.equal(revokeReported.status, 409, 'a reported order can no longer be revoked');
      const accessionChange = await call('PUT', `${B}/ServiceRequest/${placed.pk}`, { body: { ...sr, identifier: [{ ...order.identifier[0], value: 'OTHER' }] } });
      assert.equal(accessionChange.status, 400);
      const second = await post('ServiceRequest', { ...order, identifier: [{ ...order.identifier[0], value: 'FNEW2' }] });
      assert.equal(second.status, 201);
      const revoked = await call('PUT', `${B}/ServiceRequest/${second.body.id}`, { body: { ...second.body, status: 'revoked' } });
      assert.equal(revoked.body.status, 'revoked');
      assert.equal((await ris.orders.find({ accessionNumber: 'FNEW2' }))!.status, 'cancelled');
      assert.equal((await call('PUT', `${B}/ServiceRequest/999999`, { body: { ...sr, id: '999999' } })).status, 404);
      const timeline = (await ris.orders.detail(placed.pk))!.timeline;
      assert.ok(timeline.some((e) => e.source.kind === 'user' && e.source.ref === 'test administrator'), 'the change is on the timeline as the caller\'s');
    });

    await t.test('roles: a referring clinician sees their own studies and patients only; refusals are OperationOutcome; reads are audited', async () => {
      await archive.security.createUser({ username: 'rita', password: 'rita-password-1', roles: ['referring-clinician'], dicomPersonName: 'REFERRER^RITA' });
      const login = await app!.inject({ method: 'POST', url: '/api/login', payload: { username: 'rita', password: 'rita-password-1' } });
      assert.equal(login.statusCode, 200);
      const rita = { cookie: String(login.headers['set-cookie']).split(';', 1)[0]! };
      const as = (url: string) => call('GET', url, { as: rita });
      const own = sorted(studies.filter((s) => matchesPersonNames(s.referringPhysicianName, ['REFERRER^RITA'])).map((s) => s.studyInstanceUid));
      assert.deepEqual(own, sorted([uid(1), uid(3), uid(6)]));
      const seen = await as(`${B}/ImagingStudy?_count=100&_include=ImagingStudy:subject`);
      assert.equal(seen.status, 200);
      assert.deepEqual(sorted(seen.body.entry.filter((e: Json) => e.search.mode === 'match').map((e: Json) => e.resource.id)), own);
      assert.equal(seen.body.total, own.length);
      assert.deepEqual(sorted(seen.body.entry.filter((e: Json) => e.search.mode === 'include').map((e: Json) => e.resource.id)), ['PFHIR1--HOSP', 'PFHIR2--HOSP']);
      assert.deepEqual(sorted((await as(`${B}/ImagingStudy?patient=Patient/PFHIR1--HOSP`)).body.entry.map((e: Json) => e.resource.id)), sorted([uid(1), uid(3)]));
      assert.equal((await as(`${B}/ImagingStudy/${uid(1)}`)).status, 200);
      const other = await as(`${B}/ImagingStudy/${uid(2)}`);
      assert.equal(other.status, 403);
      assert.equal(other.body.resourceType, 'OperationOutcome');
      assert.equal(other.body.issue[0].code, 'forbidden');
      assert.deepEqual(sorted((await as(`${B}/Patient?_count=100`)).body.entry.map((e: Json) => e.resource.id)), ['PFHIR1--HOSP', 'PFHIR2--HOSP']);
      assert.equal((await as(`${B}/Patient/PFHIR1--HOSP`)).status, 200);
      assert.equal((await as(`${B}/Patient/PFHIR4`)).status, 404, 'not theirs: as if not there');
      assert.equal((await as(`${B}/ServiceRequest`)).status, 403);
      assert.equal((await as(`${B}/DiagnosticReport/${orderOf('FACC1').pk}`)).status, 403);

      const researcher = (await archive.security.createApiKey({ name: 'fhir researcher', roles: ['researcher'] })).key;
      const denied = await call('GET', `${B}/ImagingStudy`, { as: { authorization: `Bearer ${researcher}` } });
      assert.deepEqual([denied.status, denied.body.resourceType, denied.body.issue[0].code], [403, 'OperationOutcome', 'forbidden']);
      const radiologist = (await archive.security.createApiKey({ name: 'fhir radiologist', roles: ['radiologist'] })).key;
      assert.equal((await call('GET', `${B}/DiagnosticReport`, { as: { authorization: `Bearer ${radiologist}` } })).status, 200);
      assert.equal((await call('POST', `${B}/DiagnosticReport`, { as: { authorization: `Bearer ${radiologist}` }, body: {} })).status, 403);
      const anonymous = await call('GET', `${B}/ImagingStudy`, { as: {} });
      assert.deepEqual([anonymous.status, anonymous.body.issue[0].code], [401, 'login']);
      assert.match(String(anonymous.headers['www-authenticate']), /^Bearer/);

      await call('GET', `${B}/ImagingStudy/${uid(4)}`);
      await call('GET', `${B}/ImagingStudy?patient=Patient/PFHIR4`);
      await call('GET', `${B}/DiagnosticReport/${orderOf('FACC4').pk}`);
      await archive.audit.drain();
      const trail = (await archive.audit.search({ interface: 'fhir' }, { limit: 500, offset: 0 })).items;
      assert.ok(trail.some((r) => r.action === 'read' && r.studies.some((s) => s.studyInstanceUid === uid(4) && s.patientId === 'PFHIR2') && r.outcome === 'success'), 'ImagingStudy read: like image access');
      assert.ok(trail.some((r) => r.action === 'query' && r.query?.includes('patient=Patient/PFHIR4') && r.patientIds.includes('PFHIR4')), 'searches name the patients found');
      assert.ok(trail.some((r) => r.action === 'query' && r.query?.includes(`DiagnosticReport/${orderOf('FACC4').pk}`) && r.patientIds.includes('PFHIR2')));
      assert.ok(trail.some((r) => r.action === 'read' && r.outcome === 'minor-failure' && r.principal.id === 'rita'), 'the refused read is recorded');
      assert.ok(trail.some((r) => r.action === 'order-record' && r.detail?.includes('FACC7')), 'writes are recorded by the RIS');
    });
  });
}
