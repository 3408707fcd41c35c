import type { AuditAction, AuditOutcome } from '../ports/audit-store.ts';

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
  /** EventTypeCode, when the event has one (login, logout). */
  eventType: Code | null;
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

/** Each action's PS3.15 A.5.3 event. */
export function eventCoding(action: AuditAction): EventCoding {
  switch (action) {
    case 'read': return { eventId: dcm('110103', 'DICOM Instances Accessed'), eventType: null, action: 'R', requestorRole: 'destination', archiveRole: 'source' };
    case 'store': return { eventId: dcm('110104', 'DICOM Instances Transferred'), eventType: null, action: 'C', requestorRole: 'source', archiveRole: 'destination' };
    case 'import': return { eventId: dcm('110107', 'Import'), eventType: null, action: 'C', requestorRole: 'source', archiveRole: 'destination' };
    case 'export': return { eventId: dcm('110104', 'DICOM Instances Transferred'), eventType: null, action: 'R', requestorRole: null, archiveRole: 'source' };
    case 'media-export': return { eventId: dcm('110106', 'Export'), eventType: null, action: 'R', requestorRole: null, archiveRole: 'source' };
    case 'delete': return { eventId: dcm('110105', 'DICOM Study Deleted'), eventType: null, action: 'D', requestorRole: null, archiveRole: 'application' };
    case 'update': return { eventId: dcm('110110', 'Patient Record'), eventType: null, action: 'U', requestorRole: null, archiveRole: 'application' };
    case 'query': return { eventId: dcm('110112', 'Query'), eventType: null, action: 'E', requestorRole: 'source', archiveRole: 'destination' };
    case 'login':
    case 'login-failed': return { eventId: dcm('110114', 'User Authentication'), eventType: EVENT_TYPE_LOGIN, action: 'E', requestorRole: null, archiveRole: 'application' };
    case 'logout': return { eventId: dcm('110114', 'User Authentication'), eventType: EVENT_TYPE_LOGOUT, action: 'E', requestorRole: null, archiveRole: 'application' };
    case 'order-record': return { eventId: dcm('110109', 'Order Record'), eventType: null, action: 'U', requestorRole: null, archiveRole: 'application' };
    case 'audit-log-used': return { eventId: dcm('110101', 'Audit Log Used'), eventType: null, action: 'R', requestorRole: null, archiveRole: 'application' };
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
