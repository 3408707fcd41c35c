/** Permanent and transient retrieve failures: what a retry can fix and what it cannot. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyRetrieveError, classifyRetrieveResult, retrieveFailureError } from './retrieve-failures.ts';
import { AssociationRejectedError } from '../dimse/association.ts';
import { DimseError } from '../dimse/message-streams.ts';
import { OperationNotAcceptedError, type RetrieveResult } from '../dimse/services/scu.ts';
import { AtriumError } from '../errors.ts';

const ok: RetrieveResult = { status: 0, completed: 3, failed: 0, warning: 0 };

test('success and warnings without failures are no failure', () => {
  assert.equal(classifyRetrieveResult('get', 'ORTHANC', ok), null);
  assert.equal(classifyRetrieveResult('move', 'ORTHANC', { ...ok, status: 0xb000, warning: 1 }), null);
});

test('C-GET sub-operations the peer failed without sending the object (it cannot transcode) are permanent, with the failed UIDs', () => {
  const f = classifyRetrieveResult('get', 'ORTHANC', {
    status: 0xc000, completed: 0, failed: 1, warning: 0, failedSopInstanceUids: ['1.2.3.4'], stores: { received: 0, failedTransient: 0, failedPermanent: 0 },
  })!;
  assert.equal(f.kind, 'permanent');
  assert.match(f.reason, /C-GET from ORTHANC: 0xC000 .*1 sub-operation\(s\) failed without the object reaching Atrium \(0 received\).*cannot transcode.*failed: 1\.2\.3\.4/);
  const error = retrieveFailureError(f);
  assert.equal(error.retryable, false);
  assert.match(error.message, /^permanent failure, not retried: /);
});

test('C-GET objects that reached us but could not be stored: out of resources is transient, malformed is permanent', () => {
  const base = { status: 0xb000, completed: 2, failed: 1, warning: 0 };
  assert.equal(classifyRetrieveResult('get', 'P', { ...base, stores: { received: 3, failedTransient: 1, failedPermanent: 0 } })!.kind, 'transient');
  assert.equal(classifyRetrieveResult('get', 'P', { ...base, stores: { received: 3, failedTransient: 0, failedPermanent: 1 } })!.kind, 'permanent');
});

test('refusals by status are permanent; out of resources and unexplained C-MOVE failures transient', () => {
  for (const status of [0x0122, 0x0124, 0xa801, 0xa900]) {
    assert.equal(classifyRetrieveResult('move', 'P', { status, completed: 0, failed: 0, warning: 0 })!.kind, 'permanent', status.toString(16));
  }
  assert.match(classifyRetrieveResult('move', 'P', { status: 0xa801, completed: 0, failed: 0, warning: 0 })!.reason, /refused: 0xA801 Refused: Move Destination unknown/);
  assert.equal(classifyRetrieveResult('move', 'P', { status: 0xa702, completed: 0, failed: 0, warning: 0 })!.kind, 'transient');
  assert.equal(classifyRetrieveResult('move', 'P', { status: 0xb000, completed: 1, failed: 1, warning: 0 })!.kind, 'transient');
});

test('errors: rejected-permanent, operation not accepted, no such peer are permanent; connection refused, timeouts, aborts, rejected-transient transient', () => {
  assert.equal(classifyRetrieveError(new AssociationRejectedError(1, 1, 7, 'ORTHANC')).kind, 'permanent');
  assert.equal(classifyRetrieveError(new AssociationRejectedError(2, 3, 2, 'ORTHANC')).kind, 'transient');
  assert.equal(classifyRetrieveError(new OperationNotAcceptedError('ORTHANC does not accept C-GET')).kind, 'permanent');
  assert.equal(classifyRetrieveError(new AtriumError('not-found', 'no DICOM peer X')).kind, 'permanent');
  const refused = Object.assign(new Error('cannot connect to ORTHANC at 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  assert.equal(classifyRetrieveError(refused).kind, 'transient');
  assert.equal(classifyRetrieveError(new Error('cannot connect to ORTHANC at 10.0.0.1:104: no connection within 30000 ms')).kind, 'transient');
  assert.equal(classifyRetrieveError(new DimseError('association timeout: no PDU for 300000 ms (idle timeout)', 'timeout')).kind, 'transient');
  assert.equal(classifyRetrieveError(new DimseError('association peer-aborted', 'peer-aborted')).kind, 'transient');
  assert.equal(retrieveFailureError(classifyRetrieveError(refused)).retryable, true);
});
