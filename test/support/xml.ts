/**
 * Test support: a strict little XML parser (elements, attributes, text; no DTD, no namespaces) so tests
 * can check the DICOM audit messages for well-formedness and read them back without a dependency.
 */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(value: string): string {
  return value.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, ref: string) => {
    if (ref[0] === '#') return String.fromCodePoint(ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : Number(ref.slice(1)));
    if (!(ref in ENTITIES)) throw new Error(`unknown entity ${whole}`);
    return ENTITIES[ref];
  });
}

export function parseXml(source: string): XmlElement {
  let i = 0;
  const text = source.replace(/^\uFEFF/, '');
  const skipSpace = () => { while (i < text.length && /\s/.test(text[i])) i++; };
  const fail = (message: string): never => { throw new Error(`XML: ${message} at ${i}: ${JSON.stringify(text.slice(i, i + 40))}`); };
  skipSpace();
  if (text.startsWith('<?xml', i)) {
    const end = text.indexOf('?>', i);
    if (end < 0) fail('unterminated declaration');
    i = end + 2;
  }
  const element = (): XmlElement => {
    skipSpace();
    if (text[i] !== '<') fail('expected <');
    i++;
    const name = /^[A-Za-z_][\w.-]*/.exec(text.slice(i))?.[0] ?? fail('expected a name');
    i += name.length;
    const attributes: Record<string, string> = {};
    for (;;) {
      skipSpace();
      if (text.startsWith('/>', i)) {
        i += 2;
        return { name, attributes, children: [], text: '' };
      }
      if (text[i] === '>') { i++; break; }
      const attr = /^([A-Za-z_][\w.:-]*)\s*=\s*"([^"<]*)"/.exec(text.slice(i)) ?? fail('bad attribute');
      if (attr[1] in attributes) fail(`duplicate attribute ${attr[1]}`);
      attributes[attr[1]] = decode(attr[2]);
      i += attr[0].length;
    }
    const children: XmlElement[] = [];
    let content = '';
    for (;;) {
      if (i >= text.length) fail(`unterminated <${name}>`);
      if (text.startsWith('</', i)) {
        const close = `</${name}>`;
        if (!text.startsWith(close, i)) fail(`expected ${close}`);
        i += close.length;
        return { name, attributes, children, text: decode(content).trim() };
      }
      if (text[i] === '<') children.push(element());
      else {
        const next = text.indexOf('<', i);
        content += text.slice(i, next < 0 ? text.length : next);
        i = next < 0 ? text.length : next;
      }
    }
  };
  const root = element();
  skipSpace();
  if (i !== text.length) fail('content after the root element');
  return root;
}

export function childrenNamed(element: XmlElement, name: string): XmlElement[] {
  return element.children.filter((c) => c.name === name);
}

export function child(element: XmlElement, name: string): XmlElement {
  const found = element.children.find((c) => c.name === name);
  if (!found) throw new Error(`<${element.name}> has no <${name}>`);
  return found;
}
