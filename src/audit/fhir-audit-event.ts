import type { AuditNetworkEnd, AuditObjectRef, AuditRecord, AuditStudyRef } from '../ports/audit-store.ts';
import { DCM_SYSTEM, eventCoding, OBJECT_CODES, OUTCOME_CODES, ROLE_CODES, type Code } from './event-codes.ts';
import { isIpAddress } from './dicom-audit-message.ts';

/** FHIR R4 code systems an AuditEvent uses besides DICOM's. */
export const ENTITY_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
export const OBJECT_ROLE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/object-role';
export const SOURCE_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/security-source-type';
/** Where principal ids live: one system per principal kind. */
export const PRINCIPAL_SYSTEM = 'urn:atrium:principal:';

interface Coding { system: string; code: string; display?: string }
interface Reference { reference?: string; type?: string; identifier?: { system?: string; value: string }; display?: string }

/** The subset of FHIR R4 AuditEvent that Atrium writes. */
export interface FhirAuditEvent {
  resourceType: 'AuditEvent';
  id: string;
  type: Coding;
  subtype?: Coding[];
  action: 'C' | 'R' | 'U' | 'D' | 'E';
  recorded: string;
  outcome: '0' | '4' | '8' | '12';
  outcomeDesc?: string;
  agent: Array<{
    type?: { coding: Coding[] };
    role?: Array<{ text: string }>;
    who?: Reference;
    altId?: string;
    name?: string;
    requestor: boolean;
    network?: { address: string; type: '1' | '2' };
  }>;
  source: { site?: string; observer: Reference; type: Coding[] };
  entity?: Array<{
    what?: Reference;
    type?: Coding;
    role?: Coding;
    lifecycle?: Coding;
    name?: string;
    description?: string;
    query?: string;
    detail?: Array<{ type: string; valueString: string }>;
  }>;
}

const coding = (c: Code): Coding => ({ system: DCM_SYSTEM, code: c.code, display: c.meaning });

/**
 * A record as a FHIR R4 AuditEvent, after the DICOM audit message it also is (the mapping of the R4
 * AuditEvent page, as IHE BALP uses it): type/subtype are the DICOM EventID/EventTypeCode, the requestor
 * and the archive are agents (requestor true / false) with DICOM role codes, the archive is the source's
 * observer, patients, studies and the query are entities (audit-entity-type and object-role codes).
 */
export function toFhirAuditEvent(record: AuditRecord): FhirAuditEvent {
  const objects = record.objects ?? [];
  const event = eventCoding(record.action, objects);
  const queryHolder = record.query !== null ? objects.find((o) => o.type === 'audit-trail') : undefined;
  const p = record.principal;
  const requestor: FhirAuditEvent['agent'][number] = {
    ...(event.requestorRole ? { type: { coding: [coding(ROLE_CODES[event.requestorRole])] } } : {}),
    ...(p.roles.length ? { role: p.roles.map((text) => ({ text })) } : {}),
    who: {
      identifier: { system: `${PRINCIPAL_SYSTEM}${p.kind}`, value: p.id ?? (p.kind === 'dicom-ae' ? record.origin?.aeTitle : null) ?? 'anonymous' },
      ...(p.displayName ? { display: p.displayName } : {}),
    },
    ...(record.origin?.aeTitle ? { altId: record.origin.aeTitle } : {}),
    ...(p.displayName ? { name: p.displayName } : {}),
    requestor: true,
    ...network(record.origin),
  };
  const archive: FhirAuditEvent['agent'][number] = {
    ...(event.archiveRole ? { type: { coding: [coding(ROLE_CODES[event.archiveRole])] } } : {}),
    who: { identifier: { value: record.sourceId }, display: record.sourceId },
    altId: record.sourceId,
    requestor: false,
  };
  const agent = [requestor, archive];
  const d = record.destination;
  if (d && (d.aeTitle || d.address)) {
    agent.push({
      type: { coding: [coding(ROLE_CODES.destination)] },
      who: { identifier: { value: d.aeTitle ?? d.address! }, display: d.aeTitle ?? d.address! },
      ...(d.aeTitle ? { altId: d.aeTitle } : {}),
      requestor: false,
      ...network(d),
    });
  }

  const entity: NonNullable<FhirAuditEvent['entity']> = [
    ...record.patientIds.map((value) => ({
      what: { type: 'Patient', identifier: { value } },
      type: { system: ENTITY_TYPE_SYSTEM, code: '1', display: 'Person' },
      role: { system: OBJECT_ROLE_SYSTEM, code: '1', display: 'Patient' },
    })),
    ...record.studies.map((s) => studyEntity(s, record.action === 'delete')),
    ...objects.map((o) => objectEntity(o, o === queryHolder ? record.query : null)),
    ...(record.query !== null && !queryHolder ? [{
      type: { system: ENTITY_TYPE_SYSTEM, code: '2', display: 'System Object' },
      role: { system: OBJECT_ROLE_SYSTEM, code: '24', display: 'Query' },
      query: Buffer.from(record.query, 'utf8').toString('base64'),
      detail: [{ type: 'interface', valueString: record.interface }],
    }] : []),
  ];

  return {
    resourceType: 'AuditEvent',
    id: record.id,
    type: coding(event.eventId),
    ...(event.eventTypes.length ? { subtype: event.eventTypes.map(coding) } : {}),
    action: event.action,
    recorded: record.time,
    outcome: OUTCOME_CODES[record.outcome],
    ...(record.outcomeReason ? { outcomeDesc: record.outcomeReason } : {}),
    agent,
    source: {
      observer: { identifier: { value: record.sourceId }, display: record.sourceId },
      type: [{ system: SOURCE_TYPE_SYSTEM, code: '4', display: 'Application Server' }],
    },
    ...(entity.length ? { entity } : {}),
  };
}

