// A real FHIR client from the registry (@medplum/core's MedplumClient, not our code) against the running
// server, as an EHR would use it: patient -> ImagingStudy -> Endpoint -> the instance's bytes by WADO-RS,
// and ServiceRequest -> DiagnosticReport; it also writes a report, and reads the refusal of a bad one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MedplumClient, OperationOutcomeError } from '@medplum/core';
import type { DiagnosticReport, Endpoint, ImagingStudy, Patient, ServiceRequest } from '@medplum/fhirtypes';
import { createTestArchive } from '../../test/support/archive.ts';
import { startDicomwebServer, parseMultipart } from '../../test/support/dicomweb.ts';
import { buildFhirFixtures, r4Problems } from '../../test/support/fhir.ts';

test('MedplumClient reads patient -> ImagingStudy -> Endpoint -> WADO-RS bytes, and ServiceRequest -> DiagnosticReport', { timeout: 300_000 }, async () => {
  const t = await createTestArchive('sqlite+fs');
  const server = await startDicomwebServer(t.archive);
  after(async () => { await server.close(); await t.cleanup(); });
  await buildFhirFixtures(t.archive);

  const medplum = new MedplumClient({ baseUrl: `${server.origin}/`, fhirUrlPath: 'fhir/R4', fetch: globalThis.fetch.bind(globalThis), cacheTime: 0 });
  medplum.setAccessToken(t.adminKey);

  const patient = await medplum.searchOne('Patient', { identifier: 'urn:atrium:issuer:HOSP|PFHIR1' }) as Patient;
  assert.equal(patient.id, 'PFHIR1--HOSP');
  const studies = await medplum.searchResources('ImagingStudy', { patient: `Patient/${patient.id}`, _sort: '-started' }) as ImagingStudy[];
  assert.equal(studies.length, 3);
  const study = studies.find((s) => s.series?.some((x) => x.modality.code === 'CT'))!;
  const endpoint = await medplum.readReference(study.endpoint![0]!) as Endpoint;
  assert.equal(endpoint.connectionType.code, 'dicom-wado-rs');
  assert.equal(endpoint.address, `${server.origin}/dicom-web`);

  // WADO-RS: the instance as stored, byte for byte (the index's SHA-256 of the object).
  const series = study.series![0]!;
  const instance = series.instance![0]!;
  const response = await fetch(`${endpoint.address}/studies/${study.id}/series/${series.uid}/instances/${instance.uid}`, {
    headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
  });
  assert.equal(response.status, 200);
  const parts = parseMultipart(response.headers.get('content-type')!, Buffer.from(await response.arrayBuffer()));
  assert.equal(parts.length, 1);
  const stored = (await t.archive.index.findInstance(instance.uid))!;
  assert.equal(createHash('sha256').update(parts[0]!.body).digest('hex'), stored.sha256);
  assert.equal(parts[0]!.body.subarray(128, 132).toString('latin1'), 'DICM');

  // The orders of the patient, and the report of the one that has it.
  const orders = await medplum.searchResources('ServiceRequest', { patient: `Patient/${patient.id}` }) as ServiceRequest[];
  assert.deepEqual(orders.map((o) => o.identifier?.find((i) => i.type?.coding?.[0]?.code === 'ACSN')?.value).sort(), ['FACC1', 'FACC2']);
  const facc1 = orders.find((o) => o.identifier?.some((i) => i.value === 'FACC1'))!;
  const [report] = await medplum.searchResources('DiagnosticReport', { 'based-on': `ServiceRequest/${facc1.id}` }) as DiagnosticReport[];
  assert.equal(report!.status, 'amended');
  assert.equal(report!.conclusion, 'No acute findings. Addendum: small cyst.');
  const reported = await medplum.readReference(report!.imagingStudy![0]!) as ImagingStudy;
  assert.ok(reported.identifier?.some((i) => i.value === 'urn:oid:' + reported.id));

  // A write by the client: a preliminary report on the order without one.
  const facc2 = orders.find((o) => o.identifier?.some((i) => i.value === 'FACC2'))!;
  const created = await medplum.createResource<DiagnosticReport>({
    resourceType: 'DiagnosticReport', status: 'final', basedOn: [{ reference: `ServiceRequest/${facc2.id}` }], code: { text: 'MR brain' }, conclusion: 'Normal brain.',
  });
  assert.deepEqual([created.id, created.status, created.meta?.versionId], [facc2.id, 'final', '2']);
  assert.deepEqual(r4Problems(created), []);
  // The client sees a refusal as the OperationOutcome it is.
  await assert.rejects(medplum.createResource({ resourceType: 'DiagnosticReport', status: 'final', basedOn: [{ reference: 'ServiceRequest/999999' }], code: { text: 'x' }, conclusion: 'x' } as DiagnosticReport),
    (error: unknown) => error instanceof OperationOutcomeError && /ServiceRequest\/999999 is not known here/.test(error.outcome.issue?.[0]?.diagnostics ?? ''));
  const capability = await medplum.get(medplum.fhirUrl('metadata'));
  assert.equal(capability.resourceType, 'CapabilityStatement');
});
