import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDicomServer, negotiateContexts } from './acceptor.ts';
import type { AssociateRequestInfo } from './acceptor.ts';
import { echo, handleEcho, VERIFICATION_SOP_CLASS } from './echo.ts';
import { captureLogger, run, waitFor } from '../../test/support/dimse-peers.ts';
import { generateCertificateSet } from '../security/certificates.ts';

test('TLS with client certificates: echoscu and our requestor succeed with a cert, fail without', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'atrium-dimse-tls-'));
  try {
    await generateCertificateSet(dir, { clientName: 'TESTSCU', days: 2 });
    const [ca, key, cert, clientKey, clientCert] = await Promise.all(['ca.pem', 'server.key', 'server.pem', 'client.key', 'client.pem']
      .map((f) => readFile(join(dir, f))));
    const logger = captureLogger();
    const seen: AssociateRequestInfo[] = [];
    const srv = await startDicomServer({
      host: '127.0.0.1', port: 0, logger, tls: { key, cert, ca, requestCert: true }, timeouts: { artimMs: 1000, idleMs: 5000 },
      negotiate: (rq) => {
        seen.push(rq);
        return { accept: true, contexts: negotiateContexts(rq.contexts, new Map([[VERIFICATION_SOP_CLASS, ['1.2.840.10008.1.2']]])) };
      },
      onAssociation: (a) => a.onRequest((r) => handleEcho(r, a)),
    });
    try {
      const ok = await run('echoscu', ['+tls', 'client.key', 'client.pem', '+cf', 'ca.pem', '-aec', 'ATRIUM', '-aet', 'TESTSCU',
        '127.0.0.1', String(srv.port)], { cwd: dir });
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.equal(seen[0].peerCertificate?.subject.CN, 'TESTSCU');

      const status = await echo({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM',
        tls: { ca, key: clientKey, cert: clientCert } });
      assert.equal(status, 0);

      // No client certificate: the TLS handshake is refused.
      const anon = await run('echoscu', ['+tla', '+cf', 'ca.pem', '-aec', 'ATRIUM', '127.0.0.1', String(srv.port)], { cwd: dir });
      assert.notEqual(anon.code, 0);
      await assert.rejects(echo({ host: '127.0.0.1', port: srv.port, callingAETitle: 'SCU', calledAETitle: 'ATRIUM', tls: { ca } }));
      await waitFor(() => !!logger.find(/^TLS handshake failed/), 'the handshake failure log');
      assert.match(logger.find(/^TLS handshake failed/)!.msg, /client certificate/);
      assert.equal(seen.length, 2, 'clients without a certificate never reach association negotiation');
    } finally {
      await srv.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
