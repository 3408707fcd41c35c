// End-to-end: Atrium's DICOM TLS listener (client certificates required) with DCMTK storescu, findscu, echoscu.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { openArchive, type Archive, MODULES } from '../../app.ts';
import { loadConfig } from '../../config/config.ts';
import { Metrics } from '../../observability/metrics.ts';
import { dumpValues, filesIn, killAllChildren, runTool } from '../../../test/support/dcmtk.ts';
import { generateCertificateSet } from '../../security/certificates.ts';
import { startDicomService, type DicomService } from './dicom-service.ts';
import { configSectionsOf } from '../../modules/module.ts';

const CT_SMALL = '/work/shared/testdata/dicom/CT_small.dcm';
const CT_SMALL_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';

describe('DICOM TLS with DCMTK clients', { timeout: 300_000 }, () => {
  let dir: string;
  let archive: Archive;
  let dicom: DicomService;
  /** Atrium's log lines (messages), to tell a refused handshake from a refused association. */
  const logged: string[] = [];
  const tlsArgs = () => ['+tls', 'client.key', 'client.pem', '+cf', 'ca.pem'];
  const run = (tool: string, args: string[]) => runTool(tool, args, { cwd: dir, timeoutMs: 60_000 });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-dicom-tls-'));
    await generateCertificateSet(dir, { clientName: 'TLSSCU', days: 2 });
    const config = loadConfig({ sections: configSectionsOf(MODULES), 
      env: {
        ATRIUM_DATA: path.join(dir, 'data'), ATRIUM_LOG_LEVEL: process.env.ATRIUM_TEST_LOG_LEVEL ?? 'silent',
        ATRIUM_DICOM_TLS_PORT: '0', ATRIUM_DICOM_TLS_CERT: path.join(dir, 'server.pem'), ATRIUM_DICOM_TLS_KEY: path.join(dir, 'server.key'),
        ATRIUM_DICOM_TLS_CA: path.join(dir, 'ca.pem'),
      },
    });
    assert.equal(config.dicom.tls?.requireClientCert, true);
    const sink = new Writable({ write(chunk, _enc, done) { for (const line of String(chunk).split('\n')) if (line) logged.push(JSON.parse(line).msg); done(); } });
    archive = await openArchive(config, { log: pino({ level: 'info' }, sink), metrics: new Metrics({ defaultMetrics: false }) });
    dicom = await startDicomService(archive, { port: 0, tlsPort: 0 });
    assert.ok(dicom.tlsPort && dicom.tlsPort !== dicom.port);
    await archive.peers.upsert({ aeTitle: 'TLSSCU', host: '127.0.0.1', port: 104, operations: ['echo', 'store', 'find'] });
  });
  after(async () => {
    await dicom?.close();
    await archive?.close();
    killAllChildren();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('echoscu with a client certificate', async () => {
    const r = await run('echoscu', ['-v', ...tlsArgs(), '-aet', 'TLSSCU', '-aec', 'ATRIUM', '127.0.0.1', String(dicom.tlsPort)]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /Received Echo Response \(Success\)/);
  });

  test('storescu with a client certificate stores; findscu with one finds it', async () => {
    const s = await run('storescu', ['-v', ...tlsArgs(), '-aet', 'TLSSCU', '-aec', 'ATRIUM', '127.0.0.1', String(dicom.tlsPort), CT_SMALL]);
    assert.equal(s.code, 0, s.output);
    assert.match(s.output, /Received Store Response \(Success\)/);
    const instance = await archive.index.findInstance('1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322');
    assert.ok(instance);
    assert.match(instance.source, /^dimse:TLSSCU$/);

    const od = await mkdtemp(path.join(dir, 'find-'));
    const f = await run('findscu', ['-v', ...tlsArgs(), '-S', '-X', '-od', od, '-aet', 'TLSSCU', '-aec', 'ATRIUM',
      '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID', '-k', 'PatientName', '127.0.0.1', String(dicom.tlsPort)]);
    assert.equal(f.code, 0, f.output);
    const responses = await Promise.all((await filesIn(od)).map((file) => dumpValues(file, ['StudyInstanceUID'])));
    assert.deepEqual(responses.map((x) => x.StudyInstanceUID), [CT_SMALL_STUDY]);
  });

  test('without a client certificate the TLS handshake fails and nothing is stored', async () => {
    const before = await archive.index.statistics();
    const r = await run('storescu', ['-v', '+tla', '+cf', 'ca.pem', '-aet', 'TLSSCU', '-aec', 'ATRIUM', '127.0.0.1', String(dicom.tlsPort),
      '/work/shared/testdata/dicom/MR_small.dcm']);
    assert.notEqual(r.code, 0, r.output);
    assert.doesNotMatch(r.output, /Association Accepted/);
    // DCMTK only says the peer went away; Atrium's log says why.
    assert.match(r.output, /Association Request Failed/);
    const handshake = logged.filter((m) => /TLS handshake failed/.test(m));
    assert.ok(handshake.length >= 1, `no handshake failure logged: ${logged.join(' | ')}`);
    assert.match(handshake[0], /certificate/i);
    const f = await run('findscu', ['-v', '+tla', '+cf', 'ca.pem', '-S', '-aet', 'TLSSCU', '-aec', 'ATRIUM', '-k', 'QueryRetrieveLevel=STUDY',
      '-k', 'StudyInstanceUID', '127.0.0.1', String(dicom.tlsPort)]);
    assert.notEqual(f.code, 0, f.output);
    const after = await archive.index.statistics();
    assert.equal(after.instances, before.instances);
  });

  test('a client certificate from another CA is refused too', async () => {
    const other = await mkdtemp(path.join(dir, 'other-'));
    await generateCertificateSet(other, { clientName: 'TLSSCU', days: 2 });
    const r = await run('echoscu', ['-v', '+tls', path.join(other, 'client.key'), path.join(other, 'client.pem'), '+cf', 'ca.pem',
      '-aet', 'TLSSCU', '-aec', 'ATRIUM', '127.0.0.1', String(dicom.tlsPort)]);
    assert.notEqual(r.code, 0, r.output);
    assert.doesNotMatch(r.output, /Received Echo Response/);
  });

  test('the plain port still answers beside the TLS one, and TLS clients cannot talk to it', async () => {
    const plain = await run('echoscu', ['-aec', 'ATRIUM', '127.0.0.1', String(dicom.port)]);
    assert.equal(plain.code, 0, plain.output);
    const tlsToPlain = await run('echoscu', [...tlsArgs(), '-aec', 'ATRIUM', '-to', '10', '-ta', '10', '127.0.0.1', String(dicom.port)]);
    assert.notEqual(tlsToPlain.code, 0);
  });
});
