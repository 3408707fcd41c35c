import type { AuditNetworkEnd, AuditObjectRef, AuditRecord, AuditStudyRef } from '../ports/audit-store.ts';
import { eventCoding, OBJECT_CODES, OBJECT_ID_TYPES, OUTCOME_CODES, ROLE_CODES, type Code } from './event-codes.ts';

/** Study Root Query/Retrieve Information Model - FIND: the query model of every Atrium query. */
export const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';

/**
 * A record as a DICOM audit message (PS3.15 A.5.1 schema; events of A.5.3): EventIdentification,
 * the requestor, the archive and a transfer's other end as ActiveParticipants, AuditSourceIdentification,
 * and the patients, studies and query as ParticipantObjectIdentification. Coded values use the
 * csd-code / codeSystemName / originalText attributes of the current schema.
 */
export function toDicomAuditMessage(record: AuditRecord, options: { declaration?: boolean } = {}): string {
  const objects = record.objects ?? [];
  const coding = eventCoding(record.action, objects);
  const out: string[] = [];
  if (options.declaration ?? true) out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push('<AuditMessage>');

  out.push(`  <EventIdentification${attrs({ EventActionCode: coding.action, EventDateTime: record.time, EventOutcomeIndicator: OUTCOME_CODES[record.outcome] })}>`);
  out.push(`    ${coded('EventID', coding.eventId)}`);
  for (const type of coding.eventTypes) out.push(`    ${coded('EventTypeCode', type)}`);
  if (record.outcomeReason) out.push(`    <EventOutcomeDescription>${text(record.outcomeReason)}</EventOutcomeDescription>`);
  out.push('  </EventIdentification>');

  // The requestor: a person, a key, or a DICOM application entity.
  const p = record.principal;
  const isAe = p.kind === 'dicom-ae';
  const userId = p.id ?? (isAe ? record.origin?.aeTitle : null) ?? 'anonymous';
  const requestorRoles = [
    ...(coding.requestorRole ? [ROLE_CODES[coding.requestorRole]] : []),
    ...p.roles.map((role) => ({ code: role, scheme: 'urn:atrium:role', meaning: role })),
  ];
  out.push(participant({
    UserID: userId,
    AlternativeUserID: isAe ? `AETITLES=${userId}` : record.origin?.aeTitle ? `AETITLES=${record.origin.aeTitle}` : undefined,
    UserName: p.displayName ?? (p.kind === 'anonymous' ? 'anonymous' : undefined),
    UserIsRequestor: 'true',
    ...network(record.origin),
  }, requestorRoles));

  // The archive.
  out.push(participant({
    UserID: record.sourceId, AlternativeUserID: `AETITLES=${record.sourceId}`, UserIsRequestor: 'false',
  }, coding.archiveRole ? [ROLE_CODES[coding.archiveRole]] : []));

  // The other end of a transfer (C-MOVE destination, forward target).
  if (record.destination && (record.destination.aeTitle || record.destination.address)) {
    const d = record.destination;
    out.push(participant({
      UserID: d.aeTitle ?? d.address ?? 'unknown', AlternativeUserID: d.aeTitle ? `AETITLES=${d.aeTitle}` : undefined,
      UserIsRequestor: 'false', ...network(d),
    }, [ROLE_CODES.destination]));
  }

  out.push(`  <AuditSourceIdentification${attrs({ AuditSourceID: record.sourceId })}>`);
  out.push(`    ${coded('AuditSourceTypeCode', { code: '4', scheme: 'RFC-3881', meaning: 'Application Server' })}`);
  out.push('  </AuditSourceIdentification>');

  for (const patientId of record.patientIds) {
    out.push(`  <ParticipantObjectIdentification${attrs({ ParticipantObjectID: patientId, ParticipantObjectTypeCode: '1', ParticipantObjectTypeCodeRole: '1' })}>`);
    out.push(`    ${coded('ParticipantObjectIDTypeCode', OBJECT_ID_TYPES.patient)}`);
    out.push('  </ParticipantObjectIdentification>');
  }
  for (const study of record.studies) out.push(...studyObject(study, record.action === 'delete'));
  // The audit log read (A.5.3.2) carries the filter itself; other queries are Study Root C-FIND-like.
  const queryHolder = record.query !== null ? objects.find((o) => o.type === 'audit-trail') : undefined;
  for (const object of objects) out.push(...participantObject(object, object === queryHolder ? record.query : null));
  if (record.query !== null && !queryHolder) {
    out.push(`  <ParticipantObjectIdentification${attrs({ ParticipantObjectID: STUDY_ROOT_FIND, ParticipantObjectTypeCode: '2', ParticipantObjectTypeCodeRole: '3' })}>`);
    out.push(`    ${coded('ParticipantObjectIDTypeCode', OBJECT_ID_TYPES.sopClass)}`);
    out.push(`    <ParticipantObjectQuery>${Buffer.from(record.query, 'utf8').toString('base64')}</ParticipantObjectQuery>`);
    out.push(`    ${detail('Interface', record.interface)}`);
    out.push('  </ParticipantObjectIdentification>');
  }
  out.push('</AuditMessage>');
  return out.join('\n');
}

