/**
 * The audit trail's vocabularies, as src/ports/audit-store.ts defines them (that module's type imports
 * reach Node-only code, so the console keeps a copy; src/http/ui/audit.test.ts checks the two agree).
 */
export const AUDIT_ACTIONS = [
  'read', 'store', 'import', 'export', 'media-export', 'delete', 'update', 'query', 'login', 'logout', 'login-failed', 'audit-log-used',
] as const;
export const AUDIT_INTERFACES = ['rest', 'dicomweb', 'dimse', 'ui', 'cli', 'hl7', 'fhir'] as const;
export const AUDIT_OUTCOMES = ['success', 'minor-failure', 'serious-failure', 'major-failure'] as const;

/** What each action means (PS3.15 A.5.3 events), for the action filter. */
export const ACTION_LABELS: Record<(typeof AUDIT_ACTIONS)[number], string> = {
  read: 'read (instances accessed)',
  store: 'store (instances received)',
  import: 'import',
  export: 'export (sent to a node)',
  'media-export': 'media export, download',
  delete: 'delete',
  update: 'update (corrections, merges)',
  query: 'query (C-FIND, QIDO, searches)',
  login: 'sign-in',
  logout: 'sign-out',
  'login-failed': 'failed sign-in',
  'audit-log-used': 'audit trail used',
};

/**
 * The export formats of GET /api/audit/export offered as downloads, with the file names the server
 * gives them (a link's `download` attribute names the file, whatever Content-Disposition says).
 */
export const EXPORTS = [
  { format: 'fhir', label: 'FHIR AuditEvent bundle', file: 'audit.fhir.json' },
  { format: 'fhir-ndjson', label: 'FHIR NDJSON', file: 'audit.fhir.ndjson' },
  { format: 'ndjson', label: 'NDJSON', file: 'audit.ndjson' },
  { format: 'dicom-xml', label: 'DICOM audit XML', file: 'audit.xml' },
] as const;
