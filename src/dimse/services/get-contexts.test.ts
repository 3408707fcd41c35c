/** The storage contexts proposed for C-GET: every class uncompressed, compressed syntaxes each in a context of its own, within 128. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GET_COMPRESSED, GET_STORAGE_CLASSES, GET_UNCOMPRESSED, getStorageContexts } from './get-contexts.ts';

const MR = '1.2.840.10008.5.1.4.1.1.4';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const SC = '1.2.840.10008.5.1.4.1.1.7';
const BASIC_TEXT_SR = '1.2.840.10008.5.1.4.1.1.88.11';
const J2K_LOSSLESS = '1.2.840.10008.1.2.4.90';

test('the default classes: 127 contexts beside the C-GET one, one transfer syntax per compressed context, every class uncompressed', () => {
  const contexts = getStorageContexts();
  assert.equal(contexts.length, 127);
  assert.ok(contexts.every((c) => c.scpRole === true && c.scuRole === false), 'Atrium is the storage SCP');
  for (const c of GET_STORAGE_CLASSES) {
    assert.deepEqual(contexts.find((x) => x.abstractSyntax === c)?.transferSyntaxes, [...GET_UNCOMPRESSED], `${c} uncompressed first`);
  }
  const compressed = contexts.filter((c) => c.transferSyntaxes.length === 1);
  assert.ok(compressed.every((c) => GET_COMPRESSED.includes(c.transferSyntaxes[0])));
  // Every image class can come back as JPEG 2000 lossless, JPEG lossless SV1 and JPEG baseline, CT, MR and SC as JPEG 2000 too; SR never compressed.
  for (const c of [MR, CT, SC]) {
    const syntaxes = contexts.filter((x) => x.abstractSyntax === c).slice(1).map((x) => x.transferSyntaxes[0]);
    assert.deepEqual(syntaxes, [J2K_LOSSLESS, '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.91'], c);
  }
  const pet = contexts.filter((x) => x.abstractSyntax === '1.2.840.10008.5.1.4.1.1.128').slice(1).map((x) => x.transferSyntaxes[0]);
  assert.deepEqual(pet, [J2K_LOSSLESS, '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.50'], 'later image classes: three compressed syntaxes');
  assert.equal(contexts.filter((x) => x.abstractSyntax === BASIC_TEXT_SR).length, 1);
});

test('the classes a study holds: each gets every compressed syntax', () => {
  const contexts = getStorageContexts([MR, BASIC_TEXT_SR, MR]);
  assert.equal(contexts.length, 2 + GET_COMPRESSED.length);
  assert.deepEqual(contexts.filter((c) => c.abstractSyntax === MR).map((c) => c.transferSyntaxes),
    [[...GET_UNCOMPRESSED], ...GET_COMPRESSED.map((t) => [t])]);
});

test('never more than 128 contexts, however many classes', () => {
  const many = Array.from({ length: 300 }, (_, i) => `1.2.840.10008.5.1.4.1.1.${1000 + i}`);
  assert.equal(getStorageContexts(many).length, 127);
  assert.equal(getStorageContexts(many, 3).length, 125);
});
