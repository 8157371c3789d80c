/**
 * Just enough XML for the S3 API: a builder for responses and a small strict parser for the request
 * bodies clients send (Delete, CompleteMultipartUpload, CreateBucketConfiguration). The parser
 * checks well-formedness (matching tags, one root, known entities) and keeps text exactly as sent:
 * no trimming, no type conversion, so keys like "0001" or " a " survive.
 */

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;', '\r': '&#13;', '\n': '&#10;', '\t': '&#9;' };

export function escapeXml(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[&<>"'\r\n\t\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, (c) => ESCAPES[c] ?? `&#x${c.charCodeAt(0).toString(16)};`);
}

/** <name>escaped text</name>, or <name>children...</name> when given an array of rendered elements. */
export function xmlElement(name: string, content: string | string[] | number | boolean, attrs = ''): string {
  const inner = Array.isArray(content) ? content.join('') : escapeXml(String(content));
  return `<${name}${attrs}>${inner}</${name}>`;
}

/** Elements whose value is undefined are left out. */
export function xmlFields(fields: [string, string | number | boolean | undefined][]): string[] {
  return fields.filter(([, v]) => v !== undefined).map(([k, v]) => xmlElement(k, v as string | number | boolean));
}

export function xmlDocument(root: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${root}`;
}

/** A root element in the S3 namespace. */
export function s3Root(name: string, children: string[]): string {
  return xmlDocument(xmlElement(name, children, ` xmlns="${S3_XMLNS}"`));
}

// ---- parser -----------------------------------------------------------------------------------------

export interface XmlNode {
  /** Local name (namespace prefix removed). */
  name: string;
  children: XmlNode[];
  /** Concatenated character data directly inside this element. */
  text: string;
}

export class XmlError extends Error {
  override readonly name = 'XmlError';
}

const NAME = /^[A-Za-z_:][-A-Za-z0-9._:]*/;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&([^;&\s]*);?/g, (whole, body: string) => {
    if (!whole.endsWith(';')) throw new XmlError('bare "&" in character data');
    if (body.startsWith('#x') || body.startsWith('#X')) return codePoint(parseInt(body.slice(2), 16), /^[0-9a-fA-F]+$/.test(body.slice(2)));
    if (body.startsWith('#')) return codePoint(parseInt(body.slice(1), 10), /^[0-9]+$/.test(body.slice(1)));
    const e = ENTITIES[body];
    if (e === undefined) throw new XmlError(`unknown entity &${body};`);
    return e;
  });
}

function codePoint(n: number, valid: boolean): string {
  if (!valid || !Number.isInteger(n) || n < 0 || n > 0x10ffff) throw new XmlError('bad character reference');
  return String.fromCodePoint(n);
}

/** Parses a document; throws XmlError when it is not well-formed. */
export function parseXml(input: string): XmlNode {
  let pos = 0;
  const s = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  const stack: XmlNode[] = [];
  let root: XmlNode | null = null;
  const fail = (what: string): never => {
    throw new XmlError(`${what} at offset ${pos}`);
  };
  while (pos < s.length) {
    const lt = s.indexOf('<', pos);
    const textEnd = lt < 0 ? s.length : lt;
    if (textEnd > pos) {
      const raw = s.slice(pos, textEnd);
      if (stack.length === 0) {
        if (raw.trim() !== '') fail('text outside the root element');
      } else {
        stack[stack.length - 1].text += decodeEntities(raw);
      }
      pos = textEnd;
      continue;
    }
    if (s.startsWith('<?', pos)) {
      const end = s.indexOf('?>', pos + 2);
      if (end < 0) fail('unterminated processing instruction');
      pos = end + 2;
    } else if (s.startsWith('<!--', pos)) {
      const end = s.indexOf('-->', pos + 4);
      if (end < 0) fail('unterminated comment');
      pos = end + 3;
    } else if (s.startsWith('<![CDATA[', pos)) {
      if (stack.length === 0) fail('CDATA outside the root element');
      const end = s.indexOf(']]>', pos + 9);
      if (end < 0) fail('unterminated CDATA section');
      stack[stack.length - 1].text += s.slice(pos + 9, end);
      pos = end + 3;
    } else if (s.startsWith('<!', pos)) {
      fail('DTDs are not accepted');
    } else if (s.startsWith('</', pos)) {
      const m = NAME.exec(s.slice(pos + 2, pos + 2 + 300));
      if (!m) fail('bad closing tag');
      const name = localName(m![0]);
      let p = pos + 2 + m![0].length;
      while (p < s.length && /\s/.test(s[p])) p++;
      if (s[p] !== '>') fail('bad closing tag');
      const open = stack.pop();
      if (!open || open.name !== name) fail(`mismatched closing tag </${m![0]}>`);
      pos = p + 1;
    } else {
      const m = NAME.exec(s.slice(pos + 1, pos + 1 + 300));
      if (!m) fail('bad tag');
      let p = pos + 1 + m![0].length;
      // attributes: name="value" or name='value'
      for (;;) {
        const ws = p;
        while (p < s.length && /\s/.test(s[p])) p++;
        if (s[p] === '>' || s.startsWith('/>', p)) break;
        if (p === ws) fail('expected whitespace before an attribute');
        const an = NAME.exec(s.slice(p, p + 300));
        if (!an) fail('bad attribute');
        p += an![0].length;
        while (/\s/.test(s[p] ?? '')) p++;
        if (s[p] !== '=') fail('expected "=" after an attribute name');
        p++;
        while (/\s/.test(s[p] ?? '')) p++;
        const q = s[p];
        if (q !== '"' && q !== "'") fail('attribute value must be quoted');
        const end = s.indexOf(q, p + 1);
        if (end < 0) fail('unterminated attribute value');
        const value = s.slice(p + 1, end);
        if (value.includes('<')) fail('"<" in an attribute value');
        decodeEntities(value);
        p = end + 1;
      }
      if (p >= s.length) fail('unterminated tag');
      const node: XmlNode = { name: localName(m![0]), children: [], text: '' };
      if (stack.length === 0) {
        if (root) fail('more than one root element');
        root = node;
      } else {
        stack[stack.length - 1].children.push(node);
      }
      if (s.startsWith('/>', p)) {
        pos = p + 2;
      } else {
        stack.push(node);
        pos = p + 1;
      }
    }
  }
  if (stack.length > 0) fail(`unclosed element <${stack[stack.length - 1].name}>`);
  if (!root) fail('no root element');
  return root!;
}

function localName(name: string): string {
  const i = name.indexOf(':');
  return i < 0 ? name : name.slice(i + 1);
}

export function child(node: XmlNode, name: string): XmlNode | undefined {
  return node.children.find((c) => c.name === name);
}

export function childrenNamed(node: XmlNode, name: string): XmlNode[] {
  return node.children.filter((c) => c.name === name);
}

export function childText(node: XmlNode, name: string): string | undefined {
  return child(node, name)?.text;
}
