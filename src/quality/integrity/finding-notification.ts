/** What a notification of an integrity finding says (the quality notifier's reader of findings). */
import type { NotificationContent } from '../notifier.ts';
import type { IntegrityFinding, SqlIntegrityStore } from './sql-integrity-store.ts';

export function findingNotificationBody(f: IntegrityFinding): Record<string, unknown> {
  return {
    type: 'integrity-finding', id: f.id, kind: f.kind, severity: f.severity, state: f.state, summary: f.summary, subject: f.subject,
    studyInstanceUid: f.studyInstanceUid, seriesInstanceUid: f.seriesInstanceUid, sopInstanceUid: f.sopInstanceUid, accessionNumber: f.accessionNumber,
    patientId: f.patientId, evidence: f.evidence, objects: f.objects, detectedAt: f.detectedAt, detectedBy: f.detectedBy,
  };
}

export function findingContent(store: SqlIntegrityStore): (id: number) => Promise<NotificationContent | null> {
  return async (id) => {
    const f = await store.finding(id);
    if (!f) return null;
    const evidence = f.evidence.map((e) => `  ${e.attribute}: expected ${e.expected ?? '(none)'}, found ${e.actual ?? '(none)'}${e.problem ? ` (${e.problem})` : ''}`).join('\n');
    return {
      body: findingNotificationBody(f),
      title: `[Atrium] ${f.severity} integrity finding: ${f.kind}${f.accessionNumber ? ` (accession ${f.accessionNumber})` : ''}`,
      text: `${f.summary}\n\nEvidence:\n${evidence}\n\nStudy Instance UID: ${f.studyInstanceUid ?? '-'}\nAccession Number: ${f.accessionNumber ?? '-'}\nPatient ID: ${f.patientId ?? '-'}\n`
        + `Finding ${f.id}, detected ${f.detectedAt} by ${f.detectedBy}. Open the Integrity page to acknowledge or resolve it.\n`,
    };
  };
}
