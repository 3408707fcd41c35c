import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attachmentDisposition, headerText, headerUrl, quotedString, serviceWarningValue, warningValue } from './header-value.ts';

const SAFE = /^[\x20-\x7e]*$/;

test('headerText: visible ASCII only, controls and CR/LF as one space, other characters "?", bounded', () => {
  assert.equal(headerText('a\r\nX-Injected: 1'), 'a X-Injected: 1');
  assert.equal(headerText('\x01\x02ok\x7f'), 'ok');
  assert.equal(headerText('Müller 😀 \ud800'), 'M?ller ? ?');
  const long = headerText('x'.repeat(1000));
  assert.equal(long.length, 200);
  assert.ok(long.endsWith('...'));
  for (let c = 0; c < 0x300; c++) assert.match(headerText(`a${String.fromCharCode(c)}b`), SAFE);
});

test('quotedString and warningValue: RFC 9110 quoted-string escaping', () => {
  assert.equal(quotedString('say "hi" \\ bye'), '"say \\"hi\\" \\\\ bye"');
  assert.equal(warningValue('part 1: x\r\n'), '299 atrium "part 1: x"');
  assert.equal(warningValue('t', 'bad agent\n'), '299 bad-agent- "t"');
  assert.equal(serviceWarningValue('http://h:1/dicom-web', 'more\r\nresults'), '299 http://h:1/dicom-web: more results');
});

test('headerUrl: anything outside visible ASCII, and what a URI cannot hold, percent-encoded', () => {
  assert.equal(headerUrl('http://h/a b/é"\r\n'), 'http://h/a%20b/%C3%A9%22%0D%0A');
  assert.equal(headerUrl('/x/\ud800'), '/x/%EF%BF%BD');
  assert.equal(headerUrl('http://h/studies/1.2.3?x=1&y=%20'), 'http://h/studies/1.2.3?x=1&y=%20');
});

test('attachmentDisposition: a plain file name, whatever it is made of', () => {
  assert.equal(attachmentDisposition('1.2.3.dcm'), 'attachment; filename="1.2.3.dcm"');
  assert.equal(attachmentDisposition('../a"b\r\n.dcm'), 'attachment; filename="__a_b__.dcm"');
  assert.equal(attachmentDisposition(''), 'attachment; filename="download"');
});
