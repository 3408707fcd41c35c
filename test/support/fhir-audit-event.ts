/**
 * A compact structural check of a FHIR R4 AuditEvent (http://hl7.org/fhir/R4/auditevent.html), written
 * from the resource's definition: the elements and cardinalities, the primitive formats (instant, uri,
 * base64Binary, code), the required bindings (action, outcome, agent.network.type), invariant sev-1, and
 * JSON rules (no null, no empty object/array/string). Unknown elements are problems: a typo is not
 * silently an extension. Returns the problems, empty when the resource is valid.
 */
export function validateFhirAuditEvent(resource: unknown): string[] {
  const problems: string[] = [];
  const v = new Checker(problems);
  if (!isObject(resource)) return ['AuditEvent: not a JSON object'];
  v.noEmpty(resource, 'AuditEvent');
  if (resource.resourceType !== 'AuditEvent') problems.push('resourceType must be "AuditEvent"');
  v.known(resource, 'AuditEvent', ['resourceType', 'id', 'meta', 'implicitRules', 'language', 'text', 'contained', 'extension',
    'modifierExtension', 'type', 'subtype', 'action', 'period', 'recorded', 'outcome', 'outcomeDesc', 'purposeOfEvent', 'agent',
    'source', 'entity']);
  if (resource.id !== undefined && !(typeof resource.id === 'string' && /^[A-Za-z0-9\-.]{1,64}$/.test(resource.id))) problems.push('id: not a FHIR id');
  v.required(resource, 'type', 'AuditEvent') && v.coding(resource.type, 'AuditEvent.type');
  v.array(resource, 'subtype', 'AuditEvent', 0, (c, at) => v.coding(c, at));
  v.code(resource, 'action', 'AuditEvent', ['C', 'R', 'U', 'D', 'E']);
  if (v.required(resource, 'recorded', 'AuditEvent')) v.instant(resource.recorded, 'AuditEvent.recorded');
  v.code(resource, 'outcome', 'AuditEvent', ['0', '4', '8', '12']);
  v.string(resource, 'outcomeDesc', 'AuditEvent');
  v.array(resource, 'purposeOfEvent', 'AuditEvent', 0, (c, at) => v.codeableConcept(c, at));

  if (v.required(resource, 'agent', 'AuditEvent')) {
    v.array(resource, 'agent', 'AuditEvent', 1, (agent, at) => {
      if (!isObject(agent)) return;
      v.known(agent, at, ['id', 'extension', 'modifierExtension', 'type', 'role', 'who', 'altId', 'name', 'requestor', 'location', 'policy',
        'media', 'network', 'purposeOfUse']);
      if (agent.type !== undefined) v.codeableConcept(agent.type, `${at}.type`);
      v.array(agent, 'role', at, 0, (c, a) => v.codeableConcept(c, a));
      if (agent.who !== undefined) v.reference(agent.who, `${at}.who`);
      v.string(agent, 'altId', at);
      v.string(agent, 'name', at);
      if (v.required(agent, 'requestor', at) && typeof agent.requestor !== 'boolean') problems.push(`${at}.requestor: must be a boolean`);
      if (agent.media !== undefined) v.coding(agent.media, `${at}.media`);
      if (agent.network !== undefined) {
        const network = agent.network;
        if (!isObject(network)) problems.push(`${at}.network: must be an object`);
        else {
          v.known(network, `${at}.network`, ['id', 'extension', 'modifierExtension', 'address', 'type']);
          v.string(network, 'address', `${at}.network`);
          v.code(network, 'type', `${at}.network`, ['1', '2', '3', '4', '5']);
        }
      }
    });
  }

  if (v.required(resource, 'source', 'AuditEvent')) {
    const source = resource.source;
    if (!isObject(source)) problems.push('AuditEvent.source: must be an object');
    else {
      v.known(source, 'AuditEvent.source', ['id', 'extension', 'modifierExtension', 'site', 'observer', 'type']);
      v.string(source, 'site', 'AuditEvent.source');
      if (v.required(source, 'observer', 'AuditEvent.source')) v.reference(source.observer, 'AuditEvent.source.observer');
      v.array(source, 'type', 'AuditEvent.source', 0, (c, at) => v.coding(c, at));
    }
  }

  v.array(resource, 'entity', 'AuditEvent', 0, (entity, at) => {
    if (!isObject(entity)) return;
    v.known(entity, at, ['id', 'extension', 'modifierExtension', 'what', 'type', 'role', 'lifecycle', 'securityLabel', 'name', 'description',
      'query', 'detail']);
    if (entity.what !== undefined) v.reference(entity.what, `${at}.what`);
    for (const key of ['type', 'role', 'lifecycle'] as const) if (entity[key] !== undefined) v.coding(entity[key], `${at}.${key}`);
    v.string(entity, 'name', at);
    v.string(entity, 'description', at);
    if (entity.query !== undefined && !(typeof entity.query === 'string' && BASE64.test(entity.query))) problems.push(`${at}.query: must be base64Binary`);
    if (entity.name !== undefined && entity.query !== undefined) problems.push(`${at}: sev-1: either a name or a query (not both)`);
    v.array(entity, 'detail', at, 0, (detail, a) => {
      if (!isObject(detail)) return;
      v.known(detail, a, ['id', 'extension', 'modifierExtension', 'type', 'valueString', 'valueBase64Binary']);
      if (v.required(detail, 'type', a)) v.string(detail, 'type', a);
      const values = ['valueString', 'valueBase64Binary'].filter((k) => detail[k] !== undefined);
      if (values.length !== 1) problems.push(`${a}: exactly one of valueString, valueBase64Binary`);
      v.string(detail, 'valueString', a);
      if (detail.valueBase64Binary !== undefined && !BASE64.test(String(detail.valueBase64Binary))) problems.push(`${a}.valueBase64Binary: must be base64Binary`);
    });
  });
  return problems;
}

