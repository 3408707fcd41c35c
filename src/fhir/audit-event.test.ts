// FHIR AuditEvent over the audit trail, on SQLite and PostgreSQL: records made by real actions (a sign-in,
// a QIDO-RS search, a WADO-RS retrieve, a refused request) are found by each search parameter and date
// prefix as expectations computed here from the trail say; paging walks every record once while the trail
// grows; every resource validates against the R4 StructureDefinitions; reading is itself audited; a role
// without audit rights gets an OperationOutcome 403; bad input is a 400 OperationOutcome.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createTestArchive, type TestArchive } from '../../test/support/archive.ts';
import { CORPUS, r4Problems } from '../../test/support/fhir.ts';
import { validateFhirAuditEvent } from '../../test/support/fhir-audit-event.ts';
import { createHttpServer } from '../http/server.ts';
import type { AuditRecord } from '../ports/audit-store.ts';

type Json = Record<string, any>;
const B = '/fhir/R4';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const sorted = (values: Iterable<string>) => [...values].sort();

/** R4 date prefixes over [start, end] ranges (search.html "date"), written independently of src/fhir/dates.ts. */
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

/** The action code of each trail action (PS3.15 EventActionCode), from the DICOM audit definitions. */
const ACTION_CODE: Record<string, string> = {
  read: 'R', store: 'C', import: 'C', export: 'R', 'media-export': 'R', delete: 'D', update: 'U', query: 'E', login: 'E', logout: 'E',
  'login-failed': 'E', 'audit-log-used': 'R', 'order-record': 'U', 'security-change': 'E', 'network-config': 'E', 'job-control': 'E',
};