function studyObject(study: AuditStudyRef, deleted: boolean): string[] {
  const lines = [`  <ParticipantObjectIdentification${attrs({
    ParticipantObjectID: study.studyInstanceUid, ParticipantObjectTypeCode: '2', ParticipantObjectTypeCodeRole: '3',
    // PS3.15 / RFC 3881 data life cycle 14: logical deletion.
    ParticipantObjectDataLifeCycle: deleted ? '14' : undefined,
  })}>`];
  lines.push(`    ${coded('ParticipantObjectIDTypeCode', OBJECT_ID_TYPES.study)}`);
  for (const series of study.seriesInstanceUids ?? []) lines.push(`    ${detail('SeriesInstanceUID', series)}`);
  const count = study.numberOfInstances ?? null;
  const sopClasses = study.sopClassUids ?? [];
  // SOPClass carries a count per class; with one class the study's count is that class's.
  if (sopClasses.length === 1 && count !== null) {
    lines.push(`    <SOPClass${attrs({ UID: sopClasses[0], NumberOfInstances: String(count) })}/>`);
  } else if (count !== null) {
    lines.push(`    ${detail('NumberOfInstances', String(count))}`);
  }
  if (study.accessionNumber) lines.push(`    <Accession${attrs({ Number: study.accessionNumber })}/>`);
  lines.push('  </ParticipantObjectIdentification>');
  return lines;
}

/** A user, key, peer, job, quarantined object or the audit log (see OBJECT_CODES); `detail`s say what changed, never a value. */
function participantObject(object: AuditObjectRef, query: string | null): string[] {
  const codes = OBJECT_CODES[object.type];
  const lines = [`  <ParticipantObjectIdentification${attrs({
    ParticipantObjectID: object.id, ParticipantObjectTypeCode: codes.typeCode, ParticipantObjectTypeCodeRole: codes.role.code,
    // RFC 3881 data life cycle 14: logical deletion (a user, peer or quarantined object removed).
    ParticipantObjectDataLifeCycle: object.change === 'deleted' ? '14' : undefined,
  })}>`];
  lines.push(`    ${coded('ParticipantObjectIDTypeCode', codes.idType)}`);
  if (object.name) lines.push(`    <ParticipantObjectName>${text(object.name)}</ParticipantObjectName>`);
  if (query !== null) lines.push(`    <ParticipantObjectQuery>${Buffer.from(query, 'utf8').toString('base64')}</ParticipantObjectQuery>`);
  if (object.change) lines.push(`    ${detail('Change', object.change)}`);
  if (object.attributes?.length) lines.push(`    ${detail('Attributes', object.attributes.join(','))}`);
  lines.push('  </ParticipantObjectIdentification>');
  return lines;
}

function participant(attributes: Record<string, string | undefined>, roles: Code[]): string {
  if (roles.length === 0) return `  <ActiveParticipant${attrs(attributes)}/>`;
  return [`  <ActiveParticipant${attrs(attributes)}>`, ...roles.map((r) => `    ${coded('RoleIDCode', r)}`), '  </ActiveParticipant>'].join('\n');
}

/** NetworkAccessPointTypeCode: 1 machine name, 2 IP address. */
function network(end: AuditNetworkEnd | null | undefined): Record<string, string | undefined> {
  if (!end?.address) return {};
  return { NetworkAccessPointID: end.address, NetworkAccessPointTypeCode: isIpAddress(end.address) ? '2' : '1' };
}

export function isIpAddress(address: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(address) || (address.includes(':') && /^[0-9a-f:.]+$/i.test(address));
}

function coded(element: string, c: Code): string {
  return `<${element}${attrs({ 'csd-code': c.code, codeSystemName: c.scheme, originalText: c.meaning })}/>`;
}

function detail(type: string, value: string): string {
  return `<ParticipantObjectDetail${attrs({ type, value: Buffer.from(value, 'utf8').toString('base64') })}/>`;
}

function attrs(values: Record<string, string | undefined>): string {
  return Object.entries(values).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}="${escapeXml(v!)}"`).join('');
}

function text(value: string): string {
  return escapeXml(value);
}

/** XML 1.0 text or attribute: markup characters escaped, characters XML cannot carry dropped. */
export function escapeXml(value: string): string {
  return value
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
    .replace(/\r/g, '&#13;').replace(/\n/g, '&#10;').replace(/\t/g, '&#9;');
}
