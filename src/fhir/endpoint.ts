/**
 * Endpoint: where the images of an ImagingStudy are retrieved and shown. Three fixed resources, built from
 * the address the client reached Atrium at: the DICOMweb base (WADO-RS, and QIDO-RS and STOW-RS beside it),
 * WADO-URI, and the viewer launch in context (IHE Invoke Image Display, docs/ehr.md).
 */
import type { Endpoint } from '@medplum/fhirtypes';
import type { FhirContext } from './context.ts';
import type { SearchDefinition } from './search-request.ts';

export const ENDPOINT_DICOMWEB = 'dicomweb';
export const ENDPOINT_WADO_URI = 'wado-uri';
export const ENDPOINT_IID = 'iid';
const CONNECTION_TYPE = 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type';
const PAYLOAD_TYPE = 'http://terminology.hl7.org/CodeSystem/endpoint-payload-type';

export const ENDPOINT_SEARCH: SearchDefinition = {
  resourceType: 'Endpoint',
  parameters: [
    { code: '_id', type: 'token', expression: 'Endpoint.id', documentation: `${ENDPOINT_DICOMWEB}, ${ENDPOINT_WADO_URI} or ${ENDPOINT_IID}` },
    { code: 'connection-type', type: 'token', expression: 'Endpoint.connectionType', definition: 'http://hl7.org/fhir/SearchParameter/Endpoint-connection-type',
      documentation: 'dicom-wado-rs, dicom-wado-uri or ihe-iid' },
    { code: 'status', type: 'token', expression: 'Endpoint.status', definition: 'http://hl7.org/fhir/SearchParameter/Endpoint-status', documentation: 'active' },
  ],
  sorts: [],
  includes: [],
};

export function endpoints(ctx: FhirContext): Endpoint[] {
  const common = {
    resourceType: 'Endpoint' as const, status: 'active' as const,
    payloadType: [{ coding: [{ system: PAYLOAD_TYPE, code: 'any', display: 'Any' }], text: 'DICOM' }],
  };
  return [
    {
      ...common, id: ENDPOINT_DICOMWEB, name: 'Atrium DICOMweb (WADO-RS, QIDO-RS, STOW-RS)',
      connectionType: { system: CONNECTION_TYPE, code: 'dicom-wado-rs', display: 'DICOM WADO-RS' },
      payloadMimeType: ['application/dicom', 'application/dicom+json', 'application/octet-stream', 'image/jpeg', 'image/png'],
      address: `${ctx.origin}/dicom-web`,
    },
    {
      ...common, id: ENDPOINT_WADO_URI, name: 'Atrium WADO-URI',
      connectionType: { system: CONNECTION_TYPE, code: 'dicom-wado-uri', display: 'DICOM WADO-URI' },
      payloadMimeType: ['application/dicom', 'image/jpeg'],
      address: `${ctx.origin}/wado`,
    },
    {
      // IID (RAD-106) is a browser opening a URL: nothing is sent to the endpoint but the query string
      // (payload type "none"), and what comes back is the viewer's page. The launch URL of a study is
      // <address>?requestType=STUDY&studyUID=<Study Instance UID> (docs/ehr.md).
      resourceType: 'Endpoint', status: 'active', id: ENDPOINT_IID, name: 'Atrium viewer launch (IHE Invoke Image Display)',
      connectionType: { system: CONNECTION_TYPE, code: 'ihe-iid', display: 'IHE IID' },
      payloadType: [{ coding: [{ system: PAYLOAD_TYPE, code: 'none', display: 'None' }], text: 'IHE IID image display request (query string); the viewer as HTML' }],
      payloadMimeType: ['text/html'],
      address: `${ctx.origin}/launch`,
    },
  ];
}
