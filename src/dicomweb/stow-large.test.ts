/**
 * STOW-RS of a single 2 GiB instance keeps the server's peak RSS under 300 MB: the request body streams from
 * the socket through the multipart reader into the blob store and is never held in memory. The server runs in
 * a child process (test/support/stow-server.ts) whose kernel high-water mark (VmHWM) is sampled; the client
 * streams the body from a generator, so neither side ever has the object whole.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PEAK_RSS_LIMIT, watchPeakRss } from '../../test/support/memory.ts';
import { pino } from 'pino';
import { syntheticInstance, pixelDataLength } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { openArchive, MODULES } from '../app.ts';
import { loadConfig } from '../config/config.ts';
import { Metrics } from '../observability/metrics.ts';
import { configSectionsOf } from '../modules/module.ts';

const SERVER = fileURLToPath(new URL('../../test/support/stow-server.ts', import.meta.url));
const FRAMES = 4096; // 4096 x 512 x 512 x 2 bytes = 2 GiB of pixel data
const BOUNDARY = 'large-stow-boundary-91c2';

let dir: string | undefined;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a 2 GiB instance is stored through STOW-RS with bounded server memory, byte-exact', { timeout: 10 * 60_000 }, async (t) => {
  assert.ok(pixelDataLength({ frames: FRAMES }) >= 2 * 1024 ** 3);
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-stow-large-'));
  const env = { ...process.env, ATRIUM_DATA: dir, ATRIUM_LOG_LEVEL: 'warn' };
  const server = spawn(process.execPath, [SERVER], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const serverPeak = watchPeakRss(server);
  const sopInstanceUid = generateUid();
  const hash = createHash('sha256');
  let size = 0;
  let address = '';
  try {
    for await (const line of createInterface({ input: server.stdout! })) {
      const match = /STOW ready: (http:\/\/\S+)/.exec(line);
      if (match) {
        address = match[1];
        break;
      }
    }
    assert.ok(address, 'server did not start');
    server.stdout!.resume();

    async function* body(): AsyncGenerator<Uint8Array> {
      yield Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`);
      for (const chunk of syntheticInstance({ frames: FRAMES, sopInstanceUid })) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
      yield Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
    }
    const response = await fetch(`${address}/dicom-web/studies`, {
      method: 'POST',
      headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, accept: 'application/dicom+json' },
      body: ReadableStream.from(body()),
      duplex: 'half',
    } as RequestInit);
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const json = JSON.parse(text);
    assert.equal(json['00081199'].Value[0]['00081155'].Value[0], sopInstanceUid);
    t.diagnostic(`STOW of ${(size / 2 ** 30).toFixed(2)} GiB: server peak RSS ${(serverPeak() / 2 ** 20).toFixed(0)} MB`);
    assert.ok(serverPeak() > 0 && serverPeak() < PEAK_RSS_LIMIT, `server peak RSS ${(serverPeak() / 2 ** 20).toFixed(0)} MB`);
  } finally {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }

  // Byte-exact: the stored blob hashes like what was sent.
  const archive = await openArchive(loadConfig({ sections: configSectionsOf(MODULES),  env: { ATRIUM_DATA: dir } }), { log: pino({ level: 'silent' }), metrics: new Metrics({ defaultMetrics: false }) });
  try {
    const { instance, bytes } = await archive.retrieve.openInstance(sopInstanceUid);
    assert.equal(instance.sizeBytes, size);
    const stored = createHash('sha256');
    for await (const chunk of bytes) stored.update(chunk as Uint8Array);
    assert.equal(stored.digest('hex'), hash.digest('hex'));
  } finally {
    await archive.close();
  }
});
