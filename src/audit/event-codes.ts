import type { AuditAction, AuditObjectRef, AuditObjectType, AuditOutcome } from '../ports/audit-store.ts';

/** A coded value: DICOM's (code, scheme, meaning) triplet. */
export interface Code {
  code: string;
  /** Coding scheme designator as DICOM writes it (DCM, RFC-3881...). */
  scheme: string;
  meaning: string;
}

/** FHIR's URI for the DICOM controlled terminology (PS3.16): scheme DCM. */
export const DCM_SYSTEM = 'http://dicom.nema.org/resources/ontology/DCM';

const dcm = (code: string, meaning: string): Code => ({ code, scheme: 'DCM', meaning });

/** PS3.15 EventActionCode: Create, Read, Update, Delete, Execute. */
export type EventActionCode = 'C' | 'R' | 'U' | 'D' | 'E';

/**
 * Where the requestor and the archive stand in an event (PS3.15 A.5.2 RoleIDCode). Data flows from Source
 * to Destination; for a query the querier is the Source (the query flows to the archive), as DICOM and
 * IHE BALP have it.
 */
export type Side = 'source' | 'destination' | 'application' | null;

export interface EventCoding {
  eventId: Code;
  /** EventTypeCodes (0..n), when the event has them (login, logout, what a Security Alert is about). */
  eventTypes: Code[];
  action: EventActionCode;
  /** Role of the requesting principal (null: none given). */
  requestorRole: Side;
  /** Role of the archive itself. */
  archiveRole: Side;
}

export const ROLE_CODES: Record<Exclude<Side, null>, Code> = {
  source: dcm('110153', 'Source Role ID'),
  destination: dcm('110152', 'Destination Role ID'),
  application: dcm('110150', 'Application'),
};

export const EVENT_TYPE_LOGIN = dcm('110122', 'Login');
export const EVENT_TYPE_LOGOUT = dcm('110123', 'Logout');
/** CID 412 Security Alert Event Types (meanings as PS3.16 spells them). */
export const EVENT_TYPE_NETWORK_CONFIGURATION = dcm('110128', 'Network Configuration');
export const EVENT_TYPE_RESTRICTED_FUNCTION = dcm('110132', 'Use of Restricted Function');
export const EVENT_TYPE_SECURITY_ROLES_CHANGED = dcm('110136', 'Security Roles Changed');
export const EVENT_TYPE_USER_SECURITY_ATTRIBUTES_CHANGED = dcm('110137', 'User security Attributes Changed');

const SECURITY_ALERT = dcm('110113', 'Security Alert');

/**
 * Each action's PS3.15 A.5.3 event. `objects` (the record's) decide the event types of a security change:
 * 110137 always, and 110136 as well when roles were given (a new user or key) or changed.
 */
export function eventCoding(action: AuditAction, objects: readonly AuditObjectRef[] = []): EventCoding {
  const alert = (eventTypes: Code[]): EventCoding => ({ eventId: SECURITY_ALERT, eventTypes, action: 'E', requestorRole: null, archiveRole: 'application' });
  switch (action) {
    case 'read': return { eventId: dcm('110103', 'DICOM Instances Accessed'), eventTypes: [], action: 'R', requestorRole: 'destination', archiveRole: 'source' };
    case 'store': return { eventId: dcm('110104', 'DICOM Instances Transferred'), eventTypes: [], action: 'C', requestorRole: 'source', archiveRole: 'destination' };
    case 'import': return { eventId: dcm('110107', 'Import'), eventTypes: [], action: 'C', requestorRole: 'source', archiveRole: 'destination' };
    case 'export': return { eventId: dcm('110104', 'DICOM Instances Transferred'), eventTypes: [], action: 'R', requestorRole: null, archiveRole: 'source' };
    case 'media-export': return { eventId: dcm('110106', 'Export'), eventTypes: [], action: 'R', requestorRole: null, archiveRole: 'source' };
    case 'delete': return { eventId: dcm('110105', 'DICOM Study Deleted'), eventTypes: [], action: 'D', requestorRole: null, archiveRole: 'application' };
    case 'update': return { eventId: dcm('110110', 'Patient Record'), eventTypes: [], action: 'U', requestorRole: null, archiveRole: 'application' };
    case 'query': return { eventId: dcm('110112', 'Query'), eventTypes: [], action: 'E', requestorRole: 'source', archiveRole: 'destination' };
    case 'login':
    case 'login-failed': return { eventId: dcm('110114', 'User Authentication'), eventTypes: [EVENT_TYPE_LOGIN], action: 'E', requestorRole: null, archiveRole: 'application' };
    case 'logout': return { eventId: dcm('110114', 'User Authentication'), eventTypes: [EVENT_TYPE_LOGOUT], action: 'E', requestorRole: null, archiveRole: 'application' };
    case 'order-record': return { eventId: dcm('110109', 'Order Record'), eventTypes: [], action: 'U', requestorRole: null, archiveRole: 'application' };
    case 'audit-log-used': return { eventId: dcm('110101', 'Audit Log Used'), eventTypes: [], action: 'R', requestorRole: null, archiveRole: 'application' };
    case 'security-change': return alert([
      EVENT_TYPE_USER_SECURITY_ATTRIBUTES_CHANGED,
      ...(objects.some((o) => o.attributes?.includes('roles')) ? [EVENT_TYPE_SECURITY_ROLES_CHANGED] : []),
    ]);
    case 'network-config': return alert([EVENT_TYPE_NETWORK_CONFIGURATION]);
    case 'job-control': return alert([EVENT_TYPE_RESTRICTED_FUNCTION]);
  }
}