function studyEntity(study: AuditStudyRef, deleted: boolean): NonNullable<FhirAuditEvent['entity']>[number] {
  const detail = [
    ...(study.accessionNumber ? [{ type: 'AccessionNumber', valueString: study.accessionNumber }] : []),
    ...(study.numberOfInstances != null ? [{ type: 'NumberOfInstances', valueString: String(study.numberOfInstances) }] : []),
    ...(study.sopClassUids ?? []).map((uid) => ({ type: 'SOPClassUID', valueString: uid })),
    ...(study.seriesInstanceUids ?? []).map((uid) => ({ type: 'SeriesInstanceUID', valueString: uid })),
  ];
  return {
    what: { type: 'ImagingStudy', identifier: { system: 'urn:dicom:uid', value: `urn:oid:${study.studyInstanceUid}` } },
    type: { system: ENTITY_TYPE_SYSTEM, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE_SYSTEM, code: '3', display: 'Report' },
    ...(deleted ? { lifecycle: { system: 'http://terminology.hl7.org/CodeSystem/dicom-audit-lifecycle', code: '14', display: 'Logical deletion' } } : {}),
    ...(detail.length ? { detail } : {}),
  };
}

/** A user, key, peer, job, quarantined object or the audit log: the codes of its DICOM participant object (OBJECT_CODES). */
function objectEntity(object: AuditObjectRef, query: string | null): NonNullable<FhirAuditEvent['entity']>[number] {
  const codes = OBJECT_CODES[object.type];
  const detail = [
    ...(object.change ? [{ type: 'change', valueString: object.change }] : []),
    ...(object.attributes?.length ? [{ type: 'attributes', valueString: object.attributes.join(',') }] : []),
  ];
  return {
    what: { identifier: { system: `urn:atrium:${object.type}`, value: object.id }, ...(object.name ? { display: object.name } : {}) },
    type: codes.typeCode === '1' ? { system: ENTITY_TYPE_SYSTEM, code: '1', display: 'Person' } : { system: ENTITY_TYPE_SYSTEM, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE_SYSTEM, code: codes.role.code, display: codes.role.meaning },
    ...(object.change === 'deleted' ? { lifecycle: { system: 'http://terminology.hl7.org/CodeSystem/dicom-audit-lifecycle', code: '14', display: 'Logical deletion' } } : {}),
    // R4 sev-1: an entity has a name or a query, not both (the name stays in `what.display`).
    ...(object.name && query === null ? { name: object.name } : {}),
    ...(query !== null ? { query: Buffer.from(query, 'utf8').toString('base64') } : {}),
    ...(detail.length ? { detail } : {}),
  };
}

function network(end: AuditNetworkEnd | null | undefined): { network?: { address: string; type: '1' | '2' } } {
  if (!end?.address) return {};
  return { network: { address: end.address, type: isIpAddress(end.address) ? '2' : '1' } };
}