for (const engine of ['sqlite+fs', 'postgres+fs'] as const) {
  test(`FHIR AuditEvent on ${engine}`, { timeout: 300_000 }, async (t) => {
    const ta: TestArchive = await createTestArchive(engine);
    let app: FastifyInstance | undefined;
    after(async () => { await app?.close(); await ta.cleanup(); });
    const archive = ta.archive;
    app = await createHttpServer(archive);
    await app.ready();

    const inject = async (method: 'GET' | 'POST', url: string, headers: Record<string, string>, payload?: string | Buffer) => {
      const r = await app!.inject({ method, url, headers, ...(payload !== undefined ? { payload } : {}) });
      const type = String(r.headers['content-type'] ?? '');
      return { status: r.statusCode, type, headers: r.headers, body: (type.includes('json') ? r.json() : r.body) as Json };
    };
    const get = (url: string, headers: Record<string, string> = ta.authHeaders()) => inject('GET', url, headers);

    // ---- real actions: an upload, a sign-in, a QIDO-RS search and a WADO-RS retrieve by the signed-in user, a refusal ----
    const file = await readFile(path.join(CORPUS, 'CT_small.dcm'));
    const stored = await archive.ingest.ingest([file], { source: 'test', originalName: 'CT_small.dcm', notDicom: 'skip' });
    assert.equal(stored.status, 'stored');
    const studyUid = stored.studyInstanceUid;
    const study = (await archive.index.getStudy(studyUid))!;
    const patientId = study.patient.patientId!;
    const created = await inject('POST', '/api/users', { ...ta.authHeaders(), 'content-type': 'application/json' },
      JSON.stringify({ username: 'rita', password: 'rita-password-1', roles: ['radiologist'] }));
    assert.ok(created.status < 300, JSON.stringify(created.body));
    const wrong = await inject('POST', '/api/login', { 'content-type': 'application/json' }, JSON.stringify({ username: 'rita', password: 'not-her-password' }));
    assert.equal(wrong.status, 401);
    const login = await inject('POST', '/api/login', { 'content-type': 'application/json' }, JSON.stringify({ username: 'rita', password: 'rita-password-1' }));
    assert.equal(login.status, 200);
    const rita = { cookie: String(login.headers['set-cookie']).split(';', 1)[0]! };
    const qido = await get(`/dicom-web/studies?PatientID=${encodeURIComponent(patientId)}`, { ...rita, accept: 'application/dicom+json' });
    assert.equal(qido.status, 200);
    const wado = await app.inject({ method: 'GET', url: `/dicom-web/studies/${studyUid}/metadata`, headers: { ...rita, accept: 'application/dicom+json' } });
    assert.equal(wado.statusCode, 200);

    await t.test('a role without audit rights gets an OperationOutcome 403', async () => {
      for (const url of [`${B}/AuditEvent`, `${B}/AuditEvent/00000000-0000-4000-8000-000000000000`]) {
        const r = await get(url, rita);
        assert.equal(r.status, 403);
        assert.match(r.type, /^application\/fhir\+json/);
        assert.equal(r.body.resourceType, 'OperationOutcome');
        assert.equal(r.body.issue[0].code, 'forbidden');
      }
      const anonymous = await get(`${B}/AuditEvent`, {});
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.body.resourceType, 'OperationOutcome');
    });

    // The WADO read is recorded as its response ends: wait for it (drain, then look again).
    for (let i = 0; i < 200; i++) {
      await archive.audit.drain();
      if ((await archive.audit.search({ user: 'rita', action: 'read' }, { limit: 1, offset: 0 })).total > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
    const frozenAt = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 2));
    /** The trail up to `frozenAt`, as the store has it: what every expectation is computed from. */
    const trail: AuditRecord[] = (await archive.audit.search({ to: new Date(Date.parse(frozenAt) + 1).toISOString() }, { limit: 10_000, offset: 0 })).items;
    const frozen = `date=le${encodeURIComponent(frozenAt)}`;
    const mine = (pred: (r: AuditRecord) => boolean) => sorted(trail.filter(pred).map((r) => r.id));

    const everything: Json[] = [];
    /** Every id of a search, following the next links; the total stays the same and each page is a searchset. */
    const walk = async (url: string): Promise<{ total: number; resources: Json[]; pages: number; self: string }> => {
      const resources: Json[] = [];
      let next: string | undefined = url;
      let total = -1;
      let pages = 0;
      let self = '';
      while (next) {
        const page = await get(next);
        assert.equal(page.status, 200, `${next}: ${JSON.stringify(page.body)}`);
        assert.equal(page.body.type, 'searchset');
        if (total === -1) { total = page.body.total; self = page.body.link.find((l: Json) => l.relation === 'self').url; }
        else assert.equal(page.body.total, total, 'the total stays the same from page to page');
        for (const e of page.body.entry ?? []) {
          assert.equal(e.fullUrl.replace(/^https?:\/\/[^/]+/, ''), `${B}/AuditEvent/${e.resource.id}`);
          resources.push(e.resource);
        }
        const link = (page.body.link as Json[]).find((l) => l.relation === 'next')?.url as string | undefined;
        next = link ? link.replace(/^https?:\/\/[^/]+/, '') : undefined;
        pages++;
        assert.ok(pages < 500, 'paging ends');
      }
      everything.push(...resources);
      return { total, resources, pages, self };
    };
    const search = async (query: string) => {
      const found = await walk(`${B}/AuditEvent?${query}&${frozen}&_count=5`);
      assert.equal(found.resources.length, found.total);
      return sorted(found.resources.map((r) => r.id as string));
    };

    const login1 = trail.find((r) => r.action === 'login' && r.principal.id === 'rita')!;
    const query1 = trail.find((r) => r.action === 'query' && r.principal.id === 'rita' && r.interface === 'dicomweb')!;
    const read1 = trail.find((r) => r.action === 'read' && r.principal.id === 'rita')!;
    const denied = trail.filter((r) => r.action === 'login-failed' && r.outcome === 'minor-failure');
    assert.ok(login1 && query1 && read1, 'the actions left their records');
    assert.ok(denied.length >= 1, 'the failed sign-in was recorded');

    await t.test('agent finds who acted', async () => {
      const rita = mine((r) => r.principal.id === 'rita');
      assert.ok(rita.includes(login1.id) && rita.includes(query1.id) && rita.includes(read1.id));
      assert.deepEqual(await search('agent=rita'), rita);
      assert.deepEqual(await search('agent:identifier=urn:atrium:principal:user|rita'), rita);
      assert.deepEqual(await search('agent:identifier=|rita'), rita);
      assert.deepEqual(await search('agent:identifier=urn:atrium:principal:api-key|rita'), []);
      assert.deepEqual(await search('agent=rita,nobody'), rita);
      assert.deepEqual(await search('agent=nobody'), []);
    });

    await t.test('entity and patient find the records naming a study or a patient', async () => {
      const ofStudy = mine((r) => r.studies.some((s) => s.studyInstanceUid === studyUid));
      assert.ok(ofStudy.includes(read1.id), 'the WADO read names the study');
      assert.deepEqual(await search(`entity=ImagingStudy/${studyUid}`), ofStudy);
      const ofPatient = mine((r) => r.patientIds.includes(patientId));
      assert.ok(ofPatient.includes(read1.id));
      assert.deepEqual(await search(`patient=Patient/${encodeURIComponent(patientId)}`), ofPatient);
      assert.deepEqual(await search(`entity=Patient/${encodeURIComponent(patientId)}`), ofPatient);
      assert.deepEqual(await search(`entity=ImagingStudy/1.2.3.4.5`), []);
      assert.deepEqual(await search(`patient=Patient/NOSUCHPATIENT`), []);
    });

    await t.test('type, subtype, action and outcome by their codes', async () => {
      const queries = mine((r) => r.action === 'query');
      assert.ok(queries.includes(query1.id));
      assert.deepEqual(await search(`type=${DCM}|110112`), queries);
      assert.deepEqual(await search('type=110112'), queries);
      assert.deepEqual(await search('type=http://example.org|110112'), []);
      const logins = mine((r) => r.action === 'login' || r.action === 'login-failed' || r.action === 'logout');
      assert.ok(logins.includes(login1.id));
      assert.deepEqual(await search(`type=${DCM}|110114`), logins);
      assert.deepEqual(await search(`subtype=${DCM}|110122`), mine((r) => r.action === 'login' || r.action === 'login-failed'));
      assert.deepEqual(await search('subtype=110123'), mine((r) => r.action === 'logout'));
      const reads = mine((r) => r.action === 'read');
      assert.deepEqual(await search('type=110103,110112'), sorted([...reads, ...queries]));
      // Creating rita (a user with roles) is a security change with 110137 and 110136.
      const securityChanges = mine((r) => r.action === 'security-change');
      assert.ok(securityChanges.length >= 1);
      assert.deepEqual(await search('subtype=110137'), securityChanges);
      const rolesSet = mine((r) => r.action === 'security-change' && r.objects.some((o) => o.attributes?.includes('roles')));
      assert.ok(rolesSet.length >= 1, 'rita was given roles');
      assert.deepEqual(await search('subtype=110136'), rolesSet);
      assert.deepEqual(await search(`subtype=${DCM}|110136&agent=${ta.adminKey.slice(4, 16)}`), rolesSet);
      for (const code of ['C', 'R', 'U', 'D', 'E']) {
        assert.deepEqual(await search(`action=${code}`), mine((r) => ACTION_CODE[r.action] === code), `action=${code}`);
      }
      assert.deepEqual(await search('action=http://hl7.org/fhir/audit-event-action|R'), mine((r) => ACTION_CODE[r.action] === 'R'));
      assert.deepEqual(await search('outcome=4'), mine((r) => r.outcome === 'minor-failure'));
      assert.ok((await search('outcome=4')).includes(denied[0]!.id));
      assert.deepEqual(await search('outcome=0'), mine((r) => r.outcome === 'success'));
      assert.deepEqual(await search('outcome=0&agent=rita&action=R'), mine((r) => r.outcome === 'success' && r.principal.id === 'rita' && ACTION_CODE[r.action] === 'R'));
    });

    await t.test('date with each prefix', async () => {
      const second = login1.time.slice(0, 19);
      const instantOf = (r: AuditRecord): [number, number] => [Date.parse(r.time), Date.parse(r.time)];
      for (const value of [`${second}Z`, login1.time, read1.time.slice(0, 16) + 'Z']) {
        const range: [number, number] = value.length === 17
          ? [Date.parse(value), Date.parse(value) + 59_999]
          : value.length === 20 ? [Date.parse(value), Date.parse(value) + 999] : [Date.parse(value), Date.parse(value)];
        for (const prefix of ['eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb']) {
          const expected = mine((r) => dateMatches(prefix, instantOf(r), range));
          assert.deepEqual(await search(`date=${prefix}${encodeURIComponent(value)}`), expected, `date=${prefix}${value}`);
        }
      }
      assert.ok((await search(`date=eq${encodeURIComponent(login1.time)}`)).includes(login1.id));
      // A whole day, and an OR of two values.
      const day = login1.time.slice(0, 10);
      const [y, m, d] = day.split('-').map(Number) as [number, number, number];
      const dayRange: [number, number] = [new Date(y, m - 1, d).getTime(), new Date(y, m - 1, d + 1).getTime() - 1];
      assert.deepEqual(await search(`date=${day}`), mine((r) => dateMatches('eq', instantOf(r), dayRange)));
      assert.deepEqual(await search(`date=eq${encodeURIComponent(login1.time)},eq${encodeURIComponent(read1.time)}`),
        mine((r) => r.time === login1.time || r.time === read1.time));
    });

    await t.test('_id, read, _sort and paging: every record once while the trail grows', async () => {
      assert.deepEqual(await search(`_id=${read1.id}`), [read1.id]);
      const one = await get(`${B}/AuditEvent/${read1.id}`);
      assert.equal(one.status, 200);
      assert.match(one.type, /^application\/fhir\+json/);
      assert.equal(one.body.id, read1.id);
      assert.equal(one.body.recorded, read1.time);
      everything.push(one.body);

      const before = (await archive.audit.search({}, { limit: 1, offset: 0 })).total;
      const all = await walk(`${B}/AuditEvent?_count=2`);
      assert.ok(all.total >= before, 'what was there when the walk began is in it');
      assert.equal(all.resources.length, all.total, 'every record of the walk');
      assert.equal(new Set(all.resources.map((r) => r.id)).size, all.total, 'each once, although each page read added a record');
      assert.ok(all.pages >= Math.ceil(all.total / 2));
      const times = all.resources.map((r) => r.recorded as string);
      assert.deepEqual(times, [...times].sort().reverse(), 'newest first');
      assert.match(all.self, /date=le/, 'the walk is pinned');
      const pin = new URL(all.self).searchParams.getAll('date').find((v) => v.startsWith('le'))!;
      const upTo = (await archive.audit.search({ to: new Date(Date.parse(pin.slice(2)) + 1).toISOString() }, { limit: 10_000, offset: 0 })).items;
      assert.deepEqual(sorted(all.resources.map((r) => r.id)), sorted(upTo.map((r) => r.id)), 'exactly the trail up to the pin');

      const ascending = await walk(`${B}/AuditEvent?_sort=date&_count=3&date=${pin}`);
      assert.deepEqual(ascending.resources.map((r) => r.id), [...all.resources].reverse().map((r) => r.id), '_sort=date: oldest first');
      const descending = await walk(`${B}/AuditEvent?_sort=-date&_count=7&date=${pin}`);
      assert.deepEqual(descending.resources.map((r) => r.id), all.resources.map((r) => r.id));
      const count = await get(`${B}/AuditEvent?_summary=count&${frozen}`);
      assert.equal(count.body.total, trail.length);
      assert.equal(count.body.entry, undefined);
    });

    await t.test('reading the trail through FHIR is recorded as audit-log-used', async () => {
      const r = await get(`${B}/AuditEvent?agent=rita&_count=1`);
      assert.equal(r.status, 200);
      await archive.audit.drain();
      const used = (await archive.audit.search({ action: 'audit-log-used', interface: 'fhir' }, { limit: 1000, offset: 0 })).items;
      const record = used.find((u) => u.query?.includes('/fhir/R4/AuditEvent?agent=rita&_count=1'));
      assert.ok(record, 'the search is recorded');
      assert.equal(record.outcome, 'success');
      assert.equal(record.principal.kind, 'api-key');
      assert.equal(record.objects[0]?.type, 'audit-trail');
      assert.ok(used.some((u) => u.query === `${B}/AuditEvent/${read1.id}`), 'the read is recorded');
      // A later search finds that record (not the one of its own reading: the walk is pinned before it).
      const later = await walk(`${B}/AuditEvent?_id=${record.id}`);
      assert.deepEqual(later.resources.map((x) => x.id), [record.id]);
    });

    await t.test('bad input is an OperationOutcome 400 (recorded as a failed reading); an unknown id 404', async () => {
      for (const [url, expression] of [
        [`${B}/AuditEvent?date=yesterday`, 'date'], [`${B}/AuditEvent?date=ap2024-01-01`, 'date'], [`${B}/AuditEvent?entity=Observation/1`, 'entity'],
        [`${B}/AuditEvent?patient=Patient/a%20b`, 'patient'], [`${B}/AuditEvent?agent:exact=rita`, 'agent:exact'], [`${B}/AuditEvent?_sort=outcome`, '_sort'],
        [`${B}/AuditEvent?_count=x`, '_count'],
      ] as const) {
        const r = await get(url);
        assert.equal(r.status, 400, url);
        assert.equal(r.body.resourceType, 'OperationOutcome');
        assert.equal(r.body.issue[0].code, 'invalid');
        // The parameter at fault is named: in issue.expression, or (Medplum's date parser) in the diagnostics.
        const issue = r.body.issue[0];
        assert.ok(issue.expression ? issue.expression[0] === expression : String(issue.diagnostics).includes(expression.split(':')[0]!), `${url}: ${JSON.stringify(issue)}`);
      }
      const strict = await get(`${B}/AuditEvent?site=x`, { ...ta.authHeaders(), prefer: 'handling=strict' });
      assert.equal(strict.status, 400);
      assert.equal((await get(`${B}/AuditEvent?site=x&${frozen}`)).body.total, trail.length, 'ignored under lenient handling');
      const missing = await get(`${B}/AuditEvent/00000000-0000-4000-8000-000000000000`);
      assert.equal(missing.status, 404);
      assert.equal(missing.body.issue[0].code, 'not-found');
      await archive.audit.drain();
      const failed = (await archive.audit.search({ action: 'audit-log-used', outcome: 'minor-failure' }, { limit: 1000, offset: 0 })).items;
      assert.ok(failed.some((f) => f.query?.includes('date=yesterday') && f.interface === 'fhir'));
    });

    await t.test('the CapabilityStatement lists AuditEvent and its parameters', async () => {
      const r = await get(`${B}/metadata`, {});
      const audit = r.body.rest[0].resource.find((x: Json) => x.type === 'AuditEvent');
      assert.deepEqual(audit.interaction.map((i: Json) => i.code), ['read', 'search-type']);
      assert.deepEqual(audit.searchParam.map((p: Json) => p.name), ['_id', 'date', 'agent', 'entity', 'patient', 'type', 'subtype', 'outcome', 'action']);
      assert.deepEqual(r4Problems(r.body), []);
    });

    await t.test('every AuditEvent served validates against R4', () => {
      assert.ok(everything.length > trail.length);
      const actions = new Set(everything.map((r) => `${r.type.code}/${r.action}`));
      assert.ok(actions.size >= 5, `several kinds of event: ${[...actions].join(' ')}`);
      const seen = new Set<string>();
      for (const resource of everything) {
        if (seen.has(resource.id)) continue;
        seen.add(resource.id);
        assert.deepEqual(r4Problems(resource), [], JSON.stringify(resource));
        assert.deepEqual(validateFhirAuditEvent(resource), [], JSON.stringify(resource));
      }
    });
  });
}
