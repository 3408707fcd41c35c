/**
 * HTTP header field values built from request or object data, made safe whatever that data is. Node refuses
 * to send a value with a character outside Latin-1 or a control character ("Invalid character in header
 * content"), which turned a STOW-RS of an object with such text in a UID into a 500; CR or LF in a value of
 * a part header (multipart bodies) would end the header early. So every value is visible ASCII and spaces
 * (RFC 9110 5.5 field-vchar without obs-text), bounded in length, and text in a quoted-string is escaped
 * (RFC 9110 5.6.4). The whole detail, in any character, goes in the body (problem+json, the STOW-RS response).
 *
 * Used by every transport (STOW-RS, QIDO-RS and WADO-RS warnings, downloads, Location), so it lives below them.
 */

/** The longest text put in a header value by default: a reason, not a document. */
export const HEADER_TEXT_LIMIT = 200;

/**
 * Visible ASCII and single spaces only: a control character, CR, LF, tab or a run of them becomes one space,
 * any other character (non-ASCII, a lone surrogate) "?"; cut at `maxLength` characters, "..." marking the cut.
 */
export function headerText(text: string, maxLength = HEADER_TEXT_LIMIT): string {
  const clean = String(text)
    .replace(/[\x00-\x20\x7f]+/g, ' ')
    .replace(/[^\x20-\x7e]/gu, '?')
    .trim();
  return clean.length <= maxLength ? clean : `${clean.slice(0, Math.max(0, maxLength - 3))}...`;
}

/** An RFC 9110 quoted-string of headerText(text): `"` and `\` escaped with `\`, the quotes included. */
export function quotedString(text: string, maxLength = HEADER_TEXT_LIMIT): string {
  return `"${headerText(text, maxLength).replace(/["\\]/g, '\\$&')}"`;
}

/** A Warning field value in RFC 7234 5.5 form: `299 atrium "text"` (warn-code, warn-agent, quoted warn-text). */
export function warningValue(text: string, agent = 'atrium', code = 299): string {
  return `${code} ${token(agent)} ${quotedString(text)}`;
}

/**
 * A Warning field value in the form of PS3.18 8.4.3 examples, `299 <service URL>: <text>` (QIDO-RS, WADO-RS):
 * the URL as headerUrl, the text as headerText.
 */
export function serviceWarningValue(serviceUrl: string, text: string, code = 299): string {
  return `${code} ${headerUrl(serviceUrl)}: ${headerText(text)}`;
}

/**
 * A URL or path for Location or Content-Location: every character outside visible ASCII, and `"` `<` `>`
 * `\` `^` `` ` `` `{` `|` `}` (not allowed in a URI, RFC 3986), percent-encoded as UTF-8; a lone surrogate as
 * U+FFFD. Not cut: a URL cut is another URL; what is put in one (UIDs, ids) is bounded where it comes from.
 */
export function headerUrl(url: string): string {
  return String(url).replace(/[^\x21-\x7e]|["<>\\^`{|}]/gu, (ch) => {
    const code = ch.codePointAt(0)!;
    return encodeURIComponent(code >= 0xd800 && code <= 0xdfff ? '\ufffd' : ch);
  });
}

/**
 * `attachment; filename="..."` (RFC 6266) for a download named `filename`: letters, digits, `.`, `-` and `_`
 * kept, anything else `_`, at most 100 characters; "download" when nothing is left.
 */
export function attachmentDisposition(filename: string): string {
  const safe = String(filename).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_').slice(0, 100);
  return `attachment; filename="${safe || 'download'}"`;
}

/** An RFC 9110 token (a warn-agent pseudonym): other characters become "-". */
function token(text: string): string {
  return String(text).replace(/[^!#$%&'*+.^_`|~0-9A-Za-z-]/g, '-').slice(0, 64) || '-';
}
