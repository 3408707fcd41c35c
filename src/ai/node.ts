/**
 * An AI node of the registry (docs/ai.md "Registry"): the product, its regulatory clearance, how Atrium reaches
 * it, and how its coded findings map to triage flags. Pure: validation of what came over REST; no I/O.
 */

/** The regulatory clearance of a product, as recorded by whoever installed it (the AI product inventory). */
export interface Clearance {
  /** fda-510k | fda-de-novo | fda-pma | ce-mdr | ce-mdd | other */
  kind: string;
  /** The 510(k) / De Novo / PMA number, the CE certificate or notified body reference. */
  number: string | null;
  /** CE class (I, IIa, IIb, III) for CE marks. */
  ceClass: string | null;
  /** The indication it was cleared for (what the clearance letter says). */
  indication: string;
  intendedUse: string;
  /** Modalities it was cleared on (CT, MR ...): a study of another modality is still sent when a rule says so, but the request is marked off-label. */
  modalities: string[];
}

export type AiEndpoint =
  /** A DICOM peer of the peer registry (its AE title): studies go by the exchange's C-STORE; results come back by C-STORE from `callingAeTitles`. */
  | { type: 'dicom'; aeTitle: string; callingAeTitles: string[] }
  /** A DICOMweb destination of `workflow.dicomwebDestinations`: studies go by STOW-RS; results come back by STOW-RS (or C-STORE from `callingAeTitles`). */
  | { type: 'dicomweb'; destination: string; callingAeTitles: string[] };

/** One coded finding -> a triage flag (docs/ai.md "Triage"). */
export interface FindingMapping {
  /** The finding's code: CodeValue and CodingSchemeDesignator (`274100004`, `SCT`). */
  code: string;
  scheme: string;
  /** The text put on the reading worklist (`ICH`). */
  flag: string;
}

export interface AiNodeDefinition {
  name: string;
  vendor: string;
  product: string | null;
  version: string;
  /** null: none recorded, the node can only run in research mode. */
  clearance: Clearance | null;
  mode: 'clinical' | 'research';
  endpoint: AiEndpoint;
  enabled: boolean;
  /** A request without a result after this long is a timeout; null: `ai.timeoutMinutes`. */
  timeoutMinutes: number | null;
  /** The node's own finding mapping, before the configured `ai.findings`. */
  findings: FindingMapping[];
}

export interface AiNode extends AiNodeDefinition {
  id: number;
  createdAt: string;
  updatedAt: string;
  updatedBy: string | null;
}

export interface NodeProblem { path: string; message: string }

const NAME = /^[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]{0,99}$/;
const AE_TITLE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;
const CLEARANCE_KINDS = ['fda-510k', 'fda-de-novo', 'fda-pma', 'ce-mdr', 'ce-mdd', 'other'];
const CE_CLASSES = ['I', 'IIa', 'IIb', 'III'];
const KEYS = ['name', 'vendor', 'product', 'version', 'clearance', 'mode', 'endpoint', 'enabled', 'timeoutMinutes', 'findings'];

