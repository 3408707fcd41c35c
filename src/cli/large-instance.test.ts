/**
 * A single multi-frame instance of more than 2 GB goes in through `atrium import` and out through the REST
 * download with each process's peak RSS under 300 MB: the bytes stream, they are never held in memory.
 * Memory is read from the kernel's high-water mark (VmHWM), not estimated.
 */
import { openArchive, MODULES } from '../app.ts';
import { loadConfig } from '../config/config.ts';
import { authHeaders, createTestAdminKey } from '../../test/support/archive.ts';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PEAK_RSS_LIMIT, watchPeakRss, writeSyntheticFile } from '../../test/support/memory.ts';
import { pixelDataLength } from '../synthetic/synthetic-instance.ts';
import { generateUid } from '../dicom/uid.ts';
import { configSectionsOf } from '../modules/module.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const FRAMES = 4096; // 4096 x 512 x 512 x 2 bytes = 2 GiB of pixel data

let dir: string;
let file: string;
let sha256: string;
let size = 0;
const sopInstanceUid = generateUid();

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'atrium-large-'));
  file = path.join(dir, 'large.dcm');
  ({ size, sha256 } = await writeSyntheticFile(file, { frames: FRAMES, sopInstanceUid }));
  assert.ok(pixelDataLength({ frames: FRAMES }) >= 2 * 1024 ** 3);
});

after(async () => await rm(dir, { recursive: true, force: true }));

test('a 2 GiB instance is imported and downloaded with bounded memory, byte-exact', { timeout: 10 * 60_000 }, async (t) => {
  const dataDir = path.join(dir, 'data');
  const env = { ...process.env, ATRIUM_DATA: dataDir, ATRIUM_LOG_LEVEL: 'info', ATRIUM_HTTP_PORT: '0' };

  const importer = spawn(process.execPath, [MAIN, 'import', '--json', '--no-progress', file], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const importPeak = watchPeakRss(importer);
  let output = '';
  importer.stdout!.on('data', (c) => (output += c));
  const [code] = await once(importer, 'exit');
  assert.equal(code, 0, output);
  const summary = JSON.parse(output);
  assert.equal(summary.stored, 1);
  assert.equal(summary.bytes, size);
  t.diagnostic(`import of ${(size / 2 ** 30).toFixed(2)} GiB: peak RSS ${(importPeak() / 2 ** 20).toFixed(0)} MB`);
  assert.ok(importPeak() > 0 && importPeak() < PEAK_RSS_LIMIT, `import peak RSS ${(importPeak() / 2 ** 20).toFixed(0)} MB`);

  // The server authenticates: the test administrator's key goes into this data folder first.
  const keyed = await openArchive(loadConfig({ sections: configSectionsOf(MODULES),  env: { ATRIUM_DATA: dataDir, ATRIUM_LOG_LEVEL: 'silent' } }));
  await createTestAdminKey(keyed);
  await keyed.close();
  const server = spawn(process.execPath, [MAIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const serverPeak = watchPeakRss(server);
  try {
    let address = '';
    for await (const line of createInterface({ input: server.stdout! })) {
      const match = /Atrium is ready: (http:\/\/\S+?)"/.exec(line);
      if (match) { address = match[1]; break; }
    }
    assert.ok(address, 'server did not start');
    const response = await fetch(`${address}/api/instances/${sopInstanceUid}/file`, { headers: authHeaders() });
    assert.equal(response.status, 200);
    assert.equal(Number(response.headers.get('content-length')), size);
    const hash = createHash('sha256');
    let received = 0;
    for await (const chunk of response.body!) {
      hash.update(chunk);
      received += chunk.length;
    }
    assert.equal(received, size);
    assert.equal(hash.digest('hex'), sha256);
    t.diagnostic(`download: server peak RSS ${(serverPeak() / 2 ** 20).toFixed(0)} MB`);
    assert.ok(serverPeak() > 0 && serverPeak() < PEAK_RSS_LIMIT, `serve peak RSS ${(serverPeak() / 2 ** 20).toFixed(0)} MB`);
  } finally {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }
});
