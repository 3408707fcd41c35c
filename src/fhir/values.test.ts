// The FHIR value conversions that need no database: patient ids (reversible, within R4's id rule), person
// names, DICOM and HL7 dates and times, issuer systems, coding systems, and search value parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FHIR_ID, codeOfCoding, codingOf, dateTimeOfHl7OrIso, displayName, fhirDate, fhirDateTime, humanName, issuerOfSystem, issuerSystem, parsePatientLogicalId, patientLogicalId } from './values.ts';
import { dateRange } from './dates.ts';
import { splitValues, strictHandling, tokenValue, referenceId } from './search-request.ts';
import { AtriumError } from '../errors.ts';

test('patient logical ids are reversible FHIR ids, and refuse what they could not stand for', () => {
  for (const [id, issuer] of [['12345', ''], ['12345', 'HOSP'], ['1.2.3', '1.2.840.99'], ['A-B_C D', 'Hôpital/Nord'], ['x--y', '-'], ['Müller', '']]) {
    const logical = patientLogicalId(id!, issuer!)!;
    assert.match(logical, FHIR_ID, logical);
    assert.deepEqual(parsePatientLogicalId(logical), { patientId: id, issuer }, logical);
  }
  assert.equal(patientLogicalId('12345', 'HOSP'), '12345--HOSP');
  assert.equal(patientLogicalId('a'.repeat(60), 'HOSP'), null, 'over 64 characters');
  for (const bad of ['', '--HOSP', 'a-zz', 'a_b', 'a-4', 'x'.repeat(65), 'a-2d']) assert.equal(parsePatientLogicalId(bad), null, bad);
});

test('names, dates and times', () => {
  assert.deepEqual(humanName('Doe^Jane^Q^Dr^III=ドウ^ジェーン'), { text: 'Dr Jane Q Doe III', family: 'Doe', given: ['Jane', 'Q'], prefix: ['Dr'], suffix: ['III'] });
  assert.equal(humanName('^^'), null);
  assert.equal(displayName('REFERRER^RITA'), 'RITA REFERRER');
  assert.equal(fhirDate('20240229'), '2024-02-29');
  for (const bad of ['20230229', '2024', '2024-02-01', '00000101', null]) assert.equal(fhirDate(bad), null, String(bad));
  assert.match(fhirDateTime('20240301', '0830')!, /^2024-03-01T08:30:00[+-]\d\d:\d\d$/);
  assert.match(fhirDateTime('20240301', '083015.123456')!, /^2024-03-01T08:30:15\.123456[+-]/);
  assert.equal(fhirDateTime('20240301', null), '2024-03-01');
  assert.equal(fhirDateTime('20240301', '2561'), '2024-03-01', 'an impossible time leaves the date');
  assert.equal(dateTimeOfHl7OrIso('20240301100000+0100'), '2024-03-01T10:00:00+01:00');
  assert.equal(dateTimeOfHl7OrIso('20240302'), '2024-03-02');
  assert.equal(dateTimeOfHl7OrIso('2024-03-01T10:00:00Z'), '2024-03-01T10:00:00.000Z');
  assert.equal(dateTimeOfHl7OrIso('soon'), null);
});

test('issuers and coding schemes as URIs, and back', () => {
  assert.equal(issuerSystem('1.2.840.113619'), 'urn:oid:1.2.840.113619');
  assert.equal(issuerSystem('HOSP'), 'urn:atrium:issuer:HOSP');
  assert.equal(issuerSystem('http://hospital.example/mrn'), 'http://hospital.example/mrn');
  assert.equal(issuerSystem(''), null);
  for (const issuer of ['1.2.3', 'HOSP', 'St. Mary', 'http://x.example/id']) assert.equal(issuerOfSystem(issuerSystem(issuer)!), issuer);
  assert.deepEqual(codingOf({ code: '24627-2', scheme: 'LN', meaning: 'CT Chest' }), { system: 'http://loinc.org', code: '24627-2', display: 'CT Chest' });
  assert.deepEqual(codeOfCoding(codingOf({ code: 'X1', scheme: 'LOCAL', meaning: 'Local' })), { code: 'X1', scheme: 'LOCAL', meaning: 'Local' });
  assert.deepEqual(codeOfCoding({ system: 'http://snomed.info/sct', code: '1' }), { code: '1', scheme: 'SCT', meaning: '' });
});

test('search values: ranges by precision, commas, tokens, references, Prefer', () => {
  const day = dateRange('2024-03-01', 'd');
  assert.equal(day.endMs - day.startMs, 86_400_000 - 1);
  assert.equal(dateRange('2024-03-01T10:00:00Z', 'd').startMs, Date.UTC(2024, 2, 1, 10));
  assert.equal(dateRange('2024-03-01T10:00+02:00', 'd').startMs, Date.UTC(2024, 2, 1, 8));
  const minute = dateRange('2024-03-01T10:00Z', 'd');
  assert.equal(minute.endMs - minute.startMs, 59_999);
  const year = dateRange('2024', 'd');
  assert.equal(new Date(year.endMs).getMonth(), 11);
  for (const bad of ['2024-13', '2024-02-30', '2024-03-01T25:00', 'yesterday']) assert.throws(() => dateRange(bad, 'started'), (e: unknown) => e instanceof AtriumError && e.code === 'invalid-input', bad);
  assert.deepEqual(splitValues('a,b\\,c,d\\\\'), ['a', 'b,c', 'd\\']);
  assert.deepEqual(tokenValue('sys|code'), { system: 'sys', code: 'code' });
  assert.deepEqual(tokenValue('|code'), { system: '', code: 'code' });
  assert.deepEqual(tokenValue('code'), { system: null, code: 'code' });
  assert.equal(referenceId('Patient/1', 'Patient', 'http://h/fhir/R4'), '1');
  assert.equal(referenceId('http://h/fhir/R4/Patient/1', 'Patient', 'http://h/fhir/R4'), '1');
  assert.equal(referenceId('Group/1', 'Patient', 'http://h/fhir/R4'), null);
  assert.equal(referenceId('1', 'Patient', 'http://h/fhir/R4'), '1');
  assert.equal(strictHandling('handling=strict'), true);
  assert.equal(strictHandling('return=minimal, handling=lenient'), false);
  assert.equal(strictHandling(undefined), false);
});