/** Checks a node as it came over REST: the definition, or every problem with its field. */
export function validateNode(input: unknown): { node: AiNodeDefinition; problems: [] } | { node: null; problems: NodeProblem[] } {
  const problems: NodeProblem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  if (!input || typeof input !== 'object' || Array.isArray(input)) return { node: null, problems: [{ path: '', message: 'an AI node is a JSON object' }] };
  const b = input as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!KEYS.includes(key)) add(key, `unknown field "${key}"`);
  const text = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
  const name = text(b.name);
  if (!NAME.test(name)) add('name', 'name is required: 1 to 100 characters, no control characters');
  const vendor = text(b.vendor);
  if (!vendor) add('vendor', 'vendor is required');
  const version = text(b.version);
  if (!version) add('version', 'version is required (the product version the clearance covers)');
  const product = text(b.product) || null;

  let clearance: Clearance | null = null;
  if (b.clearance !== undefined && b.clearance !== null) {
    const c = b.clearance as Record<string, unknown>;
    if (typeof c !== 'object' || Array.isArray(c)) add('clearance', 'clearance is an object or null');
    else {
      const kind = text(c.kind);
      if (!CLEARANCE_KINDS.includes(kind)) add('clearance.kind', `kind must be one of ${CLEARANCE_KINDS.join(', ')}`);
      const number = text(c.number) || null;
      const ceClass = text(c.ceClass) || null;
      if (kind.startsWith('fda-') && !number) add('clearance.number', 'an FDA clearance needs its number (K123456, DEN..., P...)');
      if (kind === 'fda-510k' && number && !/^K\d{6}$/i.test(number)) add('clearance.number', 'a 510(k) number is K and six digits (K123456)');
      if (kind.startsWith('ce-') && !(ceClass && CE_CLASSES.includes(ceClass))) add('clearance.ceClass', `a CE mark needs its class: ${CE_CLASSES.join(', ')}`);
      const indication = text(c.indication);
      if (!indication) add('clearance.indication', 'the cleared indication is required');
      const intendedUse = text(c.intendedUse);
      if (!intendedUse) add('clearance.intendedUse', 'the intended use is required');
      const modalities = Array.isArray(c.modalities) ? c.modalities.map(text) : [];
      if (!modalities.length || modalities.some((m) => !/^[A-Za-z0-9]{1,16}$/.test(m))) add('clearance.modalities', 'modalities is the list of input modalities it was cleared on (CT, MR ...)');
      clearance = { kind, number: number ? number.toUpperCase() : null, ceClass, indication, intendedUse, modalities: modalities.map((m) => m.toUpperCase()) };
    }
  }
  const mode = b.mode === undefined ? (clearance ? 'clinical' : 'research') : b.mode;
  if (mode !== 'clinical' && mode !== 'research') add('mode', 'mode must be clinical or research');
  if (mode === 'clinical' && !clearance) add('mode', 'a node without a recorded clearance can be used only in research mode');

  let endpoint: AiEndpoint = { type: 'dicom', aeTitle: '', callingAeTitles: [] };
  const e = b.endpoint as Record<string, unknown> | undefined;
  if (!e || typeof e !== 'object' || Array.isArray(e)) add('endpoint', 'endpoint is { "type": "dicom", "aeTitle": ... } or { "type": "dicomweb", "destination": ... }');
  else {
    const calling = e.callingAeTitles === undefined ? [] : e.callingAeTitles;
    if (!Array.isArray(calling) || calling.some((a) => typeof a !== 'string' || !AE_TITLE.test(a.trim()))) add('endpoint.callingAeTitles', 'callingAeTitles is a list of AE titles');
    const callingAeTitles = Array.isArray(calling) ? calling.map((a) => String(a).trim()) : [];
    if (e.type === 'dicom') {
      const aeTitle = text(e.aeTitle);
      if (!AE_TITLE.test(aeTitle)) add('endpoint.aeTitle', 'aeTitle is the AE title of a DICOM peer (/api/dicom/peers)');
      // By default the node answers under the AE title it listens on.
      endpoint = { type: 'dicom', aeTitle, callingAeTitles: callingAeTitles.length ? callingAeTitles : [aeTitle] };
    } else if (e.type === 'dicomweb') {
      const destination = text(e.destination);
      if (!destination) add('endpoint.destination', 'destination is the name of a DICOMweb destination (workflow.dicomwebDestinations)');
      endpoint = { type: 'dicomweb', destination, callingAeTitles };
    } else add('endpoint.type', 'endpoint.type must be dicom (C-STORE) or dicomweb (STOW-RS)');
  }
  if (b.enabled !== undefined && typeof b.enabled !== 'boolean') add('enabled', 'enabled is true or false');
  const timeoutMinutes = b.timeoutMinutes === undefined || b.timeoutMinutes === null ? null : b.timeoutMinutes;
  if (timeoutMinutes !== null && (!Number.isInteger(timeoutMinutes) || (timeoutMinutes as number) < 1 || (timeoutMinutes as number) > 7 * 24 * 60)) {
    add('timeoutMinutes', 'timeoutMinutes is a whole number of minutes from 1 to 10080');
  }
  const findings = parseFindings(b.findings, 'findings', add);
  if (problems.length) return { node: null, problems };
  return {
    node: { name, vendor, product, version, clearance, mode: mode as AiNodeDefinition['mode'], endpoint, enabled: b.enabled !== false, timeoutMinutes: timeoutMinutes as number | null, findings },
    problems: [],
  };
}

/** A finding mapping list (`[{ code, scheme, flag }]`), from REST or the configuration. */
export function parseFindings(value: unknown, at: string, add: (path: string, message: string) => void): FindingMapping[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    add(at, `${at} is a list of { code, scheme, flag }`);
    return [];
  }
  return value.map((m: any, i: number) => {
    const code = typeof m?.code === 'string' ? m.code.trim() : '';
    const scheme = typeof m?.scheme === 'string' ? m.scheme.trim() : '';
    const flag = typeof m?.flag === 'string' ? m.flag.trim() : '';
    if (!code || code.length > 64) add(`${at}.${i}.code`, 'code is the finding\'s CodeValue');
    if (!scheme || scheme.length > 16) add(`${at}.${i}.scheme`, 'scheme is its CodingSchemeDesignator (SCT, DCM, RADLEX ...)');
    if (!flag || flag.length > 60) add(`${at}.${i}.flag`, 'flag is the text shown on the reading worklist (1 to 60 characters)');
    return { code, scheme, flag };
  });
}