/** PS3.15 EventOutcomeIndicator (the same values as FHIR R4 AuditEvent.outcome). */
export const OUTCOME_CODES: Record<AuditOutcome, '0' | '4' | '8' | '12'> = {
  success: '0',
  'minor-failure': '4',
  'serious-failure': '8',
  'major-failure': '12',
};

export const OUTCOME_MEANINGS: Record<AuditOutcome, string> = {
  success: 'Success',
  'minor-failure': 'Minor failure',
  'serious-failure': 'Serious failure',
  'major-failure': 'Major failure',
};

/** ParticipantObjectIDTypeCode of each participant object kind (PS3.15 A.5.2.5). */
export const OBJECT_ID_TYPES = {
  patient: { code: '2', scheme: 'RFC-3881', meaning: 'Patient Number' } as Code,
  study: dcm('110180', 'Study Instance UID'),
  sopClass: dcm('110181', 'SOP Class UID'),
};

/** What Atrium names objects by when no standard ID type fits (a job id, a quarantine entry id, an AE title). */
export const ATRIUM_SCHEME = 'urn:atrium';

/**
 * How each administrative object is a PS3.15 participant object: ParticipantObjectTypeCode (1 person,
 * 2 system object), ParticipantObjectTypeCodeRole (RFC 3881: 4 resource, 11 security user entity,
 * 13 security resource, 20 job) and ParticipantObjectIDTypeCode (RFC 3881 11 user identifier, 12 URI;
 * Atrium's own codes where neither fits). FHIR uses the same numbers (audit-entity-type, object-role).
 */
export const OBJECT_CODES: Record<AuditObjectType, { typeCode: '1' | '2'; role: Code; idType: Code }> = {
  user: { typeCode: '1', role: { code: '11', scheme: 'RFC-3881', meaning: 'Security User Entity' }, idType: { code: '11', scheme: 'RFC-3881', meaning: 'User Identifier' } },
  'api-key': { typeCode: '2', role: { code: '11', scheme: 'RFC-3881', meaning: 'Security User Entity' }, idType: { code: '11', scheme: 'RFC-3881', meaning: 'User Identifier' } },
  'dicom-peer': { typeCode: '2', role: { code: '4', scheme: 'RFC-3881', meaning: 'Resource' }, idType: { code: 'ae-title', scheme: ATRIUM_SCHEME, meaning: 'Application Entity Title' } },
  job: { typeCode: '2', role: { code: '20', scheme: 'RFC-3881', meaning: 'Job' }, idType: { code: 'job-id', scheme: ATRIUM_SCHEME, meaning: 'Job ID' } },
  'quarantined-object': { typeCode: '2', role: { code: '3', scheme: 'RFC-3881', meaning: 'Report' }, idType: { code: 'quarantine-id', scheme: ATRIUM_SCHEME, meaning: 'Quarantine Entry ID' } },
  'dose-reference-level': { typeCode: '2', role: { code: '4', scheme: 'RFC-3881', meaning: 'Resource' }, idType: { code: 'dose-reference-level-id', scheme: ATRIUM_SCHEME, meaning: 'Dose Reference Level ID' } },
  'dose-alert': { typeCode: '2', role: { code: '3', scheme: 'RFC-3881', meaning: 'Report' }, idType: { code: 'dose-alert-id', scheme: ATRIUM_SCHEME, meaning: 'Dose Alert ID' } },
  'reading-sla': { typeCode: '2', role: { code: '4', scheme: 'RFC-3881', meaning: 'Resource' }, idType: { code: 'reading-sla', scheme: ATRIUM_SCHEME, meaning: 'Reading SLA Table' } },
  'critical-result': { typeCode: '2', role: { code: '3', scheme: 'RFC-3881', meaning: 'Report' }, idType: { code: 'critical-result-id', scheme: ATRIUM_SCHEME, meaning: 'Critical Result ID' } },
  'integrity-finding': { typeCode: '2', role: { code: '3', scheme: 'RFC-3881', meaning: 'Report' }, idType: { code: 'integrity-finding-id', scheme: ATRIUM_SCHEME, meaning: 'Integrity Finding ID' } },
  'prefetch-rule': { typeCode: '2', role: { code: '4', scheme: 'RFC-3881', meaning: 'Resource' }, idType: { code: 'prefetch-rule-id', scheme: ATRIUM_SCHEME, meaning: 'Prior Prefetch Rule ID' } },
  'routing-rule': { typeCode: '2', role: { code: '4', scheme: 'RFC-3881', meaning: 'Resource' }, idType: { code: 'routing-rule-id', scheme: ATRIUM_SCHEME, meaning: 'Routing Rule ID' } },
  'ai-node': { typeCode: '2', role: { code: '4', scheme: 'RFC-3881', meaning: 'Resource' }, idType: { code: 'ai-node-id', scheme: ATRIUM_SCHEME, meaning: 'AI Node ID' } },
  'audit-trail': { typeCode: '2', role: { code: '13', scheme: 'RFC-3881', meaning: 'Security Resource' }, idType: { code: '12', scheme: 'RFC-3881', meaning: 'URI' } },
};
