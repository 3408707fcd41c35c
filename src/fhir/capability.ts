/**
 * The CapabilityStatement at /fhir/R4/metadata, made from the same tables the routes and the search
 * parser use (search-request.ts definitions), so it lists exactly what is served.
 */
import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import type { SearchDefinition } from './search-request.ts';

export interface ServedResource {
  search: SearchDefinition;
  interactions: readonly ('read' | 'vread' | 'search-type' | 'create' | 'update')[];
  documentation: string;
  profile?: string;
}

const SOFTWARE_VERSION = '0.1.0';

export function capabilityStatement(base: string, resources: readonly ServedResource[]): CapabilityStatement {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-12-07',
    publisher: 'Atrium',
    kind: 'instance',
    software: { name: 'Atrium', version: SOFTWARE_VERSION },
    implementation: { description: 'Atrium FHIR R4 server over its imaging index and RIS', url: base },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [{
      mode: 'server',
      documentation: 'Read and search generated from the archive\'s index and the RIS (docs/fhir.md). Unknown search parameters are ignored '
        + 'under Prefer: handling=lenient (the default) and refused under handling=strict; an unsupported modifier or prefix is always refused.',
      security: {
        cors: false,
        description: 'The same credentials as every Atrium interface: Authorization: Bearer <API key or OIDC token>, or a session cookie. '
          + 'Roles as docs/security.md: Patient, ImagingStudy need query (ImagingStudy read: study:read), ServiceRequest and DiagnosticReport '
          + 'order:read (create/update: order:write); a referring clinician sees only the studies they referred, and those studies\' patients.',
      },
      resource: resources.map((r): CapabilityStatementRestResource => ({
        type: r.search.resourceType as CapabilityStatementRestResource['type'],
        ...(r.profile ? { profile: r.profile } : {}),
        documentation: r.documentation,
        interaction: r.interactions.map((code) => ({ code })),
        versioning: r.interactions.includes('vread') ? 'versioned' : 'no-version',
        readHistory: false,
        updateCreate: false,
        ...(r.search.includes.length ? { searchInclude: [...r.search.includes] } : {}),
        searchParam: r.search.parameters.map((p) => ({
          name: p.code, type: p.type, documentation: p.documentation, ...(p.definition ? { definition: p.definition } : {}),
        })),
      })),
    }],
  };
}