type Json = Record<string, any>;

/** R4 instant: a full date-time with seconds and a time zone. */
export const FHIR_INSTANT = /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$/;
const URI = /^\S+$/;
const CODE = /^[^\s]+(\s[^\s]+)*$/;
const BASE64 = /^(\s*([0-9a-zA-Z+/=]){4}\s*)+$/;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class Checker {
  readonly #problems: string[];
  constructor(problems: string[]) {
    this.#problems = problems;
  }

  noEmpty(value: unknown, at: string): void {
    if (value === null) this.#problems.push(`${at}: null is not allowed in FHIR JSON`);
    else if (typeof value === 'string' && value.trim() === '') this.#problems.push(`${at}: empty string`);
    else if (Array.isArray(value)) {
      if (value.length === 0) this.#problems.push(`${at}: empty array`);
      value.forEach((item, i) => this.noEmpty(item, `${at}[${i}]`));
    } else if (isObject(value)) {
      if (Object.keys(value).length === 0) this.#problems.push(`${at}: empty object`);
      for (const [k, item] of Object.entries(value)) this.noEmpty(item, `${at}.${k}`);
    }
  }

  known(obj: Json, at: string, keys: string[]): void {
    for (const key of Object.keys(obj)) if (!keys.includes(key)) this.#problems.push(`${at}.${key}: not an element of AuditEvent`);
  }

  required(obj: Json, key: string, at: string): boolean {
    if (obj[key] === undefined) {
      this.#problems.push(`${at}.${key}: required (min 1)`);
      return false;
    }
    return true;
  }

  string(obj: Json, key: string, at: string): void {
    if (obj[key] !== undefined && typeof obj[key] !== 'string') this.#problems.push(`${at}.${key}: must be a string`);
  }

  code(obj: Json, key: string, at: string, allowed: string[]): void {
    const value = obj[key];
    if (value === undefined) return;
    if (typeof value !== 'string' || !CODE.test(value)) this.#problems.push(`${at}.${key}: must be a code`);
    else if (!allowed.includes(value)) this.#problems.push(`${at}.${key}: "${value}" not in the required value set (${allowed.join('|')})`);
  }

  instant(value: unknown, at: string): void {
    if (typeof value !== 'string' || !FHIR_INSTANT.test(value) || Number.isNaN(Date.parse(value))) this.#problems.push(`${at}: must be an instant (YYYY-MM-DDThh:mm:ss[.sss]Z|+hh:mm)`);
  }

  array(obj: Json, key: string, at: string, min: number, each: (item: unknown, at: string) => void): void {
    const value = obj[key];
    if (value === undefined) return;
    if (!Array.isArray(value)) {
      this.#problems.push(`${at}.${key}: must be an array`);
      return;
    }
    if (value.length < min) this.#problems.push(`${at}.${key}: at least ${min}`);
    value.forEach((item, i) => {
      if (!isObject(item)) this.#problems.push(`${at}.${key}[${i}]: must be an object`);
      each(item, `${at}.${key}[${i}]`);
    });
  }

  coding(value: unknown, at: string): void {
    if (!isObject(value)) {
      this.#problems.push(`${at}: must be a Coding`);
      return;
    }
    this.known(value, at, ['id', 'extension', 'system', 'version', 'code', 'display', 'userSelected']);
    if (value.system !== undefined && !(typeof value.system === 'string' && URI.test(value.system))) this.#problems.push(`${at}.system: must be a uri`);
    if (value.code !== undefined && !(typeof value.code === 'string' && CODE.test(value.code))) this.#problems.push(`${at}.code: must be a code`);
    this.string(value, 'display', at);
    if (value.userSelected !== undefined && typeof value.userSelected !== 'boolean') this.#problems.push(`${at}.userSelected: must be a boolean`);
  }

  codeableConcept(value: unknown, at: string): void {
    if (!isObject(value)) {
      this.#problems.push(`${at}: must be a CodeableConcept`);
      return;
    }
    this.known(value, at, ['id', 'extension', 'coding', 'text']);
    this.array(value, 'coding', at, 0, (c, a) => this.coding(c, a));
    this.string(value, 'text', at);
  }

  reference(value: unknown, at: string): void {
    if (!isObject(value)) {
      this.#problems.push(`${at}: must be a Reference`);
      return;
    }
    this.known(value, at, ['id', 'extension', 'reference', 'type', 'identifier', 'display']);
    if (value.reference === undefined && value.identifier === undefined && value.display === undefined) {
      this.#problems.push(`${at}: ref-1: a Reference needs a reference, an identifier or a display`);
    }
    this.string(value, 'reference', at);
    if (value.type !== undefined && !(typeof value.type === 'string' && URI.test(value.type))) this.#problems.push(`${at}.type: must be a uri`);
    this.string(value, 'display', at);
    if (value.identifier !== undefined) {
      const id = value.identifier;
      if (!isObject(id)) this.#problems.push(`${at}.identifier: must be an Identifier`);
      else {
        this.known(id, `${at}.identifier`, ['id', 'extension', 'use', 'type', 'system', 'value', 'period', 'assigner']);
        if (id.system !== undefined && !(typeof id.system === 'string' && URI.test(id.system))) this.#problems.push(`${at}.identifier.system: must be a uri`);
        this.string(id, 'value', `${at}.identifier`);
      }
    }
  }
}
